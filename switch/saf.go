package switching

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/durable"
	"github.com/prometheus/client_golang/prometheus"
)

// Store-and-forward (SAF): advices the switch owes a destination (reversal
// advices 0420, stand-in completion advices 0220) are written to disk before
// anyone is told they were accepted, and sent until the destination
// acknowledges them, in the order they were queued, however long it is down
// and across restarts. Parity target: jPOS-EE's SAF (persistent queue, retry
// response codes, max retransmissions, expiry, the repeat flag on
// retransmissions, depth and attempt metrics).
//
// Badger keys (one directory per SAF):
//
//	m/dialect                 name of the dialect the messages are stored in
//	q/<dest> 0x00 <seq BE u64>  a queued advice; big-endian, so a prefix scan
//	                          of a destination is in the order of Enqueue
//	d/<dest> 0x00 <seq BE u64>  a dead letter: the queued record moved aside
//
// A destination name never holds a NUL, so no destination's prefix is a
// prefix of another's. Values are sealed like the ledger's records: a version
// byte, the fields, and a CRC-32C of everything before it, so that a torn or
// corrupted value is moved aside and reported, never sent.
//
//	queued:      v1 | attempts u32 | enqueued ns i64 | next attempt ns i64 | packed message | crc u32
//	dead letter: v1 | reason u8 | dead at ns i64 | the queued value as it was (even corrupt) | crc u32
//	m/dialect:   v1 | name | crc u32
//
// The stored message is the advice as enqueued (0420). The repeat flag is not
// stored: attempt 1 sends the MTI as stored, every later attempt sends it
// with the last digit odd (0421, 0221), so an advice queued before a restart
// still goes out as a repeat after it.

// Errors of the SAF.
var (
	// ErrSAFClosed is returned by Enqueue and the admin views after Close.
	ErrSAFClosed = errors.New("switch: saf: closed")
	// ErrSAFUnknownDestination is returned for a destination the SAF was not
	// opened with: nothing is queued for it.
	ErrSAFUnknownDestination = errors.New("switch: saf: unknown destination")
	// ErrSAFNotAdvice is returned by Enqueue for a message that is not an
	// advice (function digit 2: 0120, 0220, 0420). A request wants an answer
	// now; store-and-forward would answer it too late.
	ErrSAFNotAdvice = errors.New("switch: saf: not an advice")
)

// SAFOptions configures a SAF.
type SAFOptions struct {
	// Dir is the SAF's own badger directory, created when missing.
	Dir string
	// Dialect is the dialect messages are stored and sent in (the switch's:
	// codec.ISO87ASCII). A directory keeps the dialect it was created with.
	Dialect *codec.Dialect
	// Destinations by name. Each has its own queue and delivery goroutine.
	Destinations map[string]Destination
	// BackoffMin and BackoffMax bound the wait after an unacknowledged
	// attempt; defaults 1s and 5m. After the n-th failed attempt the wait is
	// drawn uniformly from [BackoffMin, min(BackoffMax, BackoffMin·2^(n-1))].
	BackoffMin, BackoffMax time.Duration
	// MaxAttempts moves an entry to the dead letters after that many
	// unacknowledged attempts (the first send included); 0 means no limit.
	MaxAttempts int
	// MaxAge moves an entry to the dead letters once it has been queued that
	// long without an acknowledgement; 0 means no limit.
	MaxAge time.Duration
	// RetryCodes are the field 39 answers that mean "not taken, send it
	// again"; default 91 and 96. Any other answer, approved or not (00, 25),
	// is the acknowledgement: the destination has the advice.
	RetryCodes []string
	// Timeout bounds one attempt; default 10s.
	Timeout time.Duration
	// Logger defaults to slog.Default(). PANs are masked.
	Logger *slog.Logger
	// Registerer, when set, gets the SAF's metrics; Close unregisters them.
	Registerer prometheus.Registerer
	// Clock gives enqueue times, schedules and ages; default time.Now.
	Clock func() time.Time

	// poll is the longest a worker sleeps without looking at its queue again:
	// the cadence of the oldest-age gauge, and how soon a worker notices a
	// Clock a test has moved. Default safPoll.
	poll time.Duration
}

const (
	safDefaultBackoffMin = time.Second
	safDefaultBackoffMax = 5 * time.Minute
	safDefaultTimeout    = 10 * time.Second
	safPoll              = 5 * time.Second
	// safMaxMessage bounds a stored message; ISO 8583 messages are a few
	// hundred bytes, and front's frames are bounded far below this.
	safMaxMessage = 64 << 10
)

