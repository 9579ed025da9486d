package codec

import (
	"errors"
	"fmt"
	"io"
)

// MaxFrame is the largest payload a 2-byte length header can announce.
const MaxFrame = 65535

// ErrFrameTooLarge is wrapped by the error a FrameReader returns when a
// header announces more than its limit; the stream cannot be resynchronised
// and the connection must be closed.
var ErrFrameTooLarge = errors.New("codec: frame larger than the limit")

// FrameSizeError says how large a refused frame claimed to be.
type FrameSizeError struct{ Size, Max int }

func (e *FrameSizeError) Error() string {
	return fmt.Sprintf("codec: frame of %d bytes exceeds the limit of %d", e.Size, e.Max)
}

func (e *FrameSizeError) Unwrap() error { return ErrFrameTooLarge }

// FrameReader splits a byte stream into frames that each carry a 2-byte
// big-endian length header. One Read may bring several frames, or part of
// one; Next hands out one whole payload at a time, sliced from its own
// buffer, and copies only to move a partial frame to the buffer's front.
type FrameReader struct {
	r          io.Reader
	buf        []byte
	start, end int // unread bytes are buf[start:end]
	max        int
}

// NewFrameReader reads frames of at most max payload bytes from r. bufSize
// is the initial read buffer; it grows to hold the largest frame seen, up to
// max plus the header.
func NewFrameReader(r io.Reader, max, bufSize int) *FrameReader {
	if max <= 0 || max > MaxFrame {
		max = MaxFrame
	}
	if bufSize < 64 {
		bufSize = 64
	}
	return &FrameReader{r: r, max: max, buf: make([]byte, bufSize)}
}

// Next returns the next frame's payload. A zero-length frame (a keep-alive
// for some acquirers) is returned as an empty slice. The payload is valid
// until the following call. At a clean end of stream Next returns io.EOF;
// inside a frame, io.ErrUnexpectedEOF.
func (f *FrameReader) Next() ([]byte, error) {
	if err := f.fill(2); err != nil {
		return nil, err
	}
	n := int(f.buf[f.start])<<8 | int(f.buf[f.start+1])
	if n > f.max {
		return nil, &FrameSizeError{Size: n, Max: f.max}
	}
	if err := f.fill(2 + n); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	p := f.buf[f.start+2 : f.start+2+n]
	f.start += 2 + n
	return p, nil
}

// Buffered is the number of bytes read from the stream but not yet returned
// by Next. A connection keeps parsing while it is non-zero and flushes its
// replies once the input is drained.
func (f *FrameReader) Buffered() int { return f.end - f.start }

// fill makes sure at least n unread bytes are buffered.
func (f *FrameReader) fill(n int) error {
	if f.end-f.start >= n {
		return nil
	}
	if f.start > 0 && len(f.buf)-f.start < n {
		f.end = copy(f.buf, f.buf[f.start:f.end])
		f.start = 0
	}
	if len(f.buf) < n {
		grown := make([]byte, max(n, 2*len(f.buf)))
		f.end = copy(grown, f.buf[f.start:f.end])
		f.start = 0
		f.buf = grown
	}
	for f.end-f.start < n {
		k, err := f.r.Read(f.buf[f.end:])
		f.end += k
		if f.end-f.start >= n {
			return nil
		}
		if err != nil {
			if err == io.EOF && f.end-f.start > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// AppendFrame appends m packed behind a 2-byte big-endian length header.
func AppendFrame(dst []byte, m *Message) ([]byte, error) {
	at := len(dst)
	dst = append(dst, 0, 0)
	dst, err := m.Pack(dst)
	if err != nil {
		return dst[:at], err
	}
	n := len(dst) - at - 2
	if n > MaxFrame {
		return dst[:at], &FrameSizeError{Size: n, Max: MaxFrame}
	}
	dst[at], dst[at+1] = byte(n>>8), byte(n)
	return dst, nil
}
