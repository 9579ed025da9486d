package ledger

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the shard's Prometheus collectors with every label child resolved up front, so
// the writer counts a request with an array index, not a label lookup. A nil *metrics is valid
// and records nothing (no Registerer given).
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	requests      [lastChannelOp + 1][len(allCodes)]prometheus.Counter // [0] is for invalid ops
	batchSize     prometheus.Histogram
	commitSeconds prometheus.Histogram
	journalSeq    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, region string) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	labels := prometheus.Labels{"region": region}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "junction", Subsystem: "ledger", Name: "requests_total",
		Help:        "Requests answered by the shard, by operation and ISO 8583 response code (96 for errors).",
		ConstLabels: labels,
	}, []string{"op", "code"})
	m := &metrics{
		reg: reg,
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "junction", Subsystem: "ledger", Name: "batch_size",
			Help:        "Requests per writer batch.",
			ConstLabels: labels,
			Buckets:     prometheus.ExponentialBuckets(1, 2, 10), // 1 … 512
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "junction", Subsystem: "ledger", Name: "commit_duration_seconds",
			Help:        "Time to write and sync one batch's badger transaction.",
			ConstLabels: labels,
			Buckets:     prometheus.ExponentialBuckets(50e-6, 2, 14), // 50 µs … 0.4 s
		}),
		journalSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "junction", Subsystem: "ledger", Name: "journal_seq",
			Help:        "Last committed journal sequence.",
			ConstLabels: labels,
		}),
	}
	for op := range m.requests {
		name := "invalid"
		if op > 0 {
			name = Op(op).String()
		}
		for i, code := range allCodes {
			m.requests[op][i] = requests.WithLabelValues(name, string(code))
		}
	}
	m.collectors = []prometheus.Collector{requests, m.batchSize, m.commitSeconds, m.journalSeq}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, r := range m.collectors[:i] {
				reg.Unregister(r)
			}
			return nil, err
		}
	}
	return m, nil
}

// unregister removes the collectors, so a shard of the same region can be opened again on the
// same registry after Close.
func (m *metrics) unregister() {
	if m == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

func (m *metrics) request(op Op, code Code) {
	if m == nil {
		return
	}
	if !op.channelOp() {
		op = 0
	}
	for i, c := range allCodes {
		if c == code {
			m.requests[op][i].Inc()
			return
		}
	}
}

func (m *metrics) batch(n int) {
	if m != nil {
		m.batchSize.Observe(float64(n))
	}
}

func (m *metrics) commit(d time.Duration) {
	if m != nil {
		m.commitSeconds.Observe(d.Seconds())
	}
}

func (m *metrics) setSeq(seq uint64) {
	if m != nil {
		m.journalSeq.Set(float64(seq))
	}
}
