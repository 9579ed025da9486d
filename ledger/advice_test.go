package ledger

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/junction-switch/junction/codec"
)

// advice builds an OpAdvice for the purchase whose TxID is id.
func advice(id TxID, pan string, amount int64) Request {
	return Request{Op: OpAdvice, ID: id, PAN: pan, Amount: amount, Currency: cny,
		Terminal: "T0000001", Merchant: "M00000000000001"}
}

func TestAdvice(t *testing.T) {
	t.Run("an advice books a purchase on a card with the funds", func(t *testing.T) {
		s := openShard(t, "")
		card := openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 10000)
		got := do(t, s, advice(txid("buy", 1), pan1, 2550))
		want := Result{Code: Approved, Seq: 2, Currency: cny, Ledger: 7450, Available: 7450, AuthCode: "000002",
			Window: 1, SettleDate: testDay}
		if got != want {
			t.Errorf("advice = %+v, want %+v", got, want)
		}
		j := journal(t, s)
		if len(j) != 2 {
			t.Fatalf("journal has %d entries", len(j))
		}
		if e := j[1]; e.Kind != KindStandIn || e.TxID != txid("buy", 1) || e.Debit != card ||
			e.Credit != SettlementPayableID || e.Amount != 2550 || e.Terminal != "T0000001" || e.Original != 0 {
			t.Errorf("stand-in entry = %+v", e)
		}
		if a := account(t, s, SettlementPayableID); a.CreditsPosted != 2550 {
			t.Errorf("settlement-payable = %+v", a)
		}
		rep := mustVerify(t, s)
		if rep.StandIns != 1 || rep.Overdrawn != 0 || rep.TxRecords != 2 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("an advice books below zero and Verify accepts it", func(t *testing.T) {
		s := openShard(t, "")
		card := openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 1000)
		if r := do(t, s, advice(txid("buy", 1), pan1, 2500)); r.Code != Approved || r.Ledger != -1500 || r.Available != -1500 {
			t.Fatalf("advice = %+v, want 00 at -1500", r)
		}
		rep := mustVerify(t, s)
		if rep.Overdrawn != 1 || rep.StandIns != 1 {
			t.Errorf("report = %+v", rep)
		}
		// The stand-in excuses itself only: the card spends nothing until it is back above zero.
		if r := purchase(t, s, txid("buy", 2), pan1, 1); r.Code != InsufficientFunds || r.Ledger != -1500 {
			t.Errorf("purchase on the overdrawn card = %+v, want 51", r)
		}
		deposit(t, s, txid("dep", 2), pan1, 2000)
		if r := purchase(t, s, txid("buy", 3), pan1, 501); r.Code != InsufficientFunds {
			t.Errorf("purchase of 501 at 500 = %+v, want 51", r)
		}
		if r := purchase(t, s, txid("buy", 4), pan1, 500); r.Code != Approved || r.Ledger != 0 {
			t.Errorf("purchase of 500 at 500 = %+v, want 00 at 0", r)
		}
		if r := do(t, s, advice(txid("buy", 5), pan1, 300)); r.Code != Approved || r.Ledger != -300 {
			t.Errorf("a second advice = %+v, want 00 at -300", r)
		}
		if a := account(t, s, card); a.Balance() != -300 {
			t.Errorf("card = %+v", a)
		}
		rep = mustVerify(t, s)
		if rep.Overdrawn != 1 || rep.StandIns != 2 {
			t.Errorf("report = %+v", rep)
		}
		for _, tot := range rep.Totals {
			if tot.Debits != tot.Credits {
				t.Errorf("totals %+v", tot)
			}
		}
	})

	t.Run("a blocked card is still booked", func(t *testing.T) {
		s := openShard(t, "")
		card := openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 1000)
		if err := s.SetStatus(context.Background(), card, Blocked); err != nil {
			t.Fatal(err)
		}
		if r := purchase(t, s, txid("buy", 1), pan1, 100); r.Code != RestrictedCard {
			t.Fatalf("purchase on the blocked card = %+v, want 62", r)
		}
		if r := do(t, s, advice(txid("buy", 2), pan1, 1200)); r.Code != Approved || r.Ledger != -200 || r.Seq != 2 {
			t.Errorf("advice on the blocked card = %+v, want 00 at -200", r)
		}
		if a := account(t, s, card); a.Status != Blocked || a.Balance() != -200 {
			t.Errorf("card = %+v", a)
		}
		mustVerify(t, s)
	})

	t.Run("a closed or unknown card is 14, an amount or currency that does not fit 13, and nothing books", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		closed := openCard(t, s, pan2)
		deposit(t, s, txid("dep", 1), pan1, 1000)
		if err := s.SetStatus(context.Background(), closed, Closed); err != nil {
			t.Fatal(err)
		}
		cny840 := advice(txid("buy", 5), pan1, 100)
		cny840.Currency = 840
		for i, tc := range []struct {
			name string
			req  Request
			want Result
		}{
			{"an unknown card", advice(txid("buy", 1), "6299900000009999", 100), Result{Code: UnknownCard}},
			{"a closed card", advice(txid("buy", 2), pan2, 100), Result{Code: UnknownCard}},
			{"a PAN that is not a card number", advice(txid("buy", 3), "hello", 100), Result{Code: UnknownCard}},
			{"a zero amount", advice(txid("buy", 4), pan1, 0), Result{Code: InvalidAmount, Currency: cny, Ledger: 1000, Available: 1000}},
			{"another currency", cny840, Result{Code: InvalidAmount, Currency: cny, Ledger: 1000, Available: 1000}},
			{"a zero TxID", advice(TxID{}, pan1, 100), Result{Code: InvalidTransaction}},
		} {
			if got := do(t, s, tc.req); got != tc.want {
				t.Errorf("%d %s: %+v, want %+v", i, tc.name, got, tc.want)
			}
			// The repeat (0221) gets the same answer; a recorded one says it is replayed.
			again := do(t, s, tc.req)
			again.Replayed = false
			if again != tc.want {
				t.Errorf("%d %s repeated: %+v, want %+v", i, tc.name, again, tc.want)
			}
		}
		// The late original of the unknown card's advice replays its 14 as well.
		if r := purchase(t, s, txid("buy", 1), "6299900000009999", 100); r != (Result{Code: UnknownCard, Replayed: true}) {
			t.Errorf("the late original = %+v, want 14 replayed", r)
		}
		if st := s.Stats(); st.LastSeq != 1 {
			t.Errorf("LastSeq = %d, want 1: something booked", st.LastSeq)
		}
		mustVerify(t, s)
	})

	t.Run("an advice and its repeat book once", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		first := do(t, s, advice(txid("buy", 1), pan1, 700))
		again := do(t, s, advice(txid("buy", 1), pan1, 700))
		want := first
		want.Replayed = true
		if first.Code != Approved || first.Ledger != -700 || again != want {
			t.Errorf("first %+v, repeat %+v", first, again)
		}
		if r := do(t, s, advice(txid("buy", 1), pan1, 701)); r != (Result{Code: DuplicateDifferent}) {
			t.Errorf("another amount under its TxID = %+v, want 94", r)
		}
		if n := journalKinds(t, s)[KindStandIn]; n != 1 {
			t.Errorf("%d stand-in entries, want 1", n)
		}
		mustVerify(t, s)
	})

	t.Run("an approved purchase and then its advice book once", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 5000)
		buy := purchase(t, s, txid("buy", 1), pan1, 1000)
		got := do(t, s, advice(txid("buy", 1), pan1, 1000))
		want := buy
		want.Replayed = true
		if got != want {
			t.Errorf("advice after the purchase = %+v, want the purchase's %+v replayed", got, buy)
		}
		if r := do(t, s, advice(txid("buy", 1), pan1, 999)); r.Code != DuplicateDifferent {
			t.Errorf("an advice of another amount = %+v, want 94", r)
		}
		if n := journalKinds(t, s); n[KindPurchase] != 1 || n[KindStandIn] != 0 {
			t.Errorf("journal kinds %v", n)
		}
		if b := balanceOf(t, s, pan1); b != 4000 {
			t.Errorf("balance %d, want 4000", b)
		}
		mustVerify(t, s)
	})

	t.Run("a declined purchase and then its advice: booked forced, and the original replays it", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 500)
		if r := purchase(t, s, txid("buy", 1), pan1, 1000); r.Code != InsufficientFunds {
			t.Fatalf("purchase = %+v, want 51", r)
		}
		adv := do(t, s, advice(txid("buy", 1), pan1, 1000))
		if adv.Code != Approved || adv.Replayed || adv.Seq != 2 || adv.Ledger != -500 {
			t.Errorf("advice after the decline = %+v, want a forced booking", adv)
		}
		want := adv
		want.Replayed = true
		if r := purchase(t, s, txid("buy", 1), pan1, 1000); r != want {
			t.Errorf("the original's retransmission = %+v, want the advice's %+v", r, want)
		}
		if r := do(t, s, advice(txid("buy", 1), pan1, 1000)); r != want {
			t.Errorf("the repeat = %+v, want %+v", r, want)
		}
		if n := journalKinds(t, s); n[KindPurchase] != 0 || n[KindStandIn] != 1 {
			t.Errorf("journal kinds %v", n)
		}
		mustVerify(t, s)
	})

	t.Run("an advice and then its late original: the original gets the advice's answer", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 5000)
		adv := do(t, s, advice(txid("buy", 1), pan1, 1000))
		want := adv
		want.Replayed = true
		if r := purchase(t, s, txid("buy", 1), pan1, 1000); r != want {
			t.Errorf("the late original = %+v, want %+v", r, want)
		}
		if r := purchase(t, s, txid("buy", 1), pan1, 2000); r != (Result{Code: DuplicateDifferent}) {
			t.Errorf("other content under its TxID = %+v, want 94", r)
		}
		if b := balanceOf(t, s, pan1); b != 4000 {
			t.Errorf("balance %d, want 4000", b)
		}
		if n := journalKinds(t, s); n[KindPurchase] != 0 || n[KindStandIn] != 1 {
			t.Errorf("journal kinds %v", n)
		}
		mustVerify(t, s)
	})

	t.Run("an advice under another request's TxID is 94", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 5000)
		if r := do(t, s, advice(txid("dep", 1), pan1, 5000)); r.Code != DuplicateDifferent {
			t.Errorf("advice under a deposit's TxID = %+v, want 94", r)
		}
		purchase(t, s, txid("buy", 1), pan1, 100)
		do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 100, 0))
		if r := do(t, s, advice(txid("rev", 1), pan1, 100)); r.Code != DuplicateDifferent {
			t.Errorf("advice under a reversal's TxID = %+v, want 94", r)
		}
		if n := journalKinds(t, s)[KindStandIn]; n != 0 {
			t.Errorf("%d stand-in entries", n)
		}
		mustVerify(t, s)
	})

	t.Run("a reversal after the advice undoes the stand-in booking", func(t *testing.T) {
		s := openShard(t, "")
		card := openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 1000)
		adv := do(t, s, advice(txid("buy", 1), pan1, 3000))
		if adv.Ledger != -2000 {
			t.Fatalf("advice = %+v", adv)
		}
		if r := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 3000, 1000)); r.Code != Approved || r.Ledger != 0 {
			t.Errorf("partial reversal to 1000 = %+v, want 00 at 0", r)
		}
		if r := do(t, s, reversal(txid("rev", 2), txid("buy", 1), pan1, 3000, 0)); r.Code != Approved || r.Ledger != 1000 {
			t.Errorf("full reversal = %+v, want 00 at 1000", r)
		}
		if r := do(t, s, reversal(txid("rev", 3), txid("buy", 1), pan1, 3000, 0)); r.Code != Approved || r.Seq != 0 {
			t.Errorf("reversal of a reversed stand-in = %+v, want 00 with nothing booked", r)
		}
		// The advice's repeat still replays its first outcome and books nothing more.
		if r := do(t, s, advice(txid("buy", 1), pan1, 3000)); r.Seq != adv.Seq || !r.Replayed {
			t.Errorf("repeat after the reversal = %+v", r)
		}
		if a := account(t, s, card); a.Balance() != 1000 {
			t.Errorf("card = %+v", a)
		}
		for _, e := range journal(t, s) {
			if e.Kind == KindReversal && e.Original != adv.Seq {
				t.Errorf("reversal entry %+v does not name the stand-in %d", e, adv.Seq)
			}
		}
		rep := mustVerify(t, s)
		if rep.Reversals != 2 || rep.StandIns != 1 || rep.Overdrawn != 0 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("a reversal before the advice: 00, nothing booked, and the original still 68", func(t *testing.T) {
		s := openShard(t, "")
		card := openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 1000)
		if r := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 3000, 0)); r.Code != OriginalNotFound {
			t.Fatalf("reversal = %+v, want 25", r)
		}
		before := account(t, s, card)
		want := Result{Code: Approved, Currency: cny, Ledger: 1000, Available: 1000}
		for i := range 2 { // the advice and its repeat
			if r := do(t, s, advice(txid("buy", 1), pan1, 3000)); r != want {
				t.Errorf("advice %d after the reversal = %+v, want %+v", i, r, want)
			}
		}
		if r := purchase(t, s, txid("buy", 1), pan1, 3000); r != (Result{Code: TooLate}) {
			t.Errorf("the late original = %+v, want 68", r)
		}
		// Once the original has claimed the tombstone, its content is the TxID's.
		if r := do(t, s, advice(txid("buy", 1), pan1, 3000)); r != want {
			t.Errorf("advice after the late original = %+v, want %+v", r, want)
		}
		if r := do(t, s, advice(txid("buy", 1), pan1, 2999)); r.Code != DuplicateDifferent {
			t.Errorf("advice of another amount = %+v, want 94", r)
		}
		if a := account(t, s, card); a != before {
			t.Errorf("card changed: %+v → %+v", before, a)
		}
		rep := mustVerify(t, s)
		if rep.StandIns != 0 || rep.Tombstones != 1 || rep.LastSeq != 1 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("a declined purchase reversed before its advice: the advice books nothing", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 500)
		if r := purchase(t, s, txid("buy", 1), pan1, 1000); r.Code != InsufficientFunds {
			t.Fatalf("purchase = %+v", r)
		}
		if r := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 1000, 0)); r.Code != Approved || r.Seq != 0 {
			t.Fatalf("reversal of the declined purchase = %+v", r)
		}
		if r := do(t, s, reversal(txid("rev", 2), txid("buy", 1), pan1, 1000, 0)); r.Code != Approved || r.Seq != 0 {
			t.Errorf("a second reversal of it = %+v, want 00 as before", r)
		}
		if r := do(t, s, advice(txid("buy", 1), pan1, 1000)); r != (Result{Code: Approved, Currency: cny, Ledger: 500, Available: 500}) {
			t.Errorf("advice = %+v, want 00 with nothing booked", r)
		}
		if r := purchase(t, s, txid("buy", 1), pan1, 1000); r.Code != InsufficientFunds || !r.Replayed {
			t.Errorf("the original's retransmission = %+v, want its 51 replayed", r)
		}
		if r := do(t, s, advice(txid("buy", 1), pan1, 900)); r.Code != DuplicateDifferent {
			t.Errorf("advice of another amount = %+v, want 94", r)
		}
		if st := s.Stats(); st.LastSeq != 1 {
			t.Errorf("LastSeq = %d, want 1", st.LastSeq)
		}
		mustVerify(t, s)
	})

	t.Run("advice and reversal end in the same balances in either order", func(t *testing.T) {
		for _, order := range []string{"advice first", "reversal first"} {
			for _, declined := range []bool{false, true} {
				s := openShard(t, "")
				openCard(t, s, pan1)
				deposit(t, s, txid("dep", 1), pan1, 500)
				if declined {
					purchase(t, s, txid("buy", 1), pan1, 1000) // 51: it reached the shard after all
				}
				adv := func() { do(t, s, advice(txid("buy", 1), pan1, 1000)) }
				rev := func() { do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 1000, 0)) }
				if order == "advice first" {
					adv()
					rev()
				} else {
					rev()
					adv()
				}
				if b := balanceOf(t, s, pan1); b != 500 {
					t.Errorf("%s, original declined %t: balance %d, want 500", order, declined, b)
				}
				mustVerify(t, s)
			}
		}
	})

	t.Run("state survives restarts between original, advice, repeat and reversal", func(t *testing.T) {
		dir := t.TempDir()
		s := openShard(t, dir)
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 1000)
		purchase(t, s, txid("buy", 2), pan1, 5000)                        // 51
		do(t, s, reversal(txid("rev", 3), txid("buy", 3), pan1, 100, 0))  // a tombstone
		purchase(t, s, txid("buy", 4), pan1, 100)                         // 00, seq 2
		purchase(t, s, txid("buy", 5), pan1, 5000)                        // 51, then voided by
		do(t, s, reversal(txid("rev", 5), txid("buy", 5), pan1, 5000, 0)) // this reversal
		restart := func() {
			t.Helper()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openShard(t, dir)
		}
		restart()
		first := do(t, s, advice(txid("buy", 1), pan1, 2000))
		if first.Code != Approved || first.Ledger != -1100 {
			t.Fatalf("advice after restart = %+v", first)
		}
		if r := do(t, s, advice(txid("buy", 2), pan1, 5000)); r.Code != Approved || r.Replayed || r.Ledger != -6100 {
			t.Errorf("advice over the decline after restart = %+v", r)
		}
		if r := do(t, s, advice(txid("buy", 3), pan1, 100)); r.Code != Approved || r.Seq != 0 {
			t.Errorf("advice over the tombstone after restart = %+v", r)
		}
		if r := do(t, s, advice(txid("buy", 4), pan1, 100)); r.Code != Approved || !r.Replayed || r.Seq != 2 {
			t.Errorf("advice of the booked purchase after restart = %+v", r)
		}
		if r := do(t, s, advice(txid("buy", 5), pan1, 5000)); r.Code != Approved || r.Seq != 0 {
			t.Errorf("advice of the voided purchase after restart = %+v", r)
		}
		restart()
		if r := do(t, s, advice(txid("buy", 1), pan1, 2000)); r.Seq != first.Seq || !r.Replayed {
			t.Errorf("repeat after restart = %+v, want %+v replayed", r, first)
		}
		if r := purchase(t, s, txid("buy", 1), pan1, 2000); r.Seq != first.Seq || !r.Replayed {
			t.Errorf("late original after restart = %+v", r)
		}
		if r := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 2000, 0)); r.Code != Approved || r.Ledger != -4100 {
			t.Errorf("reversal of the stand-in after restart = %+v", r)
		}
		restart()
		if b := balanceOf(t, s, pan1); b != -4100 {
			t.Errorf("balance %d, want -4100", b)
		}
		rep := mustVerify(t, s)
		if rep.StandIns != 2 || rep.Reversals != 1 || rep.Tombstones != 1 || rep.Overdrawn != 1 {
			t.Errorf("report = %+v", rep)
		}
	})
}

