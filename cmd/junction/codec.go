package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
)

const codecUsage = `usage: junction codec <describe|convert|check|export> [flags]

  describe  decode one message (hex by default) into a masked dump
  convert   convert one request from one dialect into another, to debug a map
  check     validate a dialect spec file (moov-io JSON or YAML) or a map file
  export    print a dialect as a moov-io JSON spec: a template for a bank's own

Dialects are the built-in ones (iso87ascii, iso87binary, iso93ascii) and those
a configuration (-c) loads from spec files.
`

func codecCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, codecUsage)
		return 2
	}
	switch args[0] {
	case "describe":
		return codecDescribe(args[1:], stdout, stderr)
	case "convert":
		return codecConvert(args[1:], stdout, stderr)
	case "check":
		return codecCheck(args[1:], stdout, stderr)
	case "export":
		return codecExport(args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, codecUsage)
	return 2
}

// codecFlags are the flags the codec subcommands share.
type codecFlags struct {
	config  *string
	raw     *bool
	framing *string
}

func newCodecFlags(fs *flag.FlagSet) codecFlags {
	f := codecFlags{
		config:  fs.String("c", "", "configuration whose dialects (spec files) and maps to know besides the built-in ones"),
		raw:     fs.Bool("raw", false, "input is the message bytes, not hex text"),
		framing: fs.String("framing", "", "input starts with this frame length header: binary2, ascii4 or bcd2"),
	}
	fs.Bool("hex", true, "input is hex text (the default; spaces and newlines are ignored)")
	return f
}

func (f codecFlags) dialects() (allinone.Config, map[string]*codec.Dialect, error) {
	cfg, err := allinone.LoadConfig(*f.config)
	if err != nil {
		return cfg, nil, err
	}
	set, err := cfg.DialectSet()
	return cfg, set, err
}

// input reads one message from the file named by the first argument or
// standard input, as hex or raw, without or with a frame header.
func (f codecFlags) input(fs *flag.FlagSet) ([]byte, error) {
	var in io.Reader = os.Stdin
	if name := fs.Arg(0); name != "" && name != "-" {
		file, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		in = file
	}
	b, err := io.ReadAll(io.LimitReader(in, 1<<20))
	if err != nil {
		return nil, err
	}
	if !*f.raw {
		if b, err = hex.DecodeString(string(bytes.Join(bytes.Fields(b), nil))); err != nil {
			return nil, fmt.Errorf("input is not hex (use --raw for bytes): %w", err)
		}
	}
	if *f.framing != "" {
		l, err := codec.ParseLengthHeader(*f.framing)
		if err != nil {
			return nil, err
		}
		r, err := codec.NewFrameReader(bytes.NewReader(b), codec.Framing{Length: l}, len(b))
		if err != nil {
			return nil, err
		}
		_, msg, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("framing: %w", err)
		}
		b = msg
	}
	return b, nil
}

func pick(set map[string]*codec.Dialect, name string) (*codec.Dialect, error) {
	d, ok := set[name]
	if !ok {
		var names []string
		for n := range set {
			names = append(names, n)
		}
		return nil, fmt.Errorf("no dialect %q (known: %s)", name, strings.Join(names, ", "))
	}
	return d, nil
}

func codecDescribe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("junction codec describe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dialect := fs.String("dialect", "iso87ascii", "dialect of the message")
	f := newCodecFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: junction codec describe [--dialect D] [--hex|--raw] [--framing F] [FILE|-]

Decodes one message from FILE or standard input and prints it field by field:
number, name, value, with the PAN shown as first 6 / last 4 and track data, PIN
block, ICC data and expiry date hidden. A message that does not decode is
reported with the field at fault, after what did decode.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	_, set, err := f.dialects()
	if err != nil {
		return fail(stderr, err)
	}
	d, err := pick(set, *dialect)
	if err != nil {
		return fail(stderr, err)
	}
	b, err := f.input(fs)
	if err != nil {
		return fail(stderr, err)
	}
	m := codec.NewMessage(d)
	if err := m.Unpack(b); err != nil {
		codec.Describe(stdout, m) // what did decode
		return fail(stderr, err)
	}
	if err := codec.Describe(stdout, m); err != nil {
		return fail(stderr, err)
	}
	return 0
}

