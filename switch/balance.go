package switching

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	sharedmetrics "github.com/junction-switch/junction/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Load balancing: a Pool is one destination served by several endpoints
// (the links to a region's shard processes, say). Each request goes to one
// member the strategy picks among the eligible ones; a member is eligible
// when it is not Down (if it reports health) and its circuit breaker lets
// the request through.
//
// The breaker takes an endpoint that keeps failing out of rotation before
// every request routed to it waits for its timeout. Closed, it counts
// consecutive failures; at the threshold it opens for a cooldown; once the
// cooldown is over, one request at a time goes through as a probe
// (half-open): an answer closes the breaker, a failure opens it again for
// twice as long, up to a maximum. A failure is an error that means the
// endpoint did not serve the request (unavailable, no answer in time, an
// answer that does not decode); any answer is a success, a decline
// included; an error that is the request's own (a matching key already in
// flight, a request that does not convert, a caller that gave up) counts
// neither way.
//
// With no member eligible, Exchange fails at once with ErrUnavailable: it
// never waits for an endpoint to come back, so the switch can answer 91 or
// try a route's alternates.

// Strategy is how a Pool picks among its eligible members.
type Strategy int

const (
	// P2C, the default, takes two distinct members at random and sends the
	// request to the one with fewer requests in flight per unit of weight:
	// a slow or stuck endpoint accumulates requests and stops being picked,
	// with no shared state to contend on but the counters.
	P2C Strategy = iota
	// WeightedRoundRobin is nginx's smooth weighted round robin: over a
	// cycle of total weight picks, each member gets exactly its weight,
	// interleaved (weights 5, 1, 1 give a a b a c a a). Deterministic; it
	// ignores load.
	WeightedRoundRobin
)

// ParseStrategy reads a strategy as configured: "p2c" or "wrr"; empty
// takes the default, P2C.
func ParseStrategy(s string) (Strategy, error) {
	switch s {
	case "", "p2c":
		return P2C, nil
	case "wrr":
		return WeightedRoundRobin, nil
	}
	return 0, fmt.Errorf("switch: balancing strategy %q is neither p2c nor wrr", s)
}

