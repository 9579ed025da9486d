package ledger

import (
	"crypto/sha256"
	"encoding/binary"
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
	window   windowState
	cuts     []CutoverPoint // every window's cutover point, by window

	accounts map[uint64]*Account
	cards    map[string]uint64
	owners   map[string]uint64 // account and phone numbers, biller codes
}

func newState() *state {
	return &state{accounts: make(map[uint64]*Account), cards: make(map[string]uint64), owners: make(map[string]uint64)}
}

// command is one unit of work for the writer: a channel request or an admin operation.
type command struct {
	op     Op
	req    Request     // OpPurchase, OpBalance, OpDeposit, OpReversal, OpAdvice
	spec   AccountSpec // opOpenAccount
	acct   uint64      // opSetStatus, opSetLimits
	status Status      // opSetStatus
	limits Limits      // opSetLimits
	window windowState // opCutover
	adj    Adjustment  // opAdjust
}

// outcome is the answer to a command. err carries admin refusals (ErrPANBound, ErrNotFound, bad
// specs) and, set by the writer rather than by apply, load and commit failures.
type outcome struct {
	res  Result
	acct uint64
	cut  CutoverPoint // opCutover
	err  error
}

// batch is the apply step of one group commit: the inputs it reads and the overlay it writes.
// The writer keeps one and resets it per commit so that its maps and slices are reused.
type batch struct {
	st    *state
	known map[TxID]txRecord // committed idempotency records for this batch's ids
	now   int64
	ttl   int64 // hold lifetime, nanoseconds: a hold placed now expires at now + ttl

	seq, nextAcct uint64
	accounts      map[uint64]*Account // copies of touched accounts, new values
	touched       []uint64            // first-touch order, so writes are deterministic
	cards         map[string]uint64
	newCards      []string
	owners        map[string]uint64
	newOwners     []string
	txs           map[TxID]txRecord
	newTxs        []TxID
	journal       []Transfer
	newHolds      []holdKey      // expiry index entries to write
	delHolds      []holdKey      // expiry index entries to delete: holds no longer pending
	window        windowState    // the window entries posted now are booked in
	cuts          []CutoverPoint // cutover points opened by this batch, in order

	postings map[uint64]posted // check's scratch: what the journal posted to each account
}

// holdKey names a pending hold in the expiry index (h/).
type holdKey struct {
	expires int64
	seq     uint64
	id      TxID
}

func newBatch() *batch {
	return &batch{
		accounts: make(map[uint64]*Account),
		cards:    make(map[string]uint64),
		owners:   make(map[string]uint64),
		txs:      make(map[TxID]txRecord),
		postings: make(map[uint64]posted),
	}
}

func (b *batch) reset(st *state, known map[TxID]txRecord, now, ttl int64) {
	b.st, b.known, b.now, b.ttl = st, known, now, ttl
	b.newHolds = b.newHolds[:0]
	b.delHolds = b.delHolds[:0]
	b.seq, b.nextAcct = st.seq, st.nextAcct
	b.window = st.window
	b.cuts = b.cuts[:0]
	clear(b.accounts)
	clear(b.cards)
	clear(b.owners)
	b.newOwners = b.newOwners[:0]
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
		len(b.delHolds) == 0 && b.nextAcct == b.st.nextAcct && len(b.cuts) == 0
}

// fold makes the overlay the committed state. Call it only after the commit returned nil.
func (b *batch) fold() {
	for _, id := range b.touched {
		b.st.accounts[id] = b.accounts[id]
	}
	for _, pan := range b.newCards {
		b.st.cards[pan] = b.cards[pan]
	}
	for _, n := range b.newOwners {
		b.st.owners[n] = b.owners[n]
	}
	for _, id := range b.newTxs {
		b.known[id] = b.txs[id] // a later part of a split batch must see these as committed
	}
	b.st.seq, b.st.nextAcct = b.seq, b.nextAcct
	b.st.window = b.window
	b.st.cuts = append(b.st.cuts, b.cuts...)
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

// ownerID finds an account by account number, phone number or biller code, or failing that by a
// PAN given in their place (the hotline tops up "by card number").
func (b *batch) ownerID(n string) (uint64, bool) {
	if id, ok := b.owners[n]; ok {
		return id, true
	}
	if id, ok := b.st.owners[n]; ok {
		return id, true
	}
	return b.cardID(n)
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
	case OpPurchase, OpDeposit, OpReversal, OpAdvice, OpPreAuth, OpCompletion, OpRefund, OpTransfer, OpPayment:
		return outcome{res: b.transfer(&c.req)}
	case OpBalance:
		return outcome{res: b.balance(&c.req)}
	case opOpenAccount:
		id, err := b.openAccount(&c.spec)
		return outcome{acct: id, err: err}
	case opSetStatus:
		return outcome{err: b.setStatus(c.acct, c.status)}
	case opSetLimits:
		return outcome{err: b.setLimits(c.acct, c.limits)}
	case opCutover:
		p, err := b.cutover(c.window)
		return outcome{cut: p, err: err}
	case opAdjust:
		return outcome{res: b.adjust(&c.adj)}
	}
	return outcome{res: Result{Code: InvalidTransaction}}
}

