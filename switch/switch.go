package switching

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/routing"
	"github.com/prometheus/client_golang/prometheus"
)

// Destination answers the requests routed to it: a regional ledger shard's
// ISO host in-process, later an outbound link to a remote host. Exchange
// fills resp with the complete response (MTI, echoed fields, 39 and what
// else the host answers). An error means no answer: the switch declines.
type Destination interface {
	Exchange(ctx context.Context, req, resp *codec.Message) error
}

// ErrUnavailable is wrapped by a Destination that is down or refuses work;
// the switch answers 91 (issuer inoperative) instead of 96.
var ErrUnavailable = errors.New("switch: destination unavailable")

// Options configures a Switch.
type Options struct {
	Routes       *routing.Table
	Destinations map[string]Destination
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	// Timeout bounds one destination exchange; default 10s.
	Timeout time.Duration
	// Inbound holds, per channel, the map from the channel's dialect into
	// the switch's ISO 8583:1987 when the two differ in layout (a 1993
	// channel). Requests are converted in, served as any other, and their
	// answers converted back. Channels of the same layout need none.
	Inbound map[string]*codec.Map
}

// Switch is the request pipeline. It implements front.Handler.
type Switch struct {
	routes  atomic.Pointer[routeSet]
	dests   map[string]Destination
	inbound map[string]*codec.Map
	log     *slog.Logger
	timeout time.Duration
	metrics *metrics
	scratch sync.Pool // *converted
}

// converted is a request in the switch's dialect, its answer, and what the
// answer needs of the original to go back.
type converted struct {
	req, resp codec.Message
	saved     codec.Saved
}

var _ front.Handler = (*Switch)(nil)

// New checks that every destination the routes name exists and returns the
// switch.
func New(o Options) (*Switch, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	s := &Switch{
		dests: o.Destinations, inbound: o.Inbound, log: log, timeout: o.Timeout,
		metrics: newMetrics(o.Registerer), scratch: sync.Pool{New: func() any { return new(converted) }},
	}
	if err := s.SetRoutes(o.Routes); err != nil {
		return nil, err
	}
	return s, nil
}

// routeSet is a routing table with the decision counter of each of its
// rules, resolved once, so that counting a decision costs an increment.
type routeSet struct {
	table    *routing.Table
	counters []prometheus.Counter // by Decision.Index
	none     prometheus.Counter   // no rule matched
}

// SetRoutes swaps the routing table in: requests from now on are routed by
// t, requests already routed carry on. A table that names a destination
// the switch does not have is refused, and the table in use stays.
func (s *Switch) SetRoutes(t *routing.Table) error {
	if t == nil {
		return errors.New("switch: no routing table")
	}
	rules := t.Rules()
	for _, r := range rules {
		names := append([]string{r.Destination}, r.Alternates...)
		for _, d := range r.Regions {
			names = append(names, d)
		}
		for _, n := range names {
			if n != "" && s.dests[n] == nil {
				return fmt.Errorf("switch: rule %s routes to %q, which is not a destination", r.Name, n)
			}
		}
	}
	rs := &routeSet{table: t, counters: make([]prometheus.Counter, len(rules)), none: s.metrics.decisions.WithLabelValues("")}
	for i, r := range rules {
		rs.counters[i] = s.metrics.decisions.WithLabelValues(r.Name)
	}
	s.routes.Store(rs)
	return nil
}

// Routes is the routing table in use.
func (s *Switch) Routes() *routing.Table { return s.routes.Load().table }

// Serve answers one decoded request from a channel.
func (s *Switch) Serve(ctx context.Context, p *front.Peer, req, resp *codec.Message) bool {
	if m := s.inbound[p.Channel]; m != nil {
		return s.serveConverted(ctx, p, m, req, resp)
	}
	return s.serve(ctx, p, req, resp)
}

// serveConverted serves a request of a channel whose dialect differs from
// the switch's: in through m, served, and back through m.
func (s *Switch) serveConverted(ctx context.Context, p *front.Peer, m *codec.Map, req, resp *codec.Message) bool {
	mti, _ := req.MTI()
	if !codec.IsRequest(mti) {
		s.log.Debug("unsolicited message dropped", "channel", p.Channel, "mti", string(mti[:]))
		s.metrics.count(p.Channel, mti, [2]byte{'-', '-'})
		return false
	}
	c := s.scratch.Get().(*converted)
	defer s.scratch.Put(c)
	cctx := codec.Context{Now: time.Now(), Institution: p.Institution}
	if err := m.Request(&c.req, req, &cctx, &c.saved); err != nil {
		// Content the switch's dialect cannot hold (an alphabetic currency,
		// say): a format error, in the channel's own codes.
		field, _ := codec.FieldOf(err)
		s.log.Warn("request does not convert", "channel", p.Channel, "map", m.Name(), "field", field, "err", err)
		s.metrics.count(p.Channel, mti, [2]byte{'3', '0'})
		return s.answer(req, resp, m.ResponseCode(codec.RCFormatError, mti[1]))
	}
	if !s.serve(ctx, p, &c.req, &c.resp) {
		return false
	}
	if err := m.Response(resp, &c.resp, &c.saved); err != nil {
		s.log.Error("response does not convert back", "channel", p.Channel, "map", m.Name(), "err", err)
		return s.answer(req, resp, m.ResponseCode(codec.RCSystemError, mti[1]))
	}
	return true
}