// SAF is a durable store-and-forward queue of advices, one queue per
// destination, each delivered in order by its own goroutine. All methods are
// safe for concurrent use.
type SAF struct {
	db      *badger.DB
	dialect *codec.Dialect
	log     *slog.Logger
	clock   func() time.Time
	jitter  func(n int64) int64 // uniform in [0, n)
	metrics *safMetrics
	queues  map[string]*safQueue

	backoffMin, backoffMax time.Duration
	maxAttempts            uint32
	maxAge                 time.Duration
	retry                  [][2]byte
	timeout                time.Duration
	poll                   time.Duration

	// ctx is cancelled by Close: it stops the workers and cuts short an
	// attempt in flight.
	ctx     context.Context
	stop    context.CancelFunc
	workers sync.WaitGroup

	// mu guards closed. Enqueue and the admin views hold it shared while they
	// use db; Close takes it exclusively, so none is left when badger closes.
	mu        sync.RWMutex
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// safQueue is one destination's queue.
type safQueue struct {
	name   string
	dest   Destination
	prefix []byte // q/<name>\x00
	wake   chan struct{}
	seq    atomic.Uint64 // the last sequence number handed out
	depth  atomic.Int64

	depthGauge, ageGauge    prometheus.Gauge
	acked, retried, errored prometheus.Counter
	dead                    [safReasons]prometheus.Counter
	// Worker-owned: the head's message and its answer, the head's value as
	// read, and its value as rewritten (apart, since a record's message
	// aliases the value it was read from).
	req, resp *codec.Message
	buf, out  []byte
}

// safReason is why an entry became a dead letter.
type safReason uint8

const (
	safExpired safReason = iota + 1
	safMaxAttempts
	safCorrupt
	safReasons
)

func (r safReason) String() string {
	switch r {
	case safExpired:
		return "expired"
	case safMaxAttempts:
		return "max_attempts"
	case safCorrupt:
		return "corrupt"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// OpenSAF opens (or creates) the SAF stored in o.Dir and starts one delivery
// goroutine per destination. Entries left by an earlier run are delivered
// first.
func OpenSAF(o SAFOptions) (*SAF, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	log := o.Logger.With("component", "saf")
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("switch: saf: %w", err)
	}
	db, err := badger.Open(safBadgerOptions(o.Dir, log))
	if err != nil {
		return nil, fmt.Errorf("switch: saf: open %s: %w", o.Dir, err)
	}
	if err := safCheckDialect(db, o.Dialect.Name()); err != nil {
		db.Close()
		return nil, fmt.Errorf("switch: saf: open %s: %w", o.Dir, err)
	}
	m, err := newSAFMetrics(o.Registerer)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("switch: saf: register metrics: %w", err)
	}
	q := &SAF{
		db: db, dialect: o.Dialect, log: log, clock: o.Clock, jitter: rand.Int64N, metrics: m,
		queues:     make(map[string]*safQueue, len(o.Destinations)),
		backoffMin: o.BackoffMin, backoffMax: o.BackoffMax, maxAttempts: uint32(o.MaxAttempts),
		maxAge: o.MaxAge, timeout: o.Timeout, poll: o.poll,
	}
	for _, rc := range o.RetryCodes {
		q.retry = append(q.retry, [2]byte{rc[0], rc[1]})
	}
	for name, d := range o.Destinations {
		q.queues[name] = newSAFQueue(name, d, o.Dialect, m)
	}
	if err := q.load(); err != nil {
		m.unregister()
		db.Close()
		return nil, fmt.Errorf("switch: saf: open %s: %w", o.Dir, err)
	}
	q.ctx, q.stop = context.WithCancel(context.Background())
	for _, w := range q.queues {
		q.workers.Add(1)
		go q.run(w)
	}
	return q, nil
}

// normalize checks o, reporting every problem at once, and fills defaults.
func (o *SAFOptions) normalize() error {
	var bad []error
	if o.Dir == "" {
		bad = append(bad, errors.New("switch: SAFOptions.Dir is empty"))
	}
	if o.Dialect == nil {
		bad = append(bad, errors.New("switch: SAFOptions.Dialect is nil"))
	}
	if len(o.Destinations) == 0 {
		bad = append(bad, errors.New("switch: SAFOptions.Destinations is empty"))
	}
	names := make([]string, 0, len(o.Destinations))
	for name := range o.Destinations {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" || strings.IndexByte(name, 0) >= 0 {
			bad = append(bad, fmt.Errorf("switch: SAFOptions.Destinations: name %q is empty or holds a NUL byte", name))
		}
		if o.Destinations[name] == nil {
			bad = append(bad, fmt.Errorf("switch: SAFOptions.Destinations[%q] is nil", name))
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"BackoffMin", o.BackoffMin}, {"BackoffMax", o.BackoffMax}, {"MaxAge", o.MaxAge}, {"Timeout", o.Timeout}} {
		if f.v < 0 {
			bad = append(bad, fmt.Errorf("switch: SAFOptions.%s is %v, want ≥ 0 (0 for the default)", f.name, f.v))
		}
	}
	if o.MaxAttempts < 0 || int64(o.MaxAttempts) > int64(^uint32(0)) {
		bad = append(bad, fmt.Errorf("switch: SAFOptions.MaxAttempts is %d, want ≥ 0 (0 for no limit)", o.MaxAttempts))
	}
	for _, rc := range o.RetryCodes {
		if len(rc) != 2 {
			bad = append(bad, fmt.Errorf("switch: SAFOptions.RetryCodes: %q is not a two-character response code", rc))
		}
	}
	if o.BackoffMin == 0 {
		o.BackoffMin = safDefaultBackoffMin
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = max(safDefaultBackoffMax, o.BackoffMin)
	}
	if o.BackoffMin > 0 && o.BackoffMax < o.BackoffMin {
		bad = append(bad, fmt.Errorf("switch: SAFOptions.BackoffMax (%v) is below BackoffMin (%v)", o.BackoffMax, o.BackoffMin))
	}
	if len(bad) > 0 {
		return errors.Join(bad...)
	}
	if len(o.RetryCodes) == 0 {
		o.RetryCodes = []string{codec.RCIssuerUnavailable, codec.RCSystemError}
	}
	if o.Timeout == 0 {
		o.Timeout = safDefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.poll <= 0 {
		o.poll = safPoll
	}
	return nil
}

func newSAFQueue(name string, d Destination, dialect *codec.Dialect, m *safMetrics) *safQueue {
	w := &safQueue{
		name: name, dest: d, prefix: safPrefix(safPrefixQueue, name), wake: make(chan struct{}, 1),
		depthGauge: m.depth.WithLabelValues(name),
		ageGauge:   m.oldestAge.WithLabelValues(name),
		acked:      m.attempts.WithLabelValues(name, "acked"),
		retried:    m.attempts.WithLabelValues(name, "retry"),
		errored:    m.attempts.WithLabelValues(name, "error"),
		req:        codec.NewMessage(dialect),
		resp:       codec.NewMessage(dialect),
	}
	for r := safExpired; r < safReasons; r++ {
		w.dead[r] = m.dead.WithLabelValues(name, r.String())
	}
	return w
}

// load counts what an earlier run left in each queue and finds the last
// sequence number used, queued or dead. Entries of destinations this SAF was
// not opened with stay where they are, and are reported.
func (q *SAF) load() error {
	unknown := map[string]int{}
	return q.db.View(func(txn *badger.Txn) error {
		for _, kind := range []string{safPrefixQueue, safPrefixDead} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(kind)})
			for it.Rewind(); it.Valid(); it.Next() {
				key := it.Item().Key()
				i := bytes.IndexByte(key[len(kind):], 0)
				if i < 0 {
					continue // not a destination's key; a queue never sees it
				}
				name := key[len(kind) : len(kind)+i]
				w := q.queues[string(name)]
				if w == nil {
					if kind == safPrefixQueue {
						unknown[string(name)]++
					}
					continue
				}
				if kind == safPrefixQueue {
					w.depth.Add(1)
				}
				if seq, ok := safSeq(len(kind)+i+1, key); ok && seq > w.seq.Load() {
					w.seq.Store(seq)
				}
			}
			it.Close()
		}
		for _, w := range q.queues {
			w.depthGauge.Set(float64(w.depth.Load()))
			if n := w.depth.Load(); n > 0 {
				q.log.Info("saf: queued advices from an earlier run", "dest", w.name, "depth", n)
			}
		}
		for name, n := range unknown {
			q.log.Warn("saf: advices queued for a destination that is not configured stay queued",
				"dest", name, "depth", n)
		}
		return nil
	})
}

