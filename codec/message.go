package codec

import (
	"encoding/binary"
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

// validMTI checks a canonical (ASCII digit) MTI against the dialect.
func (d *Dialect) validMTI(b []byte) bool {
	v := d.layout.Version
	return len(b) >= 4 && isDigit(b[0]) && (v == 0 || b[0] == v) && isDigit(b[1]) && isDigit(b[2]) && isDigit(b[3])
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
		return digits(v)
	case ClassXN:
		return len(v) > 0 && (v[0] == 'C' || v[0] == 'D') && digits(v[1:])
	case ClassB:
		return true
	}
	return printable(v)
}

// digits reports whether every byte is '0'–'9', eight bytes at a time: a
// byte is a digit when it, it plus 0x46 and it minus 0x30 all have the high
// bit clear. A borrow or carry between bytes only arises from a byte that
// already fails, so it cannot hide one.
func digits(v []byte) bool {
	const hi, lo, up = 0x8080808080808080, 0x3030303030303030, 0x4646464646464646
	for len(v) >= 8 {
		x := binary.LittleEndian.Uint64(v)
		if (x|(x+up)|(x-lo))&hi != 0 {
			return false
		}
		v = v[8:]
	}
	for _, b := range v {
		if !isDigit(b) {
			return false
		}
	}
	return true
}

