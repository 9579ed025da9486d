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

// Encoding is how a field's content travels on the wire.
type Encoding uint8

const (
	// EncASCII sends text content byte for byte.
	EncASCII Encoding = iota + 1
	// EncHex sends binary content as two uppercase hex characters per byte.
	EncHex
	// EncBinary sends binary content as raw bytes.
	EncBinary
)

// Prefix is a field's length indicator: none for fixed-length fields, or a
// number of ASCII digits giving the content length that follows.
type Prefix uint8

const (
	Fixed Prefix = iota
	LL
	LLL
)

// Digits is the number of ASCII length digits in front of the content.
func (p Prefix) Digits() int {
	switch p {
	case LL:
		return 2
	case LLL:
		return 3
	}
	return 0
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
	Length int // fixed length, or maximum length for LL/LLL; in characters for text, bytes for binary
	Prefix Prefix
	Enc    Encoding
	Mask   Mask
	// NoEcho marks fields a response does not repeat from its request:
	// card-reading and security data (expiry, tracks, PIN, ICC, MACs) and
	// fields only a responder sets (38, 39, 44, 54).
	NoEcho bool
}

// Dialect is one wire format of ISO 8583: a message version and a table of
// field definitions. The same table yields the moov-io MessageSpec used as the
// reference encoder (tests, fuzz oracle, spec export), so the fast codec in
// this package and moov-io cannot drift apart silently.
//
// A Dialect is immutable after NewDialect returns and safe for concurrent use.
type Dialect struct {
	name    string
	version byte // first MTI digit: '0' for ISO 8583:1987
	fields  [MaxField + 1]FieldDef
	echo    [2]uint64 // presence mask of the fields a response repeats
	spec    *iso8583.MessageSpec
}

// NewDialect validates defs and builds a dialect. version is the MTI version
// digit every message of this dialect carries ('0' for 1987, '1' for 1993).
func NewDialect(name string, version byte, defs []FieldDef) (*Dialect, error) {
	d := &Dialect{name: name, version: version}
	if version < '0' || version > '9' {
		return nil, fmt.Errorf("codec: dialect %q: version %q is not a digit", name, version)
	}
	var errs []error
	for _, f := range defs {
		if err := checkDef(f); err != nil {
			errs = append(errs, fmt.Errorf("codec: dialect %q: %w", name, err))
			continue
		}
		if d.fields[f.ID].ID != 0 {
			errs = append(errs, fmt.Errorf("codec: dialect %q: field %d defined twice", name, f.ID))
			continue
		}
		d.fields[f.ID] = f
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

func checkDef(f FieldDef) error {
	switch {
	case f.ID < 2 || f.ID > MaxField || f.ID == 65:
		// 1 and 65 are bitmap indicators, handled by the codec itself.
		return fmt.Errorf("field %d: id must be 2–128 and not 65", f.ID)
	case f.Length <= 0:
		return fmt.Errorf("field %d: length %d must be positive", f.ID, f.Length)
	case f.Prefix == LL && f.Length > 99, f.Prefix == LLL && f.Length > 999:
		return fmt.Errorf("field %d: length %d does not fit its %d-digit prefix", f.ID, f.Length, f.Prefix.Digits())
	case f.Prefix > LLL:
		return fmt.Errorf("field %d: unknown prefix %d", f.ID, f.Prefix)
	case f.Class < ClassN || f.Class > ClassB:
		return fmt.Errorf("field %d: unknown class %d", f.ID, f.Class)
	case (f.Class == ClassB) != (f.Enc == EncHex || f.Enc == EncBinary):
		return fmt.Errorf("field %d: class %s cannot use encoding %d", f.ID, f.Class, f.Enc)
	case f.Enc < EncASCII || f.Enc > EncBinary:
		return fmt.Errorf("field %d: unknown encoding %d", f.ID, f.Enc)
	case f.Enc == EncHex && f.Prefix != Fixed:
		return fmt.Errorf("field %d: hex-encoded fields must be fixed length", f.ID)
	}
	return nil
}

// Name is the dialect's name, e.g. "iso87ascii".
func (d *Dialect) Name() string { return d.name }

// Field returns the definition of field id, and false when the dialect does
// not define it.
func (d *Dialect) Field(id int) (FieldDef, bool) {
	if id < 0 || id > MaxField || d.fields[id].ID == 0 {
		return FieldDef{}, false
	}
	return d.fields[id], true
}

// Spec is the same dialect as a moov-io MessageSpec: the reference encoder.
// The returned spec is shared; do not modify it.
func (d *Dialect) Spec() *iso8583.MessageSpec { return d.spec }

// moovSpec expresses the field table with moov-io field types. Text fields are
// moov Strings (not Numerics: a Numeric drops the leading zeros of an LL
// field such as 32), binary fields are moov Binaries.
func (d *Dialect) moovSpec() *iso8583.MessageSpec {
	s := &iso8583.MessageSpec{
		Name: d.name,
		Fields: map[int]field.Field{
			0: field.NewString(&field.Spec{
				Length: 4, Description: "Message Type Indicator",
				Enc: encoding.ASCII, Pref: prefix.ASCII.Fixed,
			}),
			1: field.NewBitmap(&field.Spec{
				Length: 8, Description: "Bitmap",
				Enc: encoding.BytesToASCIIHex, Pref: prefix.Hex.Fixed,
			}),
		},
	}
	for _, f := range d.fields {
		if f.ID == 0 {
			continue
		}
		// No padding rules: fields keep their wire content exactly, so the
		// two codecs can be compared byte for byte.
		spec := &field.Spec{Length: f.Length, Description: f.Name}
		switch f.Prefix {
		case Fixed:
			spec.Pref = prefix.ASCII.Fixed
		case LL:
			spec.Pref = prefix.ASCII.LL
		case LLL:
			spec.Pref = prefix.ASCII.LLL
		}
		switch f.Enc {
		case EncASCII:
			spec.Enc = encoding.ASCII
			s.Fields[f.ID] = field.NewString(spec)
		case EncHex:
			// ASCII.Fixed, not Hex.Fixed: moov's Hex.Fixed counts hex digits
			// when packing but bytes when unpacking.
			spec.Enc = encoding.BytesToASCIIHex
			s.Fields[f.ID] = field.NewBinary(spec)
		case EncBinary:
			spec.Enc = encoding.Binary
			s.Fields[f.ID] = field.NewBinary(spec)
		}
	}
	return s
}
