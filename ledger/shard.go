package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a shard.
type Options struct {
	Dir        string                // badger directory (created if missing)
	Region     string                // e.g. "beijing"; used in logs and metric labels
	Logger     *slog.Logger          // nil → slog.Default()
	Registerer prometheus.Registerer // nil → no metrics registered
	MaxBatch   int                   // max requests per commit, 1..16384; default 256
	// Clock is the shard's clock, default time.Now: read by the writer once per batch, and once
	// by Open for the settlement date of a shard's first window (its UTC date).
	Clock func() time.Time

	// HoldTTL is how long a pre-authorisation's hold stays pending before the sweep releases
	// it: a hold placed by a batch with clock value t expires at t + HoldTTL. Default 7 days.
	HoldTTL time.Duration

	// SweepEvery is how often an idle writer wakes up to release expired holds; a busy one
	// sweeps before each batch. Default 1 s.
	SweepEvery time.Duration

	// Currency is the ISO 4217 numeric currency the shard books (its well-known accounts are in
	// it, and every account must be). Fixed when the shard is created: 0 means 156 (CNY) for a
	// new shard and "whatever it was created with" for an existing one.
	Currency uint16

	// commitFault, when set (by tests in this package), is called just before each commit; an
	// error stands in for a failed badger commit.
	commitFault func() error
}

const (
	defaultMaxBatch  = 256
	maxMaxBatch      = 1 << 14
	defaultCurrency  = 156     // CNY
	queueFactor      = 4       // the queue holds this many full batches
	maxCachedEntries = 1 << 20 // the writer drops its cache beyond this many accounts or PANs
	journalPage      = 1024    // Journal's page size when limit ≤ 0
	defaultHoldTTL   = 7 * 24 * time.Hour
	defaultSweep     = time.Second
	maxSweep         = 64 // expired holds released per batch at most; the next batch goes on
)

// Shard is one regional ledger: its accounts, journal and idempotency records, in one badger
// directory, changed only by its writer goroutine. All methods are safe for concurrent use.
type Shard struct {
	opts    Options
	region  string
	log     *slog.Logger
	clock   func() time.Time
	db      *badger.DB
	metrics *metrics

	// mu guards closed. Do holds it shared while enqueueing so that Close, which takes it
	// exclusively, knows no sender is left before it closes the queue. Readers hold it shared
	// while they use db, so Close does not close badger under them.
	mu     sync.RWMutex
	closed bool
	queue  chan *envelope

	closeOnce  sync.Once
	closeErr   error
	writerDone chan struct{}

	envelopes sync.Pool

	requests, batches, commits, lastSeq atomic.Uint64
	window                              atomic.Uint64 // packWindow of the committed window

	// Writer-owned; nothing else touches these.
	st     *state
	batch  *batch
	known  map[TxID]txRecord
	key    []byte // scratch key for reads
	arena  []byte // keys and values of the batch being written
	broken error  // set after a failed commit until the state is reloaded from badger

	// sweepAt is a lower bound on the earliest expiry in the hold index: a batch whose clock
	// value is below it has nothing to sweep and skips reading the index. 0 means unknown,
	// math.MaxInt64 that no hold is pending.
	sweepAt int64
	expired []holdKey // scratch: the holds the next batch releases first
}

// envelope carries one command to the writer and its outcome back. It is pooled: Do returns it to
// the pool after reading the outcome, unless the caller gave up, in which case the writer may
// still write to it and it is left to the garbage collector.
type envelope struct {
	cmd  command
	ctx  context.Context
	skip error // set by the writer before apply: the caller has gone, or loading failed
	out  outcome
	done chan struct{} // capacity 1: the writer never blocks on a reply
}

