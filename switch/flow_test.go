package switching_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	switching "github.com/junction-switch/junction/switch"
)

const second = int64(time.Second)

// takes counts how many of n Takes at now a bucket admits.
func takes(b *switching.Bucket, now int64, n int) int {
	got := 0
	for range n {
		if b.Take(now) {
			got++
		}
	}
	return got
}

func TestBucket(t *testing.T) {
	t.Run("a full bucket admits its burst at once and then refuses", func(t *testing.T) {
		b := switching.NewBucket(switching.Rate{PerSecond: 10, Burst: 5})
		if got := takes(b, 0, 100); got != 5 {
			t.Fatalf("admitted %d of 100 at once, want the burst of 5", got)
		}
	})

	t.Run("tokens come back one interval apart", func(t *testing.T) {
		b := switching.NewBucket(switching.Rate{PerSecond: 10, Burst: 2})
		takes(b, 0, 2)
		interval := int64(100 * time.Millisecond)
		for _, step := range []struct {
			now  int64
			want bool
		}{
			{interval - 1, false},
			{interval, true},
			{interval, false},
			{3 * interval, true}, // two intervals later: two tokens
			{3 * interval, true},
			{3 * interval, false},
		} {
			if got := b.Take(step.now); got != step.want {
				t.Fatalf("Take(%d) = %v, want %v", step.now, got, step.want)
			}
		}
	})

	t.Run("a fractional rate refills over seconds", func(t *testing.T) {
		for _, c := range []struct {
			rate     float64
			interval int64
		}{
			{0.5, 2 * second},
			{2.5, 400 * int64(time.Millisecond)},
			{0.001, 1000 * second},
		} {
			b := switching.NewBucket(switching.Rate{PerSecond: c.rate, Burst: 1})
			if !b.Take(7) || b.Take(7) || b.Take(7+c.interval-1) || !b.Take(7+c.interval) {
				t.Errorf("%v a second: want one token per %v", c.rate, time.Duration(c.interval))
			}
		}
	})

	t.Run("a rate whose interval is not whole nanoseconds is never exceeded", func(t *testing.T) {
		// 3 a second is an interval of 333333333.3 ns, rounded up to
		// 333333334: a minute from a full bucket of 10 admits the burst
		// and 179 more, where exact arithmetic would admit 180 more.
		b := switching.NewBucket(switching.Rate{PerSecond: 3, Burst: 10})
		got := 0
		for now := int64(0); now <= 60*second; now += int64(time.Millisecond) {
			if b.Take(now) {
				got++
			}
		}
		if got != 189 {
			t.Fatalf("admitted %d in a minute at 3 a second from a burst of 10, want 189", got)
		}
	})

	t.Run("a huge jump of the clock refills only to the burst", func(t *testing.T) {
		b := switching.NewBucket(switching.Rate{PerSecond: 1000, Burst: 3})
		takes(b, 0, 3)
		century := 100 * 365 * 24 * int64(time.Hour)
		if got := takes(b, century, 100); got != 3 {
			t.Fatalf("admitted %d after a century idle, want the burst of 3", got)
		}
		if got := takes(b, 1<<62-1, 100); got != 3 {
			t.Fatalf("admitted %d after a jump to 2^62 ns, the clock's documented bound, want the burst of 3", got)
		}
	})

	t.Run("a clock that goes back refuses and leaves the bucket as it was", func(t *testing.T) {
		b := switching.NewBucket(switching.Rate{PerSecond: 1, Burst: 1})
		if !b.Take(10 * second) {
			t.Fatal("first take refused")
		}
		if b.Take(5 * second) {
			t.Fatal("a take with an earlier clock was admitted")
		}
		if !b.Take(11 * second) {
			t.Fatal("the token due at 11s was lost to the earlier clock")
		}
	})

	t.Run("a clock of any origin starts full", func(t *testing.T) {
		b := switching.NewBucket(switching.Rate{PerSecond: 1, Burst: 2})
		if got := takes(b, -1_000*second, 10); got != 2 {
			t.Fatalf("admitted %d at a negative clock, want the burst of 2", got)
		}
	})

	t.Run("no rate is no limit", func(t *testing.T) {
		for _, r := range []switching.Rate{{}, {PerSecond: -1, Burst: 3}, {PerSecond: math.NaN()}, {PerSecond: math.Inf(1)}} {
			if got := takes(switching.NewBucket(r), 0, 1000); got != 1000 {
				t.Errorf("%+v admitted %d of 1000", r, got)
			}
		}
		var zero switching.Bucket
		if got := takes(&zero, 0, 1000); got != 1000 {
			t.Errorf("the zero Bucket admitted %d of 1000", got)
		}
	})

	t.Run("a burst below one is one", func(t *testing.T) {
		for _, burst := range []int{0, -5} {
			b := switching.NewBucket(switching.Rate{PerSecond: 1, Burst: burst})
			if got := takes(b, 0, 10); got != 1 {
				t.Errorf("burst %d admitted %d at once, want 1", burst, got)
			}
		}
	})

	t.Run("extreme rates neither overflow nor wrap", func(t *testing.T) {
		slow := switching.NewBucket(switching.Rate{PerSecond: 1e-30, Burst: math.MaxInt})
		if got := takes(slow, 0, 10); got != 1 {
			t.Errorf("1e-30 a second admitted %d at once, want 1 (burst times interval is capped)", got)
		}
		fast := switching.NewBucket(switching.Rate{PerSecond: 1e15, Burst: 1})
		if got := takes(fast, 0, 10); got != 1 {
			t.Errorf("1e15 a second admitted %d in one nanosecond, want 1", got)
		}
	})

	t.Run("agrees with a counted token bucket step by step", func(t *testing.T) {
		// The model keeps its tokens as nanoseconds of credit and refills
		// them with elapsed time: the textbook form, against which the
		// full-time form of Bucket must agree on every step.
		rng := rand.New(rand.NewPCG(8583, 1987))
		for _, r := range []switching.Rate{{1, 1}, {4, 3}, {1000, 50}, {0.25, 2}, {1e6, 7}} {
			interval := int64(1e9 / r.PerSecond)
			capacity := int64(r.Burst) * interval
			credit, last := capacity, int64(0)
			b := switching.NewBucket(r)
			now := int64(0)
			for i := range 20000 {
				now += rng.Int64N(3 * interval / int64(r.Burst+1))
				credit = min(capacity, credit+now-last)
				last = now
				want := credit >= interval
				if want {
					credit -= interval
				}
				if got := b.Take(now); got != want {
					t.Fatalf("%+v step %d at %d: Take = %v, the model says %v", r, i, now, got, want)
				}
			}
		}
	})
}

