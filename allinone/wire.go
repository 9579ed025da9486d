package allinone

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/junction-switch/junction/codec"
)

// Wire is how one channel speaks: its dialect, its framing, and the fixed
// header a client of the channel puts on its requests.
type Wire struct {
	Dialect *codec.Dialect
	Framing codec.Framing
	Header  []byte
}

// DialectSet resolves dialect names: the built-in dialects and those the
// configuration loads from spec files. Spec files are read once, here.
func (c Config) DialectSet() (map[string]*codec.Dialect, error) {
	set := map[string]*codec.Dialect{}
	for _, name := range codec.BuiltinNames() {
		set[name], _ = codec.Builtin(name)
	}
	var errs []error
	for i, df := range c.Dialects {
		key := fmt.Sprintf("dialects[%d]", i)
		var version byte
		switch df.Version {
		case 0:
		case 1987:
			version = '0'
		case 1993:
			version = '1'
		default:
			errs = append(errs, fmt.Errorf("%s.version: %d: want 1987, 1993 or nothing", key, df.Version))
			continue
		}
		if _, dup := set[df.Name]; dup || !channelName.MatchString(df.Name) {
			errs = append(errs, fmt.Errorf("%s.name: %q is taken or not lowercase letters, digits and dashes", key, df.Name))
			continue
		}
		d, err := codec.LoadSpecFile(df.File, codec.SpecOptions{Name: df.Name, Version: version})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		set[df.Name] = d
	}
	return set, errors.Join(errs...)
}

// Wires resolves every channel's dialect and framing, reporting every
// problem with its key.
func (c Config) Wires() (map[string]Wire, error) {
	dialects, err := c.DialectSet()
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	wires := map[string]Wire{}
	for i, ch := range c.Channels {
		key := fmt.Sprintf("channels[%d]", i)
		w, err := ch.wire(dialects, c.Limits.MaxFrame)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		wires[ch.Name] = w
	}
	return wires, errors.Join(errs...)
}

func (ch Channel) wire(dialects map[string]*codec.Dialect, maxFrame int) (Wire, error) {
	var w Wire
	name := ch.Dialect
	if name == "" {
		name = "iso87ascii"
	}
	d, ok := dialects[name]
	if !ok {
		return w, fmt.Errorf("dialect: %q is neither built in (%v) nor loaded from dialects", name, codec.BuiltinNames())
	}
	w.Dialect = d
	length := ch.Framing.Length
	if length == "" {
		length = codec.Len2Binary.String()
	}
	l, err := codec.ParseLengthHeader(length)
	if err != nil {
		return w, fmt.Errorf("framing.length: %w", err)
	}
	w.Framing = codec.Framing{Length: l, Header: ch.Framing.Header, Max: maxFrame}
	switch ch.Framing.Mirror {
	case "", "echo":
	case "tpdu":
		w.Framing.Mirror = codec.MirrorTPDU
	default:
		return w, fmt.Errorf("framing.mirror: %q: want echo or tpdu", ch.Framing.Mirror)
	}
	if err := w.Framing.Validate(); err != nil {
		return w, fmt.Errorf("framing: %w", err)
	}
	w.Header = make([]byte, w.Framing.Header)
	if ch.Framing.TPDU != "" {
		h, err := hex.DecodeString(ch.Framing.TPDU)
		if err != nil || len(h) != w.Framing.Header {
			return w, fmt.Errorf("framing.tpdu: %q must be %d bytes in hex", ch.Framing.TPDU, w.Framing.Header)
		}
		w.Header = h
	}
	return w, nil
}
