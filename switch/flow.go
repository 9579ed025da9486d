package switching

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds the switch's admission primitives: token buckets that cap
// the rate of a channel or an identity, and an adaptive window that caps the
// requests outstanding at one destination. Both answer at once: a request
// they refuse is declined by the caller (91), never queued, so overload
// shows up as declines the channel can see and count instead of as a queue
// that grows until every request in it times out.

// Rate is a token-bucket limit: a bucket holds at most Burst tokens, gains
// PerSecond of them a second, and every admitted request spends one. A
// caller may send Burst requests at once after a quiet spell and PerSecond
// a second sustained.
type Rate struct {
	// PerSecond is the sustained rate; zero or less is no limit.
	PerSecond float64
	// Burst is how many requests may go at once. Below 1 it is taken as 1:
	// a bucket that cannot hold one token would refuse everything, which is
	// a job for configuration (no channel), not for a rate.
	Burst int
}

// maxSpan caps a bucket's interval, and its burst times its interval, at
// about 36 years. The next full time is at most now plus both, so for any
// monotonic clock below 2^62 ns (146 years) it stays clear of int64
// overflow. Only rates slower than one every few decades are affected.
const maxSpan = 1 << 60

// Bucket is a token bucket whose clock is an argument: tests drive it one
// nanosecond at a time, and the hot path reads the clock once per request
// for all the limits it checks. The zero Bucket has no limit.
//
// The state is a single number, the time at which the bucket will be full
// again (the "theoretical arrival time" of GCRA, the cell-rate algorithm of
// ATM networks, which is a token bucket written this way). At time now the
// bucket holds Burst - (full-now)/interval tokens, or Burst once full is
// past. Spending a token moves full one interval later; a token that would
// leave the bucket below empty, full more than Burst intervals ahead of now,
// is refused. Idle time needs no arithmetic: a bucket idle for a year is
// simply one whose full time is in the past, which is why a huge jump of the
// clock cannot overflow a token count or refill past Burst.
//
// One word of state makes Take a compare-and-swap instead of a lock. Take
// computes the new full time from the old one and now alone, and installs it
// only if the word still holds the old one; if another Take got there first
// it recomputes from the new value. So every admission is one atomic step
// from a state to its successor, as if under a mutex: no token is spent
// twice and none is lost. A CAS fails only because another succeeded, so
// some caller always makes progress, and a refusal writes nothing: an
// overloaded key's refusals read the word without fighting over it. Which of
// two racing callers gets the last token is arbitrary, as it would be with a
// mutex; no caller waits, so none waits longer than another.
type Bucket struct {
	full     atomic.Int64 // ns; when the bucket holds Burst tokens again
	interval int64        // ns per token; 0 is no limit
	span     int64        // Burst × interval: how far full may run ahead of now
}

// NewBucket returns a full bucket for r.
//
// The interval between tokens is a whole number of nanoseconds, rounded up:
// a rate whose interval is not whole (3 a second) is kept a hair below what
// was asked, less than one part in the interval (under 0.1% below a million
// a second), never above it.
func NewBucket(r Rate) *Bucket {
	b := new(Bucket)
	b.init(r)
	return b
}

func (b *Bucket) init(r Rate) {
	if !(r.PerSecond > 0) || math.IsInf(r.PerSecond, 1) {
		return // the zero Bucket: no limit; NaN lands here too
	}
	interval := int64(maxSpan)
	if f := math.Ceil(1e9 / r.PerSecond); f < maxSpan {
		interval = int64(f)
	}
	burst := int64(max(r.Burst, 1))
	span := int64(maxSpan)
	if burst <= maxSpan/interval {
		span = burst * interval
	}
	b.interval, b.span = interval, span
	// Full since the beginning of time, whatever origin the caller's clock
	// has.
	b.full.Store(math.MinInt64)
}

// Take spends a token if there is one and reports whether it did. now is a
// monotonic clock in nanoseconds, the same one for every call on the bucket:
// time.Since of a fixed start, say. Racing callers may pass values a little
// out of order (each read the clock before the other's Take); a now behind
// the latest one only makes the bucket look emptier, so a stale clock can
// refuse but never over-admit.
func (b *Bucket) Take(now int64) bool {
	if b.interval == 0 {
		return true
	}
	for {
		full := b.full.Load()
		next := max(full, now) + b.interval
		if next-now > b.span {
			return false
		}
		if b.full.CompareAndSwap(full, next) {
			return true
		}
	}
}

