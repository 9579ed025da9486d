package head

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the head's Prometheus collectors. A nil *metrics is valid and records nothing
// (no Registerer given). Label children are resolved once per region, not per batch.
type metrics struct {
	reg       prometheus.Registerer
	highWater *prometheus.GaugeVec
	entries   *prometheus.CounterVec

	mu      sync.Mutex
	regions map[string]regionMetrics
}

type regionMetrics struct {
	highWater prometheus.Gauge
	entries   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		reg: reg,
		highWater: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "junction", Subsystem: "head", Name: "high_water",
			Help: "Last journal sequence of the region's shard applied to the head ledger.",
		}, []string{"region"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "head", Name: "entries_total",
			Help: "Journal entries applied to the head ledger since it opened.",
		}, []string{"region"}),
		regions: make(map[string]regionMetrics),
	}
	if err := reg.Register(m.highWater); err != nil {
		return nil, err
	}
	if err := reg.Register(m.entries); err != nil {
		reg.Unregister(m.highWater)
		return nil, err
	}
	return m, nil
}

// unregister removes the collectors, so a head can be opened again on the same registry.
func (m *metrics) unregister() {
	if m == nil {
		return
	}
	m.reg.Unregister(m.highWater)
	m.reg.Unregister(m.entries)
}

func (m *metrics) region(name string) regionMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.regions[name]
	if !ok {
		r = regionMetrics{highWater: m.highWater.WithLabelValues(name), entries: m.entries.WithLabelValues(name)}
		m.regions[name] = r
	}
	return r
}

func (m *metrics) setHighWater(region string, seq uint64) {
	if m == nil {
		return
	}
	m.region(region).highWater.Set(float64(seq))
}

func (m *metrics) applied(region string, seq uint64, n int) {
	if m == nil {
		return
	}
	r := m.region(region)
	r.highWater.Set(float64(seq))
	r.entries.Add(float64(n))
}