// Open opens (or creates) the shard stored in o.Dir and starts its writer.
func Open(o Options) (*Shard, error) {
	var bad []error
	if o.Dir == "" {
		bad = append(bad, errors.New("ledger: Options.Dir is empty"))
	}
	if o.Region == "" {
		bad = append(bad, errors.New("ledger: Options.Region is empty"))
	}
	if o.MaxBatch < 0 || o.MaxBatch > maxMaxBatch {
		bad = append(bad, fmt.Errorf("ledger: Options.MaxBatch is %d, want 1..%d (0 for %d)",
			o.MaxBatch, maxMaxBatch, defaultMaxBatch))
	}
	if o.HoldTTL < 0 {
		bad = append(bad, fmt.Errorf("ledger: Options.HoldTTL is %v, want > 0 (0 for %v)", o.HoldTTL, defaultHoldTTL))
	}
	if o.SweepEvery < 0 {
		bad = append(bad, fmt.Errorf("ledger: Options.SweepEvery is %v, want > 0 (0 for %v)", o.SweepEvery, defaultSweep))
	}
	if len(bad) > 0 {
		return nil, errors.Join(bad...)
	}
	if o.HoldTTL == 0 {
		o.HoldTTL = defaultHoldTTL
	}
	if o.SweepEvery == 0 {
		o.SweepEvery = defaultSweep
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = defaultMaxBatch
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	log := o.Logger.With("component", "ledger", "region", o.Region)
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	db, err := badger.Open(badgerOptions(o.Dir, log))
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", o.Dir, err)
	}
	s := &Shard{
		opts:       o,
		region:     o.Region,
		log:        log,
		clock:      o.Clock,
		db:         db,
		queue:      make(chan *envelope, queueFactor*o.MaxBatch),
		writerDone: make(chan struct{}),
		st:         newState(),
		batch:      newBatch(),
		known:      make(map[TxID]txRecord),
	}
	s.envelopes.New = func() any { return &envelope{done: make(chan struct{}, 1)} }

	currency := o.Currency
	if currency == 0 {
		currency = defaultCurrency
	}
	if err := loadMeta(db, s.st, currency, utcDate(o.Clock())); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", o.Dir, err)
	}
	if o.Currency != 0 && o.Currency != s.st.currency {
		db.Close()
		return nil, fmt.Errorf("ledger: open %s: Options.Currency is %d but the shard books %d",
			o.Dir, o.Currency, s.st.currency)
	}
	if s.metrics, err = newMetrics(o.Registerer, o.Region); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: register metrics for region %s: %w", o.Region, err)
	}
	if s.sweepAt, err = firstExpiry(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", o.Dir, err)
	}
	s.lastSeq.Store(s.st.seq)
	s.window.Store(packWindow(s.st.window))
	s.metrics.setSeq(s.st.seq)
	log.Info("ledger shard open", "dir", o.Dir, "seq", s.st.seq, "next_account", s.st.nextAcct,
		"currency", s.st.currency, "window", s.st.window.window, "settle_date", s.st.window.date)
	go s.run()
	return s, nil
}

// Region returns the shard's region name.
func (s *Shard) Region() string { return s.region }

// Close stops accepting requests (later calls return ErrClosed), commits and answers everything
// already queued, and closes badger. It is safe to call more than once and from several
// goroutines; every call returns the first call's result.
func (s *Shard) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.queue)
		s.mu.Unlock()
		<-s.writerDone

		s.mu.Lock() // wait for readers still inside db
		s.closeErr = s.db.Close()
		s.mu.Unlock()
		s.metrics.unregister()
		s.log.Info("ledger shard closed", "seq", s.lastSeq.Load(), "err", s.closeErr)
	})
	return s.closeErr
}

// Do submits one request to the writer and waits for its outcome or ctx. An error means the
// outcome is unknown to the caller (ErrClosed, ctx's error, or a commit failure wrapped in
// ErrCommit); the caller answers 96 and a retry with the same ID is safe.
//
// An OpAdvice books its purchase forced (KindStandIn), on a blocked card or below zero too,
// unless the purchase's TxID already has an approved booking (replayed, 00) or a reversal got
// there first (00, nothing booked); a declined purchase under the TxID does not stop it. A closed
// or unknown card is 14 and an amount or currency that does not fit is 13, both booking nothing.
// The package documentation has the full rules.
func (s *Shard) Do(ctx context.Context, r *Request) (Result, error) {
	if r == nil || !r.Op.channelOp() {
		s.metrics.request(0, InvalidTransaction)
		return Result{Code: InvalidTransaction}, nil
	}
	e := s.envelopes.Get().(*envelope)
	e.cmd.op = r.Op
	e.cmd.req = *r
	out, err := s.submit(ctx, e)
	return out.res, err
}

