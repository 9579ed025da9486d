package bench

import (
	"context"
	"fmt"
	"time"
)

// Sustained is the outcome of a search for the highest open-loop rate a
// switch sustains within a p99 bound.
type Sustained struct {
	Bound    time.Duration `json:"p99_bound"`
	Capacity float64       `json:"closed_loop_approvals_per_s"` // the closed-loop probe the search starts from
	Rate     float64       `json:"sustained_rate"`              // highest rate that held (0: none did)
	AtRate   *Report       `json:"at_rate,omitempty"`           // the run at Rate
	AtHalf   *Report       `json:"at_half_rate,omitempty"`      // a run at half of Rate
	Steps    []Step        `json:"steps"`
}

// Step is one rate the search tried.
type Step struct {
	Rate float64 `json:"rate"`
	P99  int64   `json:"p99_us"`
	Held bool    `json:"held"`
}

// held reports whether an open-loop run at rate held: p99 within bound,
// nearly every due request answered, no errors, nothing left in the
// generator's backlog.
func held(rep *Report, rate float64, bound time.Duration) bool {
	return rep.Latency.P99 <= bound.Microseconds() && sum(rep.Errors) == 0 && rep.Backlog == 0 &&
		float64(rep.Answered) >= 0.95*rate*rep.Duration
}

// FindSustained probes the closed-loop capacity with o, then bisects
// open-loop rates between nothing and 1.2 times that capacity, steps
// times, each run as o says (Warmup, Duration), for the highest rate whose
// p99 stays within bound; then measures half that rate. Progress, if set,
// gets a line per step.
func FindSustained(ctx context.Context, o Options, bound time.Duration, steps int) (*Sustained, error) {
	progress := o.Progress
	o.Progress = nil
	o.Rate = 0
	probe, err := Run(ctx, o)
	if err != nil {
		return nil, err
	}
	s := &Sustained{Bound: bound, Capacity: probe.Throughput}
	say := func(format string, args ...any) {
		if progress != nil {
			fmt.Fprintf(progress, format+"\n", args...)
		}
	}
	say("closed loop: %.0f answers/s, p99 %s", probe.Throughput, us(probe.Latency.P99))
	lo, hi := 0.0, 1.2*probe.Throughput
	for range steps {
		if ctx.Err() != nil {
			break
		}
		o.Rate = (lo + hi) / 2
		rep, err := Run(ctx, o)
		if err != nil {
			return nil, err
		}
		ok := held(rep, o.Rate, bound)
		s.Steps = append(s.Steps, Step{Rate: o.Rate, P99: rep.Latency.P99, Held: ok})
		say("open loop %.0f/s: p99 %s, %d answered, held %v", o.Rate, us(rep.Latency.P99), rep.Answered, ok)
		if ok {
			lo, s.Rate, s.AtRate = o.Rate, o.Rate, rep
		} else {
			hi = o.Rate
		}
	}
	if s.Rate > 0 {
		o.Rate = s.Rate / 2
		if s.AtHalf, err = Run(ctx, o); err != nil {
			return nil, err
		}
		say("half rate %.0f/s: p99 %s", o.Rate, us(s.AtHalf.Latency.P99))
	}
	return s, nil
}