// printable reports whether every byte is 0x20–0x7e, eight at a time, by
// the same reasoning as digits.
func printable(v []byte) bool {
	const hi, lo, up = 0x8080808080808080, 0x2020202020202020, 0x0101010101010101
	for len(v) >= 8 {
		x := binary.LittleEndian.Uint64(v)
		if (x|(x+up)|(x-lo))&hi != 0 {
			return false
		}
		v = v[8:]
	}
	for _, b := range v {
		if b < 0x20 || b > 0x7e {
			return false
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
	if cap(m.buf) < 2*len(src) {
		// Canonical content is at most twice the wire size (BCD digits).
		m.buf = make([]byte, 0, 2*len(src)+64)
	}
	p, mtiOK, err := d.readHeader(src, &m.mti, &m.set)
	m.hasMTI = mtiOK
	if err != nil {
		return err
	}
	for w := range m.set {
		for s := m.set[w]; s != 0; {
			lz := bits.LeadingZeros64(s)
			s &^= 1 << (63 - uint(lz))
			id := w*64 + lz + 1
			off := len(m.buf)
			n, err := d.decodeField(id, src[p:], &m.buf, true)
			if err != nil {
				m.clearFrom(id)
				return &FieldError{Field: id, Err: err}
			}
			m.spans[id] = span{uint32(off), uint32(len(m.buf) - off)}
			p += n
		}
	}
	if p != len(src) {
		return ErrTrailing
	}
	return nil
}

// clearFrom drops the presence bits of field id and every field after it,
// after a decoding error at id.
func (m *Message) clearFrom(id int) {
	w, b := bit(id)
	m.set[w] &^= b | (b - 1)
	if w == 0 {
		m.set[1] = 0
	}
}

// readHeader decodes the MTI and the bitmaps at the front of src into mti
// and set (bit 1 cleared) and returns the offset of the first field. mtiOK
// reports a valid MTI even when the bitmap then fails, so that the caller
// can still answer.
func (d *Dialect) readHeader(src []byte, mti *[4]byte, set *[2]uint64) (p int, mtiOK bool, err error) {
	switch d.layout.MTI {
	case EncBCD:
		if len(src) < 2 {
			return 0, false, ErrShort
		}
		var digits [4]byte
		for i, b := range src[:2] {
			digits[2*i], digits[2*i+1] = '0'+b>>4, '0'+b&0xf
		}
		if !d.validMTI(digits[:]) {
			return 0, false, ErrMTI
		}
		*mti, p = digits, 2
	default:
		if len(src) < 4 {
			return 0, false, ErrShort
		}
		if !d.validMTI(src) {
			return 0, false, ErrMTI
		}
		copy(mti[:], src)
		p = 4
	}
	primary, n, err := d.readBitmap(src[p:])
	if err != nil {
		return p, true, err
	}
	p += n
	var secondary uint64
	if primary&(1<<63) != 0 {
		// An all-zero secondary bitmap is accepted: some acquirers always
		// send one.
		if secondary, n, err = d.readBitmap(src[p:]); err != nil {
			return p, true, err
		}
		p += n
	}
	// Bit 1 is the secondary bitmap indicator, not a field; bit 65 stays and
	// is refused as an undefined field: it would announce a tertiary bitmap.
	*set = [2]uint64{primary &^ (1 << 63), secondary}
	return p, true, nil
}

func (d *Dialect) readBitmap(src []byte) (uint64, int, error) {
	if d.layout.Bitmap == EncBinary {
		if len(src) < 8 {
			return 0, 0, ErrShort
		}
		return binary.BigEndian.Uint64(src), 8, nil
	}
	if len(src) < 16 {
		return 0, 0, ErrShort
	}
	v, ok := parseHex64(src)
	if !ok {
		return 0, 0, ErrBitmap
	}
	return v, 16, nil
}

// decodeField decodes field id from the front of src and returns the number
// of wire bytes it used. With keep, the canonical content is appended to
// *out and checked against the field's class. Without keep, the content is
// only checked as far as moov-io checks it (ASCII below 128, hex digits,
// BCD nibbles), so that a field nobody reads costs little more than a skip.
// Kept content never grows *out beyond its capacity.
func (d *Dialect) decodeField(id int, src []byte, out *[]byte, keep bool) (int, error) {
	o := &d.ops[id]
	if o.class == 0 {
		return 0, ErrUndefined
	}
	n, p := int(o.max), 0
	if o.prefix != Fixed {
		p = int(o.psize)
		if len(src) < p {
			return 0, ErrShort
		}
		var ok bool
		if n, ok = decodeLength(o, src[:p]); !ok || n > int(o.max) {
			return 0, ErrLength
		}
	}
	w := o.wireLen(n)
	if len(src)-p < w {
		return 0, ErrShort
	}
	v := src[p : p+w]
	if keep && cap(*out)-len(*out) < n {
		// Only a Scan's fixed buffer can run out; growing it would allocate.
		return 0, ErrScanFull
	}
	switch o.enc {
	case EncASCII:
		if keep {
			if !o.class.valid(v) {
				return 0, ErrContent
			}
			*out = append(*out, v...)
		} else if !ascii(v) {
			return 0, ErrContent
		}
	case EncBinary:
		if keep {
			*out = append(*out, v...)
		}
	case EncHex:
		for i := 0; i < len(v); i += 2 {
			hi, ok1 := unhex(v[i])
			lo, ok2 := unhex(v[i+1])
			if !ok1 || !ok2 {
				return 0, ErrContent
			}
			if keep {
				*out = append(*out, hi<<4|lo)
			}
		}
	case EncBCD:
		// An odd count carries a 0 pad nibble first.
		if n%2 == 1 && v[0]>>4 != 0 {
			return 0, ErrContent
		}
		for i, b := range v {
			hi, lo := b>>4, b&0xf
			if hi > 9 || lo > 9 {
				return 0, ErrContent
			}
			if keep {
				if i > 0 || n%2 == 0 {
					*out = append(*out, '0'+hi)
				}
				*out = append(*out, '0'+lo)
			}
		}
	}
	return p + w, nil
}

// decodeLength reads a length indicator.
func decodeLength(o *fieldOp, b []byte) (int, bool) {
	n := 0
	switch o.prefix {
	case PrefixASCII:
		for _, c := range b {
			if !isDigit(c) {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
	case PrefixBCD:
		for i, c := range b {
			hi, lo := int(c>>4), int(c&0xf)
			if hi > 9 || lo > 9 || i == 0 && o.bcdOdd && hi != 0 {
				return 0, false
			}
			n = n*100 + hi*10 + lo
		}
	case PrefixBinary:
		for _, c := range b {
			n = n<<8 | int(c)
		}
	}
	return n, true
}

// Pack appends the message in wire form to dst and returns the extended
// slice. The primary bitmap is always sent; the secondary bitmap only when a
// field above 64 is present.
func (m *Message) Pack(dst []byte) ([]byte, error) {
	d := m.d
	if d == nil {
		return dst, ErrNoDialect
	}
	if !m.hasMTI {
		return dst, ErrMTI
	}
	if d.layout.MTI == EncBCD {
		dst = append(dst, (m.mti[0]-'0')<<4|(m.mti[1]-'0'), (m.mti[2]-'0')<<4|(m.mti[3]-'0'))
	} else {
		dst = append(dst, m.mti[:]...)
	}
	primary := m.set[0]
	if m.set[1] != 0 {
		primary |= 1 << 63
	}
	dst = d.appendBitmap(dst, primary)
	if m.set[1] != 0 {
		dst = d.appendBitmap(dst, m.set[1])
	}
	for w := range m.set {
		for s := m.set[w]; s != 0; {
			lz := bits.LeadingZeros64(s)
			s &^= 1 << (63 - uint(lz))
			id := w*64 + lz + 1
			dst = d.encodeField(dst, id, m.Get(id))
		}
	}
	return dst, nil
}

func (d *Dialect) appendBitmap(dst []byte, v uint64) []byte {
	if d.layout.Bitmap == EncBinary {
		return binary.BigEndian.AppendUint64(dst, v)
	}
	return appendHex64(dst, v)
}

// encodeField appends field id with canonical content v in wire form.
func (d *Dialect) encodeField(dst []byte, id int, v []byte) []byte {
	f := &d.fields[id]
	n := len(v)
	switch f.Prefix {
	case PrefixASCII:
		for i := f.PrefixSize - 1; i >= 0; i-- {
			dst = append(dst, '0'+byte(n/pow10(i)%10))
		}
	case PrefixBCD:
		digits := f.PrefixSize + f.PrefixSize%2
		for i := digits - 1; i >= 0; i -= 2 {
			dst = append(dst, byte(n/pow10(i)%10)<<4|byte(n/pow10(i-1)%10))
		}
	case PrefixBinary:
		for i := f.PrefixSize - 1; i >= 0; i-- {
			dst = append(dst, byte(n>>(8*i)))
		}
	}
	switch f.Enc {
	case EncHex:
		for _, b := range v {
			dst = append(dst, hexDigits[b>>4], hexDigits[b&0xf])
		}
	case EncBCD:
		if n%2 == 1 {
			dst = append(dst, v[0]-'0')
			v = v[1:]
		}
		for i := 0; i < len(v); i += 2 {
			dst = append(dst, (v[i]-'0')<<4|(v[i+1]-'0'))
		}
	default:
		dst = append(dst, v...)
	}
	return dst
}

func pow10(i int) int {
	p := 1
	for ; i > 0; i-- {
		p *= 10
	}
	return p
}

// ascii reports whether every byte is below 128, eight at a time.
func ascii(v []byte) bool {
	for len(v) >= 8 {
		if binary.LittleEndian.Uint64(v)&0x8080808080808080 != 0 {
			return false
		}
		v = v[8:]
	}
	for _, b := range v {
		if b >= 0x80 {
			return false
		}
	}
	return true
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
