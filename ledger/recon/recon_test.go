package recon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/junction-switch/junction/ledger"
)

// scenario books a day of the partner's transactions in the shards, merges them into the head,
// and returns the partner's records for the day: one of every break kind, with matches beside
// them, and what each account's balance must move by once the file is reconciled.
type scenario struct {
	recs   []Record
	pans   []string
	deltas map[string]map[uint64]int64 // region → account → balance change
}

func buildScenario(w *world) *scenario {
	sc := &scenario{deltas: map[string]map[uint64]int64{"beijing": {}, "shanghai": {}}}
	panA, a := w.card("beijing", 1, 100000)
	panB, b := w.card("beijing", 2, 100000)
	panC, c := w.card("shanghai", 3, 50000)
	sc.pans = []string{panA, panB, panC}
	const phone = "13800138000"
	p := w.open("beijing", ledger.AccountSpec{Type: ledger.Debit, Currency: cny, Name: "phone", Number: phone}, phone)

	buy := func(region, pan, rrn, stan string, amount int64) ledger.TxID {
		id := txid("buy", rrn)
		w.do(region, ledger.Request{Op: ledger.OpPurchase, ID: id, PAN: pan, Amount: amount, Currency: cny,
			Acquirer: acquirer, STAN: stan, RRN: rrn})
		return id
	}
	rec := func(pan, rrn, stan string, amount int64, dir Direction) {
		sc.recs = append(sc.recs, Record{Date: fileDate, Time: "101500", STAN: stan, RRN: rrn, Account: pan,
			Amount: amount, Currency: cny, Direction: dir, Acquirer: acquirer})
	}

	// Matched: a purchase; a purchase and its partial refund; an amount within the tolerance; a
	// STAN the partner wrote without its leading zeros.
	buy("beijing", panA, "000000000001", "000001", 10000)
	rec(panA, "000000000001", "000001", 10000, Debited)
	p2 := buy("beijing", panA, "000000000002", "000002", 5000)
	w.do("beijing", ledger.Request{Op: ledger.OpRefund, ID: txid("refund", "3"), PAN: panA, Amount: 2000, Currency: cny,
		Original: p2, Acquirer: acquirer, STAN: "000003", RRN: "000000000003"})
	rec(panA, "000000000002", "000002", 5000, Debited)
	rec(panA, "000000000003", "000003", 2000, Refunded)
	buy("beijing", panA, "000000000009", "000009", 1000)
	rec(panA, "000000000009", "000009", 1001, Debited)
	buy("shanghai", panC, "000000000012", "000012", 1200)
	rec(panC, "000000000012", "12", 1200, Debited)

	// Mismatch, debit: the partner debited 35.00 where we booked 30.00 → debit B 5.00.
	buy("beijing", panB, "000000000004", "000004", 3000)
	rec(panB, "000000000004", "000004", 3500, Debited)
	sc.deltas["beijing"][b] -= 500
	// Mismatch, refund: we refunded 20.00 of a purchase, the partner 15.00 → debit B 5.00.
	p6 := buy("beijing", panB, "000000000007", "000007", 8000)
	w.do("beijing", ledger.Request{Op: ledger.OpRefund, ID: txid("refund", "8"), PAN: panB, Amount: 2000, Currency: cny,
		Original: p6, Acquirer: acquirer, STAN: "000008", RRN: "000000000008"})
	rec(panB, "000000000007", "000007", 8000, Debited)
	rec(panB, "000000000008", "000008", 1500, Refunded)
	sc.deltas["beijing"][b] -= 500

	// Ledger-only, debit: a purchase the partner does not have → credit B 40.00 back.
	buy("beijing", panB, "000000000005", "000005", 4000)
	sc.deltas["beijing"][b] += 4000
	// Ledger-only, refund: we reversed a purchase the partner kept → debit A 60.00 again.
	p5 := buy("beijing", panA, "000000000006", "000006", 6000)
	w.do("beijing", ledger.Request{Op: ledger.OpReversal, ID: txid("reversal", "6"), PAN: panA, Amount: 6000, Currency: cny,
		Original: p5, Acquirer: acquirer, STAN: "000006", RRN: "000000000006"})
	rec(panA, "000000000006", "000006", 6000, Debited)
	sc.deltas["beijing"][a] -= 6000

	// Partner-only, debit: C (in the other region) was debited 25.00 by the partner only.
	rec(panC, "P00000000001", "000101", 2500, Debited)
	sc.deltas["shanghai"][c] -= 2500
	// Partner-only, refund: the partner refunded 10.00 to a phone account; we did not.
	rec(phone, "P00000000002", "", 1000, Refunded)
	sc.deltas["beijing"][p] += 1000

	// Ignored: another acquirer's purchase, a pre-authorisation hold.
	w.do("beijing", ledger.Request{Op: ledger.OpPurchase, ID: txid("other"), PAN: panA, Amount: 700, Currency: cny,
		Acquirer: "999", STAN: "000010", RRN: "000000000010"})
	w.do("beijing", ledger.Request{Op: ledger.OpPreAuth, ID: txid("hold"), PAN: panA, Amount: 500, Currency: cny,
		Acquirer: acquirer, STAN: "000011", RRN: "000000000011"})

	// The next day: a purchase the partner dated just before midnight (matched within the date
	// tolerance), and one it leaves to the next day's file (no break today).
	w.clock.set(time.Date(2013, 10, 13, 0, 0, 30, 0, time.UTC))
	buy("beijing", panA, "000000000013", "000013", 900)
	sc.recs = append(sc.recs, Record{Date: fileDate, Time: "235959", STAN: "000013", RRN: "000000000013", Account: panA,
		Amount: 900, Currency: cny, Direction: Debited})
	buy("beijing", panA, "000000000014", "000014", 1100)

	// Suspense takes the other side of every correction.
	for _, m := range sc.deltas {
		var net int64
		for _, d := range m {
			net += d
		}
		m[ledger.SuspenseID] = -net
	}
	w.merge()
	return sc
}

