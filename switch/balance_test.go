package switching

// White-box: the pick itself is measured and its allocations guarded, and
// a few tests set a member's in-flight count directly.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/prometheus/client_golang/prometheus"
)

// stubEndpoint stands in for a remote host: it answers rc (default 00),
// fails with err, or holds the request until gate closes.
type stubEndpoint struct {
	calls atomic.Int64

	mu      sync.Mutex
	err     error
	rc      string
	panics  bool
	gate    chan struct{} // non-nil: Exchange waits for it to close
	entered chan struct{} // non-nil: Exchange sends on it as it starts
}

func (s *stubEndpoint) fail(err error) { s.mu.Lock(); s.err, s.rc = err, ""; s.mu.Unlock() }
func (s *stubEndpoint) answer(rc string) {
	s.mu.Lock()
	s.err, s.rc = nil, rc
	s.mu.Unlock()
}

func (s *stubEndpoint) Exchange(ctx context.Context, req, resp *codec.Message) error {
	s.calls.Add(1)
	s.mu.Lock()
	err, rc, panics, gate, entered := s.err, s.rc, s.panics, s.gate, s.entered
	s.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if panics {
		panic("stub endpoint panics")
	}
	if err != nil {
		return err
	}
	if rc == "" {
		rc = codec.RCApproved
	}
	if err := resp.InitResponse(req); err != nil {
		return err
	}
	return resp.SetString(39, rc)
}

// stubLink is a stubEndpoint that reports its health, as a front.Link does.
type stubLink struct {
	stubEndpoint
	health atomic.Int32
}

func newStubLink(h front.Health) *stubLink {
	l := &stubLink{}
	l.health.Store(int32(h))
	return l
}

func (l *stubLink) Health() front.Health { return front.Health(l.health.Load()) }

// nopEndpoint answers nothing and fails nothing: the pool's own cost.
type nopEndpoint struct{}

func (nopEndpoint) Exchange(context.Context, *codec.Message, *codec.Message) error { return nil }

// manualClock is the breakers' clock in tests: it moves only when told.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock() *manualClock {
	return &manualClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var poolDialect = codec.ISO87ASCII()

// poolRequest is a 0200 with a STAN; enough for a stub to answer.
func poolRequest(t testing.TB) (req, resp *codec.Message) {
	t.Helper()
	req = codec.NewMessage(poolDialect)
	if err := req.SetMTI([4]byte{'0', '2', '0', '0'}); err != nil {
		t.Fatal(err)
	}
	if err := req.SetString(11, "000001"); err != nil {
		t.Fatal(err)
	}
	return req, codec.NewMessage(poolDialect)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestPool(t testing.TB, o PoolOptions, members ...Member) *Pool {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLog()
	}
	p, err := NewPool("beijing", members, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// poolExchange sends one request through p.
func poolExchange(t testing.TB, p *Pool) error {
	t.Helper()
	req, resp := poolRequest(t)
	return p.Exchange(context.Background(), req, resp)
}

// poolWait fails the test if ch yields nothing for a long time: a guard
// against a hang, not a timing assertion.
func poolWait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing after 10s", what)
	}
	var zero T
	return zero
}

func memberState(t *testing.T, p *Pool, name string) MemberState {
	t.Helper()
	for _, s := range p.Members() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no member %s", name)
	return MemberState{}
}

func TestParseBalanceStrategy(t *testing.T) {
	for in, want := range map[string]Strategy{"": P2C, "p2c": P2C, "wrr": WeightedRoundRobin} {
		got, err := ParseStrategy(in)
		if err != nil || got != want {
			t.Errorf("ParseStrategy(%q) = %v, %v; want %v", in, got, err, want)
		}
		if in != "" && got.String() != in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), in)
		}
	}
	if _, err := ParseStrategy("random"); err == nil || !strings.Contains(err.Error(), `"random"`) {
		t.Errorf("ParseStrategy(random) = %v, want an error naming it", err)
	}
}

