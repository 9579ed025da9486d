package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/junction-switch/junction/pki"
)

func pkiCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprintln(stderr, "usage: junction pki init [--dir var/pki] [--channels pos,kiosk,web,bank,hotline] [--hosts localhost,127.0.0.1]")
		return 2
	}
	fs := flag.NewFlagSet("junction pki init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "var/pki", "directory of the dev PKI")
	channels := fs.String("channels", "pos,kiosk,web,bank,hotline", "channels that get a client certificate")
	hosts := fs.String("hosts", "localhost,127.0.0.1", "names and addresses in the server certificate")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: junction pki init [flags]

Creates a development CA (ca.crt, ca.key), a server certificate (server.crt,
server.key) and one client certificate per channel (clients/<name>.crt, .key).
Existing files are kept and checked, never replaced. For development and tests
only: production brings certificates from its own CA.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	created, err := pki.EnsureDev(*dir, pki.DevOptions{
		Channels: strings.Split(*channels, ","),
		Hosts:    strings.Split(*hosts, ","),
	})
	if err != nil {
		return fail(stderr, err)
	}
	if len(created) == 0 {
		fmt.Fprintf(stdout, "%s is complete; nothing created\n", *dir)
	}
	for _, f := range created {
		fmt.Fprintln(stdout, "created", f)
	}
	return 0
}
