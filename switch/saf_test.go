package switching

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/junction-switch/junction/codec"
	"github.com/prometheus/client_golang/prometheus"
)

// These tests are in the package (not switching_test) to reach what a
// black-box test cannot: the worker's poll cadence, the backoff function and
// the on-disk key layout, to write a corrupt record under a queue's key.

const safPAN = "6299901100000013"

func safQuiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// safLogs is a log sink that tests read back, to check that no PAN leaks.
type safLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *safLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *safLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *safLogs) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// safHost is a test double for a remote host: it answers each advice with
// the response code answer gives for the n-th exchange (or fails), and
// records what it was sent. With a gate, it waits for the gate to close (or
// the attempt to be cancelled) before answering.
type safHost struct {
	answer  func(n int, req *codec.Message) (rc string, err error)
	gate    chan struct{}
	waiting atomic.Int32 // exchanges waiting at the gate

	mu   sync.Mutex
	seen []safSeen
}

type safSeen struct{ mti, stan, rc string }

func (h *safHost) Exchange(ctx context.Context, req, resp *codec.Message) error {
	if h.gate != nil {
		h.waiting.Add(1)
		defer h.waiting.Add(-1)
		select {
		case <-h.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.mu.Lock()
	rc, err := h.answer(len(h.seen), req)
	s := safSeen{mti: req.MTIString(), stan: string(req.Get(11)), rc: rc}
	if err != nil {
		s.rc = "error"
	}
	h.seen = append(h.seen, s)
	h.mu.Unlock()
	if err != nil {
		return err
	}
	if err := resp.InitResponse(req); err != nil {
		return err
	}
	return resp.SetString(39, rc)
}

func (h *safHost) Seen() []safSeen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen)
}

// acked lists the STANs the host acknowledged, given the codes that are not
// acknowledgements.
func (h *safHost) acked(retry ...string) []string {
	var out []string
	for _, s := range h.Seen() {
		if s.rc != "error" && !slices.Contains(retry, s.rc) {
			out = append(out, s.stan)
		}
	}
	return out
}

// safAnswers answers the n-th exchange with rcs[n], and every one after the
// last with the last.
func safAnswers(rcs ...string) func(int, *codec.Message) (string, error) {
	return func(n int, _ *codec.Message) (string, error) { return rcs[min(n, len(rcs)-1)], nil }
}

func safDown(int, *codec.Message) (string, error) {
	return "", fmt.Errorf("link beijing-1: %w", ErrUnavailable)
}

// safDestFunc is a Destination in one function, for answers safHost does not
// give.
type safDestFunc func(ctx context.Context, req, resp *codec.Message) error

func (f safDestFunc) Exchange(ctx context.Context, req, resp *codec.Message) error {
	return f(ctx, req, resp)
}

// safClock is a clock that moves only when a test moves it.
type safClock struct{ ns atomic.Int64 }

