package head

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/junction-switch/junction/ledger"
)

func sampleTransfer() ledger.Transfer {
	return ledger.Transfer{Seq: 9, TxID: ledger.NewTxID([]byte("x")), Kind: ledger.KindPost, Debit: 1, Credit: 1001,
		Amount: 300, Currency: 156, Time: 1 << 60, Terminal: "T1", Merchant: "M1", Original: 7, Expires: -1,
		Released: 500, Acquirer: "1001", STAN: "000123", RRN: "RRN1", Window: 3, SettleDate: 20260301}
}

func TestDetailAndKeysRoundTrip(t *testing.T) {
	want := sampleTransfer()
	got, err := decodeDetail(appendDetail(nil, &want))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("detail: %+v, %v; want %+v", got, err, want)
	}
	b := appendDetail(nil, &want)
	b[20] ^= 1
	if _, err := decodeDetail(b); !errors.Is(err, errCorrupt) {
		t.Fatalf("flipped bit: %v, want errCorrupt", err)
	}
	k := appendTail(rrnIndexPrefix("RRN1", ""), "beijing", 42)
	if r, seq, err := tailOf(k, len(prefixByRRN)); err != nil || r != "beijing" || seq != 42 {
		t.Fatalf("tailOf: %q %d %v", r, seq, err)
	}
	for k, acq := range map[string]string{string(windowSeqsKey(nil, 3, "beijing")): "",
		string(dateSeqsKey(nil, 20260301, "1001", true, "beijing")): "1001", string(dateSeqsKey(nil, 20260301, "", true, "beijing")): ""} {
		if a, r, err := parseSeqsKey([]byte(k)); err != nil || a != acq || r != "beijing" {
			t.Fatalf("parseSeqsKey(%q): %q %q %v", k, a, r, err)
		}
	}
	l, err := parseGLKey(glKey(3, "1001", "beijing", "M1", 1001, 156))
	if err != nil || l.Window != 3 || l.Institution != "1001" || l.Region != "beijing" || l.Merchant != "M1" ||
		l.Account != 1001 || l.Currency != 156 {
		t.Fatalf("parseGLKey: %+v, %v", l, err)
	}
	acq, m, cur, f, err := parseClearingKey(clearingKey(3, "1001", "", 156, flowDepositReversal))
	if err != nil || acq != "1001" || m != "" || cur != 156 || f != flowDepositReversal {
		t.Fatalf("parseClearingKey: %s %s %d %v %v", acq, m, cur, f, err)
	}
	w := Window{Number: 2, Date: 20260301, State: StateClosing, Points: []Point{{Region: "a", Reported: true, Last: 9}}}
	var w2 Window
	if err := decodeJSON("window", appendJSON(nil, &w), &w2); err != nil || !reflect.DeepEqual(w, w2) {
		t.Fatalf("window: %+v, %v", w2, err)
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	want := Total{Currency: 156, Debits: 1, Credits: 1 << 40, DebitsPending: -3, CreditsPending: 4, Entries: 5}
	got, err := decodeTotal(appendTotal(nil, &want), 156)
	if err != nil || got != want {
		t.Fatalf("total: %+v, %v; want %+v", got, err, want)
	}
	if seq, err := decodeHighWater(appendHighWater(nil, 1<<50)); err != nil || seq != 1<<50 {
		t.Fatalf("high-water: %d, %v", seq, err)
	}
	if r, err := decodeRange(appendRange(nil, &seqRange{first: 3, last: 1 << 40})); err != nil || r != (seqRange{3, 1 << 40}) {
		t.Fatalf("seq range: %+v, %v", r, err)
	}
	if _, err := decodeRange(appendRange(nil, &seqRange{first: 5, last: 4})); !errors.Is(err, errCorrupt) {
		t.Fatalf("seq range 5..4: %v, want errCorrupt", err)
	}
	if n, err := decodeLayout(appendLayout(nil, layout)); err != nil || n != layout {
		t.Fatalf("layout: %d, %v", n, err)
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
	tr := sampleTransfer()
	f.Add(appendDetail(nil, &tr))
	f.Add(appendJSON(nil, &Window{Number: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if tot, err := decodeTotal(b, 1); err == nil && !bytes.Equal(appendTotal(nil, &tot), b) {
			t.Fatalf("total %x re-encodes differently", b)
		}
		if seq, err := decodeHighWater(b); err == nil && !bytes.Equal(appendHighWater(nil, seq), b) {
			t.Fatalf("high-water %x re-encodes differently", b)
		}
		if tr, err := decodeDetail(b); err == nil && !bytes.Equal(appendDetail(nil, &tr), b) {
			t.Fatalf("detail %x re-encodes differently", b)
		}
		var w Window
		decodeJSON("window", b, &w)
		tailOf(b, 0)
		parseGLKey(append([]byte(prefixGL), b...))
		parseSeqsKey(append([]byte(prefixWindowSeqs), b...))
		parseSeqsKey(append([]byte(prefixDateSeqs), b...))
		if len(b) >= 4 {
			parseClearingKey(append([]byte(prefixClearing), b...))
		}
		if len(b) >= len(prefixHighWater) {
			regionOfHighWater(append([]byte(prefixHighWater), b[len(prefixHighWater):]...))
		}
	})
}

func TestOpenRefusesAnotherLayout(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for name, keys := range map[string]map[string][]byte{
		"the first layout (no layout record)": {"w/\x07beijing": appendHighWater(nil, 9)},
		"a later layout":                      {prefixLayout: appendLayout(nil, layout+1)},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := badger.Open(badgerOptions(dir, log))
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(txn *badger.Txn) error {
				for k, v := range keys {
					if err := txn.Set([]byte(k), v); err != nil {
						return err
					}
				}
				return nil
			})
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			if h, err := Open(Options{Dir: dir, Logger: log}); !errors.Is(err, ErrLayout) {
				if h != nil {
					h.Close()
				}
				t.Fatalf("Open: %v, want ErrLayout", err)
			}
		})
	}
	t.Run("a new directory gets the layout record and opens again", func(t *testing.T) {
		dir := t.TempDir()
		for range 2 {
			h, err := Open(Options{Dir: dir, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			h.Close()
		}
	})
}
