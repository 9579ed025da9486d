package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// This file is the shard's state machine: deterministic and free of I/O, clocks and goroutines.
// The writer hands it the committed state, the idempotency records it prefetched for the batch, the
// batch's clock value and the commands in arrival order; it returns an outcome per command and an
// overlay of changes. Committed state changes only in fold, after badger has synced the overlay.

// state is the committed state the writer keeps in memory: the counters, and a cache of account
// records and PAN bindings read from badger. Only the writer goroutine touches it. Cached *Account
// values are never mutated in place: a batch copies before changing, so a failed commit leaves
// them as they were.
type state struct {
	seq      uint64 // last committed journal sequence
	nextAcct uint64 // next ordinary account id
	currency uint16 // the currency of the well-known accounts, fixed when the shard was created

	accounts map[uint64]*Account
	cards    map[string]uint64
}

func newState() *state {
	return &state{accounts: make(map[uint64]*Account), cards: make(map[string]uint64)}
}

// command is one unit of work for the writer: a channel request or an admin operation.
type command struct {
	op     Op
	req    Request     // OpPurchase, OpBalance, OpDeposit
	spec   AccountSpec // opOpenAccount
	acct   uint64      // opSetStatus
	status Status      // opSetStatus
}

// outcome is the answer to a command. err carries admin refusals (ErrPANBound, ErrNotFound, bad
// specs) and, set by the writer rather than by apply, load and commit failures.
type outcome struct {
	res  Result
	acct uint64
	err  error
}

// batch is the apply step of one group commit: the inputs it reads and the overlay it writes.
// The writer keeps one and resets it per commit so that its maps and slices are reused.
type batch struct {
	st    *state
	known map[TxID]txRecord // committed idempotency records for this batch's ids
	now   int64

	seq, nextAcct uint64
	accounts      map[uint64]*Account // copies of touched accounts, new values
	touched       []uint64            // first-touch order, so writes are deterministic
	cards         map[string]uint64
	newCards      []string
	txs           map[TxID]txRecord
	newTxs        []TxID
	journal       []Transfer
}

func newBatch() *batch {
	return &batch{
		accounts: make(map[uint64]*Account),
		cards:    make(map[string]uint64),
		txs:      make(map[TxID]txRecord),
	}
}

func (b *batch) reset(st *state, known map[TxID]txRecord, now int64) {
	b.st, b.known, b.now = st, known, now
	b.seq, b.nextAcct = st.seq, st.nextAcct
	clear(b.accounts)
	clear(b.cards)
	clear(b.txs)
	b.touched = b.touched[:0]
	b.newCards = b.newCards[:0]
	b.newTxs = b.newTxs[:0]
	clear(b.journal) // drop string references before reuse
	b.journal = b.journal[:0]
}

// empty reports whether the batch changed nothing, so there is nothing to commit.
func (b *batch) empty() bool {
	return len(b.touched) == 0 && len(b.newTxs) == 0 && len(b.journal) == 0 &&
		b.nextAcct == b.st.nextAcct
}

// fold makes the overlay the committed state. Call it only after the commit returned nil.
func (b *batch) fold() {
	for _, id := range b.touched {
		b.st.accounts[id] = b.accounts[id]
	}
	for _, pan := range b.newCards {
		b.st.cards[pan] = b.cards[pan]
	}
	for _, id := range b.newTxs {
		b.known[id] = b.txs[id] // a later part of a split batch must see these as committed
	}
	b.st.seq, b.st.nextAcct = b.seq, b.nextAcct
}

// account returns the current view of an account (overlay first), or nil. Do not modify it.
func (b *batch) account(id uint64) *Account {
	if a, ok := b.accounts[id]; ok {
		return a
	}
	return b.st.accounts[id]
}

// mutable returns the overlay copy of an account, copying it on first touch.
func (b *batch) mutable(id uint64) *Account {
	if a, ok := b.accounts[id]; ok {
		return a
	}
	c := b.st.accounts[id]
	if c == nil {
		panic(fmt.Sprintf("ledger: account %d changed but never loaded", id))
	}
	a := new(Account)
	*a = *c
	b.accounts[id] = a
	b.touched = append(b.touched, id)
	return a
}

func (b *batch) cardID(pan string) (uint64, bool) {
	if id, ok := b.cards[pan]; ok {
		return id, true
	}
	id, ok := b.st.cards[pan]
	return id, ok
}

func (b *batch) txRecord(id *TxID) (txRecord, bool) {
	if r, ok := b.txs[*id]; ok {
		return r, true
	}
	r, ok := b.known[*id]
	return r, ok
}

