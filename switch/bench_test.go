package switching_test

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/routing"
	switching "github.com/junction-switch/junction/switch"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// echo is an in-process destination that approves everything at once: what
// is left is the switch's own work.
type echo struct{}

func (echo) Exchange(_ context.Context, req, resp *codec.Message) error {
	if err := resp.InitResponse(req); err != nil {
		return err
	}
	return resp.SetString(39, "00")
}

// BenchmarkSwitch is the switch alone: admission (rate limits on, never
// biting), matching, routing over the demo rule, a pool with a window and
// a breaker, and an in-process echo destination; every core sends. It
// reports requests per second and the p99 of each stage (from the stage
// histogram, interpolated within its bucket) and of the whole call.
//
//	go test -run '^$' -bench 'Switch$' -benchmem ./switch
func BenchmarkSwitch(b *testing.B) {
	reg := prometheus.NewRegistry()
	pool, err := switching.NewPool("beijing", []switching.Member{{Name: "beijing", Dest: echo{}}}, switching.PoolOptions{
		Logger: quiet(), Registerer: reg, Window: &switching.WindowOptions{Initial: 4096, Min: 64, Max: 4096},
	})
	if err != nil {
		b.Fatal(err)
	}
	routes, err := routing.NewTable([]routing.Rule{{Name: "demo-cards", BIN: routing.BINs{"629990"}, Luhn: true,
		Region: &routing.RegionCode{Offset: 6, Length: 2}, Regions: map[string]string{"11": "beijing"}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	sw, err := switching.New(switching.Options{Routes: routes, Destinations: map[string]switching.Destination{"beijing": pool},
		Logger: quiet(), Registerer: reg,
		ChannelRates:  map[string]switching.Rate{"pos": {PerSecond: 1e9, Burst: 1e6}},
		IdentityRates: map[string]switching.Rate{"pos": {PerSecond: 1e9, Burst: 1e6}},
	})
	if err != nil {
		b.Fatal(err)
	}
	var terminal atomic.Int64
	var mu sync.Mutex
	var totals []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		d := codec.ISO87ASCII()
		req, resp := codec.NewMessage(d), codec.NewMessage(d)
		tx := front.Txn{Type: codec.TxPurchase, PAN: "6299901100000013", Amount: 1234, Currency: 156, STAN: 1,
			Terminal: fmt.Sprintf("B%07d", terminal.Add(1)), Time: time.Now()}
		if err := tx.Build(d, req); err != nil {
			b.Error(err)
			return
		}
		p := &front.Peer{Channel: "pos", Institution: "10000001", Identity: "pos"}
		var stan [6]byte
		samples := make([]time.Duration, 0, 1<<16)
		n := uint32(0)
		for pb.Next() {
			n = n%999999 + 1
			v := n
			for i := 5; i >= 0; i-- {
				stan[i] = byte('0' + v%10)
				v /= 10
			}
			req.Set(11, stan[:])
			t0 := time.Now()
			sw.Serve(context.Background(), p, req, resp)
			if len(samples) < cap(samples) {
				samples = append(samples, time.Since(t0))
			}
		}
		mu.Lock()
		totals = append(totals, samples...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	sort.Slice(totals, func(i, j int) bool { return totals[i] < totals[j] })
	if len(totals) > 0 {
		b.ReportMetric(float64(totals[len(totals)*99/100].Nanoseconds()), "p99-call-ns")
	}
	for _, stage := range []string{"queue", "destination", "total"} {
		b.ReportMetric(stageQuantile(b, reg, stage, 0.99)*1e9, "p99-"+stage+"-ns")
	}
}

// stageQuantile estimates a quantile of junction_switch_stage_seconds for
// one stage by linear interpolation within the bucket that holds it.
func stageQuantile(b *testing.B, reg *prometheus.Registry, stage string, q float64) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "junction_switch_stage_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelOf(m, "stage") == stage {
				return histogramQuantile(m.GetHistogram(), q)
			}
		}
	}
	return math.NaN()
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func histogramQuantile(h *dto.Histogram, q float64) float64 {
	rank := q * float64(h.GetSampleCount())
	lower, below := 0.0, 0.0
	for _, bk := range h.GetBucket() {
		upper, count := bk.GetUpperBound(), float64(bk.GetCumulativeCount())
		if count >= rank {
			if count == below {
				return upper
			}
			return lower + (upper-lower)*(rank-below)/(count-below)
		}
		lower, below = upper, count
	}
	return lower
}
