package codec

import (
	"errors"
	"fmt"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

// MaxField is the highest data element a dialect can define: fields 1–128,
// primary and secondary bitmap. A tertiary bitmap (bit 65 set) is not
// supported and is refused as an undefined field.
const MaxField = 128

// Class is the ISO 8583 character class of a field's content. It decides what
// a field may hold, independent of how a dialect puts it on the wire.
type Class uint8

const (
	// ClassN is numeric: ASCII digits only.
	ClassN Class = iota + 1
	// ClassAN is alphanumeric; in practice printable ASCII, since issuers and
	// acquirers routinely send spaces in "an" fields.
	ClassAN
	// ClassANS is alphanumeric and special: printable ASCII.
	ClassANS
	// ClassZ is track data (digits, separators and sentinels): printable ASCII.
	ClassZ
	// ClassXN is a signed amount: 'C' or 'D' followed by digits.
	ClassXN
	// ClassB is binary: any byte values.
	ClassB
)

func (c Class) String() string {
	switch c {
	case ClassN:
		return "n"
	case ClassAN:
		return "an"
	case ClassANS:
		return "ans"
	case ClassZ:
		return "z"
	case ClassXN:
		return "x+n"
	case ClassB:
		return "b"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// kind groups classes by what they accept: an, ans and z are all printable
// text here, so content moves between them unchecked.
func (c Class) kind() Class {
	if c == ClassAN || c == ClassZ {
		return ClassANS
	}
	return c
}

// Encoding is how content travels on the wire. Inside a Message content is
// always canonical: text and digits as ASCII, binary as raw bytes.
type Encoding uint8

const (
	// EncASCII sends text content byte for byte.
	EncASCII Encoding = iota + 1
	// EncHex sends binary content as two uppercase hex characters per byte.
	EncHex
	// EncBinary sends binary content as raw bytes.
	EncBinary
	// EncBCD sends digits packed two per byte; an odd count is padded on the
	// left with a 0 nibble. Lengths count digits.
	EncBCD
)

func (e Encoding) String() string {
	switch e {
	case EncASCII:
		return "ascii"
	case EncHex:
		return "hex"
	case EncBinary:
		return "binary"
	case EncBCD:
		return "bcd"
	}
	return fmt.Sprintf("encoding(%d)", uint8(e))
}

// PrefixEnc is how a variable-length field announces its length. The length
// counts characters for text, digits for BCD and bytes for binary content.
type PrefixEnc uint8

const (
	// Fixed: no length indicator; the field is always Length long.
	Fixed PrefixEnc = iota
	// PrefixASCII: PrefixSize ASCII digits ("19" before a 19-digit PAN).
	PrefixASCII
	// PrefixBCD: PrefixSize digits in BCD, two per byte (LL: one byte).
	PrefixBCD
	// PrefixBinary: a big-endian unsigned integer of PrefixSize bytes.
	PrefixBinary
)

func (p PrefixEnc) String() string {
	switch p {
	case Fixed:
		return "fixed"
	case PrefixASCII:
		return "ascii"
	case PrefixBCD:
		return "bcd"
	case PrefixBinary:
		return "binary"
	}
	return fmt.Sprintf("prefix(%d)", uint8(p))
}

// Mask says how a field is shown in dumps and logs. Sensitive content never
// leaves the process unmasked: see Describe.
type Mask uint8

const (
	// MaskNone shows the content as it is.
	MaskNone Mask = iota
	// MaskCard shows at most the first six and the last four digits.
	MaskCard
	// MaskAll shows only the content's length (track data, PIN block, ICC
	// data, expiry date).
	MaskAll
)

// FieldDef defines one data element of a dialect.
type FieldDef struct {
	ID     int
	Name   string
	Class  Class
	Length int // fixed length, or maximum length of a variable field (characters, digits or bytes)
	// Prefix and PrefixSize say how a variable field's length is sent. The
	// size counts as moov-io's prefixers do: digits for ASCII and BCD (2 is
	// "LL"), bytes for binary.
	Prefix     PrefixEnc
	PrefixSize int
	Enc        Encoding
	Mask       Mask
	// NoEcho marks fields a response does not repeat from its request:
	// card-reading and security data (expiry, tracks, PIN, ICC, MACs) and
	// fields only a responder sets (38, 39, 44, 54).
	NoEcho bool
}

// fieldOp is what decoding needs of a FieldDef; class 0 marks an undefined
// field.
type fieldOp struct {
	max    uint16
	prefix PrefixEnc
	psize  uint8 // wire bytes of the length indicator
	bcdOdd bool  // a BCD indicator with an odd digit count: its first nibble pads
	enc    Encoding
	class  Class
}

// wireLen is the wire size of n units of content.
func (o *fieldOp) wireLen(n int) int {
	switch o.enc {
	case EncHex:
		return 2 * n
	case EncBCD:
		return (n + 1) / 2
	}
	return n
}

// prefixBytes is the wire size of the length indicator.
func (f *FieldDef) prefixBytes() int {
	switch f.Prefix {
	case PrefixASCII, PrefixBinary:
		return f.PrefixSize
	case PrefixBCD:
		return (f.PrefixSize + 1) / 2
	}
	return 0
}

// prefixMax is the largest length the indicator can carry.
func (f *FieldDef) prefixMax() int {
	m := 1
	switch f.Prefix {
	case PrefixASCII, PrefixBCD:
		for range f.PrefixSize {
			m *= 10
		}
	case PrefixBinary:
		for range f.PrefixSize {
			m *= 256
		}
	}
	return m - 1
}

// wireLen is the wire size of n units of content.
func (f *FieldDef) wireLen(n int) int {
	switch f.Enc {
	case EncHex:
		return 2 * n
	case EncBCD:
		return (n + 1) / 2
	}
	return n
}

// Layout is what a dialect says about a message as a whole.
type Layout struct {
	Name string
	// Version is the MTI version digit every message carries: '0' for ISO
	// 8583:1987, '1' for 1993. Zero accepts any digit.
	Version byte
	MTI     Encoding // EncASCII (4 characters) or EncBCD (2 bytes)
	Bitmap  Encoding // EncHex (16 characters per bitmap) or EncBinary (8 bytes)
}

// Dialect is one wire format of ISO 8583: a layout and a table of field
// definitions. The same table yields the moov-io MessageSpec used as the
// reference encoder (tests, fuzz oracle, spec export), so the fast codec in
// this package and moov-io cannot drift apart silently.
//
// A Dialect is immutable after NewDialect returns and safe for concurrent use.
type Dialect struct {
	layout Layout
	fields [MaxField + 1]FieldDef
	// ops is the field table cut down to what decoding reads, eight bytes a
	// field; the scanner's inline fast path reads it.
	ops  [MaxField + 1]fieldOp
	echo [2]uint64 // presence mask of the fields a response repeats
	spec *iso8583.MessageSpec
}

// NewDialect validates the layout and every field definition, reporting all
// problems at once, and builds the dialect.
func NewDialect(l Layout, defs []FieldDef) (*Dialect, error) {
	d := &Dialect{layout: l}
	var errs []error
	bad := func(err error) { errs = append(errs, fmt.Errorf("codec: dialect %q: %w", l.Name, err)) }
	if l.Name == "" {
		bad(errors.New("no name"))
	}
	if l.Version != 0 && (l.Version < '0' || l.Version > '9') {
		bad(fmt.Errorf("version %q is not a digit", l.Version))
	}
	if l.MTI != EncASCII && l.MTI != EncBCD {
		bad(fmt.Errorf("MTI encoding %s: want ascii or bcd", l.MTI))
	}
	if l.Bitmap != EncHex && l.Bitmap != EncBinary {
		bad(fmt.Errorf("bitmap encoding %s: want hex or binary", l.Bitmap))
	}
	for _, f := range defs {
		if err := checkDef(&f); err != nil {
			bad(err)
			continue
		}
		if d.fields[f.ID].ID != 0 {
			bad(fmt.Errorf("field %d defined twice", f.ID))
			continue
		}
		d.fields[f.ID] = f
		d.ops[f.ID] = fieldOp{
			max: uint16(f.Length), prefix: f.Prefix, psize: uint8(f.prefixBytes()),
			bcdOdd: f.Prefix == PrefixBCD && f.PrefixSize%2 == 1, enc: f.Enc, class: f.Class,
		}
		if !f.NoEcho {
			w, b := bit(f.ID)
			d.echo[w] |= b
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	d.spec = d.moovSpec()
	return d, nil
}

func checkDef(f *FieldDef) error {
	switch {
	case f.ID < 2 || f.ID > MaxField || f.ID == 65:
		// 1 and 65 are bitmap indicators, handled by the codec itself.
		return fmt.Errorf("field %d: id must be 2–128 and not 65", f.ID)
	case f.Length <= 0 || f.Length > MaxFrame:
		// Bounded first, so that the wire-size arithmetic below cannot wrap.
		return fmt.Errorf("field %d: length %d must be 1–%d", f.ID, f.Length, MaxFrame)
	case f.Class < ClassN || f.Class > ClassB:
		return fmt.Errorf("field %d: unknown class %d", f.ID, f.Class)
	case f.Enc < EncASCII || f.Enc > EncBCD:
		return fmt.Errorf("field %d: unknown encoding %d", f.ID, f.Enc)
	case (f.Class == ClassB) != (f.Enc == EncHex || f.Enc == EncBinary):
		return fmt.Errorf("field %d: class %s cannot use encoding %s", f.ID, f.Class, f.Enc)
	case f.Enc == EncBCD && f.Class != ClassN:
		return fmt.Errorf("field %d: BCD carries digits only; class %s needs another encoding", f.ID, f.Class)
	case f.Prefix > PrefixBinary:
		return fmt.Errorf("field %d: unknown prefix %d", f.ID, f.Prefix)
	case f.Prefix == Fixed && f.PrefixSize != 0:
		return fmt.Errorf("field %d: a fixed field has no prefix size", f.ID)
	case f.Prefix != Fixed && (f.PrefixSize < 1 || f.PrefixSize > 4):
		return fmt.Errorf("field %d: prefix size %d must be 1–4", f.ID, f.PrefixSize)
	case f.Prefix != Fixed && f.Length > f.prefixMax():
		return fmt.Errorf("field %d: maximum length %d does not fit a %s prefix of size %d", f.ID, f.Length, f.Prefix, f.PrefixSize)
	case f.wireLen(f.Length)+f.prefixBytes() > MaxFrame:
		return fmt.Errorf("field %d: length %d cannot fit in a frame", f.ID, f.Length)
	}
	return nil
}

// Name is the dialect's name, e.g. "iso87ascii".
func (d *Dialect) Name() string { return d.layout.Name }

// Layout is the dialect's layout.
func (d *Dialect) Layout() Layout { return d.layout }

// Field returns the definition of field id, and false when the dialect does
// not define it.
func (d *Dialect) Field(id int) (FieldDef, bool) {
	if id < 0 || id > MaxField || d.fields[id].ID == 0 {
		return FieldDef{}, false
	}
	return d.fields[id], true
}

// Fields returns every field definition in ascending order.
func (d *Dialect) Fields() []FieldDef {
	var out []FieldDef
	for _, f := range d.fields {
		if f.ID != 0 {
			out = append(out, f)
		}
	}
	return out
}

// SameLayout reports whether messages of d and o carry the same fields with
// the same classes and lengths, so that canonical content moves between them
// unchanged and only the wire encoding differs (1987 ASCII and 1987 binary,
// say). Conversion between such dialects is a plain copy.
func (d *Dialect) SameLayout(o *Dialect) bool {
	if d.layout.Version != o.layout.Version {
		return false
	}
	for id := range d.fields {
		a, b := &d.fields[id], &o.fields[id]
		if a.ID != b.ID || a.Class.kind() != b.Class.kind() || a.Length != b.Length || (a.Prefix == Fixed) != (b.Prefix == Fixed) {
			return false
		}
	}
	return true
}

// Spec is the same dialect as a moov-io MessageSpec: the reference encoder.
// The returned spec is shared; do not modify it.
func (d *Dialect) Spec() *iso8583.MessageSpec { return d.spec }

// moovSpec expresses the field table with moov-io field types. Text fields are
// moov Strings (not Numerics: a Numeric drops the leading zeros of an LL
// field such as 32), binary fields are moov Binaries. No padding rules:
// fields keep their wire content exactly, so the two codecs can be compared
// byte for byte.
func (d *Dialect) moovSpec() *iso8583.MessageSpec {
	mti := &field.Spec{Length: 4, Description: "Message Type Indicator", Enc: encoding.ASCII, Pref: prefix.ASCII.Fixed}
	if d.layout.MTI == EncBCD {
		mti.Enc, mti.Pref = encoding.BCD, prefix.BCD.Fixed
	}
	bitmap := &field.Spec{Length: 8, Description: "Bitmap", Enc: encoding.BytesToASCIIHex, Pref: prefix.Hex.Fixed}
	if d.layout.Bitmap == EncBinary {
		bitmap.Enc, bitmap.Pref = encoding.Binary, prefix.Binary.Fixed
	}
	s := &iso8583.MessageSpec{
		Name:   d.layout.Name,
		Fields: map[int]field.Field{0: field.NewString(mti), 1: field.NewBitmap(bitmap)},
	}
	for i := range d.fields {
		f := &d.fields[i]
		if f.ID == 0 {
			continue
		}
		spec := &field.Spec{Length: f.Length, Description: f.Name, Pref: moovPrefix(f)}
		switch f.Enc {
		case EncASCII:
			spec.Enc = encoding.ASCII
			s.Fields[f.ID] = field.NewString(spec)
		case EncBCD:
			spec.Enc = encoding.BCD
			s.Fields[f.ID] = field.NewString(spec)
		case EncHex:
			spec.Enc = encoding.BytesToASCIIHex
			s.Fields[f.ID] = field.NewBinary(spec)
		case EncBinary:
			spec.Enc = encoding.Binary
			s.Fields[f.ID] = field.NewBinary(spec)
		}
	}
	return s
}

func moovPrefix(f *FieldDef) prefix.Prefixer {
	var set prefix.Prefixers
	switch f.Prefix {
	case Fixed:
		switch f.Enc {
		case EncBCD:
			return prefix.BCD.Fixed
		case EncBinary:
			return prefix.Binary.Fixed
		}
		// ASCII.Fixed also for hex content, not Hex.Fixed: moov's Hex.Fixed
		// counts hex digits when packing but bytes when unpacking.
		return prefix.ASCII.Fixed
	case PrefixASCII:
		set = prefix.ASCII
	case PrefixBCD:
		set = prefix.BCD
	case PrefixBinary:
		set = prefix.Binary
	}
	return [...]prefix.Prefixer{1: set.L, 2: set.LL, 3: set.LLL, 4: set.LLLL}[f.PrefixSize]
}