// Enqueue stores m, an advice in the SAF's dialect (or one of the same
// layout), for delivery to dest. When it returns nil the advice is on disk.
func (q *SAF) Enqueue(dest string, m *codec.Message) error {
	w := q.queues[dest]
	if w == nil {
		return fmt.Errorf("%w: %q", ErrSAFUnknownDestination, dest)
	}
	mti, ok := m.MTI()
	if !ok {
		return fmt.Errorf("switch: saf: enqueue to %s: %w", dest, codec.ErrMTI)
	}
	if mti[2] != '2' {
		return fmt.Errorf("%w: MTI %s", ErrSAFNotAdvice, mti[:])
	}
	msg, err := q.pack(m)
	if err != nil {
		return fmt.Errorf("switch: saf: enqueue to %s: %w", dest, err)
	}
	if len(msg) > safMaxMessage {
		return fmt.Errorf("switch: saf: enqueue to %s: message of %d bytes, limit %d", dest, len(msg), safMaxMessage)
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrSAFClosed
	}
	now := q.clock()
	key := safKey(w.prefix, w.seq.Add(1))
	val := appendSAFRecord(make([]byte, 0, safEntryFixed+len(msg)), &safRecord{enqueued: now, next: now, msg: msg})
	// Counted before the commit, so that the worker, which may deliver it the
	// moment it is committed, never takes the depth below zero.
	w.depth.Add(1)
	w.depthGauge.Inc()
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Set(key, val) }); err != nil {
		w.depth.Add(-1)
		w.depthGauge.Dec()
		return fmt.Errorf("switch: saf: enqueue to %s: %w", dest, err)
	}
	select {
	case w.wake <- struct{}{}:
	default: // already woken
	}
	return nil
}