// TestApplyAdvice drives the state machine directly: within one batch an advice meets its
// original, its repeat and its reversal as it would across batches, and the batch passes check.
func TestApplyAdvice(t *testing.T) {
	open := &command{op: opOpenAccount, spec: AccountSpec{Type: Card, Currency: cny, PAN: pan1}}
	adviceCmd := func(id TxID, amount int64) *command {
		return &command{op: OpAdvice, req: Request{Op: OpAdvice, ID: id, PAN: pan1, Amount: amount, Currency: cny}}
	}
	steps := []struct {
		cmd  *command
		want Result
	}{
		{open, Result{}},
		{depositCmd(txid("d", 1), pan1, 500), Result{Code: Approved, Seq: 1, Currency: cny, Ledger: 500, Available: 500, AuthCode: "000001"}},
		{purchaseCmd(txid("p", 1), pan1, 800), Result{Code: InsufficientFunds, Currency: cny, Ledger: 500, Available: 500}},
		{adviceCmd(txid("p", 1), 800), Result{Code: Approved, Seq: 2, Currency: cny, Ledger: -300, Available: -300, AuthCode: "000002"}},
		{adviceCmd(txid("p", 1), 800), Result{Code: Approved, Replayed: true, Seq: 2, Currency: cny, Ledger: -300, Available: -300, AuthCode: "000002"}},
		{purchaseCmd(txid("p", 1), pan1, 800), Result{Code: Approved, Replayed: true, Seq: 2, Currency: cny, Ledger: -300, Available: -300, AuthCode: "000002"}},
		{reversalCmd(txid("r", 1), txid("p", 1), pan1, 800, 0), Result{Code: Approved, Seq: 3, Currency: cny, Ledger: 500, Available: 500, AuthCode: "000003"}},
		{reversalCmd(txid("r", 2), txid("p", 2), pan1, 100, 0), Result{Code: OriginalNotFound, Currency: cny, Ledger: 500, Available: 500}},
		{adviceCmd(txid("p", 2), 100), Result{Code: Approved, Currency: cny, Ledger: 500, Available: 500}},
		{purchaseCmd(txid("p", 2), pan1, 100), Result{Code: TooLate}},
		{adviceCmd(txid("p", 3), 900), Result{Code: Approved, Seq: 4, Currency: cny, Ledger: -400, Available: -400, AuthCode: "000004"}},
		{purchaseCmd(txid("p", 4), pan1, 1), Result{Code: InsufficientFunds, Currency: cny, Ledger: -400, Available: -400}},
	}
	st := testState()
	b := newBatch()
	b.reset(st, map[TxID]txRecord{}, 42, int64(defaultHoldTTL))
	for i, s := range steps {
		out := b.apply(s.cmd)
		if out.err != nil {
			t.Fatalf("step %d: %v", i, out.err)
		}
		if out.res != s.want {
			t.Errorf("step %d: %+v, want %+v", i, out.res, s.want)
		}
	}
	if err := b.check(); err != nil {
		t.Error(err)
	}
	if len(b.newTxs) != len(b.txs) {
		t.Errorf("%d records to write for %d changed: one is written twice", len(b.newTxs), len(b.txs))
	}
	if rec := b.txs[txid("p", 1)]; rec.kind != txStandIn || rec.reversed != 800 || rec.amount != 800 {
		t.Errorf("record of the stand-in = %+v", rec)
	}
}

