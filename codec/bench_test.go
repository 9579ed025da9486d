package codec

import (
	"testing"

	"github.com/moov-io/iso8583"
)

// The codec benchmarks run the same typical 0200 through this package's
// Message and through moov-io, side by side:
//
//	go test -run '^$' -bench . -benchmem ./codec

func BenchmarkUnpack(b *testing.B) {
	d := ISO87ASCII()
	wire := pack(b, purchase0200(b, d))
	m := NewMessage(d)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Unpack(wire); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScan reads the routing and matching fields of the same 0200.
func BenchmarkScan(b *testing.B) {
	for _, d := range dialects() {
		b.Run(d.Name(), func(b *testing.B) {
			wire := pack(b, purchase0200(b, d))
			keep := RoutingFields()
			var s Scan
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Scan(wire, keep, &s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMoovUnpack is moov-io's full Unpack of the same bytes, per
// dialect: the reference BenchmarkScan is measured against.
func BenchmarkMoovUnpack(b *testing.B) {
	for _, d := range dialects() {
		b.Run(d.Name(), func(b *testing.B) {
			wire := pack(b, purchase0200(b, d))
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				m := iso8583.NewMessage(d.Spec())
				if err := m.Unpack(wire); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRespond is the switch's codec work per authorization: unpack the
// 0200, build the 0210 from it, pack it behind its frame header.
func BenchmarkRespond(b *testing.B) {
	d := ISO87ASCII()
	wire := pack(b, purchase0200(b, d))
	req, resp := NewMessage(d), NewMessage(d)
	out := make([]byte, 0, 1024)
	framing := Framing{}
	if err := framing.Validate(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := req.Unpack(wire); err != nil {
			b.Fatal(err)
		}
		if err := resp.InitResponse(req); err != nil {
			b.Fatal(err)
		}
		_ = resp.SetString(39, "00")
		out, _ = AppendFrame(out[:0], &framing, nil, resp)
	}
}

func BenchmarkMoovRespond(b *testing.B) {
	d := ISO87ASCII()
	wire := pack(b, purchase0200(b, d))
	b.ReportAllocs()
	for b.Loop() {
		req := iso8583.NewMessage(d.Spec())
		if err := req.Unpack(wire); err != nil {
			b.Fatal(err)
		}
		resp := iso8583.NewMessage(d.Spec())
		resp.MTI("0210")
		for _, id := range []int{2, 3, 4, 7, 11, 12, 13, 18, 25, 32, 37, 41, 42, 49} {
			v, _ := req.GetString(id)
			_ = resp.Field(id, v)
		}
		_ = resp.Field(39, "00")
		if _, err := resp.Pack(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConvertRoundTrip is the conversion figure: the typical
// 0200 from 1987 ASCII wire bytes to 1987 binary wire bytes and back
// (unpack, convert, pack, twice).
func BenchmarkConvertRoundTrip(b *testing.B) {
	ascii, bin := ISO87ASCII(), ISO87Binary()
	there, err := CopyMap(ascii, bin)
	if err != nil {
		b.Fatal(err)
	}
	back, err := CopyMap(bin, ascii)
	if err != nil {
		b.Fatal(err)
	}
	wire := pack(b, purchase0200(b, ascii))
	a, x, y, z := NewMessage(ascii), NewMessage(bin), NewMessage(bin), NewMessage(ascii)
	ctx := &Context{}
	var saved Saved
	out := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Unpack(wire); err != nil {
			b.Fatal(err)
		}
		_ = there.Request(x, a, ctx, &saved)
		binWire, _ := x.Pack(out[:0])
		if err := y.Unpack(binWire); err != nil {
			b.Fatal(err)
		}
		_ = back.Request(z, y, ctx, &saved)
		out, _ = z.Pack(out[:0])
	}
}

// BenchmarkConvert93 converts a 1993 request into 1987 and its response
// back, messages already decoded.
func BenchmarkConvert93(b *testing.B) {
	m := builtinMap(b, "iso93-to-iso87")
	req := NewMessage(m.From())
	must(b, req.SetMTI([4]byte{'1', '2', '0', '0'}))
	set(b, req, map[int]string{2: "6299901100000013", 3: "000000", 4: "000000001234", 7: "1123180300",
		11: "000042", 12: "261123180259", 24: "200", 32: "10000004", 37: "632718000042", 41: "BANK0001",
		42: "MERCHANT0000001", 43: "JUNCTION DEMO SHOP, BEIJING", 49: "156"})
	internal, resp, back := NewMessage(m.To()), NewMessage(m.To()), NewMessage(m.From())
	ctx := &Context{Now: convNow}
	var saved Saved
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Request(internal, req, ctx, &saved)
		_ = resp.InitResponse(internal)
		_ = resp.SetString(39, "00")
		_ = m.Response(back, resp, &saved)
	}
}