func newSAFClock() *safClock {
	c := &safClock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *safClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *safClock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *safClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// safOpen opens a SAF for a test, with millisecond backoffs and polling
// unless o says otherwise, and closes it when the test ends.
func safOpen(t *testing.T, o SAFOptions) *SAF {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Dialect == nil {
		o.Dialect = codec.ISO87ASCII()
	}
	if o.BackoffMin == 0 {
		o.BackoffMin, o.BackoffMax = time.Millisecond, 4*time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = safQuiet()
	}
	if o.poll == 0 {
		o.poll = time.Millisecond
	}
	q, err := OpenSAF(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// safAdvice builds an advice of type mti with STAN stan.
func safAdvice(t *testing.T, d *codec.Dialect, mti string, stan int) *codec.Message {
	t.Helper()
	m := codec.NewMessage(d)
	err := errors.Join(
		m.SetMTI([4]byte([]byte(mti))),
		m.SetString(2, safPAN),
		m.SetString(3, "000000"),
		m.SetString(4, "000000010000"),
		m.SetString(7, "0301120000"),
		m.SetNumber(11, uint64(stan)),
		m.SetString(41, "T0000001"),
	)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func safEnqueue(t *testing.T, q *SAF, dest, mti string, stan int) {
	t.Helper()
	if err := q.Enqueue(dest, safAdvice(t, q.dialect, mti, stan)); err != nil {
		t.Fatal(err)
	}
}

// safEventually polls cond until it holds, failing the test after 10 s.
func safEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func safPending(t *testing.T, q *SAF, dest string) []SAFEntry {
	t.Helper()
	p, err := q.Pending(dest)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// safMetric reads one sample of a gauge or counter; labels are name, value
// pairs. An absent sample reads 0.
func safMetric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue metrics
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func safMTIs(seen []safSeen) []string {
	out := make([]string, len(seen))
	for i, s := range seen {
		out[i] = s.mti
	}
	return out
}

func TestSAFDeliversAnAdviceAndDeletesIt(t *testing.T) {
	reg := prometheus.NewRegistry()
	host := &safHost{answer: safAnswers("00")}
	// A poll of an hour: the advice goes out because Enqueue wakes the
	// worker, not because the worker happened to look.
	q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"beijing": host}, Registerer: reg, poll: time.Hour})

	safEnqueue(t, q, "beijing", "0420", 1)
	safEventually(t, "the advice to be acknowledged", func() bool { return q.Depth("beijing") == 0 })

	if got := host.Seen(); len(got) != 1 || got[0] != (safSeen{"0420", "000001", "00"}) {
		t.Fatalf("host saw %v, want one 0420 with STAN 000001", got)
	}
	if p := safPending(t, q, "beijing"); len(p) != 0 {
		t.Fatalf("pending after the acknowledgement: %+v", p)
	}
	if n := safMetric(t, reg, "junction_switch_saf_attempts_total", "destination", "beijing", "result", "acked"); n != 1 {
		t.Errorf("acked attempts = %v, want 1", n)
	}
	if n := safMetric(t, reg, "junction_switch_saf_depth", "destination", "beijing"); n != 0 {
		t.Errorf("depth gauge = %v, want 0", n)
	}
}

func TestSAFRepeatsCarryTheRepeatFlag(t *testing.T) {
	for _, tc := range []struct{ first, repeat string }{
		{"0420", "0421"}, // reversal advice
		{"0220", "0221"}, // stand-in completion advice
		{"0120", "0121"}, // authorization advice
	} {
		t.Run(fmt.Sprintf("%s is sent first, then %s", tc.first, tc.repeat), func(t *testing.T) {
			host := &safHost{answer: safAnswers("91", "91", "00")}
			q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"beijing": host}})
			safEnqueue(t, q, "beijing", tc.first, 7)
			safEventually(t, "the advice to be acknowledged", func() bool { return q.Depth("beijing") == 0 })
			want := []string{tc.first, tc.repeat, tc.repeat}
			if got := safMTIs(host.Seen()); !slices.Equal(got, want) {
				t.Fatalf("host saw MTIs %v, want %v", got, want)
			}
		})
	}
}