func TestCheckOverdraftRule(t *testing.T) {
	// A batch whose journal takes a card below zero passes check only when the entry doing it
	// is a stand-in.
	for _, kind := range []Kind{KindPurchase, KindStandIn} {
		st := testState()
		b := newBatch()
		b.reset(st, map[TxID]txRecord{}, 1, int64(defaultHoldTTL))
		b.apply(&command{op: opOpenAccount, spec: AccountSpec{Type: Card, Currency: cny, PAN: pan1}})
		b.seq++
		b.mutable(firstAccountID).DebitsPosted += 5
		b.mutable(SettlementPayableID).CreditsPosted += 5
		b.journal = append(b.journal, Transfer{Seq: b.seq, TxID: txid("x", 1), Kind: kind, Debit: firstAccountID,
			Credit: SettlementPayableID, Amount: 5, Currency: cny})
		err := b.check()
		if kind == KindStandIn && err != nil {
			t.Errorf("a stand-in below zero failed the check: %v", err)
		}
		if kind == KindPurchase && (err == nil || !strings.Contains(err.Error(), "overdraws account 1000")) {
			t.Errorf("a purchase below zero: err = %v", err)
		}
	}

	t.Run("an account moved without an entry fails", func(t *testing.T) {
		st := testState()
		b := newBatch()
		b.reset(st, map[TxID]txRecord{}, 1, int64(defaultHoldTTL))
		b.mutable(FundingID).DebitsPosted += 5
		b.mutable(SettlementPayableID).CreditsPosted += 5
		if err := b.check(); err == nil {
			t.Error("postings without journal entries passed the check")
		}
	})
}

