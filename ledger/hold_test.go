package ledger

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/junction-switch/junction/codec"
)

// manualClock is a shard clock that moves only when the test moves it.
type manualClock struct{ ns atomic.Int64 }

func newManualClock() *manualClock {
	c := new(manualClock)
	c.ns.Store(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *manualClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *manualClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// holdShard opens a shard on a manual clock with one-hour holds and pan1 funded with 10000.
func holdShard(t *testing.T, dir string, clock *manualClock) *Shard {
	t.Helper()
	s := openShard(t, dir, func(o *Options) {
		o.Clock = clock.now
		o.HoldTTL = time.Hour
		o.SweepEvery = time.Hour // the tests sweep with their own requests unless they say otherwise
	})
	if dir == "" || !hasCard(s, pan1) {
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 10000)
	}
	return s
}

func hasCard(s *Shard, pan string) bool { _, err := s.AccountByPAN(pan); return err == nil }

func preauth(t testing.TB, s *Shard, id TxID, pan string, amount int64) Result {
	t.Helper()
	return do(t, s, Request{Op: OpPreAuth, ID: id, PAN: pan, Amount: amount, Currency: cny, Terminal: "T0000001"})
}

func complete(t testing.TB, s *Shard, id, hold TxID, pan string, amount int64) Result {
	t.Helper()
	return do(t, s, Request{Op: OpCompletion, ID: id, Original: hold, PAN: pan, Amount: amount, Currency: cny})
}

func refund(t testing.TB, s *Shard, id, orig TxID, pan string, amount int64) Result {
	t.Helper()
	return do(t, s, Request{Op: OpRefund, ID: id, Original: orig, PAN: pan, Amount: amount, Currency: cny})
}

func reverse(t testing.TB, s *Shard, id, orig TxID, pan string, amount, actual int64) Result {
	t.Helper()
	return do(t, s, Request{Op: OpReversal, ID: id, Original: orig, PAN: pan, Amount: amount, Currency: cny, Actual: actual})
}

// cardState is the card's balance and available balance.
func cardState(t testing.TB, s *Shard, pan string) (ledger, available int64) {
	t.Helper()
	a, err := s.AccountByPAN(pan)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance(), a.Available()
}

func wantCard(t testing.TB, s *Shard, pan string, ledger, available int64) {
	t.Helper()
	if l, a := cardState(t, s, pan); l != ledger || a != available {
		t.Errorf("card: ledger %d available %d, want %d and %d", l, a, ledger, available)
	}
}

func TestHolds(t *testing.T) {
	t.Run("a pre-authorisation holds funds that a purchase cannot spend", func(t *testing.T) {
		s := holdShard(t, "", newManualClock())
		res := preauth(t, s, txid("h", 1), pan1, 6000)
		if res.Code != Approved || res.Ledger != 10000 || res.Available != 4000 || res.AuthCode == "" {
			t.Fatalf("preauth: %+v", res)
		}
		if r := purchase(t, s, txid("p", 1), pan1, 4001); r.Code != InsufficientFunds || r.Available != 4000 {
			t.Errorf("purchase over the available balance: %+v", r)
		}
		if r := preauth(t, s, txid("h", 2), pan1, 4001); r.Code != InsufficientFunds {
			t.Errorf("second hold over the available balance: %+v", r)
		}
		if r := preauth(t, s, txid("h", 1), pan1, 6000); r.Code != Approved || !r.Replayed || r.Seq != res.Seq {
			t.Errorf("retransmission: %+v", r)
		}
		if r := preauth(t, s, txid("h", 1), pan1, 6001); r.Code != DuplicateDifferent {
			t.Errorf("other content under the TxID: %+v", r)
		}
		if r := do(t, s, Request{Op: OpBalance, PAN: pan1}); r.Ledger != 10000 || r.Available != 4000 {
			t.Errorf("inquiry: %+v", r)
		}
		settle := account(t, s, SettlementPayableID)
		if settle.CreditsPending != 6000 || settle.CreditsPosted != 0 {
			t.Errorf("settlement-payable: %+v", settle)
		}
		if rep := mustVerify(t, s); rep.Holds != 1 || rep.Pending != 1 {
			t.Errorf("report: %+v", rep)
		}
	})

	t.Run("a completion posts part of the hold and releases the rest, once", func(t *testing.T) {
		s := holdShard(t, "", newManualClock())
		preauth(t, s, txid("h", 1), pan1, 6000)
		if r := complete(t, s, txid("c", 1), txid("h", 1), pan1, 6001); r.Code != InvalidAmount {
			t.Errorf("completion above the hold: %+v", r)
		}
		res := complete(t, s, txid("c", 2), txid("h", 1), pan1, 4500)
		if res.Code != Approved || res.Ledger != 5500 || res.Available != 5500 {
			t.Fatalf("completion: %+v", res)
		}
		if r := complete(t, s, txid("c", 2), txid("h", 1), pan1, 4500); !r.Replayed || r.Seq != res.Seq {
			t.Errorf("retransmitted completion: %+v", r)
		}
		if r := complete(t, s, txid("c", 3), txid("h", 1), pan1, 100); r.Code != InvalidTransaction {
			t.Errorf("second completion: %+v", r)
		}
		if r := reverse(t, s, txid("r", 1), txid("h", 1), pan1, 6000, 0); r.Code != Approved || r.Seq != 0 {
			t.Errorf("reversal of the completed pre-authorisation: %+v", r)
		}
		wantCard(t, s, pan1, 5500, 5500)
		// The completion is reversed like a purchase.
		if r := reverse(t, s, txid("r", 2), txid("c", 2), pan1, 4500, 500); r.Code != Approved || r.Ledger != 9500 {
			t.Errorf("partial reversal of the completion: %+v", r)
		}
		j := journal(t, s)
		post := j[len(j)-2]
		if post.Kind != KindPost || post.Amount != 4500 || post.Released != 6000 || post.Original != j[1].Seq {
			t.Errorf("post entry: %+v", post)
		}
		if rep := mustVerify(t, s); rep.Pending != 0 || rep.Releases != 1 || rep.Reversals != 1 {
			t.Errorf("report: %+v", rep)
		}
	})

	t.Run("completions that cannot be taken", func(t *testing.T) {
		s := holdShard(t, "", newManualClock())
		openCard(t, s, pan2)
		preauth(t, s, txid("h", 1), pan1, 6000)
		preauth(t, s, txid("h", 2), pan1, 6000) // declined 51
		purchase(t, s, txid("p", 1), pan1, 100)
		for _, tc := range []struct {
			name string
			r    Request
			code Code
		}{
			{"no pre-authorisation", Request{Original: txid("h", 9), PAN: pan1, Amount: 1}, OriginalNotFound},
			{"a declined pre-authorisation", Request{Original: txid("h", 2), PAN: pan1, Amount: 1}, OriginalNotFound},
			{"another card's", Request{Original: txid("h", 1), PAN: pan2, Amount: 1}, OriginalNotFound},
			{"a purchase", Request{Original: txid("p", 1), PAN: pan1, Amount: 1}, InvalidTransaction},
			{"another currency", Request{Original: txid("h", 1), PAN: pan1, Amount: 1, Currency: 840}, InvalidAmount},
			{"a zero amount", Request{Original: txid("h", 1), PAN: pan1}, InvalidAmount},
			{"no original", Request{PAN: pan1, Amount: 1}, InvalidTransaction},
		} {
			r := tc.r
			r.Op, r.ID = OpCompletion, NewTxID([]byte(tc.name))
			if r.Currency == 0 {
				r.Currency = cny
			}
			if got := do(t, s, r); got.Code != tc.code || got.Seq != 0 {
				t.Errorf("%s: %+v, want %s", tc.name, got, tc.code)
			}
		}
		wantCard(t, s, pan1, 9900, 3900)
		mustVerify(t, s)
	})

	t.Run("a reversal voids the hold, fully or down to its actual amount", func(t *testing.T) {
		s := holdShard(t, "", newManualClock())
		preauth(t, s, txid("h", 1), pan1, 6000)
		if r := reverse(t, s, txid("r", 1), txid("h", 1), pan1, 6000, 2000); r.Code != Approved || r.Available != 8000 {
			t.Errorf("partial void: %+v", r)
		}
		if r := complete(t, s, txid("c", 1), txid("h", 1), pan1, 2001); r.Code != InvalidAmount {
			t.Errorf("completion above what is left: %+v", r)
		}
		if r := reverse(t, s, txid("r", 2), txid("h", 1), pan1, 6000, 0); r.Code != Approved || r.Available != 10000 {
			t.Errorf("full void: %+v", r)
		}
		if r := reverse(t, s, txid("r", 3), txid("h", 1), pan1, 6000, 0); r.Code != Approved || r.Seq != 0 {
			t.Errorf("void again: %+v", r)
		}
		if r := complete(t, s, txid("c", 2), txid("h", 1), pan1, 1); r.Code != InvalidTransaction {
			t.Errorf("completion of a voided hold: %+v", r)
		}
		wantCard(t, s, pan1, 10000, 10000)
		if rep := mustVerify(t, s); rep.Pending != 0 || rep.Releases != 2 {
			t.Errorf("report: %+v", rep)
		}
	})

	t.Run("a reversal before its pre-authorisation tombstones it", func(t *testing.T) {
		s := holdShard(t, "", newManualClock())
		if r := reverse(t, s, txid("r", 1), txid("h", 1), pan1, 6000, 0); r.Code != OriginalNotFound {
			t.Errorf("reversal: %+v", r)
		}
		if r := preauth(t, s, txid("h", 1), pan1, 6000); r.Code != TooLate {
			t.Errorf("late pre-authorisation: %+v", r)
		}
		wantCard(t, s, pan1, 10000, 10000)
		mustVerify(t, s)
	})

	t.Run("expired holds are released in expiry order by the next batch", func(t *testing.T) {
		clock := newManualClock()
		s := holdShard(t, "", clock)
		preauth(t, s, txid("h", 1), pan1, 1000)
		clock.advance(10 * time.Minute)
		preauth(t, s, txid("h", 2), pan1, 2000)
		preauth(t, s, txid("h", 3), pan1, 3000)
		reverse(t, s, txid("r", 3), txid("h", 3), pan1, 3000, 1000) // 1000 of it left
		clock.advance(55 * time.Minute)                             // h1 expired, h2 and h3 not
		if r := do(t, s, Request{Op: OpBalance, PAN: pan1}); r.Available != 10000-3000 {
			t.Errorf("after the first expiry: %+v", r)
		}
		clock.advance(10 * time.Minute)
		if r := complete(t, s, txid("c", 2), txid("h", 2), pan1, 100); r.Code != InvalidTransaction {
			t.Errorf("completion of an expired hold: %+v", r)
		}
		wantCard(t, s, pan1, 10000, 10000)
		var expiries []Transfer
		for _, e := range journal(t, s) {
			if e.Kind == KindExpire {
				expiries = append(expiries, e)
			}
		}
		if len(expiries) != 3 || expiries[0].TxID != txid("h", 1) || expiries[1].TxID != txid("h", 2) ||
			expiries[2].TxID != txid("h", 3) || expiries[2].Amount != 1000 {
			t.Errorf("expiries: %+v", expiries)
		}
		if r := preauth(t, s, txid("h", 1), pan1, 1000); !r.Replayed || r.Code != Approved {
			t.Errorf("retransmitted pre-authorisation after its expiry: %+v", r)
		}
		if rep := mustVerify(t, s); rep.Pending != 0 || rep.Releases != 4 {
			t.Errorf("report: %+v", rep)
		}
	})

	t.Run("an idle shard sweeps on its own", func(t *testing.T) {
		clock := newManualClock()
		s := openShard(t, "", func(o *Options) {
			o.Clock = clock.now
			o.HoldTTL = time.Minute
			o.SweepEvery = 5 * time.Millisecond
		})
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 10000)
		preauth(t, s, txid("h", 1), pan1, 1000)
		clock.advance(2 * time.Minute)
		eventually(t, "the hold expired", func() bool { _, a := cardState(t, s, pan1); return a == 10000 })
		mustVerify(t, s)
	})

	t.Run("holds survive a restart and expire after it", func(t *testing.T) {
		dir := t.TempDir()
		clock := newManualClock()
		s := holdShard(t, dir, clock)
		preauth(t, s, txid("h", 1), pan1, 1000)
		preauth(t, s, txid("h", 2), pan1, 2000)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = holdShard(t, dir, clock)
		wantCard(t, s, pan1, 10000, 7000)
		if r := complete(t, s, txid("c", 1), txid("h", 1), pan1, 1000); r.Code != Approved {
			t.Errorf("completion after the restart: %+v", r)
		}
		clock.advance(2 * time.Hour)
		if r := do(t, s, Request{Op: OpBalance, PAN: pan1}); r.Available != 9000 || r.Ledger != 9000 {
			t.Errorf("after the expiry: %+v", r)
		}
		mustVerify(t, s)
	})

	t.Run("a card with holds does not close", func(t *testing.T) {
		s := openShard(t, "")
		id := openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 1000)
		purchase(t, s, txid("p", 1), pan1, 400)
		preauth(t, s, txid("h", 1), pan1, 600)
		complete(t, s, txid("c", 1), txid("h", 1), pan1, 600)
		if err := s.SetStatus(context.Background(), id, Closed); err != nil {
			t.Errorf("close at zero without holds: %v", err)
		}
	})
}