// malformed answers requests whose content alone makes them unusable. They are not recorded: the
// same bytes always get the same answer, so a retransmission needs no record to stay consistent.
func malformed(r *Request) (Code, bool) {
	switch {
	case r.Op != OpBalance && r.ID.IsZero():
		return InvalidTransaction, true // a forgotten idempotency key, never a real one
	case len(r.Terminal) > maxAnnotation, len(r.Merchant) > maxAnnotation, !validKeys(r.Acquirer, r.STAN, r.RRN):
		return InvalidTransaction, true
	case len(r.PAN) > maxPAN, len(r.From) > maxNumber, len(r.To) > maxNumber:
		return UnknownCard, true
	case (r.Op == OpTransfer || r.Op == OpPayment) && r.To == "",
		r.To != "" && r.Op != OpTransfer && r.Op != OpPayment && r.Op != OpPreAuth:
		return InvalidTransaction, true // a transfer needs somewhere to go; only it and escrow have one
	case !r.Op.refers():
	case r.Original.IsZero() || r.Original == r.ID:
		return InvalidTransaction, true // no original, or a reversal of itself
	case r.Op == OpReversal && (r.Amount <= 0 || r.Actual < 0 || r.Actual > r.Amount):
		return InvalidAmount, true // the purchase cannot have ended below 0 or above its amount
	case r.Op != OpReversal && r.Actual != 0:
		return InvalidAmount, true
	}
	return "", false
}