func TestNewPoolRefuses(t *testing.T) {
	d := &stubEndpoint{}
	many := make([]Member, MaxPoolMembers+1)
	for i := range many {
		many[i] = Member{Name: fmt.Sprint("m", i), Dest: d}
	}
	for _, tc := range []struct {
		name    string
		members []Member
		o       PoolOptions
		want    []string
	}{
		{"no members", nil, PoolOptions{}, []string{"no members"}},
		{"a member without a name", []Member{{Dest: d}}, PoolOptions{}, []string{"member 0 has no name"}},
		{"two members of one name", []Member{{Name: "a", Dest: d}, {Name: "a", Dest: d}}, PoolOptions{}, []string{`"a" is also`}},
		{"a member without a destination", []Member{{Name: "a"}}, PoolOptions{}, []string{"a has no destination"}},
		{"a negative weight", []Member{{Name: "a", Dest: d, Weight: -1}}, PoolOptions{}, []string{"weight -1"}},
		{"an unknown strategy", []Member{{Name: "a", Dest: d}}, PoolOptions{Strategy: 7}, []string{"strategy 7"}},
		{"negative breaker settings", []Member{{Name: "a", Dest: d}}, PoolOptions{Cooldown: -time.Second}, []string{"negative breaker"}},
		{"more members than a mask holds", many, PoolOptions{}, []string{"65 members"}},
		{"every problem at once", []Member{{Name: "a", Weight: -2}, {Name: "a", Dest: d}}, PoolOptions{},
			[]string{"a has no destination", "weight -2", `"a" is also`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPool("beijing", tc.members, tc.o)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) || !strings.Contains(err.Error(), "pool beijing") {
					t.Errorf("error %q does not say %q of pool beijing", err, w)
				}
			}
		})
	}
}