func TestVerifyFindsOverdraft(t *testing.T) {
	// Forge, behind the shard's back, one balanced entry that takes a funded card below zero,
	// with its record and accounts in agreement: as a purchase it is a break, as a stand-in not.
	for _, kind := range []Kind{KindPurchase, KindStandIn} {
		t.Run(kind.String(), func(t *testing.T) {
			s := openShard(t, "")
			card := openCard(t, s, pan1)
			deposit(t, s, txid("dep", 1), pan1, 1000)
			do(t, s, advice(txid("adv", 1), pan1, 1500)) // an honest stand-in first: -500
			forged := Transfer{Seq: 3, TxID: txid("forged", 1), Kind: kind, Debit: card,
				Credit: SettlementPayableID, Amount: 200, Currency: cny, Window: 1, SettleDate: testDay}
			rec := txRecord{digest: txid("d", 1), code: Approved, seq: 3, currency: cny, kind: recordKind(kind),
				account: card, amount: 200}
			sp, c := account(t, s, SettlementPayableID), account(t, s, card)
			sp.CreditsPosted += 200
			c.DebitsPosted += 200
			err := s.db.Update(func(txn *badger.Txn) error {
				for k, v := range map[string][]byte{
					string(appendJournalKey(nil, 3)):                   appendTransfer(nil, &forged),
					string(appendTxKey(nil, &forged.TxID)):             appendTxRecord(nil, &rec),
					string(appendAccountKey(nil, SettlementPayableID)): appendAccount(nil, &sp),
					string(appendAccountKey(nil, card)):                appendAccount(nil, &c),
					string(keySeq):                                     appendCounter(nil, 3),
				} {
					if err := txn.Set([]byte(k), v); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := s.Verify()
			if kind == KindStandIn {
				if err != nil || rep.Overdrawn != 1 || rep.StandIns != 2 {
					t.Errorf("a stand-in below zero: %v, report %+v", err, rep)
				}
				return
			}
			want := "seq 3: purchase overdraws account 1000 to debits 1700 > credits 1000; only a stand-in may"
			if err == nil || len(rep.Breaks) != 1 || rep.Breaks[0] != want {
				t.Errorf("breaks %q, want only %q", rep.Breaks, want)
			}
		})
	}
}

// isoAdvice is a stand-in advice (mti 0220 or 0221) of the purchase buy: buy's fields with the
// given changes, where "" deletes a field.
func isoAdvice(t testing.TB, buy *codec.Message, mti string, changes map[int]string) *codec.Message {
	t.Helper()
	return isoReversal(t, buy, mti, changes)
}

// ledgerOf reads the ledger balance from a response's field 54.
func ledgerOf(t testing.TB, resp *codec.Message) int64 {
	t.Helper()
	amounts, err := codec.ParseAdditionalAmounts(resp.Get(54))
	if err != nil || len(amounts) == 0 || amounts[0].AmountType != codec.AmountLedger {
		t.Fatalf("54 = %q: %v", resp.Get(54), err)
	}
	return amounts[0].Amount
}

func TestHostAdvice(t *testing.T) {
	for _, d := range []*codec.Dialect{codec.ISO87ASCII(), codec.ISO87Binary()} {
		t.Run(d.Name(), func(t *testing.T) { testHostAdvice(t, d) })
	}
}

func testHostAdvice(t *testing.T, d *codec.Dialect) {
	t.Run("an 0220 books below zero and its 0221 replays it", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "002001", 12000)
		adv := exchange(t, h, isoAdvice(t, buy, "0220", nil))
		expect(t, adv, "0230", "00")
		if len(adv.Get(38)) != 6 || string(adv.Get(4)) != "000000012000" {
			t.Errorf("0230: 38 %q, 4 %q", adv.Get(38), adv.Get(4))
		}
		if b := ledgerOf(t, adv); b != -2000 {
			t.Errorf("0230 54 ledger %d, want -2000", b)
		}
		rep := exchange(t, h, isoAdvice(t, buy, "0221", nil))
		expect(t, rep, "0230", "00")
		if string(rep.Get(38)) != string(adv.Get(38)) {
			t.Errorf("0221 38 = %q, want the 0220's %q", rep.Get(38), adv.Get(38))
		}
		if b := balanceOf(t, s, pan1); b != -2000 {
			t.Errorf("balance %d, want -2000", b)
		}
		if n := journalKinds(t, s)[KindStandIn]; n != 1 {
			t.Errorf("%d stand-in entries, want 1", n)
		}
		if rep := mustVerify(t, s); rep.Overdrawn != 1 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("an 0200 booked and then its 0220 book once", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "002101", 2500)
		orig := exchange(t, h, buy)
		expect(t, orig, "0210", "00")
		adv := exchange(t, h, isoAdvice(t, buy, "0220", nil))
		expect(t, adv, "0230", "00")
		if string(adv.Get(38)) != string(orig.Get(38)) {
			t.Errorf("0230 38 = %q, want the purchase's %q", adv.Get(38), orig.Get(38))
		}
		expect(t, exchange(t, h, isoAdvice(t, buy, "0220", map[int]string{4: "000000002400"})), "0230", "94")
		if b := balanceOf(t, s, pan1); b != 7500 {
			t.Errorf("balance %d, want 7500", b)
		}
		if n := journalKinds(t, s); n[KindPurchase] != 1 || n[KindStandIn] != 0 {
			t.Errorf("journal kinds %v", n)
		}
		mustVerify(t, s)
	})

	t.Run("an 0220 and then its late 0200: the 0210 gets the advice's answer", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "002201", 3000)
		adv := exchange(t, h, isoAdvice(t, buy, "0220", nil))
		expect(t, adv, "0230", "00")
		for _, mti := range []string{"0200", "0201"} {
			late := exchange(t, h, isoMessageLike(t, buy, mti))
			expect(t, late, "0210", "00")
			if string(late.Get(38)) != string(adv.Get(38)) {
				t.Errorf("%s 38 = %q, want the advice's %q", mti, late.Get(38), adv.Get(38))
			}
		}
		expect(t, exchange(t, h, isoReversal(t, buy, "0200", map[int]string{4: "000000003001"})), "0210", "94")
		if b := balanceOf(t, s, pan1); b != 7000 {
			t.Errorf("balance %d, want 7000", b)
		}
		if n := journalKinds(t, s); n[KindPurchase] != 0 || n[KindStandIn] != 1 {
			t.Errorf("journal kinds %v", n)
		}
		mustVerify(t, s)
	})

	t.Run("field 90 names the purchase when the advice has its own STAN and time", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "002301", 700)
		orig := exchange(t, h, buy)
		expect(t, orig, "0210", "00")
		adv := exchange(t, h, isoAdvice(t, buy, "0220", map[int]string{11: "002302", 7: "0301080105",
			90: originalData("0200", "002301", isoTime, isoAcquirer)}))
		expect(t, adv, "0230", "00")
		if string(adv.Get(38)) != string(orig.Get(38)) {
			t.Errorf("0230 38 = %q, want the purchase's %q", adv.Get(38), orig.Get(38))
		}
		if b := balanceOf(t, s, pan1); b != 9300 {
			t.Errorf("balance %d, want 9300", b)
		}
		mustVerify(t, s)
	})

	t.Run("an 0420 after the 0220 undoes the stand-in", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "002401", 12000)
		expect(t, exchange(t, h, isoAdvice(t, buy, "0220", nil)), "0230", "00")
		rev := exchange(t, h, isoReversal(t, buy, "0420", nil))
		expect(t, rev, "0430", "00")
		if len(rev.Get(38)) != 6 || ledgerOf(t, rev) != 10000 {
			t.Errorf("0430: 38 %q, 54 %q", rev.Get(38), rev.Get(54))
		}
		expect(t, exchange(t, h, isoAdvice(t, buy, "0221", nil)), "0230", "00")
		if b := balanceOf(t, s, pan1); b != 10000 {
			t.Errorf("balance %d, want 10000", b)
		}
		if rep := mustVerify(t, s); rep.Reversals != 1 || rep.StandIns != 1 || rep.Overdrawn != 0 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("an 0420 before the 0220: 25, then 00 with nothing booked, and the 0200 68", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "002501", 4000)
		expect(t, exchange(t, h, isoReversal(t, buy, "0420", nil)), "0430", "25")
		for _, mti := range []string{"0220", "0221"} {
			adv := exchange(t, h, isoAdvice(t, buy, mti, nil))
			expect(t, adv, "0230", "00")
			if adv.Has(38) {
				t.Errorf("%s: the 0230 that booked nothing has 38 %q", mti, adv.Get(38))
			}
		}
		expect(t, exchange(t, h, buy), "0210", "68")
		if st := s.Stats(); st.LastSeq != 1 {
			t.Errorf("LastSeq = %d, want 1", st.LastSeq)
		}
		if rep := mustVerify(t, s); rep.Tombstones != 1 || rep.StandIns != 0 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("a closed or unknown card is 14 and nothing books", func(t *testing.T) {
		s, h := hostShard(t, "")
		closed := openCard(t, s, pan2)
		if err := s.SetStatus(context.Background(), closed, Closed); err != nil {
			t.Fatal(err)
		}
		for i, pan := range []string{"6299900000009999", pan2} {
			buy := isoPurchase(t, d, pan, fmt.Sprintf("00260%d", i), 100)
			expect(t, exchange(t, h, isoAdvice(t, buy, "0220", nil)), "0230", "14")
			expect(t, exchange(t, h, isoAdvice(t, buy, "0221", nil)), "0230", "14")
		}
		buy := isoPurchase(t, d, pan1, "002602", 100)
		expect(t, exchange(t, h, isoAdvice(t, buy, "0220", map[int]string{49: "840"})), "0230", "13")
		if st := s.Stats(); st.LastSeq != 1 {
			t.Errorf("LastSeq = %d, want 1", st.LastSeq)
		}
		mustVerify(t, s)
	})

	t.Run("a balance-inquiry advice is 00 and books nothing", func(t *testing.T) {
		s, h := hostShard(t, "")
		inq := isoPurchase(t, d, pan1, "002701", 0)
		if err := inq.SetString(3, "310000"); err != nil {
			t.Fatal(err)
		}
		for mti, answer := range map[string]string{"0220": "0230", "0221": "0230", "0120": "0130"} {
			expect(t, exchange(t, h, isoAdvice(t, inq, mti, map[int]string{4: ""})), answer, "00")
		}
		if st := s.Stats(); st.LastSeq != 1 {
			t.Errorf("LastSeq = %d, want 1", st.LastSeq)
		}
		mustVerify(t, s)
	})

	t.Run("advices that cannot be taken are declined, not guessed", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "002801", 100)
		for _, tc := range []struct {
			name    string
			mti     string
			changes map[int]string
			rc      string
		}{
			{"no amount", "0220", map[int]string{4: ""}, "30"},
			{"no transmission time", "0220", map[int]string{7: ""}, "30"},
			{"no STAN", "0221", map[int]string{11: ""}, "30"},
			{"no acquirer", "0220", map[int]string{32: ""}, "30"},
			{"no terminal", "0220", map[int]string{41: ""}, "30"},
			{"no currency", "0220", map[int]string{49: ""}, "30"},
			{"no PAN", "0220", map[int]string{2: ""}, "30"},
			{"a refund's advice", "0220", map[int]string{3: "200000"}, "12"},
			{"an authorisation advice", "0120", nil, "12"},
			{"a completion whose pre-authorisation is not booked", "0220", map[int]string{90: originalData("0100", "002801", isoTime, isoAcquirer)}, "25"},
			{"field 90 naming an advice", "0220", map[int]string{90: originalData("0220", "002801", isoTime, isoAcquirer)}, "12"},
		} {
			resp := exchange(t, h, isoAdvice(t, buy, tc.mti, tc.changes))
			if got := string(resp.Get(39)); got != tc.rc {
				t.Errorf("%s: 39 = %q, want %q", tc.name, got, tc.rc)
			}
		}
		if st := s.Stats(); st.LastSeq != 1 {
			t.Errorf("LastSeq = %d, want 1", st.LastSeq)
		}
		mustVerify(t, s)
	})

	t.Run("a restart between 0220, 0221, the late 0200 and the 0420 changes nothing", func(t *testing.T) {
		dir := t.TempDir()
		s, h := hostShard(t, dir)
		buy := isoPurchase(t, d, pan1, "002901", 15000)
		first := exchange(t, h, isoAdvice(t, buy, "0220", nil))
		expect(t, first, "0230", "00")
		restart := func() {
			t.Helper()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openShard(t, dir)
			h = NewHost(s)
		}
		restart()
		again := exchange(t, h, isoAdvice(t, buy, "0221", nil))
		expect(t, again, "0230", "00")
		if string(again.Get(38)) != string(first.Get(38)) || len(first.Get(38)) != 6 {
			t.Errorf("0221 after restart: 38 %q, first %q", again.Get(38), first.Get(38))
		}
		restart()
		expect(t, exchange(t, h, buy), "0210", "00")
		if b := balanceOf(t, s, pan1); b != -5000 {
			t.Errorf("balance %d, want -5000", b)
		}
		restart()
		expect(t, exchange(t, h, isoReversal(t, buy, "0420", nil)), "0430", "00")
		if b := balanceOf(t, s, pan1); b != 10000 {
			t.Errorf("balance %d, want 10000", b)
		}
		if n := journalKinds(t, s); n[KindStandIn] != 1 || n[KindPurchase] != 0 || n[KindReversal] != 1 {
			t.Errorf("journal kinds %v", n)
		}
		mustVerify(t, s)
	})
}

