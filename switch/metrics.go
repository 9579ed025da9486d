package switching

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts requests by channel, MTI and response code and times them
// by channel. Label children are cached by a fixed-size key, so a request
// costs a map lookup, not label hashing and string building.
type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	decisions *prometheus.CounterVec

	counters  sync.Map // counterKey → prometheus.Counter
	observers sync.Map // channel string → prometheus.Observer
}

type counterKey struct {
	channel string
	mti     [4]byte
	rc      [2]byte
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "switch", Name: "requests_total",
			Help: "Requests answered (or dropped, rc=\"--\") by channel, request MTI and response code.",
		}, []string{"channel", "mti", "rc"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "junction", Subsystem: "switch", Name: "request_duration_seconds",
			Help: "Time from a decoded request to its response being ready, by channel.",
			// 50 µs to about 3 s.
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}, []string{"channel"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "routing", Name: "decisions_total",
			Help: "Routing decisions by the rule that decided (rule=\"\" when none matched and the request was declined 15).",
		}, []string{"rule"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.decisions)
	}
	return m
}

func (m *metrics) count(channel string, mti [4]byte, rc [2]byte) {
	k := counterKey{channel, mti, rc}
	c, ok := m.counters.Load(k)
	if !ok {
		c, _ = m.counters.LoadOrStore(k, m.requests.WithLabelValues(channel, string(mti[:]), string(rc[:])))
	}
	c.(prometheus.Counter).Inc()
}

func (m *metrics) observe(channel string, mti [4]byte, rc [2]byte, d time.Duration) {
	m.count(channel, mti, rc)
	o, ok := m.observers.Load(channel)
	if !ok {
		o, _ = m.observers.LoadOrStore(channel, m.latency.WithLabelValues(channel))
	}
	o.(prometheus.Observer).Observe(d.Seconds())
}