func TestPoolP2C(t *testing.T) {
	t.Run("sends nothing more to a member holding a request while the others hold none", func(t *testing.T) {
		slow := &stubEndpoint{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
		fast1, fast2 := &stubEndpoint{}, &stubEndpoint{}
		p := newTestPool(t, PoolOptions{}, Member{Name: "slow", Dest: slow}, Member{Name: "fast1", Dest: fast1}, Member{Name: "fast2", Dest: fast2})
		const n = 300
		held := make(chan error, 1)
		for range n {
			done := make(chan error, 1)
			go func() { done <- poolExchange(t, p) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-slow.entered:
				// This request stays in flight on slow; the loop goes on.
				go func() { held <- <-done }()
			case <-time.After(10 * time.Second):
				t.Fatal("a request neither answered nor held")
			}
		}
		if got := slow.calls.Load(); got != 1 {
			t.Errorf("slow got %d requests, want only the first (p2c never prefers 1 in flight over 0)", got)
		}
		if f1, f2 := fast1.calls.Load(), fast2.calls.Load(); f1+f2 != n-1 || f1 < n/4 || f2 < n/4 {
			t.Errorf("fast members got %d and %d of %d", f1, f2, n-1)
		}
		if got := p.Outstanding(); got != 1 {
			t.Errorf("Outstanding = %d, want 1", got)
		}
		close(slow.gate)
		if err := poolWait(t, held, "the held request"); err != nil {
			t.Fatal(err)
		}
		if got := p.Outstanding(); got != 0 {
			t.Errorf("Outstanding = %d after every answer, want 0", got)
		}
	})
	t.Run("compares requests in flight per unit of weight", func(t *testing.T) {
		heavy, light := &stubEndpoint{}, &stubEndpoint{}
		p := newTestPool(t, PoolOptions{}, Member{Name: "heavy", Dest: heavy, Weight: 3}, Member{Name: "light", Dest: light})
		p.members[0].outstanding.Store(2) // 2/3 per unit of weight
		p.members[1].outstanding.Store(1) // 1/1
		for range 100 {
			if m, _ := p.pick(&poolClock{p: p}); m.name != "heavy" {
				t.Fatalf("picked %s with 1 in flight at weight 1 over heavy with 2 at weight 3", m.name)
			}
		}
		p.members[0].outstanding.Store(4) // 4/3
		for range 100 {
			if m, _ := p.pick(&poolClock{p: p}); m.name != "light" {
				t.Fatalf("picked %s with 4 in flight at weight 3 over light with 1 at weight 1", m.name)
			}
		}
	})
}

func TestPoolWeightedRoundRobin(t *testing.T) {
	a, b, c := &stubEndpoint{}, &stubEndpoint{}, &stubEndpoint{}
	p := newTestPool(t, PoolOptions{Strategy: WeightedRoundRobin},
		Member{Name: "a", Dest: a, Weight: 5}, Member{Name: "b", Dest: b, Weight: 1}, Member{Name: "c", Dest: c, Weight: 1})
	var seq []string
	for range 7 {
		m, _ := p.pick(&poolClock{p: p})
		seq = append(seq, m.name)
	}
	if got, want := strings.Join(seq, " "), "a a b a c a a"; got != want {
		t.Errorf("one cycle = %s, want nginx's smooth order %s", got, want)
	}
	for range 70 {
		if err := poolExchange(t, p); err != nil {
			t.Fatal(err)
		}
	}
	if a.calls.Load() != 50 || b.calls.Load() != 10 || c.calls.Load() != 10 {
		t.Errorf("10 cycles gave a %d, b %d, c %d; want 50, 10, 10", a.calls.Load(), b.calls.Load(), c.calls.Load())
	}
}

func TestPoolSkipsDownMembers(t *testing.T) {
	for _, s := range []Strategy{P2C, WeightedRoundRobin} {
		t.Run(s.String(), func(t *testing.T) {
			down, degraded, up := newStubLink(front.Down), newStubLink(front.Degraded), newStubLink(front.Up)
			p := newTestPool(t, PoolOptions{Strategy: s},
				Member{Name: "down", Dest: down, Weight: 4}, Member{Name: "degraded", Dest: degraded}, Member{Name: "up", Dest: up})
			for range 100 {
				if err := poolExchange(t, p); err != nil {
					t.Fatal(err)
				}
			}
			if down.calls.Load() != 0 {
				t.Errorf("the down member got %d requests", down.calls.Load())
			}
			if degraded.calls.Load() == 0 || up.calls.Load() == 0 {
				t.Errorf("degraded got %d, up %d: both should take requests", degraded.calls.Load(), up.calls.Load())
			}
			if h := p.Health(); h != front.Degraded {
				t.Errorf("pool health %v with one member down, want degraded", h)
			}
			down.health.Store(int32(front.Up))
			for range 100 {
				if err := poolExchange(t, p); err != nil {
					t.Fatal(err)
				}
			}
			if down.calls.Load() == 0 {
				t.Error("the member got nothing once it came up")
			}
		})
	}
}

func TestPoolBreaker(t *testing.T) {
	notServed := fmt.Errorf("front: link beijing-1: %w", front.ErrUnavailable)

	t.Run("opens after the threshold of consecutive failures and ejects the member", func(t *testing.T) {
		a := &stubEndpoint{err: notServed}
		p := newTestPool(t, PoolOptions{FailureThreshold: 3}, Member{Name: "a", Dest: a})
		for i := range 3 {
			if s := memberState(t, p, "a"); s.Breaker != BreakerClosed || s.Failures != i {
				t.Fatalf("after %d failures: %+v, want closed", i, s)
			}
			if err := poolExchange(t, p); !errors.Is(err, front.ErrUnavailable) {
				t.Fatalf("exchange %d: %v, want the member's error", i, err)
			}
		}
		if s := memberState(t, p, "a"); s.Breaker != BreakerOpen || s.Failures != 3 {
			t.Errorf("after 3 failures: %+v, want open", s)
		}
	})

	t.Run("rejects during the cooldown without calling the member", func(t *testing.T) {
		clock := newManualClock()
		a := &stubEndpoint{err: notServed}
		p := newTestPool(t, PoolOptions{FailureThreshold: 1, Now: clock.Now}, Member{Name: "a", Dest: a})
		_ = poolExchange(t, p)
		if want := clock.Now().Add(5 * time.Second); !memberState(t, p, "a").ProbeAt.Equal(want) {
			t.Errorf("ProbeAt = %v, want %v (the default cooldown)", memberState(t, p, "a").ProbeAt, want)
		}
		a.answer("00")
		for range 5 {
			clock.Advance(time.Second - time.Millisecond)
			if err := poolExchange(t, p); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("during the cooldown: %v, want ErrUnavailable", err)
			}
		}
		if got := a.calls.Load(); got != 1 {
			t.Errorf("the member was called %d times, want only the failure", got)
		}
	})

	t.Run("lets a probe through after the cooldown and closes when it is answered", func(t *testing.T) {
		clock := newManualClock()
		a := &stubEndpoint{err: notServed}
		p := newTestPool(t, PoolOptions{FailureThreshold: 1, Now: clock.Now}, Member{Name: "a", Dest: a})
		_ = poolExchange(t, p)
		clock.Advance(5 * time.Second)
		if h := p.Health(); h != front.Up {
			t.Errorf("health %v with a probe due, want up (the member may be picked)", h)
		}
		a.answer("00")
		if err := poolExchange(t, p); err != nil {
			t.Fatalf("probe: %v", err)
		}
		if s := memberState(t, p, "a"); s.Breaker != BreakerClosed || s.Failures != 0 {
			t.Errorf("after an answered probe: %+v, want closed", s)
		}
		for range 10 {
			if err := poolExchange(t, p); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("re-opens for twice the cooldown when the probe fails, up to the maximum", func(t *testing.T) {
		clock := newManualClock()
		a := &stubEndpoint{err: notServed}
		p := newTestPool(t, PoolOptions{FailureThreshold: 1, Cooldown: 5 * time.Second, MaxCooldown: 15 * time.Second, Now: clock.Now},
			Member{Name: "a", Dest: a})
		_ = poolExchange(t, p)
		for _, cooldown := range []time.Duration{5, 10, 15, 15} {
			cooldown *= time.Second
			probeAt := memberState(t, p, "a").ProbeAt
			if got := probeAt.Sub(clock.Now()); got != cooldown {
				t.Fatalf("open for %v, want %v", got, cooldown)
			}
			clock.Advance(cooldown - time.Nanosecond)
			calls := a.calls.Load()
			if err := poolExchange(t, p); !errors.Is(err, ErrUnavailable) || a.calls.Load() != calls {
				t.Fatalf("1ns before the probe is due: %v, %d calls", err, a.calls.Load()-calls)
			}
			clock.Advance(time.Nanosecond)
			if err := poolExchange(t, p); !errors.Is(err, front.ErrUnavailable) || a.calls.Load() != calls+1 {
				t.Fatalf("probe: %v, %d calls; want the member's failure", err, a.calls.Load()-calls)
			}
			if s := memberState(t, p, "a"); s.Breaker != BreakerOpen {
				t.Fatalf("after a failed probe: %v, want open", s.Breaker)
			}
		}
		clock.Advance(15 * time.Second)
		a.answer("00")
		if err := poolExchange(t, p); err != nil {
			t.Fatal(err)
		}
		a.fail(notServed)
		_ = poolExchange(t, p)
		if got := memberState(t, p, "a").ProbeAt.Sub(clock.Now()); got != 5*time.Second {
			t.Errorf("opened again for %v after closing, want the cooldown reset to 5s", got)
		}
	})

	t.Run("counts a decline as an answer", func(t *testing.T) {
		clock := newManualClock()
		a := &stubEndpoint{}
		p := newTestPool(t, PoolOptions{FailureThreshold: 3, Now: clock.Now}, Member{Name: "a", Dest: a})
		run := func(err error, rc string) {
			t.Helper()
			if err != nil {
				a.fail(err)
			} else {
				a.answer(rc)
			}
			_ = poolExchange(t, p)
		}
		run(notServed, "")
		run(notServed, "")
		run(nil, codec.RCInsufficientFunds)
		run(notServed, "")
		run(notServed, "")
		if s := memberState(t, p, "a"); s.Breaker != BreakerClosed || s.Failures != 2 {
			t.Fatalf("a decline between failures: %+v, want closed with 2 failures", s)
		}
		run(notServed, "")
		clock.Advance(5 * time.Second)
		run(nil, codec.RCInsufficientFunds)
		if s := memberState(t, p, "a"); s.Breaker != BreakerClosed {
			t.Errorf("a probe answered with a decline: %v, want closed", s.Breaker)
		}
	})

	t.Run("counts a duplicate matching key neither way", func(t *testing.T) {
		a := &stubEndpoint{}
		dup := fmt.Errorf("%w: beijing-1, MTI 0210, STAN 000001", front.ErrDuplicateKey)
		p := newTestPool(t, PoolOptions{FailureThreshold: 3}, Member{Name: "a", Dest: a})
		for _, err := range []error{notServed, notServed, dup, dup, dup, dup} {
			a.fail(err)
			_ = poolExchange(t, p)
		}
		if s := memberState(t, p, "a"); s.Breaker != BreakerClosed || s.Failures != 2 {
			t.Fatalf("duplicates after 2 failures: %+v, want closed with 2 failures", s)
		}
		a.fail(notServed)
		_ = poolExchange(t, p)
		if s := memberState(t, p, "a"); s.Breaker != BreakerOpen {
			t.Errorf("a third failure after the duplicates: %v, want open", s.Breaker)
		}
	})

	t.Run("counts only the errors that mean the endpoint did not serve", func(t *testing.T) {
		for _, tc := range []struct {
			err   error
			fails bool
		}{
			{fmt.Errorf("shard: %w", ErrUnavailable), true},
			{fmt.Errorf("link: %w", front.ErrUnavailable), true},
			{fmt.Errorf("link: no answer within 1s: %w", context.DeadlineExceeded), true},
			{fmt.Errorf("%w: field 4", front.ErrBadReply), true},
			{fmt.Errorf("%w", front.ErrDuplicateKey), false},
			{context.Canceled, false},
			{errors.New("front: link beijing-1: field 4 does not convert"), false},
		} {
			a := &stubEndpoint{err: tc.err}
			p := newTestPool(t, PoolOptions{FailureThreshold: 2}, Member{Name: "a", Dest: a})
			_ = poolExchange(t, p)
			_ = poolExchange(t, p)
			if open := memberState(t, p, "a").Breaker == BreakerOpen; open != tc.fails {
				t.Errorf("two of %q: open %v, want %v", tc.err, open, tc.fails)
			}
		}
	})

	t.Run("returns a probe that proves nothing to open, due at once", func(t *testing.T) {
		clock := newManualClock()
		a := &stubEndpoint{err: notServed}
		p := newTestPool(t, PoolOptions{FailureThreshold: 1, Now: clock.Now}, Member{Name: "a", Dest: a})
		_ = poolExchange(t, p)
		clock.Advance(5 * time.Second)
		a.fail(front.ErrDuplicateKey)
		_ = poolExchange(t, p)
		if s := memberState(t, p, "a"); s.Breaker != BreakerOpen || s.ProbeAt.After(clock.Now()) {
			t.Fatalf("after an inconclusive probe: %+v, want open with a probe due", s)
		}
		a.answer("00")
		if err := poolExchange(t, p); err != nil {
			t.Fatalf("second probe: %v", err)
		}
		if s := memberState(t, p, "a"); s.Breaker != BreakerClosed {
			t.Errorf("after the second probe: %v, want closed", s.Breaker)
		}
	})

	t.Run("counts a member that panics on a probe as failed", func(t *testing.T) {
		clock := newManualClock()
		a := &stubEndpoint{err: notServed}
		p := newTestPool(t, PoolOptions{FailureThreshold: 1, Now: clock.Now}, Member{Name: "a", Dest: a})
		_ = poolExchange(t, p)
		clock.Advance(5 * time.Second)
		a.mu.Lock()
		a.panics = true
		a.mu.Unlock()
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic did not reach the caller")
				}
			}()
			_ = poolExchange(t, p)
		}()
		s := memberState(t, p, "a")
		if s.Breaker != BreakerOpen || s.Outstanding != 0 || s.ProbeAt.Sub(clock.Now()) != 10*time.Second {
			t.Errorf("after a panicking probe: %+v, want open for 10s, nothing in flight", s)
		}
	})
}