func TestRefunds(t *testing.T) {
	s := holdShard(t, "", newManualClock())
	openCard(t, s, pan2)
	purchase(t, s, txid("p", 1), pan1, 3000)
	if r := refund(t, s, txid("f", 1), txid("p", 1), pan1, 1000); r.Code != Approved || r.Ledger != 8000 {
		t.Errorf("refund: %+v", r)
	}
	if r := refund(t, s, txid("f", 1), txid("p", 1), pan1, 1000); !r.Replayed || r.Ledger != 8000 {
		t.Errorf("retransmitted refund: %+v", r)
	}
	if r := refund(t, s, txid("f", 2), txid("p", 1), pan1, 2001); r.Code != InvalidAmount {
		t.Errorf("refund beyond what is left: %+v", r)
	}
	// A reversal after a refund gives back only the rest.
	if r := reverse(t, s, txid("r", 1), txid("p", 1), pan1, 3000, 0); r.Code != Approved || r.Ledger != 10000 {
		t.Errorf("reversal after the refund: %+v", r)
	}
	if r := refund(t, s, txid("f", 3), txid("p", 1), pan1, 1); r.Code != InvalidAmount {
		t.Errorf("refund of a reversed purchase: %+v", r)
	}
	for name, tc := range map[string]struct {
		orig TxID
		pan  string
		code Code
	}{
		"no original":   {txid("p", 9), pan1, OriginalNotFound},
		"another card":  {txid("p", 1), pan2, OriginalNotFound},
		"of a deposit":  {txid("dep", 1), pan1, InvalidTransaction},
		"of a refund":   {txid("f", 1), pan1, InvalidTransaction},
		"of a reversal": {txid("r", 1), pan1, InvalidTransaction},
	} {
		if r := refund(t, s, NewTxID([]byte(name)), tc.orig, tc.pan, 1); r.Code != tc.code {
			t.Errorf("%s: %+v, want %s", name, r, tc.code)
		}
	}
	// A completion is refunded like a purchase.
	preauth(t, s, txid("h", 1), pan1, 500)
	complete(t, s, txid("c", 1), txid("h", 1), pan1, 400)
	if r := refund(t, s, txid("f", 4), txid("c", 1), pan1, 400); r.Code != Approved || r.Ledger != 10000 {
		t.Errorf("refund of a completion: %+v", r)
	}
	if rep := mustVerify(t, s); rep.Refunds != 2 || rep.Reversals != 1 {
		t.Errorf("report: %+v", rep)
	}
}