// Buckets holds one Bucket per key (a channel name, a client identity),
// each made with the same Rate on the key's first Take.
//
// The number of keys is bounded: the first maxKeys distinct keys get a
// bucket each, and every key after them shares a single overflow bucket of
// the same Rate. Sharing fails closed: identities beyond the bound get one
// identity's allowance between them, so a flood of made-up keys can neither
// grow memory nor buy itself fresh bursts. Keys are never forgotten (there
// is no idle eviction): channels come from configuration and identities
// from certificates the PKI issued, so maxKeys can be set above both.
// Overflowed counts what went to the shared bucket, for a metric and an
// alert.
//
// A key that has its bucket costs a read lock and a map lookup, no
// allocation. (A sync.Map would box the string key into an interface on
// every lookup: one allocation per request.)
type Buckets struct {
	rate    Rate
	maxKeys int

	mu   sync.RWMutex
	keys map[string]*Bucket

	overflow   Bucket
	overflowed atomic.Uint64
}

// NewBuckets returns an empty set of buckets of rate r holding at most
// maxKeys keys. With maxKeys zero or less every key shares the overflow
// bucket: one limit for all.
func NewBuckets(r Rate, maxKeys int) *Buckets {
	s := &Buckets{rate: r, maxKeys: max(maxKeys, 0), keys: make(map[string]*Bucket)}
	s.overflow.init(r)
	return s
}

// Take spends a token from key's bucket, making the bucket if key is new,
// and reports whether it did. now is as for Bucket.Take.
func (s *Buckets) Take(key string, now int64) bool {
	if s.overflow.interval == 0 {
		// No limit: no bucket to keep, and no key to count.
		return true
	}
	return s.bucket(key).Take(now)
}

func (s *Buckets) bucket(key string) *Bucket {
	s.mu.RLock()
	b, full := s.keys[key], len(s.keys) >= s.maxKeys
	s.mu.RUnlock()
	if b == nil && !full {
		s.mu.Lock()
		// Another Take may have added key, or filled the map, meanwhile.
		if b = s.keys[key]; b == nil && len(s.keys) < s.maxKeys {
			b = NewBucket(s.rate)
			// The map keeps the key: a copy, since a caller on the hot
			// path may pass a string that aliases a buffer it reuses.
			s.keys[strings.Clone(key)] = b
		}
		s.mu.Unlock()
	}
	if b == nil {
		s.overflowed.Add(1)
		return &s.overflow
	}
	return b
}

// Overflowed reports how many Takes so far were for keys beyond the first
// maxKeys and so were charged to the shared overflow bucket. Any at all
// means maxKeys is below the number of keys in use, or someone is presenting
// keys that should not exist.
func (s *Buckets) Overflowed() uint64 { return s.overflowed.Load() }

// Len reports how many keys have a bucket of their own.
func (s *Buckets) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys)
}

// WindowOptions configures a Window. Zero fields take their defaults.
type WindowOptions struct {
	// Initial is the limit a new window starts at; default 64.
	Initial int
	// Min and Max bound the limit; defaults 4 and 1024. The reserve goes
	// above Max.
	Min, Max int
	// Target is the reply time above which the destination counts as
	// overloaded; default 50ms.
	Target time.Duration
	// Backoff multiplies the limit on a decrease, in (0, 1); default 0.9.
	Backoff float64
	// Reserve is how many slots above the limit only priority requests may
	// use. Zero is the default, a tenth of the current limit and at least
	// one; negative is none.
	Reserve int
}

// Window defaults.
const (
	defaultWindowInitial = 64
	defaultWindowMin     = 4
	defaultWindowMax     = 1024
	defaultWindowTarget  = 50 * time.Millisecond
	defaultWindowBackoff = 0.9
)

