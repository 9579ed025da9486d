package recon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
)

// A partner's CSV with two columns swapped puts a card number where another field belongs; the
// refusal must name the line and the field, never show the card number.
func TestReconcileErrorsNeverShowAPAN(t *testing.T) {
	w := newWorld(t)
	cfg := w.config()
	name := Name{Org: "SDDL", Iface: IfaceRecon, Unit: "37101", Date: fileDate}
	const pan = "6222020000000000018"
	for _, c := range []struct{ name, detail, sum string }{
		{"the account in the amount column", "D,20131012,101500,000001,000000000001,100.00," + pan + ",156,D,12345678", pan},
		{"the account in the RRN column", "D,20131012,101500,000001," + pan + ",000000000001,100.00,156,D,12345678", "100.00"},
		{"the account in the STAN column", "D,20131012,101500," + pan + ",000000000001,13800138000,100.00,156,D,12345678", "100.00"},
		{"the account in the acquirer column", "D,20131012,101500,000001,000000000001,13800138000,100.00,156,D," + pan, "100.00"},
		{"the account in the date column", "D," + pan + ",101500,000001,000000000001,13800138000,100.00,156,D,12345678", "100.00"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := "H,01,SDDL,DZ,37101,20131012\n" + c.detail + "\nT,0000000001," + c.sum + "\n"
			_, err := Reconcile(context.Background(), w.write(name.String(), []byte(data)), cfg)
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("err = %v, want ErrFormat", err)
			}
			if strings.Contains(err.Error(), pan) || strings.Contains(err.Error(), pan[:15]) {
				t.Errorf("the error shows the card number: %v", err)
			}
		})
	}
}

// A file is reconciled only once the head holds every entry of its days: before, a purchase the
// shard booked but the head has not merged yet would look partner-only and be debited twice.
func TestReconcileWaitsUntilTheHeadHoldsTheFilesDays(t *testing.T) {
	w := newWorld(t)
	// The head on the shards' clock, as in production where both read time.Now.
	h, err := head.Open(head.Options{Dir: t.TempDir(), Logger: quietLogger(t), Clock: w.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	w.head = h
	pan, id := w.card("shanghai", 1, 10000)
	w.merge()
	w.do("shanghai", ledger.Request{Op: ledger.OpPurchase, ID: txid("buy", "1"), PAN: pan, Amount: 2500, Currency: cny,
		Acquirer: acquirer, STAN: "000001", RRN: "000000000001"})
	name := Name{Org: "SDDL", Iface: IfaceRecon, Unit: "37101", Date: fileDate}
	recs := []Record{{Date: fileDate, Time: "101500", STAN: "000001", RRN: "000000000001", Account: pan,
		Amount: 2500, Currency: cny, Direction: Debited}}
	path := w.write(name.String(), encode(t, CSV, name, recs))
	cfg := w.config() // a date tolerance of 1: the file's records match entries up to the end of the next day

	// The purchase is not merged, and the day after the file's is not over: refused.
	if _, err := Reconcile(context.Background(), path, cfg); !errors.Is(err, ErrNotReady) {
		t.Fatalf("before the merge: %v, want ErrNotReady", err)
	}
	// Two days on, but the head has not pulled since: still refused.
	w.clock.set(time.Date(2013, 10, 14, 0, 0, 1, 0, time.UTC))
	if _, err := Reconcile(context.Background(), path, cfg); !errors.Is(err, ErrNotReady) {
		t.Fatalf("after the days, before the merge: %v, want ErrNotReady", err)
	}
	if got := w.balance("shanghai", id); got != 10000-2500 {
		t.Fatalf("a refused file booked: balance %d", got)
	}
	w.merge()
	rep, err := Reconcile(context.Background(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(Matched) != 1 || w.balance("shanghai", id) != 10000-2500 {
		t.Fatalf("matched %d, balance %d after one purchase of 2500 the partner confirms", rep.Count(Matched), w.balance("shanghai", id))
	}
}

// A card number written with dashes is still a card number: the batch-debit response file and
// the reports show references through Mask.
func TestMaskHidesACardNumberWithDashes(t *testing.T) {
	for in, want := range map[string]string{
		"6222-0200-0000-0000-018": "6222-02**-****-***0-018",
		"6222020000000000018":     "622202*********0018",
		"13800138000":             "13800138000",
		"ACCT-0001":               "ACCT-0001",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}
