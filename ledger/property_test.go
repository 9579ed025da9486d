package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The property test drives a shard with random operation sequences (purchases, pre-authorisations
// and escrows with partial completions (releases), reversals (voids, refunds to the buyer), reversals of reversals, refunds, top-ups, transfers, bill
// payments, retransmissions of anything sent before, reversals that overtake their originals, and
// clock moves that expire holds) and checks every answer against a small reference model, one
// request per batch and, now and then, a burst of them held together into one batch. The batch's
// own invariant check (batch.check) runs before every commit; after every few operations the test
// checks the books as well: balances and holds equal the model's, Σ debits = Σ
// credits per currency (posted and pending), no customer account beyond its limits, and Verify.

// modelAcct is the reference model of one account: its balance (credits − debits), what holds
// keep pending and its credit limit.
type modelAcct struct {
	id           uint64
	bal, pending int64
	limit        int64

	dailyAmount, dailyCount int64 // per-day limits, 0 for none
	day, spent, count       int64 // the day's use
}

// spend checks the per-day limits for a spending of amount, as the shard does before the funds.
func (a *modelAcct) withinDaily(day, amount int64) Code {
	spent, count := a.spent, a.count
	if a.day != day {
		spent, count = 0, 0
	}
	switch {
	case a.dailyAmount != 0 && spent+amount > a.dailyAmount:
		return ExceedsAmount
	case a.dailyCount != 0 && count >= a.dailyCount:
		return ExceedsCount
	}
	return ""
}

func (a *modelAcct) useDaily(day, amount int64) {
	if a.dailyAmount == 0 && a.dailyCount == 0 {
		return
	}
	if a.day != day {
		a.day, a.spent, a.count = day, 0, 0
	}
	a.spent += amount
	a.count++
}

func (a *modelAcct) available() int64 { return a.bal - a.pending + a.limit }

// modelTx is what the model remembers of a request's TxID.
type modelTx struct {
	req      Request
	res      Result // the first answer
	kind     txKind
	holder   *modelAcct
	counter  *modelAcct // holds: the account credited, settlement-payable or an escrow's seller
	amount   int64      // booked
	back     int64      // purchases: given back; holds: released
	expires  int64
	seq      uint64
	tomb     bool // a tombstone left by a reversal that came first
	claimed  bool // the tombstone's original has since arrived and was answered 68
	approved bool
	toSeller bool // a completion that released an escrow: final
}

type model struct {
	t       *testing.T
	rng     *rand.Rand
	s       *Shard
	clock   *manualClock
	ttl     int64
	holders []*modelAcct
	refs    map[*modelAcct]Request // PAN or From that names each holder
	biller  *modelAcct
	settle  *modelAcct // settlement-payable, as credits − debits
	funding *modelAcct
	txs     map[TxID]*modelTx
	sent    []TxID // every TxID sent, for retransmissions and originals
	next    int

	gate       atomic.Pointer[gate] // holds the writer in a commit during a burst
	collecting bool                 // step queues requests for a burst instead of sending them
	queue      []*inflight
	ops        map[string]int // how often each operation ran, for the coverage report
	outcomes   map[string]int
}

func TestProperty(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4}
	n := 300
	if testing.Short() {
		seeds, n = seeds[:2], 200
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) { runProperty(t, seed, n) })
	}
}

