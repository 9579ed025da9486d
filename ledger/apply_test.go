package ledger

import (
	"errors"
	"testing"
)

// These tests drive the state machine directly: no badger, no goroutines, no clock.

func testState() *state {
	st := newState()
	st.currency = cny
	st.nextAcct = firstAccountID
	st.accounts[SettlementPayableID] = &Account{ID: SettlementPayableID, Type: InstitutionSettlement, Currency: cny, Status: Active}
	st.accounts[FundingID] = &Account{ID: FundingID, Type: InstitutionSettlement, Currency: cny, Status: Active}
	return st
}

func purchaseCmd(id TxID, pan string, amount int64) *command {
	return &command{op: OpPurchase, req: Request{Op: OpPurchase, ID: id, PAN: pan, Amount: amount, Currency: cny}}
}

func depositCmd(id TxID, pan string, amount int64) *command {
	return &command{op: OpDeposit, req: Request{Op: OpDeposit, ID: id, PAN: pan, Amount: amount, Currency: cny}}
}

func reversalCmd(id, orig TxID, pan string, amount, actual int64) *command {
	return &command{op: OpReversal, req: Request{Op: OpReversal, ID: id, Original: orig, PAN: pan, Amount: amount,
		Currency: cny, Actual: actual}}
}

func TestApply(t *testing.T) {
	type step struct {
		cmd  *command
		want Result
	}
	open := &command{op: opOpenAccount, spec: AccountSpec{Type: Card, Currency: cny, PAN: pan1}}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a card opened in a batch can be funded and spent in the same batch", []step{
			{open, Result{}},
			{depositCmd(txid("d", 1), pan1, 500), Result{Code: Approved, Seq: 1, Currency: cny, Ledger: 500, Available: 500, AuthCode: "000001"}},
			{purchaseCmd(txid("p", 1), pan1, 200), Result{Code: Approved, Seq: 2, Currency: cny, Ledger: 300, Available: 300, AuthCode: "000002"}},
		}},
		{"the same TxID twice in a batch replays, with other content it is 94", []step{
			{open, Result{}},
			{depositCmd(txid("d", 1), pan1, 500), Result{Code: Approved, Seq: 1, Currency: cny, Ledger: 500, Available: 500, AuthCode: "000001"}},
			{purchaseCmd(txid("p", 1), pan1, 200), Result{Code: Approved, Seq: 2, Currency: cny, Ledger: 300, Available: 300, AuthCode: "000002"}},
			{purchaseCmd(txid("p", 1), pan1, 200), Result{Code: Approved, Replayed: true, Seq: 2, Currency: cny, Ledger: 300, Available: 300, AuthCode: "000002"}},
			{purchaseCmd(txid("p", 1), pan1, 201), Result{Code: DuplicateDifferent}},
		}},
		{"a decline is recorded and replayed within the batch even after funding", []step{
			{open, Result{}},
			{purchaseCmd(txid("p", 1), pan1, 200), Result{Code: InsufficientFunds, Currency: cny}},
			{depositCmd(txid("d", 1), pan1, 500), Result{Code: Approved, Seq: 1, Currency: cny, Ledger: 500, Available: 500, AuthCode: "000001"}},
			{purchaseCmd(txid("p", 1), pan1, 200), Result{Code: InsufficientFunds, Replayed: true, Currency: cny}},
		}},
		{"spending exactly the balance is allowed, one more is not", []step{
			{open, Result{}},
			{depositCmd(txid("d", 1), pan1, 500), Result{Code: Approved, Seq: 1, Currency: cny, Ledger: 500, Available: 500, AuthCode: "000001"}},
			{purchaseCmd(txid("p", 1), pan1, 500), Result{Code: Approved, Seq: 2, Currency: cny, Ledger: 0, Available: 0, AuthCode: "000002"}},
			{purchaseCmd(txid("p", 2), pan1, 1), Result{Code: InsufficientFunds, Currency: cny}},
		}},
		{"a purchase and its reversals in one batch undo it once", []step{
			{open, Result{}},
			{depositCmd(txid("d", 1), pan1, 500), Result{Code: Approved, Seq: 1, Currency: cny, Ledger: 500, Available: 500, AuthCode: "000001"}},
			{purchaseCmd(txid("p", 1), pan1, 200), Result{Code: Approved, Seq: 2, Currency: cny, Ledger: 300, Available: 300, AuthCode: "000002"}},
			{reversalCmd(txid("r", 1), txid("p", 1), pan1, 200, 50), Result{Code: Approved, Seq: 3, Currency: cny, Ledger: 450, Available: 450, AuthCode: "000003"}},
			{reversalCmd(txid("r", 1), txid("p", 1), pan1, 200, 50), Result{Code: Approved, Replayed: true, Seq: 3, Currency: cny, Ledger: 450, Available: 450, AuthCode: "000003"}},
			{reversalCmd(txid("r", 2), txid("p", 1), pan1, 200, 0), Result{Code: Approved, Seq: 4, Currency: cny, Ledger: 500, Available: 500, AuthCode: "000004"}},
			{reversalCmd(txid("r", 3), txid("p", 1), pan1, 200, 0), Result{Code: Approved, Currency: cny, Ledger: 500, Available: 500}},
			{purchaseCmd(txid("p", 1), pan1, 200), Result{Code: Approved, Replayed: true, Seq: 2, Currency: cny, Ledger: 300, Available: 300, AuthCode: "000002"}},
		}},
		{"a reversal before its purchase tombstones it within the batch", []step{
			{open, Result{}},
			{depositCmd(txid("d", 1), pan1, 500), Result{Code: Approved, Seq: 1, Currency: cny, Ledger: 500, Available: 500, AuthCode: "000001"}},
			{reversalCmd(txid("r", 1), txid("p", 1), pan1, 200, 0), Result{Code: OriginalNotFound, Currency: cny, Ledger: 500, Available: 500}},
			{purchaseCmd(txid("p", 1), pan1, 200), Result{Code: TooLate}},
			{purchaseCmd(txid("p", 1), pan1, 200), Result{Code: TooLate, Replayed: true}},
			{purchaseCmd(txid("p", 1), pan1, 201), Result{Code: DuplicateDifferent}},
			{reversalCmd(txid("r", 2), txid("p", 1), pan1, 200, 0), Result{Code: OriginalNotFound, Currency: cny, Ledger: 500, Available: 500}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := testState()
			b := newBatch()
			b.reset(st, map[TxID]txRecord{}, 42, int64(defaultHoldTTL))
			for i, s := range tc.steps {
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
			for _, e := range b.journal {
				if e.Time != 42 {
					t.Errorf("entry %d has time %d, want the batch clock 42", e.Seq, e.Time)
				}
			}
		})
	}

	t.Run("state changes only when the batch is folded", func(t *testing.T) {
		st := testState()
		b := newBatch()
		b.reset(st, map[TxID]txRecord{}, 1, int64(defaultHoldTTL))
		b.apply(open)
		b.apply(depositCmd(txid("d", 1), pan1, 500))
		if len(st.accounts) != 2 || len(st.cards) != 0 || st.seq != 0 || st.nextAcct != firstAccountID ||
			st.accounts[FundingID].DebitsPosted != 0 {
			t.Fatalf("state changed before fold: %+v", st)
		}
		// A failed commit: the writer resets the batch and applies the next one.
		b.reset(st, map[TxID]txRecord{}, 2, int64(defaultHoldTTL))
		if !b.empty() {
			t.Fatal("reset batch is not empty")
		}
		b.apply(open)
		b.apply(depositCmd(txid("d", 1), pan1, 500))
		b.fold()
		if st.seq != 1 || st.nextAcct != firstAccountID+1 || st.cards[pan1] != firstAccountID ||
			st.accounts[firstAccountID].Balance() != 500 || st.accounts[FundingID].DebitsPosted != 500 {
			t.Errorf("state after fold: seq %d next %d", st.seq, st.nextAcct)
		}
	})

	t.Run("the invariant check catches an unbalanced batch and an overdraft", func(t *testing.T) {
		st := testState()
		b := newBatch()
		b.reset(st, map[TxID]txRecord{}, 1, int64(defaultHoldTTL))
		b.mutable(FundingID).DebitsPosted += 5
		if err := b.check(); err == nil {
			t.Error("a one-sided posting passed the check")
		}
		b.reset(st, map[TxID]txRecord{}, 1, int64(defaultHoldTTL))
		b.apply(open)
		b.mutable(firstAccountID).DebitsPosted += 5
		b.mutable(SettlementPayableID).CreditsPosted += 5
		if err := b.check(); err == nil {
			t.Error("an overdrawn card passed the check")
		}
	})

	t.Run("admin refusals", func(t *testing.T) {
		st := testState()
		b := newBatch()
		b.reset(st, map[TxID]txRecord{}, 1, int64(defaultHoldTTL))
		if out := b.apply(open); out.err != nil || out.acct != firstAccountID {
			t.Fatalf("open = %+v", out)
		}
		if out := b.apply(open); !errors.Is(out.err, ErrPANBound) {
			t.Errorf("second open = %+v, want ErrPANBound", out)
		}
		if out := b.apply(&command{op: opSetStatus, acct: 7777, status: Blocked}); !errors.Is(out.err, ErrNotFound) {
			t.Errorf("status of a missing account = %+v", out)
		}
	})
}

