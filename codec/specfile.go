package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/padding"
	"github.com/moov-io/iso8583/specs"
	"gopkg.in/yaml.v3"
)

// Spec files let an operator add a bank's dialect without writing Go: the
// field table in moov-io's spec format (specs.ImportJSON, specs.ImportYAML),
// the format moov-io users already write and that ExportSpec produces as a
// starting point. The file says how each field travels; what it cannot say
// (the dialect's name and MTI version, which fields are card numbers or PIN
// blocks) comes from SpecOptions and from the field numbers.

// SpecOptions says what a spec file cannot: the dialect's name and MTI version digit.
type SpecOptions struct {
	Name    string // dialect name; required
	Version byte   // '0' (1987), '1' (1993) or 0 to accept any version digit
}

// LoadSpec builds a Dialect from a moov-io spec in JSON or YAML (detected from the content).
//
// Every problem is reported, not only the first: each error names the field
// and what is wrong with it. What the codec cannot do is refused rather than
// approximated: composite fields, track types, EBCDIC, hex length prefixes,
// padding on variable-length fields, a 16-byte bitmap, field 65 and fields
// above 128. Masking and echo rules come from the field number, as in
// ISO87ASCII (see isoConventions).
func LoadSpec(raw []byte, o SpecOptions) (*Dialect, error) {
	if o.Name == "" {
		return nil, errors.New("codec: spec: no dialect name (SpecOptions.Name)")
	}
	sf, err := decodeSpec(raw)
	if err != nil {
		return nil, fmt.Errorf("codec: spec %q: %w", o.Name, err)
	}
	l := specLoader{name: o.Name}
	// A layout part the file gets wrong is reported by the loader and left
	// at a valid default here, so that NewDialect reports only what the
	// loader did not check.
	layout := Layout{Name: o.Name, Version: o.Version, MTI: EncASCII, Bitmap: EncHex}
	defs := l.load(sf, &layout)
	d, err := NewDialect(layout, defs)
	if err != nil {
		l.errs = append(l.errs, err)
	}
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return d, nil
}

// LoadSpecFile reads path and calls LoadSpec; errors name the file.
func LoadSpecFile(path string, o SpecOptions) (*Dialect, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("codec: spec file: %w", err) // a PathError names the file
	}
	d, err := LoadSpec(raw, o)
	if err != nil {
		// Each problem on its own line, each line naming the file.
		var errs []error
		for _, e := range flatten(err) {
			errs = append(errs, fmt.Errorf("%s: %w", path, e))
		}
		return nil, errors.Join(errs...)
	}
	return d, nil
}

// flatten lists the errors joined in err, recursively.
func flatten(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}

// ExportSpec writes d as a moov-io JSON spec (a template for an operator's own dialect).
//
// It is d.Spec() with numeric fields written as moov-io Numerics (fixed ones
// with a left '0' padding, which is what moov-io needs to pack an integer to
// the full width), so that LoadSpec gives them back their digit check. The
// format has no other character classes: an, z and x+n fields come back as
// ans. Used with moov-io itself, a Numeric holds an int64 (18 digits are
// safe) and a variable-length one loses its leading zeros; Dialect.Spec is
// the byte-exact moov-io equivalent of a dialect.
func ExportSpec(d *Dialect) ([]byte, error) {
	ref := d.Spec()
	s := &iso8583.MessageSpec{Name: ref.Name, Fields: make(map[int]field.Field, len(ref.Fields))}
	for id, f := range ref.Fields {
		s.Fields[id] = f
	}
	for _, f := range d.Fields() {
		if f.Class != ClassN {
			continue
		}
		spec := *ref.Fields[f.ID].Spec() // a copy: the reference spec is shared
		if f.Prefix == Fixed {
			spec.Pad = padding.Left('0')
		}
		s.Fields[f.ID] = field.NewNumeric(&spec)
	}
	out, err := specs.ExportJSON(s)
	if err != nil {
		return nil, fmt.Errorf("codec: export dialect %q: %w", d.Name(), err)
	}
	return out, nil
}

// specFile is moov-io's spec format, decoded strictly: a key moov-io would
// silently ignore is refused here, because a misspelt "prefix" would
// silently change the wire format.
type specFile struct {
	Name   string                `json:"name" yaml:"name"` // moov-io's description of the spec; SpecOptions.Name names the dialect
	Fields map[string]*specField `json:"fields" yaml:"fields"`
}