func TestPoolHalfOpenLetsOneProbeThroughUnderConcurrency(t *testing.T) {
	clock := newManualClock()
	a := &stubEndpoint{err: fmt.Errorf("shard: %w", ErrUnavailable)}
	p := newTestPool(t, PoolOptions{FailureThreshold: 1, Now: clock.Now}, Member{Name: "a", Dest: a})
	_ = poolExchange(t, p)

	a.mu.Lock()
	a.err, a.gate, a.entered = nil, make(chan struct{}), make(chan struct{}, 64)
	a.mu.Unlock()
	clock.Advance(5 * time.Second)
	const n = 32
	start := make(chan struct{})
	results := make(chan error, n)
	for range n {
		go func() {
			<-start
			req, resp := poolRequest(t)
			results <- p.Exchange(context.Background(), req, resp)
		}()
	}
	close(start)
	poolWait(t, a.entered, "the probe")
	for i := range n - 1 {
		if err := poolWait(t, results, "the requests refused while probing"); err != p.none {
			t.Fatalf("request %d while the probe is in flight: %v, want the pool's ErrUnavailable", i, err)
		}
	}
	if got := a.calls.Load(); got != 2 {
		t.Errorf("the member was called %d times, want the failure and one probe", got)
	}
	if s := memberState(t, p, "a"); s.Breaker != BreakerHalfOpen || s.Outstanding != 1 {
		t.Errorf("while probing: %+v, want half-open with one in flight", s)
	}
	if h := p.Health(); h != front.Down {
		t.Errorf("health while probing its only member: %v, want down", h)
	}
	close(a.gate)
	if err := poolWait(t, results, "the probe's answer"); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if s := memberState(t, p, "a"); s.Breaker != BreakerClosed {
		t.Errorf("after the probe: %v, want closed", s.Breaker)
	}
}

