package codec

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/moov-io/iso8583"
)

func TestScan(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.Name(), func(t *testing.T) {
			m := purchase0200(t, d)
			must(t, m.SetString(102, "01088886666"))
			wire := pack(t, m)
			var s Scan

			t.Run("kept fields equal the decoded message's, others are only present", func(t *testing.T) {
				must(t, d.Scan(wire, RoutingFields(), &s))
				if s.MTI() != [4]byte{'0', '2', '0', '0'} {
					t.Fatalf("MTI %q", s.MTI())
				}
				m.Each(func(id int, v []byte) {
					if !s.Has(id) {
						t.Errorf("field %d not present", id)
					}
					if RoutingFields().Has(id) && !bytes.Equal(s.Get(id), v) {
						t.Errorf("field %d = %q, want %q", id, s.Get(id), v)
					}
					if !RoutingFields().Has(id) && s.Get(id) != nil {
						t.Errorf("field %d kept though not asked for", id)
					}
				})
				if s.Has(39) || s.Get(39) != nil {
					t.Error("an absent field is present")
				}
			})

			t.Run("it does not allocate", func(t *testing.T) {
				keep := RoutingFields()
				if n := testing.AllocsPerRun(200, func() { _ = d.Scan(wire, keep, &s) }); n != 0 {
					t.Fatalf("%.1f allocs per scan", n)
				}
			})

			t.Run("it refuses what Unpack refuses, naming the field", func(t *testing.T) {
				for _, bad := range [][]byte{wire[:len(wire)-1], append(append([]byte(nil), wire...), 0), wire[:3]} {
					errScan := d.Scan(bad, RoutingFields(), &s)
					errFull := NewMessage(d).Unpack(bad)
					if errScan == nil || errFull == nil || errScan.Error() != errFull.Error() {
						t.Errorf("scan %v, unpack %v", errScan, errFull)
					}
				}
			})

			t.Run("more kept fields than a scan holds are refused, naming the first that does not fit", func(t *testing.T) {
				many := NewMessage(d)
				must(t, many.SetMTI([4]byte{'0', '8', '0', '0'}))
				for id := 66; id <= 90; id++ { // 25 fixed numeric fields
					f, _ := d.Field(id)
					if f.Class == ClassN && f.Prefix == Fixed {
						must(t, many.SetString(id, strings.Repeat("1", f.Length)))
					}
				}
				var all []int
				for id := 2; id <= MaxField; id++ {
					all = append(all, id)
				}
				err := d.Scan(pack(t, many), NewScanSet(all...), &s)
				if f, _ := FieldOf(err); !errors.Is(err, ErrScanFull) || f != 90 {
					t.Fatalf("err = %v", err)
				}
			})
		})
	}
}

// FuzzScan holds the scanner to moov-io and to Message on any input, for
// the 1987 ASCII dialect: what the scanner accepts, moov-io accepts, with
// the same MTI, the same fields present and the same content in every kept
// field; and whatever Message.Unpack (the strict full decoder) accepts, the
// scanner accepts with the same content.
func FuzzScan(f *testing.F) { fuzzScan(f, ISO87ASCII()) }

// FuzzScanBinary is FuzzScan for the 1987 binary dialect.
func FuzzScanBinary(f *testing.F) { fuzzScan(f, ISO87Binary()) }

func fuzzScan(f *testing.F, d *Dialect) {
	seedMessages(f, d)
	keep := RoutingFields()
	f.Fuzz(func(t *testing.T, b []byte) {
		b = append([]byte(nil), b...) // the Scan refers to its input
		var s Scan
		scanErr := d.Scan(b, keep, &s)
		m := NewMessage(d)
		fullErr := m.Unpack(b)
		if fullErr == nil && scanErr != nil {
			t.Fatalf("Unpack accepts what Scan refuses: %v", scanErr)
		}
		if scanErr != nil {
			return
		}
		mm := iso8583.NewMessage(d.Spec())
		if err := mm.Unpack(b); err != nil {
			t.Fatalf("Scan accepts what moov-io refuses: %v", err)
		}
		if mti, _ := mm.GetMTI(); mti != string(s.mti[:]) {
			t.Fatalf("MTI %q, moov-io %q", s.mti[:], mti)
		}
		fields := mm.GetFields()
		for id := 2; id <= MaxField; id++ {
			_, inMoov := fields[id]
			if inMoov != s.Has(id) {
				t.Fatalf("field %d present: scan %v, moov-io %v", id, s.Has(id), inMoov)
			}
			if !inMoov || !keep.Has(id) {
				continue
			}
			want, err := fields[id].Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s.Get(id), want) {
				t.Fatalf("field %d: scan %q, moov-io %q", id, s.Get(id), want)
			}
			if fullErr == nil && !bytes.Equal(s.Get(id), m.Get(id)) {
				t.Fatalf("field %d: scan %q, Unpack %q", id, s.Get(id), m.Get(id))
			}
		}
	})
}
