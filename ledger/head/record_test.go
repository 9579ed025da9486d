package head

import (
	"bytes"
	"errors"
	"testing"
)

func TestRecordsRoundTrip(t *testing.T) {
	want := Total{Currency: 156, Debits: 1, Credits: 1 << 40, DebitsPending: -3, CreditsPending: 4, Entries: 5}
	got, err := decodeTotal(appendTotal(nil, &want), 156)
	if err != nil || got != want {
		t.Fatalf("total: %+v, %v; want %+v", got, err, want)
	}
	if seq, err := decodeHighWater(appendHighWater(nil, 1<<50)); err != nil || seq != 1<<50 {
		t.Fatalf("high-water: %d, %v", seq, err)
	}
	b := appendTotal(nil, &want)
	b[3] ^= 1
	if _, err := decodeTotal(b, 156); !errors.Is(err, errCorrupt) {
		t.Fatalf("flipped bit: %v, want errCorrupt", err)
	}
	for _, k := range [][]byte{highWaterKey("beijing"), highWaterKey("b")} {
		if r, err := regionOfHighWater(k); err != nil || string(k[3:]) != r {
			t.Fatalf("regionOfHighWater(%q) = %q, %v", k, r, err)
		}
	}
	if bytes.HasPrefix(regionKey("beijing", 156), appendRegion(nil, prefixRegion, "bei")) {
		t.Fatal("the prefix of region bei matches a key of region beijing")
	}
}

// FuzzDecode checks that the decoders never panic and that whatever decodes re-encodes to the
// same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(appendTotal(nil, &Total{Debits: 7, Credits: 7, Entries: 1}))
	f.Add(appendHighWater(nil, 42))
	f.Fuzz(func(t *testing.T, b []byte) {
		if tot, err := decodeTotal(b, 1); err == nil && !bytes.Equal(appendTotal(nil, &tot), b) {
			t.Fatalf("total %x re-encodes differently", b)
		}
		if seq, err := decodeHighWater(b); err == nil && !bytes.Equal(appendHighWater(nil, seq), b) {
			t.Fatalf("high-water %x re-encodes differently", b)
		}
		if len(b) >= len(prefixHighWater) {
			regionOfHighWater(append([]byte(prefixHighWater), b[len(prefixHighWater):]...))
		}
	})
}
