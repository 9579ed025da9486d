package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const (
	pan1 = "6299900000000018"
	pan2 = "6299900000000026"
	pan3 = "6299900000000034"
)

func TestOpen(t *testing.T) {
	t.Run("a new shard has the three well-known accounts and an empty journal", func(t *testing.T) {
		s := openShard(t, "")
		accts, err := s.Accounts()
		if err != nil {
			t.Fatal(err)
		}
		want := []Account{
			{ID: 1, Type: InstitutionSettlement, Currency: cny, Status: Active, Name: "settlement-payable"},
			{ID: 2, Type: InstitutionSettlement, Currency: cny, Status: Active, Name: "funding"},
			{ID: 3, Type: Suspense, Currency: cny, Status: Active, Name: "suspense"},
		}
		if fmt.Sprint(accts) != fmt.Sprint(want) {
			t.Errorf("Accounts() = %+v, want %+v", accts, want)
		}
		if j := journal(t, s); len(j) != 0 {
			t.Errorf("journal has %d entries", len(j))
		}
		if st := s.Stats(); st.LastSeq != 0 {
			t.Errorf("LastSeq = %d", st.LastSeq)
		}
		if s.Region() != "beijing" {
			t.Errorf("Region() = %q", s.Region())
		}
		mustVerify(t, s)
	})

	t.Run("ordinary accounts are numbered from 1000 and a PAN binds once", func(t *testing.T) {
		s := openShard(t, "")
		if id := openCard(t, s, pan1); id != 1000 {
			t.Errorf("first card id = %d, want 1000", id)
		}
		if id := openCard(t, s, pan2); id != 1001 {
			t.Errorf("second card id = %d, want 1001", id)
		}
		_, err := s.OpenAccount(context.Background(), AccountSpec{Type: Card, Currency: cny, PAN: pan1})
		if !errors.Is(err, ErrPANBound) {
			t.Errorf("binding %s again: err = %v, want ErrPANBound", maskPAN(pan1), err)
		}
		a, err := s.AccountByPAN(pan1)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID != 1000 || a.MaskedPAN != "629990******0018" || a.Flags != DebitsMustNotExceedCredits || a.Type != Card {
			t.Errorf("AccountByPAN = %+v", a)
		}
		if _, err := s.AccountByPAN("6299900000000999"); !errors.Is(err, ErrNotFound) {
			t.Errorf("AccountByPAN(unbound) err = %v, want ErrNotFound", err)
		}
		if _, err := s.Account(4242); !errors.Is(err, ErrNotFound) {
			t.Errorf("Account(4242) err = %v, want ErrNotFound", err)
		}
		mustVerify(t, s)
	})

	t.Run("bad account specs are refused", func(t *testing.T) {
		s := openShard(t, "")
		for _, spec := range []AccountSpec{
			{Type: Card, Currency: 840, PAN: pan1},
			{Type: Card, Currency: cny, PAN: "12345"},
			{Type: Card, Currency: cny},
			{Type: InstitutionSettlement, Currency: cny, PAN: pan1},
			{Type: Merchant, Currency: cny, Limits: Limits{CreditLimit: 1}},
			{Type: Merchant, Currency: cny, PAN: pan1},
			{Type: Debit, Currency: cny, Number: "0105/5551234"},
			{Type: Debit, Currency: cny, Number: strings.Repeat("1", 29)},
			{Type: CreditLine, Currency: cny, Limits: Limits{CreditLimit: -1}},
			{Type: 0, Currency: cny},
			{Type: InstitutionSettlement, Currency: cny, Name: strings.Repeat("x", 33)},
		} {
			if _, err := s.OpenAccount(context.Background(), spec); err == nil {
				t.Errorf("OpenAccount(%+v) succeeded", spec)
			}
		}
		if accts, _ := s.Accounts(); len(accts) != 3 {
			t.Errorf("%d accounts after refusals, want 3", len(accts))
		}
	})

	t.Run("options are checked", func(t *testing.T) {
		for _, o := range []Options{
			{Region: "x"},
			{Dir: t.TempDir()},
			{Dir: t.TempDir(), Region: "x", MaxBatch: -1},
		} {
			if s, err := Open(o); err == nil {
				s.Close()
				t.Errorf("Open(%+v) succeeded", o)
			}
		}
	})

	t.Run("a shard refuses to reopen in another currency", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(testOptions(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		o := testOptions(t, dir)
		o.Currency = 840
		if s, err := Open(o); err == nil {
			s.Close()
			t.Fatal("reopening a CNY shard as USD succeeded")
		}
	})
}

func TestPurchase(t *testing.T) {
	s := openShard(t, "")
	card := openCard(t, s, pan1)
	if r := deposit(t, s, txid("dep", 1), pan1, 10000); r.Code != Approved || r.Seq != 1 || r.Ledger != 10000 {
		t.Fatalf("deposit = %+v", r)
	}

	t.Run("a purchase debits the card and credits settlement-payable", func(t *testing.T) {
		got := purchase(t, s, txid("buy", 1), pan1, 2550)
		want := Result{Code: Approved, Seq: 2, Currency: cny, Ledger: 7450, Available: 7450, AuthCode: "000002",
			Window: 1, SettleDate: testDay}
		if got != want {
			t.Errorf("Result = %+v, want %+v", got, want)
		}
		if a := account(t, s, card); a.DebitsPosted != 2550 || a.CreditsPosted != 10000 || a.Balance() != 7450 {
			t.Errorf("card = %+v", a)
		}
		if a := account(t, s, SettlementPayableID); a.DebitsPosted != 0 || a.CreditsPosted != 2550 {
			t.Errorf("settlement-payable = %+v", a)
		}
		if a := account(t, s, FundingID); a.DebitsPosted != 10000 || a.CreditsPosted != 0 {
			t.Errorf("funding = %+v", a)
		}
	})

	t.Run("the journal holds both bookings with their annotations", func(t *testing.T) {
		j := journal(t, s)
		if len(j) != 2 {
			t.Fatalf("journal has %d entries, want 2", len(j))
		}
		dep, buy := j[0], j[1]
		if dep.Seq != 1 || dep.Kind != KindDeposit || dep.Debit != FundingID || dep.Credit != card || dep.Amount != 10000 {
			t.Errorf("deposit entry = %+v", dep)
		}
		if buy.Seq != 2 || buy.Kind != KindPurchase || buy.Debit != card || buy.Credit != SettlementPayableID ||
			buy.Amount != 2550 || buy.Currency != cny || buy.TxID != txid("buy", 1) ||
			buy.Terminal != "T0000001" || buy.Merchant != "M00000000000001" {
			t.Errorf("purchase entry = %+v", buy)
		}
		if buy.Time <= dep.Time {
			t.Errorf("purchase time %d not after deposit time %d", buy.Time, dep.Time)
		}
		if page, _ := s.Journal(2, 5); len(page) != 1 || page[0].Seq != 2 {
			t.Errorf("Journal(2, 5) = %+v", page)
		}
	})

	t.Run("a balance inquiry reports the balance and books nothing", func(t *testing.T) {
		r := do(t, s, Request{Op: OpBalance, PAN: pan1})
		if r != (Result{Code: Approved, Currency: cny, Ledger: 7450, Available: 7450}) {
			t.Errorf("balance = %+v", r)
		}
		if st := s.Stats(); st.LastSeq != 2 {
			t.Errorf("LastSeq = %d after inquiry", st.LastSeq)
		}
	})

	t.Run("the shard verifies", func(t *testing.T) {
		rep := mustVerify(t, s)
		if rep.Transfers != 2 || rep.LastSeq != 2 || rep.Accounts != 4 || rep.Cards != 1 {
			t.Errorf("report = %+v", rep)
		}
		if len(rep.Totals) != 1 || rep.Totals[0] != (CurrencyTotal{Currency: cny, Debits: 12550, Credits: 12550}) {
			t.Errorf("totals = %+v", rep.Totals)
		}
	})
}

func TestDeclines(t *testing.T) {
	s := openShard(t, "")
	card := openCard(t, s, pan1)
	blocked := openCard(t, s, pan2)
	closed := openCard(t, s, pan3)
	deposit(t, s, txid("dep", 1), pan1, 1000)
	deposit(t, s, txid("dep", 2), pan2, 1000)
	ctx := context.Background()
	if err := s.SetStatus(ctx, blocked, Blocked); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, closed, Closed); err != nil {
		t.Fatal(err)
	}
	before := journal(t, s)
	cardBefore := account(t, s, card)

	n := 0
	for _, tc := range []struct {
		name string
		req  Request
		want Result
	}{
		{"insufficient funds is 51 and shows the balance",
			Request{Op: OpPurchase, PAN: pan1, Amount: 1001, Currency: cny},
			Result{Code: InsufficientFunds, Currency: cny, Ledger: 1000, Available: 1000}},
		{"an unknown PAN is 14",
			Request{Op: OpPurchase, PAN: "6299900000009999", Amount: 1, Currency: cny},
			Result{Code: UnknownCard}},
		{"a PAN that is not a card number is 14",
			Request{Op: OpPurchase, PAN: "hello", Amount: 1, Currency: cny},
			Result{Code: UnknownCard}},
		{"a zero amount is 13",
			Request{Op: OpPurchase, PAN: pan1, Amount: 0, Currency: cny},
			Result{Code: InvalidAmount, Currency: cny, Ledger: 1000, Available: 1000}},
		{"a negative amount is 13",
			Request{Op: OpPurchase, PAN: pan1, Amount: -5, Currency: cny},
			Result{Code: InvalidAmount, Currency: cny, Ledger: 1000, Available: 1000}},
		{"a negative deposit is 13",
			Request{Op: OpDeposit, PAN: pan1, Amount: -5, Currency: cny},
			Result{Code: InvalidAmount, Currency: cny, Ledger: 1000, Available: 1000}},
		{"another currency is 13",
			Request{Op: OpPurchase, PAN: pan1, Amount: 10, Currency: 840},
			Result{Code: InvalidAmount, Currency: cny, Ledger: 1000, Available: 1000}},
		{"a blocked card is 62",
			Request{Op: OpPurchase, PAN: pan2, Amount: 10, Currency: cny},
			Result{Code: RestrictedCard, Currency: cny, Ledger: 1000, Available: 1000}},
		{"a closed card is 14",
			Request{Op: OpPurchase, PAN: pan3, Amount: 10, Currency: cny},
			Result{Code: UnknownCard}},
		{"a deposit that would overflow is 13",
			Request{Op: OpDeposit, PAN: pan1, Amount: math.MaxInt64, Currency: cny},
			Result{Code: InvalidAmount, Currency: cny, Ledger: 1000, Available: 1000}},
		{"a zero TxID is 12",
			Request{Op: OpPurchase, PAN: pan1, Amount: 10, Currency: cny, ID: TxID{}},
			Result{Code: InvalidTransaction}},
		{"an over-long terminal id is 12",
			Request{Op: OpPurchase, PAN: pan1, Amount: 10, Currency: cny, Terminal: strings.Repeat("T", 16)},
			Result{Code: InvalidTransaction}},
		{"an unknown op is 12",
			Request{Op: 99, PAN: pan1, Amount: 10, Currency: cny},
			Result{Code: InvalidTransaction}},
		{"a balance inquiry on a blocked card is 62",
			Request{Op: OpBalance, PAN: pan2},
			Result{Code: RestrictedCard, Currency: cny, Ledger: 1000, Available: 1000}},
		{"a balance inquiry on an unknown card is 14",
			Request{Op: OpBalance, PAN: "6299900000009999"},
			Result{Code: UnknownCard}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n++
			if tc.req.ID == (TxID{}) && tc.name != "a zero TxID is 12" {
				tc.req.ID = txid("decline", n)
			}
			if got := do(t, s, tc.req); got != tc.want {
				t.Errorf("Result = %+v, want %+v", got, tc.want)
			}
		})
	}

	t.Run("declines book nothing", func(t *testing.T) {
		if after := journal(t, s); len(after) != len(before) {
			t.Errorf("journal grew from %d to %d", len(before), len(after))
		}
		if a := account(t, s, card); a != cardBefore {
			t.Errorf("card changed: %+v → %+v", cardBefore, a)
		}
		mustVerify(t, s)
	})

	t.Run("status changes are checked", func(t *testing.T) {
		if err := s.SetStatus(ctx, card, Closed); err == nil {
			t.Error("closing a card with a balance succeeded")
		}
		if err := s.SetStatus(ctx, FundingID, Blocked); err == nil {
			t.Error("blocking the funding account succeeded")
		}
		if err := s.SetStatus(ctx, 5555, Blocked); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetStatus(5555) err = %v, want ErrNotFound", err)
		}
		if err := s.SetStatus(ctx, blocked, Active); err != nil {
			t.Fatal(err)
		}
		if r := purchase(t, s, txid("unblocked", 1), pan2, 10); r.Code != Approved {
			t.Errorf("purchase after unblocking = %+v", r)
		}
	})
}

