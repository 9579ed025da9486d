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
	lagN      *prometheus.GaugeVec
	lagS      *prometheus.GaugeVec

	mu      sync.Mutex
	regions map[string]regionMetrics
}

type regionMetrics struct {
	highWater prometheus.Gauge
	entries   prometheus.Counter
	lagN      prometheus.Gauge
	lagS      prometheus.Gauge
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
		lagN: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "junction", Subsystem: "head", Name: "lag_entries",
			Help: "Journal entries of the region's shard not yet merged, as of the last page Pull read.",
		}, []string{"region"}),
		lagS: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "junction", Subsystem: "head", Name: "lag_seconds",
			Help: "Age of the oldest entry of the region's shard not yet merged, as of the last page Pull read; 0 when caught up.",
		}, []string{"region"}),
		regions: make(map[string]regionMetrics),
	}
	cs := []prometheus.Collector{m.highWater, m.entries, m.lagN, m.lagS}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, r := range cs[:i] {
				reg.Unregister(r)
			}
			return nil, err
		}
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
	m.reg.Unregister(m.lagN)
	m.reg.Unregister(m.lagS)
}

func (m *metrics) region(name string) regionMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.regions[name]
	if !ok {
		r = regionMetrics{highWater: m.highWater.WithLabelValues(name), entries: m.entries.WithLabelValues(name),
			lagN: m.lagN.WithLabelValues(name), lagS: m.lagS.WithLabelValues(name)}
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

// lag sets the region's merge lag: the source's last seq less the high-water mark, and the age of
// the oldest unmerged entry in nanoseconds (0 when caught up).
func (m *metrics) lag(region string, last, hw uint64, age int64) {
	if m == nil {
		return
	}
	r := m.region(region)
	n := uint64(0)
	if last > hw {
		n = last - hw
	}
	if n == 0 {
		age = 0
	}
	r.lagN.Set(float64(n))
	r.lagS.Set(max(float64(age)/1e9, 0))
}
