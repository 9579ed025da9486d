package allinone

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/junction-switch/junction/codec"
)

// Wire is how one channel speaks: its dialect, its framing, the fixed
// header a client of the channel puts on its requests, and the map that
// converts its messages into the switch's dialect when their layouts differ.
type Wire struct {
	Dialect *codec.Dialect
	Framing codec.Framing
	Header  []byte
	Inbound *codec.Map // nil when the dialect shares the switch's layout
	// Outbound converts from the switch's dialect into the channel's: what a
	// client that builds requests in 1987 terms (junction send, the load
	// generator) uses to speak the channel. Nil when Inbound is.
	Outbound *codec.Map
}

// SwitchDialect is the dialect the switch and its ledger hosts work in.
const SwitchDialect = "iso87ascii"

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

// Maps are the conversion maps between the dialects of set: the built-in
// ones and those of the configuration's map files.
func (c Config) Maps(set map[string]*codec.Dialect) ([]*codec.Map, error) {
	maps, err := codec.BuiltinMaps(set)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, f := range c.MapFiles {
		m, err := codec.LoadMapFile(f, set)
		if err != nil {
			errs = append(errs, fmt.Errorf("maps[%d]: %w", i, err))
			continue
		}
		maps = append(maps, m)
	}
	return maps, errors.Join(errs...)
}

// Wires resolves every channel's dialect, framing and inbound map,
// reporting every problem with its key. The dialects come from set, so
// that one process shares one instance of each.
func (c Config) Wires(set map[string]*codec.Dialect) (map[string]Wire, error) {
	var errs []error
	maps, err := c.Maps(set)
	if err != nil {
		errs = append(errs, err)
	}
	internal := set[SwitchDialect]
	wires := map[string]Wire{}
	for i, ch := range c.Channels {
		key := fmt.Sprintf("channels[%d]", i)
		w, err := ch.wire(set, c.Limits.MaxFrame)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		if !w.Dialect.SameLayout(internal) {
			for _, m := range maps {
				if m.From().Name() == w.Dialect.Name() && m.To().SameLayout(internal) {
					w.Inbound = m
				}
				if m.To().Name() == w.Dialect.Name() && m.From().SameLayout(internal) {
					w.Outbound = m
				}
			}
			if w.Inbound == nil {
				errs = append(errs, fmt.Errorf("%s.dialect: %s differs in layout from the switch's %s and no map converts it (add one under maps)",
					key, w.Dialect.Name(), SwitchDialect))
				continue
			}
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
