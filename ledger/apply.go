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
	req    Request     // OpPurchase, OpBalance, OpDeposit, OpReversal, OpAdvice
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

	postings map[uint64]posted // check's scratch: what the journal posted to each account
}

func newBatch() *batch {
	return &batch{
		accounts: make(map[uint64]*Account),
		cards:    make(map[string]uint64),
		txs:      make(map[TxID]txRecord),
		postings: make(map[uint64]posted),
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
	case OpPurchase, OpDeposit, OpReversal, OpAdvice:
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
	case r.Op != OpReversal:
	case r.Original.IsZero() || r.Original == r.ID:
		return InvalidTransaction, true // no original, or a reversal of itself
	case r.Amount <= 0 || r.Actual < 0 || r.Actual > r.Amount:
		return InvalidAmount, true // the purchase cannot have ended below 0 or above its amount
	}
	return "", false
}

// digest identifies the content of a mutating request for idempotency: op, PAN, amount and
// currency, and for a reversal the original's TxID and the actual amount. Annotations (terminal,
// merchant) are not part of it. An advice digests as the purchase it stands in for: under their
// shared TxID the purchase and its advice are the same content, and either may come first. PAN
// length ≤ maxPAN (malformed checks it first), so the buffer stays on the stack.
func digest(r *Request) [32]byte {
	var buf [1 + 1 + maxPAN + 8 + 2 + len(r.Original) + 8]byte
	op := r.Op
	if op == OpAdvice {
		op = OpPurchase
	}
	p := append(buf[:0], byte(op), byte(len(r.PAN)))
	p = append(p, r.PAN...)
	p = binary.BigEndian.AppendUint64(p, uint64(r.Amount))
	p = binary.BigEndian.AppendUint16(p, r.Currency)
	if r.Op == OpReversal {
		// Only reversals append these, so that the digests of purchases and deposits stay what
		// they were before reversals existed, and stored records still match retransmissions.
		p = append(p, r.Original[:]...)
		p = binary.BigEndian.AppendUint64(p, uint64(r.Actual))
	}
	return sha256.Sum256(p)
}

// transfer handles the idempotent booking operations: purchase, deposit, reversal and advice.
func (b *batch) transfer(r *Request) Result {
	if code, bad := malformed(r); bad {
		return Result{Code: code}
	}
	d := digest(r)
	if r.Op == OpAdvice {
		return b.advise(r, d)
	}
	if rec, ok := b.txRecord(&r.ID); ok {
		if rec.kind == txTombstone && rec.digest == ([32]byte{}) {
			// The original of an earlier reversal, arriving after all: it gets the tombstone's
			// TooLate and claims it, so that its retransmissions replay that answer and other
			// content under the TxID gets 94, as for any first outcome.
			rec.digest = d
			b.putTx(&r.ID, rec)
			return rec.result()
		}
		if rec.digest != d {
			return Result{Code: DuplicateDifferent} // the record stays as it was
		}
		res := rec.result()
		res.Replayed = true
		return res
	}
	rec := txRecord{digest: d, kind: txKindOf(r.Op)}
	var res Result
	if r.Op == OpReversal {
		res = b.reverse(r, &rec)
	} else {
		res = b.book(r, &rec)
	}
	rec.setResult(res)
	b.putTx(&r.ID, rec)
	return res
}

// advise decides a stand-in advice. The switch approved the purchase while the shard was down and
// the cardholder has the goods, so the advice is not a question but a report; r.ID is the
// purchase's own TxID, and what the shard holds under it decides:
//
//   - nothing: book it, forced (see book), and record the outcome as txStandIn, including a 14
//     or 13 that booked nothing, so that repeats (0221) and a late original get it again;
//   - the purchase, approved, or an earlier advice of it: replay that outcome, book nothing;
//   - the purchase, declined (it reached the shard after all, and the switch never heard the
//     answer): book it forced all the same, and let the booking replace the decline as the
//     TxID's outcome; a retransmitted original then replays the approval, which is what the
//     terminal was told;
//   - a tombstone, or a declined purchase that a reversal has since named (txVoided): a reversal
//     got here first and undid the sale. Booking the advice and then that reversal would net to
//     nothing, so the advice is approved, books nothing and changes no record, and either order
//     of advice and reversal ends in the same balances;
//   - other content under the TxID (another PAN, amount or currency, or a deposit's or a
//     reversal's record): 94, as for any request.
func (b *batch) advise(r *Request, d [32]byte) Result {
	rec, found := b.txRecord(&r.ID)
	if found {
		unclaimed := rec.kind == txTombstone && rec.digest == [32]byte{}
		if !unclaimed && rec.digest != d {
			return Result{Code: DuplicateDifferent}
		}
		switch {
		case rec.kind == txTombstone, rec.flags&txVoided != 0:
			res := b.cardView(r.PAN)
			res.Code = Approved
			return res
		case rec.code == Approved, rec.kind == txStandIn:
			res := rec.result()
			res.Replayed = true
			return res
		}
		// A declined purchase (kind txPurchase, or txUnknown from before v2): book over it.
	}
	rec = txRecord{digest: d, kind: txStandIn}
	res := b.book(r, &rec)
	rec.setResult(res)
	b.putTx(&r.ID, rec)
	return res
}