type specField struct {
	Type        string       `json:"type" yaml:"type"`
	Length      int          `json:"length" yaml:"length"`
	Description string       `json:"description" yaml:"description"`
	Enc         string       `json:"enc" yaml:"enc"`
	Prefix      string       `json:"prefix" yaml:"prefix"`
	Padding     *specPadding `json:"padding" yaml:"padding"`
	// Tag, Subfields and Bitmap describe composite fields, refused for now:
	// they are decoded only to be recognised.
	Tag               any            `json:"tag" yaml:"tag"`
	Subfields         map[string]any `json:"subfields" yaml:"subfields"`
	Bitmap            any            `json:"bitmap" yaml:"bitmap"`
	DisableAutoExpand bool           `json:"disableAutoExpand" yaml:"disableAutoExpand"`
}

type specPadding struct {
	Type string `json:"type" yaml:"type"`
	Pad  string `json:"pad" yaml:"pad"`
}

func (f *specField) composite() bool {
	return f.Type == "Composite" || len(f.Subfields) > 0 || f.Tag != nil || f.Bitmap != nil
}

// decodeSpec reads a spec as JSON when it starts with '{', as YAML otherwise
// (so a YAML file in flow style from its first character is read as JSON:
// falling back to YAML would turn a JSON typo into a puzzling YAML error).
func decodeSpec(raw []byte) (*specFile, error) {
	raw = bytes.TrimSpace(bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))) // some editors write a BOM
	if len(raw) == 0 {
		return nil, errors.New("empty spec")
	}
	var sf specFile
	if raw[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sf); err != nil {
			return nil, fmt.Errorf("not a moov-io JSON spec: %w", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, errors.New("not a moov-io JSON spec: data after the JSON object")
		}
	} else {
		// Check the shape first: decoding text that is not a mapping into a
		// struct gives an error that quotes the text, and a file passed by
		// mistake may hold anything.
		var root yaml.Node
		if err := yaml.Unmarshal(raw, &root); err != nil {
			return nil, fmt.Errorf("not a moov-io spec in JSON or YAML: %w", err)
		}
		if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
			return nil, errors.New("not a moov-io spec in JSON or YAML: want an object with \"fields\"")
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&sf); err != nil {
			return nil, fmt.Errorf("not a moov-io YAML spec: %w", err)
		}
	}
	if len(sf.Fields) == 0 {
		return nil, errors.New("no fields")
	}
	return &sf, nil
}

// specLoader turns a decoded spec into field definitions, collecting every
// problem on the way.
type specLoader struct {
	name string
	errs []error
}

func (l *specLoader) bad(id int, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("codec: spec %q: field %d: %s", l.name, id, fmt.Sprintf(format, args...)))
}

// load maps every field of sf, setting the MTI and bitmap encodings in
// layout, and returns the data field definitions that mapped cleanly.
func (l *specLoader) load(sf *specFile, layout *Layout) []FieldDef {
	type entry struct {
		id  int
		key string
		f   *specField
	}
	keys := make([]string, 0, len(sf.Fields))
	for k := range sf.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var entries []entry
	for _, k := range keys {
		// Atoi, as moov-io's importer does: "02" is field 2.
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 {
			l.errs = append(l.errs, fmt.Errorf("codec: spec %q: field %q: not a field number", l.name, k))
			continue
		}
		entries = append(entries, entry{id, k, sf.Fields[k]})
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].id < entries[j].id })

	var defs []FieldDef
	seen := map[int]string{}
	for _, e := range entries {
		if first, dup := seen[e.id]; dup {
			l.bad(e.id, "defined twice (as %q and %q)", first, e.key)
			continue
		}
		seen[e.id] = e.key
		switch {
		case e.f == nil:
			l.bad(e.id, "empty definition")
		case e.f.composite():
			l.bad(e.id, "composite fields are not supported yet")
		case e.id == 0:
			layout.MTI = l.mti(e.f)
		case e.id == 1:
			layout.Bitmap = l.bitmap(e.f)
		case e.id == 65:
			l.bad(e.id, "bit 65 announces a tertiary bitmap, which the codec does not read: data fields are 2–64 and 66–128")
		case e.id > MaxField:
			l.bad(e.id, "above %d: the codec reads a primary and a secondary bitmap only", MaxField)
		default:
			if def, ok := l.field(e.id, e.f); ok {
				defs = append(defs, def)
			}
		}
	}
	if _, ok := seen[0]; !ok {
		l.bad(0, "missing: the MTI needs a String of length 4, encoding ASCII or BCD")
	}
	if _, ok := seen[1]; !ok {
		l.bad(1, "missing: the bitmap needs a Bitmap of length 8, encoding HexToASCII or Binary")
	}
	return defs
}

