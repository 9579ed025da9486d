package codec

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func frames(payloads ...string) []byte {
	var b []byte
	for _, p := range payloads {
		b = append(b, byte(len(p)>>8), byte(len(p)))
		b = append(b, p...)
	}
	return b
}

func readAll(t *testing.T, fr *FrameReader) ([]string, error) {
	t.Helper()
	var got []string
	for {
		p, err := fr.Next()
		if err != nil {
			return got, err
		}
		got = append(got, string(p))
	}
}

func TestFrameReader(t *testing.T) {
	long := string(bytes.Repeat([]byte("x"), 3000))
	stream := frames("0800first", "", "0200second", long, "0200last")
	want := []string{"0800first", "", "0200second", long, "0200last"}

	for name, r := range map[string]io.Reader{
		"several frames arrive in one read":       bytes.NewReader(stream),
		"every frame arrives one byte at a time":  iotest.OneByteReader(bytes.NewReader(stream)),
		"frames split across reads at odd places": iotest.HalfReader(bytes.NewReader(stream)),
		"reads return data and EOF together":      iotest.DataErrReader(bytes.NewReader(stream)),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := readAll(t, NewFrameReader(r, 4096, 64))
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

	t.Run("a header above the limit is refused with its size", func(t *testing.T) {
		fr := NewFrameReader(bytes.NewReader(frames("ok", string(bytes.Repeat([]byte("y"), 5000)))), 4096, 64)
		if p, err := fr.Next(); err != nil || string(p) != "ok" {
			t.Fatalf("first frame: %q %v", p, err)
		}
		_, err := fr.Next()
		var fse *FrameSizeError
		if !errors.Is(err, ErrFrameTooLarge) || !errors.As(err, &fse) || fse.Size != 5000 || fse.Max != 4096 {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("a stream that ends inside a frame is an unexpected EOF", func(t *testing.T) {
		s := frames("complete", "truncated")
		for _, cut := range []int{len(s) - 1, len(s) - 9, len(s) - 10} {
			_, err := readAll(t, NewFrameReader(bytes.NewReader(s[:cut]), 4096, 64))
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("cut at %d: err = %v", cut, err)
			}
		}
	})

	t.Run("a read error is passed on", func(t *testing.T) {
		boom := errors.New("boom")
		r := io.MultiReader(bytes.NewReader(frames("a")), iotest.ErrReader(boom))
		got, err := readAll(t, NewFrameReader(r, 4096, 64))
		if len(got) != 1 || err != boom {
			t.Fatalf("got %q, %v", got, err)
		}
	})
}

func TestAppendFrame(t *testing.T) {
	d := ISO87ASCII()
	m := purchase0200(t, d)
	b, err := AppendFrame([]byte("prefix"), m)
	must(t, err)
	body := pack(t, m)
	if string(b[:6]) != "prefix" || int(b[6])<<8|int(b[7]) != len(body) || !bytes.Equal(b[8:], body) {
		t.Fatal("frame layout wrong")
	}
	if _, err := AppendFrame(nil, NewMessage(d)); !errors.Is(err, ErrMTI) {
		t.Fatalf("a message without MTI framed: %v", err)
	}
}