// pack returns m in wire form in the SAF's dialect.
func (q *SAF) pack(m *codec.Message) ([]byte, error) {
	if d := m.Dialect(); d != q.dialect {
		if d == nil || !q.dialect.SameLayout(d) {
			name := "none"
			if d != nil {
				name = d.Name()
			}
			return nil, fmt.Errorf("message in dialect %s, the queue stores %s", name, q.dialect.Name())
		}
		// Same fields, another encoding: canonical content copies as is.
		c := codec.NewMessage(q.dialect)
		mti, _ := m.MTI()
		err := c.SetMTI(mti)
		m.Each(func(id int, v []byte) {
			if err == nil {
				err = c.Set(id, v)
			}
		})
		if err != nil {
			return nil, err
		}
		m = c
	}
	return m.Pack(nil)
}

// Depth is the number of advices queued for dest (0 for a destination the
// SAF does not have).
func (q *SAF) Depth(dest string) int {
	if w := q.queues[dest]; w != nil {
		return int(w.depth.Load())
	}
	return 0
}

// SAFEntry is one queued or dead-lettered advice, for people: the PAN is
// masked.
type SAFEntry struct {
	Seq         uint64
	MTI         string // as enqueued; every attempt after the first sends it as a repeat
	STAN        string // field 11
	PAN         string // field 2, masked
	Attempts    int
	Enqueued    time.Time
	Age         time.Duration // since Enqueued, by the SAF's clock
	NextAttempt time.Time
	// Reason is why a dead letter was moved aside: expired, max_attempts or
	// corrupt. In Pending, "corrupt" marks an entry that cannot be read; its
	// worker moves it aside when it reaches it.
	Reason string
	DeadAt time.Time // dead letters only
}

// Pending lists the advices queued for dest, in delivery order.
func (q *SAF) Pending(dest string) ([]SAFEntry, error) {
	return q.list(dest, safPrefixQueue, 0)
}

// PendingFirst is Pending for the first n advices at most (the oldest):
// an admin view after a long outage must not read the whole queue.
func (q *SAF) PendingFirst(dest string, n int) ([]SAFEntry, error) {
	return q.list(dest, safPrefixQueue, n)
}

// DeadLettersFirst is DeadLetters for the first n at most.
func (q *SAF) DeadLettersFirst(dest string, n int) ([]SAFEntry, error) {
	return q.list(dest, safPrefixDead, n)
}

// DeadLetters lists the advices for dest that were moved aside: expired,
// over MaxAttempts, or unreadable. They stay until someone deletes the
// directory's d/ keys; nothing is dropped silently.
func (q *SAF) DeadLetters(dest string) ([]SAFEntry, error) {
	return q.list(dest, safPrefixDead, 0)
}