// answer makes resp the answer to req with response code rc, in req's
// dialect.
func (s *Switch) answer(req, resp *codec.Message, rc string) bool {
	if err := resp.InitResponse(req); err != nil {
		return false
	}
	if err := resp.SetString(39, rc); err != nil {
		s.log.Error("response code does not fit the channel's dialect", "rc", rc, "err", err)
		return false
	}
	return true
}

// serve answers one request in the switch's dialect.
func (s *Switch) serve(ctx context.Context, p *front.Peer, req, resp *codec.Message) bool {
	start := time.Now()
	mti, _ := req.MTI()
	if !codec.IsRequest(mti) {
		// A response or notification from a terminal: nothing to answer.
		s.log.Debug("unsolicited message dropped", "channel", p.Channel, "mti", string(mti[:]))
		s.metrics.count(p.Channel, mti, [2]byte{'-', '-'})
		return false
	}
	dest, rc := s.dispatch(ctx, p, mti, req, resp)
	if rc != "" {
		// The switch answers itself: start from the request again, since a
		// destination that failed may have left resp half built.
		if err := resp.InitResponse(req); err != nil {
			return false
		}
		_ = resp.SetString(39, rc)
	}
	got := resp.Get(39)
	var code [2]byte
	copy(code[:], got)
	s.metrics.observe(p.Channel, mti, code, time.Since(start))
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("request answered", "channel", p.Channel, "identity", p.Identity, "mti", string(mti[:]),
			"pan", codec.MaskPAN(req.Get(2)), "stan", string(req.Get(11)), "terminal", string(req.Get(41)),
			"dest", dest, "rc", string(got))
	}
	return true
}

// dispatch does the work for one request. It returns the destination that
// answered, or the response code the switch answers with itself.
func (s *Switch) dispatch(ctx context.Context, p *front.Peer, mti [4]byte, req, resp *codec.Message) (dest, rc string) {
	switch mti[1] {
	case codec.ClassAuthorization, codec.ClassFinancial:
	default:
		// Network management is answered at the edge (package front);
		// reversals, advices of other classes and the rest are not yet.
		return "", codec.RCInvalidTransaction
	}
	if !req.Has(2) && !req.Has(102) || !req.Has(3) || !req.Has(7) || !req.Has(11) || !req.Has(41) {
		return "", codec.RCFormatError
	}
	if !req.Has(32) && p.Institution != "" {
		// The acquiring institution is the channel's: it makes the
		// transaction id unique across channels that reuse terminal ids.
		if err := req.SetString(32, p.Institution); err != nil {
			return "", codec.RCSystemError
		}
	}
	in := routing.Input{
		Channel: p.Channel, Identity: p.Identity, MTI: mti,
		PCode: req.Get(3), PAN: req.Get(2), Account: req.Get(102),
	}
	in.Amount, in.HasAmount = digitsValue(req.Get(4))
	if c, ok := digitsValue(req.Get(49)); ok {
		in.Currency = uint16(c)
	}
	routes := s.routes.Load()
	decision := routes.table.Decide(&in)
	if decision.Index >= 0 {
		routes.counters[decision.Index].Inc()
	} else {
		routes.none.Inc()
	}
	if decision.Decline != "" {
		return "", decision.Decline
	}
	d := s.dests[decision.Destination]
	if d == nil {
		return decision.Destination, codec.RCNoRoute
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := d.Exchange(ctx, req, resp); err != nil {
		s.log.Warn("destination failed", "channel", p.Channel, "dest", decision.Destination,
			"mti", string(mti[:]), "stan", string(req.Get(11)), "terminal", string(req.Get(41)), "err", err)
		switch {
		case errors.Is(err, ErrUnavailable), errors.Is(err, front.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
			return decision.Destination, codec.RCIssuerUnavailable
		case errors.Is(err, front.ErrDuplicateKey):
			// The same matching key is in flight: a retransmission before
			// the first answer. The first keeps its place.
			return decision.Destination, codec.RCDuplicate
		}
		return decision.Destination, codec.RCSystemError
	}
	if !resp.Has(39) {
		s.log.Error("destination answered without a response code", "dest", decision.Destination)
		return decision.Destination, codec.RCSystemError
	}
	return decision.Destination, ""
}

// digitsValue reads a numeric field of at most 18 digits; false when it is
// absent or not all digits.
func digitsValue(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// Reject answers a request the edge refuses: 30 (format error) for one that
// did not decode, with the fields that did echoed; 91 for one from a
// connection that has not signed on. Codes go out in the channel's terms.
func (s *Switch) Reject(p *front.Peer, req *codec.Message, cause error, resp *codec.Message) bool {
	mti, ok := req.MTI()
	if !ok || resp.InitResponse(req) != nil {
		s.metrics.count(p.Channel, [4]byte{'-', '-', '-', '-'}, [2]byte{'-', '-'})
		return false
	}
	rc := codec.RCFormatError
	if errors.Is(cause, front.ErrSignOn) {
		rc = codec.RCIssuerUnavailable
	}
	if m := s.inbound[p.Channel]; m != nil {
		rc = m.ResponseCode(rc, mti[1])
	}
	if err := resp.SetString(39, rc); err != nil {
		return false
	}
	s.metrics.count(p.Channel, mti, [2]byte{rc[0], rc[1]})
	return true
}