func TestHostHolds(t *testing.T) {
	for _, d := range []*codec.Dialect{codec.ISO87ASCII(), codec.ISO87Binary()} {
		t.Run(d.Name(), func(t *testing.T) {
			s, h := hostShard(t, "")
			auth := isoPurchase(t, d, pan1, "003001", 6000)
			if err := auth.SetMTI([4]byte{'0', '1', '0', '0'}); err != nil {
				t.Fatal(err)
			}
			resp := exchange(t, h, auth)
			expect(t, resp, "0110", "00")
			if !resp.Has(38) {
				t.Error("no approval code")
			}
			amounts, err := codec.ParseAdditionalAmounts(resp.Get(54))
			if err != nil || len(amounts) != 2 || amounts[1].Amount != 4000 {
				t.Errorf("54: %+v, %v", amounts, err)
			}
			// The completion: an 0220 of its own STAN whose 90 names the 0100.
			comp := isoAdvice(t, auth, "0220", map[int]string{4: "000000004500", 11: "003002",
				90: originalData("0100", "003001", isoTime, isoAcquirer)})
			expect(t, exchange(t, h, comp), "0230", "00")
			expect(t, exchange(t, h, isoAdvice(t, comp, "0221", nil)), "0230", "00") // its repeat
			wantCard(t, s, pan1, 5500, 5500)

			// A second pre-authorisation, voided by its reversal.
			auth2 := isoPurchase(t, d, pan1, "003003", 1000)
			auth2.SetMTI([4]byte{'0', '1', '0', '0'})
			expect(t, exchange(t, h, auth2), "0110", "00")
			wantCard(t, s, pan1, 5500, 4500)
			expect(t, exchange(t, h, isoReversal(t, auth2, "0420", map[int]string{11: "003004",
				90: originalData("0100", "003003", isoTime, isoAcquirer)})), "0430", "00")
			wantCard(t, s, pan1, 5500, 5500)

			// A refund of part of a purchase, naming it in 90.
			buy := isoPurchase(t, d, pan1, "003005", 500)
			expect(t, exchange(t, h, buy), "0210", "00")
			ref := isoReversal(t, buy, "0200", map[int]string{3: "200000", 4: "000000000200", 11: "003006",
				90: originalData("0200", "003005", isoTime, isoAcquirer)})
			expect(t, exchange(t, h, ref), "0210", "00")
			wantCard(t, s, pan1, 5200, 5200)
			expect(t, exchange(t, h, isoReversal(t, ref, "0200", map[int]string{11: "003007", 4: "000000000301"})), "0210", "13")
			expect(t, exchange(t, h, isoReversal(t, ref, "0200", map[int]string{11: "003008", 90: ""})), "0210", "30")
			expect(t, exchange(t, h, isoReversal(t, ref, "0200", map[int]string{11: "003009",
				90: originalData("0200", "009999", isoTime, isoAcquirer)})), "0210", "25")
			mustVerify(t, s)
		})
	}
}

