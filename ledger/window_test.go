package ledger

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/junction-switch/junction/codec"
)

func cutover(t testing.TB, s *Shard, window, date uint32) CutoverPoint {
	t.Helper()
	p, err := s.Cutover(context.Background(), window, date)
	if err != nil {
		t.Fatalf("Cutover(%d, %d): %v", window, date, err)
	}
	return p
}

func TestCutover(t *testing.T) {
	t.Run("windows are exact, idempotent and survive a reopen", func(t *testing.T) {
		dir := t.TempDir()
		s := openShard(t, dir)
		if w, d := s.Window(); w != 1 || d != testDay {
			t.Fatalf("a new shard is in window %d of %d, want 1 of %d", w, d, testDay)
		}
		if p := cutover(t, s, 1, 20991231); p != (CutoverPoint{Window: 1, Date: testDay}) {
			t.Errorf("Cutover(1) = %+v, want the opening point", p)
		}
		openCard(t, s, pan1)
		if r := deposit(t, s, txid("dep", 1), pan1, 1000); r.Window != 1 || r.SettleDate != testDay {
			t.Errorf("deposit booked in window %d of %d", r.Window, r.SettleDate)
		}
		p2 := cutover(t, s, 2, testDay+1)
		if p2 != (CutoverPoint{Window: 2, Date: testDay + 1, Last: 1}) {
			t.Errorf("Cutover(2) = %+v", p2)
		}
		r := purchase(t, s, txid("buy", 1), pan1, 100)
		if r.Window != 2 || r.SettleDate != testDay+1 {
			t.Errorf("purchase after the cutover booked in window %d of %d", r.Window, r.SettleDate)
		}
		p5 := cutover(t, s, 5, testDay+1) // skips 3 and 4; the same date is fine
		for _, tc := range []struct {
			window, date uint32
			want         CutoverPoint
		}{
			{2, 1, p2},
			{3, testDay + 9, CutoverPoint{Window: 3, Date: testDay + 1, Last: 2}}, // skipped: 5's point
			{5, 0, p5},
		} {
			if p := cutover(t, s, tc.window, tc.date); p != tc.want {
				t.Errorf("repeated Cutover(%d) = %+v, want %+v", tc.window, p, tc.want)
			}
		}
		for _, bad := range []struct{ window, date uint32 }{{0, testDay + 2}, {6, testDay}, {6, 20260230}, {6, 2026030}} {
			if p, err := s.Cutover(context.Background(), bad.window, bad.date); !errors.Is(err, ErrWindow) {
				t.Errorf("Cutover(%d, %d) = %+v, %v; want ErrWindow", bad.window, bad.date, p, err)
			}
		}
		if w, d := s.Window(); w != 5 || d != testDay+1 {
			t.Errorf("window %d of %d after refused cutovers, want 5 of %d", w, d, testDay+1)
		}
		if rep := mustVerify(t, s); rep.Window != 5 || rep.Cutovers != 3 {
			t.Errorf("report: window %d, %d cutover points", rep.Window, rep.Cutovers)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		s = openShard(t, dir, func(o *Options) { o.Clock = func() time.Time { return time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) } })
		if w, d := s.Window(); w != 5 || d != testDay+1 {
			t.Errorf("reopened in window %d of %d, want 5 of %d", w, d, testDay+1)
		}
		if p := cutover(t, s, 2, 0); p != p2 {
			t.Errorf("Cutover(2) after reopening = %+v, want %+v", p, p2)
		}
		// A retransmission replays the window it was booked in, not the current one.
		if r := purchase(t, s, txid("buy", 1), pan1, 100); !r.Replayed || r.Window != 2 || r.SettleDate != testDay+1 {
			t.Errorf("replayed purchase = %+v", r)
		}
	})

	t.Run("under load every entry carries the window it was booked in", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 1_000_000)
		const workers, each, windows = 4, 60, 5
		var wg sync.WaitGroup
		results := make([][]Result, workers)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					r, err := s.Do(context.Background(), &Request{Op: OpPurchase, ID: txid("load", w*each+i), PAN: pan1,
						Amount: 1, Currency: cny})
					if err != nil || r.Code != Approved {
						t.Errorf("purchase: %+v, %v", r, err)
						return
					}
					results[w] = append(results[w], r)
				}
			})
		}
		points := []CutoverPoint{{Window: 1, Date: testDay}}
		for w := uint32(2); w <= windows; w++ {
			last := s.Stats().LastSeq
			eventually(t, "more purchases are booked", func() bool { return s.Stats().LastSeq >= last+10 })
			points = append(points, cutover(t, s, w, testDay+w))
		}
		wg.Wait()
		inWindow := func(seq uint64) CutoverPoint { // the last point opened before seq
			p := CutoverPoint{}
			for _, q := range points {
				if q.Last < seq {
					p = q
				}
			}
			return p
		}
		for _, e := range journal(t, s) {
			if p := inWindow(e.Seq); e.Window != p.Window || e.SettleDate != p.Date {
				t.Errorf("seq %d is in window %d of %d, the points %+v say %d", e.Seq, e.Window, e.SettleDate, points, p.Window)
			}
		}
		for _, rs := range results {
			for _, r := range rs {
				if p := inWindow(r.Seq); r.Window != p.Window || r.SettleDate != p.Date {
					t.Errorf("result of seq %d says window %d, the points say %d", r.Seq, r.Window, p.Window)
				}
			}
		}
		if p := points[windows-1]; p.Last <= points[1].Last || p.Last >= s.Stats().LastSeq {
			t.Errorf("the cutovers did not fall between purchases: %+v, last seq %d", points, s.Stats().LastSeq)
		}
		mustVerify(t, s)
	})

	t.Run("a shard from before windows and suspense gets them on opening", func(t *testing.T) {
		dir := t.TempDir()
		s := openShard(t, dir)
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 1000)
		purchase(t, s, txid("buy", 1), pan1, 100)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// Take the store back to what a shard wrote before this version: entries without a
		// window, no m/window, no cutover point, no suspense account.
		db, err := badger.Open(badgerOptions(dir, testOptions(t, dir).Logger))
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(txn *badger.Txn) error {
			for seq := uint64(1); seq <= 2; seq++ {
				e, _, err := getValue(txn, appendJournalKey(nil, seq), decodeTransfer)
				if err != nil {
					return err
				}
				e.Window, e.SettleDate = 0, 0
				if err := txn.Set(appendJournalKey(nil, seq), appendTransfer(nil, &e)); err != nil {
					return err
				}
			}
			for _, k := range [][]byte{keyWindow, appendCutKey(nil, 1), appendAccountKey(nil, SuspenseID)} {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if cerr := db.Close(); err != nil || cerr != nil {
			t.Fatal(err, cerr)
		}

		s = openShard(t, dir, func(o *Options) { o.Clock = func() time.Time { return time.Date(2026, 4, 2, 23, 0, 0, 0, time.UTC) } })
		if w, d := s.Window(); w != 1 || d != 20260402 {
			t.Errorf("upgraded shard in window %d of %d, want 1 of 20260402", w, d)
		}
		if p := cutover(t, s, 1, 0); p != (CutoverPoint{Window: 1, Date: 20260402, Last: 2}) {
			t.Errorf("window 1 opened at %+v, want after the old entries", p)
		}
		if a := account(t, s, SuspenseID); a.Type != Suspense || a.Currency != cny {
			t.Errorf("suspense = %+v", a)
		}
		if r := purchase(t, s, txid("buy", 2), pan1, 100); r.Window != 1 || r.SettleDate != 20260402 {
			t.Errorf("purchase after the upgrade = %+v", r)
		}
		if j := journal(t, s); j[0].Window != 0 || j[2].Window != 1 {
			t.Errorf("windows %d, %d", j[0].Window, j[2].Window)
		}
		mustVerify(t, s)
	})
}

