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