func (w *world) balances(sc *scenario) map[string]map[uint64]int64 {
	out := make(map[string]map[uint64]int64)
	for region, m := range sc.deltas {
		out[region] = make(map[uint64]int64)
		for id := range m {
			out[region][id] = w.balance(region, id)
		}
	}
	return out
}

func TestReconcile(t *testing.T) {
	for _, enc := range []Encoding{CSV, FixedWidth} {
		t.Run("every break kind is corrected once, in "+enc.String(), func(t *testing.T) {
			w := newWorld(t)
			var logs bytes.Buffer
			sc := buildScenario(w)
			before := w.balances(sc)
			name := Name{Org: "SDDL", Iface: IfaceRecon, Unit: "37101", Date: fileDate}
			path := w.write(name.String(), encode(t, enc, name, sc.recs))
			cfg := w.config()
			cfg.Logger = slogTo(&logs)

			if enc == CSV {
				// One region unreachable: the other's corrections are booked, the file is not
				// registered, and the next run finishes the work.
				w.books.fail("shanghai")
				_, err := Reconcile(context.Background(), path, cfg)
				if !errors.Is(err, ErrIncomplete) {
					t.Fatalf("Reconcile with shanghai down: %v, want ErrIncomplete", err)
				}
				if _, err := os.Stat(filepath.Join(cfg.Registry, name.String()+".json")); !os.IsNotExist(err) {
					t.Fatalf("an incomplete run was registered: %v", err)
				}
				w.books.fail("")
			}
			rep, err := Reconcile(context.Background(), path, cfg)
			if err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			for c, want := range map[Class]int{Matched: 8, PartnerOnly: 2, LedgerOnly: 2, Mismatch: 2} {
				if got := rep.Count(c); got != want {
					t.Errorf("%s: %d, want %d (%+v)", c, got, want, rep.Totals)
				}
			}
			for c, want := range map[Class]int64{Matched: 34101, PartnerOnly: 3500, LedgerOnly: 10000, Mismatch: 5000} {
				if got := amountOf(&rep, c); got != want {
					t.Errorf("%s amount: %d, want %d", c, got, want)
				}
			}
			for _, b := range rep.Breaks {
				if b.Code != ledger.Approved {
					t.Errorf("break %s %s %s: code %q, error %q", b.Class, b.RRN, b.Direction, b.Code, b.Error)
				}
			}
			w.checkMoved(sc, before)
			w.verify()

			// The report file, the registry and the logs never show a full PAN.
			report, err := os.ReadFile(rep.Output)
			if err != nil {
				t.Fatalf("report: %v", err)
			}
			if !bytes.Contains(report, []byte("partner_only")) || !bytes.Contains(report, []byte(Mask(sc.pans[2])+",shanghai")) {
				t.Errorf("report lacks a partner-only break or the masked PAN:\n%s", report)
			}
			registered, _ := os.ReadFile(filepath.Join(cfg.Registry, name.String()+".json"))
			for _, pan := range sc.pans {
				for what, b := range map[string][]byte{"report": report, "registry": registered, "logs": logs.Bytes()} {
					if bytes.Contains(b, []byte(pan)) {
						t.Errorf("the %s shows a full PAN", what)
					}
				}
			}

			// The same file again: the stored report, nothing booked.
			seqs := w.lastSeqs()
			again, err := Reconcile(context.Background(), path, cfg)
			if err != nil || !again.Replayed || len(again.Breaks) != len(rep.Breaks) {
				t.Fatalf("re-ingest: replayed %v, %d breaks, err %v", again.Replayed, len(again.Breaks), err)
			}
			// Even with the registry gone, and the corrections merged into the head, a re-run
			// finds the same breaks and books nothing: the corrections replay under their TxIDs.
			w.merge()
			if err := os.Remove(filepath.Join(cfg.Registry, name.String()+".json")); err != nil {
				t.Fatal(err)
			}
			rerun, err := Reconcile(context.Background(), path, cfg)
			if err != nil || rerun.Replayed || len(rerun.Breaks) != len(rep.Breaks) {
				t.Fatalf("re-run: replayed %v, %d breaks, err %v", rerun.Replayed, len(rerun.Breaks), err)
			}
			if got := w.lastSeqs(); !equalSeqs(got, seqs) {
				t.Errorf("re-ingest booked: last seqs %v, were %v", got, seqs)
			}
			w.checkMoved(sc, before)
			w.verify()
		})
	}
}

