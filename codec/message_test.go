package codec

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/moov-io/iso8583"
)

// purchase0200 is a typical POS purchase request: 16 data fields, field 55
// carrying binary ICC data, no field above 64.
func purchase0200(t testing.TB, d *Dialect) *Message {
	t.Helper()
	m := NewMessage(d)
	must(t, m.SetMTI([4]byte{'0', '2', '0', '0'}))
	for id, v := range map[int]string{
		2:  "6299901100000018",
		3:  "000000",
		4:  "000000001234",
		7:  "1123180300",
		11: "000042",
		12: "180300",
		13: "1123",
		14: "2912",
		18: "5411",
		22: "051",
		25: "00",
		32: "10000001",
		37: "632718000042",
		41: "POS00001",
		42: "MERCHANT0000001",
		49: "156",
	} {
		must(t, m.SetString(id, v))
	}
	icc := bytes.Repeat([]byte{0x9f, 0x26, 0x08, 0x00, 0xff}, 20)
	must(t, m.Set(55, icc))
	return m
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func pack(t testing.TB, m *Message) []byte {
	t.Helper()
	b, err := m.Pack(nil)
	must(t, err)
	return b
}

// moovFields unpacks b with moov-io and returns every data field's content as
// raw bytes, the form Message keeps.
func moovFields(d *Dialect, b []byte) (map[int][]byte, string, error) {
	mm := iso8583.NewMessage(d.Spec())
	if err := mm.Unpack(b); err != nil {
		return nil, "", err
	}
	mti, _ := mm.GetMTI()
	out := map[int][]byte{}
	for id, f := range mm.GetFields() {
		if id < 2 {
			continue
		}
		v, err := f.Bytes()
		if err != nil {
			return nil, "", err
		}
		out[id] = v
	}
	return out, mti, nil
}

func ourFields(m *Message) map[int][]byte {
	out := map[int][]byte{}
	m.Each(func(id int, v []byte) { out[id] = append([]byte(nil), v...) })
	return out
}

func sameFields(t *testing.T, got, want map[int][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d fields, want %d", len(got), len(want))
	}
	for id, w := range want {
		if !bytes.Equal(got[id], w) {
			t.Errorf("field %d differs: got %q, want %q", id, got[id], w)
		}
	}
}

// dialects are the built-in dialects every codec test runs against.
func dialects() []*Dialect { return []*Dialect{ISO87ASCII(), ISO87Binary()} }

func TestMessageAgreesWithMoov(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.Name(), func(t *testing.T) { agreesWithMoov(t, d) })
	}
}