func TestRetransmission(t *testing.T) {
	dir := t.TempDir()
	s := openShard(t, dir)
	card := openCard(t, s, pan1)
	deposit(t, s, txid("dep", 1), pan1, 5000)

	t.Run("the same ID twice books once and replays the first result", func(t *testing.T) {
		first := purchase(t, s, txid("buy", 1), pan1, 1200)
		second := purchase(t, s, txid("buy", 1), pan1, 1200)
		if first.Code != Approved || first.Replayed {
			t.Fatalf("first = %+v", first)
		}
		want := first
		want.Replayed = true
		if second != want {
			t.Errorf("second = %+v, want %+v", second, want)
		}
		if j := journal(t, s); len(j) != 2 {
			t.Errorf("journal has %d entries, want 2", len(j))
		}
		if a := account(t, s, card); a.Balance() != 3800 {
			t.Errorf("balance = %d, want 3800", a.Balance())
		}
	})

	t.Run("a declined first attempt is replayed as declined after funding", func(t *testing.T) {
		first := purchase(t, s, txid("big", 1), pan1, 9000)
		if first.Code != InsufficientFunds {
			t.Fatalf("first = %+v", first)
		}
		deposit(t, s, txid("dep", 2), pan1, 10000)
		again := purchase(t, s, txid("big", 1), pan1, 9000)
		want := first
		want.Replayed = true
		if again != want {
			t.Errorf("retry = %+v, want %+v", again, want)
		}
		if fresh := purchase(t, s, txid("big", 2), pan1, 9000); fresh.Code != Approved {
			t.Errorf("same purchase under a new ID = %+v", fresh)
		}
	})

	t.Run("the same ID with another amount is 94 and leaves the record", func(t *testing.T) {
		r := purchase(t, s, txid("buy", 1), pan1, 1300)
		if r != (Result{Code: DuplicateDifferent}) {
			t.Errorf("Result = %+v, want 94", r)
		}
		again := purchase(t, s, txid("buy", 1), pan1, 1200)
		if again.Code != Approved || !again.Replayed || again.Seq != 2 {
			t.Errorf("original after 94 = %+v", again)
		}
		dep := do(t, s, Request{Op: OpDeposit, ID: txid("buy", 1), PAN: pan1, Amount: 1200, Currency: cny})
		if dep.Code != DuplicateDifferent {
			t.Errorf("a deposit under a purchase's ID = %+v, want 94", dep)
		}
	})

	t.Run("two requests with one ID in one batch act as two batches", func(t *testing.T) {
		g := newGate()
		s2 := openShard(t, "", func(o *Options) { o.commitFault = g.hook })
		openCard(t, s2, pan1)
		deposit(t, s2, txid("dep", 1), pan1, 100)
		g.armed.Store(true)
		go depositAsync(t, s2, txid("dep", 2), pan1, 100) // holds the writer in its commit
		<-g.entered
		results := make([]Result, 3)
		var wg sync.WaitGroup
		for i, amount := range []int64{150, 150, 151} {
			wg.Go(func() {
				res, err := s2.Do(context.Background(), &Request{Op: OpPurchase, ID: txid("same", 1), PAN: pan1, Amount: amount, Currency: cny})
				if err != nil {
					t.Error(err)
				}
				results[i] = res
			})
			eventually(t, "the request is queued", func() bool { return len(s2.queue) == i+1 })
		}
		close(g.release)
		wg.Wait()
		if results[0].Code != Approved || results[0].Replayed {
			t.Errorf("first = %+v", results[0])
		}
		if want := (Result{Code: Approved, Replayed: true, Seq: results[0].Seq, Currency: cny,
			Ledger: 50, Available: 50, AuthCode: results[0].AuthCode, Window: 1, SettleDate: testDay}); results[1] != want {
			t.Errorf("second = %+v, want %+v", results[1], want)
		}
		if results[2].Code != DuplicateDifferent {
			t.Errorf("third = %+v, want 94", results[2])
		}
		if st := s2.Stats(); st.LastSeq != 3 {
			t.Errorf("LastSeq = %d, want 3", st.LastSeq)
		}
		mustVerify(t, s2)
	})

	t.Run("replay survives a restart", func(t *testing.T) {
		before := purchase(t, s, txid("buy", 1), pan1, 1200)
		declined := purchase(t, s, txid("big", 1), pan1, 9000)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openShard(t, dir)
		if after := purchase(t, s, txid("buy", 1), pan1, 1200); after != before {
			t.Errorf("after restart = %+v, want %+v", after, before)
		}
		if after := purchase(t, s, txid("big", 1), pan1, 9000); after != declined {
			t.Errorf("declined after restart = %+v, want %+v", after, declined)
		}
		if r := purchase(t, s, txid("buy", 1), pan1, 1); r.Code != DuplicateDifferent {
			t.Errorf("different content after restart = %+v", r)
		}
		mustVerify(t, s)
	})
}

