package codec

import (
	"errors"
	"fmt"
	"io"
)

// MaxFrame is the largest frame any length header can announce.
const MaxFrame = 65535

// MaxHeader is the largest fixed header a framing can carry.
const MaxHeader = 32

// Errors of framing. All of them leave a stream that cannot be trusted any
// more: the connection is closed.
var (
	// ErrFrameTooLarge is wrapped by the error a FrameReader returns when a
	// header announces more than its limit.
	ErrFrameTooLarge = errors.New("codec: frame larger than the limit")
	// ErrFrameLength means a length header is not a number in its encoding
	// (a letter in a 4-digit ASCII length, a nibble above 9 in BCD).
	ErrFrameLength = errors.New("codec: invalid frame length header")
	// ErrFrameHeader means a frame is shorter than its fixed header.
	ErrFrameHeader = errors.New("codec: frame shorter than its fixed header")
)

// FrameSizeError says how large a refused frame claimed to be.
type FrameSizeError struct{ Size, Max int }

func (e *FrameSizeError) Error() string {
	return fmt.Sprintf("codec: frame of %d bytes exceeds the limit of %d", e.Size, e.Max)
}

func (e *FrameSizeError) Unwrap() error { return ErrFrameTooLarge }

// LengthHeader is how a frame announces its length.
type LengthHeader uint8

const (
	// Len2Binary is a 2-byte big-endian length: the default.
	Len2Binary LengthHeader = iota
	// Len4ASCII is a 4-digit ASCII length ("0123"), up to 9999.
	Len4ASCII
	// Len2BCD is a 2-byte BCD length (0x01 0x23 for 123), up to 9999.
	Len2BCD
)

func (l LengthHeader) String() string {
	switch l {
	case Len2Binary:
		return "binary2"
	case Len4ASCII:
		return "ascii4"
	case Len2BCD:
		return "bcd2"
	}
	return fmt.Sprintf("length(%d)", uint8(l))
}

// ParseLengthHeader reads the name of a length header: binary2, ascii4 or
// bcd2.
func ParseLengthHeader(s string) (LengthHeader, error) {
	for _, l := range []LengthHeader{Len2Binary, Len4ASCII, Len2BCD} {
		if l.String() == s {
			return l, nil
		}
	}
	return 0, fmt.Errorf("codec: length header %q: want binary2, ascii4 or bcd2", s)
}

func (l LengthHeader) size() int {
	if l == Len4ASCII {
		return 4
	}
	return 2
}

func (l LengthHeader) max() int {
	if l == Len2Binary {
		return MaxFrame
	}
	return 9999
}

// Mirror is what a response frame carries in the fixed header.
type Mirror uint8

const (
	// MirrorEcho sends the request's header back unchanged.
	MirrorEcho Mirror = iota
	// MirrorTPDU treats the header as a 5-byte TPDU (id, destination
	// address, source address) and swaps the two addresses, as terminals
	// and NACs expect of a response.
	MirrorTPDU
)

// Framing is how messages are cut out of a stream: a length header, then an
// optional fixed header such as a TPDU, then the message. The length counts
// the fixed header and the message.
type Framing struct {
	Length LengthHeader
	Header int    // fixed header bytes, 0–MaxHeader
	Mirror Mirror // how a response's header is made from its request's
	Max    int    // largest frame accepted (fixed header included); 0 means the length header's maximum
}

// Validate checks a framing and fills its maximum.
func (f *Framing) Validate() error {
	if f.Length > Len2BCD {
		return fmt.Errorf("codec: framing: unknown length header %d", f.Length)
	}
	if f.Header < 0 || f.Header > MaxHeader {
		return fmt.Errorf("codec: framing: fixed header of %d bytes: want 0–%d", f.Header, MaxHeader)
	}
	if f.Mirror == MirrorTPDU && f.Header != 5 {
		return fmt.Errorf("codec: framing: a TPDU header is 5 bytes, not %d", f.Header)
	}
	if f.Max == 0 || f.Max > f.Length.max() {
		f.Max = f.Length.max()
	}
	if f.Max <= f.Header {
		return fmt.Errorf("codec: framing: maximum frame %d leaves no room after the %d-byte header", f.Max, f.Header)
	}
	return nil
}

// MirrorHeader turns a request's fixed header into its response's, in
// place.
func (f *Framing) MirrorHeader(h []byte) {
	if f.Mirror == MirrorTPDU && len(h) == 5 {
		h[1], h[2], h[3], h[4] = h[3], h[4], h[1], h[2]
	}
}

// FrameReader splits a byte stream into frames. One Read may bring several
// frames, or part of one; Next hands out one whole frame at a time, sliced
// from its own buffer, and copies only to move a partial frame to the
// buffer's front.
type FrameReader struct {
	r          io.Reader
	f          Framing
	buf        []byte
	start, end int // unread bytes are buf[start:end]
}

// NewFrameReader reads frames of framing f (validated first) from r.
// bufSize is the initial read buffer; it grows to hold the largest frame
// seen, up to the framing's maximum.
func NewFrameReader(r io.Reader, f Framing, bufSize int) (*FrameReader, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &FrameReader{r: r, f: f, buf: make([]byte, max(bufSize, 64))}, nil
}