// list reads the entries of dest of a kind, the first max of them (0: all).
func (q *SAF) list(dest, kind string, max int) ([]SAFEntry, error) {
	if q.queues[dest] == nil {
		return nil, fmt.Errorf("%w: %q", ErrSAFUnknownDestination, dest)
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return nil, ErrSAFClosed
	}
	prefix := safPrefix(kind, dest)
	now := q.clock()
	m := codec.NewMessage(q.dialect)
	var out []SAFEntry
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid() && (max == 0 || len(out) < max); it.Next() {
			var e SAFEntry
			e.Seq, _ = safSeq(len(prefix), it.Item().Key())
			err := it.Item().Value(func(val []byte) error {
				if kind == safPrefixDead {
					reason, at, inner, err := decodeSAFDead(val)
					if err != nil {
						e.Reason = safCorrupt.String()
						return nil
					}
					e.Reason, e.DeadAt, val = reason.String(), at, inner
				}
				rec, err := decodeSAFRecord(val)
				if err == nil {
					err = m.Unpack(rec.msg)
				}
				if err != nil {
					e.Reason = safCorrupt.String()
					return nil
				}
				e.MTI, e.STAN, e.PAN = m.MTIString(), string(m.Get(11)), codec.MaskPAN(m.Get(2))
				e.Attempts, e.Enqueued, e.NextAttempt = int(rec.attempts), rec.enqueued, rec.next
				e.Age = now.Sub(rec.enqueued)
				return nil
			})
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Close stops the workers and closes badger. An attempt in flight is
// cancelled; its entry stays, counted as attempted, and is due at once on the
// next OpenSAF. Enqueue and the admin views return ErrSAFClosed afterwards.
// Close is safe to call more than once; every call returns the first's result.
func (q *SAF) Close() error {
	q.closeOnce.Do(func() {
		q.mu.Lock() // waits for Enqueue and the views in progress
		q.closed = true
		q.mu.Unlock()
		q.stop()
		q.workers.Wait()
		q.closeErr = q.db.Close()
		q.metrics.unregister()
		q.log.Info("saf closed", "err", q.closeErr)
	})
	return q.closeErr
}

// run delivers w's queue until Close.
func (q *SAF) run(w *safQueue) {
	defer q.workers.Done()
	for q.ctx.Err() == nil {
		q.step(w)
	}
}

// step looks at the head of w's queue once: it sends it when it is due,
// moves it to the dead letters when it must not or cannot be sent, or sleeps
// until it is due. Head of line: nothing behind the head goes before it.
func (q *SAF) step(w *safQueue) {
	key, val, err := q.head(w)
	if err != nil {
		q.log.Error("saf: reading the queue failed", "dest", w.name, "err", err)
		w.sleep(q.ctx, q.poll)
		return
	}
	now := q.clock()
	if key == nil {
		w.ageGauge.Set(0)
		w.sleep(q.ctx, q.poll)
		return
	}
	rec, err := decodeSAFRecord(val)
	if err == nil {
		err = w.req.Unpack(rec.msg)
	}
	if err != nil {
		q.bury(w, key, val, nil, safCorrupt, now, err)
		return
	}
	age := now.Sub(rec.enqueued)
	w.ageGauge.Set(max(age, 0).Seconds())
	if q.maxAge > 0 && age >= q.maxAge {
		q.bury(w, key, val, &rec, safExpired, now, nil)
		return
	}
	if wait := rec.next.Sub(now); wait > 0 {
		if q.maxAge > 0 {
			wait = min(wait, q.maxAge-age)
		}
		w.sleep(q.ctx, min(wait, q.poll))
		return
	}
	q.attempt(w, key, &rec)
}

// head returns copies of the first key and value of w's queue, or a nil key
// when it is empty.
func (q *SAF) head(w *safQueue) (key, val []byte, err error) {
	err = q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: w.prefix})
		defer it.Close()
		it.Rewind()
		if !it.Valid() {
			return nil
		}
		key = it.Item().KeyCopy(nil)
		val, err = it.Item().ValueCopy(w.buf[:0])
		w.buf = val
		return err
	})
	return key, val, err
}