// setResult stores res as the record's outcome.
func (r *txRecord) setResult(res Result) {
	r.code, r.seq, r.currency, r.ledger, r.available = res.Code, res.Seq, res.Currency, res.Ledger, res.Available
}

// cardView is a Result with the currency and balances of the card bound to pan, or an empty one
// when no open card is.
func (b *batch) cardView(pan string) Result {
	id, ok := b.cardID(pan)
	if !ok {
		return Result{}
	}
	card := b.account(id)
	if card == nil || card.Status == Closed {
		return Result{}
	}
	return Result{Currency: card.Currency, Ledger: card.Balance(), Available: card.Balance()}
}

// putTx sets the record of id in the overlay; the writer stores every record put in a batch.
func (b *batch) putTx(id *TxID, rec txRecord) {
	if _, ok := b.txs[*id]; !ok {
		b.newTxs = append(b.newTxs, *id)
	}
	b.txs[*id] = rec
}

// book decides a purchase, deposit or stand-in advice and, when approved, posts it and notes the
// card and amount in rec. An advice is forced: a blocked card and a short balance do not stop it.
func (b *batch) book(r *Request, rec *txRecord) Result {
	forced := r.Op == OpAdvice
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
	if card.Status == Blocked && !forced {
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
	case OpAdvice:
		debitID, creditID, kind = cardID, SettlementPayableID, KindStandIn
	default:
		panic("ledger: book called for " + r.Op.String())
	}
	debit, credit := b.account(debitID), b.account(creditID)
	if debit.Currency != credit.Currency {
		res.Code = InvalidTransaction // no settlement account in this currency
		return res
	}
	if debit.Flags&DebitsMustNotExceedCredits != 0 && debit.Balance() < r.Amount && !forced {
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
	rec.account, rec.amount = cardID, r.Amount
	return b.approved(res, cardID)
}

// approved completes the result of a booking that was just journalled as b.seq.
func (b *batch) approved(res Result, cardID uint64) Result {
	card := b.account(cardID)
	res.Code = Approved
	res.Seq = b.seq
	res.Ledger = card.Balance()
	res.Available = res.Ledger
	res.AuthCode = authCode(b.seq)
	return res
}

// reverse decides a reversal and books what is left to undo of its original: the original's
// amount less Actual, less what earlier reversals of it undid. The original's record keeps that
// running total, so however many reversals name it (an 0400, then an 0420 advice, then its 0421
// repeats), together they never undo more than it booked.
func (b *batch) reverse(r *Request, rec *txRecord) Result {
	var res Result
	cardID, bound := b.cardID(r.PAN)
	closed := false
	if bound {
		card := b.account(cardID)
		if card == nil {
			panic(fmt.Sprintf("ledger: card index points to account %d, which was not loaded", cardID))
		}
		closed = card.Status == Closed
		if !closed {
			res = Result{Currency: card.Currency, Ledger: card.Balance(), Available: card.Balance()}
		}
	}

	orig, found := b.txRecord(&r.Original)
	switch {
	case !found:
		// The original never arrived, or is still on its way: the switch timed out on it and
		// reversed it. The tombstone, in the same commit as this answer, makes sure it never
		// books if it comes after all.
		b.putTx(&r.Original, txRecord{kind: txTombstone, code: TooLate})
		res.Code = OriginalNotFound
		return res
	case orig.kind == txTombstone:
		res.Code = OriginalNotFound // still not booked, and never will be
		return res
	case orig.code != Approved:
		// Declined: nothing to undo. A stand-in advice of the purchase may still be on its way;
		// the mark keeps it from booking what this reversal has undone in the acquirer's eyes.
		if orig.kind == txPurchase && orig.flags&txVoided == 0 {
			orig.flags |= txVoided
			b.putTx(&r.Original, orig)
		}
		res.Code = Approved
		return res
	case orig.kind == txUnknown:
		panic("ledger: an approved v1 tx record reached apply without its journal details")
	case orig.kind != txPurchase && orig.kind != txStandIn:
		res.Code = InvalidTransaction // only purchases, stand-in or not, are reversed
		return res
	case !bound || cardID != orig.account:
		res.Code = OriginalNotFound // the original was booked on another card
		return res
	case closed:
		res.Code = UnknownCard // the card was closed since
		return res
	case r.Currency != orig.currency || r.Amount != orig.amount:
		res.Code = InvalidAmount
		return res
	}

	// A blocked card still gets its money back: a reversal is not the holder spending.
	target := orig.amount - r.Actual
	if orig.reversed >= target {
		res.Code = Approved // already undone this far
		return res
	}
	amount := target - orig.reversed
	debit, credit := b.account(SettlementPayableID), b.account(cardID)
	if debit.Currency != credit.Currency {
		res.Code = InvalidTransaction
		return res
	}
	if debit.DebitsPosted > math.MaxInt64-amount || credit.CreditsPosted > math.MaxInt64-amount {
		res.Code = InvalidAmount // would overflow a posted total
		return res
	}

	b.seq++
	b.mutable(SettlementPayableID).DebitsPosted += amount
	b.mutable(cardID).CreditsPosted += amount
	b.journal = append(b.journal, Transfer{
		Seq:      b.seq,
		TxID:     r.ID,
		Kind:     KindReversal,
		Debit:    SettlementPayableID,
		Credit:   cardID,
		Amount:   amount,
		Currency: r.Currency,
		Time:     b.now,
		Terminal: r.Terminal,
		Merchant: r.Merchant,
		Original: orig.seq,
	})
	orig.reversed = target
	b.putTx(&r.Original, orig)
	rec.account, rec.amount = cardID, amount
	return b.approved(res, cardID)
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

// check verifies the invariants the batch must keep, replaying its journal entries in order over
// the committed balances:
//
//   - every touched account's posted totals moved by exactly what the entries post to it, and no
//     entry posts to an account the batch did not change;
//   - per currency, the debits added equal the credits added;
//   - no entry but a stand-in (KindStandIn) leaves a no-overdraft account below zero: the rule
//     book applies, and the one Verify applies to the whole journal;
//   - every entry posts a positive amount, and a reversal, and only a reversal, names an original;
//   - no purchase is reversed by more than its amount.
//
// It costs a few map operations per entry and touched account and runs before every commit; a
// failure means a bug in apply, and the batch is not committed.
func (b *batch) check() error {
	clear(b.postings)
	for i := range b.journal {
		e := &b.journal[i]
		if (e.Kind == KindReversal) != (e.Original != 0) {
			return fmt.Errorf("ledger: invariant: entry %d is a %s with original %d", e.Seq, e.Kind, e.Original)
		}
		if e.Amount <= 0 {
			return fmt.Errorf("ledger: invariant: entry %d posts %d", e.Seq, e.Amount)
		}
		cr := b.postings[e.Credit]
		cr.credits += e.Amount
		b.postings[e.Credit] = cr
		dr := b.postings[e.Debit]
		dr.debits += e.Amount
		b.postings[e.Debit] = dr
		a := b.account(e.Debit)
		if a == nil {
			return fmt.Errorf("ledger: invariant: entry %d debits account %d, which is not loaded", e.Seq, e.Debit)
		}
		if e.Kind == KindStandIn || a.Flags&DebitsMustNotExceedCredits == 0 {
			continue
		}
		var before Account
		if old := b.st.accounts[e.Debit]; old != nil {
			before = *old
		}
		// Both sums stay within the posted totals, which book and reverse keep from overflowing.
		if credits, debits := before.CreditsPosted+dr.credits, before.DebitsPosted+dr.debits; debits > credits {
			return fmt.Errorf("ledger: invariant: entry %d (%s) overdraws account %d: debits %d > credits %d",
				e.Seq, e.Kind, e.Debit, debits, credits)
		}
	}

	type delta struct {
		currency        uint16
		debits, credits int64
	}
	var sums [4]delta
	deltas := sums[:0]
	posted := 0
	for _, id := range b.touched {
		a := b.accounts[id]
		var before Account
		if old := b.st.accounts[id]; old != nil {
			before = *old
		}
		p, ok := b.postings[id]
		if ok {
			posted++
		}
		if a.DebitsPosted-before.DebitsPosted != p.debits || a.CreditsPosted-before.CreditsPosted != p.credits {
			return fmt.Errorf("ledger: invariant: account %d moved by debits %d, credits %d; its entries post %d, %d",
				id, a.DebitsPosted-before.DebitsPosted, a.CreditsPosted-before.CreditsPosted, p.debits, p.credits)
		}
		i := 0
		for i < len(deltas) && deltas[i].currency != a.Currency {
			i++
		}
		if i == len(deltas) {
			deltas = append(deltas, delta{currency: a.Currency})
		}
		deltas[i].debits += p.debits
		deltas[i].credits += p.credits
	}
	if posted != len(b.postings) {
		return fmt.Errorf("ledger: invariant: entries post to %d accounts, the batch changed %d of them", len(b.postings), posted)
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
	// What the records would not decode from: a purchase reversed by more than it booked.
	for _, id := range b.newTxs {
		if r := b.txs[id]; r.reversed < 0 || r.reversed > r.amount {
			return fmt.Errorf("ledger: invariant: tx %x… reversed %d of %d", id[:4], r.reversed, r.amount)
		}
	}
	return nil
}
