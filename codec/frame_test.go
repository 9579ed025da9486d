package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// framings are the framings every frame test runs against.
func framings() []Framing {
	return []Framing{
		{Length: Len2Binary},
		{Length: Len4ASCII},
		{Length: Len2BCD},
		{Length: Len2Binary, Header: 5, Mirror: MirrorTPDU},
		{Length: Len4ASCII, Header: 3},
	}
}

func (f Framing) name() string {
	return fmt.Sprintf("%s+%d", f.Length, f.Header)
}

// frames builds a stream of framing f; every frame gets header h (ignored
// for empty keep-alive payloads).
func frames(f Framing, h []byte, payloads ...string) []byte {
	var b []byte
	for _, p := range payloads {
		body := p
		if p != "" {
			body = string(h) + p
		}
		n := len(body)
		switch f.Length {
		case Len4ASCII:
			b = fmt.Appendf(b, "%04d", n)
		case Len2BCD:
			b = append(b, byte(n/1000)<<4|byte(n/100%10), byte(n/10%10)<<4|byte(n%10))
		default:
			b = append(b, byte(n>>8), byte(n))
		}
		b = append(b, body...)
	}
	return b
}

func header(f Framing) []byte { return bytes.Repeat([]byte{0x60}, f.Header) }

func readAll(t *testing.T, fr *FrameReader) ([]string, error) {
	t.Helper()
	var got []string
	for {
		h, p, err := fr.Next()
		if err != nil {
			return got, err
		}
		if len(p) > 0 && len(h) != fr.f.Header {
			t.Fatalf("header of %d bytes", len(h))
		}
		got = append(got, string(p))
	}
}

func newReader(t testing.TB, r io.Reader, f Framing) *FrameReader {
	t.Helper()
	fr, err := NewFrameReader(r, f, 64)
	if err != nil {
		t.Fatal(err)
	}
	return fr
}