func runProperty(t *testing.T, seed uint64, n int) {
	clock := newManualClock()
	var m *model
	s := openShard(t, "", func(o *Options) {
		o.Clock = clock.now
		o.HoldTTL = time.Hour
		o.SweepEvery = time.Hour // every sweep happens in a request's batch, where the model expects it
		o.commitFault = func() error {
			if g := m.gate.Load(); g != nil {
				return g.hook()
			}
			return nil
		}
	})
	ctx := context.Background()
	m = &model{t: t, rng: rand.New(rand.NewPCG(seed, 7)), s: s, clock: clock, ttl: int64(time.Hour),
		refs: make(map[*modelAcct]Request), txs: make(map[TxID]*modelTx), ops: make(map[string]int),
		outcomes: make(map[string]int)}
	open := func(spec AccountSpec, ref Request, limit int64) *modelAcct {
		id, err := s.OpenAccount(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		a := &modelAcct{id: id, limit: limit}
		m.refs[a] = ref
		return a
	}
	m.settle = &modelAcct{id: SettlementPayableID}
	m.funding = &modelAcct{id: FundingID}
	m.holders = []*modelAcct{
		open(AccountSpec{Type: Card, Currency: cny, PAN: pan1}, Request{PAN: pan1}, 0),
		open(AccountSpec{Type: CreditLine, Currency: cny, PAN: pan2, Limits: Limits{CreditLimit: 3000}}, Request{PAN: pan2}, 3000),
		open(AccountSpec{Type: Debit, Currency: cny, Number: phone, Limits: Limits{DailyAmount: 6000, DailyCount: 5}},
			Request{From: phone}, 0),
	}
	m.holders[2].dailyAmount, m.holders[2].dailyCount = 6000, 5
	m.biller = open(AccountSpec{Type: Merchant, Currency: cny, Number: biller}, Request{}, 0)

	for i := range n {
		if i%15 == 14 {
			m.burst()
		} else {
			m.step()
		}
		if i%10 == 9 {
			m.checkBooks(true)
		}
	}
	m.checkBooks(true)
	for _, e := range journal(t, s) {
		m.outcomes["entry "+e.Kind.String()]++
	}
	t.Logf("operations %v; outcomes %v", m.ops, m.outcomes)
}

func (m *model) holder() *modelAcct { return m.holders[m.rng.IntN(len(m.holders))] }

func (m *model) amount() int64 { return 1 + m.rng.Int64N(2500) }

func (m *model) newID() TxID {
	m.next++
	return txid("prop", m.next)
}

// pick returns a random TxID sent before whose record satisfies ok, or false.
func (m *model) pick(ok func(*modelTx) bool) (TxID, bool) {
	var cands []TxID
	for _, id := range m.sent {
		// Only requests already answered: a burst's own are still in flight.
		if tx := m.txs[id]; tx != nil && tx.res.Code != "" && ok(tx) {
			cands = append(cands, id)
		}
	}
	if len(cands) == 0 {
		return TxID{}, false
	}
	return cands[m.rng.IntN(len(cands))], true
}

// request builds a request of op for holder h.
func (m *model) request(op Op, h *modelAcct, amount int64) Request {
	r := m.refs[h]
	r.Op, r.ID, r.Amount, r.Currency = op, m.newID(), amount, cny
	return r
}

// step runs one random operation.
func (m *model) step() {
	switch k := m.rng.IntN(100); {
	case k < 15:
		h := m.holder()
		m.send("purchase", m.request(OpPurchase, h, m.amount()))
	case k < 21:
		h := m.holder()
		m.send("preauth", m.request(OpPreAuth, h, m.amount()))
	case k < 25:
		r := m.request(OpPreAuth, m.holder(), m.amount())
		r.To = biller
		m.send("escrow", r)
	case k < 35:
		// Mostly holds still pending; now and then any, expired and voided ones included.
		id, ok := m.pick(func(tx *modelTx) bool { return tx.kind == txHold && tx.approved && tx.back < tx.amount })
		if !ok || m.rng.IntN(4) == 0 {
			if id, ok = m.pick(func(tx *modelTx) bool { return tx.kind == txHold }); !ok {
				return
			}
		}
		tx := m.txs[id]
		r := m.request(OpCompletion, tx.holder, 1+m.rng.Int64N(tx.req.Amount+200))
		r.Original = id
		m.send("completion", r)
	case k < 47:
		// A reversal of anything sent before, reversals and refunds included, fully or partly;
		// now and then of something not sent yet, which then arrives too late.
		if m.rng.IntN(8) == 0 {
			orig := m.request(OpPurchase, m.holder(), m.amount())
			r := m.request(OpReversal, m.holders[0], orig.Amount)
			r.PAN, r.From = orig.PAN, orig.From
			r.Original = orig.ID
			m.send("reversal before its original", r)
			m.send("original after its reversal", orig)
			return
		}
		id, ok := m.pick(func(tx *modelTx) bool { return tx.kind == txHold && tx.approved && tx.back < tx.amount })
		if !ok || m.rng.IntN(2) == 0 {
			if id, ok = m.pick(func(tx *modelTx) bool { return (!tx.tomb || tx.claimed) && tx.req.Op != OpBalance }); !ok {
				return
			}
		}
		tx := m.txs[id]
		r := m.request(OpReversal, tx.holder, tx.req.Amount)
		r.Original = id
		if m.rng.IntN(3) == 0 {
			r.Actual = m.rng.Int64N(tx.req.Amount + 1)
		}
		m.send("reversal", r)
	case k < 55:
		id, ok := m.pick(func(tx *modelTx) bool { return tx.kind == txPurchase || tx.kind == txCompletion || tx.kind == txRefund })
		if !ok {
			return
		}
		tx := m.txs[id]
		r := m.request(OpRefund, tx.holder, 1+m.rng.Int64N(tx.req.Amount))
		r.Original = id
		m.send("refund", r)
	case k < 65:
		m.send("top-up", m.request(OpDeposit, m.holder(), m.amount()))
	case k < 72:
		from, to := m.holder(), m.holder()
		r := m.request(OpTransfer, from, m.amount())
		if tr := m.refs[to]; tr.PAN != "" {
			r.To = tr.PAN
		} else {
			r.To = tr.From
		}
		m.send("transfer", r)
	case k < 78:
		r := m.request(OpPayment, m.holder(), m.amount())
		r.To = biller
		m.send("payment", r)
	case k < 90:
		id, ok := m.pick(func(tx *modelTx) bool { return !tx.tomb || tx.claimed })
		if !ok {
			return
		}
		m.retry(id)
	default:
		if m.collecting {
			return // the clock moves between batches only
		}
		m.clock.advance(time.Duration(m.rng.Int64N(int64(25 * time.Minute))))
		m.ops["clock"]++
		m.send("inquiry", Request{Op: OpBalance, PAN: pan1}) // a batch, so that the sweep runs
	}
}

// expire releases, in expiry then seq order, the holds whose expiry the shard's next batch passes.
func (m *model) expire() {
	now := m.clock.now().UnixNano()
	var due []*modelTx
	for _, tx := range m.txs {
		if tx.kind == txHold && tx.approved && tx.back < tx.amount && tx.expires <= now {
			due = append(due, tx)
		}
	}
	slices.SortFunc(due, func(a, b *modelTx) int {
		if a.expires != b.expires {
			return int(a.expires - b.expires)
		}
		return int(a.seq) - int(b.seq)
	})
	for _, tx := range due {
		tx.holder.pending -= tx.amount - tx.back
		tx.counter.pending -= tx.amount - tx.back
		tx.back = tx.amount
	}
}

// inflight is a request whose answer the model has predicted.
type inflight struct {
	name  string
	r     Request
	want  Result
	tx    *modelTx // nil for an inquiry
	retry bool     // a retransmission: want is the first answer, replayed
}

// send predicts a new request's answer and records it in the model; then it submits it, or, while
// a burst is being collected, queues it for the burst.
func (m *model) send(name string, r Request) {
	m.t.Helper()
	m.ops[name]++
	m.expire()
	want, tx := m.predict(&r)
	if tx != nil {
		if old, seen := m.txs[r.ID]; !seen || old.tomb && !old.claimed && tx.claimed {
			m.sent = append(m.sent, r.ID)
		}
		m.txs[r.ID] = tx
	}
	f := &inflight{name: name, r: r, want: want, tx: tx}
	if m.collecting {
		m.queue = append(m.queue, f)
		return
	}
	m.check(f, m.deliver(f))
}

// retry resends an earlier request: the shard must replay its first answer.
func (m *model) retry(id TxID) {
	m.t.Helper()
	m.ops["retransmission"]++
	m.expire()
	tx := m.txs[id]
	f := &inflight{name: "retransmission", r: tx.req, want: tx.res, tx: tx, retry: true}
	if m.collecting {
		m.queue = append(m.queue, f)
		return
	}
	m.check(f, m.deliver(f))
}

func (m *model) deliver(f *inflight) Result {
	r := f.r
	got, err := m.s.Do(context.Background(), &r)
	if err != nil {
		m.t.Errorf("%s: %v", f.name, err)
	}
	return got
}

// check compares an answer with the model's prediction and keeps a first answer for the retries.
func (m *model) check(f *inflight, got Result) {
	m.t.Helper()
	if f.retry {
		if !got.Replayed || got.Code != f.want.Code || got.Seq != f.want.Seq {
			m.t.Fatalf("retransmission of %+v: got %+v, first answer %+v", f.r, got, f.want)
		}
		return
	}
	m.outcomes[f.name+" "+string(got.Code)]++
	want := f.want
	if got.Code != want.Code || got.Replayed || got.Code != Approved && got.Seq != 0 {
		m.t.Fatalf("%s %+v: got %+v, want code %s", f.name, f.r, got, want.Code)
	}
	if want.Code == Approved && f.tx != nil && f.tx.holder != nil && (got.Ledger != want.Ledger || got.Available != want.Available) {
		m.t.Fatalf("%s %+v: got %+v, want balances %d/%d", f.name, f.r, got, want.Ledger, want.Available)
	}
	if f.tx != nil {
		f.tx.res, f.tx.seq = got, got.Seq
	}
}

// burst queues a few random requests behind one that holds the writer in its commit, so that
// they form one batch in a known order, and checks their answers once it is committed.
func (m *model) burst() {
	m.t.Helper()
	m.ops["burst"]++
	m.collecting = true
	m.send("top-up", m.request(OpDeposit, m.holders[0], 1)) // the request that holds the writer
	for range 2 + m.rng.IntN(6) {
		m.step()
	}
	m.collecting = false
	queue := m.queue
	m.queue = nil

	g := newGate()
	g.armed.Store(true)
	m.gate.Store(g)
	got := make([]Result, len(queue))
	var wg sync.WaitGroup
	wg.Go(func() { got[0] = m.deliver(queue[0]) })
	<-g.entered
	for i, f := range queue[1:] {
		wg.Go(func() { got[i+1] = m.deliver(f) })
		eventually(m.t, "the request is queued", func() bool { return len(m.s.queue) == i+1 })
	}
	close(g.release)
	wg.Wait()
	for i, f := range queue {
		m.check(f, got[i])
	}
}

// predict applies r to the model and returns the expected answer and the TxID's new record.
func (m *model) predict(r *Request) (Result, *modelTx) {
	if r.Op == OpBalance {
		return Result{Code: Approved}, nil
	}
	tx := &modelTx{req: *r, kind: txKindOf(r.Op)}
	h := m.byRef(r.PAN, r.From)
	tx.holder = h
	if old, ok := m.txs[r.ID]; ok && old.tomb {
		tx.tomb, tx.claimed = true, true
		return Result{Code: TooLate}, tx
	}
	code := m.apply(r, tx, h)
	tx.approved = code == Approved
	res := Result{Code: code}
	if h != nil {
		res.Ledger, res.Available = h.bal, h.available()
	}
	return res, tx
}

func (m *model) byRef(pan, from string) *modelAcct {
	for a, ref := range m.refs {
		if pan != "" && ref.PAN == pan || pan == "" && from != "" && (ref.From == from || ref.PAN == from) {
			return a
		}
	}
	return nil
}

// move books amount from debit to credit in the model (balances as credits − debits).
func move(debit, credit *modelAcct, amount int64) {
	debit.bal -= amount
	credit.bal += amount
}

func (m *model) apply(r *Request, tx *modelTx, h *modelAcct) Code {
	switch r.Op {
	case OpPurchase, OpPreAuth, OpTransfer, OpPayment:
		var to *modelAcct
		switch r.Op {
		case OpTransfer:
			to = m.byRef("", r.To)
			if to == h {
				return NotPermitted
			}
		case OpPayment:
			to = m.biller
		}
		if to == nil && r.To != "" && r.Op != OpPreAuth {
			m.t.Fatalf("model: no account for %s", r.To)
		}
		day := unixDay(m.clock.now().UnixNano())
		if code := h.withinDaily(day, r.Amount); code != "" {
			return code
		}
		if r.Amount > h.available() {
			return InsufficientFunds
		}
		h.useDaily(day, r.Amount)
		switch r.Op {
		case OpPurchase:
			move(h, m.settle, r.Amount)
		case OpPreAuth:
			tx.counter = m.settle
			if r.To != "" {
				tx.counter = m.biller
			}
			h.pending += r.Amount
			tx.counter.pending += r.Amount
			tx.expires = m.clock.now().UnixNano() + m.ttl
		default:
			move(h, to, r.Amount)
			tx.counter = to
		}
		tx.amount = r.Amount
	case OpDeposit:
		move(m.funding, h, r.Amount)
		tx.amount = r.Amount
		tx.counter = m.funding
	case OpCompletion, OpRefund:
		orig, ok := m.txs[r.Original]
		switch {
		case !ok || orig.tomb:
			return OriginalNotFound
		case r.Op == OpCompletion && orig.kind != txHold,
			r.Op == OpRefund && orig.kind != txPurchase && orig.kind != txCompletion, orig.toSeller:
			return InvalidTransaction
		case !orig.approved:
			return OriginalNotFound
		case orig.holder != h:
			return OriginalNotFound
		}
		left := orig.amount - orig.back
		if r.Op == OpCompletion {
			switch {
			case left == 0:
				return InvalidTransaction
			case r.Amount > left:
				return InvalidAmount
			}
			h.pending -= left
			orig.counter.pending -= left
			move(h, orig.counter, r.Amount)
			orig.back = orig.amount
			tx.toSeller = orig.counter == m.biller
		} else {
			if r.Amount > left {
				return InvalidAmount
			}
			move(m.settle, h, r.Amount)
			orig.back += r.Amount
		}
		tx.amount = r.Amount
	case OpReversal:
		orig, ok := m.txs[r.Original]
		switch {
		case !ok:
			m.txs[r.Original] = &modelTx{tomb: true}
			return OriginalNotFound
		case orig.tomb:
			return OriginalNotFound
		case !orig.approved:
			return Approved
		case !orig.kind.givesBack() && orig.kind != txHold && !orig.kind.movesMoney(), orig.toSeller:
			return InvalidTransaction
		case orig.holder != h:
			return OriginalNotFound
		}
		target := orig.amount - r.Actual
		if orig.back >= target {
			return Approved
		}
		n := target - orig.back
		switch orig.kind {
		case txHold:
			h.pending -= n
			orig.counter.pending -= n
		case txDeposit:
			if h.available() < n {
				return InsufficientFunds
			}
			move(h, m.funding, n)
		case txTransfer, txPayment:
			if orig.counter != m.biller && orig.counter.available() < n {
				return InsufficientFunds
			}
			move(orig.counter, h, n)
		default:
			move(m.settle, h, n)
		}
		orig.back = target
		tx.amount = n
	default:
		m.t.Fatalf("model: no rule for %s", r.Op)
	}
	return Approved
}

// checkBooks compares every account with the model and checks the invariants on the committed
// state; with verify, Verify as well.
func (m *model) checkBooks(verify bool) {
	m.t.Helper()
	accts, err := m.s.Accounts()
	if err != nil {
		m.t.Fatal(err)
	}
	var debits, credits, dp, cp int64
	byID := make(map[uint64]Account)
	for _, a := range accts {
		debits += a.DebitsPosted
		credits += a.CreditsPosted
		dp += a.DebitsPending
		cp += a.CreditsPending
		byID[a.ID] = a
		if a.Type.spends() && a.Available() < 0 {
			m.t.Fatalf("account %d beyond its limits: %+v", a.ID, a)
		}
	}
	if debits != credits || dp != cp {
		m.t.Fatalf("Σ debits %d, credits %d, pending %d, %d", debits, credits, dp, cp)
	}
	all := append([]*modelAcct{m.settle, m.funding, m.biller}, m.holders...)
	for _, ma := range all {
		a := byID[ma.id]
		pending := a.DebitsPending
		if ma == m.settle || ma == m.biller {
			pending = a.CreditsPending // the other side of holds and escrows
		}
		if a.Balance() != ma.bal || pending != ma.pending {
			m.t.Fatalf("account %d: balance %d pending %d/%d, model %d pending %d",
				ma.id, a.Balance(), a.DebitsPending, a.CreditsPending, ma.bal, ma.pending)
		}
	}
	if verify {
		mustVerify(m.t, m.s)
	}
}
