package codec

import (
	"bytes"
	"io"
	"testing"
)

func seedMessages(f *testing.F, d *Dialect) {
	m := purchase0200(f, d)
	f.Add(pack(f, m))
	must(f, m.SetString(102, "01088886666"))
	must(f, m.SetString(70, "301"))
	f.Add(pack(f, m))
	echo := NewMessage(d)
	must(f, echo.SetMTI([4]byte{'0', '8', '0', '0'}))
	must(f, echo.SetString(7, "1123180300"))
	must(f, echo.SetString(11, "000001"))
	must(f, echo.SetString(70, "301"))
	f.Add(pack(f, echo))
}

// FuzzUnpack holds Message to three rules on any input: it never panics;
// what it accepts, moov-io (the reference) accepts with the same content in
// every field; and what it accepts survives pack → unpack unchanged.
//
// Message is stricter than moov-io, on purpose: it refuses trailing bytes,
// non-digit length prefixes ("+9", " 9" parse in moov), control characters in
// text fields and letters in n fields. So only one direction is checked.
func FuzzUnpack(f *testing.F) { fuzzUnpack(f, ISO87ASCII()) }

// FuzzUnpackBinary is FuzzUnpack for the 1987 binary dialect.
func FuzzUnpackBinary(f *testing.F) { fuzzUnpack(f, ISO87Binary()) }

func fuzzUnpack(f *testing.F, d *Dialect) {
	seedMessages(f, d)
	f.Fuzz(func(t *testing.T, b []byte) { checkAgainstMoov(t, d, b) })
}

// checkAgainstMoov holds Message to fuzzUnpack's rules on input b: what
// Message accepts, moov-io accepts with the same content in every field, and
// it survives pack → unpack unchanged.
func checkAgainstMoov(t *testing.T, d *Dialect, b []byte) {
	m := NewMessage(d)
	if err := m.Unpack(b); err != nil {
		return
	}
	want, mti, err := moovFields(d, b)
	if err != nil {
		t.Fatalf("Message accepts what moov-io refuses: %v", err)
	}
	if mti != m.MTIString() {
		t.Fatalf("MTI %q vs moov %q", m.MTIString(), mti)
	}
	got := ourFields(m)
	if len(got) != len(want) {
		t.Fatalf("%d fields vs moov %d", len(got), len(want))
	}
	for id, w := range want {
		if !bytes.Equal(got[id], w) {
			t.Fatalf("field %d: %q vs moov %q", id, got[id], w)
		}
	}
	repacked, err := m.Pack(nil)
	if err != nil {
		t.Fatalf("accepted message does not pack: %v", err)
	}
	again := NewMessage(d)
	if err := again.Unpack(repacked); err != nil {
		t.Fatalf("repacked message does not unpack: %v", err)
	}
	for id, v := range got {
		if !bytes.Equal(again.Get(id), v) {
			t.Fatalf("field %d changed across pack/unpack", id)
		}
	}
	if canon, _ := again.Pack(nil); !bytes.Equal(canon, repacked) {
		t.Fatal("pack is not stable")
	}
}

// FuzzFrameReader feeds arbitrary streams, in arbitrary read sizes, to a
// frame reader of every framing: it must never panic, never return a frame
// above the limit or a header of the wrong size, and cut the same frames
// whatever the read sizes.
func FuzzFrameReader(f *testing.F) {
	for _, fr := range framings() {
		f.Add(frames(fr, header(fr), "0800", "", "0200abc"), uint8(1))
	}
	f.Add([]byte{0xff, 0xff, 1, 2}, uint8(3))
	f.Add([]byte("00a5hello"), uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		for _, fr := range framings() {
			fr.Max = 512
			whole := collect(t, fr, bytes.NewReader(stream))
			chunked := collect(t, fr, &chunkReader{b: stream, n: int(step%17) + 1})
			if len(whole) != len(chunked) {
				t.Fatalf("%s: %d frames whole, %d chunked", fr.name(), len(whole), len(chunked))
			}
			for i := range whole {
				if len(whole[i]) > fr.Max {
					t.Fatalf("%s: frame of %d bytes above the limit", fr.name(), len(whole[i]))
				}
				if !bytes.Equal(whole[i], chunked[i]) {
					t.Fatalf("%s: frame %d differs", fr.name(), i)
				}
			}
		}
	})
}

// collect returns every frame, header and message joined, until an error.
func collect(t *testing.T, f Framing, r io.Reader) [][]byte {
	fr, err := NewFrameReader(r, f, 64)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		h, p, err := fr.Next()
		if err != nil {
			return out
		}
		if len(p) > 0 && len(h) != f.Header {
			t.Fatalf("%s: header of %d bytes", f.name(), len(h))
		}
		out = append(out, append(append([]byte(nil), h...), p...))
	}
}

type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(c.n, len(p), len(c.b))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}