func (w *world) checkMoved(sc *scenario, before map[string]map[uint64]int64) {
	w.t.Helper()
	for region, m := range sc.deltas {
		for id, d := range m {
			if got := w.balance(region, id) - before[region][id]; got != d {
				w.t.Errorf("%s account %d moved by %d, want %d", region, id, got, d)
			}
		}
	}
}

func amountOf(r *Report, c Class) int64 {
	var n int64
	for _, t := range r.Totals {
		if t.Class == c {
			n += t.Amount
		}
	}
	return n
}

func equalSeqs(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestReconcileRefusesBadFiles(t *testing.T) {
	w := newWorld(t)
	sc := buildScenario(w)
	cfg := w.config()
	name := Name{Org: "SDDL", Iface: IfaceRecon, Unit: "37101", Date: fileDate}
	good := encode(t, CSV, name, sc.recs)
	fixed := encode(t, FixedWidth, name, sc.recs)
	lines := strings.SplitAfter(string(good), "\n")
	n := len(lines) - 1 // the last piece after the final newline is empty
	seqs := w.lastSeqs()

	edit := func(i int, from, to string) []byte {
		l := append([]string{}, lines...)
		l[i] = strings.Replace(l[i], from, to, 1)
		return []byte(strings.Join(l, ""))
	}
	drop := func(i int) []byte {
		l := append(append([]string{}, lines[:i]...), lines[i+1:]...)
		return []byte(strings.Join(l, ""))
	}
	for _, c := range []struct {
		name string
		file string
		data []byte
		want error
		says string
	}{
		{"a name that is not ORG_IFACE_UNIT_DATE", "SDDL-DZ-37101-20131012.txt", good, ErrName, "not 4"},
		{"a date that is not a day", "SDDL_DZ_37101_20131032.txt", good, ErrName, "calendar date"},
		{"a lower-case organisation", "sddl_DZ_37101_20131012.txt", good, ErrName, "organisation"},
		{"a batch file given to Reconcile", "SDDL_DKKK_37101_20131012.txt", good, ErrName, "not DZ"},
		{"a header date other than the name's", "SDDL_DZ_37101_20131011.txt", good, ErrFormat, "line 1: header: date 20131012"},
		{"another format version", name.String(), edit(0, "H,01,", "H,02,"), ErrFormat, "line 1: header: format version"},
		{"no header", name.String(), drop(0), ErrFormat, "line 1: the first record is not a header"},
		{"a truncated file", name.String(), []byte(strings.Join(lines[:n-3], "")), ErrFormat, "truncated"},
		{"a detail record missing", name.String(), drop(3), ErrFormat, "trailer counts 12 detail records, the file has 11"},
		{"an amount changed", name.String(), edit(1, ",100.00,", ",100.10,"), ErrFormat, "control sum"},
		{"invalid UTF-8", name.String(), edit(4, "101500", "10\xff500"), ErrFormat, "line 5: invalid UTF-8 byte 0xFF"},
		{"a non-ASCII character", name.String(), edit(4, "101500", "10é500"), ErrFormat, "line 5: a non-ASCII character"},
		{"a record with a bad date", name.String(), edit(6, "20131012", "20131312"), ErrFormat, "line 7: date"},
		{"a record with an unknown type", name.String(), edit(6, ",D,", ",X,"), ErrFormat, "line 7: type"},
		{"a fixed-width record cut short", name.String(), []byte(strings.Replace(string(fixed), "101500", "10150", 1)), ErrFormat, "line 2: 91 characters, want 92"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Reconcile(context.Background(), w.write(c.file, c.data), cfg)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %v, want %v saying %q", err, c.want, c.says)
			}
			for _, pan := range sc.pans {
				if strings.Contains(err.Error(), pan) {
					t.Errorf("the error shows a full PAN: %v", err)
				}
			}
			if got := w.lastSeqs(); !equalSeqs(got, seqs) {
				t.Fatalf("something was booked: %v, was %v", got, seqs)
			}
			if ents, _ := os.ReadDir(cfg.Registry); len(ents) != 0 {
				t.Fatalf("a refused file was registered: %v", ents)
			}
		})
	}
	t.Run("the same name with other content", func(t *testing.T) {
		if _, err := Reconcile(context.Background(), w.write(name.String(), good), cfg); err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
		seqs := w.lastSeqs()
		other := encode(t, CSV, name, sc.recs[:len(sc.recs)-1])
		_, err := Reconcile(context.Background(), w.write(name.String(), other), cfg)
		if !errors.Is(err, ErrDuplicate) {
			t.Fatalf("err = %v, want ErrDuplicate", err)
		}
		if got := w.lastSeqs(); !equalSeqs(got, seqs) {
			t.Fatalf("something was booked: %v, was %v", got, seqs)
		}
	})
}