func TestDurability(t *testing.T) {
	dir := t.TempDir()
	s := openShard(t, dir)
	card := openCard(t, s, pan1)
	openCard(t, s, pan2)
	deposit(t, s, txid("dep", 1), pan1, 10000)
	for i := range 5 {
		purchase(t, s, txid("buy", i), pan1, int64(100*(i+1)))
	}
	wantCard := account(t, s, card)
	wantJournal := journal(t, s)
	wantAccounts, _ := s.Accounts()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("a closed shard refuses calls and closes again without error", func(t *testing.T) {
		if _, err := s.Do(context.Background(), &Request{Op: OpBalance, PAN: pan1}); !errors.Is(err, ErrClosed) {
			t.Errorf("Do after Close: err = %v", err)
		}
		if _, err := s.OpenAccount(context.Background(), AccountSpec{Type: InstitutionSettlement, Currency: cny}); !errors.Is(err, ErrClosed) {
			t.Errorf("OpenAccount after Close: err = %v", err)
		}
		if _, err := s.Account(card); !errors.Is(err, ErrClosed) {
			t.Errorf("Account after Close: err = %v", err)
		}
		if _, err := s.Verify(); !errors.Is(err, ErrClosed) {
			t.Errorf("Verify after Close: err = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})

	s = openShard(t, dir)
	t.Run("balances, journal and accounts are intact after reopening", func(t *testing.T) {
		if a := account(t, s, card); a != wantCard {
			t.Errorf("card = %+v, want %+v", a, wantCard)
		}
		if j := journal(t, s); fmt.Sprint(j) != fmt.Sprint(wantJournal) {
			t.Errorf("journal differs after reopen:\n%+v\n%+v", j, wantJournal)
		}
		if a, _ := s.Accounts(); fmt.Sprint(a) != fmt.Sprint(wantAccounts) {
			t.Errorf("accounts differ after reopen")
		}
		if st := s.Stats(); st.LastSeq != 6 {
			t.Errorf("LastSeq = %d, want 6", st.LastSeq)
		}
	})

	t.Run("new bookings continue the sequence and account ids", func(t *testing.T) {
		if r := purchase(t, s, txid("buy", 100), pan1, 1); r.Seq != 7 || r.AuthCode != "000007" {
			t.Errorf("next purchase = %+v, want seq 7", r)
		}
		if id := openCard(t, s, pan3); id != 1002 {
			t.Errorf("next account id = %d, want 1002", id)
		}
		if r := purchase(t, s, txid("buy", 101), pan2, 1); r.Code != InsufficientFunds {
			t.Errorf("unfunded second card = %+v", r)
		}
		rep := mustVerify(t, s)
		if rep.LastSeq != 7 || rep.Transfers != 7 {
			t.Errorf("report = %+v", rep)
		}
	})
}

func TestClose(t *testing.T) {
	t.Run("close commits and answers everything already queued", func(t *testing.T) {
		g := newGate()
		s := openShard(t, "", func(o *Options) { o.commitFault = g.hook })
		openCard(t, s, pan1)
		g.armed.Store(true)
		go depositAsync(t, s, txid("dep", 0), pan1, 1000) // holds the writer in its commit
		<-g.entered
		const n = 20
		errs := make(chan error, n)
		for i := range n {
			go func() {
				r, err := s.Do(context.Background(), &Request{Op: OpPurchase, ID: txid("q", i), PAN: pan1, Amount: 10, Currency: cny})
				if err == nil && r.Code != Approved {
					err = fmt.Errorf("purchase %d: %+v", i, r)
				}
				errs <- err
			}()
		}
		eventually(t, "all purchases are queued", func() bool { return len(s.queue) == n })
		closed := make(chan error)
		go func() { closed <- s.Close() }()
		eventually(t, "Close has stopped intake", func() bool {
			s.mu.RLock()
			defer s.mu.RUnlock()
			return s.closed
		})
		if _, err := s.Do(context.Background(), &Request{Op: OpBalance, PAN: pan1}); !errors.Is(err, ErrClosed) {
			t.Errorf("Do while closing: err = %v, want ErrClosed", err)
		}
		close(g.release)
		for range n {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.LastSeq != n+1 {
			t.Errorf("LastSeq = %d, want %d", st.LastSeq, n+1)
		}
	})
}

func TestCommitFailure(t *testing.T) {
	var failing atomic.Bool
	boom := errors.New("disk on fire")
	s := openShard(t, "", func(o *Options) {
		o.commitFault = func() error {
			if failing.Load() {
				return boom
			}
			return nil
		}
	})
	card := openCard(t, s, pan1)
	deposit(t, s, txid("dep", 1), pan1, 1000)
	before := account(t, s, card)

	failing.Store(true)
	t.Run("a failed commit answers with ErrCommit and changes nothing", func(t *testing.T) {
		_, err := s.Do(context.Background(), &Request{Op: OpPurchase, ID: txid("buy", 1), PAN: pan1, Amount: 300, Currency: cny})
		if !errors.Is(err, ErrCommit) || !errors.Is(err, boom) {
			t.Fatalf("err = %v, want ErrCommit wrapping the cause", err)
		}
		if _, err := s.OpenAccount(context.Background(), AccountSpec{Type: Card, Currency: cny, PAN: pan2}); !errors.Is(err, ErrCommit) {
			t.Errorf("OpenAccount err = %v", err)
		}
		if a := account(t, s, card); a != before {
			t.Errorf("card changed: %+v", a)
		}
		if r := do(t, s, Request{Op: OpBalance, PAN: pan1}); r.Ledger != 1000 {
			t.Errorf("balance inquiry (no commit needed) = %+v", r)
		}
	})

	failing.Store(false)
	t.Run("a retry with the same ID then succeeds", func(t *testing.T) {
		r := purchase(t, s, txid("buy", 1), pan1, 300)
		if r.Code != Approved || r.Replayed || r.Seq != 2 || r.Ledger != 700 {
			t.Errorf("retry = %+v", r)
		}
		if id := openCard(t, s, pan2); id != 1001 {
			t.Errorf("account id after failed open = %d, want 1001 (no id burnt)", id)
		}
		mustVerify(t, s)
	})
}

func TestBatchTooBig(t *testing.T) {
	// 16384 purchases write about 4 MB, more than badger takes in one transaction with 16 MiB
	// memtables; the writer must split the batch and still book every request once, in order.
	const n = maxMaxBatch
	g := newGate()
	s := openShard(t, "", func(o *Options) { o.MaxBatch = n; o.commitFault = g.hook })
	openCard(t, s, pan1)
	deposit(t, s, txid("dep", 0), pan1, 1_000_000)
	g.armed.Store(true)
	go depositAsync(t, s, txid("dep", 1), pan1, 1) // holds the writer in its commit
	<-g.entered

	envs := make([]*envelope, n)
	for i := range envs {
		envs[i] = &envelope{ctx: context.Background(), done: make(chan struct{}, 1), cmd: command{
			op:  OpPurchase,
			req: Request{Op: OpPurchase, ID: txid("big", i), PAN: pan1, Amount: 1, Currency: cny},
		}}
		s.queue <- envs[i]
	}
	before := s.Stats()
	close(g.release)
	for i, e := range envs {
		<-e.done
		if e.out.err != nil || e.out.res.Code != Approved || e.out.res.Seq != uint64(i+3) {
			t.Fatalf("purchase %d: %+v", i, e.out)
		}
	}
	after := s.Stats()
	if batches := after.Batches - before.Batches; batches != 1 {
		t.Errorf("%d batches after the held one, want 1", batches)
	}
	if commits := after.Commits - before.Commits; commits < 3 {
		t.Errorf("%d commits for the held deposit and one big batch, want ≥ 3 (a split)", commits)
	}
	rep := mustVerify(t, s)
	if rep.Transfers != n+2 {
		t.Errorf("%d transfers, want %d", rep.Transfers, n+2)
	}
}

func TestConcurrentPurchases(t *testing.T) {
	s := openShard(t, "")
	pans := []string{pan1, pan2, pan3, "6299900000000042"}
	funded := map[string]int64{}
	for i, pan := range pans {
		openCard(t, s, pan)
		funded[pan] = int64(50000 + 25000*i) // about half the purchases fit
		deposit(t, s, txid("dep", i), pan, funded[pan])
	}

	const workers, each = 64, 50
	type booking struct {
		id  TxID
		pan string
		res Result
	}
	results := make([][]booking, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range each {
				pan := pans[rng.IntN(len(pans))]
				id := txid(fmt.Sprintf("w%d", w), i)
				res, err := s.Do(context.Background(), &Request{Op: OpPurchase, ID: id, PAN: pan,
					Amount: 1 + rng.Int64N(500), Currency: cny})
				if err != nil {
					t.Error(err)
					return
				}
				results[w] = append(results[w], booking{id, pan, res})
			}
		})
	}
	wg.Wait()

	approved := map[TxID]Result{}
	var declined int
	for _, rs := range results {
		for _, b := range rs {
			switch b.res.Code {
			case Approved:
				approved[b.id] = b.res
			case InsufficientFunds:
				declined++
			default:
				t.Errorf("unexpected result %+v", b.res)
			}
		}
	}

	j := journal(t, s)
	t.Run("every approved purchase is in the journal exactly once", func(t *testing.T) {
		seen := map[TxID]bool{}
		purchases := 0
		for _, e := range j {
			if e.Kind != KindPurchase {
				continue
			}
			purchases++
			res, ok := approved[e.TxID]
			if !ok || seen[e.TxID] || res.Seq != e.Seq {
				t.Errorf("journal entry %+v: approved %t, seen %t", e, ok, seen[e.TxID])
			}
			seen[e.TxID] = true
		}
		if purchases != len(approved) {
			t.Errorf("%d purchases in the journal, %d approved", purchases, len(approved))
		}
		t.Logf("%d approved, %d declined for funds", len(approved), declined)
	})

	t.Run("balances equal deposits minus approved purchases and none is overdrawn", func(t *testing.T) {
		bySeq := map[uint64]Transfer{}
		for _, e := range j {
			bySeq[e.Seq] = e
		}
		spent := map[string]int64{}
		for _, rs := range results {
			for _, b := range rs {
				if b.res.Code == Approved {
					spent[b.pan] += bySeq[b.res.Seq].Amount
				}
			}
		}
		for _, pan := range pans {
			a, err := s.AccountByPAN(pan)
			if err != nil {
				t.Fatal(err)
			}
			if a.Balance() != funded[pan]-spent[pan] || a.Balance() < 0 {
				t.Errorf("card %s balance %d, want %d − %d", maskPAN(pan), a.Balance(), funded[pan], spent[pan])
			}
		}
	})

	t.Run("the shard verifies and batching happened", func(t *testing.T) {
		mustVerify(t, s)
		st := s.Stats()
		if st.Commits >= st.Requests {
			t.Errorf("%d commits for %d requests: no batching", st.Commits, st.Requests)
		}
		t.Logf("stats %+v", st)
	})
}

func TestSameIDConcurrently(t *testing.T) {
	s := openShard(t, "")
	openCard(t, s, pan1)
	deposit(t, s, txid("dep", 0), pan1, 100_000)
	for round := range 20 {
		id := txid("twin", round)
		var r [2]Result
		var wg sync.WaitGroup
		for i := range r {
			wg.Go(func() {
				var err error
				r[i], err = s.Do(context.Background(), &Request{Op: OpPurchase, ID: id, PAN: pan1, Amount: 7, Currency: cny})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if r[0].Replayed == r[1].Replayed || r[0].Seq != r[1].Seq || r[0].Code != Approved {
			t.Fatalf("round %d: %+v / %+v, want one booking and one replay", round, r[0], r[1])
		}
	}
	if st := s.Stats(); st.LastSeq != 21 {
		t.Errorf("LastSeq = %d, want 21 (one deposit, 20 purchases)", st.LastSeq)
	}
	mustVerify(t, s)
}

func TestContext(t *testing.T) {
	t.Run("a cancelled context is an error and books nothing", func(t *testing.T) {
		s := openShard(t, "")
		openCard(t, s, pan1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := s.Do(ctx, &Request{Op: OpDeposit, ID: txid("dep", 1), PAN: pan1, Amount: 5, Currency: cny})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if r := deposit(t, s, txid("dep", 1), pan1, 5); r.Code != Approved || r.Replayed {
			t.Errorf("retry = %+v", r)
		}
	})
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	withReg := func(region string) func(*Options) {
		return func(o *Options) { o.Registerer = reg; o.Region = region }
	}
	dir := t.TempDir()
	s := openShard(t, dir, withReg("beijing"))
	openShard(t, "", withReg("shanghai")) // two regions share one registry
	openCard(t, s, pan1)
	deposit(t, s, txid("dep", 1), pan1, 100)
	purchase(t, s, txid("buy", 1), pan1, 40)
	purchase(t, s, txid("buy", 2), pan1, 400)

	t.Run("requests are counted by op and code, and the seq is exported", func(t *testing.T) {
		checkMetric(t, reg, "junction_ledger_requests_total", map[string]string{"region": "beijing", "op": "purchase", "code": "00"}, 1)
		checkMetric(t, reg, "junction_ledger_requests_total", map[string]string{"region": "beijing", "op": "purchase", "code": "51"}, 1)
		checkMetric(t, reg, "junction_ledger_requests_total", map[string]string{"region": "shanghai", "op": "purchase", "code": "00"}, 0)
		checkMetric(t, reg, "junction_ledger_journal_seq", map[string]string{"region": "beijing"}, 2)
		// open, deposit, two purchases: four batches, each committed (the decline records its outcome)
		checkMetric(t, reg, "junction_ledger_batch_size", map[string]string{"region": "beijing"}, 4)
		checkMetric(t, reg, "junction_ledger_commit_duration_seconds", map[string]string{"region": "beijing"}, 4)
	})

	t.Run("a region can be reopened on the same registry after Close", func(t *testing.T) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := openShard(t, dir, withReg("beijing"))
		checkMetric(t, reg, "junction_ledger_journal_seq", map[string]string{"region": "beijing"}, 2)
		if _, err := Open(Options{Dir: t.TempDir(), Region: "beijing", Registerer: reg}); err == nil {
			t.Error("a second shard for the same region registered its metrics")
		}
		_ = s2
	})
}

// checkMetric finds the series of name with the given labels and compares its value (the sample
// count for histograms).
func checkMetric(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			if v := metricValue(m); v != want {
				t.Errorf("%s%v = %v, want %v", name, labels, v, want)
			}
			return
		}
	}
	t.Errorf("%s%v not found", name, labels)
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return math.NaN()
}

func TestNoPANInLogs(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	s := openShard(t, "", func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.commitFault = func() error { return errors.New("fault for the log") }
	})
	s.OpenAccount(context.Background(), AccountSpec{Type: Card, Currency: cny, PAN: pan1})
	s.OpenAccount(context.Background(), AccountSpec{Type: Card, Currency: cny, PAN: "62999000000000"})
	s.Do(context.Background(), &Request{Op: OpPurchase, ID: txid("x", 1), PAN: pan1, Amount: 1, Currency: cny})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(buf.String(), pan1) || strings.Contains(buf.String(), "62999000000000") {
		t.Errorf("a full PAN reached the log:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "commit failed") {
		t.Errorf("the commit failure was not logged:\n%s", buf.String())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestVerifyFindsBreaks(t *testing.T) {
	s := openShard(t, "")
	card := openCard(t, s, pan1)
	deposit(t, s, txid("dep", 1), pan1, 1000)
	purchase(t, s, txid("buy", 1), pan1, 100)
	purchase(t, s, txid("buy", 2), pan1, 100)
	mustVerify(t, s)

	// Tamper with the store behind the shard's back: inflate the card's credits (unbalancing the
	// books and disagreeing with the journal) and remove a journal entry from the middle.
	a := account(t, s, card)
	a.CreditsPosted += 5
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(appendAccountKey(nil, card), appendAccount(nil, &a)); err != nil {
			return err
		}
		return txn.Delete(appendJournalKey(nil, 2))
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify()
	if err == nil {
		t.Fatal("Verify passed a tampered store")
	}
	want := []string{
		"currency 156: Σ debits 1200 ≠ Σ credits 1205",
		"journal gap: 3 follows 1",
		"account 1000: stored debits/credits 200/1005, journal gives 100/1000",
	}
	for _, w := range want {
		if !slices.Contains(rep.Breaks, w) {
			t.Errorf("breaks %q lack %q", rep.Breaks, w)
		}
	}
	t.Logf("Verify: %v", err)
}

func TestOpenRefusesCorruptMeta(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(testOptions(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(keySeq, []byte{1, 2, 3}) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(testOptions(t, dir)); !errors.Is(err, errCorrupt) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a store with a corrupt m/seq: err = %v, want errCorrupt", err)
	}
}
