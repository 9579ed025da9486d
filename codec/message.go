package codec

import (
	"math/bits"
	"strconv"
)

// span locates one field's content inside Message.buf.
type span struct{ off, len uint32 }

// Message is one ISO 8583 message held flat: the MTI, a presence bitmap and,
// per field, where its content sits in one byte buffer. Content is kept in
// canonical form whatever the wire encoding: text fields as ASCII, binary
// fields as raw bytes.
//
// A Message is built for reuse: Reset and Unpack keep the buffer, so a message
// taken from a pool decodes and encodes without allocating. It is not safe for
// concurrent use.
type Message struct {
	d      *Dialect
	mti    [4]byte
	hasMTI bool
	set    [2]uint64 // presence: field i is bit 63-((i-1)%64) of set[(i-1)/64]
	spans  [MaxField + 1]span
	buf    []byte
}

// NewMessage returns an empty message of dialect d.
func NewMessage(d *Dialect) *Message {
	m := &Message{}
	m.Reset(d)
	return m
}

// Reset empties m and gives it dialect d, keeping its buffer for reuse.
func (m *Message) Reset(d *Dialect) {
	m.d = d
	m.hasMTI = false
	m.mti = [4]byte{}
	m.set = [2]uint64{}
	m.buf = m.buf[:0]
	// spans of absent fields are never read: no need to clear them.
}

// Dialect is the dialect m was last reset or unpacked with.
func (m *Message) Dialect() *Dialect { return m.d }

// MTI returns the message type indicator, and false when none is set.
func (m *Message) MTI() ([4]byte, bool) { return m.mti, m.hasMTI }

// MTIString returns the MTI as a string ("" when none is set). It allocates;
// use MTI on hot paths.
func (m *Message) MTIString() string {
	if !m.hasMTI {
		return ""
	}
	return string(m.mti[:])
}

// SetMTI sets the message type indicator. It must be four digits starting
// with the dialect's version digit.
func (m *Message) SetMTI(mti [4]byte) error {
	if m.d == nil {
		return ErrNoDialect
	}
	if !m.d.validMTI(mti[:]) {
		return ErrMTI
	}
	m.mti, m.hasMTI = mti, true
	return nil
}

func (d *Dialect) validMTI(b []byte) bool {
	return len(b) >= 4 && b[0] == d.version && isDigit(b[1]) && isDigit(b[2]) && isDigit(b[3])
}

func bit(id int) (word int, mask uint64) {
	return (id - 1) / 64, 1 << (63 - uint((id-1)%64))
}

// Has reports whether field id is present.
func (m *Message) Has(id int) bool {
	if id < 2 || id > MaxField {
		return false
	}
	w, b := bit(id)
	return m.set[w]&b != 0
}

// Get returns field id's content, or nil when the field is absent. The slice
// aliases the message's buffer: it stays valid until the next Reset or
// Unpack, and must not be modified.
func (m *Message) Get(id int) []byte {
	if !m.Has(id) {
		return nil
	}
	s := m.spans[id]
	return m.buf[s.off : s.off+s.len : s.off+s.len]
}

// Set sets field id to v after checking it against the field's definition:
// exact length for fixed fields, maximum length for LL/LLL fields, and the
// character class. v is copied.
func (m *Message) Set(id int, v []byte) error {
	f, err := m.def(id)
	if err != nil {
		return err
	}
	if err := f.check(v); err != nil {
		return &FieldError{Field: id, Err: err}
	}
	off := len(m.buf)
	m.buf = append(m.buf, v...)
	m.place(id, off, len(v))
	return nil
}

// SetString is Set for a string value, without converting it to a []byte.
func (m *Message) SetString(id int, v string) error {
	f, err := m.def(id)
	if err != nil {
		return err
	}
	off := len(m.buf)
	m.buf = append(m.buf, v...)
	if err := f.check(m.buf[off:]); err != nil {
		m.buf = m.buf[:off]
		return &FieldError{Field: id, Err: err}
	}
	m.place(id, off, len(v))
	return nil
}