func TestNeighbouringDaysCountAnEntryOnce(t *testing.T) {
	w := newWorld(t)
	sc := buildScenario(w)
	cfg := w.config()
	day1 := Name{Org: "SDDL", Iface: IfaceRecon, Unit: "37101", Date: fileDate}
	if _, err := Reconcile(context.Background(), w.write(day1.String(), encode(t, CSV, day1, sc.recs)), cfg); err != nil {
		t.Fatalf("Reconcile day 1: %v", err)
	}
	// The next day's file is empty. Of the two purchases dated that day, the one day 1's file
	// matched (RRN …13, dated 235959 the day before) is not ledger-only again; the other is.
	day2 := day1
	day2.Date = 20131013
	rep, err := Reconcile(context.Background(), w.write(day2.String(), encode(t, FixedWidth, day2, nil)), cfg)
	if err != nil {
		t.Fatalf("Reconcile day 2: %v", err)
	}
	if len(rep.Breaks) != 1 || rep.Breaks[0].Class != LedgerOnly || rep.Breaks[0].RRN != "000000000014" || !rep.Breaks[0].Credit ||
		rep.Breaks[0].Amount != 1100 || rep.Breaks[0].Code != ledger.Approved {
		t.Fatalf("day 2 breaks: %+v", rep.Breaks)
	}
	w.verify()
}
