package front

import "github.com/prometheus/client_golang/prometheus"

// metrics are the listener's Prometheus series, labelled by channel. Label
// children are resolved once per listener (see listenerMetrics), never per
// message.
type metrics struct {
	open       *prometheus.GaugeVec
	accepted   *prometheus.CounterVec
	refused    *prometheus.CounterVec
	handshakes *prometheus.CounterVec
	frames     *prometheus.CounterVec
	malformed  *prometheus.CounterVec
	closed     *prometheus.CounterVec
	requests   *prometheus.CounterVec
	signOns    *prometheus.CounterVec
	inFlight   *prometheus.CounterVec
	resumed    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "junction", Subsystem: "front", Name: "connections_open",
			Help: "Open channel connections.",
		}, []string{"channel"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "front", Name: "connections_total",
			Help: "Channel connections that completed the TLS handshake.",
		}, []string{"channel"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "front", Name: "connections_refused_total",
			Help: "Connections closed before serving, by reason (limit, identity_limit, draining).",
		}, []string{"channel", "reason"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "front", Name: "handshake_failures_total",
			Help: "TLS handshakes that failed: no or bad client certificate, identity not allowed, timeout.",
		}, []string{"channel"}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "front", Name: "frames_total",
			Help: "Frames read from channels, keep-alives included.",
		}, []string{"channel"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "front", Name: "malformed_total",
			Help: "Frames that did not decode as a message of the channel's dialect.",
		}, []string{"channel"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "front", Name: "connections_closed_total",
			Help: "Closed channel connections, by reason (eof, idle, slow_frame, frame_too_large, bad_framing, unreadable, short, overrun, write_error, read_error, drain).",
		}, []string{"channel", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "front", Name: "requests_refused_total",
			Help: "Requests refused at the edge, by reason (not_signed_on).",
		}, []string{"channel", "reason"}),
		signOns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "front", Name: "sign_ons_total",
			Help: "Network management sign-ons (0800/001, 1804/801) answered at the edge.",
		}, []string{"channel"}),
		resumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "front", Name: "handshakes_resumed_total",
			Help: "TLS handshakes that resumed a session (a ticket) instead of a full handshake.",
		}, []string{"channel"}),
		inFlight: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "junction", Subsystem: "front", Name: "in_flight_full_total",
			Help: "Times a connection reached its in-flight limit and reading paused.",
		}, []string{"channel"}),
	}
	if reg != nil {
		reg.MustRegister(m.open, m.accepted, m.refused, m.handshakes, m.frames, m.malformed, m.closed,
			m.requests, m.signOns, m.inFlight, m.resumed)
	}
	return m
}

// listenerMetrics holds one channel's resolved children.
type listenerMetrics struct {
	m            *metrics
	channel      string
	open         prometheus.Gauge
	accepted     prometheus.Counter
	handshakes   prometheus.Counter
	frames       prometheus.Counter
	malformed    prometheus.Counter
	signOns      prometheus.Counter
	inFlightFull prometheus.Counter
	resumed      prometheus.Counter
}

func (m *metrics) forChannel(ch string) *listenerMetrics {
	return &listenerMetrics{
		m:            m,
		channel:      ch,
		open:         m.open.WithLabelValues(ch),
		accepted:     m.accepted.WithLabelValues(ch),
		handshakes:   m.handshakes.WithLabelValues(ch),
		frames:       m.frames.WithLabelValues(ch),
		malformed:    m.malformed.WithLabelValues(ch),
		signOns:      m.signOns.WithLabelValues(ch),
		inFlightFull: m.inFlight.WithLabelValues(ch),
		resumed:      m.resumed.WithLabelValues(ch),
	}
}

// close and refuse are per connection, not per message: resolving the label
// here is cheap enough.
func (lm *listenerMetrics) close(reason string) {
	lm.m.closed.WithLabelValues(lm.channel, reason).Inc()
}
func (lm *listenerMetrics) refuse(reason string) {
	lm.m.refused.WithLabelValues(lm.channel, reason).Inc()
}

// refused counts a request refused at the edge; rare enough to resolve the
// label here.
func (lm *listenerMetrics) refused(reason string) {
	lm.m.requests.WithLabelValues(lm.channel, reason).Inc()
}
