package codec

import (
	"errors"
	"math/bits"
)

// ErrScanFull means the fields a Scan keeps do not fit its buffer; keep
// fewer fields, or decode the message with Message.
var ErrScanFull = errors.New("kept fields exceed the scan buffer")

const (
	scanBuffer = 256 // bytes of kept content
	maxKept    = 24  // fields kept per scan
)

// ScanSet is the set of fields a Scan keeps.
type ScanSet struct{ bits [2]uint64 }

// NewScanSet keeps the given fields (2–128; others are ignored).
func NewScanSet(ids ...int) ScanSet {
	var s ScanSet
	for _, id := range ids {
		if id >= 2 && id <= MaxField {
			w, b := bit(id)
			s.bits[w] |= b
		}
	}
	return s
}

// RoutingFields are the fields routing and matching read: PAN, processing
// code, amount, transmission time, STAN, local time and date, entry mode,
// acquirer, RRN, terminal, merchant, currency and account id.
func RoutingFields() ScanSet {
	return NewScanSet(2, 3, 4, 7, 11, 12, 13, 22, 32, 37, 41, 42, 49, 102)
}

// Has reports whether the set keeps field id.
func (s ScanSet) Has(id int) bool {
	if id < 2 || id > MaxField {
		return false
	}
	w, b := bit(id)
	return s.bits[w]&b != 0
}

// Scan is a message read only as far as routing and matching need: its MTI,
// which fields it carries, and the content of the fields a ScanSet keeps,
// held in a fixed-size struct. Every other field is walked over and checked
// as far as moov-io checks it, not copied. A Scan is reused with no
// allocation; it is not safe for concurrent use.
type Scan struct {
	mti  [4]byte
	set  [2]uint64
	src  []byte // the scanned message: ASCII content is kept as a span of it
	vals [maxKept]struct {
		id     uint8
		inSrc  bool // off and n locate the content in src, not in buf
		off, n uint16
	}
	nvals int
	buf   [scanBuffer]byte // content decoded from BCD or hex
	used  int
}

// Scan reads src, a whole message of dialect d, into s, keeping the fields
// in keep. It accepts and refuses exactly what Message.Unpack does, except
// that content of fields it does not keep is not checked against their
// class (a letter in an n field it skips goes unnoticed, as it would in
// moov-io). s refers to src until the next Scan: src must not change
// meanwhile.
func (d *Dialect) Scan(src []byte, keep ScanSet, s *Scan) error {
	s.nvals, s.used, s.set, s.src = 0, 0, [2]uint64{}, src
	p, _, err := d.readHeader(src, &s.mti, &s.set)
	if err != nil {
		return err
	}
	for w := range s.set {
		for bs := s.set[w]; bs != 0; {
			lz := bits.LeadingZeros64(bs)
			bs &^= 1 << (63 - uint(lz))
			id := w*64 + lz + 1
			kept := keep.bits[w]&(1<<(63-uint(lz))) != 0
			if kept && s.nvals == maxKept {
				return &FieldError{Field: id, Err: ErrScanFull}
			}
			// The common case, ASCII content behind an ASCII or no length,
			// is handled here without a call or a copy: routing runs this
			// for every request.
			if o := &d.ops[id]; o.enc == EncASCII && (o.prefix == Fixed || o.prefix == PrefixASCII) {
				n, q := int(o.max), p
				if o.prefix == PrefixASCII {
					q += int(o.psize)
					if q > len(src) {
						return &FieldError{Field: id, Err: ErrShort}
					}
					n = 0
					for _, c := range src[p:q] {
						if !isDigit(c) {
							return &FieldError{Field: id, Err: ErrLength}
						}
						n = n*10 + int(c-'0')
					}
					if n > int(o.max) {
						return &FieldError{Field: id, Err: ErrLength}
					}
				}
				if len(src)-q < n {
					return &FieldError{Field: id, Err: ErrShort}
				}
				v := src[q : q+n]
				if kept {
					if !o.class.valid(v) {
						return &FieldError{Field: id, Err: ErrContent}
					}
					e := &s.vals[s.nvals]
					e.id, e.inSrc, e.off, e.n = uint8(id), true, uint16(q), uint16(n)
					s.nvals++
				} else if !ascii(v) {
					return &FieldError{Field: id, Err: ErrContent}
				}
				p = q + n
				continue
			}
			out := s.buf[s.used:s.used:scanBuffer]
			wire, err := d.decodeField(id, src[p:], &out, kept)
			if err != nil {
				return &FieldError{Field: id, Err: err}
			}
			p += wire
			if kept {
				v := &s.vals[s.nvals]
				v.id, v.inSrc, v.off, v.n = uint8(id), false, uint16(s.used), uint16(len(out))
				s.nvals++
				s.used += len(out)
			}
		}
	}
	if p != len(src) {
		return ErrTrailing
	}
	return nil
}

// MTI is the message type indicator.
func (s *Scan) MTI() [4]byte { return s.mti }

// Has reports whether the message carries field id, kept or not.
func (s *Scan) Has(id int) bool {
	if id < 2 || id > MaxField {
		return false
	}
	w, b := bit(id)
	return s.set[w]&b != 0
}

// Get returns the canonical content of a kept field, or nil when the field
// is absent or was not kept. The slice aliases the Scan.
func (s *Scan) Get(id int) []byte {
	for i := range s.nvals {
		if v := &s.vals[i]; int(v.id) == id {
			if v.inSrc {
				return s.src[v.off : v.off+v.n : v.off+v.n]
			}
			return s.buf[v.off : v.off+v.n : v.off+v.n]
		}
	}
	return nil
}