func TestBucketConcurrent(t *testing.T) {
	t.Run("racing takers share exactly the burst", func(t *testing.T) {
		b := switching.NewBucket(switching.Rate{PerSecond: 1, Burst: 100})
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { admitted.Add(int64(takes(b, 0, 1000))) })
		}
		wg.Wait()
		if got := admitted.Load(); got != 100 {
			t.Fatalf("8 goroutines admitted %d at one instant, want the burst of 100", got)
		}
	})

	t.Run("racing takers with a moving clock never beat the rate", func(t *testing.T) {
		// Each goroutine reads a shared clock and then takes, so Takes
		// arrive with their clocks a little out of order, as they do in
		// the switch.
		r := switching.Rate{PerSecond: 1000, Burst: 10}
		b := switching.NewBucket(r)
		var clock, admitted atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 5000 {
					if b.Take(clock.Add(int64(10 * time.Microsecond))) {
						admitted.Add(1)
					}
				}
			})
		}
		wg.Wait()
		elapsed := clock.Load()
		bound := int64(r.Burst) + elapsed/int64(time.Millisecond)
		if got := admitted.Load(); got > bound || got < bound/2 {
			t.Fatalf("admitted %d over %v, want at most %d (and not starved)", got, time.Duration(elapsed), bound)
		}
	})
}