func TestVerifyFindsHoldBreaks(t *testing.T) {
	s := holdShard(t, "", newManualClock())
	preauth(t, s, txid("h", 1), pan1, 1000)
	preauth(t, s, txid("h", 2), pan1, 2000)
	complete(t, s, txid("c", 1), txid("h", 2), pan1, 1500)
	mustVerify(t, s)

	// Behind the shard's back: drop the expiry index entry of the pending hold, and shrink the
	// card's pending debits.
	card, _ := s.AccountByPAN(pan1)
	holds := journal(t, s)[1:3]
	card.DebitsPending -= 10
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(appendAccountKey(nil, card.ID), appendAccount(nil, &card)); err != nil {
			return err
		}
		return txn.Delete(appendHoldKey(nil, holds[0].Expires, holds[0].Seq))
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify()
	if err == nil {
		t.Fatal("Verify passed a tampered store")
	}
	want := []string{
		"currency 156: Σ pending debits 990 ≠ Σ pending credits 1000",
		fmt.Sprintf("account %d: stored pending debits/credits 990/0, journal gives 1000/0", card.ID),
		fmt.Sprintf("hold %d still pending but not in the expiry index", holds[0].Seq),
	}
	for _, w := range want {
		if !slices.Contains(rep.Breaks, w) {
			t.Errorf("breaks %q lack %q", rep.Breaks, w)
		}
	}
}

func TestSweepInSlices(t *testing.T) {
	clock := newManualClock()
	s := holdShard(t, "", clock)
	const n = maxSweep + 10
	for i := range n {
		preauth(t, s, txid("h", i), pan1, 10)
	}
	wantCard(t, s, pan1, 10000, 10000-10*n)
	clock.advance(2 * time.Hour)
	// The first batch releases maxSweep holds before its inquiry, the next batch the rest.
	if r := do(t, s, Request{Op: OpBalance, PAN: pan1}); r.Available != 10000-10*(n-maxSweep) {
		t.Errorf("after one batch: %+v", r)
	}
	if r := do(t, s, Request{Op: OpBalance, PAN: pan1}); r.Available != 10000 {
		t.Errorf("after two batches: %+v", r)
	}
	var order []TxID
	for _, e := range journal(t, s) {
		if e.Kind == KindExpire {
			order = append(order, e.TxID)
		}
	}
	for i := range n {
		if i >= len(order) || order[i] != txid("h", i) {
			t.Fatalf("expiry %d is not the hold placed %dth (%d expiries)", i, i, len(order))
		}
	}
	if rep := mustVerify(t, s); rep.Pending != 0 || rep.Releases != n {
		t.Errorf("report: %+v", rep)
	}
}
