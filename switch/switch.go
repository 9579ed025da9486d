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

// ErrOverloaded is returned by a destination whose in-flight window is
// full: the request was not sent, and the switch declines it at once
// (Options.OverloadCode) rather than queueing it or sending it elsewhere.
var ErrOverloaded = errors.New("switch: destination window full")

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

	// Match lists the matching key's fields besides the response MTI
	// (default DefaultMatch). A request whose key is already in flight is
	// answered 94 and never takes the original's place.
	Match []int
	// ChannelRates limits each channel's requests with a token bucket;
	// IdentityRates limits each client identity within a channel, by
	// channel name. A channel without an entry is not limited. Reversals
	// are never limited: they undo work, and refusing them leaves it done.
	ChannelRates, IdentityRates map[string]Rate
	// OverloadCode answers a request refused by a rate limit or a full
	// destination window; default 91.
	OverloadCode string
	// QueueBudget declines (OverloadCode) a request that waited longer than
	// this between its frame being read and the switch taking it up: under
	// a CPU stall an answer that late is worth less than a fast decline.
	// 0: no budget.
	QueueBudget time.Duration
	// Restamp names the destinations whose requests get the switch's own
	// STAN (11) and retrieval reference number (37) on the way out, and the
	// channel's back on the answer: hosts that need numbers unique across
	// all the switch's channels. Never a ledger shard, whose idempotency key
	// holds the channel's STAN. Reversals and advices from channels are not
	// re-stamped (their field 90 names the channel's STAN, which such a host
	// never saw): use it only for hosts that get no channel reversals.
	Restamp map[string]bool
	// StandIn, when set, approves purchases within its limits for a
	// destination that cannot be reached, on routes that name
	// routing.StandIn among their alternates.
	StandIn *StandIn
	// SAF carries, when set, the reversal advice of every request whose
	// destination may have acted on it without answering (a timeout, a
	// connection lost under it), and the advices (0220, 0420) from channels
	// whose destination cannot take them now. Without it such requests are
	// logged as needing a reversal by hand.
	SAF *SAF
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

	inFlight   *inFlight
	channels   map[string]*Bucket  // rate per channel
	identities map[string]*Buckets // rate per identity, by channel
	epoch      time.Time           // the buckets' clock: nanoseconds since
	overload   string
	budget     time.Duration
	restamp    map[string]bool
	stan       atomic.Uint32
	outbound   sync.Pool // *restamped
	saf        *SAF
	standIn    *StandIn
	reversals  sync.Pool // *codec.Message
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
	if o.OverloadCode == "" {
		o.OverloadCode = codec.RCIssuerUnavailable
	}
	if len(o.OverloadCode) != 2 {
		return nil, fmt.Errorf("switch: overload code %q is not a two-character response code", o.OverloadCode)
	}
	if o.Match == nil {
		o.Match = DefaultMatch
	}
	s := &Switch{
		dests: o.Destinations, inbound: o.Inbound, log: log, timeout: o.Timeout,
		metrics: newMetrics(o.Registerer), scratch: sync.Pool{New: func() any { return new(converted) }},
		channels: map[string]*Bucket{}, identities: map[string]*Buckets{}, epoch: time.Now(),
		overload: o.OverloadCode, saf: o.SAF, budget: o.QueueBudget, restamp: o.Restamp,
		standIn: o.StandIn,
	}
	s.outbound.New = func() any { return new(restamped) }
	s.reversals.New = func() any { return codec.NewMessage(codec.ISO87ASCII()) }
	var err error
	if s.inFlight, err = newInFlight(codec.ISO87ASCII(), o.Match); err != nil {
		return nil, err
	}
	for ch, r := range o.ChannelRates {
		s.channels[ch] = NewBucket(r)
	}
	for ch, r := range o.IdentityRates {
		s.identities[ch] = NewBuckets(r, maxIdentities)
	}
	if err := s.SetRoutes(o.Routes); err != nil {
		return nil, err
	}
	return s, nil
}

// maxIdentities bounds the identity buckets of one channel; identities
// beyond it share one bucket (see Buckets).
const maxIdentities = 100_000

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
		if r.Destination == routing.StandIn {
			return fmt.Errorf("switch: rule %s: stand-in is an alternate, not a destination: its advices go to the destination it stands in for", r.Name)
		}
		for _, n := range names {
			if n == routing.StandIn && s.standIn == nil {
				return fmt.Errorf("switch: rule %s names stand-in, which is not configured", r.Name)
			}
			if n != "" && n != routing.StandIn && s.dests[n] == nil {
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
	ok, _ := s.serve(ctx, p, req, resp)
	return ok
}

// serveConverted serves a request of a channel whose dialect differs from
// the switch's: in through m, served, and back through m.
func (s *Switch) serveConverted(ctx context.Context, p *front.Peer, m *codec.Map, req, resp *codec.Message) bool {
	mti, _ := req.MTI()
	if !codec.IsRequest(mti) {
		s.log.Debug("unsolicited message dropped", "channel", p.Channel, "mti", string(mti[:]))
		s.metrics.count(p.Channel, "", mti, [2]byte{'-', '-'})
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
		s.metrics.count(p.Channel, "", mti, [2]byte{'3', '0'})
		return s.answer(req, resp, m.ResponseCode(codec.RCFormatError, mti[1]))
	}
	ok, dest := s.serve(ctx, p, &c.req, &c.resp)
	if !ok {
		return false
	}
	if err := m.Response(resp, &c.resp, &c.saved); err != nil {
		s.log.Error("response does not convert back", "channel", p.Channel, "map", m.Name(), "err", err)
		if string(c.resp.Get(39)) == codec.RCApproved && dest != "" {
			// The destination booked what the channel will hear declined:
			// undo it.
			cmti, _ := c.req.MTI()
			s.reverse(dest, cmti, &c.req, "the approval does not convert back into the channel's dialect")
		}
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
		s.metrics.count(p.Channel, "", [4]byte{'-', '-', '-', '-'}, [2]byte{'-', '-'})
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
	s.metrics.count(p.Channel, "", mti, [2]byte{rc[0], rc[1]})
	return true
}