// OpenAccount opens an account and returns its id. A PAN must not be bound yet (ErrPANBound), nor
// an account number (ErrNumberBound); cards, debit and credit-line accounts always get
// DebitsMustNotExceedCredits (a credit line: beyond its credit limit).
func (s *Shard) OpenAccount(ctx context.Context, a AccountSpec) (uint64, error) {
	e := s.envelopes.Get().(*envelope)
	e.cmd.op = opOpenAccount
	e.cmd.spec = a
	out, err := s.submit(ctx, e)
	return out.acct, err
}

// SetStatus blocks, unblocks or closes an ordinary account. Closing needs a zero balance.
func (s *Shard) SetStatus(ctx context.Context, id uint64, st Status) error {
	e := s.envelopes.Get().(*envelope)
	e.cmd.op = opSetStatus
	e.cmd.acct = id
	e.cmd.status = st
	_, err := s.submit(ctx, e)
	return err
}

// SetLimits replaces an ordinary account's limits: the credit limit (credit lines only; it may not
// drop below what the account already uses of it) and the per-day amount and count limits, which
// channels meet as 61 and 65. Channels cannot reach it.
func (s *Shard) SetLimits(ctx context.Context, id uint64, l Limits) error {
	e := s.envelopes.Get().(*envelope)
	e.cmd.op = opSetLimits
	e.cmd.acct = id
	e.cmd.limits = l
	_, err := s.submit(ctx, e)
	return err
}

// submit enqueues e and waits for the writer's answer.
func (s *Shard) submit(ctx context.Context, e *envelope) (outcome, error) {
	if err := ctx.Err(); err != nil {
		s.release(e)
		return outcome{}, err
	}
	e.ctx = ctx
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		s.release(e)
		return outcome{}, ErrClosed
	}
	select {
	case s.queue <- e:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		s.release(e)
		return outcome{}, ctx.Err()
	}
	select {
	case <-e.done:
		out := e.out
		s.release(e)
		return out, out.err
	case <-ctx.Done():
		select {
		case <-e.done: // answered just in time: a known outcome beats an unknown one
			out := e.out
			s.release(e)
			return out, out.err
		default:
			return outcome{}, ctx.Err() // the writer still owns e
		}
	}
}

func (s *Shard) release(e *envelope) {
	e.cmd = command{}
	e.ctx = nil
	e.skip = nil
	e.out = outcome{}
	s.envelopes.Put(e)
}

// Stats returns the shard's counters.
func (s *Shard) Stats() Stats {
	return Stats{
		Requests: s.requests.Load(),
		Batches:  s.batches.Load(),
		Commits:  s.commits.Load(),
		LastSeq:  s.lastSeq.Load(),
	}
}

// run is the writer goroutine: it blocks for the first request, drains whatever else is queued
// up to MaxBatch without waiting, and processes that as one batch. Under load batches fill up;
// when idle a lone request is committed at once.
func (s *Shard) run() {
	defer close(s.writerDone)
	envs := make([]*envelope, 0, s.opts.MaxBatch)
	tick := time.NewTicker(s.opts.SweepEvery)
	defer tick.Stop()
	for {
		var e *envelope
		var ok bool
		select {
		case e, ok = <-s.queue:
		case <-tick.C:
			if s.sweepAt != math.MaxInt64 { // some hold is pending: an idle writer still releases it
				s.process(nil)
			}
			continue
		}
		if !ok {
			return
		}
		envs = append(envs, e)
	drain:
		for len(envs) < s.opts.MaxBatch {
			select {
			case e, ok := <-s.queue:
				if !ok {
					break drain
				}
				envs = append(envs, e)
			default:
				break drain
			}
		}
		s.process(envs)
		clear(envs) // the envelopes now belong to their callers again
		envs = envs[:0]
	}
}

// process handles one batch: load, apply, commit, then answer.
func (s *Shard) process(envs []*envelope) {
	now := s.clock().UnixNano()
	if len(envs) > 0 {
		s.batches.Add(1)
		s.requests.Add(uint64(len(envs)))
		s.metrics.batch(len(envs))
	}

	for _, e := range envs {
		// A caller that has gone no longer waits for the outcome; skipping its request saves
		// work under overload, and the outcome was unknown to it either way.
		e.skip = e.ctx.Err()
	}
	if s.broken != nil {
		s.reload()
	}
	clear(s.known)
	s.expired = s.expired[:0]
	if s.broken == nil && now >= s.sweepAt {
		s.expired = s.loadExpired(now, s.expired, s.known)
	}
	if len(envs) == 0 && len(s.expired) == 0 {
		return
	}
	if s.broken == nil {
		s.loadBatch(envs, s.known)
	}
	s.commitGroup(envs, now, s.expired)

	for _, e := range envs {
		if e.skip != nil {
			e.out = outcome{err: e.skip}
		}
		if e.cmd.op.channelOp() {
			code := e.out.res.Code
			if e.out.err != nil {
				code = SystemError
			}
			s.metrics.request(e.cmd.op, code)
		}
		e.done <- struct{}{} // the last touch: e belongs to its caller from here on
	}
	if len(s.st.accounts) > maxCachedEntries || len(s.st.cards) > maxCachedEntries || len(s.st.owners) > maxCachedEntries {
		s.trimCache()
	}
}