func TestPoolFailsAtOnceWhenNoMemberIsEligible(t *testing.T) {
	clock := newManualClock()
	a, b := &stubEndpoint{err: front.ErrUnavailable}, newStubLink(front.Up)
	b.err = context.DeadlineExceeded
	p := newTestPool(t, PoolOptions{FailureThreshold: 1, Now: clock.Now}, Member{Name: "a", Dest: a}, Member{Name: "b", Dest: b})
	for p.Health() != front.Degraded {
		_ = poolExchange(t, p)
	}
	for p.Health() != front.Down {
		_ = poolExchange(t, p)
	}
	calls := a.calls.Load() + b.calls.Load()
	for range 10 {
		err := poolExchange(t, p)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "beijing") {
			t.Fatalf("every member ejected: %v, want ErrUnavailable naming the destination", err)
		}
	}
	if got := a.calls.Load() + b.calls.Load() - calls; got != 0 {
		t.Errorf("members called %d times with every breaker open", got)
	}

	// Down is as good as open; and a probe due makes the pool eligible
	// again.
	b.health.Store(int32(front.Down))
	clock.Advance(5 * time.Second)
	a.answer("00")
	if err := poolExchange(t, p); err != nil || a.calls.Load()+b.calls.Load()-calls != 1 {
		t.Fatalf("probe due on a, b down: %v, want a's answer", err)
	}
	if h := p.Health(); h != front.Degraded {
		t.Errorf("a closed, b down: %v, want degraded", h)
	}
}