// attempt sends the head entry rec, stored under key and unpacked in w.req,
// and records the outcome.
func (q *SAF) attempt(w *safQueue, key []byte, rec *safRecord) {
	mti, _ := w.req.MTI()
	if rec.attempts > 0 {
		mti[3] |= 1 // 0420 → 0421, 0220 → 0221: a repeat of an advice sent before
		_ = w.req.SetMTI(mti)
	}
	w.resp.Reset(q.dialect)
	ctx, cancel := context.WithTimeout(q.ctx, q.timeout)
	err := w.dest.Exchange(ctx, w.req, w.resp)
	cancel()
	if err == nil {
		err = safCheckAnswer(mti, w.resp)
	}
	now := q.clock()
	var rc []byte
	if err == nil {
		rc = w.resp.Get(39)
		if !q.isRetry(rc) {
			w.acked.Inc()
			q.ack(w, key, rec, mti, rc)
			return
		}
	}

	rec.attempts++
	seq, _ := safSeq(len(w.prefix), key)
	// An attempt Close cut short counts (the next send is a repeat) but
	// neither backs off nor dead-letters: the host never had its chance.
	closing := err != nil && q.ctx.Err() != nil
	if err != nil {
		w.errored.Inc()
	} else {
		w.retried.Inc()
	}
	if !closing && q.maxAttempts > 0 && rec.attempts >= q.maxAttempts {
		q.bury(w, key, nil, rec, safMaxAttempts, now, err)
		return
	}
	wait := time.Duration(0)
	if !closing {
		wait = safBackoff(q.backoffMin, q.backoffMax, rec.attempts, q.jitter)
	}
	rec.next = now.Add(wait)
	attrs := []any{"dest", w.name, "seq", seq, "mti", string(mti[:]), "stan", string(w.req.Get(11)),
		"attempts", rec.attempts, "retry_in", wait}
	if err != nil {
		attrs = append(attrs, "err", err)
	} else {
		attrs = append(attrs, "rc", string(rc))
	}
	q.log.Warn("saf: advice not acknowledged", attrs...)
	w.out = appendSAFRecord(w.out[:0], rec)
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Set(key, w.out) }); err != nil {
		q.log.Error("saf: recording an attempt failed", "dest", w.name, "seq", seq, "err", err)
		w.sleep(q.ctx, max(wait, q.backoffMin))
	}
}

// safCheckAnswer reports an answer that is not one: the wrong MTI (a
// destination mismatch) or no response code.
func safCheckAnswer(sent [4]byte, resp *codec.Message) error {
	want, _ := codec.ResponseMTI(sent)
	if got, ok := resp.MTI(); !ok || got != want {
		return fmt.Errorf("switch: saf: answer MTI %q to %s, want %s", resp.MTIString(), sent[:], want[:])
	}
	if len(resp.Get(39)) != 2 {
		return errors.New("switch: saf: answer without a response code")
	}
	return nil
}

func (q *SAF) isRetry(rc []byte) bool {
	for _, r := range q.retry {
		if rc[0] == r[0] && rc[1] == r[1] {
			return true
		}
	}
	return false
}

// ack deletes an acknowledged entry.
func (q *SAF) ack(w *safQueue, key []byte, rec *safRecord, mti [4]byte, rc []byte) {
	seq, _ := safSeq(len(w.prefix), key)
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Delete(key) }); err != nil {
		// It will be sent again, as a repeat: the destination treats a repeat
		// of an advice it has as a duplicate.
		q.log.Error("saf: deleting an acknowledged advice failed", "dest", w.name, "seq", seq, "err", err)
		w.sleep(q.ctx, q.backoffMin)
		return
	}
	w.depth.Add(-1)
	w.depthGauge.Dec()
	if q.log.Enabled(q.ctx, slog.LevelDebug) {
		q.log.Debug("saf: advice acknowledged", "dest", w.name, "seq", seq, "mti", string(mti[:]),
			"stan", string(w.req.Get(11)), "pan", codec.MaskPAN(w.req.Get(2)), "rc", string(rc),
			"attempts", rec.attempts+1)
	}
}