func TestBuckets(t *testing.T) {
	rate := switching.Rate{PerSecond: 1, Burst: 2}

	t.Run("each key has its own bucket", func(t *testing.T) {
		s := switching.NewBuckets(rate, 10)
		for _, key := range []string{"pos", "atm", "bank-93"} {
			got := 0
			for range 5 {
				if s.Take(key, 0) {
					got++
				}
			}
			if got != 2 {
				t.Errorf("%s admitted %d, want its own burst of 2", key, got)
			}
		}
		if s.Len() != 3 || s.Overflowed() != 0 {
			t.Fatalf("Len %d, Overflowed %d, want 3 and 0", s.Len(), s.Overflowed())
		}
	})

	t.Run("keys beyond maxKeys share one overflow bucket and are counted", func(t *testing.T) {
		s := switching.NewBuckets(rate, 2)
		s.Take("a", 0)
		s.Take("b", 0)
		admitted := 0
		for _, key := range []string{"c", "d", "e", "c"} {
			if s.Take(key, 0) {
				admitted++
			}
		}
		if admitted != 2 {
			t.Errorf("keys c, d, e admitted %d between them, want the one shared burst of 2", admitted)
		}
		if s.Overflowed() != 4 || s.Len() != 2 {
			t.Errorf("Overflowed %d, Len %d, want 4 and 2", s.Overflowed(), s.Len())
		}
		if !s.Take("a", 0) || s.Take("a", 0) {
			t.Error("key a lost its own bucket to the overflow")
		}
		if !s.Take("c", second) {
			t.Error("the overflow bucket does not refill")
		}
	})

	t.Run("maxKeys zero makes one limit for all keys", func(t *testing.T) {
		s := switching.NewBuckets(rate, 0)
		if !s.Take("a", 0) || !s.Take("b", 0) || s.Take("c", 0) {
			t.Error("want two admitted across all keys, then refusal")
		}
		if s.Len() != 0 || s.Overflowed() != 3 {
			t.Errorf("Len %d, Overflowed %d, want 0 and 3", s.Len(), s.Overflowed())
		}
	})

	t.Run("no limit keeps no keys", func(t *testing.T) {
		s := switching.NewBuckets(switching.Rate{}, 1)
		for i := range 100 {
			if !s.Take(fmt.Sprint(i), 0) {
				t.Fatal("a key was refused without a limit")
			}
		}
		if s.Len() != 0 || s.Overflowed() != 0 {
			t.Errorf("Len %d, Overflowed %d, want 0 and 0", s.Len(), s.Overflowed())
		}
	})

	t.Run("a key is kept as a copy, not the caller's bytes", func(t *testing.T) {
		// A hot path may look keys up with a string over a buffer it
		// reuses, to avoid allocating; the map must not keep that buffer.
		s := switching.NewBuckets(rate, 10)
		buf := []byte("terminal-1")
		s.Take(unsafe.String(&buf[0], len(buf)), 0)
		copy(buf, "TERMINAL-2")
		s.Take(unsafe.String(&buf[0], len(buf)), 0)
		if !s.Take("terminal-1", 0) || s.Take("terminal-1", 0) {
			t.Error("terminal-1 did not get exactly the second token of its burst: its bucket was lost when the buffer changed")
		}
		if s.Len() != 2 {
			t.Errorf("Len %d, want 2", s.Len())
		}
	})
}

