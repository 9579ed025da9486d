package bench

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	rng := rand.New(rand.NewPCG(3, 4))
	vals := make([]int64, 100000)
	for i := range vals {
		vals[i] = 1 + int64(rng.ExpFloat64()*5000) // µs, a long tail
		h.record(time.Duration(vals[i]) * time.Microsecond)
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))]
		got := h.quantile(q)
		if d := float64(got-want) / float64(want); d > 0.01 || d < -0.01 {
			t.Errorf("q%.3f = %d µs, exact %d µs", q, got, want)
		}
	}
	if h.quantile(1) != vals[len(vals)-1] {
		t.Errorf("max %d, want %d", h.quantile(1), vals[len(vals)-1])
	}
}

// TestRun drives an in-process node closed loop and open loop, long and
// short connections, every kind of the mix, and checks the report against
// the ledger: each card's balance moved by exactly what the approvals the
// harness received say, nothing else.
func TestRun(t *testing.T) {
	n, cfg := startNode(t)
	var targets []Target
	for _, ch := range cfg.Channels {
		targets = append(targets, Target{Channel: ch.Name, Addr: n.Addr(ch.Name).String(), TLS: channelTLS(t, cfg, ch.Name), Wire: n.Wire(ch.Name), Short: ch.Short})
	}
	cards := []string{allinone.DemoAccounts()[0].PAN, allinone.DemoAccounts()[2].PAN}
	before := []int64{balance(t, n, "beijing", cards[0]), balance(t, n, "shanghai", cards[1])}
	booked := map[int]int64{}
	for _, rate := range []float64{0, 300} {
		var progress strings.Builder
		rep, err := Run(context.Background(), Options{
			Targets: targets, Conns: 4, ShortConns: 1, InFlight: 4, Rate: rate,
			Duration: time.Second, Warmup: 200 * time.Millisecond,
			Mix:   map[Kind]int{Purchase: 3, Balance: 1, PreAuth: 1, Refund: 1, Reversal: 1, TopUp: 1, Payment: 1},
			Cards: cards, Payees: []string{allinone.DemoBiller(cards[0]), allinone.DemoBiller(cards[1])},
			HotShare: 0.5, Amount: 1, Currency: 156,
			Progress: &progress,
		})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Answered == 0 || rep.Codes["00"] != rep.Answered || len(rep.Errors) != 0 {
			t.Fatalf("rate %v: %d answered, codes %v, errors %v", rate, rep.Answered, rep.Codes, rep.Errors)
		}
		if rep.ShortTx == 0 || rep.Resumed == 0 {
			t.Errorf("rate %v: %d short transactions, %d resumed", rate, rep.ShortTx, rep.Resumed)
		}
		if rep.Latency.P50 <= 0 || rep.Latency.P99 < rep.Latency.P50 || rep.Latency.Max < rep.Latency.P99 {
			t.Errorf("latency %+v", rep.Latency)
		}
		if !strings.Contains(progress.String(), "req/s") {
			t.Errorf("no progress line: %q", progress.String())
		}
		if rate > 0 && (rep.Mode != "open" || rep.Answered > int64(rate*1.5)) {
			t.Errorf("open loop at %v/s answered %d in %.1fs", rate, rep.Answered, rep.Duration)
		}
		for card, amount := range rep.ApprovedAmounts {
			booked[card] += amount
		}
		var md, svg, js strings.Builder
		if rep.WriteMarkdown(&md) != nil || rep.WriteSVG(&svg) != nil || rep.WriteJSON(&js) != nil ||
			!strings.Contains(md.String(), "approvals/s") || !strings.Contains(svg.String(), "<polyline") || !strings.Contains(js.String(), `"latency_us"`) {
			t.Errorf("reports:\n%s\n%s", md.String(), js.String())
		}
	}
	after := []int64{balance(t, n, "beijing", cards[0]), balance(t, n, "shanghai", cards[1])}
	for i := range cards {
		if moved := before[i] - after[i]; moved != booked[i] {
			t.Errorf("card %d: the ledger moved %d, the harness counted %d approved", i, moved, booked[i])
		}
	}
}

func balance(t *testing.T, n *allinone.Node, region, pan string) int64 {
	t.Helper()
	a, err := n.Shard(region).AccountByPAN(pan)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance()
}

// TestFindSustained: the search runs, every step is recorded, and the rate
// it settles on held its bound.
func TestFindSustained(t *testing.T) {
	n, cfg := startNode(t)
	tlsCfg := channelTLS(t, cfg, "pos")
	o := Options{Targets: []Target{{Channel: "pos", Addr: n.Addr("pos").String(), TLS: tlsCfg, Wire: n.Wire("pos")}},
		Conns: 2, InFlight: 8, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond,
		Mix: map[Kind]int{Purchase: 1}, Cards: []string{allinone.DemoAccounts()[0].PAN}, Amount: 1, Currency: 156}
	s, err := FindSustained(context.Background(), o, time.Second, 3)
	if err != nil {
		t.Fatal(err)
	}
	if s.Capacity <= 0 || len(s.Steps) != 3 {
		t.Fatalf("%+v", s)
	}
	if s.Rate > 0 && (s.AtRate == nil || s.AtHalf == nil || !held(s.AtRate, s.Rate, time.Second)) {
		t.Fatalf("settled on %.0f/s without a run that held", s.Rate)
	}
}

// TestRamp: an open-loop ramp sends fewer requests in its first second
// than at full rate, and a closed-loop ramp still answers everything.
func TestRamp(t *testing.T) {
	n, cfg := startNode(t)
	tlsCfg := channelTLS(t, cfg, "pos")
	o := Options{Targets: []Target{{Channel: "pos", Addr: n.Addr("pos").String(), TLS: tlsCfg, Wire: n.Wire("pos")}},
		Conns: 4, InFlight: 8, Duration: 2 * time.Second, Ramp: 2 * time.Second, Rate: 400,
		Mix: map[Kind]int{Purchase: 1}, Cards: []string{allinone.DemoAccounts()[0].PAN}, Amount: 1, Currency: 156}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	// Over a 2 s linear ramp to 400/s, about 400 requests; at full rate 800.
	if rep.Answered < 200 || rep.Answered > 600 || len(rep.Errors) != 0 {
		t.Fatalf("ramped open loop answered %d (errors %v)", rep.Answered, rep.Errors)
	}
	if first, last := rep.Seconds[0].Answered, rep.Seconds[len(rep.Seconds)-1].Answered; first >= last {
		t.Fatalf("per second %d … %d: no ramp", first, last)
	}
	o.Rate, o.Duration, o.Ramp = 0, time.Second, 500*time.Millisecond
	if rep, err = Run(context.Background(), o); err != nil || rep.Answered == 0 || len(rep.Errors) != 0 {
		t.Fatalf("ramped closed loop: %v, %d answered, errors %v", err, rep.Answered, rep.Errors)
	}
}

// startNode runs the all-in-one demo deployment on free ports for the test.
func startNode(t *testing.T) (*allinone.Node, allinone.Config) {
	t.Helper()
	cfg := allinone.LocalConfig(t.TempDir())
	n, err := allinone.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return n, cfg
}

// channelTLS is a channel's client side: its dev-PKI certificate.
func channelTLS(t testing.TB, cfg allinone.Config, channel string) *tls.Config {
	t.Helper()
	return clientTLS(t, cfg.PKIDir, channel)
}