func (l *specLoader) mti(f *specField) Encoding {
	if f.Type != "String" && f.Type != "Numeric" {
		l.bad(0, "type %q: the MTI is a String or a Numeric", f.Type)
	}
	if f.Length != 4 {
		l.bad(0, "length %d: the MTI has 4 digits", f.Length)
	}
	if p, _, err := specPrefix(f.Prefix); err != nil || p != Fixed || f.Prefix == "Hex.Fixed" {
		l.bad(0, "prefix %q: the MTI has no length prefix (ASCII.Fixed or BCD.Fixed)", f.Prefix)
	}
	switch f.Enc {
	case "ASCII":
		return EncASCII
	case "BCD":
		return EncBCD
	}
	l.bad(0, "encoding %q: the MTI is ASCII or BCD", f.Enc)
	return EncASCII
}

func (l *specLoader) bitmap(f *specField) Encoding {
	if f.Type != "Bitmap" {
		l.bad(1, "type %q: field 1 is the Bitmap", f.Type)
	}
	switch f.Length {
	case 8:
	case 16:
		// moov-io's own spec87ascii does this.
		l.bad(1, "length 16 is one 16-byte bitmap sent whole in every message; "+
			"the codec reads an 8-byte primary bitmap and an 8-byte secondary one only when bit 1 is set, "+
			"which is length 8 in moov-io")
	default:
		l.bad(1, "length %d: the codec reads 8-byte primary and secondary bitmaps (length 8)", f.Length)
	}
	if f.DisableAutoExpand {
		l.bad(1, "disableAutoExpand is not supported: the codec reads a secondary bitmap whenever bit 1 is set")
	}
	if p, _, err := specPrefix(f.Prefix); err != nil || p != Fixed {
		l.bad(1, "prefix %q: the bitmap has no length prefix (Hex.Fixed or Binary.Fixed)", f.Prefix)
	}
	switch f.Enc {
	case "HexToASCII":
		return EncHex
	case "Binary":
		return EncBinary
	}
	l.bad(1, "encoding %q: the bitmap is HexToASCII (16 hex characters) or Binary (8 bytes)", f.Enc)
	return EncHex
}

// field maps a data field. It reports every problem it finds and returns
// false after any.
func (l *specLoader) field(id int, f *specField) (FieldDef, bool) {
	ok := true
	bad := func(format string, args ...any) {
		l.bad(id, format, args...)
		ok = false
	}
	def := FieldDef{ID: id, Name: f.Description, Length: f.Length}
	if def.Name == "" {
		def.Name = fmt.Sprintf("Field %d", id)
	}
	def.Mask, def.NoEcho = isoConventions(id)

	enc, encErr := specEncoding(f.Enc)
	if encErr != nil {
		bad("%v", encErr)
	}
	def.Enc = enc

	var prefixErr error
	if def.Prefix, def.PrefixSize, prefixErr = specPrefix(f.Prefix); prefixErr != nil {
		bad("%v", prefixErr)
	} else if f.Prefix == "Hex.Fixed" && f.Enc != "HexToASCII" {
		// Hex.Fixed counts bytes shown as two hex characters each; it means
		// nothing for other encodings.
		bad("prefix Hex.Fixed goes with encoding HexToASCII only, not %q", f.Enc)
	}

	switch f.Type {
	case "Numeric", "String":
		// A Numeric of variable length is accepted, with one difference:
		// moov-io turns it into an integer and drops its leading zeros
		// ("00012" goes out as "12"), while Junction keeps content as sent.
		if encErr == nil {
			switch {
			case enc == EncBCD || enc == EncASCII && f.Type == "Numeric":
				def.Class = ClassN
			case enc == EncASCII:
				def.Class = ClassANS
			default:
				bad("type %s carries text: use encoding ASCII (or BCD for digits), not %s; binary content is type Binary", f.Type, f.Enc)
			}
		}
	case "Binary", "Hex":
		// moov-io's Hex holds its value as a hex string but puts the same
		// bytes on the wire as Binary.
		if encErr == nil {
			if enc != EncBinary && enc != EncHex {
				bad("type %s carries bytes: use encoding Binary or HexToASCII, not %s", f.Type, f.Enc)
			}
			def.Class = ClassB
		}
	case "Track1", "Track2", "Track3":
		bad("type %s is not supported (use String with ASCII encoding)", f.Type)
	case "Bitmap":
		bad("type Bitmap belongs to field 1 only")
	case "":
		bad("no type (String, Numeric, Binary or Hex)")
	default:
		bad("unknown type %q (String, Numeric, Binary or Hex)", f.Type)
	}

	// NewDialect checks lengths against prefixes and the frame, but its
	// arithmetic assumes a length that fits a frame in the first place.
	if f.Length <= 0 {
		bad("length %d must be positive", f.Length)
	} else if f.Length > MaxFrame {
		bad("length %d does not fit a frame of %d bytes", f.Length, MaxFrame)
	}

	// Padding is ignored on fixed-length fields: Junction's content is always
	// exactly the fixed length, so a left '0' pad of a fixed numeric (or a
	// right ' ' pad of a fixed text) is already part of what the wire holds.
	// On a variable-length field moov-io would pad to the maximum length and
	// strip the pad on reading, which Junction does not do.
	if f.Padding != nil && f.Padding.Type != "None" && def.Prefix != Fixed && prefixErr == nil {
		bad("padding on a variable-length field is not supported: the codec keeps content as sent")
	}
	return def, ok
}

