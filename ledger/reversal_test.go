package ledger

import (
	"context"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// reversal builds an OpReversal of the purchase orig of amount on pan; actual is what the
// purchase ended at (0 for a full reversal).
func reversal(id, orig TxID, pan string, amount, actual int64) Request {
	return Request{Op: OpReversal, ID: id, Original: orig, PAN: pan, Amount: amount, Currency: cny,
		Actual: actual, Terminal: "T0000001", Merchant: "M00000000000001"}
}

// journalKinds counts the journal's entries by kind.
func journalKinds(t testing.TB, s *Shard) map[Kind]int {
	t.Helper()
	n := map[Kind]int{}
	for _, e := range journal(t, s) {
		n[e.Kind]++
	}
	return n
}

func TestReversal(t *testing.T) {
	t.Run("a full reversal restores the balance and links the purchase", func(t *testing.T) {
		s := openShard(t, "")
		card := openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 10000)
		buy := purchase(t, s, txid("buy", 1), pan1, 2550)
		got := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 2550, 0))
		want := Result{Code: Approved, Seq: 3, Currency: cny, Ledger: 10000, Available: 10000, AuthCode: "000003",
			Window: 1, SettleDate: testDay}
		if got != want {
			t.Errorf("reversal = %+v, want %+v", got, want)
		}
		if a := account(t, s, card); a.DebitsPosted != 2550 || a.CreditsPosted != 12550 {
			t.Errorf("card = %+v", a)
		}
		if a := account(t, s, SettlementPayableID); a.DebitsPosted != 2550 || a.CreditsPosted != 2550 || a.Balance() != 0 {
			t.Errorf("settlement-payable = %+v", a)
		}
		j := journal(t, s)
		if len(j) != 3 {
			t.Fatalf("journal has %d entries", len(j))
		}
		if e := j[2]; e.Kind != KindReversal || e.Original != buy.Seq || e.TxID != txid("rev", 1) ||
			e.Debit != SettlementPayableID || e.Credit != card || e.Amount != 2550 || e.Terminal != "T0000001" {
			t.Errorf("reversal entry = %+v", e)
		}
		rep := mustVerify(t, s)
		if rep.Reversals != 1 || rep.TxRecords != 3 || rep.Tombstones != 0 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("a partial reversal undoes the difference and later ones only what is left", func(t *testing.T) {
		s := openShard(t, "")
		card := openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 5000)
		purchase(t, s, txid("buy", 1), pan1, 1000)
		if r := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 1000, 600)); r.Code != Approved || r.Ledger != 4400 || r.Seq != 3 {
			t.Errorf("partial reversal to 600 = %+v, want 400 back", r)
		}
		// Ending at 700 after ending at 600 asks for less than is already undone.
		if r := do(t, s, reversal(txid("rev", 2), txid("buy", 1), pan1, 1000, 700)); r != (Result{Code: Approved, Currency: cny, Ledger: 4400, Available: 4400}) {
			t.Errorf("reversal to 700 = %+v, want 00 with nothing booked", r)
		}
		if r := do(t, s, reversal(txid("rev", 3), txid("buy", 1), pan1, 1000, 0)); r.Code != Approved || r.Ledger != 5000 || r.Seq != 4 {
			t.Errorf("full reversal after the partial = %+v, want the other 600 back", r)
		}
		if r := do(t, s, reversal(txid("rev", 4), txid("buy", 1), pan1, 1000, 0)); r.Code != Approved || r.Seq != 0 || r.AuthCode != "" {
			t.Errorf("reversal of a reversed purchase = %+v, want 00 with nothing booked", r)
		}
		if a := account(t, s, card); a.Balance() != 5000 || a.DebitsPosted != 1000 || a.CreditsPosted != 6000 {
			t.Errorf("card = %+v", a)
		}
		var undone int64
		for _, e := range journal(t, s) {
			if e.Kind == KindReversal {
				undone += e.Amount
			}
		}
		if undone != 1000 {
			t.Errorf("reversal entries undo %d of 1000", undone)
		}
		mustVerify(t, s)
	})

	t.Run("a retransmitted reversal books once and other content under its id is 94", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 5000)
		purchase(t, s, txid("buy", 1), pan1, 1000)
		first := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 1000, 0))
		again := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 1000, 0))
		want := first
		want.Replayed = true
		if first.Code != Approved || again != want {
			t.Errorf("first %+v, again %+v", first, again)
		}
		if r := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 1000, 300)); r.Code != DuplicateDifferent {
			t.Errorf("same id, other actual amount = %+v, want 94", r)
		}
		if n := journalKinds(t, s)[KindReversal]; n != 1 {
			t.Errorf("%d reversal entries, want 1", n)
		}
		mustVerify(t, s)
	})

	t.Run("two reversals of one purchase under different ids book once", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 5000)
		purchase(t, s, txid("buy", 1), pan1, 1000)
		if r := do(t, s, reversal(txid("0400", 1), txid("buy", 1), pan1, 1000, 0)); r.Code != Approved || r.Seq == 0 {
			t.Fatalf("0400 = %+v", r)
		}
		if r := do(t, s, reversal(txid("0420", 1), txid("buy", 1), pan1, 1000, 0)); r.Code != Approved || r.Seq != 0 || r.Replayed {
			t.Errorf("0420 = %+v, want 00 with nothing booked", r)
		}
		if n := journalKinds(t, s)[KindReversal]; n != 1 {
			t.Errorf("%d reversal entries, want 1", n)
		}
		if a, _ := s.AccountByPAN(pan1); a.Balance() != 5000 {
			t.Errorf("balance %d, want 5000", a.Balance())
		}
		mustVerify(t, s)
	})

	t.Run("a reversal before its purchase leaves a tombstone and the purchase never books", func(t *testing.T) {
		s := openShard(t, "")
		card := openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 5000)
		before := account(t, s, card)
		r := do(t, s, reversal(txid("rev", 1), txid("late", 1), pan1, 1000, 0))
		if r != (Result{Code: OriginalNotFound, Currency: cny, Ledger: 5000, Available: 5000}) {
			t.Errorf("reversal of an unknown purchase = %+v, want 25", r)
		}
		late := purchase(t, s, txid("late", 1), pan1, 1000)
		if late != (Result{Code: TooLate}) {
			t.Errorf("the late purchase = %+v, want 68 unreplayed", late)
		}
		if again := purchase(t, s, txid("late", 1), pan1, 1000); again != (Result{Code: TooLate, Replayed: true}) {
			t.Errorf("its retransmission = %+v, want 68 replayed", again)
		}
		if other := purchase(t, s, txid("late", 1), pan1, 999); other.Code != DuplicateDifferent {
			t.Errorf("other content under the tombstoned id = %+v, want 94", other)
		}
		if r := do(t, s, reversal(txid("rev", 2), txid("late", 1), pan1, 1000, 0)); r.Code != OriginalNotFound {
			t.Errorf("a second reversal of it = %+v, want 25", r)
		}
		if r := do(t, s, reversal(txid("rev", 1), txid("late", 1), pan1, 1000, 0)); r.Code != OriginalNotFound || !r.Replayed {
			t.Errorf("the first reversal again = %+v, want 25 replayed", r)
		}
		if a := account(t, s, card); a != before {
			t.Errorf("card changed: %+v → %+v", before, a)
		}
		if n := journalKinds(t, s); n[KindPurchase] != 0 || n[KindReversal] != 0 {
			t.Errorf("journal kinds %v, want the deposit only", n)
		}
		rep := mustVerify(t, s)
		if rep.Tombstones != 1 || rep.LastSeq != 1 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("a reversal of a declined purchase is approved and books nothing", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 500)
		if r := purchase(t, s, txid("buy", 1), pan1, 1000); r.Code != InsufficientFunds {
			t.Fatalf("purchase = %+v", r)
		}
		r := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 1000, 0))
		if r != (Result{Code: Approved, Currency: cny, Ledger: 500, Available: 500}) {
			t.Errorf("reversal = %+v, want 00 with nothing booked", r)
		}
		if st := s.Stats(); st.LastSeq != 1 {
			t.Errorf("LastSeq = %d, want 1", st.LastSeq)
		}
		mustVerify(t, s)
	})

	t.Run("amounts that do not fit the purchase are 13", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 5000)
		purchase(t, s, txid("buy", 1), pan1, 1000)
		for name, req := range map[string]Request{
			"ending above the amount": reversal(txid("rev", 1), txid("buy", 1), pan1, 1000, 1001),
			"ending below zero":       reversal(txid("rev", 2), txid("buy", 1), pan1, 1000, -1),
			"another amount":          reversal(txid("rev", 3), txid("buy", 1), pan1, 999, 0),
			"a zero amount":           reversal(txid("rev", 4), txid("buy", 1), pan1, 0, 0),
			"field 95 above field 4":  reversal(txid("rev", 5), txid("buy", 1), pan1, 2000, 1500),
			"another currency (840)": func() Request {
				r := reversal(txid("rev", 6), txid("buy", 1), pan1, 1000, 0)
				r.Currency = 840
				return r
			}(),
			"no original (zero TxID)":  reversal(txid("rev", 7), TxID{}, pan1, 1000, 0),
			"itself as its original":   reversal(txid("rev", 8), txid("rev", 8), pan1, 1000, 0),
			"an original never booked": reversal(txid("rev", 9), txid("nothing", 1), pan1, 1000, 1001),
		} {
			want := InvalidAmount
			if name == "no original (zero TxID)" || name == "itself as its original" {
				want = InvalidTransaction
			}
			if r := do(t, s, req); r.Code != want || r.Seq != 0 {
				t.Errorf("%s: %+v, want %s", name, r, want)
			}
		}
		if a, _ := s.AccountByPAN(pan1); a.Balance() != 4000 {
			t.Errorf("balance %d, want 4000", a.Balance())
		}
		rep := mustVerify(t, s)
		if rep.Tombstones != 0 {
			t.Errorf("%d tombstones: a malformed reversal left one", rep.Tombstones)
		}
	})

	t.Run("purchases are reversed on their own card only; a top-up only while its money is there", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		other := openCard(t, s, pan2)
		closing := openCard(t, s, pan3)
		deposit(t, s, txid("dep", 1), pan1, 5000)
		deposit(t, s, txid("dep", 2), pan2, 5000)
		deposit(t, s, txid("dep", 3), pan3, 300)
		purchase(t, s, txid("buy", 1), pan1, 1000)
		purchase(t, s, txid("buy", 2), pan2, 1000)
		purchase(t, s, txid("buy", 3), pan3, 300)
		if r := do(t, s, reversal(txid("rev", 1), txid("dep", 1), pan1, 5000, 0)); r.Code != InsufficientFunds {
			t.Errorf("reversal of a deposit that was spent since = %+v, want 51", r)
		}
		if r := do(t, s, reversal(txid("rev", 2), txid("buy", 2), pan1, 1000, 0)); r.Code != OriginalNotFound {
			t.Errorf("reversal on another card = %+v, want 25", r)
		}
		if r := do(t, s, reversal(txid("rev", 3), txid("buy", 2), "6299900000009999", 1000, 0)); r.Code != OriginalNotFound {
			t.Errorf("reversal on an unknown card = %+v, want 25", r)
		}
		ctx := context.Background()
		if err := s.SetStatus(ctx, other, Blocked); err != nil {
			t.Fatal(err)
		}
		if r := do(t, s, reversal(txid("rev", 4), txid("buy", 2), pan2, 1000, 0)); r.Code != Approved || r.Ledger != 5000 {
			t.Errorf("reversal on a blocked card = %+v, want the money back", r)
		}
		if err := s.SetStatus(ctx, closing, Closed); err != nil {
			t.Fatal(err)
		}
		if r := do(t, s, reversal(txid("rev", 5), txid("buy", 3), pan3, 300, 0)); r != (Result{Code: UnknownCard}) {
			t.Errorf("reversal on a closed card = %+v, want 14", r)
		}
		if rep := mustVerify(t, s); rep.Reversals != 1 || rep.Tombstones != 0 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("state survives a restart between purchase and reversal", func(t *testing.T) {
		dir := t.TempDir()
		s := openShard(t, dir)
		openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 5000)
		purchase(t, s, txid("buy", 1), pan1, 1000)
		purchase(t, s, txid("buy", 2), pan1, 1000)
		do(t, s, reversal(txid("rev", 0), txid("late", 1), pan1, 1000, 0)) // a tombstone
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openShard(t, dir)
		first := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 1000, 400))
		if first.Code != Approved || first.Ledger != 3600 {
			t.Fatalf("partial reversal after restart = %+v", first)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openShard(t, dir)
		if r := do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 1000, 400)); r.Code != Approved || !r.Replayed || r.Seq != first.Seq {
			t.Errorf("retransmission after restart = %+v", r)
		}
		if r := do(t, s, reversal(txid("rev", 2), txid("buy", 1), pan1, 1000, 0)); r.Code != Approved || r.Ledger != 4000 {
			t.Errorf("the rest after restart = %+v, want 400 more back", r)
		}
		if r := do(t, s, reversal(txid("rev", 3), txid("buy", 1), pan1, 1000, 0)); r.Code != Approved || r.Seq != 0 {
			t.Errorf("once more after restart = %+v, want nothing booked", r)
		}
		if r := purchase(t, s, txid("late", 1), pan1, 1000); r.Code != TooLate {
			t.Errorf("the tombstoned purchase after restart = %+v, want 68", r)
		}
		rep := mustVerify(t, s)
		if rep.Reversals != 2 || rep.Tombstones != 1 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("a purchase recorded in the v1 format is reversed", func(t *testing.T) {
		s := openShard(t, "")
		card := openCard(t, s, pan1)
		deposit(t, s, txid("dep", 1), pan1, 5000)
		buy := purchase(t, s, txid("buy", 1), pan1, 1000)
		// Rewrite the purchase's record as a shard from before reversals wrote it.
		v1 := txRecord{digest: digest(&Request{Op: OpPurchase, PAN: pan1, Amount: 1000, Currency: cny}),
			code: Approved, seq: buy.Seq, currency: cny, ledger: buy.Ledger, available: buy.Available}
		id := txid("buy", 1)
		enc := appendTxRecord(nil, &v1)
		if enc[0] != recordV1 {
			t.Fatalf("a record without kind encodes as version %d", enc[0])
		}
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(appendTxKey(nil, &id), enc) }); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, s)
		if r := purchase(t, s, id, pan1, 1000); r.Code != Approved || !r.Replayed || r.Seq != buy.Seq {
			t.Errorf("retransmission over the v1 record = %+v", r)
		}
		if r := do(t, s, reversal(txid("rev", 1), id, pan1, 1000, 250)); r.Code != Approved || r.Ledger != 4750 {
			t.Errorf("reversal of the v1 purchase = %+v", r)
		}
		if r := do(t, s, reversal(txid("rev", 2), id, pan1, 1000, 0)); r.Code != Approved || r.Ledger != 5000 {
			t.Errorf("second reversal (record now v2) = %+v", r)
		}
		if a := account(t, s, card); a.Balance() != 5000 {
			t.Errorf("balance %d", a.Balance())
		}
		mustVerify(t, s)
	})
}