func (s Strategy) String() string {
	switch s {
	case P2C:
		return "p2c"
	case WeightedRoundRobin:
		return "wrr"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// BreakerState is the state of a member's circuit breaker. Its value is the
// junction_switch_endpoint_breaker gauge's.
type BreakerState int32

const (
	// BreakerClosed: the member takes requests.
	BreakerClosed BreakerState = iota
	// BreakerHalfOpen: one probe request is in flight; the member takes no
	// other until it is answered.
	BreakerHalfOpen
	// BreakerOpen: the member is out of rotation until its cooldown ends;
	// then the next request it is picked for is a probe.
	BreakerOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return fmt.Sprintf("BreakerState(%d)", int32(s))
}

// Member is one endpoint of a Pool.
type Member struct {
	Name string // endpoint name for logs, metric labels and the admin view; unique in the pool
	Dest Destination
	// Weight is the member's share of requests relative to the others';
	// 0 takes the default, 1.
	Weight int
}

// MaxPoolMembers bounds the members of one Pool; nest pools for more.
const MaxPoolMembers = 64

// PoolOptions configures a Pool.
type PoolOptions struct {
	Strategy Strategy
	// FailureThreshold is how many consecutive failures open a member's
	// breaker; default 5.
	FailureThreshold int
	// Cooldown is how long a breaker stays open before a probe; default
	// 5s. Each failed probe doubles it, up to MaxCooldown (default 60s);
	// an answered probe resets it.
	Cooldown, MaxCooldown time.Duration
	// Window, when set, gives every member an adaptive in-flight window
	// (see Window): a request that finds the picked member's window full is
	// refused at once with ErrOverloaded, never queued. Reversals and
	// network management may use the window's reserve.
	Window *WindowOptions
	// Now is the clock of the breakers; default time.Now.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: no metrics
}

// MemberState is what the admin view shows of a member.
type MemberState struct {
	Name        string
	Weight      int
	Health      front.Health // Up for a destination that does not report its health
	Breaker     BreakerState
	Outstanding int       // requests in flight through the pool
	Window      int       // the in-flight window's current limit; 0 without one
	Failures    int       // consecutive failures
	ProbeAt     time.Time // when open: the earliest time of the next probe
}

// Pool balances requests over the members of one destination, each behind
// a circuit breaker. It is a Destination, and reports its Health and
// Outstanding like a link, so pools nest.
type Pool struct {
	name      string
	members   []*poolMember
	strategy  Strategy
	threshold int32
	cooldown  time.Duration
	maxCool   time.Duration
	now       func() time.Time
	epoch     time.Time // breaker times are durations since, monotonic when now is time.Now
	log       *slog.Logger
	none      error // returned when no member is eligible; built once so failing fast does not allocate
	full      error // returned when the picked member's window is full; built once

	wrr sync.Mutex // guards every member's current
}

// poolMember is a member and its breaker. State changes happen under mu;
// the request path reads state, until and failures without it. The
// in-flight count, written twice per request from every core, has a cache
// line of its own, so that scanning the members' breakers does not miss
// (measured: a third off a parallel Exchange on 2 cores).
type poolMember struct {
	name     string
	dest     Destination
	health   interface{ Health() front.Health } // nil when dest does not report it
	weight   int64
	window   *Window      // nil: no window
	state    atomic.Int32 // BreakerState
	until    atomic.Int64 // open: pool-clock nanoseconds before which no probe goes
	failures atomic.Int32 // consecutive
	m        endpointMetrics

	_           [64]byte
	outstanding atomic.Int64
	_           [56]byte

	current  int64 // smooth weighted round robin; under Pool.wrr
	mu       sync.Mutex
	cooldown time.Duration // of the current opening
}

var _ Destination = (*Pool)(nil)

// NewPool validates members and o and returns the pool. All members start
// closed.
func NewPool(name string, members []Member, o PoolOptions) (*Pool, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("switch: pool %s: %s", name, fmt.Sprintf(format, args...)))
	}
	switch {
	case len(members) == 0:
		bad("no members")
	case len(members) > MaxPoolMembers:
		bad("%d members, more than %d: nest pools", len(members), MaxPoolMembers)
	}
	seen := make(map[string]bool, len(members))
	for i, m := range members {
		switch {
		case m.Name == "":
			bad("member %d has no name", i)
		case seen[m.Name]:
			bad("member %d: %q is also the name of another member", i, m.Name)
		}
		seen[m.Name] = true
		if m.Dest == nil {
			bad("member %s has no destination", m.Name)
		}
		if m.Weight < 0 {
			bad("member %s: weight %d is negative (0 takes the default, 1)", m.Name, m.Weight)
		}
	}
	if o.Strategy != P2C && o.Strategy != WeightedRoundRobin {
		bad("unknown strategy %d", int(o.Strategy))
	}
	if o.FailureThreshold < 0 || o.Cooldown < 0 || o.MaxCooldown < 0 {
		bad("negative breaker settings (0 takes the default)")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.FailureThreshold == 0 {
		o.FailureThreshold = 5
	}
	if o.Cooldown == 0 {
		o.Cooldown = 5 * time.Second
	}
	if o.MaxCooldown < o.Cooldown {
		o.MaxCooldown = max(60*time.Second, o.Cooldown)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = m.Name
	}
	ms, err := newEndpointMetrics(o.Registerer, name, names)
	if err != nil {
		return nil, fmt.Errorf("switch: pool %s: %w", name, err)
	}
	p := &Pool{
		name: name, strategy: o.Strategy, threshold: int32(min(o.FailureThreshold, 1<<30)),
		cooldown: o.Cooldown, maxCool: o.MaxCooldown, now: o.Now, epoch: o.Now(),
		log:  o.Logger.With("destination", name),
		none: fmt.Errorf("%w (%w): %s: every endpoint is down or ejected", ErrUnavailable, front.ErrNotSent, name),
		full: fmt.Errorf("%w: %s", ErrOverloaded, name),
	}
	for i, m := range members {
		pm := &poolMember{name: m.Name, dest: m.Dest, weight: int64(max(m.Weight, 1)), m: ms[i]}
		if o.Window != nil {
			pm.window = NewWindow(*o.Window)
		}
		pm.health, _ = m.Dest.(interface{ Health() front.Health })
		pm.m.breaker.Set(float64(BreakerClosed))
		p.members = append(p.members, pm)
	}
	return p, nil
}

// Name is the destination's name.
func (p *Pool) Name() string { return p.name }

// Exchange sends req to the member the strategy picks and records the
// outcome in its breaker. With no member eligible it returns an error
// wrapping ErrUnavailable at once; otherwise it returns the member's.
func (p *Pool) Exchange(ctx context.Context, req, resp *codec.Message) error {
	if err := ctx.Err(); err != nil {
		// Not the endpoints' fault, and no endpoint should take the blame;
		// nothing was sent.
		return fmt.Errorf("%w (%w)", err, front.ErrNotSent)
	}
	clk := poolClock{p: p}
	m, probe := p.pick(&clk)
	if m == nil {
		return p.none
	}
	if m.window != nil && !m.window.Acquire(priority(req)) {
		if probe {
			p.inconclusive(m)
		}
		return p.full
	}
	start := time.Now()
	m.outstanding.Add(1)
	m.m.inFlight.Inc()
	returned := false
	defer func() {
		if !returned {
			// The member panicked (front recovers handler panics). Count
			// it a failure, so that a probe does not hold the breaker
			// half-open for good.
			m.outstanding.Add(-1)
			m.m.inFlight.Dec()
			if m.window != nil {
				m.window.Release(time.Since(start), true)
			}
			p.failed(m, probe, errors.New("switch: endpoint panicked"))
		}
	}()
	err := m.dest.Exchange(ctx, req, resp)
	returned = true
	m.outstanding.Add(-1)
	m.m.inFlight.Dec()
	oc := outcomeOf(err)
	if m.window != nil {
		m.window.Release(time.Since(start), oc == outcomeNotServed)
	}
	switch oc {
	case outcomeServed:
		p.served(m, probe)
	case outcomeNotServed:
		p.failed(m, probe, err)
	default:
		if probe {
			p.inconclusive(m)
		}
	}
	return err
}

// Outstanding is the number of requests in flight through the pool.
func (p *Pool) Outstanding() int {
	n := int64(0)
	for _, m := range p.members {
		n += m.outstanding.Load()
	}
	return int(n)
}

// Health is Up when every member is eligible, Degraded when some are, Down
// when none is (every one down, ejected, or probing).
func (p *Pool) Health() front.Health {
	clk := poolClock{p: p}
	n := 0
	for _, m := range p.members {
		if m.eligible(&clk) {
			n++
		}
	}
	switch n {
	case len(p.members):
		return front.Up
	case 0:
		return front.Down
	}
	return front.Degraded
}

// Members reports each member's state, in the order given to NewPool.
func (p *Pool) Members() []MemberState {
	out := make([]MemberState, len(p.members))
	for i, m := range p.members {
		s := MemberState{
			Name: m.name, Weight: int(m.weight), Health: front.Up,
			Breaker:     BreakerState(m.state.Load()),
			Outstanding: int(m.outstanding.Load()),
			Failures:    int(m.failures.Load()),
		}
		if m.health != nil {
			s.Health = m.health.Health()
		}
		if m.window != nil {
			s.Window = m.window.Limit()
		}
		if s.Breaker == BreakerOpen {
			s.ProbeAt = p.epoch.Add(time.Duration(m.until.Load()))
		}
		out[i] = s
	}
	return out
}

// poolClock reads the pool's clock once per request, and only if a
// breaker is open: most requests never need it.
type poolClock struct {
	p    *Pool
	t    int64
	read bool
}

func (c *poolClock) nanos() int64 {
	if !c.read {
		c.t, c.read = int64(c.p.now().Sub(c.p.epoch)), true
	}
	return c.t
}

// eligible reports whether m may be picked: not down, and its breaker
// closed or open past its cooldown. Read without locks; admit decides.
func (m *poolMember) eligible(clk *poolClock) bool {
	switch BreakerState(m.state.Load()) {
	case BreakerHalfOpen:
		return false
	case BreakerOpen:
		if clk.nanos() < m.until.Load() {
			return false
		}
	}
	return m.health == nil || m.health.Health() != front.Down
}

// pick returns the member for one request, and whether the request is its
// breaker's probe; nil when no member is eligible. It does not allocate:
// the eligible set is a bit mask (hence MaxPoolMembers).
func (p *Pool) pick(clk *poolClock) (*poolMember, bool) {
	var set uint64
	n := 0
	for i, m := range p.members {
		if m.eligible(clk) {
			set |= 1 << i
			n++
		}
	}
	for ; n > 0; n-- {
		var i int
		if p.strategy == WeightedRoundRobin {
			i = p.nextWeighted(set)
		} else {
			i = p.twoChoices(set, n)
		}
		m := p.members[i]
		if probe, ok := p.admit(m, clk); ok {
			return m, probe
		}
		// Another request took the probe, or the breaker opened since
		// the scan: pick among the rest.
		set &^= 1 << i
	}
	return nil, false
}

// twoChoices picks two distinct members of set (n of them) at random and
// returns the one with fewer requests in flight per unit of weight.
func (p *Pool) twoChoices(set uint64, n int) int {
	if n == 1 {
		return bits.TrailingZeros64(set)
	}
	// Both draws from one random word, by multiply-shift on its halves;
	// the bias, n/2³², is nothing for at most 64 members.
	r := rand.Uint64()
	a := int((r >> 32) * uint64(n) >> 32)
	b := int((r & (1<<32 - 1)) * uint64(n-1) >> 32)
	if b >= a {
		b++
	}
	i, j := nthBit(set, a), nthBit(set, b)
	mi, mj := p.members[i], p.members[j]
	// outstanding/weight compared without dividing.
	if mj.outstanding.Load()*mi.weight < mi.outstanding.Load()*mj.weight {
		return j
	}
	return i
}

// nthBit is the index of the k-th (from 0) set bit of set.
func nthBit(set uint64, k int) int {
	for ; k > 0; k-- {
		set &= set - 1
	}
	return bits.TrailingZeros64(set)
}

// nextWeighted is one step of smooth weighted round robin over set: every
// member's current grows by its weight, the largest wins and gives back
// the total.
func (p *Pool) nextWeighted(set uint64) int {
	p.wrr.Lock()
	defer p.wrr.Unlock()
	best, total := -1, int64(0)
	for s := set; s != 0; s &= s - 1 {
		i := bits.TrailingZeros64(s)
		m := p.members[i]
		m.current += m.weight
		total += m.weight
		if best < 0 || m.current > p.members[best].current {
			best = i
		}
	}
	p.members[best].current -= total
	return best
}

// admit lets a request through m's breaker: always when closed; as the
// probe when open past the cooldown and no other probe took it first.
func (p *Pool) admit(m *poolMember, clk *poolClock) (probe, ok bool) {
	switch BreakerState(m.state.Load()) {
	case BreakerClosed:
		return false, true
	case BreakerHalfOpen:
		return false, false
	}
	now := clk.nanos()
	if now < m.until.Load() {
		return false, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch BreakerState(m.state.Load()) {
	case BreakerClosed:
		return false, true
	case BreakerOpen:
		if now >= m.until.Load() {
			m.state.Store(int32(BreakerHalfOpen))
			m.m.breaker.Set(float64(BreakerHalfOpen))
			return true, true
		}
	}
	return false, false
}

// outcome is what an exchange's result says of the endpoint.
type outcome int

const (
	outcomeServed    outcome = iota // an answer, whatever its response code
	outcomeNotServed                // the endpoint did not answer usably
	outcomeNeither                  // the request's own problem, or the caller's
)

func outcomeOf(err error) outcome {
	switch {
	case err == nil:
		return outcomeServed
	case errors.Is(err, front.ErrBusy):
		return outcomeNeither // up and working, only full
	case errors.Is(err, ErrUnavailable), errors.Is(err, front.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, front.ErrBadReply):
		return outcomeNotServed
	}
	// front.ErrDuplicateKey, a conversion error, context.Canceled.
	return outcomeNeither
}

// served records an answer: a probe's closes the breaker; any other ends a
// run of failures.
func (p *Pool) served(m *poolMember, probe bool) {
	if !probe {
		// Read first, so that the common case writes nothing shared.
		if m.failures.Load() != 0 && BreakerState(m.state.Load()) == BreakerClosed {
			m.failures.Store(0)
		}
		return
	}
	m.mu.Lock()
	m.failures.Store(0)
	m.state.Store(int32(BreakerClosed))
	m.m.breaker.Set(float64(BreakerClosed))
	m.mu.Unlock()
	p.log.Info("endpoint restored", "endpoint", m.name)
}

// failed records a failure: the threshold's opens a closed breaker, a
// probe's re-opens it for twice the cooldown. A request let through before
// the breaker opened counts, but does not move an open breaker.
func (p *Pool) failed(m *poolMember, probe bool, err error) {
	m.mu.Lock()
	f := m.failures.Add(1)
	switch {
	case probe:
		m.cooldown = min(2*m.cooldown, p.maxCool)
	case BreakerState(m.state.Load()) == BreakerClosed && f >= p.threshold:
		m.cooldown = p.cooldown
		m.m.ejections.Inc()
	default:
		m.mu.Unlock()
		return
	}
	cooldown := m.cooldown
	m.until.Store(int64(p.now().Sub(p.epoch) + cooldown))
	m.state.Store(int32(BreakerOpen))
	m.m.breaker.Set(float64(BreakerOpen))
	m.mu.Unlock()
	if probe {
		p.log.Warn("endpoint probe failed", "endpoint", m.name, "cooldown", cooldown, "err", err)
	} else {
		p.log.Warn("endpoint ejected", "endpoint", m.name, "failures", f, "cooldown", cooldown, "err", err)
	}
}

// inconclusive returns a probe whose request failed through no fault of
// the endpoint's to open, cooldown already over: the next request probes.
func (p *Pool) inconclusive(m *poolMember) {
	m.mu.Lock()
	m.state.Store(int32(BreakerOpen))
	m.m.breaker.Set(float64(BreakerOpen))
	m.mu.Unlock()
}

// endpointMetrics are one member's resolved series.
type endpointMetrics struct {
	inFlight  prometheus.Gauge
	breaker   prometheus.Gauge
	ejections prometheus.Counter
}

// newEndpointMetrics registers the pool series on reg (once per registry:
// the pools of one process share them) and resolves each endpoint's
// children.
func newEndpointMetrics(reg prometheus.Registerer, dest string, endpoints []string) ([]endpointMetrics, error) {
	var errs []error
	inFlight := sharedmetrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "junction", Subsystem: "switch", Name: "endpoint_in_flight",
		Help: "Requests in flight to a destination's endpoint through its pool.",
	}, []string{"destination", "endpoint"}), &errs)
	breaker := sharedmetrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "junction", Subsystem: "switch", Name: "endpoint_breaker",
		Help: "Circuit breaker of a destination's endpoint: 0 closed, 1 half-open (probing), 2 open (ejected).",
	}, []string{"destination", "endpoint"}), &errs)
	ejections := sharedmetrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "junction", Subsystem: "switch", Name: "endpoint_ejections_total",
		Help: "Times an endpoint's breaker opened after consecutive failures (failed probes not included).",
	}, []string{"destination", "endpoint"}), &errs)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ms := make([]endpointMetrics, len(endpoints))
	for i, ep := range endpoints {
		ms[i] = endpointMetrics{
			inFlight:  inFlight.WithLabelValues(dest, ep),
			breaker:   breaker.WithLabelValues(dest, ep),
			ejections: ejections.WithLabelValues(dest, ep),
		}
	}
	return ms, nil
}

// priority reports whether req may use a window's reserve: reversals and
// network management go ahead of new financial requests.
func priority(req *codec.Message) bool {
	mti, _ := req.MTI()
	return mti[1] == codec.ClassReversal || mti[1] == codec.ClassNetwork
}