func TestBucketsConcurrent(t *testing.T) {
	t.Run("racing first takes of a key make one bucket", func(t *testing.T) {
		s := switching.NewBuckets(switching.Rate{PerSecond: 1, Burst: 50}, 100)
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					if s.Take("shared", 0) {
						admitted.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if admitted.Load() != 50 || s.Len() != 1 {
			t.Fatalf("admitted %d with %d keys, want one bucket's burst of 50", admitted.Load(), s.Len())
		}
	})

	t.Run("racing new keys never exceed maxKeys", func(t *testing.T) {
		s := switching.NewBuckets(switching.Rate{PerSecond: 1, Burst: 1}, 64)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 100 {
					s.Take(fmt.Sprint(g, "-", i), 0)
				}
			})
		}
		wg.Wait()
		if s.Len() != 64 || s.Overflowed() != 800-64 {
			t.Fatalf("Len %d, Overflowed %d, want 64 and %d", s.Len(), s.Overflowed(), 800-64)
		}
	})
}

func TestBucketAllocs(t *testing.T) {
	b := switching.NewBucket(switching.Rate{PerSecond: 1e6, Burst: 1})
	s := switching.NewBuckets(switching.Rate{PerSecond: 1e6, Burst: 1}, 1)
	s.Take("channel", 0)
	now := int64(0)
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"Bucket.Take", func() { now += 1000; b.Take(now) }},
		{"Bucket.Take refused", func() { b.Take(now) }},
		{"Buckets.Take of a known key", func() { now += 1000; s.Take("channel", now) }},
		{"Buckets.Take of an overflow key", func() { s.Take("identity", now) }},
	} {
		if n := testing.AllocsPerRun(1000, c.f); n != 0 {
			t.Errorf("%s: %v allocations, want 0", c.name, n)
		}
	}
}

// fill acquires normal slots until the window refuses and returns how many
// it got.
func fill(w *switching.Window) int {
	n := 0
	for w.Acquire(false) {
		n++
	}
	return n
}

// drain releases n slots with the given reply time.
func drain(w *switching.Window, n int, rtt time.Duration, failed bool) {
	for range n {
		w.Release(rtt, failed)
	}
}

const (
	onTime = 5 * time.Millisecond
	late   = 200 * time.Millisecond
)