func TestFrameReader(t *testing.T) {
	long := string(bytes.Repeat([]byte("x"), 3000))
	want := []string{"0800first", "", "0200second", long, "0200last"}
	for _, f := range framings() {
		t.Run(f.name(), func(t *testing.T) {
			stream := frames(f, header(f), want...)
			for name, r := range map[string]io.Reader{
				"several frames arrive in one read":       bytes.NewReader(stream),
				"every frame arrives one byte at a time":  iotest.OneByteReader(bytes.NewReader(stream)),
				"frames split across reads at odd places": iotest.HalfReader(bytes.NewReader(stream)),
				"reads return data and EOF together":      iotest.DataErrReader(bytes.NewReader(stream)),
			} {
				t.Run(name, func(t *testing.T) {
					got, err := readAll(t, newReader(t, r, f))
					if err != io.EOF {
						t.Fatalf("ended with %v, want io.EOF", err)
					}
					if len(got) != len(want) {
						t.Fatalf("got %d frames, want %d", len(got), len(want))
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("frame %d differs", i)
						}
					}
				})
			}

			t.Run("a stream that ends inside a frame is an unexpected EOF", func(t *testing.T) {
				s := frames(f, header(f), "complete", "truncated")
				first := len(frames(f, header(f), "complete"))
				// Inside the second frame's length header, right after it, and
				// one byte short of its end.
				for _, cut := range []int{first + 1, first + f.Length.size(), len(s) - 1} {
					if _, err := readAll(t, newReader(t, bytes.NewReader(s[:cut]), f)); err != io.ErrUnexpectedEOF {
						t.Fatalf("cut at %d: err = %v", cut, err)
					}
				}
			})
		})
	}

	t.Run("a length above the limit is refused with its size", func(t *testing.T) {
		f := Framing{Length: Len2Binary, Max: 4096}
		fr := newReader(t, bytes.NewReader(frames(f, nil, "ok", string(bytes.Repeat([]byte("y"), 5000)))), f)
		if _, p, err := fr.Next(); err != nil || string(p) != "ok" {
			t.Fatalf("first frame: %q %v", p, err)
		}
		_, _, err := fr.Next()
		var fse *FrameSizeError
		if !errors.Is(err, ErrFrameTooLarge) || !errors.As(err, &fse) || fse.Size != 5000 || fse.Max != 4096 {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("length headers that are not numbers are refused", func(t *testing.T) {
		for _, c := range []struct {
			f      Framing
			stream string
		}{
			{Framing{Length: Len4ASCII}, "00a5hello"},
			{Framing{Length: Len2BCD}, "\x00\x1fhello"},
		} {
			if _, _, err := newReader(t, bytes.NewReader([]byte(c.stream)), c.f).Next(); !errors.Is(err, ErrFrameLength) {
				t.Errorf("%s: err = %v", c.f.name(), err)
			}
		}
	})

	t.Run("a frame shorter than its fixed header is refused", func(t *testing.T) {
		f := Framing{Length: Len2Binary, Header: 5, Mirror: MirrorTPDU}
		if _, _, err := newReader(t, bytes.NewReader([]byte{0, 3, 1, 2, 3}), f).Next(); !errors.Is(err, ErrFrameHeader) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("a read error is passed on", func(t *testing.T) {
		boom := errors.New("boom")
		f := Framing{}
		r := io.MultiReader(bytes.NewReader(frames(f, nil, "a")), iotest.ErrReader(boom))
		got, err := readAll(t, newReader(t, r, f))
		if len(got) != 1 || err != boom {
			t.Fatalf("got %q, %v", got, err)
		}
	})
}

func TestFramingValidate(t *testing.T) {
	for _, bad := range []Framing{
		{Length: 9},
		{Header: 33},
		{Header: 4, Mirror: MirrorTPDU},
		{Length: Len4ASCII, Header: 5, Max: 5},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	f := Framing{Length: Len4ASCII, Max: 20000}
	if err := f.Validate(); err != nil || f.Max != 9999 {
		t.Fatalf("max %d, %v", f.Max, err)
	}
}

func TestAppendFrame(t *testing.T) {
	d := ISO87ASCII()
	m := purchase0200(t, d)
	body := pack(t, m)
	for _, f := range framings() {
		t.Run(f.name()+" frames a message the reader reads back", func(t *testing.T) {
			must(t, f.Validate())
			h := []byte("\x60\x00\x01\x00\x02")[:f.Header]
			b, err := AppendFrame([]byte("prefix"), &f, h, m)
			must(t, err)
			if string(b[:6]) != "prefix" {
				t.Fatal("prefix overwritten")
			}
			gotH, gotM, err := newReader(t, bytes.NewReader(b[6:]), f).Next()
			must(t, err)
			if !bytes.Equal(gotH, h) || !bytes.Equal(gotM, body) {
				t.Fatalf("header %x, message equal %v", gotH, bytes.Equal(gotM, body))
			}
		})
	}
	t.Run("a TPDU response swaps destination and source", func(t *testing.T) {
		f := Framing{Header: 5, Mirror: MirrorTPDU}
		h := []byte{0x60, 0x00, 0x01, 0x00, 0x02}
		f.MirrorHeader(h)
		if !bytes.Equal(h, []byte{0x60, 0x00, 0x02, 0x00, 0x01}) {
			t.Fatalf("mirrored %x", h)
		}
	})
	t.Run("a header of the wrong size or a message without MTI is refused", func(t *testing.T) {
		f := Framing{Header: 5}
		if _, err := AppendFrame(nil, &f, []byte{1}, m); err == nil {
			t.Fatal("accepted a 1-byte header")
		}
		if _, err := AppendFrame(nil, &Framing{}, nil, NewMessage(d)); !errors.Is(err, ErrMTI) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFramingCut(t *testing.T) {
	long := string(bytes.Repeat([]byte("x"), 3000))
	want := []string{"0800first", "", "0200second", long, "0200last"}
	for _, f := range framings() {
		must(t, f.Validate())
		t.Run(f.name(), func(t *testing.T) {
			stream := frames(f, header(f), want...)

			t.Run("a buffer holding several frames is cut like a FrameReader cuts the stream", func(t *testing.T) {
				var got []string
				for b := stream; len(b) > 0; {
					n, h, p, err := f.Cut(b)
					if err != nil || n == 0 {
						t.Fatalf("after %d frames: n = %d, err = %v", len(got), n, err)
					}
					if len(p) > 0 && !bytes.Equal(h, header(f)) {
						t.Fatalf("frame %d: header %x", len(got), h)
					}
					got = append(got, string(p))
					b = b[n:]
				}
				if len(got) != len(want) {
					t.Fatalf("got %d frames, want %d", len(got), len(want))
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("frame %d differs", i)
					}
				}
			})

			t.Run("a frame is cut only once all of it is in the buffer", func(t *testing.T) {
				one := frames(f, header(f), "0200second")
				for end := 0; end < len(one); end++ {
					if n, h, p, err := f.Cut(one[:end]); n != 0 || h != nil || p != nil || err != nil {
						t.Fatalf("%d of %d bytes: n = %d, err = %v", end, len(one), n, err)
					}
				}
				n, h, p, err := f.Cut(append(one, "trailing"...))
				if n != len(one) || err != nil || !bytes.Equal(h, header(f)) || string(p) != "0200second" {
					t.Fatalf("n = %d of %d, header %x, msg %q, err = %v", n, len(one), h, p, err)
				}
			})

			t.Run("a keep-alive takes its length header and gives an empty message", func(t *testing.T) {
				n, h, p, err := f.Cut(frames(f, nil, "", "0800"))
				if n != f.Length.size() || h != nil || p == nil || len(p) != 0 || err != nil {
					t.Fatalf("n = %d, header %x, msg %q, err = %v", n, h, p, err)
				}
			})
		})
	}

	t.Run("a length above the limit is refused as soon as the length header is in", func(t *testing.T) {
		f := Framing{Length: Len2Binary, Max: 4096}
		must(t, f.Validate())
		n, _, _, err := f.Cut([]byte{5000 >> 8, 5000 & 0xff})
		var fse *FrameSizeError
		if n != 0 || !errors.As(err, &fse) || fse.Size != 5000 || fse.Max != 4096 {
			t.Fatalf("n = %d, err = %v", n, err)
		}
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("%v does not wrap ErrFrameTooLarge", err)
		}
	})

	t.Run("broken length headers are refused before the frame is in", func(t *testing.T) {
		for _, c := range []struct {
			f      Framing
			buf    string
			expect error
		}{
			{Framing{Length: Len4ASCII}, "00a5", ErrFrameLength},
			{Framing{Length: Len2BCD}, "\x00\x1f", ErrFrameLength},
			{Framing{Length: Len2Binary, Header: 5, Mirror: MirrorTPDU}, "\x00\x03", ErrFrameHeader},
		} {
			must(t, c.f.Validate())
			if n, _, _, err := c.f.Cut([]byte(c.buf)); n != 0 || !errors.Is(err, c.expect) {
				t.Errorf("%s %q: n = %d, err = %v, want %v", c.f.name(), c.buf, n, err, c.expect)
			}
		}
	})

	t.Run("a buffer shorter than a length header is not an error", func(t *testing.T) {
		for _, f := range framings() {
			must(t, f.Validate())
			if n, _, _, err := f.Cut([]byte{'0'}); n != 0 || err != nil {
				t.Errorf("%s: n = %d, err = %v", f.name(), n, err)
			}
		}
	})
}