func TestAdjust(t *testing.T) {
	s := openShard(t, "")
	card := openCard(t, s, pan1)
	deposit(t, s, txid("dep", 1), pan1, 1000)
	buy := purchase(t, s, txid("buy", 1), pan1, 300)
	adjust := func(a Adjustment) Result {
		t.Helper()
		r, err := s.Adjust(context.Background(), a)
		if err != nil {
			t.Fatalf("Adjust(%+v): %v", a, err)
		}
		return r
	}

	t.Run("an adjustment books forced against suspense and replays", func(t *testing.T) {
		if err := s.SetStatus(context.Background(), card, Blocked); err != nil {
			t.Fatal(err)
		}
		a := Adjustment{ID: txid("adj", 1), PAN: pan1, Amount: 2000, Currency: cny, Original: buy.Seq,
			Acquirer: "10000001", STAN: "000101", RRN: "606012000101", Merchant: "M00000000000001"}
		r := adjust(a) // beyond the balance, on a blocked card
		if r.Code != Approved || r.Ledger != -1300 || r.Window != 1 || r.AuthCode == "" {
			t.Fatalf("adjustment = %+v", r)
		}
		a.RRN = "" // annotations are not content
		if again := adjust(a); !again.Replayed || again.Seq != r.Seq || again.Window != 1 {
			t.Errorf("retransmission = %+v", again)
		}
		a.Amount = 2001
		if other := adjust(a); other.Code != DuplicateDifferent {
			t.Errorf("other content under the ID = %+v", other)
		}
		e := journal(t, s)[r.Seq-1]
		want := Transfer{Seq: r.Seq, TxID: txid("adj", 1), Kind: KindAdjust, Debit: card, Credit: SuspenseID, Amount: 2000,
			Currency: cny, Time: e.Time, Merchant: "M00000000000001", Original: buy.Seq, Acquirer: "10000001",
			STAN: "000101", RRN: "606012000101", Window: 1, SettleDate: testDay}
		if e != want {
			t.Errorf("entry %+v, want %+v", e, want)
		}
		if r := adjust(Adjustment{ID: txid("adj", 2), Account: card, Credit: true, Amount: 1500, Currency: cny}); r.Code != Approved || r.Ledger != 200 {
			t.Errorf("credit by account id = %+v", r)
		}
		if err := s.SetStatus(context.Background(), card, Active); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("declines are recorded, malformed adjustments are not", func(t *testing.T) {
		closed, err := s.OpenAccount(context.Background(), AccountSpec{Type: Debit, Currency: cny, Name: "closed", Number: "ACC-9"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetStatus(context.Background(), closed, Closed); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			a    Adjustment
			want Code
			kept bool
		}{
			{"an unknown card", Adjustment{PAN: pan2, Amount: 1, Currency: cny}, UnknownCard, true},
			{"a closed account", Adjustment{Number: "ACC-9", Amount: 1, Currency: cny}, UnknownCard, true},
			{"an unknown account id", Adjustment{Account: 999_999, Amount: 1, Currency: cny}, UnknownCard, true},
			{"a zero amount", Adjustment{PAN: pan1, Currency: cny}, InvalidAmount, true},
			{"another currency", Adjustment{PAN: pan1, Amount: 1, Currency: 840}, InvalidAmount, true},
			{"an original beyond the journal", Adjustment{PAN: pan1, Amount: 1, Currency: cny, Original: 99}, InvalidTransaction, true},
			{"two references", Adjustment{PAN: pan1, Account: card, Amount: 1, Currency: cny}, InvalidTransaction, false},
			{"suspense itself", Adjustment{Account: SuspenseID, Amount: 1, Currency: cny}, InvalidTransaction, false},
			{"an overlong STAN", Adjustment{PAN: pan1, Amount: 1, Currency: cny, STAN: "1234567"}, InvalidTransaction, false},
		} {
			tc.a.ID = txid("decline "+tc.name, 0)
			if r := adjust(tc.a); r.Code != tc.want || r.Seq != 0 {
				t.Errorf("%s: %+v, want %s", tc.name, r, tc.want)
			}
			if r := adjust(tc.a); r.Replayed != tc.kept {
				t.Errorf("%s: replayed %t, want %t", tc.name, r.Replayed, tc.kept)
			}
		}
		if r := adjust(Adjustment{PAN: pan1, Amount: 1, Currency: cny}); r.Code != InvalidTransaction {
			t.Errorf("without an ID: %+v", r)
		}
	})

	t.Run("channels cannot undo an adjustment and the shard verifies", func(t *testing.T) {
		r := do(t, s, reversal(txid("rev", 1), txid("adj", 1), pan1, 2000, 0))
		if r.Code != InvalidTransaction {
			t.Errorf("reversal of an adjustment = %+v", r)
		}
		rep := mustVerify(t, s)
		if rep.Adjusts != 2 || rep.Accounts != 5 {
			t.Errorf("report: %d adjustments, %d accounts", rep.Adjusts, rep.Accounts)
		}
		if sus := account(t, s, SuspenseID); sus.CreditsPosted != 2000 || sus.DebitsPosted != 1500 {
			t.Errorf("suspense = %+v", sus)
		}
	})
}

func TestHostAnnotations(t *testing.T) {
	for _, d := range []*codec.Dialect{codec.ISO87ASCII(), codec.ISO87Binary()} {
		t.Run(d.Name(), func(t *testing.T) {
			s, h := hostShard(t, "")
			cutover(t, s, 2, 20261231)
			buy := isoPurchase(t, d, pan1, "000101", 2500)
			if err := buy.SetString(37, "606012000101"); err != nil {
				t.Fatal(err)
			}
			resp := exchange(t, h, buy)
			expect(t, resp, "0210", "00")
			if got := string(resp.Get(15)); got != "1231" {
				t.Errorf("15 = %q, want the settlement date's MMDD", got)
			}
			e := journal(t, s)[1]
			if e.Acquirer != isoAcquirer || e.STAN != "000101" || e.RRN != "606012000101" || e.Window != 2 || e.SettleDate != 20261231 {
				t.Errorf("entry %+v", e)
			}
			buy.Del(37) // a retransmission without the RRN is the same request
			if again := exchange(t, h, buy); string(again.Get(38)) != string(resp.Get(38)) || string(again.Get(15)) != "1231" {
				t.Errorf("retransmission: 38 %q, 15 %q", again.Get(38), again.Get(15))
			}
			declined := exchange(t, h, isoPurchase(t, d, pan1, "000102", 1_000_000))
			expect(t, declined, "0210", "51")
			if declined.Has(15) {
				t.Errorf("a decline carries 15 = %q", declined.Get(15))
			}
		})
	}
	t.Run("an overlong annotation or one with characters no ISO field carries is not booked", func(t *testing.T) {
		s, _ := hostShard(t, "")
		for i, bad := range []Request{{RRN: "1234567890123"}, {Acquirer: "1000|0001"}, {STAN: "00001A"}, {RRN: "12345\n67890"}} {
			bad.Op, bad.ID, bad.PAN, bad.Amount, bad.Currency = OpPurchase, txid("long", i+1), pan1, 1, cny
			if r := do(t, s, bad); r.Code != InvalidTransaction {
				t.Errorf("purchase with %q %q %q = %+v", bad.Acquirer, bad.STAN, bad.RRN, r)
			}
		}
	})
}