func TestWindow(t *testing.T) {
	opts := switching.WindowOptions{Initial: 64, Min: 4, Max: 80, Target: 50 * time.Millisecond, Backoff: 0.9}

	t.Run("the defaults are 64 slots and a reserve of 6", func(t *testing.T) {
		w := switching.NewWindow(switching.WindowOptions{})
		if got := fill(w); got != 64 || w.Limit() != 64 {
			t.Fatalf("filled %d, limit %d, want 64", got, w.Limit())
		}
		priority := 0
		for w.Acquire(true) {
			priority++
		}
		if priority != 6 || w.InFlight() != 70 {
			t.Fatalf("priority got %d reserve slots with %d in flight, want 6 and 70", priority, w.InFlight())
		}
	})

	t.Run("options out of range are brought into it", func(t *testing.T) {
		for _, c := range []struct {
			o    switching.WindowOptions
			want int
		}{
			{switching.WindowOptions{Initial: 5000}, 1024},
			{switching.WindowOptions{Initial: 1}, 4},
			{switching.WindowOptions{Initial: 20, Min: 30, Max: 10}, 30},
			{switching.WindowOptions{Initial: -3, Min: -1, Max: -1, Target: -1, Backoff: 7}, 64},
		} {
			if got := switching.NewWindow(c.o).Limit(); got != c.want {
				t.Errorf("%+v: limit %d, want %d", c.o, got, c.want)
			}
		}
		w := switching.NewWindow(switching.WindowOptions{Initial: 10, Backoff: 1.5})
		w.Acquire(false)
		w.Release(late, false)
		if w.Limit() != 9 {
			t.Errorf("a Backoff of 1.5 gave limit %d after a late reply, want the default 0.9: 9", w.Limit())
		}
	})

	t.Run("the limit grows by one per limit's worth of on-time replies", func(t *testing.T) {
		o := opts
		o.Initial = 8
		w := switching.NewWindow(o)
		fill(w)
		for want := 9; want <= 12; want++ {
			// Keep the window full: release one, take one.
			for range want - 1 {
				w.Release(onTime, false)
				w.Acquire(false)
			}
			if w.Limit() != want {
				t.Fatalf("limit %d after %d more on-time replies, want %d", w.Limit(), want-1, want)
			}
			fill(w) // the slot the increase opened
		}
	})

	t.Run("the limit stops at Max", func(t *testing.T) {
		w := switching.NewWindow(switching.WindowOptions{Initial: 70, Max: 80})
		for range 100 {
			fill(w)
			drain(w, w.InFlight(), onTime, false)
		}
		if w.Limit() != 80 {
			t.Fatalf("limit %d, want Max 80", w.Limit())
		}
	})

	t.Run("a window mostly idle does not grow", func(t *testing.T) {
		w := switching.NewWindow(opts)
		for range 10000 {
			w.Acquire(false)
			w.Acquire(false)
			drain(w, 2, onTime, false)
		}
		if w.Limit() != 64 {
			t.Fatalf("limit %d after on-time replies two at a time, want it left at 64", w.Limit())
		}
	})

	t.Run("a late reply shrinks the limit by Backoff", func(t *testing.T) {
		w := switching.NewWindow(opts)
		w.Acquire(false)
		w.Release(late, false)
		if w.Limit() != 57 { // 64 × 0.9 = 57.6
			t.Fatalf("limit %d, want 57", w.Limit())
		}
	})

	t.Run("a failure shrinks it however fast it came back", func(t *testing.T) {
		w := switching.NewWindow(opts)
		w.Acquire(false)
		w.Release(time.Microsecond, true)
		if w.Limit() != 57 {
			t.Fatalf("limit %d, want 57", w.Limit())
		}
	})

	t.Run("a reply exactly at Target is on time", func(t *testing.T) {
		w := switching.NewWindow(opts)
		w.Acquire(false)
		w.Release(opts.Target, false)
		if w.Limit() != 64 {
			t.Fatalf("limit %d, want 64", w.Limit())
		}
	})

	t.Run("late replies from one round shrink it once", func(t *testing.T) {
		w := switching.NewWindow(opts)
		n := fill(w)
		for w.Acquire(true) {
			n++
		}
		drain(w, n, late, false)
		if w.Limit() != 57 {
			t.Fatalf("limit %d after %d late replies sent together, want one decrease to 57", w.Limit(), n)
		}
	})

	t.Run("the first late reply of the next round shrinks it again", func(t *testing.T) {
		w := switching.NewWindow(opts)
		fill(w)                   // 64 sent under the old limit
		w.Release(late, false)    // the decrease: 57, 63 still out
		drain(w, 10, late, false) // 10 of those 63: the same round
		w.Acquire(false)          // sent under the new limit...
		drain(w, 53, 0, true)     // ...the old round ends, in failures...
		if w.Limit() != 57 {
			t.Fatalf("limit %d within the round, want 57", w.Limit())
		}
		w.Release(late, false) // ...and the new request comes back late
		if w.Limit() != 51 {
			t.Fatalf("limit %d, want a second decrease to 51", w.Limit())
		}
	})

	t.Run("on-time replies of a round do not start a new one early", func(t *testing.T) {
		w := switching.NewWindow(opts)
		fill(w)
		w.Release(late, false) // 57, 63 still out
		drain(w, 62, onTime, false)
		w.Release(late, false) // the last of the old round
		if w.Limit() != 57 {
			t.Fatalf("limit %d, want 57: the late reply belonged to the round already cut", w.Limit())
		}
	})

	t.Run("the limit never goes below Min", func(t *testing.T) {
		w := switching.NewWindow(opts)
		for range 100 {
			w.Acquire(false)
			w.Release(late, false) // alone in flight: every one is a new round
		}
		if w.Limit() != 4 {
			t.Fatalf("limit %d, want Min 4", w.Limit())
		}
		if got := fill(w); got != 4 {
			t.Fatalf("a window at Min took %d, want 4", got)
		}
	})

	t.Run("a shrunken window refuses until its requests drain below the new limit", func(t *testing.T) {
		w := switching.NewWindow(opts)
		fill(w)
		w.Release(late, false) // 57, 63 in flight
		if w.Acquire(false) {
			t.Fatal("admitted with 63 in flight and a limit of 57")
		}
		drain(w, 7, onTime, false)
		if !w.Acquire(false) {
			t.Fatal("refused with 56 in flight and a limit of 57")
		}
	})

	t.Run("priority requests may use the reserve and others may not", func(t *testing.T) {
		w := switching.NewWindow(switching.WindowOptions{Initial: 20})
		if got := fill(w); got != 20 {
			t.Fatalf("filled %d, want 20", got)
		}
		if !w.Acquire(true) || !w.Acquire(true) || w.Acquire(true) {
			t.Fatal("want two reserve slots (a tenth of 20) for priority requests, then refusal")
		}
		w.Release(onTime, false)
		if w.Acquire(false) {
			t.Fatal("a normal request took a freed reserve slot")
		}
		if !w.Acquire(true) {
			t.Fatal("a priority request was refused a freed reserve slot")
		}
	})

	t.Run("a small window still reserves one slot", func(t *testing.T) {
		w := switching.NewWindow(switching.WindowOptions{Initial: 5})
		fill(w)
		if !w.Acquire(true) || w.Acquire(true) {
			t.Fatal("want exactly one reserve slot for a limit of 5")
		}
	})

	t.Run("a fixed reserve, or none", func(t *testing.T) {
		for _, c := range []struct{ reserve, want int }{{5, 5}, {-1, 0}} {
			w := switching.NewWindow(switching.WindowOptions{Initial: 20, Reserve: c.reserve})
			fill(w)
			got := 0
			for w.Acquire(true) {
				got++
			}
			if got != c.want {
				t.Errorf("Reserve %d gave %d slots, want %d", c.reserve, got, c.want)
			}
		}
	})

	t.Run("a release without an acquire panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		switching.NewWindow(opts).Release(onTime, false)
	})
}