// bury moves the entry under key to the dead letters, with rec re-sealed
// when given (its attempts are news) and the stored value val as it was
// otherwise (a corrupt one included: it is evidence).
func (q *SAF) bury(w *safQueue, key, val []byte, rec *safRecord, reason safReason, now time.Time, cause error) {
	if rec != nil {
		val = appendSAFRecord(nil, rec)
	}
	dead := appendSAFDead(nil, reason, now, val)
	deadKey := append([]byte(safPrefixDead), key[len(safPrefixQueue):]...)
	seq, _ := safSeq(len(w.prefix), key)
	err := q.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(deadKey, dead); err != nil {
			return err
		}
		return txn.Delete(key)
	})
	if err != nil {
		q.log.Error("saf: moving an advice to the dead letters failed", "dest", w.name, "seq", seq,
			"reason", reason.String(), "err", err)
		w.sleep(q.ctx, q.poll)
		return
	}
	w.depth.Add(-1)
	w.depthGauge.Dec()
	w.dead[reason].Inc()
	attrs := []any{"dest", w.name, "seq", seq, "reason", reason.String()}
	if rec != nil {
		// w.req holds the message: unpacked, so its fields can be named.
		attrs = append(attrs, "mti", w.req.MTIString(), "stan", string(w.req.Get(11)),
			"pan", codec.MaskPAN(w.req.Get(2)), "attempts", rec.attempts, "age", now.Sub(rec.enqueued))
	} else {
		// Unreadable: its content is not trusted enough to show, even masked.
		attrs = append(attrs, "bytes", len(val))
	}
	if cause != nil {
		attrs = append(attrs, "err", cause)
	}
	q.log.Error("saf: advice moved to the dead letters", attrs...)
}

// sleep waits d, or until Enqueue wakes the worker or Close stops it.
func (w *safQueue) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-w.wake:
	case <-t.C:
	}
}

// safBackoff is the wait after the attempts-th unacknowledged attempt: full
// jitter over [lo, ceiling], the ceiling doubling from lo with each attempt up
// to hi. The floor lo keeps a host that is down from being hammered; the
// jitter keeps many switches from retrying in step. jitter(n) is uniform in
// [0, n).
func safBackoff(lo, hi time.Duration, attempts uint32, jitter func(n int64) int64) time.Duration {
	ceiling := lo
	for i := uint32(1); i < attempts && ceiling < hi; i++ {
		if ceiling > hi/2 {
			ceiling = hi
			break
		}
		ceiling *= 2
	}
	ceiling = min(ceiling, hi)
	if ceiling <= lo {
		return lo
	}
	return lo + time.Duration(jitter(int64(ceiling-lo)+1))
}

// Keys.

const (
	safPrefixQueue = "q/"
	safPrefixDead  = "d/"
)

var safKeyDialect = []byte("m/dialect")

// safPrefix is the prefix of one destination's keys of a kind.
func safPrefix(kind, dest string) []byte {
	b := append(make([]byte, 0, len(kind)+len(dest)+1+8), kind...)
	b = append(b, dest...)
	return append(b, 0)
}

func safKey(prefix []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, len(prefix)+8), prefix...), seq)
}

// safSeq reads the sequence number of a key whose destination prefix is n
// bytes long.
func safSeq(n int, key []byte) (uint64, bool) {
	if len(key) != n+8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[n:]), true
}

// Records.

const (
	safRecordV1   = 1
	safCRCSize    = 4
	safEntryFixed = 1 + 4 + 8 + 8 + safCRCSize // + the message
	safDeadFixed  = 1 + 1 + 8 + safCRCSize     // + the queued value
)

var (
	safCastagnoli = crc32.MakeTable(crc32.Castagnoli)
	errSAFCorrupt = errors.New("switch: saf: corrupt record")
)

// safRecord is a queued advice.
type safRecord struct {
	attempts       uint32
	enqueued, next time.Time
	msg            []byte // packed; aliases the value it was decoded from
}

func appendSAFRecord(dst []byte, r *safRecord) []byte {
	start := len(dst)
	dst = append(dst, safRecordV1)
	dst = binary.BigEndian.AppendUint32(dst, r.attempts)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.enqueued.UnixNano()))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.next.UnixNano()))
	dst = append(dst, r.msg...)
	return safSeal(dst, start)
}

func decodeSAFRecord(b []byte) (safRecord, error) {
	p, err := safUnseal("queued advice", b, safEntryFixed)
	if err != nil {
		return safRecord{}, err
	}
	r := safRecord{
		attempts: binary.BigEndian.Uint32(p),
		enqueued: time.Unix(0, int64(binary.BigEndian.Uint64(p[4:]))),
		next:     time.Unix(0, int64(binary.BigEndian.Uint64(p[12:]))),
		msg:      p[20:],
	}
	if len(r.msg) == 0 {
		return safRecord{}, fmt.Errorf("%w: queued advice: no message", errSAFCorrupt)
	}
	return r, nil
}

