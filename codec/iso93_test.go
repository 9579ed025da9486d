package codec

import (
	"bytes"
	"errors"
	"testing"

	"github.com/moov-io/iso8583"
)

// purchase1200 is a typical 1993 POS purchase request: 12-digit local date
// and time, the 12-character POS data code, a function code, the alphabetic
// currency code 1993 allows, ICC data in 55, and field 105 to bring in the
// secondary bitmap.
func purchase1200(t testing.TB, d *Dialect) *Message {
	t.Helper()
	m := NewMessage(d)
	must(t, m.SetMTI([4]byte{'1', '2', '0', '0'}))
	for id, v := range map[int]string{
		2:   "6299901100000018",
		3:   "000000",
		4:   "000000001234",
		7:   "1123180300",
		11:  "000042",
		12:  "251123180300",
		14:  "2912",
		22:  "510101513001",
		24:  "200",
		26:  "5411",
		32:  "10000001",
		37:  "632718000042",
		41:  "POS00001",
		42:  "MERCHANT0000001",
		43:  "Corner Shop>Shanghai CN",
		49:  "CNY",
		105: "0000000000000000",
	} {
		must(t, m.SetString(id, v))
	}
	must(t, m.Set(55, bytes.Repeat([]byte{0x9f, 0x26, 0x08, 0x00, 0xff}, 20)))
	return m
}

func TestISO93AgreesWithMoov(t *testing.T) {
	d := ISO93ASCII()

	t.Run("moov unpacks a 1200 purchase Message packs, field for field", func(t *testing.T) {
		m := purchase1200(t, d)
		b := pack(t, m)
		got, mti, err := moovFields(d, b)
		must(t, err)
		if mti != "1200" {
			t.Fatalf("moov MTI %q", mti)
		}
		sameFields(t, got, ourFields(m))
	})

	t.Run("Message unpacks a 1210 moov packs, and packs it back byte for byte", func(t *testing.T) {
		mm := iso8583.NewMessage(d.Spec())
		mm.MTI("1210")
		must(t, mm.Field(2, "6299901100000018"))
		must(t, mm.Field(3, "310000"))
		must(t, mm.Field(11, "000042"))
		must(t, mm.Field(39, "000"))
		must(t, mm.Field(54, "0001156C0000100000000002156C000010000000"))
		must(t, mm.Field(102, "01088886666"))
		must(t, mm.BinaryField(53, []byte{0, 1, 2, 0xfe, 0xff}))
		must(t, mm.BinaryField(64, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
		must(t, mm.BinaryField(96, bytes.Repeat([]byte{0xa5}, 120)))
		b, err := mm.Pack()
		must(t, err)

		m := NewMessage(d)
		must(t, m.Unpack(b))
		want, _, err := moovFields(d, b)
		must(t, err)
		sameFields(t, ourFields(m), want)
		if string(m.Get(39)) != "000" {
			t.Fatalf("action code %q", m.Get(39))
		}
		if again := pack(t, m); !bytes.Equal(again, b) {
			t.Fatalf("repack differs:\n got %q\nwant %q", again, b)
		}
	})
}

func TestISO93Refuses(t *testing.T) {
	d := ISO93ASCII()

	t.Run("a 1987 MTI is refused when set", func(t *testing.T) {
		if err := NewMessage(d).SetMTI([4]byte{'0', '2', '0', '0'}); !errors.Is(err, ErrMTI) {
			t.Fatalf("err = %v, want ErrMTI", err)
		}
	})

	t.Run("a 0200 on the wire is refused with ErrMTI", func(t *testing.T) {
		b := pack(t, purchase1200(t, d))
		b[0] = '0'
		if err := NewMessage(d).Unpack(b); !errors.Is(err, ErrMTI) {
			t.Fatalf("err = %v, want ErrMTI", err)
		}
	})

	t.Run("a two-digit 1987 response code is too short for the action code", func(t *testing.T) {
		if err := NewMessage(d).SetString(39, "00"); !errors.Is(err, ErrLength) {
			t.Fatalf("err = %v, want ErrLength", err)
		}
	})

	t.Run("an x+n net reconciliation amount needs its sign", func(t *testing.T) {
		m := NewMessage(d)
		if err := m.SetString(97, "0000000000000100 "); !errors.Is(err, ErrContent) {
			t.Fatalf("err = %v, want ErrContent", err)
		}
		must(t, m.SetString(97, "D0000000000000100"))
	})
}

func TestISO93Response(t *testing.T) {
	d := ISO93ASCII()
	req := purchase1200(t, d)
	must(t, req.SetString(35, "6299901100000018=29121010000000000"))
	must(t, req.Set(52, []byte{1, 2, 3, 4, 5, 6, 7, 8}))

	resp := NewMessage(d)
	must(t, resp.InitResponse(req))
	if resp.MTIString() != "1210" {
		t.Fatalf("MTI %s", resp.MTIString())
	}
	for _, id := range []int{2, 3, 4, 11, 12, 24, 32, 37, 41, 42, 49} {
		if !bytes.Equal(resp.Get(id), req.Get(id)) {
			t.Errorf("field %d not echoed", id)
		}
	}
	for _, id := range []int{14, 22, 35, 52, 55} {
		if resp.Has(id) {
			t.Errorf("field %d echoed", id)
		}
	}
}

// FuzzUnpack93 is FuzzUnpack for the 1993 ASCII dialect. fuzzUnpack's seeds
// are 1987 messages this dialect refuses at the MTI, so it seeds its own and
// runs the same oracle through checkAgainstMoov.
func FuzzUnpack93(f *testing.F) {
	d := ISO93ASCII()
	seed := func(m *Message) {
		b := pack(f, m)
		must(f, NewMessage(d).Unpack(b)) // a seed the codec refuses explores nothing
		f.Add(b)
	}
	m := purchase1200(f, d)
	seed(m)
	must(f, m.SetString(102, "01088886666"))
	must(f, m.SetString(56, "1200000042251123180300"))
	must(f, m.Set(96, []byte{0, 0xff}))
	seed(m)
	echo := NewMessage(d)
	must(f, echo.SetMTI([4]byte{'1', '8', '0', '4'}))
	must(f, echo.SetString(7, "1123180300"))
	must(f, echo.SetString(11, "000001"))
	must(f, echo.SetString(24, "831"))
	seed(echo)
	f.Fuzz(func(t *testing.T, b []byte) { checkAgainstMoov(t, d, b) })
}