func TestAuthCode(t *testing.T) {
	for seq, want := range map[uint64]string{1: "000001", 35: "00000Z", 36: "000010", 36*36*36*36*36*36 + 5: "000005"} {
		if got := authCode(seq); got != want {
			t.Errorf("authCode(%d) = %q, want %q", seq, got, want)
		}
	}
}

func TestMaskPAN(t *testing.T) {
	for pan, want := range map[string]string{
		"6299900000000018":    "629990******0018",
		"6299900000000000018": "629990*********0018",
		"629990000018":        "********0018",
		"123":                 "***",
		"":                    "",
	} {
		if got := maskPAN(pan); got != want {
			t.Errorf("maskPAN(%q) = %q, want %q", pan, got, want)
		}
	}
}

func TestNewTxID(t *testing.T) {
	if NewTxID([]byte("ab"), []byte("c")) == NewTxID([]byte("a"), []byte("bc")) {
		t.Error("part boundaries do not change the id")
	}
	if NewTxID([]byte("x")) != NewTxID([]byte("x")) {
		t.Error("NewTxID is not deterministic")
	}
	if NewTxID().IsZero() {
		t.Error("the id of no parts is zero")
	}
}

func TestHotPathAllocations(t *testing.T) {
	mti, term, stan := []byte("020"), []byte("T0000001"), []byte("000123")
	r := Request{Op: OpPurchase, ID: txid("a", 1), PAN: pan1, Amount: 5, Currency: cny, Terminal: "T0000001"}
	rv := Request{Op: OpReversal, ID: txid("a", 2), Original: txid("a", 1), PAN: pan1, Amount: 5, Currency: cny, Actual: 2}
	rec := sampleReversed
	tr := Transfer{Seq: 9, Kind: KindPurchase, Terminal: "T0000001", Merchant: "M1"}
	buf := make([]byte, 0, 512)
	for name, fn := range map[string]func(){
		"NewTxID":         func() { _ = NewTxID(mti, term, stan) },
		"digest":          func() { _ = digest(&r) },
		"reversal digest": func() { _ = digest(&rv) },
		"appendTxRecord":  func() { _ = appendTxRecord(buf[:0], &rec) },
		"appendTransfer":  func() { _ = appendTransfer(buf[:0], &tr) },
		"appendAccount":   func() { _ = appendAccount(buf[:0], &sampleAccount) },
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s allocates %v times per call, want 0", name, n)
		}
	}
}