// apply runs one command against the overlay.
func (b *batch) apply(c *command) outcome {
	switch c.op {
	case OpPurchase, OpDeposit:
		return outcome{res: b.transfer(&c.req)}
	case OpBalance:
		return outcome{res: b.balance(&c.req)}
	case opOpenAccount:
		id, err := b.openAccount(&c.spec)
		return outcome{acct: id, err: err}
	case opSetStatus:
		return outcome{err: b.setStatus(c.acct, c.status)}
	}
	return outcome{res: Result{Code: InvalidTransaction}}
}

// malformed answers requests whose content alone makes them unusable. They are not recorded: the
// same bytes always get the same answer, so a retransmission needs no record to stay consistent.
func malformed(r *Request) (Code, bool) {
	switch {
	case r.Op != OpBalance && r.ID.IsZero():
		return InvalidTransaction, true // a forgotten idempotency key, never a real one
	case len(r.Terminal) > maxAnnotation, len(r.Merchant) > maxAnnotation:
		return InvalidTransaction, true
	case len(r.PAN) > maxPAN:
		return UnknownCard, true
	}
	return "", false
}

// digest identifies the content of a mutating request for idempotency: op, PAN, amount and
// currency. Annotations (terminal, merchant) are not part of it. PAN length ≤ maxPAN (malformed
// checks it first), so the buffer stays on the stack.
func digest(r *Request) [32]byte {
	var buf [1 + 1 + maxPAN + 8 + 2]byte
	p := append(buf[:0], byte(r.Op), byte(len(r.PAN)))
	p = append(p, r.PAN...)
	p = binary.BigEndian.AppendUint64(p, uint64(r.Amount))
	p = binary.BigEndian.AppendUint16(p, r.Currency)
	return sha256.Sum256(p)
}

// transfer handles the idempotent booking operations: purchase and deposit.
func (b *batch) transfer(r *Request) Result {
	if code, bad := malformed(r); bad {
		return Result{Code: code}
	}
	d := digest(r)
	if rec, ok := b.txRecord(&r.ID); ok {
		if rec.digest != d {
			return Result{Code: DuplicateDifferent} // the record stays as it was
		}
		res := rec.result()
		res.Replayed = true
		return res
	}
	res := b.book(r)
	rec := txRecord{digest: d, code: res.Code, seq: res.Seq, currency: res.Currency,
		ledger: res.Ledger, available: res.Available}
	b.txs[r.ID] = rec
	b.newTxs = append(b.newTxs, r.ID)
	return res
}

// book decides a purchase or deposit and, when approved, posts it.
func (b *batch) book(r *Request) Result {
	cardID, ok := b.cardID(r.PAN)
	if !ok {
		return Result{Code: UnknownCard}
	}
	card := b.account(cardID)
	if card == nil {
		panic(fmt.Sprintf("ledger: card index points to account %d, which was not loaded", cardID))
	}
	if card.Status == Closed {
		return Result{Code: UnknownCard}
	}
	res := Result{Currency: card.Currency, Ledger: card.Balance(), Available: card.Balance()}
	if card.Status == Blocked {
		res.Code = RestrictedCard
		return res
	}
	if r.Amount <= 0 || r.Currency != card.Currency {
		res.Code = InvalidAmount
		return res
	}

	var debitID, creditID uint64
	var kind Kind
	switch r.Op {
	case OpPurchase:
		debitID, creditID, kind = cardID, SettlementPayableID, KindPurchase
	case OpDeposit:
		debitID, creditID, kind = FundingID, cardID, KindDeposit
	default:
		panic("ledger: book called for " + r.Op.String())
	}
	debit, credit := b.account(debitID), b.account(creditID)
	if debit.Currency != credit.Currency {
		res.Code = InvalidTransaction // no settlement account in this currency
		return res
	}
	if debit.Flags&DebitsMustNotExceedCredits != 0 && debit.Balance() < r.Amount {
		res.Code = InsufficientFunds
		return res
	}
	if debit.DebitsPosted > math.MaxInt64-r.Amount || credit.CreditsPosted > math.MaxInt64-r.Amount {
		res.Code = InvalidAmount // would overflow a posted total
		return res
	}

	b.seq++
	b.mutable(debitID).DebitsPosted += r.Amount
	b.mutable(creditID).CreditsPosted += r.Amount
	b.journal = append(b.journal, Transfer{
		Seq:      b.seq,
		TxID:     r.ID,
		Kind:     kind,
		Debit:    debitID,
		Credit:   creditID,
		Amount:   r.Amount,
		Currency: r.Currency,
		Time:     b.now,
		Terminal: r.Terminal,
		Merchant: r.Merchant,
	})
	card = b.account(cardID)
	res.Code = Approved
	res.Seq = b.seq
	res.Ledger = card.Balance()
	res.Available = res.Ledger
	res.AuthCode = authCode(b.seq)
	return res
}