// specEncoding maps a moov-io encoding name.
func specEncoding(name string) (Encoding, error) {
	switch name {
	case "ASCII":
		return EncASCII, nil
	case "BCD":
		return EncBCD, nil
	case "Binary":
		return EncBinary, nil
	case "HexToASCII":
		return EncHex, nil
	case "":
		return 0, errors.New("no encoding (ASCII, BCD, Binary or HexToASCII)")
	}
	if _, known := specs.EncodingsExtToInt[name]; known {
		return 0, fmt.Errorf("encoding %s is not supported (ASCII, BCD, Binary or HexToASCII)", name)
	}
	return 0, fmt.Errorf("unknown encoding %q (ASCII, BCD, Binary or HexToASCII)", name)
}

// specPrefix maps a moov-io prefix name. Every Fixed prefix means the same
// thing, no length indicator (moov-io's Hex.Fixed counts bytes shown as hex;
// field checks that it comes with hex content).
func specPrefix(name string) (PrefixEnc, int, error) {
	const want = "(ASCII, BCD or Binary .Fixed, .L, .LL, .LLL or .LLLL)"
	set, ls, _ := strings.Cut(name, ".")
	var p PrefixEnc
	switch set {
	case "ASCII":
		p = PrefixASCII
	case "BCD":
		p = PrefixBCD
	case "Binary":
		p = PrefixBinary
	}
	switch {
	case name == "Hex.Fixed", p != Fixed && ls == "Fixed":
		return Fixed, 0, nil
	case p != Fixed && len(ls) >= 1 && len(ls) <= 4 && strings.Count(ls, "L") == len(ls):
		return p, len(ls), nil
	case name == "":
		return Fixed, 0, errors.New("no prefix " + want)
	}
	if _, known := specs.PrefixesExtToInt[name]; known {
		return Fixed, 0, fmt.Errorf("prefix %s is not supported %s", name, want)
	}
	return Fixed, 0, fmt.Errorf("unknown prefix %q %s", name, want)
}

// isoConventions is how ISO87ASCII masks and echoes field id, for a dialect
// whose table comes from a file: a spec file says how a field travels, not
// whether it holds a card number or a PIN block. The fields that need
// masking are the same in 1987 and 1993 (card numbers 2, 34, 102, 103;
// expiry, tracks, PIN block and ICC data). ISO93ASCII echoes two fields
// this does not: 23, the card sequence number, and 26, the PIN capture code
// in 1987 but the business code in 1993. Not echoing is kept for both, being
// the cautious choice when the version is unknown: a responder can still set
// such a field itself, whereas an echo nobody wanted would go out unnoticed.
func isoConventions(id int) (Mask, bool) {
	mask := MaskNone
	switch id {
	case 2, 34, 102, 103:
		mask = MaskCard
	case 14, 35, 36, 45, 52, 55:
		mask = MaskAll
	}
	switch id {
	case 14, 22, 23, 26, // card data and how it was read
		35, 36, 45, 55, // tracks and ICC data
		52, 53, 64, 96, 128, // PIN, security control, MACs
		38, 39, 44, 54: // set by the responder only
		return mask, true
	}
	return mask, false
}
