// Command junction is the Junction ISO 8583 switch: one binary, one
// subcommand per job. It parses flags into options, builds, runs and waits;
// the work is done in the packages.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

const usage = `junction: a high-throughput ISO 8583 switch

usage: junction <command> [flags]

commands:
  up              run the all-in-one switch: channels, switch, regional ledger shards, HTTP
  ledger          run one regional ledger shard as its own process, behind the switch's links
  ledger verify   check the books of every stopped shard under a data directory
  head            the head ledger in a running switch: windows and cutover, general ledger,
                  settlement, reconciliation and batch debit files
  send            send one transaction to a channel over mutual TLS and print the answer
  bench           drive a running switch with load and report throughput, latency and an audit
  route explain   route one request through the rules and say why each rule did or did not decide
  route check     validate a routing rules file
  pki init        create the dev CA, server and channel client certificates
  codec describe  decode an ISO 8583 message (hex or raw) into a masked dump
  codec convert   convert one request between dialects, as the switch would
  codec check     validate a dialect spec file or a conversion map
  codec export    print a dialect as a moov-io JSON spec
  version         print the version

Run 'junction <command> -h' for a command's flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "up":
		return up(rest, stdout, stderr)
	case "ledger":
		return ledgerCmd(rest, stdout, stderr)
	case "head":
		return headCmd(rest, stdout, stderr)
	case "send":
		return send(rest, stdout, stderr)
	case "route":
		return routeCmd(rest, stdout, stderr)
	case "bench":
		return benchCmd(rest, stdout, stderr)
	case "pki":
		return pkiCmd(rest, stdout, stderr)
	case "codec":
		return codecCmd(rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "junction", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "junction: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// logger builds the process logger: text lines on stderr at the given level.
func logger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "junction: %v\n", err)
	return 1
}