func TestAdviceTxID(t *testing.T) {
	d := codec.ISO87ASCII()
	buy := isoPurchase(t, d, pan1, "123456", 100)
	want := TxIDOf(buy)
	for _, tc := range []struct {
		name    string
		mti     string
		changes map[int]string
		same    bool
		rc      Code
	}{
		{"an 0220 repeating 7, 11, 32 and 41", "0220", nil, true, ""},
		{"its 0221 repeat", "0221", nil, true, ""},
		{"field 90 naming the 0200", "0220", map[int]string{11: "000001", 7: "0301090000",
			90: originalData("0200", "123456", isoTime, isoAcquirer)}, true, ""},
		{"field 90 naming an 0201 repeat", "0221", map[int]string{11: "000001",
			90: originalData("0201", "123456", isoTime, isoAcquirer)}, true, ""},
		{"another STAN without 90", "0220", map[int]string{11: "000001"}, false, ""},
		{"another terminal", "0220", map[int]string{41: "T0000002"}, false, ""},
		{"field 90 naming an 0100", "0220", map[int]string{90: originalData("0100", "123456", isoTime, isoAcquirer)}, false, InvalidTransaction},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adv := isoAdvice(t, buy, tc.mti, tc.changes)
			got, rc := adviceTxID(adv)
			if rc != tc.rc {
				t.Fatalf("rc %q, want %q", rc, tc.rc)
			}
			if (got == want) != tc.same {
				t.Errorf("advice TxID equal to the purchase's: %t, want %t", got == want, tc.same)
			}
			if rc == "" && got == TxIDOf(adv) {
				t.Error("the advice's TxID is TxIDOf(0220), not its purchase's")
			}
		})
	}
}