func TestSAFRetryCodesKeepAnAdviceOtherCodesAcknowledgeIt(t *testing.T) {
	answer := func(rc string) Destination { return &safHost{answer: safAnswers(rc)} }
	for _, tc := range []struct {
		name   string
		dest   Destination
		retry  []string
		kept   bool
		result string // the attempts_total result of every attempt
	}{
		{name: "91 keeps it", dest: answer("91"), kept: true, result: "retry"},
		{name: "96 keeps it", dest: answer("96"), kept: true, result: "retry"},
		{name: "00 acknowledges it", dest: answer("00"), result: "acked"},
		{name: "25 (original not found) acknowledges it", dest: answer("25"), result: "acked"},
		{name: "05 acknowledges it", dest: answer("05"), result: "acked"},
		{name: "a configured retry code keeps it", dest: answer("68"), retry: []string{"68"}, kept: true, result: "retry"},
		{name: "96 acknowledges it when only 91 is configured", dest: answer("96"), retry: []string{"91"}, result: "acked"},
		{name: "a failed exchange keeps it", dest: &safHost{answer: safDown}, kept: true, result: "error"},
		{name: "an answer without a response code keeps it", kept: true, result: "error",
			dest: safDestFunc(func(_ context.Context, req, resp *codec.Message) error { return resp.InitResponse(req) })},
		{name: "an answer to another request keeps it", kept: true, result: "error",
			dest: safDestFunc(func(_ context.Context, req, resp *codec.Message) error {
				return errors.Join(resp.SetMTI([4]byte{'0', '2', '1', '0'}), resp.SetString(39, "00"))
			})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"beijing": tc.dest}, RetryCodes: tc.retry, Registerer: reg})
			safEnqueue(t, q, "beijing", "0420", 1)
			attempts := func() float64 {
				return safMetric(t, reg, "junction_switch_saf_attempts_total", "destination", "beijing", "result", tc.result)
			}
			if !tc.kept {
				safEventually(t, "the acknowledgement", func() bool { return q.Depth("beijing") == 0 })
				if n := attempts(); n != 1 {
					t.Fatalf("%s attempts = %v, want 1", tc.result, n)
				}
				return
			}
			safEventually(t, "three attempts", func() bool {
				p := safPending(t, q, "beijing")
				return len(p) == 1 && p[0].Attempts >= 3
			})
			if n := attempts(); n < 3 {
				t.Fatalf("%s attempts = %v, want at least 3", tc.result, n)
			}
			if d := q.Depth("beijing"); d != 1 {
				t.Fatalf("depth %d, want 1", d)
			}
		})
	}
}

func TestSAFBackoff(t *testing.T) {
	lo, hi := time.Second, 30*time.Second
	ceiling := func(attempts uint32) time.Duration { return min(hi, lo<<(attempts-1)) }

	t.Run("the ceiling doubles from BackoffMin up to BackoffMax", func(t *testing.T) {
		for a := uint32(1); a <= 12; a++ {
			least := safBackoff(lo, hi, a, func(int64) int64 { return 0 })
			most := safBackoff(lo, hi, a, func(n int64) int64 { return n - 1 })
			if least != lo || most != ceiling(a) {
				t.Errorf("attempt %d: waits %v..%v, want %v..%v", a, least, most, lo, ceiling(a))
			}
		}
	})
	t.Run("the wait is jittered within the bounds", func(t *testing.T) {
		for a := uint32(1); a <= 8; a++ {
			seen := map[time.Duration]bool{}
			for range 200 {
				w := safBackoff(lo, hi, a, rand.Int64N)
				if w < lo || w > ceiling(a) {
					t.Fatalf("attempt %d: wait %v outside %v..%v", a, w, lo, ceiling(a))
				}
				seen[w] = true
			}
			if a > 1 && len(seen) < 100 {
				t.Errorf("attempt %d: only %d distinct waits in 200", a, len(seen))
			}
		}
	})
	t.Run("huge attempt counts and bounds do not overflow", func(t *testing.T) {
		const most = time.Duration(1<<63 - 1)
		for _, a := range []uint32{1, 62, 63, 64, 1000, 1<<32 - 1} {
			if w := safBackoff(time.Nanosecond, most, a, rand.Int64N); w < time.Nanosecond || w > most {
				t.Errorf("attempt %d: wait %v", a, w)
			}
		}
	})
	t.Run("the worker schedules each retry by it", func(t *testing.T) {
		clock := newSAFClock()
		host := &safHost{answer: safAnswers("91")}
		q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"beijing": host}, Clock: clock.Now,
			BackoffMin: time.Second, BackoffMax: 8 * time.Second})
		safEnqueue(t, q, "beijing", "0420", 1)
		for a := 1; a <= 6; a++ {
			var e SAFEntry
			safEventually(t, fmt.Sprintf("attempt %d to be recorded", a), func() bool {
				p := safPending(t, q, "beijing")
				e = p[0]
				return e.Attempts == a
			})
			wait := e.NextAttempt.Sub(clock.Now())
			if top := min(8*time.Second, time.Second<<(a-1)); wait < time.Second || wait > top {
				t.Fatalf("after attempt %d the next is in %v, want 1s..%v", a, wait, top)
			}
			if n := len(host.Seen()); n != a {
				t.Fatalf("host saw %d attempts before the retry was due, want %d", n, a)
			}
			clock.Set(e.NextAttempt)
		}
	})
}