func TestPoolNests(t *testing.T) {
	clock := newManualClock()
	east := &stubEndpoint{err: front.ErrUnavailable}
	west := &stubEndpoint{}
	inner := newTestPool(t, PoolOptions{FailureThreshold: 1, Now: clock.Now}, Member{Name: "east-1", Dest: east})
	outer, err := NewPool("region", []Member{{Name: "east", Dest: inner}, {Name: "west", Dest: west}},
		PoolOptions{Strategy: WeightedRoundRobin, Now: clock.Now, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	for east.calls.Load() == 0 {
		_ = poolExchange(t, outer)
	}
	if inner.Health() != front.Down {
		t.Fatalf("inner pool with its only member ejected: %v, want down", inner.Health())
	}
	before := west.calls.Load()
	for range 20 {
		if err := poolExchange(t, outer); err != nil {
			t.Fatalf("outer pool with inner down: %v", err)
		}
	}
	if west.calls.Load()-before != 20 || east.calls.Load() != 1 {
		t.Errorf("west got %d of 20, east %d in all; want every request on west", west.calls.Load()-before, east.calls.Load())
	}
	if s := memberState(t, outer, "east"); s.Health != front.Down || s.Breaker != BreakerClosed {
		t.Errorf("outer's view of the inner pool: %+v, want down with its own breaker closed", s)
	}
}

func TestPoolCallerGivenUp(t *testing.T) {
	a := &stubEndpoint{}
	p := newTestPool(t, PoolOptions{FailureThreshold: 1}, Member{Name: "a", Dest: a})
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	req, resp := poolRequest(t)
	if err := p.Exchange(ctx, req, resp); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request whose deadline passed: %v", err)
	}
	if a.calls.Load() != 0 || memberState(t, p, "a").Breaker != BreakerClosed {
		t.Errorf("a request past its deadline reached the member (%d calls) or blamed it", a.calls.Load())
	}
}

// metricValue reads one series of a gauge or counter by its labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name, dest, endpoint string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["destination"] != dest || labels["endpoint"] != endpoint {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s{destination=%q,endpoint=%q}", name, dest, endpoint)
	return 0
}

func TestPoolMetricsShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	clock := newManualClock()
	a := &stubEndpoint{err: front.ErrUnavailable}
	b := &stubEndpoint{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	o := PoolOptions{FailureThreshold: 1, Now: clock.Now, Registerer: reg, Logger: quietLog()}
	beijing, err := NewPool("beijing", []Member{{Name: "beijing-1", Dest: a}}, o)
	if err != nil {
		t.Fatal(err)
	}
	shanghai, err := NewPool("shanghai", []Member{{Name: "shanghai-1", Dest: b}}, o)
	if err != nil {
		t.Fatalf("a second pool on the same registry: %v", err)
	}
	const (
		inFlight  = "junction_switch_endpoint_in_flight"
		breaker   = "junction_switch_endpoint_breaker"
		ejections = "junction_switch_endpoint_ejections_total"
	)
	_ = poolExchange(t, beijing)
	if v := metricValue(t, reg, breaker, "beijing", "beijing-1"); v != 2 {
		t.Errorf("breaker of the ejected endpoint = %v, want 2 (open)", v)
	}
	if v := metricValue(t, reg, ejections, "beijing", "beijing-1"); v != 1 {
		t.Errorf("ejections = %v, want 1", v)
	}
	clock.Advance(5 * time.Second)
	_ = poolExchange(t, beijing) // a failed probe re-opens; it is no new ejection
	if v := metricValue(t, reg, ejections, "beijing", "beijing-1"); v != 1 {
		t.Errorf("ejections after a failed probe = %v, want still 1", v)
	}

	done := make(chan error, 1)
	go func() { done <- poolExchange(t, shanghai) }()
	poolWait(t, b.entered, "the held request")
	if v := metricValue(t, reg, inFlight, "shanghai", "shanghai-1"); v != 1 {
		t.Errorf("in flight = %v with one request held, want 1", v)
	}
	if v := metricValue(t, reg, breaker, "shanghai", "shanghai-1"); v != 0 {
		t.Errorf("breaker of the other pool's endpoint = %v, want 0 (closed)", v)
	}
	close(b.gate)
	if err := poolWait(t, done, "the held request"); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, reg, inFlight, "shanghai", "shanghai-1"); v != 0 {
		t.Errorf("in flight = %v after the answer, want 0", v)
	}
}

func TestPoolConcurrentUse(t *testing.T) {
	for _, s := range []Strategy{P2C, WeightedRoundRobin} {
		t.Run(s.String(), func(t *testing.T) {
			clock := newManualClock()
			flaky := &flakyEndpoint{failEvery: 3}
			broken := &stubEndpoint{err: front.ErrUnavailable}
			link := newStubLink(front.Up)
			p := newTestPool(t, PoolOptions{Strategy: s, FailureThreshold: 2, Now: clock.Now},
				Member{Name: "ok", Dest: &stubEndpoint{}, Weight: 2}, Member{Name: "flaky", Dest: flaky},
				Member{Name: "broken", Dest: broken}, Member{Name: "link", Dest: link})
			const workers, each = 8, 500
			var wg sync.WaitGroup
			var refused, calls atomic.Int64
			stop := make(chan struct{})
			go func() {
				// Cooldowns end, members flap, the admin view is read.
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					clock.Advance(time.Second)
					link.health.Store(int32(i % 3))
					_, _, _ = p.Members(), p.Health(), p.Outstanding()
				}
			}()
			for range workers {
				wg.Go(func() {
					req, resp := poolRequest(t)
					for range each {
						err := p.Exchange(context.Background(), req, resp)
						if err == p.none {
							refused.Add(1)
						} else {
							calls.Add(1)
						}
					}
				})
			}
			wg.Wait()
			close(stop)
			if p.Outstanding() != 0 {
				t.Errorf("Outstanding = %d with nothing in flight", p.Outstanding())
			}
			for _, m := range p.Members() {
				if m.Breaker == BreakerHalfOpen || m.Outstanding != 0 {
					t.Errorf("%+v with nothing in flight", m)
				}
			}
			if refused.Load()+calls.Load() != workers*each {
				t.Errorf("%d refused + %d served != %d", refused.Load(), calls.Load(), workers*each)
			}
		})
	}
}