func appendSAFDead(dst []byte, reason safReason, at time.Time, queued []byte) []byte {
	start := len(dst)
	dst = append(dst, safRecordV1, byte(reason))
	dst = binary.BigEndian.AppendUint64(dst, uint64(at.UnixNano()))
	dst = append(dst, queued...)
	return safSeal(dst, start)
}

func decodeSAFDead(b []byte) (reason safReason, at time.Time, queued []byte, err error) {
	p, err := safUnseal("dead letter", b, safDeadFixed)
	if err != nil {
		return 0, time.Time{}, nil, err
	}
	return safReason(p[0]), time.Unix(0, int64(binary.BigEndian.Uint64(p[1:]))), p[9:], nil
}

// safSeal appends the CRC-32C of b[start:] to b.
func safSeal(b []byte, start int) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], safCastagnoli))
}

// safUnseal checks the version byte and the CRC and returns the payload
// between them.
func safUnseal(what string, b []byte, min int) ([]byte, error) {
	if len(b) < min {
		return nil, fmt.Errorf("%w: %s: %d bytes, want at least %d", errSAFCorrupt, what, len(b), min)
	}
	if b[0] != safRecordV1 {
		return nil, fmt.Errorf("%w: %s: unknown version %d", errSAFCorrupt, what, b[0])
	}
	body := b[:len(b)-safCRCSize]
	if crc32.Checksum(body, safCastagnoli) != binary.BigEndian.Uint32(b[len(b)-safCRCSize:]) {
		return nil, fmt.Errorf("%w: %s: checksum mismatch", errSAFCorrupt, what)
	}
	return body[1:], nil
}

// safCheckDialect records the dialect of a new SAF directory, or checks that
// an existing one was created with the same: its messages would not unpack
// in another.
func safCheckDialect(db *badger.DB, name string) error {
	return db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(safKeyDialect)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return txn.Set(safKeyDialect, safSeal(append([]byte{safRecordV1}, name...), 0))
		}
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			p, err := safUnseal("m/dialect", b, 1+safCRCSize)
			if err != nil {
				return err
			}
			if string(p) != name {
				return fmt.Errorf("the directory stores messages in dialect %s, SAFOptions.Dialect is %s", p, name)
			}
			return nil
		})
	})
}

// safBadgerOptions is the badger configuration of a SAF: like a ledger
// shard's, smaller, since a SAF holds a few advices, not a journal. Each key
// has one writer at a time: Enqueue creates it, then only its destination's
// worker updates and deletes it. 8 MiB memtables keep badger's largest
// transaction above its 1 MiB value threshold; a stored advice (≤ 64 KiB)
// always stays in the LSM.
func safBadgerOptions(dir string, log *slog.Logger) badger.Options {
	return durable.Options(dir, durable.Sizes{MemTable: 8 << 20, ValueLogFile: 16 << 20, BlockCache: 4 << 20}, log)
}

// safMetrics are the SAF's collectors. Label children are resolved once per
// destination, in newSAFQueue.
type safMetrics struct {
	reg              prometheus.Registerer
	depth, oldestAge *prometheus.GaugeVec
	attempts, dead   *prometheus.CounterVec
	collectors       []prometheus.Collector
}

func newSAFMetrics(reg prometheus.Registerer) (*safMetrics, error) {
	m := &safMetrics{
		reg: reg,
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "junction", Subsystem: "switch", Name: "saf_depth",
			Help: "Advices queued for a destination, not yet acknowledged.",
		}, []string{"destination"}),
		oldestAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "junction", Subsystem: "switch", Name: "saf_oldest_age_seconds",
			Help: "Age of the oldest advice queued for a destination (0 when none).",
		}, []string{"destination"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "switch", Name: "saf_attempts_total",
			Help: "Advice deliveries by destination and result: acked, retry (a retry response code) or error (no answer).",
		}, []string{"destination", "result"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "switch", Name: "saf_dead_total",
			Help: "Advices moved to the dead letters, by destination and reason: expired, max_attempts or corrupt.",
		}, []string{"destination", "reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.depth, m.oldestAge, m.attempts, m.dead} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, err
		}
		m.collectors = append(m.collectors, c)
	}
	return m, nil
}

// unregister removes the collectors, so that a SAF can be opened again on the
// same registry after Close.
func (m *safMetrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
	m.collectors = nil
}