func TestSAFKeepsOrderPerDestination(t *testing.T) {
	// The head is refused three times; nothing behind it may overtake it.
	host := &safHost{answer: safAnswers("91", "96", "91", "00")}
	q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"beijing": host}})
	var want []string
	for i := 1; i <= 20; i++ {
		safEnqueue(t, q, "beijing", "0420", i)
		want = append(want, fmt.Sprintf("%06d", i))
	}
	safEventually(t, "every advice to be acknowledged", func() bool { return q.Depth("beijing") == 0 })
	if got := host.acked("91", "96"); !slices.Equal(got, want) {
		t.Fatalf("acknowledged in order %v, want %v", got, want)
	}
	seen := host.Seen()
	if !slices.IsSortedFunc(seen, func(a, b safSeen) int { return strings.Compare(a.stan, b.stan) }) {
		t.Fatalf("sent out of order: %v", seen)
	}
}

func TestSAFDestinationsDoNotBlockEachOther(t *testing.T) {
	stuck := &safHost{answer: safAnswers("00"), gate: make(chan struct{})} // answers nothing, ever
	up := &safHost{answer: safAnswers("00")}
	q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"shanghai": stuck, "beijing": up}, Timeout: time.Hour})
	safEnqueue(t, q, "shanghai", "0420", 1)
	for i := 1; i <= 10; i++ {
		safEnqueue(t, q, "beijing", "0420", i)
	}
	safEventually(t, "beijing's advices to be acknowledged", func() bool { return q.Depth("beijing") == 0 })
	if n := len(up.acked()); n != 10 {
		t.Fatalf("beijing acknowledged %d advices, want 10", n)
	}
	if d := q.Depth("shanghai"); d != 1 {
		t.Fatalf("shanghai depth %d, want 1", d)
	}
}

func TestSAFSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	down := &safHost{answer: safDown}
	q, err := OpenSAF(SAFOptions{Dir: dir, Dialect: codec.ISO87ASCII(), Destinations: map[string]Destination{"beijing": down},
		BackoffMin: time.Millisecond, BackoffMax: 4 * time.Millisecond, Logger: safQuiet(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		safEnqueue(t, q, "beijing", "0420", i)
	}
	safEventually(t, "the head to be tried", func() bool { return len(down.Seen()) >= 2 })
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	gate := make(chan struct{})
	host := &safHost{answer: safAnswers("00"), gate: gate}
	q = safOpen(t, SAFOptions{Dir: dir, Destinations: map[string]Destination{"beijing": host}, Registerer: reg})
	if d := q.Depth("beijing"); d != 5 {
		t.Fatalf("depth after the restart %d, want 5", d)
	}
	if n := safMetric(t, reg, "junction_switch_saf_depth", "destination", "beijing"); n != 5 {
		t.Fatalf("depth gauge after the restart %v, want 5", n)
	}
	p := safPending(t, q, "beijing")
	if len(p) != 5 || p[0].MTI != "0420" || p[0].STAN != "000001" || p[0].PAN != "629990******0013" || p[0].Attempts < 2 {
		t.Fatalf("pending after the restart: %+v", p)
	}
	close(gate)
	safEventually(t, "the left advices to be delivered", func() bool { return q.Depth("beijing") == 0 })
	want := []safSeen{{"0421", "000001", "00"}}
	for i := 2; i <= 5; i++ {
		want = append(want, safSeen{"0420", fmt.Sprintf("%06d", i), "00"})
	}
	if got := host.Seen(); !slices.Equal(got, want) {
		t.Fatalf("after the restart the host saw %v, want %v", got, want)
	}
}

func TestSAFCloseCancelsAnAttemptAndKeepsTheEntry(t *testing.T) {
	dir := t.TempDir()
	stuck := &safHost{answer: safAnswers("00"), gate: make(chan struct{})}
	q, err := OpenSAF(SAFOptions{Dir: dir, Dialect: codec.ISO87ASCII(), Destinations: map[string]Destination{"beijing": stuck},
		Timeout: time.Hour, MaxAttempts: 1, Logger: safQuiet(), poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	safEnqueue(t, q, "beijing", "0420", 1)
	safEventually(t, "the attempt to start", func() bool { return stuck.waiting.Load() == 1 })
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue("beijing", safAdvice(t, codec.ISO87ASCII(), "0420", 2)); !errors.Is(err, ErrSAFClosed) {
		t.Fatalf("Enqueue after Close: %v, want ErrSAFClosed", err)
	}
	if _, err := q.Pending("beijing"); !errors.Is(err, ErrSAFClosed) {
		t.Fatalf("Pending after Close: %v, want ErrSAFClosed", err)
	}

	// The cut-short attempt did not use up MaxAttempts: the advice is still
	// queued, and goes out again, as a repeat, since the host may have had
	// the first.
	host := &safHost{answer: safAnswers("00")}
	q = safOpen(t, SAFOptions{Dir: dir, Destinations: map[string]Destination{"beijing": host}, MaxAttempts: 1})
	safEventually(t, "the advice to be delivered", func() bool { return q.Depth("beijing") == 0 })
	if got := host.Seen(); len(got) != 1 || got[0] != (safSeen{"0421", "000001", "00"}) {
		t.Fatalf("after reopening the host saw %v", got)
	}
	if d, err := q.DeadLetters("beijing"); err != nil || len(d) != 0 {
		t.Fatalf("dead letters %+v, %v; want none", d, err)
	}
}

func TestSAFDeadLetters(t *testing.T) {
	t.Run("an advice refused MaxAttempts times is moved aside and the next goes", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		var logs safLogs
		host := &safHost{answer: func(_ int, req *codec.Message) (string, error) {
			if string(req.Get(11)) == "000001" {
				return "91", nil
			}
			return "00", nil
		}}
		q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"beijing": host}, MaxAttempts: 3,
			Registerer: reg, Logger: logs.logger()})
		safEnqueue(t, q, "beijing", "0420", 1)
		safEnqueue(t, q, "beijing", "0420", 2)
		safEventually(t, "the queue to empty", func() bool { return q.Depth("beijing") == 0 })

		want := []safSeen{{"0420", "000001", "91"}, {"0421", "000001", "91"}, {"0421", "000001", "91"}, {"0420", "000002", "00"}}
		if got := host.Seen(); !slices.Equal(got, want) {
			t.Fatalf("host saw %v, want %v", got, want)
		}
		if n := safMetric(t, reg, "junction_switch_saf_dead_total", "destination", "beijing", "reason", "max_attempts"); n != 1 {
			t.Fatalf("dead max_attempts = %v, want 1", n)
		}
		dead, err := q.DeadLetters("beijing")
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) != 1 || dead[0].Reason != "max_attempts" || dead[0].Attempts != 3 || dead[0].STAN != "000001" ||
			dead[0].MTI != "0420" || dead[0].PAN != "629990******0013" || dead[0].DeadAt.IsZero() {
			t.Fatalf("dead letters: %+v", dead)
		}
		out := logs.String()
		if !strings.Contains(out, "629990******0013") || !strings.Contains(out, "reason=max_attempts") {
			t.Errorf("the dead letter is not logged with its masked PAN and reason:\n%s", out)
		}
		if strings.Contains(out, safPAN) {
			t.Errorf("a full PAN reached the log:\n%s", out)
		}
	})
	t.Run("an advice queued longer than MaxAge is moved aside", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		clock := newSAFClock()
		down := &safHost{answer: safDown}
		q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"beijing": down}, MaxAge: time.Minute,
			Clock: clock.Now, Registerer: reg})
		safEnqueue(t, q, "beijing", "0420", 1)
		safEventually(t, "a first attempt", func() bool { return len(down.Seen()) >= 1 })
		clock.Advance(time.Minute)
		safEventually(t, "the advice to expire", func() bool { return q.Depth("beijing") == 0 })
		if n := safMetric(t, reg, "junction_switch_saf_dead_total", "destination", "beijing", "reason", "expired"); n != 1 {
			t.Fatalf("dead expired = %v, want 1", n)
		}
		dead, err := q.DeadLetters("beijing")
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) != 1 || dead[0].Reason != "expired" || dead[0].STAN != "000001" || dead[0].Age < time.Minute {
			t.Fatalf("dead letters: %+v", dead)
		}
	})
}