// flakyEndpoint fails one request in failEvery.
type flakyEndpoint struct {
	n         atomic.Int64
	failEvery int64
}

func (f *flakyEndpoint) Exchange(context.Context, *codec.Message, *codec.Message) error {
	if f.n.Add(1)%f.failEvery == 0 {
		return context.DeadlineExceeded
	}
	if rand.IntN(100) == 0 {
		return front.ErrDuplicateKey
	}
	return nil
}

func TestPoolPickDoesNotAllocate(t *testing.T) {
	for _, s := range []Strategy{P2C, WeightedRoundRobin} {
		t.Run(s.String(), func(t *testing.T) {
			clock := newManualClock()
			p := newTestPool(t, PoolOptions{Strategy: s, FailureThreshold: 1, Now: clock.Now},
				Member{Name: "a", Dest: nopEndpoint{}}, Member{Name: "b", Dest: nopEndpoint{}},
				Member{Name: "c", Dest: newStubLink(front.Degraded)}, Member{Name: "d", Dest: &stubEndpoint{err: front.ErrUnavailable}})
			_ = poolExchange(t, p)
			for p.Health() == front.Up { // d ejected
				_ = poolExchange(t, p)
			}
			req, resp := poolRequest(t)
			ctx := context.Background()
			if n := testing.AllocsPerRun(1000, func() { p.pick(&poolClock{p: p}) }); n != 0 {
				t.Errorf("pick: %v allocations", n)
			}
			if n := testing.AllocsPerRun(1000, func() { _ = p.Exchange(ctx, req, resp) }); n != 0 {
				t.Errorf("Exchange: %v allocations", n)
			}
			for _, m := range p.members {
				m.state.Store(int32(BreakerOpen)) // every one ejected; no probe due
				m.until.Store(1 << 62)
			}
			if n := testing.AllocsPerRun(1000, func() { _ = p.Exchange(ctx, req, resp) }); n != 0 {
				t.Errorf("Exchange refusing at once: %v allocations", n)
			}
		})
	}
}

func benchPool(b *testing.B, s Strategy) *Pool {
	members := make([]Member, 4)
	for i := range members {
		members[i] = Member{Name: fmt.Sprint("m", i), Dest: nopEndpoint{}, Weight: i + 1}
	}
	return newTestPool(b, PoolOptions{Strategy: s}, members...)
}

func BenchmarkPoolPick(b *testing.B) {
	for _, s := range []Strategy{P2C, WeightedRoundRobin} {
		b.Run(s.String(), func(b *testing.B) {
			p := benchPool(b, s)
			b.ReportAllocs()
			for b.Loop() {
				p.pick(&poolClock{p: p})
			}
		})
	}
}

func BenchmarkPoolExchange(b *testing.B) {
	for _, s := range []Strategy{P2C, WeightedRoundRobin} {
		b.Run(s.String(), func(b *testing.B) {
			p := benchPool(b, s)
			req, resp := poolRequest(b)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Exchange(ctx, req, resp)
			}
		})
		b.Run(s.String()+"-parallel", func(b *testing.B) {
			p := benchPool(b, s)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := poolRequest(b)
				for pb.Next() {
					_ = p.Exchange(ctx, req, resp)
				}
			})
		})
	}
}

// TestPoolBusyIsNotAFailure: a link whose connections are all full is up
// and working; however often it says so, its breaker stays closed.
func TestPoolBusyIsNotAFailure(t *testing.T) {
	a := &stubEndpoint{err: fmt.Errorf("link beijing-1: %w: every connection has 256 requests in flight", front.ErrBusy)}
	p := newTestPool(t, PoolOptions{FailureThreshold: 3}, Member{Name: "a", Dest: a})
	for range 10 {
		if err := poolExchange(t, p); !errors.Is(err, front.ErrBusy) {
			t.Fatalf("exchange: %v", err)
		}
	}
	if s := memberState(t, p, "a"); s.Breaker != BreakerClosed || s.Failures != 0 {
		t.Fatalf("after 10 busy answers: %+v, want closed with no failures", s)
	}
	if h := p.Health(); h != front.Up {
		t.Fatalf("pool health %v", h)
	}
}