// digest identifies the content of a mutating request for idempotency: op, PAN, amount and
// currency, and for a reversal the original's TxID and the actual amount. Annotations (terminal,
// merchant, acquirer, STAN, RRN) are not part of it: a retransmission that lacks them is the same
// request. An advice digests as the purchase it stands in for: under their
// shared TxID the purchase and its advice are the same content, and either may come first. PAN
// length ≤ maxPAN (malformed checks it first), so the buffer stays on the stack.
func digest(r *Request) [32]byte {
	var buf [1 + 1 + maxPAN + 8 + 2 + len(r.Original) + 8 + 2 + 2*maxNumber]byte
	op := r.Op
	if op == OpAdvice {
		op = OpPurchase
	}
	p := append(buf[:0], byte(op), byte(len(r.PAN)))
	p = append(p, r.PAN...)
	p = binary.BigEndian.AppendUint64(p, uint64(r.Amount))
	p = binary.BigEndian.AppendUint16(p, r.Currency)
	if r.Op.refers() {
		// Only operations on an original append these, so that the digests of purchases and
		// deposits stay what they were before reversals existed, and stored records still match
		// retransmissions.
		p = append(p, r.Original[:]...)
		p = binary.BigEndian.AppendUint64(p, uint64(r.Actual))
	}
	if r.From != "" || r.To != "" {
		// Likewise only for requests that name accounts by number.
		p = append(p, byte(len(r.From)))
		p = append(p, r.From...)
		p = append(p, byte(len(r.To)))
		p = append(p, r.To...)
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
	switch r.Op {
	case OpReversal:
		res = b.reverse(r, &rec)
	case OpCompletion:
		res = b.complete(r, &rec)
	case OpRefund:
		res = b.refund(r, &rec)
	default:
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
	r.window, r.date = res.Window, res.SettleDate
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
	return view(card)
}

// view is a Result with the card's currency and balances and no code.
func view(card *Account) Result {
	return Result{Currency: card.Currency, Ledger: card.Balance(), Available: card.Available()}
}

// putTx sets the record of id in the overlay; the writer stores every record put in a batch.
func (b *batch) putTx(id *TxID, rec txRecord) {
	if _, ok := b.txs[*id]; !ok {
		b.newTxs = append(b.newTxs, *id)
	}
	b.txs[*id] = rec
}

// book decides a purchase, deposit, pre-authorisation or stand-in advice and, when approved,
// posts it (a pre-authorisation as a pending hold) and notes the card and amount in rec. An advice
// is forced: a blocked card and a short balance do not stop it.
func (b *batch) book(r *Request, rec *txRecord) Result {
	forced := r.Op == OpAdvice
	holderID, ok := b.holderID(r)
	if !ok {
		return Result{Code: UnknownCard}
	}
	holder := b.account(holderID)
	if holder == nil {
		panic(fmt.Sprintf("ledger: index points to account %d, which was not loaded", holderID))
	}
	if holder.Status == Closed {
		return Result{Code: UnknownCard}
	}
	res := view(holder)
	if holder.Status == Blocked && !forced {
		res.Code = RestrictedCard
		return res
	}
	if r.Amount <= 0 || r.Currency != holder.Currency {
		res.Code = InvalidAmount
		return res
	}

	var debitID, creditID uint64
	var kind Kind
	switch r.Op {
	case OpPurchase:
		debitID, creditID, kind = holderID, SettlementPayableID, KindPurchase
	case OpDeposit:
		debitID, creditID, kind = FundingID, holderID, KindDeposit
	case OpAdvice:
		debitID, creditID, kind = holderID, SettlementPayableID, KindStandIn
	case OpPreAuth:
		if r.To == "" {
			debitID, creditID, kind = holderID, SettlementPayableID, KindHold
			break
		}
		fallthrough // an escrow: a hold in favour of the seller named by To
	case OpTransfer, OpPayment:
		toID, ok := b.ownerID(r.To)
		if !ok {
			res.Code = UnknownCard
			return res
		}
		to := b.account(toID)
		if to == nil {
			panic(fmt.Sprintf("ledger: index points to account %d, which was not loaded", toID))
		}
		switch {
		case to.Status == Closed:
			res.Code = UnknownCard
		case to.Status == Blocked:
			res.Code = RestrictedCard
		case toID == holderID, toID < firstAccountID, r.Op != OpTransfer && to.Type != Merchant:
			// To itself, to an institution account, or a bill or an escrow to a non-merchant.
			res.Code = NotPermitted
		}
		if res.Code != "" {
			return res
		}
		debitID, creditID, kind = holderID, toID, KindTransfer
		switch r.Op {
		case OpPayment:
			kind = KindPayment
		case OpPreAuth:
			kind = KindHold
		}
	default:
		panic("ledger: book called for " + r.Op.String())
	}
	debit, credit := b.account(debitID), b.account(creditID)
	if debit.Currency != credit.Currency {
		res.Code = InvalidAmount // no counter account in this currency
		return res
	}
	spending := debitID == holderID
	if spending && !holder.Type.spends() {
		res.Code = NotPermitted // a merchant or institution account does not spend through channels
		return res
	}
	if spending && !forced {
		if code := b.withinDailyLimits(holder, r.Amount); code != "" {
			res.Code = code
			return res
		}
	}
	if debit.Flags&DebitsMustNotExceedCredits != 0 && debit.Available() < r.Amount && !forced {
		res.Code = InsufficientFunds
		return res
	}
	if !fits(debit, credit, r.Amount) || kind == KindHold && b.now > math.MaxInt64-b.ttl {
		res.Code = InvalidAmount // would overflow a total
		return res
	}

	t := Transfer{
		TxID:     r.ID,
		Kind:     kind,
		Debit:    debitID,
		Credit:   creditID,
		Amount:   r.Amount,
		Currency: r.Currency,
		Terminal: r.Terminal,
		Merchant: r.Merchant,
		Acquirer: r.Acquirer,
		STAN:     r.STAN,
		RRN:      r.RRN,
	}
	if kind == KindHold {
		t.Expires = b.now + b.ttl
		rec.expires, rec.counter = t.Expires, creditID
	}
	b.post(t)
	if kind == KindHold {
		b.newHolds = append(b.newHolds, holdKey{expires: t.Expires, seq: b.seq, id: r.ID})
	}
	if spending && (holder.DailyAmount != 0 || holder.DailyCount != 0) {
		b.useDaily(holderID, r.Amount)
	}
	switch kind {
	case KindDeposit:
		rec.counter = debitID
	case KindTransfer, KindPayment:
		rec.counter = creditID
	}
	rec.account, rec.amount = holderID, r.Amount
	return b.approved(res, holderID)
}

// withinDailyLimits answers 61 or 65 when spending amount would take the account beyond its
// per-day amount or count limit; the day is the batch clock's UTC day.
func (b *batch) withinDailyLimits(a *Account, amount int64) Code {
	spent, count := a.DaySpent, a.DayCount
	if a.Day != unixDay(b.now) {
		spent, count = 0, 0
	}
	switch {
	case a.DailyAmount != 0 && (amount > a.DailyAmount || spent > a.DailyAmount-amount):
		return ExceedsAmount
	case a.DailyCount != 0 && count >= a.DailyCount:
		return ExceedsCount
	}
	return ""
}

// useDaily counts a spending transfer against the account's day. Reversals and refunds do not
// give the allowance back: a limit bounds what was attempted and approved, not what stayed.
func (b *batch) useDaily(id uint64, amount int64) {
	a := b.mutable(id)
	if day := unixDay(b.now); a.Day != day {
		a.Day, a.DaySpent, a.DayCount = day, 0, 0
	}
	a.DaySpent += amount // ≤ DailyAmount when that is set; otherwise bounded by the posted totals
	a.DayCount++
}

// holderID is the account a request acts for: the card bound to its PAN or, without a PAN, the
// account whose number is From.
func (b *batch) holderID(r *Request) (uint64, bool) {
	if r.PAN != "" || r.From == "" {
		return b.cardID(r.PAN)
	}
	return b.ownerID(r.From)
}

// fits reports whether moving amount from debit to credit keeps every total of both accounts,
// posted plus pending, within int64.
func fits(debit, credit *Account, amount int64) bool {
	return debit.DebitsPosted <= math.MaxInt64-amount-debit.DebitsPending &&
		credit.CreditsPosted <= math.MaxInt64-amount-credit.CreditsPending
}

// post numbers t as the next journal entry, stamps it with the batch's time and the settlement
// window the batch is in at this point (a cutover earlier in the batch moved it), applies it to its
// accounts (posted and pending totals, see Transfer.posts and pends) and journals it.
func (b *batch) post(t Transfer) {
	b.seq++
	t.Seq, t.Time = b.seq, b.now
	t.Window, t.SettleDate = b.window.window, b.window.date
	debit, credit := b.mutable(t.Debit), b.mutable(t.Credit)
	p, q := t.posts(), t.pends()
	debit.DebitsPosted += p
	credit.CreditsPosted += p
	debit.DebitsPending += q
	credit.CreditsPending += q
	b.journal = append(b.journal, t)
}

// approved completes the result of a booking that was just journalled as b.seq.
func (b *batch) approved(res Result, cardID uint64) Result {
	card := b.account(cardID)
	res.Code = Approved
	res.Seq = b.seq
	res.Ledger = card.Balance()
	res.Available = card.Available()
	res.AuthCode = authCode(b.seq)
	res.Window, res.SettleDate = b.window.window, b.window.date
	return res
}

// reverse decides a reversal and books what is left to undo of its original: the original's
// amount less Actual, less what earlier reversals of it undid. The original's record keeps that
// running total, so however many reversals name it (an 0400, then an 0420 advice, then its 0421
// repeats), together they never undo more than it booked.
func (b *batch) reverse(r *Request, rec *txRecord) Result {
	var res Result
	cardID, bound := b.holderID(r)
	closed := false
	if bound {
		card := b.account(cardID)
		if card == nil {
			panic(fmt.Sprintf("ledger: card index points to account %d, which was not loaded", cardID))
		}
		closed = card.Status == Closed
		if !closed {
			res = view(card)
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
	case !orig.kind.givesBack() && orig.kind != txHold && !orig.kind.movesMoney(), orig.flags&txToSeller != 0:
		res.Code = InvalidTransaction // refunds and reversals are not reversed, nor escrow releases
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
	if orig.kind == txHold {
		// A reversal of a pre-authorisation voids what it names of the hold: the pending debit
		// and credit shrink, nothing posts. Fully voided, the hold leaves the expiry index.
		b.post(Transfer{TxID: r.ID, Kind: KindVoid, Debit: cardID, Credit: orig.counter, Amount: amount,
			Currency: r.Currency, Terminal: r.Terminal, Merchant: r.Merchant, Acquirer: r.Acquirer, STAN: r.STAN, RRN: r.RRN, Original: orig.seq, Released: amount})
		if target == orig.amount {
			b.delHolds = append(b.delHolds, holdKey{expires: orig.expires, seq: orig.seq, id: r.Original})
		}
	} else {
		// Back the way the original came: a purchase's from settlement-payable, a top-up's from
		// the card to the funding account, a transfer's or payment's from the payee. Only a
		// purchase's reversal is sure of its funds; the others need the money still there (51).
		debitID, creditID := SettlementPayableID, cardID
		switch orig.kind {
		case txDeposit:
			debitID, creditID = cardID, orig.counter
			if creditID == 0 {
				creditID = FundingID // a top-up recorded before records named their counter account
			}
		case txTransfer, txPayment:
			debitID = orig.counter
		}
		debit, credit := b.account(debitID), b.account(creditID)
		switch {
		case debit == nil || credit == nil:
			panic(fmt.Sprintf("ledger: reversal from %d to %d, which were not loaded", debitID, creditID))
		case debit.Currency != credit.Currency:
			res.Code = InvalidTransaction
			return res
		case debit.Status == Closed || credit.Status == Closed:
			res.Code = UnknownCard
			return res
		case debit.Flags&DebitsMustNotExceedCredits != 0 && debit.Available() < amount:
			res.Code = InsufficientFunds
			return res
		case !fits(debit, credit, amount):
			res.Code = InvalidAmount // would overflow a posted total
			return res
		}
		b.post(Transfer{TxID: r.ID, Kind: KindReversal, Debit: debitID, Credit: creditID, Amount: amount,
			Currency: r.Currency, Terminal: r.Terminal, Merchant: r.Merchant, Acquirer: r.Acquirer, STAN: r.STAN, RRN: r.RRN, Original: orig.seq})
	}
	orig.reversed = target
	b.putTx(&r.Original, orig)
	rec.account, rec.amount = cardID, amount
	return b.approved(res, cardID)
}

// original looks up the approved record that a completion or refund names, and the card the
// request names, and declines what cannot go on: no record or a tombstone (25), a record of
// another kind than want accepts (12), a declined original (25), another card (25), a closed card
// (14), an amount ≤ 0 or another currency (13). res carries the card's view when the card is open.
func (b *batch) original(r *Request, want func(txKind) bool) (orig txRecord, cardID uint64, res Result, ok bool) {
	cardID, bound := b.holderID(r)
	var card *Account
	if bound {
		card = b.account(cardID)
		if card == nil {
			panic(fmt.Sprintf("ledger: card index points to account %d, which was not loaded", cardID))
		}
		if card.Status != Closed {
			res = view(card)
		}
	}
	orig, found := b.txRecord(&r.Original)
	switch {
	case !found, orig.kind == txTombstone:
		res.Code = OriginalNotFound
	case !want(orig.kind), orig.flags&txToSeller != 0:
		res.Code = InvalidTransaction
	case orig.code != Approved:
		res.Code = OriginalNotFound // nothing was booked to complete or refund
	case !bound || cardID != orig.account:
		res.Code = OriginalNotFound
	case card.Status == Closed:
		res.Code = UnknownCard
	case r.Amount <= 0 || r.Currency != orig.currency:
		res.Code = InvalidAmount
	default:
		return orig, cardID, res, true
	}
	return orig, cardID, res, false
}

// complete posts the hold of a pre-authorisation: Amount of it, at most what is still pending,
// and releases the rest. A hold that is no longer pending (completed, voided or expired) is 12.
// A blocked card still completes: the holder spent the money when the hold was placed.
func (b *batch) complete(r *Request, rec *txRecord) Result {
	orig, cardID, res, ok := b.original(r, func(k txKind) bool { return k == txHold })
	if !ok {
		return res
	}
	held := orig.amount - orig.reversed
	switch {
	case held == 0:
		res.Code = InvalidTransaction
		return res
	case r.Amount > held:
		res.Code = InvalidAmount
		return res
	}
	b.post(Transfer{TxID: r.ID, Kind: KindPost, Debit: cardID, Credit: orig.counter, Amount: r.Amount,
		Currency: r.Currency, Terminal: r.Terminal, Merchant: r.Merchant, Acquirer: r.Acquirer, STAN: r.STAN, RRN: r.RRN, Original: orig.seq, Released: held})
	b.delHolds = append(b.delHolds, holdKey{expires: orig.expires, seq: orig.seq, id: r.Original})
	orig.reversed = orig.amount
	b.putTx(&r.Original, orig)
	rec.account, rec.amount = cardID, r.Amount
	if orig.counter != SettlementPayableID {
		rec.flags |= txToSeller
	}
	return b.approved(res, cardID)
}

// refund gives back Amount of an approved purchase (stand-in or completion): at most what
// reversals and earlier refunds have not given back yet (13 beyond). It shares the purchase's
// running total with reversals, so together they never undo more than it booked.
func (b *batch) refund(r *Request, rec *txRecord) Result {
	orig, cardID, res, ok := b.original(r, txKind.givesBack)
	if !ok {
		return res
	}
	debit, credit := b.account(SettlementPayableID), b.account(cardID)
	if r.Amount > orig.amount-orig.reversed || !fits(debit, credit, r.Amount) {
		res.Code = InvalidAmount
		return res
	}
	b.post(Transfer{TxID: r.ID, Kind: KindRefund, Debit: SettlementPayableID, Credit: cardID, Amount: r.Amount,
		Currency: r.Currency, Terminal: r.Terminal, Merchant: r.Merchant, Acquirer: r.Acquirer, STAN: r.STAN, RRN: r.RRN, Original: orig.seq})
	orig.reversed += r.Amount
	b.putTx(&r.Original, orig)
	rec.account, rec.amount = cardID, r.Amount
	return b.approved(res, cardID)
}

// expire releases what the hold h still has pending, as a KindExpire entry under the hold's own
// TxID, and takes it out of the expiry index. The writer calls it for the holds whose expiry has
// passed, before the batch's requests, in index order (expiry, then seq), so the same inputs
// always give the same journal. An index entry whose hold is no longer pending is just deleted.
func (b *batch) expire(h holdKey) {
	b.delHolds = append(b.delHolds, h)
	rec, ok := b.txRecord(&h.id)
	if !ok || rec.kind != txHold || rec.code != Approved || rec.seq != h.seq || rec.amount == rec.reversed {
		return
	}
	if b.account(rec.account) == nil || b.account(rec.counter) == nil {
		panic(fmt.Sprintf("ledger: hold from account %d to %d, which were not loaded", rec.account, rec.counter))
	}
	held := rec.amount - rec.reversed
	b.post(Transfer{TxID: h.id, Kind: KindExpire, Debit: rec.account, Credit: rec.counter, Amount: held,
		Currency: rec.currency, Original: rec.seq, Released: held})
	rec.reversed = rec.amount
	rec.flags |= txExpired
	b.putTx(&h.id, rec)
}

// balance answers an inquiry. It books and records nothing.
func (b *batch) balance(r *Request) Result {
	if len(r.PAN) > maxPAN {
		return Result{Code: UnknownCard}
	}
	id, ok := b.holderID(r)
	if !ok {
		return Result{Code: UnknownCard}
	}
	card := b.account(id)
	if card == nil || card.Status == Closed {
		return Result{Code: UnknownCard}
	}
	res := view(card)
	res.Code = Approved
	if card.Status == Blocked {
		res.Code = RestrictedCard
	}
	return res
}

func (b *batch) openAccount(s *AccountSpec) (uint64, error) {
	switch {
	case !s.Type.valid():
		return 0, fmt.Errorf("ledger: open account: invalid type %d", s.Type)
	case s.Currency != b.st.currency:
		return 0, fmt.Errorf("ledger: open account: currency %d is not booked by this shard (it books %d)",
			s.Currency, b.st.currency)
	case len(s.Name) > maxName:
		return 0, fmt.Errorf("ledger: open account: name is %d bytes, limit %d", len(s.Name), maxName)
	case s.Type == Card && !plausiblePAN(s.PAN):
		return 0, fmt.Errorf("ledger: open account: card PAN %s is not 12–19 digits", maskPAN(s.PAN))
	case s.PAN != "" && !s.Type.spends():
		return 0, fmt.Errorf("ledger: open account: a %s account carries no PAN", s.Type)
	case s.PAN != "" && !plausiblePAN(s.PAN):
		return 0, fmt.Errorf("ledger: open account: PAN %s is not 12–19 digits", maskPAN(s.PAN))
	case s.Number != "" && !plausibleNumber(s.Number):
		return 0, fmt.Errorf("ledger: open account: number %s is not 1–%d of 0-9, A-Z, a-z and -", maskPAN(s.Number), maxNumber)
	}
	if err := checkLimits(s.Type, s.Limits); err != nil {
		return 0, fmt.Errorf("ledger: open account: %w", err)
	}
	if s.PAN != "" {
		if _, bound := b.cardID(s.PAN); bound {
			return 0, ErrPANBound
		}
	}
	if s.Number != "" {
		if _, bound := b.owners[s.Number]; bound {
			return 0, ErrNumberBound
		}
		if _, bound := b.st.owners[s.Number]; bound {
			return 0, ErrNumberBound
		}
	}
	a := &Account{
		ID:       b.nextAcct,
		Type:     s.Type,
		Currency: s.Currency,
		Status:   Active,
		Name:     s.Name,
		Limits:   s.Limits,
	}
	// A customer account never overdraws; a credit line spends up to its limit beyond its credits.
	if s.NoOverdraft || s.Type.spends() {
		a.Flags |= DebitsMustNotExceedCredits
	}
	if s.PAN != "" {
		a.MaskedPAN = maskPAN(s.PAN)
		b.cards[s.PAN] = a.ID
		b.newCards = append(b.newCards, s.PAN)
	}
	if s.Number != "" {
		b.owners[s.Number] = a.ID
		b.newOwners = append(b.newOwners, s.Number)
	}
	b.nextAcct++
	b.accounts[a.ID] = a
	b.touched = append(b.touched, a.ID)
	return a.ID, nil
}

// checkLimits refuses negative limits and a credit limit on anything but a credit line.
func checkLimits(t AccountType, l Limits) error {
	switch {
	case l.CreditLimit < 0 || l.DailyAmount < 0 || l.DailyCount < 0:
		return fmt.Errorf("negative limit in %+v", l)
	case l.CreditLimit != 0 && t != CreditLine:
		return fmt.Errorf("a %s account has no credit limit", t)
	}
	return nil
}

// setLimits changes an account's limits. A credit limit may not drop below what the account
// already uses of it: no account is ever beyond its limits, whoever moves them.
func (b *batch) setLimits(id uint64, l Limits) error {
	a := b.account(id)
	switch {
	case a == nil:
		return ErrNotFound
	case id < firstAccountID:
		return fmt.Errorf("ledger: set limits: account %d is a well-known account", id)
	case a.Status == Closed:
		return fmt.Errorf("ledger: set limits: account %d is closed", id)
	}
	if err := checkLimits(a.Type, l); err != nil {
		return fmt.Errorf("ledger: set limits: %w", err)
	}
	if used := a.DebitsPosted + a.DebitsPending - a.CreditsPosted; l.CreditLimit < a.CreditLimit && l.CreditLimit < used {
		return fmt.Errorf("ledger: set limits: account %d uses %d of its credit line, above %d", id, used, l.CreditLimit)
	}
	if a.Limits != l {
		m := b.mutable(id)
		m.Limits = l
		if l.DailyAmount == 0 && l.DailyCount == 0 {
			m.Day, m.DaySpent, m.DayCount = 0, 0, 0 // nothing counts them any more
		}
	}
	return nil
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
	case st == Closed && (a.DebitsPending != 0 || a.CreditsPending != 0):
		return fmt.Errorf("ledger: set status: account %d has holds pending; only an account without closes", id)
	}
	if a.Status != st {
		b.mutable(id).Status = st
	}
	return nil
}

// check verifies the invariants the batch must keep, replaying its journal entries in order over
// the committed balances:
//
//   - every touched account's posted and pending totals moved by exactly what the entries post
//     and hold (Transfer.posts, Transfer.pends), no entry touches an account the batch did not
//     change, and no pending total is below zero;
//   - per currency, the debits added equal the credits added, posted and pending alike;
//   - no entry that spends (Transfer.spends) but a forced one (KindStandIn, KindAdjust) leaves a
//     no-overdraft account's available balance (credit limit included) below zero: the rule
//     book applies, and the one Verify applies to the whole journal;
//   - every entry moves a positive amount, and exactly the entries that refer to an original
//     (reversals, refunds, posts, voids, expiries) name one; an adjustment may;
//   - no purchase is given back, and no hold released, by more than its amount.
//
// It costs a few map operations per entry and touched account and runs before every commit; a
// failure means a bug in apply, and the batch is not committed.
func (b *batch) check() error {
	clear(b.postings)
	for i := range b.journal {
		e := &b.journal[i]
		if e.Kind != KindAdjust && (e.Original != 0) != e.Kind.refers() {
			return fmt.Errorf("ledger: invariant: entry %d is a %s with original %d", e.Seq, e.Kind, e.Original)
		}
		if e.Amount <= 0 || e.Debit == e.Credit {
			return fmt.Errorf("ledger: invariant: entry %d posts %d from %d to %d", e.Seq, e.Amount, e.Debit, e.Credit)
		}
		p, q := e.posts(), e.pends()
		cr := b.postings[e.Credit]
		cr.credits += p
		cr.creditsPending += q
		b.postings[e.Credit] = cr
		dr := b.postings[e.Debit]
		dr.debits += p
		dr.debitsPending += q
		b.postings[e.Debit] = dr
		a := b.account(e.Debit)
		if a == nil {
			return fmt.Errorf("ledger: invariant: entry %d debits account %d, which is not loaded", e.Seq, e.Debit)
		}
		if e.Kind == KindStandIn || e.Kind == KindAdjust || !e.spends() || a.Flags&DebitsMustNotExceedCredits == 0 {
			continue
		}
		var before Account
		if old := b.st.accounts[e.Debit]; old != nil {
			before = *old
		}
		// The sums stay within the totals, which apply keeps from overflowing.
		credits := before.CreditsPosted + dr.credits + max(before.CreditLimit, a.CreditLimit)
		debits := before.DebitsPosted + dr.debits + before.DebitsPending + dr.debitsPending
		if debits > credits {
			return fmt.Errorf("ledger: invariant: entry %d (%s) overdraws account %d: debits and holds %d > credits %d",
				e.Seq, e.Kind, e.Debit, debits, credits)
		}
	}

	type delta struct {
		currency        uint16
		debits, credits int64
		pending         int64 // debits pending − credits pending
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
		if a.DebitsPosted-before.DebitsPosted != p.debits || a.CreditsPosted-before.CreditsPosted != p.credits ||
			a.DebitsPending-before.DebitsPending != p.debitsPending || a.CreditsPending-before.CreditsPending != p.creditsPending {
			return fmt.Errorf("ledger: invariant: account %d moved by debits %d, credits %d, pending %d, %d; its entries post %+v",
				id, a.DebitsPosted-before.DebitsPosted, a.CreditsPosted-before.CreditsPosted,
				a.DebitsPending-before.DebitsPending, a.CreditsPending-before.CreditsPending, p)
		}
		if a.DebitsPending < 0 || a.CreditsPending < 0 {
			return fmt.Errorf("ledger: invariant: account %d pending debits %d, credits %d", id, a.DebitsPending, a.CreditsPending)
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
		deltas[i].pending += p.debitsPending - p.creditsPending
	}
	if posted != len(b.postings) {
		return fmt.Errorf("ledger: invariant: entries post to %d accounts, the batch changed %d of them", len(b.postings), posted)
	}
	for _, d := range deltas {
		if d.debits != d.credits || d.pending != 0 {
			return fmt.Errorf("ledger: invariant: currency %d: batch debits %d ≠ credits %d, or pending off by %d",
				d.currency, d.debits, d.credits, d.pending)
		}
	}
	if want := b.st.seq + uint64(len(b.journal)); b.seq != want {
		return fmt.Errorf("ledger: invariant: seq %d after %d entries from %d", b.seq, len(b.journal), b.st.seq)
	}
	// What the records would not decode from: a purchase given back, or a hold released, by more
	// than it booked.
	for _, id := range b.newTxs {
		if r := b.txs[id]; r.reversed < 0 || r.reversed > r.amount {
			return fmt.Errorf("ledger: invariant: tx %x… reversed %d of %d", id[:4], r.reversed, r.amount)
		}
	}
	return nil
}