// Window bounds the requests in flight to one destination endpoint, with a
// limit that adapts to how fast the endpoint answers (AIMD, as TCP's
// congestion window): it grows by one for each limit's worth of on-time
// replies, so by one per round trip while the window is in use, and shrinks
// by the factor Backoff when replies come back later than Target or fail.
// A fixed limit is either too small for a healthy host or too large for a
// slow one; a limit that follows latency keeps the host's queue short, so
// the requests it does take are answered in time instead of all of them
// timing out together.
//
// Decreases happen at most once per round. When a reply is late the limit
// shrinks, and the requests still in flight at that moment were all sent
// under the old, larger limit: their replies will be late for the same
// reason, and the decrease has already answered it. So after a decrease the
// next as many releases as there were requests in flight do not decrease
// again; the first late reply after them, from a request sent under the new
// limit, does. A burst of 500 late replies to one slow spell therefore costs
// one decrease per round trip, not 500 (which would take any limit to Min).
// Releases carry no ticket, so the round is counted, not tracked per
// request: it is the next N releases, whichever requests they are for.
//
// An on-time reply counts toward growth only if the window was at least
// half full when it came back. A destination carrying three requests at a
// time says nothing about whether it can carry three hundred, and a limit
// grown while idle would let the next burst through unchecked.
//
// Acquire never waits: a full window is refused at once and the caller
// declines the request. Priority requests (reversals, network management)
// may also use Reserve slots above the limit, so that a reversal still goes
// out when new financial requests fill the window: a reversal that cannot
// be sent leaves a cardholder's funds held.
//
// A mutex guards the window: a decision reads and writes several numbers
// together, and its cost is small beside the exchange the window guards.
type Window struct {
	mu       sync.Mutex
	limit    int
	inFlight int
	good     int // on-time replies toward the next increase
	round    int // releases left before another decrease may happen

	min, max int
	target   time.Duration
	backoff  float64
	reserve  int // fixed reserve; 0 for a tenth of the limit, -1 for none
}

// NewWindow returns an empty window. Zero or out-of-range options take
// their defaults, Max below Min is raised to Min, and Initial is clamped
// into [Min, Max]. Reporting bad configuration is the job of the
// configuration loader, which can name the file and key; a window only has
// to work.
func NewWindow(o WindowOptions) *Window {
	if o.Min <= 0 {
		o.Min = defaultWindowMin
	}
	if o.Max <= 0 {
		o.Max = defaultWindowMax
	}
	o.Max = max(o.Max, o.Min)
	if o.Initial <= 0 {
		o.Initial = defaultWindowInitial
	}
	if o.Target <= 0 {
		o.Target = defaultWindowTarget
	}
	if !(o.Backoff > 0 && o.Backoff < 1) {
		o.Backoff = defaultWindowBackoff
	}
	if o.Reserve < 0 {
		o.Reserve = -1
	}
	return &Window{
		limit: min(max(o.Initial, o.Min), o.Max),
		min:   o.Min, max: o.Max, target: o.Target, backoff: o.Backoff, reserve: o.Reserve,
	}
}

// Acquire takes a slot for one request and reports whether it did; it never
// waits. A priority request may take one of the reserve slots above the
// limit. Every true must be matched by one Release.
func (w *Window) Acquire(priority bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	room := w.limit
	if priority {
		room += w.reserveSlots()
	}
	if w.inFlight >= room {
		return false
	}
	w.inFlight++
	return true
}

func (w *Window) reserveSlots() int {
	switch {
	case w.reserve < 0:
		return 0
	case w.reserve > 0:
		return w.reserve
	}
	return max(1, w.limit/10)
}

// Release gives back the slot of a request that got its reply after rtt, or
// failed (no reply, a timeout, a broken link), and adapts the limit to it.
// A Release without an Acquire is a bug in the caller and panics.
func (w *Window) Release(rtt time.Duration, failed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight <= 0 {
		panic("switch: Window.Release without Acquire")
	}
	busy := 2*w.inFlight >= w.limit
	w.inFlight--
	if failed || rtt > w.target {
		if w.round > 0 {
			w.round-- // sent under the limit the last decrease already cut
			return
		}
		w.limit = max(w.min, int(float64(w.limit)*w.backoff))
		w.good = 0
		w.round = w.inFlight
		return
	}
	if w.round > 0 {
		w.round-- // the round counts replies, late or not
	}
	if !busy {
		return
	}
	if w.good++; w.good >= w.limit {
		w.good = 0
		w.limit = min(w.limit+1, w.max)
	}
}

// Limit reports the current limit, without the reserve.
func (w *Window) Limit() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.limit
}

// InFlight reports how many requests hold a slot.
func (w *Window) InFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inFlight
}