// balance answers an inquiry. It books and records nothing.
func (b *batch) balance(r *Request) Result {
	if len(r.PAN) > maxPAN {
		return Result{Code: UnknownCard}
	}
	id, ok := b.cardID(r.PAN)
	if !ok {
		return Result{Code: UnknownCard}
	}
	card := b.account(id)
	if card == nil || card.Status == Closed {
		return Result{Code: UnknownCard}
	}
	res := Result{Code: Approved, Currency: card.Currency, Ledger: card.Balance(), Available: card.Balance()}
	if card.Status == Blocked {
		res.Code = RestrictedCard
	}
	return res
}

func (b *batch) openAccount(s *AccountSpec) (uint64, error) {
	switch {
	case s.Type != Card && s.Type != InstitutionSettlement:
		return 0, fmt.Errorf("ledger: open account: type %s is not supported yet", s.Type)
	case s.Currency != b.st.currency:
		return 0, fmt.Errorf("ledger: open account: currency %d is not booked by this shard (it books %d)",
			s.Currency, b.st.currency)
	case len(s.Name) > maxName:
		return 0, fmt.Errorf("ledger: open account: name is %d bytes, limit %d", len(s.Name), maxName)
	case s.Type == Card && !plausiblePAN(s.PAN):
		return 0, fmt.Errorf("ledger: open account: card PAN %s is not 12–19 digits", maskPAN(s.PAN))
	case s.Type != Card && s.PAN != "":
		return 0, errors.New("ledger: open account: only cards carry a PAN")
	}
	if s.PAN != "" {
		if _, bound := b.cardID(s.PAN); bound {
			return 0, ErrPANBound
		}
	}
	a := &Account{
		ID:       b.nextAcct,
		Type:     s.Type,
		Currency: s.Currency,
		Status:   Active,
		Name:     s.Name,
	}
	// A stored-value card never overdraws; overdraft will be a CreditLine account.
	if s.NoOverdraft || s.Type == Card {
		a.Flags |= DebitsMustNotExceedCredits
	}
	if s.PAN != "" {
		a.MaskedPAN = maskPAN(s.PAN)
		b.cards[s.PAN] = a.ID
		b.newCards = append(b.newCards, s.PAN)
	}
	b.nextAcct++
	b.accounts[a.ID] = a
	b.touched = append(b.touched, a.ID)
	return a.ID, nil
}

func (b *batch) setStatus(id uint64, st Status) error {
	a := b.account(id)
	switch {
	case a == nil:
		return ErrNotFound
	case !st.valid():
		return fmt.Errorf("ledger: set status: invalid status %d", st)
	case id < firstAccountID:
		return fmt.Errorf("ledger: set status: account %d is a well-known account", id)
	case a.Status == Closed:
		return fmt.Errorf("ledger: set status: account %d is closed", id)
	case st == Closed && a.Balance() != 0:
		return fmt.Errorf("ledger: set status: account %d has balance %d; only a zero balance closes", id, a.Balance())
	}
	if a.Status != st {
		b.mutable(id).Status = st
	}
	return nil
}

// check verifies the invariants the batch must keep, over the accounts it touched: per currency,
// the debits it added equal the credits it added, and no no-overdraft account is overdrawn. It
// costs a few operations per touched account and runs before every commit; a failure means a bug
// in apply, and the batch is not committed.
func (b *batch) check() error {
	type delta struct {
		currency        uint16
		debits, credits int64
	}
	var sums [4]delta
	deltas := sums[:0]
	for _, id := range b.touched {
		a := b.accounts[id]
		var before Account
		if old := b.st.accounts[id]; old != nil {
			before = *old
		}
		if a.Flags&DebitsMustNotExceedCredits != 0 && a.DebitsPosted > a.CreditsPosted {
			return fmt.Errorf("ledger: invariant: account %d overdrawn: debits %d > credits %d",
				id, a.DebitsPosted, a.CreditsPosted)
		}
		if a.DebitsPosted < before.DebitsPosted || a.CreditsPosted < before.CreditsPosted {
			return fmt.Errorf("ledger: invariant: account %d posted totals went down", id)
		}
		i := 0
		for i < len(deltas) && deltas[i].currency != a.Currency {
			i++
		}
		if i == len(deltas) {
			deltas = append(deltas, delta{currency: a.Currency})
		}
		deltas[i].debits += a.DebitsPosted - before.DebitsPosted
		deltas[i].credits += a.CreditsPosted - before.CreditsPosted
	}
	for _, d := range deltas {
		if d.debits != d.credits {
			return fmt.Errorf("ledger: invariant: currency %d: batch debits %d ≠ credits %d",
				d.currency, d.debits, d.credits)
		}
	}
	if want := b.st.seq + uint64(len(b.journal)); b.seq != want {
		return fmt.Errorf("ledger: invariant: seq %d after %d entries from %d", b.seq, len(b.journal), b.st.seq)
	}
	return nil
}