func TestWindowConcurrent(t *testing.T) {
	t.Run("a fixed window never holds more than limit plus reserve", func(t *testing.T) {
		w := switching.NewWindow(switching.WindowOptions{Initial: 8, Min: 8, Max: 8, Reserve: 2})
		var all, normal, peakAll, peakNormal atomic.Int64
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				priority := g%4 == 0
				for i := range 2000 {
					if !w.Acquire(priority) {
						continue
					}
					peak(&peakAll, all.Add(1))
					if !priority {
						peak(&peakNormal, normal.Add(1))
					}
					if n := w.InFlight(); n > 10 {
						t.Errorf("%d in flight, want at most 10", n)
					}
					if !priority {
						normal.Add(-1)
					}
					all.Add(-1)
					w.Release(time.Duration(i%3)*time.Second, i%7 == 0)
				}
			})
		}
		wg.Wait()
		if peakAll.Load() > 10 || peakNormal.Load() > 8 {
			t.Fatalf("peaks %d in all and %d normal, want at most 10 and 8", peakAll.Load(), peakNormal.Load())
		}
		if w.InFlight() != 0 || w.Limit() != 8 {
			t.Fatalf("ended with %d in flight and limit %d, want 0 and 8", w.InFlight(), w.Limit())
		}
	})

	t.Run("an adapting window stays within Max plus reserve and between its bounds", func(t *testing.T) {
		w := switching.NewWindow(switching.WindowOptions{Initial: 16, Min: 4, Max: 40, Target: time.Millisecond})
		var all, peakAll atomic.Int64
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				for range 3000 {
					if !w.Acquire(rng.IntN(10) == 0) {
						continue
					}
					peak(&peakAll, all.Add(1))
					if l := w.Limit(); l < 4 || l > 40 {
						t.Errorf("limit %d outside [4, 40]", l)
					}
					all.Add(-1)
					// Mostly on time, so the limit moves both ways.
					w.Release(time.Duration(rng.IntN(1100))*time.Microsecond, rng.IntN(50) == 0)
				}
			})
		}
		wg.Wait()
		if peakAll.Load() > 44 {
			t.Fatalf("peak %d in flight, want at most 44 (Max 40 and a reserve of 4)", peakAll.Load())
		}
		if w.InFlight() != 0 {
			t.Fatalf("ended with %d in flight, want 0", w.InFlight())
		}
	})
}