// SetNumber sets a fixed-length numeric field to n, zero-padded to the
// field's length (an amount in field 4, a STAN in field 11).
func (m *Message) SetNumber(id int, n uint64) error {
	f, err := m.def(id)
	if err != nil {
		return err
	}
	if f.Class != ClassN || f.Prefix != Fixed {
		return &FieldError{Field: id, Err: ErrContent}
	}
	var digits [20]byte
	v := strconv.AppendUint(digits[:0], n, 10)
	if len(v) > f.Length {
		return &FieldError{Field: id, Err: ErrLength}
	}
	off := len(m.buf)
	for i := len(v); i < f.Length; i++ {
		m.buf = append(m.buf, '0')
	}
	m.buf = append(m.buf, v...)
	m.place(id, off, f.Length)
	return nil
}

// Copy sets field id to src's content of the same field, or removes it from
// m when src lacks it. Both messages must use dialects that define the field
// alike; Copy re-checks the content against m's dialect.
func (m *Message) Copy(src *Message, id int) error {
	if !src.Has(id) {
		m.Del(id)
		return nil
	}
	return m.Set(id, src.Get(id))
}

// Del removes field id.
func (m *Message) Del(id int) {
	if id < 2 || id > MaxField {
		return
	}
	w, b := bit(id)
	m.set[w] &^= b
}

// Each calls fn for every present field in ascending order.
func (m *Message) Each(fn func(id int, v []byte)) {
	for w := range m.set {
		for s := m.set[w]; s != 0; {
			lz := bits.LeadingZeros64(s)
			s &^= 1 << (63 - uint(lz))
			id := w*64 + lz + 1
			fn(id, m.Get(id))
		}
	}
}

func (m *Message) def(id int) (*FieldDef, error) {
	if m.d == nil {
		return nil, ErrNoDialect
	}
	if id < 2 || id > MaxField || m.d.fields[id].ID == 0 {
		return nil, &FieldError{Field: id, Err: ErrUndefined}
	}
	return &m.d.fields[id], nil
}

func (m *Message) place(id, off, n int) {
	m.spans[id] = span{uint32(off), uint32(n)}
	w, b := bit(id)
	m.set[w] |= b
}

// check validates canonical content against the definition.
func (f *FieldDef) check(v []byte) error {
	if f.Prefix == Fixed && len(v) != f.Length || len(v) > f.Length {
		return ErrLength
	}
	if !f.Class.valid(v) {
		return ErrContent
	}
	return nil
}

