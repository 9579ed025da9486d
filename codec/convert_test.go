package codec

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func builtinMap(t testing.TB, name string) *Map {
	t.Helper()
	maps, err := BuiltinMaps(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.Name() == name {
			return m
		}
	}
	t.Fatalf("no built-in map %s", name)
	return nil
}

func set(t testing.TB, m *Message, fields map[int]string) {
	t.Helper()
	for id, v := range fields {
		must(t, m.SetString(id, v))
	}
}

func want(t *testing.T, m *Message, fields map[int]string) {
	t.Helper()
	for id, v := range fields {
		if v == "" {
			if m.Has(id) {
				t.Errorf("field %d = %q, want it absent", id, m.Get(id))
			}
			continue
		}
		if string(m.Get(id)) != v {
			t.Errorf("field %d = %q, want %q", id, m.Get(id), v)
		}
	}
}

var convNow = time.Date(2026, 11, 23, 18, 3, 0, 0, time.UTC)

func TestISO93ToISO87(t *testing.T) {
	m := builtinMap(t, "iso93-to-iso87")
	d93, d87 := m.From(), m.To()

	t.Run("a 1200 purchase becomes a 0200 and its 0210 a 1210 with action codes", func(t *testing.T) {
		req := NewMessage(d93)
		must(t, req.SetMTI([4]byte{'1', '2', '0', '0'}))
		set(t, req, map[int]string{
			2: "6299901100000013", 3: "000000", 4: "000000001234", 7: "1123180300", 11: "000042",
			12: "261123180259", 15: "261124", 22: "51010151134C", 24: "200", 25: "1500", 26: "5411",
			32: "10000004", 37: "632718000042", 41: "BANK0001", 42: "MERCHANT0000001",
			43: "JUNCTION DEMO SHOP, BEIJING", 49: "156",
		})
		must(t, req.Set(64, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
		internal := NewMessage(d87)
		var saved Saved
		must(t, m.Request(internal, req, &Context{Now: convNow}, &saved))
		if internal.MTIString() != "0200" {
			t.Fatalf("MTI %s", internal.MTIString())
		}
		want(t, internal, map[int]string{
			2: "6299901100000013", 3: "000000", 4: "000000001234", 7: "1123180300", 11: "000042",
			12: "180259", 13: "1123", 15: "1124", 18: "5411", 32: "10000004", 37: "632718000042",
			41: "BANK0001", 42: "MERCHANT0000001", 49: "156",
			43: "JUNCTION DEMO SHOP, BEIJING             ",
			22: "", 24: "", 25: "", 26: "", 64: "", 70: "",
		})

		resp := NewMessage(d87)
		must(t, resp.InitResponse(internal))
		set(t, resp, map[int]string{39: "51", 54: "0001156C0000000500000002156C000000050000"})
		back := NewMessage(d93)
		must(t, m.Response(back, resp, &saved))
		if back.MTIString() != "1210" {
			t.Fatalf("MTI %s", back.MTIString())
		}
		want(t, back, map[int]string{
			39: "116", 11: "000042", 12: "261123180259", 15: "261124", 24: "200", 25: "1500", 26: "5411",
			43: "JUNCTION DEMO SHOP, BEIJING", 54: "0001156C0000000500000002156C000000050000", 13: "",
		})
	})

	t.Run("a settlement date the host answers in 15 reaches a 1993 request without one as YYMMDD", func(t *testing.T) {
		req := NewMessage(d93)
		must(t, req.SetMTI([4]byte{'1', '2', '0', '0'}))
		set(t, req, map[int]string{2: "6299901100000013", 3: "000000", 4: "000000001234", 7: "1123180300",
			11: "000043", 12: "261123180259", 24: "200", 32: "10000004", 37: "632718000043", 41: "BANK0001", 49: "156"})
		internal := NewMessage(d87)
		var saved Saved
		must(t, m.Request(internal, req, &Context{Now: convNow}, &saved))
		resp := NewMessage(d87)
		must(t, resp.InitResponse(internal))
		set(t, resp, map[int]string{39: "00", 15: "1123"})
		back := NewMessage(d93)
		must(t, m.Response(back, resp, &saved)) // no Context: the year comes from the clock
		if got, wantDate := string(back.Get(15)), fmt.Sprintf("%02d1123", yearOf([]byte("1123"), time.Now())%100); got != wantDate {
			t.Fatalf("15 %q, want %q", got, wantDate)
		}
	})

	t.Run("an echo test 1804/831 becomes 0800/301 and its answer 1814 with action code 800", func(t *testing.T) {
		req := NewMessage(d93)
		must(t, req.SetMTI([4]byte{'1', '8', '0', '4'}))
		set(t, req, map[int]string{7: "1123180300", 11: "000007", 24: "831"})
		internal := NewMessage(d87)
		var saved Saved
		must(t, m.Request(internal, req, &Context{Now: convNow}, &saved))
		if internal.MTIString() != "0800" || string(internal.Get(70)) != "301" {
			t.Fatalf("MTI %s 70 %q", internal.MTIString(), internal.Get(70))
		}
		resp := NewMessage(d87)
		must(t, resp.InitResponse(internal))
		must(t, resp.SetString(39, "00"))
		back := NewMessage(d93)
		must(t, m.Response(back, resp, &saved))
		if back.MTIString() != "1814" || string(back.Get(39)) != "800" || string(back.Get(24)) != "831" {
			t.Fatalf("MTI %s 39 %q 24 %q", back.MTIString(), back.Get(39), back.Get(24))
		}
	})

	t.Run("a response code the table lacks becomes 909", func(t *testing.T) {
		if got := m.ResponseCode("77", '2'); got != "909" {
			t.Fatalf("77 → %s", got)
		}
		if got := m.ResponseCode("30", '2'); got != "904" {
			t.Fatalf("30 → %s", got)
		}
	})
}

func TestISO87ToISO93(t *testing.T) {
	m := builtinMap(t, "iso87-to-iso93")
	d87, d93 := m.From(), m.To()
	req := NewMessage(d87)
	must(t, req.SetMTI([4]byte{'0', '2', '0', '0'}))
	set(t, req, map[int]string{
		2: "6299901100000013", 3: "000000", 4: "000000001234", 7: "1123175959", 11: "000042",
		12: "180259", 13: "1123", 18: "5411", 37: "632718000042", 41: "POS00001", 49: "156",
	})

	t.Run("the outbound leg gets the link's STAN and RRN, the response the originals back", func(t *testing.T) {
		out := NewMessage(d93)
		var saved Saved
		must(t, m.Request(out, req, &Context{Now: convNow, STAN: 4242, RRN: "OUT000004242"}, &saved))
		if out.MTIString() != "1200" {
			t.Fatalf("MTI %s", out.MTIString())
		}
		want(t, out, map[int]string{7: "1123180300", 11: "004242", 37: "OUT000004242", 12: "261123180259", 24: "200", 26: "5411", 13: ""})

		resp := NewMessage(d93)
		must(t, resp.InitResponse(out))
		must(t, resp.SetString(39, "000"))
		back := NewMessage(d87)
		must(t, m.Response(back, resp, &saved))
		want(t, back, map[int]string{39: "00", 7: "1123175959", 11: "000042", 37: "632718000042", 12: "180259", 13: "1123"})
		if back.MTIString() != "0210" {
			t.Fatalf("MTI %s", back.MTIString())
		}
	})

	t.Run("without new ids from the link the STAN and RRN are copied", func(t *testing.T) {
		out := NewMessage(d93)
		var saved Saved
		must(t, m.Request(out, req, &Context{Now: convNow}, &saved))
		want(t, out, map[int]string{11: "000042", 37: "632718000042"})
	})

	t.Run("a transaction of 31 December converted on 1 January keeps last year", func(t *testing.T) {
		late := NewMessage(d87)
		must(t, late.SetMTI([4]byte{'0', '2', '0', '0'}))
		set(t, late, map[int]string{12: "235959", 13: "1231", 7: "1231235959", 11: "000001", 3: "000000"})
		out := NewMessage(d93)
		var saved Saved
		must(t, m.Request(out, late, &Context{Now: time.Date(2027, 1, 1, 0, 0, 5, 0, time.UTC)}, &saved))
		if string(out.Get(12)) != "261231235959" {
			t.Fatalf("12 = %s", out.Get(12))
		}
	})
}

func TestNewMapReportsEveryProblem(t *testing.T) {
	d87, d93 := ISO87ASCII(), ISO93ASCII()
	_, err := NewMap(MapSpec{
		Name: "broken",
		Request: map[int][]Rule{
			12: {{From: 12, Const: "x"}},
			13: {{Restore: true}},
			15: {{Map: "nope"}},
			7:  {{Derive: "tomorrow"}},
			8:  {{Drop: true, Fit: "right"}},
			9:  {{Slice: [2]int{4, 2}}},
		},
	}, d93, d87)
	if err == nil {
		t.Fatal("built")
	}
	for _, w := range []string{
		"request field 12: give one source",
		"request field 13: restore is for responses",
		`request field 15: map "nope": no such table`,
		`request field 7: derive "tomorrow"`,
		"request field 8: drop takes no other setting",
		"request field 9: slice",
		"request field 22: iso93ascii and iso87ascii define it differently",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q", w)
		}
	}
}

func TestLoadMapFiles(t *testing.T) {
	dialects := map[string]*Dialect{"iso87ascii": ISO87ASCII(), "iso87binary": ISO87Binary(), "iso93ascii": ISO93ASCII()}
	for name, c := range map[string]struct{ yaml, err string }{
		"a misspelt setting":   {"name: x\nfrom: iso87ascii\nto: iso87binary\nrequest:\n  12: {form: 13}\n", "field form not found"},
		"an unknown rule word": {"name: x\nfrom: iso87ascii\nto: iso87binary\nrequest:\n  12: keep\n", `rule "keep"`},
		"an unknown dialect":   {"name: x\nfrom: iso87ascii\nto: iso99\n", `no dialect "iso99"`},
		"no name":              {"from: iso87ascii\nto: iso87binary\n", "no name"},
	} {
		t.Run(name+" is refused", func(t *testing.T) {
			_, err := LoadMap([]byte(c.yaml), dialects)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("a missing file names the path", func(t *testing.T) {
		if _, err := LoadMapFile("/no/such/map.yaml", dialects); err == nil || !strings.Contains(err.Error(), "/no/such/map.yaml") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCopyMapASCIIBinaryRoundTrip(t *testing.T) {
	ascii, bin := ISO87ASCII(), ISO87Binary()
	there, err := CopyMap(ascii, bin)
	must(t, err)
	if _, err := CopyMap(ascii, ISO93ASCII()); err == nil {
		t.Fatal("a copy map between layouts that differ")
	}
	src := purchase0200(t, ascii)
	must(t, src.SetString(102, "01088886666"))
	wire := pack(t, src)

	a, b, c := NewMessage(ascii), NewMessage(bin), NewMessage(bin)
	var saved Saved
	ctx := &Context{Now: convNow}
	out := make([]byte, 0, 1024)
	roundTrip := func() []byte {
		must(t, a.Unpack(wire))
		must(t, there.Request(b, a, ctx, &saved))
		binWire, err := b.Pack(out[:0])
		must(t, err)
		must(t, c.Unpack(binWire))
		must(t, there.Request(a, c, ctx, &saved)) // a copy map runs both ways: reuse it reversed below
		return binWire
	}
	binWire := roundTrip()
	if bytes.Equal(binWire, wire) {
		t.Fatal("nothing was re-encoded")
	}
	back, err := CopyMap(bin, ascii)
	must(t, err)
	must(t, back.Request(a, c, ctx, &saved))
	if again := pack(t, a); !bytes.Equal(again, wire) {
		t.Fatalf("ASCII → binary → ASCII changed the message:\n%q\n%q", again, wire)
	}
}

func TestConversionDoesNotAllocate(t *testing.T) {
	m := builtinMap(t, "iso93-to-iso87")
	req := NewMessage(m.From())
	must(t, req.SetMTI([4]byte{'1', '2', '0', '0'}))
	set(t, req, map[int]string{2: "6299901100000013", 3: "000000", 4: "000000001234", 7: "1123180300",
		11: "000042", 12: "261123180259", 24: "200", 41: "BANK0001", 43: "SHOP", 49: "156"})
	internal, resp, back := NewMessage(m.To()), NewMessage(m.To()), NewMessage(m.From())
	ctx := &Context{Now: convNow}
	var saved Saved
	n := testing.AllocsPerRun(200, func() {
		if err := m.Request(internal, req, ctx, &saved); err != nil {
			t.Fatal(err)
		}
		_ = resp.InitResponse(internal)
		_ = resp.SetString(39, "00")
		if err := m.Response(back, resp, &saved); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%.1f allocs per request and response conversion", n)
	}
}

func TestConversionErrorsNameTheField(t *testing.T) {
	m := builtinMap(t, "iso93-to-iso87")
	req := NewMessage(m.From())
	must(t, req.SetMTI([4]byte{'1', '2', '0', '0'}))
	must(t, req.SetString(49, "EUR")) // 1993 allows an alphabetic currency; 1987 field 49 is n3
	var saved Saved
	err := m.Request(NewMessage(m.To()), req, &Context{Now: convNow}, &saved)
	if f, _ := FieldOf(err); !errors.Is(err, ErrConvert) || f != 49 {
		t.Fatalf("err = %v", err)
	}
}

// FuzzConvert feeds any bytes to the conversions. A 1987 ASCII message the
// codec accepts goes to binary and back unchanged; a 1993 message it
// accepts either converts into a 1987 message that packs and decodes, or
// is refused with ErrConvert; nothing panics.
func FuzzConvert(f *testing.F) {
	ascii, bin := ISO87ASCII(), ISO87Binary()
	seedMessages(f, ascii)
	m93 := builtinMap(f, "iso93-to-iso87")
	req := purchase1200(f, m93.From())
	f.Add(pack(f, req))
	there, err := CopyMap(ascii, bin)
	must(f, err)
	back, err := CopyMap(bin, ascii)
	must(f, err)
	f.Fuzz(func(t *testing.T, b []byte) {
		var saved Saved
		ctx := &Context{Now: convNow, Institution: "1"}
		if a := NewMessage(ascii); a.Unpack(b) == nil {
			x, y, z := NewMessage(bin), NewMessage(bin), NewMessage(ascii)
			must(t, there.Request(x, a, ctx, &saved))
			must(t, y.Unpack(pack(t, x)))
			must(t, back.Request(z, y, ctx, &saved))
			if !bytes.Equal(pack(t, z), pack(t, a)) {
				t.Fatal("ASCII → binary → ASCII changed the message")
			}
		}
		if r := NewMessage(m93.From()); r.Unpack(b) == nil {
			internal := NewMessage(m93.To())
			err := m93.Request(internal, r, ctx, &saved)
			if err != nil {
				if !errors.Is(err, ErrConvert) {
					t.Fatalf("refused without ErrConvert: %v", err)
				}
				return
			}
			if err := NewMessage(m93.To()).Unpack(pack(t, internal)); err != nil {
				t.Fatalf("a converted message does not decode: %v", err)
			}
		}
	})
}

// FuzzLoadMap feeds any bytes to the map loader: it must never panic, and a
// map it accepts must convert a 1993 purchase without panicking.
func FuzzLoadMap(f *testing.F) {
	for _, name := range []string{"maps/iso93-to-iso87.yaml", "maps/iso87-to-iso93.yaml"} {
		raw, err := builtinMapFiles.ReadFile(name)
		must(f, err)
		f.Add(raw)
	}
	f.Add([]byte("name: x\nfrom: iso93ascii\nto: iso87ascii\ncopy_or_drop: true\nrequest:\n  12: [restore, {from: 12}]\n"))
	dialects := map[string]*Dialect{"iso87ascii": ISO87ASCII(), "iso87binary": ISO87Binary(), "iso93ascii": ISO93ASCII()}
	req := purchase1200(f, dialects["iso93ascii"])
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := LoadMap(raw, dialects)
		if err != nil {
			return
		}
		src := req
		if m.From().Name() != "iso93ascii" {
			src = purchase0200(t, m.From())
		}
		var saved Saved
		_ = m.Request(NewMessage(m.To()), src, &Context{Now: convNow, STAN: 1, RRN: "R", Institution: "1"}, &saved)
	})
}