// peak raises p to n if n is higher.
func peak(p *atomic.Int64, n int64) {
	for {
		old := p.Load()
		if n <= old || p.CompareAndSwap(old, n) {
			return
		}
	}
}

func TestWindowAllocs(t *testing.T) {
	w := switching.NewWindow(switching.WindowOptions{})
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		i++
		if w.Acquire(i%10 == 0) {
			w.Release(time.Duration(i%100)*time.Millisecond, i%13 == 0)
		}
	})
	if n != 0 {
		t.Fatalf("Acquire and Release: %v allocations, want 0", n)
	}
}

func BenchmarkBucketTake(b *testing.B) {
	b.Run("admitted", func(b *testing.B) {
		bk := switching.NewBucket(switching.Rate{PerSecond: 1e6, Burst: 1})
		b.ReportAllocs()
		now := int64(0)
		for b.Loop() {
			now += 1000 // a token every op
			bk.Take(now)
		}
	})
	b.Run("refused", func(b *testing.B) {
		bk := switching.NewBucket(switching.Rate{PerSecond: 1, Burst: 1})
		bk.Take(0)
		b.ReportAllocs()
		for b.Loop() {
			bk.Take(1)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		// One bucket, every goroutine taking from it: the contended case,
		// a mix of admissions and refusals.
		bk := switching.NewBucket(switching.Rate{PerSecond: 1e6, Burst: 64})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			now := int64(0)
			for pb.Next() {
				now += 1000
				bk.Take(now)
			}
		})
	})
}

func BenchmarkBucketsTake(b *testing.B) {
	r := switching.Rate{PerSecond: 1e6, Burst: 64}
	b.Run("existing key", func(b *testing.B) {
		s := switching.NewBuckets(r, 1024)
		s.Take("channel-pos", 0)
		b.ReportAllocs()
		now := int64(0)
		for b.Loop() {
			now += 1000
			s.Take("channel-pos", now)
		}
	})
	b.Run("existing key parallel", func(b *testing.B) {
		s := switching.NewBuckets(r, 1024)
		s.Take("channel-pos", 0)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			now := int64(0)
			for pb.Next() {
				now += 1000
				s.Take("channel-pos", now)
			}
		})
	})
	b.Run("many keys parallel", func(b *testing.B) {
		// 1000 identities spread over the goroutines: the read lock is
		// shared, the buckets are not.
		s := switching.NewBuckets(r, 1024)
		keys := make([]string, 1000)
		for i := range keys {
			keys[i] = fmt.Sprintf("terminal-%04d", i)
			s.Take(keys[i], 0)
		}
		var seed atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(1) * 7919)
			now := int64(0)
			for pb.Next() {
				i++
				now += 1000
				s.Take(keys[i%len(keys)], now)
			}
		})
	})
}

func BenchmarkWindow(b *testing.B) {
	b.Run("acquire and release", func(b *testing.B) {
		w := switching.NewWindow(switching.WindowOptions{})
		b.ReportAllocs()
		for b.Loop() {
			if w.Acquire(false) {
				w.Release(time.Millisecond, false)
			}
		}
	})
	b.Run("acquire and release parallel", func(b *testing.B) {
		w := switching.NewWindow(switching.WindowOptions{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if w.Acquire(false) {
					w.Release(time.Millisecond, false)
				}
			}
		})
	})
}