func TestReversalSameBatch(t *testing.T) {
	// A reversal and its purchase in one batch, in either order, act as if in two batches.
	g := newGate()
	s := openShard(t, "", func(o *Options) { o.commitFault = g.hook })
	openCard(t, s, pan1)
	deposit(t, s, txid("dep", 0), pan1, 5000)
	g.armed.Store(true)
	go depositAsync(t, s, txid("dep", 1), pan1, 1) // holds the writer in its commit
	<-g.entered
	reqs := []Request{
		{Op: OpPurchase, ID: txid("buy", 1), PAN: pan1, Amount: 700, Currency: cny},
		reversal(txid("rev", 1), txid("buy", 1), pan1, 700, 0),
		reversal(txid("rev", 2), txid("late", 1), pan1, 900, 0),
		{Op: OpPurchase, ID: txid("late", 1), PAN: pan1, Amount: 900, Currency: cny},
	}
	results := make([]Result, len(reqs))
	done := make(chan struct{}, len(reqs))
	for i := range reqs {
		go func() {
			var err error
			results[i], err = s.Do(context.Background(), &reqs[i])
			if err != nil {
				t.Error(err)
			}
			done <- struct{}{}
		}()
		eventually(t, "the request is queued", func() bool { return len(s.queue) == i+1 })
	}
	close(g.release)
	for range reqs {
		<-done
	}
	if results[0].Code != Approved || results[1].Code != Approved || results[1].Seq != results[0].Seq+1 {
		t.Errorf("purchase then reversal: %+v, %+v", results[0], results[1])
	}
	if results[2].Code != OriginalNotFound || results[3].Code != TooLate {
		t.Errorf("reversal then purchase: %+v, %+v", results[2], results[3])
	}
	if a, _ := s.AccountByPAN(pan1); a.Balance() != 5001 {
		t.Errorf("balance %d, want 5001", a.Balance())
	}
	if rep := mustVerify(t, s); rep.Reversals != 1 || rep.Tombstones != 1 {
		t.Errorf("report = %+v", rep)
	}
}