// Next returns the next frame's fixed header and message. A zero-length
// frame (a keep-alive for some acquirers) comes back as an empty message
// with no header. Both slices are valid until the following call. At a
// clean end of stream Next returns io.EOF; inside a frame,
// io.ErrUnexpectedEOF.
func (r *FrameReader) Next() (header, msg []byte, err error) {
	for {
		n, header, msg, err := r.f.Cut(r.buf[r.start:r.end])
		if err != nil {
			return nil, nil, err
		}
		if n > 0 {
			r.start += n
			return header, msg, nil
		}
		// Not a whole frame yet: read at least one more byte. Cut refuses a
		// frame above the limit as soon as its length header is in, so the
		// buffer never grows past about twice the largest frame. fill turns
		// an EOF inside a frame into io.ErrUnexpectedEOF.
		if err := r.fill(r.end - r.start + 1); err != nil {
			return nil, nil, err
		}
	}
}

// Cut cuts the first frame out of b, for engines that own their read
// buffer. n is how many bytes of b the frame takes, or 0 when b does not
// hold a whole frame yet; header and msg are slices of b, as
// FrameReader.Next returns them (a keep-alive is n > 0 with an empty msg
// and no header). The errors are Next's: a *FrameSizeError, ErrFrameLength
// or ErrFrameHeader, reported as soon as the length header is in b, so that
// a caller never buffers a frame it is going to refuse. f must be valid
// (see Validate).
func (f *Framing) Cut(b []byte) (n int, header, msg []byte, err error) {
	ls := f.Length.size()
	if len(b) < ls {
		return 0, nil, nil, nil
	}
	size, ok := f.Length.parse(b[:ls])
	switch {
	case !ok:
		return 0, nil, nil, ErrFrameLength
	case size > f.Max:
		return 0, nil, nil, &FrameSizeError{Size: size, Max: f.Max}
	case size > 0 && size < f.Header:
		return 0, nil, nil, ErrFrameHeader
	case len(b) < ls+size:
		return 0, nil, nil, nil
	case size == 0:
		return ls, nil, b[ls:ls], nil
	}
	frame := b[ls : ls+size]
	return ls + size, frame[:f.Header], frame[f.Header:], nil
}

// parse reads a length header of l's size.
func (l LengthHeader) parse(b []byte) (int, bool) {
	switch l {
	case Len4ASCII:
		n := 0
		for _, c := range b {
			if !isDigit(c) {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	case Len2BCD:
		n := 0
		for _, c := range b {
			if c>>4 > 9 || c&0xf > 9 {
				return 0, false
			}
			n = n*100 + int(c>>4)*10 + int(c&0xf)
		}
		return n, true
	}
	return int(b[0])<<8 | int(b[1]), true
}

// Buffered is the number of bytes read from the stream but not yet returned
// by Next. A connection keeps parsing while it is non-zero and flushes its
// replies once the input is drained.
func (r *FrameReader) Buffered() int { return r.end - r.start }

// fill makes sure at least n unread bytes are buffered.
func (r *FrameReader) fill(n int) error {
	if r.end-r.start >= n {
		return nil
	}
	if r.start > 0 && len(r.buf)-r.start < n {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	if len(r.buf) < n {
		grown := make([]byte, max(n, 2*len(r.buf)))
		r.end = copy(grown, r.buf[r.start:r.end])
		r.start = 0
		r.buf = grown
	}
	for r.end-r.start < n {
		k, err := r.r.Read(r.buf[r.end:])
		r.end += k
		if r.end-r.start >= n {
			return nil
		}
		if err != nil {
			if err == io.EOF && r.end-r.start > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// AppendFrame appends m packed as one frame of framing f: the length, the
// fixed header (exactly f.Header bytes: the caller mirrors a request's, or
// builds its own) and the message.
func AppendFrame(dst []byte, f *Framing, header []byte, m *Message) ([]byte, error) {
	if len(header) != f.Header {
		return dst, fmt.Errorf("codec: framing: header of %d bytes, want %d", len(header), f.Header)
	}
	at := len(dst)
	ls := f.Length.size()
	dst = append(dst, make([]byte, ls)...)
	dst = append(dst, header...)
	dst, err := m.Pack(dst)
	if err != nil {
		return dst[:at], err
	}
	n := len(dst) - at - ls
	if n > f.Length.max() {
		return dst[:at], &FrameSizeError{Size: n, Max: f.Length.max()}
	}
	l := dst[at : at+ls]
	switch f.Length {
	case Len4ASCII:
		l[0], l[1], l[2], l[3] = '0'+byte(n/1000), '0'+byte(n/100%10), '0'+byte(n/10%10), '0'+byte(n%10)
	case Len2BCD:
		l[0], l[1] = byte(n/1000)<<4|byte(n/100%10), byte(n/10%10)<<4|byte(n%10)
	default:
		l[0], l[1] = byte(n>>8), byte(n)
	}
	return dst, nil
}
