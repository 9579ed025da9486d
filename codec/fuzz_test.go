package codec

import (
	"bytes"
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
	f.Fuzz(func(t *testing.T, b []byte) {
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
	})
}

// FuzzFrameReader feeds arbitrary streams, in arbitrary read sizes, to the
// frame reader: it must never panic, never return a frame above the limit,
// and cut the same frames whatever the read sizes.
func FuzzFrameReader(f *testing.F) {
	f.Add(frames("0800", "0200abc"), uint8(1))
	f.Add([]byte{0xff, 0xff, 1, 2}, uint8(3))
	f.Add([]byte{0, 0, 0, 5, 'a'}, uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		const limit = 512
		whole := collect(NewFrameReader(bytes.NewReader(stream), limit, 64))
		chunked := collect(NewFrameReader(&chunkReader{b: stream, n: int(step%17) + 1}, limit, 64))
		if len(whole) != len(chunked) {
			t.Fatalf("%d frames whole, %d chunked", len(whole), len(chunked))
		}
		for i := range whole {
			if len(whole[i]) > limit {
				t.Fatalf("frame of %d bytes above the limit", len(whole[i]))
			}
			if !bytes.Equal(whole[i], chunked[i]) {
				t.Fatalf("frame %d differs", i)
			}
		}
	})
}

func collect(fr *FrameReader) [][]byte {
	var out [][]byte
	for {
		p, err := fr.Next()
		if err != nil {
			return out
		}
		out = append(out, append([]byte(nil), p...))
	}
}

type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, errEOF
	}
	n := min(c.n, len(p), len(c.b))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}