func agreesWithMoov(t *testing.T, d *Dialect) {
	t.Run("moov unpacks what Message packs, field for field", func(t *testing.T) {
		m := purchase0200(t, d)
		b := pack(t, m)
		got, mti, err := moovFields(d, b)
		must(t, err)
		if mti != "0200" {
			t.Fatalf("moov MTI %q", mti)
		}
		sameFields(t, got, ourFields(m))
	})

	t.Run("Message unpacks what moov packs, and packs it back byte for byte", func(t *testing.T) {
		mm := iso8583.NewMessage(d.Spec())
		mm.MTI("0210")
		must(t, mm.Field(2, "6299901100000018"))
		must(t, mm.Field(3, "310000"))
		must(t, mm.Field(39, "00"))
		must(t, mm.Field(54, "0001156C0000100000000002156C000010000000"))
		must(t, mm.Field(102, "01088886666"))
		must(t, mm.BinaryField(52, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
		b, err := mm.Pack()
		must(t, err)

		m := NewMessage(d)
		must(t, m.Unpack(b))
		want, _, err := moovFields(d, b)
		must(t, err)
		sameFields(t, ourFields(m), want)
		if again := pack(t, m); !bytes.Equal(again, b) {
			t.Fatalf("repack differs:\n got %q\nwant %q", again, b)
		}
	})
}

func TestBitmaps(t *testing.T) {
	d := ISO87ASCII()

	t.Run("a message without fields above 64 has a 16-hex-digit bitmap", func(t *testing.T) {
		b := pack(t, purchase0200(t, d))
		if bm := string(b[4:20]); bm[0] >= '8' {
			t.Fatalf("bit 1 set in %s", bm)
		}
		// Field 2 follows the primary bitmap directly: "16" is its LL length.
		if string(b[20:22]) != "16" {
			t.Fatalf("field 2 does not follow a 16-digit bitmap: %q", b[:24])
		}
	})

	t.Run("a field above 64 adds the secondary bitmap and sets bit 1", func(t *testing.T) {
		m := purchase0200(t, d)
		must(t, m.SetString(102, "01088886666"))
		b := pack(t, m)
		if b[4] < '8' {
			t.Fatalf("bit 1 not set: %q", b[4:20])
		}
		// Field 102 is bit 38 of the secondary bitmap: hex digit 9 of it.
		if sec := string(b[20:36]); sec != "0000000004000000" {
			t.Fatalf("secondary bitmap %s", sec)
		}
		back := NewMessage(d)
		must(t, back.Unpack(b))
		if string(back.Get(102)) != "01088886666" {
			t.Fatalf("field 102 = %q", back.Get(102))
		}
	})

	t.Run("an all-zero secondary bitmap is accepted and dropped on repack", func(t *testing.T) {
		plain := pack(t, purchase0200(t, d))
		withZero := append([]byte(nil), plain[:4]...)
		withZero = append(withZero, plain[4:20]...)
		withZero[4] = hexDigits[mustUnhex(withZero[4])|8]
		withZero = append(withZero, "0000000000000000"...)
		withZero = append(withZero, plain[20:]...)

		m := NewMessage(d)
		must(t, m.Unpack(withZero))
		if _, _, err := moovFields(d, withZero); err != nil {
			t.Fatalf("moov refuses it too: %v", err)
		}
		if again := pack(t, m); !bytes.Equal(again, plain) {
			t.Fatalf("repack:\n got %q\nwant %q", again, plain)
		}
	})

	t.Run("lowercase hex bitmaps are accepted", func(t *testing.T) {
		m := purchase0200(t, d)
		must(t, m.SetString(102, "1"))
		b := bytes.ToLower(pack(t, m)[:36])
		b = append(b, pack(t, m)[36:]...)
		must(t, NewMessage(d).Unpack(b))
	})
}

func mustUnhex(c byte) byte { v, _ := unhex(c); return v }

func TestUnpackRejects(t *testing.T) {
	d := ISO87ASCII()
	good := pack(t, purchase0200(t, d))

	cases := []struct {
		name  string
		input []byte
		err   error
		field int
	}{
		{"an empty frame", nil, ErrShort, 0},
		{"a message cut inside the MTI", []byte("02"), ErrShort, 0},
		{"a letter in the MTI", []byte("02A0" + string(good[4:])), ErrMTI, 0},
		{"a 1993 version digit", []byte("1200" + string(good[4:])), ErrMTI, 0},
		{"a bitmap with a non-hex character", append([]byte("0200G"), good[5:]...), ErrBitmap, 0},
		{"a message cut inside the bitmap", good[:12], ErrShort, 0},
		{"a letter in the amount", bytes.Replace(good, []byte("000000001234"), []byte("00000000X234"), 1), ErrContent, 4},
		{"a non-digit LL length", bytes.Replace(good, []byte("16629990"), []byte("1X629990"), 1), ErrLength, 2},
		{"an LL length above the field maximum", bytes.Replace(good, []byte("16629990"), []byte("20629990"), 1), ErrLength, 2},
		{"a message cut inside a field", good[:len(good)-3], ErrShort, 55},
		{"trailing bytes", append(append([]byte(nil), good...), 'X'), ErrTrailing, 0},
		{"bit 65 (a tertiary bitmap)", []byte("0200" + "8000000000000000" + "8000000000000000"), ErrUndefined, 65},
		{"a control character in an ans field", bytes.Replace(good, []byte("POS00001"), []byte("POS0000\x01"), 1), ErrContent, 41},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := NewMessage(d).Unpack(c.input)
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if f, ok := FieldOf(err); c.field != 0 && (!ok || f != c.field) {
				t.Fatalf("error names field %d (%v), want %d", f, ok, c.field)
			}
			if strings.Contains(err.Error(), "6299901100000018") {
				t.Fatalf("error leaks the PAN: %v", err)
			}
		})
	}

	t.Run("fields before the failing one stay readable", func(t *testing.T) {
		bad := bytes.Replace(good, []byte("POS00001"), []byte("POS0000\x01"), 1)
		m := NewMessage(d)
		if err := m.Unpack(bad); err == nil {
			t.Fatal("accepted")
		}
		if string(m.Get(11)) != "000042" || m.MTIString() != "0200" {
			t.Fatalf("STAN %q MTI %q", m.Get(11), m.MTIString())
		}
		if m.Has(41) || m.Has(42) {
			t.Fatal("failing or later fields are present")
		}
	})
}

