package main

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/junction-switch/junction/codec"
)

func codecCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "describe" {
		fmt.Fprintln(stderr, "usage: junction codec describe [--raw] [--framed] [FILE|-]")
		return 2
	}
	fs := flag.NewFlagSet("junction codec describe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	raw := fs.Bool("raw", false, "input is the message bytes, not hex text")
	framed := fs.Bool("framed", false, "input starts with the 2-byte length header")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: junction codec describe [--raw] [--framed] [FILE|-]

Decodes one ISO 8583:1987 ASCII message, given as hex text (default) or raw bytes,
from FILE or standard input, and prints it field by field with the PAN, track
data, PIN block and ICC data masked. A message that does not decode is reported
with the field at fault.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var in io.Reader = os.Stdin
	if name := fs.Arg(0); name != "" && name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fail(stderr, err)
		}
		defer f.Close()
		in = f
	}
	b, err := io.ReadAll(io.LimitReader(in, 1<<20))
	if err != nil {
		return fail(stderr, err)
	}
	if !*raw {
		b, err = hex.DecodeString(string(bytes.Join(bytes.Fields(b), nil)))
		if err != nil {
			return fail(stderr, fmt.Errorf("input is not hex (use --raw for bytes): %w", err))
		}
	}
	if *framed {
		if len(b) < 2 || int(b[0])<<8|int(b[1]) != len(b)-2 {
			return fail(stderr, fmt.Errorf("length header does not match the %d bytes that follow", max(len(b)-2, 0)))
		}
		b = b[2:]
	}
	m := codec.NewMessage(codec.ISO87ASCII())
	if err := m.Unpack(b); err != nil {
		codec.Describe(stdout, m) // what did decode
		return fail(stderr, err)
	}
	if err := codec.Describe(stdout, m); err != nil {
		return fail(stderr, err)
	}
	return 0
}