func TestVerifyFindsOverReversal(t *testing.T) {
	s := openShard(t, "")
	card := openCard(t, s, pan1)
	deposit(t, s, txid("dep", 1), pan1, 5000)
	purchase(t, s, txid("buy", 1), pan1, 1000)
	do(t, s, reversal(txid("rev", 1), txid("buy", 1), pan1, 1000, 0))
	mustVerify(t, s)

	// Append a second, forged reversal of the same purchase, balanced and with its own record,
	// so that only the reversal checks can object.
	forged := Transfer{Seq: 4, TxID: txid("forged", 1), Kind: KindReversal, Debit: SettlementPayableID,
		Credit: card, Amount: 1000, Currency: cny, Original: 2}
	rec := txRecord{digest: txid("d", 1), code: Approved, seq: 4, currency: cny, kind: txReversal,
		account: card, amount: 1000}
	sp, c := account(t, s, SettlementPayableID), account(t, s, card)
	sp.DebitsPosted += 1000
	c.CreditsPosted += 1000
	err := s.db.Update(func(txn *badger.Txn) error {
		for k, v := range map[string][]byte{
			string(appendJournalKey(nil, 4)):                   appendTransfer(nil, &forged),
			string(appendTxKey(nil, &forged.TxID)):             appendTxRecord(nil, &rec),
			string(appendAccountKey(nil, SettlementPayableID)): appendAccount(nil, &sp),
			string(appendAccountKey(nil, card)):                appendAccount(nil, &c),
			string(keySeq):                                     appendCounter(nil, 4),
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
	if err == nil {
		t.Fatal("Verify passed a purchase reversed twice")
	}
	for _, want := range []string{
		"purchase 2 of 1000 reversed by 2000",
		"purchase 2: record says kind 1 amount 1000 reversed 1000 on account 1000, journal 1000 reversed 2000 on 1000",
	} {
		found := false
		for _, b := range rep.Breaks {
			found = found || b == want
		}
		if !found {
			t.Errorf("breaks %q lack %q", rep.Breaks, want)
		}
	}
}