func (c Class) valid(v []byte) bool {
	switch c {
	case ClassN:
		for _, b := range v {
			if !isDigit(b) {
				return false
			}
		}
	case ClassXN:
		if len(v) == 0 || v[0] != 'C' && v[0] != 'D' {
			return false
		}
		for _, b := range v[1:] {
			if !isDigit(b) {
				return false
			}
		}
	case ClassB:
	default:
		for _, b := range v {
			if b < 0x20 || b > 0x7e {
				return false
			}
		}
	}
	return true
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// Unpack decodes src, a whole message of m's dialect, into m. src is not
// retained. On error, the MTI and the fields before the failing one stay
// readable, so that a caller can still echo the STAN and terminal of a
// malformed request in a format-error response; the error names the field.
func (m *Message) Unpack(src []byte) error {
	d := m.d
	if d == nil {
		return ErrNoDialect
	}
	m.Reset(d)
	if cap(m.buf) < len(src) {
		m.buf = make([]byte, 0, len(src)+len(src)/2)
	}
	if len(src) < 4 {
		return ErrShort
	}
	if !d.validMTI(src) {
		return ErrMTI
	}
	copy(m.mti[:], src)
	m.hasMTI = true
	p := 4

	primary, ok := parseHex64(src[p:])
	if !ok {
		return bitmapError(src[p:])
	}
	p += 16
	var secondary uint64
	if primary&(1<<63) != 0 {
		if secondary, ok = parseHex64(src[p:]); !ok {
			return bitmapError(src[p:])
		}
		p += 16
		// An all-zero secondary bitmap is accepted: some acquirers always
		// send one.
	}
	// Bits 1 and 65 are bitmap indicators, not fields; 65 set would announce
	// a tertiary bitmap, which no dialect here defines.
	words := [2]uint64{primary &^ (1 << 63), secondary}

	for w := range words {
		for s := words[w]; s != 0; {
			lz := bits.LeadingZeros64(s)
			s &^= 1 << (63 - uint(lz))
			id := w*64 + lz + 1
			n, err := m.unpackField(id, src[p:])
			if err != nil {
				return &FieldError{Field: id, Err: err}
			}
			p += n
		}
	}
	if p != len(src) {
		return ErrTrailing
	}
	return nil
}

func bitmapError(rest []byte) error {
	if len(rest) < 16 {
		return ErrShort
	}
	return ErrBitmap
}

// unpackField decodes one field from the front of src into m.buf and returns
// the number of wire bytes it used.
func (m *Message) unpackField(id int, src []byte) (int, error) {
	f := &m.d.fields[id]
	if f.ID == 0 {
		return 0, ErrUndefined
	}
	n, p := f.Length, 0
	if f.Prefix != Fixed {
		digits := f.Prefix.Digits()
		if len(src) < digits {
			return 0, ErrShort
		}
		n = 0
		for _, b := range src[:digits] {
			if !isDigit(b) {
				return 0, ErrLength
			}
			n = n*10 + int(b-'0')
		}
		if n > f.Length {
			return 0, ErrLength
		}
		p = digits
	}
	off := len(m.buf)
	switch f.Enc {
	case EncHex:
		if len(src)-p < 2*n {
			return 0, ErrShort
		}
		for i := 0; i < n; i++ {
			hi, ok1 := unhex(src[p+2*i])
			lo, ok2 := unhex(src[p+2*i+1])
			if !ok1 || !ok2 {
				m.buf = m.buf[:off]
				return 0, ErrContent
			}
			m.buf = append(m.buf, hi<<4|lo)
		}
		p += 2 * n
	default:
		if len(src)-p < n {
			return 0, ErrShort
		}
		v := src[p : p+n]
		if !f.Class.valid(v) {
			return 0, ErrContent
		}
		m.buf = append(m.buf, v...)
		p += n
	}
	m.place(id, off, n)
	return p, nil
}

// Pack appends the message in wire form to dst and returns the extended
// slice. The primary bitmap is always 16 hex characters; the secondary
// bitmap is sent only when a field above 64 is present.
func (m *Message) Pack(dst []byte) ([]byte, error) {
	if m.d == nil {
		return dst, ErrNoDialect
	}
	if !m.hasMTI {
		return dst, ErrMTI
	}
	dst = append(dst, m.mti[:]...)
	primary := m.set[0]
	if m.set[1] != 0 {
		primary |= 1 << 63
	}
	dst = appendHex64(dst, primary)
	if m.set[1] != 0 {
		dst = appendHex64(dst, m.set[1])
	}
	for w := range m.set {
		for s := m.set[w]; s != 0; {
			lz := bits.LeadingZeros64(s)
			s &^= 1 << (63 - uint(lz))
			id := w*64 + lz + 1
			dst = m.packField(dst, id)
		}
	}
	return dst, nil
}

func (m *Message) packField(dst []byte, id int) []byte {
	f := &m.d.fields[id]
	v := m.Get(id)
	switch f.Prefix {
	case LL:
		dst = append(dst, '0'+byte(len(v)/10), '0'+byte(len(v)%10))
	case LLL:
		dst = append(dst, '0'+byte(len(v)/100), '0'+byte(len(v)/10%10), '0'+byte(len(v)%10))
	}
	if f.Enc == EncHex {
		for _, b := range v {
			dst = append(dst, hexDigits[b>>4], hexDigits[b&0xf])
		}
		return dst
	}
	return append(dst, v...)
}

const hexDigits = "0123456789ABCDEF"

func appendHex64(dst []byte, v uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[v>>uint(shift)&0xf])
	}
	return dst
}

func parseHex64(b []byte) (uint64, bool) {
	if len(b) < 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b[:16] {
		n, ok := unhex(c)
		if !ok {
			return 0, false
		}
		v = v<<4 | uint64(n)
	}
	return v, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