func TestSAFCorruptRecordIsDeadLettered(t *testing.T) {
	dir := t.TempDir()
	d := codec.ISO87ASCII()
	q, err := OpenSAF(SAFOptions{Dir: dir, Dialect: d, Destinations: map[string]Destination{"beijing": &safHost{answer: safDown}}, Logger: safQuiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// Two records under beijing's queue, written behind the SAF's back: one
	// whose checksum fails, one whose checksum holds but whose message does
	// not unpack. Both carry a PAN that must not reach the log.
	packed, err := safAdvice(t, d, "0420", 1).Pack(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	torn := appendSAFRecord(nil, &safRecord{enqueued: now, next: now, msg: packed})
	torn[len(torn)/2] ^= 0x20
	garbled := appendSAFRecord(nil, &safRecord{enqueued: now, next: now, msg: []byte("0420not a bitmap " + safPAN)})
	db, err := badger.Open(safBadgerOptions(dir, safQuiet()))
	if err != nil {
		t.Fatal(err)
	}
	prefix := safPrefix(safPrefixQueue, "beijing")
	err = db.Update(func(txn *badger.Txn) error {
		return errors.Join(txn.Set(safKey(prefix, 1), torn), txn.Set(safKey(prefix, 2), garbled))
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	var logs safLogs
	host := &safHost{answer: safAnswers("00")}
	q = safOpen(t, SAFOptions{Dir: dir, Dialect: d, Destinations: map[string]Destination{"beijing": host},
		Registerer: reg, Logger: logs.logger()})
	safEnqueue(t, q, "beijing", "0420", 3)
	safEventually(t, "the queue to empty", func() bool { return q.Depth("beijing") == 0 })

	if got := host.Seen(); len(got) != 1 || got[0].stan != "000003" {
		t.Fatalf("host saw %v, want only the good advice", got)
	}
	if n := safMetric(t, reg, "junction_switch_saf_dead_total", "destination", "beijing", "reason", "corrupt"); n != 2 {
		t.Fatalf("dead corrupt = %v, want 2", n)
	}
	dead, err := q.DeadLetters("beijing")
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[0].Seq != 1 || dead[1].Seq != 2 || dead[0].Reason != "corrupt" || dead[1].Reason != "corrupt" {
		t.Fatalf("dead letters: %+v", dead)
	}
	if out := logs.String(); strings.Contains(out, safPAN) || strings.Count(out, "reason=corrupt") != 2 {
		t.Fatalf("want two corrupt records logged, no PAN:\n%s", out)
	}
}

func TestSAFEnqueue(t *testing.T) {
	host := &safHost{answer: safAnswers("00")}
	q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"beijing": host}, poll: time.Hour})

	t.Run("to an unknown destination is an error", func(t *testing.T) {
		err := q.Enqueue("atlantis", safAdvice(t, q.dialect, "0420", 1))
		if !errors.Is(err, ErrSAFUnknownDestination) {
			t.Fatalf("got %v, want ErrSAFUnknownDestination", err)
		}
		if _, err := q.Pending("atlantis"); !errors.Is(err, ErrSAFUnknownDestination) {
			t.Fatalf("Pending: got %v, want ErrSAFUnknownDestination", err)
		}
	})
	t.Run("of a request is an error", func(t *testing.T) {
		if err := q.Enqueue("beijing", safAdvice(t, q.dialect, "0200", 1)); !errors.Is(err, ErrSAFNotAdvice) {
			t.Fatalf("got %v, want ErrSAFNotAdvice", err)
		}
	})
	t.Run("of a message without an MTI is an error", func(t *testing.T) {
		if err := q.Enqueue("beijing", codec.NewMessage(q.dialect)); !errors.Is(err, codec.ErrMTI) {
			t.Fatalf("got %v, want codec.ErrMTI", err)
		}
	})
	t.Run("of a message of another layout is an error", func(t *testing.T) {
		if err := q.Enqueue("beijing", safAdvice(t, codec.ISO93ASCII(), "1420", 1)); err == nil {
			t.Fatal("an ISO 8583:1993 message was queued for a 1987 SAF")
		}
	})
	t.Run("of a message of the same layout stores it in the SAF's dialect", func(t *testing.T) {
		if err := q.Enqueue("beijing", safAdvice(t, codec.ISO87Binary(), "0420", 9)); err != nil {
			t.Fatal(err)
		}
		safEventually(t, "the advice to be delivered", func() bool { return len(host.Seen()) == 1 })
		if got := host.Seen()[0]; got != (safSeen{"0420", "000009", "00"}) {
			t.Fatalf("host saw %v", got)
		}
	})
}

func TestOpenSAF(t *testing.T) {
	t.Run("reports every bad option at once", func(t *testing.T) {
		_, err := OpenSAF(SAFOptions{
			Destinations: map[string]Destination{"": &safHost{}, "beijing": nil},
			BackoffMin:   2 * time.Second, BackoffMax: time.Second, MaxAttempts: -1, MaxAge: -time.Second,
			RetryCodes: []string{"91", "9"},
		})
		if err == nil {
			t.Fatal("bad options accepted")
		}
		for _, want := range []string{"Dir is empty", "Dialect is nil", `name ""`, `Destinations["beijing"] is nil`,
			"BackoffMax (1s) is below BackoffMin (2s)", "MaxAttempts is -1", "MaxAge is -1s", `RetryCodes: "9"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not say %q:\n%v", want, err)
			}
		}
	})
	t.Run("refuses a directory of another dialect", func(t *testing.T) {
		dir := t.TempDir()
		dests := map[string]Destination{"beijing": &safHost{answer: safAnswers("00")}}
		q := safOpen(t, SAFOptions{Dir: dir, Destinations: dests})
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := OpenSAF(SAFOptions{Dir: dir, Dialect: codec.ISO87Binary(), Destinations: dests, Logger: safQuiet()})
		if err == nil || !strings.Contains(err.Error(), "dialect iso87ascii") {
			t.Fatalf("got %v, want a dialect mismatch", err)
		}
	})
}

func TestSAFMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	clock := newSAFClock()
	var up atomic.Bool
	host := &safHost{answer: func(int, *codec.Message) (string, error) {
		if up.Load() {
			return "00", nil
		}
		return safDown(0, nil)
	}}
	q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"beijing": host}, Clock: clock.Now, Registerer: reg,
		BackoffMin: time.Hour, BackoffMax: time.Hour})
	metric := func(name string, labels ...string) float64 {
		return safMetric(t, reg, "junction_switch_saf_"+name, append([]string{"destination", "beijing"}, labels...)...)
	}
	enqueued := clock.Now()
	for i := 1; i <= 3; i++ {
		safEnqueue(t, q, "beijing", "0420", i)
	}
	if n := metric("depth"); n != 3 {
		t.Fatalf("depth = %v, want 3", n)
	}
	safEventually(t, "a failed first attempt", func() bool { return metric("attempts_total", "result", "error") == 1 })

	clock.Advance(10 * time.Second)
	safEventually(t, "the oldest age to follow the clock", func() bool { return metric("oldest_age_seconds") == 10 })
	p := safPending(t, q, "beijing")
	if len(p) != 3 || p[0].Age != 10*time.Second || p[0].Attempts != 1 || !p[0].NextAttempt.Equal(enqueued.Add(time.Hour)) ||
		p[1].Attempts != 0 || !p[1].NextAttempt.Equal(enqueued) {
		t.Fatalf("pending: %+v", p)
	}

	up.Store(true)
	clock.Advance(time.Hour)
	safEventually(t, "the queue to drain", func() bool { return q.Depth("beijing") == 0 })
	safEventually(t, "the oldest age to reset", func() bool { return metric("oldest_age_seconds") == 0 })
	for _, c := range []struct {
		name, result string
		want         float64
	}{{"attempts_total", "acked", 3}, {"attempts_total", "error", 1}, {"attempts_total", "retry", 0}, {"depth", "", 0}} {
		var labels []string
		if c.result != "" {
			labels = []string{"result", c.result}
		}
		if n := metric(c.name, labels...); n != c.want {
			t.Errorf("%s %s = %v, want %v", c.name, c.result, n, c.want)
		}
	}
}

func TestSAFConcurrentEnqueue(t *testing.T) {
	hosts := map[string]*safHost{"beijing": {answer: safAnswers("00")}, "shanghai": {answer: safAnswers("00")}}
	q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"beijing": hosts["beijing"], "shanghai": hosts["shanghai"]}})
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				dest := "beijing"
				if i%2 == 1 {
					dest = "shanghai"
				}
				if err := q.Enqueue(dest, safAdvice(t, q.dialect, "0420", g*1000+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	safEventually(t, "every advice to be delivered", func() bool {
		return q.Depth("beijing") == 0 && q.Depth("shanghai") == 0
	})
	total := 0
	for name, h := range hosts {
		got := h.acked()
		total += len(got)
		if len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) {
			t.Errorf("%s: an advice was delivered twice: %v", name, got)
		}
		// One writer's advices to one destination arrive in its order.
		last := map[int]int{}
		for _, stan := range got {
			n, err := strconv.Atoi(stan)
			if err != nil {
				t.Fatal(err)
			}
			g, i := n/1000, n%1000
			if prev, ok := last[g]; ok && i < prev {
				t.Errorf("%s: writer %d's advice %d came after its %d", name, g, i, prev)
			}
			last[g] = i
		}
	}
	if total != writers*each {
		t.Fatalf("delivered %d advices, want %d", total, writers*each)
	}
}

// TestSAFPendingFirst: the bounded admin view lists the oldest advices
// only, in order.
func TestSAFPendingFirst(t *testing.T) {
	stuck := &safHost{answer: safAnswers("00"), gate: make(chan struct{})}
	q := safOpen(t, SAFOptions{Destinations: map[string]Destination{"beijing": stuck}, Timeout: time.Hour})
	for i := 1; i <= 5; i++ {
		safEnqueue(t, q, "beijing", "0420", i)
	}
	got, err := q.PendingFirst("beijing", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].STAN != "000001" || got[1].STAN != "000002" {
		t.Fatalf("first 2: %+v", got)
	}
	all, err := q.Pending("beijing")
	if err != nil || len(all) != 5 {
		t.Fatalf("all: %d, %v", len(all), err)
	}
}