// commitGroup releases the expired holds, applies the group's live commands and commits the
// result in one badger transaction. If badger finds the transaction too big, it splits the group
// in two and commits the halves in order (the expiries with the first), which gives the same
// outcomes as two separate batches.
func (s *Shard) commitGroup(envs []*envelope, now int64, expired []holdKey) {
	if s.broken != nil {
		fail(envs, s.broken)
		return
	}
	b := s.batch
	b.reset(s.st, s.known, now, int64(s.opts.HoldTTL))
	for _, h := range expired {
		b.expire(h)
	}
	for _, e := range envs {
		if e.skip == nil {
			e.out = b.apply(&e.cmd)
		}
	}
	if err := b.check(); err != nil {
		s.sweepAt = 0 // the holds this batch would have released are still due
		s.log.Error("ledger: batch not committed", "err", err)
		fail(envs, fmt.Errorf("%w: %w", ErrCommit, err))
		return
	}
	if b.empty() {
		return // every answer came from committed state
	}
	start := time.Now()
	err := s.writeBatch(b)
	if errors.Is(err, badger.ErrTxnTooBig) && len(envs) > 1 {
		s.log.Debug("ledger: batch too big for one transaction, splitting", "requests", len(envs))
		h := len(envs) / 2
		s.commitGroup(envs[:h], now, expired) // each half applies afresh and overwrites the answers
		s.commitGroup(envs[h:], now, nil)
		return
	}
	if err != nil {
		s.log.Error("ledger: commit failed", "requests", len(envs), "err", err)
		// The rest of this batch (the other half of a split) fails too; the next batch first
		// reloads the state from badger.
		s.broken = fmt.Errorf("%w: %w", ErrCommit, err)
		fail(envs, s.broken)
		return
	}
	s.metrics.commit(time.Since(start))
	for _, h := range b.newHolds {
		s.sweepAt = min(s.sweepAt, h.expires)
	}
	b.fold()
	s.commits.Add(1)
	s.lastSeq.Store(s.st.seq)
	s.window.Store(packWindow(s.st.window))
	s.metrics.setSeq(s.st.seq)
}

// fail answers every live command of the group with err. Admin refusals are replaced too: they
// were decided against state that was never committed.
func fail(envs []*envelope, err error) {
	for _, e := range envs {
		if e.skip == nil {
			e.out = outcome{err: err}
		}
	}
}

// reload discards the writer's cache and reads the counters and well-known accounts again, so
// that after a failed commit memory never runs ahead of (or behind) what badger holds, whether the
// failed transaction landed or not. On success the shard takes requests again; otherwise it stays
// broken and every batch retries the reload first.
func (s *Shard) reload() {
	st := newState()
	if err := loadMeta(s.db, st, s.st.currency, s.st.window.date); err != nil {
		s.log.Error("ledger: reload after failed commit", "err", err)
		return
	}
	s.st = st
	s.broken = nil
	s.sweepAt = 0 // read the hold index afresh
	s.lastSeq.Store(st.seq)
	s.window.Store(packWindow(st.window))
	s.metrics.setSeq(st.seq)
}

// trimCache drops the cached accounts and bindings except the well-known accounts; they are read
// from badger again on the next miss.
func (s *Shard) trimCache() {
	wk := [...]*Account{s.st.accounts[SettlementPayableID], s.st.accounts[FundingID], s.st.accounts[SuspenseID]}
	s.st.accounts = make(map[uint64]*Account)
	s.st.cards = make(map[string]uint64)
	s.st.owners = make(map[string]uint64)
	for _, a := range wk {
		s.st.accounts[a.ID] = a
	}
}