func codecConvert(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("junction codec convert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "dialect of the input request (required)")
	to := fs.String("to", "", "dialect to convert it into (required)")
	institution := fs.String("institution", "", "acquiring institution id, for maps that derive field 32")
	f := newCodecFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: junction codec convert --from D1 --to D2 [--hex|--raw] [FILE|-]

Converts one request as the switch would: dialects of the same layout (1987 ASCII
and binary) by copying, others through the map between them (built in, or from
the configuration's maps). Prints both messages masked and the converted one in
hex. For debugging maps.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *from == "" || *to == "" {
		fs.Usage()
		return 2
	}
	cfg, set, err := f.dialects()
	if err != nil {
		return fail(stderr, err)
	}
	src, err := pick(set, *from)
	if err != nil {
		return fail(stderr, err)
	}
	dst, err := pick(set, *to)
	if err != nil {
		return fail(stderr, err)
	}
	m, err := findMap(cfg, set, src, dst)
	if err != nil {
		return fail(stderr, err)
	}
	b, err := f.input(fs)
	if err != nil {
		return fail(stderr, err)
	}
	in, out := codec.NewMessage(src), codec.NewMessage(dst)
	if err := in.Unpack(b); err != nil {
		return fail(stderr, fmt.Errorf("input as %s: %w", src.Name(), err))
	}
	var saved codec.Saved
	if err := m.Request(out, in, &codec.Context{Now: time.Now(), Institution: *institution}, &saved); err != nil {
		return fail(stderr, fmt.Errorf("map %s: %w", m.Name(), err))
	}
	wire, err := out.Pack(nil)
	if err != nil {
		return fail(stderr, err)
	}
	codec.Describe(stdout, in)
	fmt.Fprintf(stdout, "-> map %s\n", m.Name())
	codec.Describe(stdout, out)
	fmt.Fprintf(stdout, "%X\n", wire)
	return 0
}

// findMap is the map the switch would use from src to dst.
func findMap(cfg allinone.Config, set map[string]*codec.Dialect, src, dst *codec.Dialect) (*codec.Map, error) {
	if src.SameLayout(dst) {
		return codec.CopyMap(src, dst)
	}
	maps, err := cfg.Maps(set)
	if err != nil {
		return nil, err
	}
	for _, m := range maps {
		if m.From().Name() == src.Name() && m.To().Name() == dst.Name() {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no map from %s to %s; write one (see the built-in maps in codec/maps)", src.Name(), dst.Name())
}

func codecCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("junction codec check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "name of the dialect a spec file defines (default: the file name)")
	version := fs.Int("version", 0, "MTI version of a spec file's messages: 1987, 1993, or 0 for any")
	asMap := fs.Bool("map", false, "FILE is a conversion map, checked against the known dialects")
	config := fs.String("c", "", "configuration whose dialects a map may name")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: junction codec check [--name N] [--version 1987|1993] SPEC_FILE
       junction codec check --map [-c FILE] MAP_FILE

Validates a dialect spec file (moov-io JSON or YAML) and lists what it defines,
or a conversion map file; every problem is reported, naming the field.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	file := fs.Arg(0)
	if file == "" {
		fs.Usage()
		return 2
	}
	if *asMap {
		cfg, err := allinone.LoadConfig(*config)
		if err != nil {
			return fail(stderr, err)
		}
		set, err := cfg.DialectSet()
		if err != nil {
			return fail(stderr, err)
		}
		m, err := codec.LoadMapFile(file, set)
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "map %s: %s -> %s: ok\n", m.Name(), m.From().Name(), m.To().Name())
		return 0
	}
	if *name == "" {
		base := file[strings.LastIndexAny(file, `/\`)+1:]
		*name = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(base, ".json"), ".yaml"), ".yml")
	}
	var v byte
	switch *version {
	case 0:
	case 1987:
		v = '0'
	case 1993:
		v = '1'
	default:
		return fail(stderr, errors.New("--version: want 1987, 1993 or 0"))
	}
	d, err := codec.LoadSpecFile(file, codec.SpecOptions{Name: *name, Version: v})
	if err != nil {
		return fail(stderr, err)
	}
	l := d.Layout()
	fmt.Fprintf(stdout, "dialect %s: MTI %s, bitmap %s, %d fields: ok\n", d.Name(), l.MTI, l.Bitmap, len(d.Fields()))
	for _, fd := range d.Fields() {
		length := fmt.Sprintf("%d", fd.Length)
		if fd.Prefix != codec.Fixed {
			length = fmt.Sprintf("..%d (%s length, %d)", fd.Length, fd.Prefix, fd.PrefixSize)
		}
		fmt.Fprintf(stdout, "  %3d  %-4s %-26s %-7s %s\n", fd.ID, fd.Class, length, fd.Enc, fd.Name)
	}
	return 0
}

func codecExport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("junction codec export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dialect := fs.String("dialect", "iso87binary", "dialect to export")
	config := fs.String("c", "", "configuration whose dialects to know besides the built-in ones")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	f := codecFlags{config: config}
	_, set, err := f.dialects()
	if err != nil {
		return fail(stderr, err)
	}
	d, err := pick(set, *dialect)
	if err != nil {
		return fail(stderr, err)
	}
	out, err := codec.ExportSpec(d)
	if err != nil {
		return fail(stderr, err)
	}
	stdout.Write(out)
	fmt.Fprintln(stdout)
	return 0
}