func TestSet(t *testing.T) {
	d := ISO87ASCII()
	m := NewMessage(d)
	for _, c := range []struct {
		name string
		id   int
		v    string
		err  error
	}{
		{"a fixed field of the wrong length", 3, "00000", ErrLength},
		{"an LL field above its maximum", 2, strings.Repeat("1", 20), ErrLength},
		{"a letter in an n field", 11, "00004A", ErrContent},
		{"an undefined field", 65, "1", ErrUndefined},
		{"an x+n amount without its sign", 28, "000000100", ErrContent},
	} {
		t.Run(c.name+" is refused", func(t *testing.T) {
			if err := m.SetString(c.id, c.v); !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if m.Has(c.id) {
				t.Fatal("refused field is present")
			}
		})
	}
	t.Run("SetNumber zero-pads to the field length", func(t *testing.T) {
		must(t, m.SetNumber(4, 1234))
		if string(m.Get(4)) != "000000001234" {
			t.Fatalf("got %q", m.Get(4))
		}
		if err := m.SetNumber(11, 1234567); !errors.Is(err, ErrLength) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("Del removes a field and Copy mirrors presence", func(t *testing.T) {
		src := purchase0200(t, d)
		dst := NewMessage(d)
		must(t, dst.Copy(src, 11))
		must(t, dst.Copy(src, 39)) // absent in src
		if string(dst.Get(11)) != "000042" || dst.Has(39) {
			t.Fatal("copy wrong")
		}
		dst.Del(11)
		if dst.Has(11) || dst.Get(11) != nil {
			t.Fatal("Del left the field")
		}
	})
}

func TestResponseMTI(t *testing.T) {
	for in, want := range map[string]string{"0200": "0210", "0201": "0210", "0100": "0110", "0800": "0810", "0220": "0230", "0421": "0430"} {
		var m [4]byte
		copy(m[:], in)
		got, ok := ResponseMTI(m)
		if !ok || string(got[:]) != want {
			t.Errorf("ResponseMTI(%s) = %s %v, want %s", in, got[:], ok, want)
		}
	}
	if _, ok := ResponseMTI([4]byte{'0', '2', '1', '0'}); ok {
		t.Error("a response got a response MTI")
	}
}

func TestDescribeMasks(t *testing.T) {
	d := ISO87ASCII()
	m := purchase0200(t, d)
	must(t, m.SetString(35, "6299901100000018=29121010000000000"))
	must(t, m.Set(52, []byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}))
	var out bytes.Buffer
	must(t, Describe(&out, m))
	s := out.String()
	for _, secret := range []string{"6299901100000018", "=2912", "123456789ABCDEF0", "2912"} {
		if strings.Contains(s, secret) {
			t.Errorf("dump shows %q:\n%s", secret, s)
		}
	}
	for _, shown := range []string{"629990******0018", "MTI 0200", "000000001234", "[34 chars masked]", "[8 bytes masked]"} {
		if !strings.Contains(s, shown) {
			t.Errorf("dump lacks %q:\n%s", shown, s)
		}
	}
}

func TestMaskPAN(t *testing.T) {
	for in, want := range map[string]string{
		"6299901100000018":    "629990******0018",
		"6299901100000000018": "629990*********0018",
		"01088886666":         "*******6666",
		"123":                 "***",
	} {
		if got := MaskPAN([]byte(in)); got != want {
			t.Errorf("MaskPAN(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	d := ISO87ASCII()
	wire := pack(t, purchase0200(t, d))
	m := NewMessage(d)
	resp := NewMessage(d)
	out := make([]byte, 0, 1024)
	framing := Framing{}
	must(t, framing.Validate())
	allocs := testing.AllocsPerRun(200, func() {
		if err := m.Unpack(wire); err != nil {
			t.Fatal(err)
		}
		resp.Reset(d)
		_ = resp.SetMTI([4]byte{'0', '2', '1', '0'})
		for _, id := range []int{2, 3, 4, 7, 11, 12, 13, 32, 37, 41, 42, 49} {
			_ = resp.Copy(m, id)
		}
		_ = resp.SetString(39, "00")
		_ = resp.SetString(38, "000001")
		var err error
		if out, err = AppendFrame(out[:0], &framing, nil, resp); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("unpack + build response + pack allocates %.1f times per message", allocs)
	}
}

func TestInitResponse(t *testing.T) {
	d := ISO87ASCII()
	req := purchase0200(t, d)
	must(t, req.SetString(35, "6299901100000013=29121010000000000"))
	must(t, req.Set(52, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	must(t, req.SetString(39, "00")) // a request carrying a responder field

	resp := NewMessage(d)
	must(t, resp.InitResponse(req))
	if resp.MTIString() != "0210" {
		t.Fatalf("MTI %s", resp.MTIString())
	}
	for _, id := range []int{2, 3, 4, 7, 11, 12, 13, 18, 25, 32, 37, 41, 42, 49} {
		if !bytes.Equal(resp.Get(id), req.Get(id)) {
			t.Errorf("field %d not echoed", id)
		}
	}
	for _, id := range []int{14, 22, 35, 39, 52, 55} {
		if resp.Has(id) {
			t.Errorf("field %d echoed", id)
		}
	}
	t.Run("a response is not answered", func(t *testing.T) {
		if err := NewMessage(d).InitResponse(resp); !errors.Is(err, ErrNotRequest) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("it does not allocate once the buffer is warm", func(t *testing.T) {
		if n := testing.AllocsPerRun(100, func() { _ = resp.InitResponse(req) }); n != 0 {
			t.Fatalf("%.1f allocs", n)
		}
	})
}

func TestAdditionalAmounts(t *testing.T) {
	in := []AdditionalAmount{
		{AccountType: "00", AmountType: AmountLedger, Currency: 156, Amount: 19_998_766},
		{AccountType: "00", AmountType: AmountAvailable, Currency: 156, Amount: -1},
	}
	var b []byte
	for _, a := range in {
		b = AppendAdditionalAmount(b, a)
	}
	if string(b) != "0001156C0000199987660002156D000000000001" {
		t.Fatalf("field 54 = %s", b)
	}
	out, err := ParseAdditionalAmounts(b)
	must(t, err)
	if len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("round trip: %+v", out)
	}
	for _, bad := range []string{"0001156C00001999876", "0001156X000019998766", "00A1156C000019998766"} {
		if _, err := ParseAdditionalAmounts([]byte(bad)); !errors.Is(err, ErrAmounts) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

// TestClassChecksAgreeBytewise holds the eight-at-a-time class checks to
// the obvious byte loop, for every byte value at every position.
func TestClassChecksAgreeBytewise(t *testing.T) {
	for n := 1; n <= 17; n++ {
		for pos := 0; pos < n; pos++ {
			for b := 0; b < 256; b++ {
				v := bytes.Repeat([]byte{'5'}, n)
				v[pos] = byte(b)
				if got, want := digits(v), b >= '0' && b <= '9'; got != want {
					t.Fatalf("digits(%q) = %v", v, got)
				}
				v = bytes.Repeat([]byte{'a'}, n)
				v[pos] = byte(b)
				if got, want := printable(v), b >= 0x20 && b <= 0x7e; got != want {
					t.Fatalf("printable(%q) = %v", v, got)
				}
			}
		}
	}
}

func TestNewDialectRefusesAbsurdLengths(t *testing.T) {
	for _, f := range []FieldDef{
		{ID: 2, Class: ClassB, Length: 1 << 62, Enc: EncHex},
		{ID: 3, Class: ClassN, Length: 40000, Enc: EncASCII, Prefix: PrefixASCII, PrefixSize: 4},
		{ID: 4, Class: ClassN, Length: -1, Enc: EncBCD},
	} {
		if _, err := NewDialect(Layout{Name: "x", MTI: EncASCII, Bitmap: EncHex}, []FieldDef{f}); err == nil {
			t.Errorf("field %d of length %d accepted", f.ID, f.Length)
		}
	}
}
