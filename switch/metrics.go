package switching

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// decline is why the switch answered a request itself.
type decline uint8

const (
	declineNone decline = iota
	declineUnsupported
	declineFormat
	declineRateChannel
	declineRateIdentity
	declineDuplicate
	declineRoute
	declineWindow
	declineUnavailable
	declineTimeout
	declineBadAnswer
	declineBudget
	declineStandIn
	declineCount
)

var declineNames = [declineCount]string{
	declineNone: "none", declineUnsupported: "unsupported", declineFormat: "format",
	declineRateChannel: "rate_channel", declineRateIdentity: "rate_identity", declineDuplicate: "duplicate",
	declineRoute: "route", declineWindow: "window", declineUnavailable: "unavailable",
	declineTimeout: "timeout", declineBadAnswer: "bad_answer", declineBudget: "budget",
	declineStandIn: "stand_in_limit",
}

// stageTimes is where one request's time went: from its frame being read
// to the switch (front: decoding, a goroutine), admission and routing
// (queue: nothing waits there, the switch refuses rather than queues),
// waiting for destinations, and the whole.
type stageTimes struct {
	front, queue, destination, total time.Duration
}

// metrics counts requests by channel, route, MTI and response code, times
// them by channel and by stage, and counts declines by reason. Label
// children are cached by a fixed-size key or resolved up front, so a
// request costs map lookups, not label hashing and string building.
type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	decisions *prometheus.CounterVec

	stages    [4]prometheus.Observer // front, queue, destination, total
	declines  [declineCount]prometheus.Counter
	reversals *prometheus.CounterVec
	standIns  [standInFailed + 1]prometheus.Counter

	counters  sync.Map // counterKey → prometheus.Counter
	observers sync.Map // channel string → prometheus.Observer
}

type counterKey struct {
	channel, route string
	mti            [4]byte
	rc             [2]byte
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "switch", Name: "requests_total",
			Help: "Requests answered (or dropped, rc=\"--\") by channel, route (the rule that decided), request MTI and response code.",
		}, []string{"channel", "route", "mti", "rc"}),
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
		reversals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "switch", Name: "reversals_total",
			Help: "Reversal advices for requests a destination may have acted on without answering: queued in the SAF, or unqueued (logged for a reversal by hand).",
		}, []string{"result"}),
	}
	stage := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "junction", Subsystem: "switch", Name: "stage_seconds",
		Help: "Time per stage of a request: front (frame read to the switch), queue (admission and routing), destination (waiting for answers), total.",
		// 5 µs to about 5 s.
		Buckets: prometheus.ExponentialBuckets(0.000005, 2, 21),
	}, []string{"stage"})
	for i, name := range []string{"front", "queue", "destination", "total"} {
		m.stages[i] = stage.WithLabelValues(name)
	}
	declines := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "junction", Subsystem: "switch", Name: "declines_total",
		Help: "Requests the switch answered itself, by reason: unsupported, format, rate_channel, rate_identity, duplicate, route, window, unavailable, timeout, bad_answer, budget, stand_in_limit.",
	}, []string{"reason"})
	for i := declineUnsupported; i < declineCount; i++ {
		m.declines[i] = declines.WithLabelValues(declineNames[i])
	}
	standIns := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "junction", Subsystem: "switch", Name: "stand_in_total",
		Help: "Stand-in decisions for destinations that could not be reached: approved (advice queued), over_amount, over_count, not_eligible (not a purchase: declined 91), failed (advice not queued: declined).",
	}, []string{"result"})
	for r, name := range map[standInResult]string{standInApproved: "approved", standInNotEligible: "not_eligible",
		standInOverLimit: "over_amount", standInOverCount: "over_count", standInFailed: "failed"} {
		m.standIns[r] = standIns.WithLabelValues(name)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.decisions, stage, declines, m.reversals, standIns)
	}
	return m
}

func (m *metrics) count(channel, route string, mti [4]byte, rc [2]byte) {
	k := counterKey{channel, route, mti, rc}
	c, ok := m.counters.Load(k)
	if !ok {
		c, _ = m.counters.LoadOrStore(k, m.requests.WithLabelValues(channel, route, string(mti[:]), string(rc[:])))
	}
	c.(prometheus.Counter).Inc()
}

func (m *metrics) observe(channel, route string, mti [4]byte, rc [2]byte, t stageTimes) {
	m.count(channel, route, mti, rc)
	o, ok := m.observers.Load(channel)
	if !ok {
		o, _ = m.observers.LoadOrStore(channel, m.latency.WithLabelValues(channel))
	}
	o.(prometheus.Observer).Observe(t.total.Seconds())
	m.stages[0].Observe(t.front.Seconds())
	m.stages[1].Observe(t.queue.Seconds())
	m.stages[2].Observe(t.destination.Seconds())
	m.stages[3].Observe(t.total.Seconds())
}

func (m *metrics) declined(why decline) {
	if why > declineNone && why < declineCount {
		m.declines[why].Inc()
	}
}

func (m *metrics) reversal(result string) { m.reversals.WithLabelValues(result).Inc() }

func (m *metrics) standIn(r standInResult) { m.standIns[r].Inc() }
