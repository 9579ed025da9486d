package switching

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/routing"
)

// served is what the switch made of one request, for the answer, the
// metrics and the log.
type served struct {
	dest, rule string
	rc         string  // the switch's own answer; "" when a destination answered
	reason     decline // why the switch answered itself
	received   time.Time
	admitted   time.Time     // admission (rate limits, matching, routing) done
	destTime   time.Duration // spent waiting for destinations
}

// serve answers one request in the switch's dialect: false when there is
// nothing to send; dest is the destination that answered ("" when the
// switch answered itself).
func (s *Switch) serve(ctx context.Context, p *front.Peer, req, resp *codec.Message) (ok bool, dest string) {
	start := time.Now()
	mti, _ := req.MTI()
	if !codec.IsRequest(mti) {
		// A response or notification from a terminal: nothing to answer.
		s.log.Debug("unsolicited message dropped", "channel", p.Channel, "mti", string(mti[:]))
		s.metrics.count(p.Channel, "", mti, [2]byte{'-', '-'})
		return false, ""
	}
	o := served{received: front.Received(ctx)}
	if o.received.IsZero() {
		o.received = start
	}
	s.dispatch(ctx, p, mti, req, resp, &o)
	if o.rc != "" {
		// The switch answers itself: start from the request again, since a
		// destination that failed may have left resp half built.
		if err := resp.InitResponse(req); err != nil {
			return false, ""
		}
		_ = resp.SetString(39, o.rc)
		s.metrics.declined(o.reason)
	}
	got := resp.Get(39)
	var code [2]byte
	copy(code[:], got)
	end := time.Now()
	if o.admitted.IsZero() {
		o.admitted = end
	}
	s.metrics.observe(p.Channel, o.rule, mti, code, stageTimes{
		front: start.Sub(o.received), queue: o.admitted.Sub(start), destination: o.destTime, total: end.Sub(o.received),
	})
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("request answered", "channel", p.Channel, "identity", p.Identity, "mti", string(mti[:]),
			"pan", codec.MaskPAN(req.Get(2)), "stan", string(req.Get(11)), "terminal", string(req.Get(41)),
			"rule", o.rule, "dest", o.dest, "rc", string(got))
	}
	if o.rc != "" && o.rc != codec.RCApproved {
		return true, "" // the switch's own decline
	}
	return true, o.dest
}

// dispatch does the work for one request: admission, matching, routing, the
// destination and its alternates. It sets o.rc when the switch answers
// itself.
func (s *Switch) dispatch(ctx context.Context, p *front.Peer, mti [4]byte, req, resp *codec.Message, o *served) {
	decline := func(rc string, why decline) { o.rc, o.reason = rc, why }
	switch mti[1] {
	case codec.ClassAuthorization, codec.ClassFinancial, codec.ClassReversal:
	default:
		// Network management is answered at the edge (package front);
		// the other classes are not served.
		decline(codec.RCInvalidTransaction, declineUnsupported)
		return
	}
	if !req.Has(2) && !req.Has(102) || !req.Has(3) || !req.Has(7) || !req.Has(11) || !req.Has(41) {
		decline(codec.RCFormatError, declineFormat)
		return
	}
	if !req.Has(32) && p.Institution != "" {
		// The acquiring institution is the channel's: it makes the
		// transaction id unique across channels that reuse terminal ids.
		if err := req.SetString(32, p.Institution); err != nil {
			decline(codec.RCSystemError, declineFormat)
			return
		}
	}

	// Admission: the queue-time budget, rate limits, then the matching key.
	// Each refuses at once.
	if s.budget > 0 && time.Since(o.received) > s.budget {
		decline(s.overload, declineBudget)
		return
	}
	if mti[1] != codec.ClassReversal {
		now := int64(time.Since(s.epoch))
		if b := s.channels[p.Channel]; b != nil && !b.Take(now) {
			decline(s.overload, declineRateChannel)
			return
		}
		if b := s.identities[p.Channel]; b != nil && !b.Take(p.Identity, now) {
			decline(s.overload, declineRateIdentity)
			return
		}
	}
	var key matchKey
	s.inFlight.key(&key, mti, req)
	if !s.inFlight.add(&key) {
		s.log.Warn("duplicate transmission in flight", "channel", p.Channel, "mti", string(mti[:]),
			"stan", string(req.Get(11)), "terminal", string(req.Get(41)))
		decline(codec.RCDuplicate, declineDuplicate)
		return
	}
	defer s.inFlight.done(&key)

	in := routing.Input{
		Channel: p.Channel, Identity: p.Identity, MTI: mti,
		PCode: req.Get(3), PAN: req.Get(2), Account: req.Get(102),
	}
	in.Amount, in.HasAmount = digitsValue(req.Get(4))
	if c, ok := digitsValue(req.Get(49)); ok {
		in.Currency = uint16(c)
	}
	routes := s.routes.Load()
	d := routes.table.Decide(&in)
	if d.Index >= 0 {
		routes.counters[d.Index].Inc()
	} else {
		routes.none.Inc()
	}
	o.rule = d.Rule
	o.admitted = time.Now()
	if d.Decline != "" {
		decline(d.Decline, declineRoute)
		return
	}
	timeout, timeoutCode := s.timeout, codec.RCIssuerUnavailable
	if d.Timeout > 0 {
		timeout = d.Timeout
	}
	if d.TimeoutCode != "" {
		timeoutCode = d.TimeoutCode
	}

	// The destination, then its alternates while a destination could not
	// even be sent the request. Once one may have acted on it, there is no
	// going elsewhere: a timeout is answered and the request reversed.
	for i := -1; i < len(d.Alternates); i++ {
		name := d.Destination
		if i >= 0 {
			name = d.Alternates[i]
		}
		o.dest = name
		if name == routing.StandIn {
			if s.standIn.serve(s, d.Destination, req, resp, o) {
				return
			}
			continue
		}
		dest := s.dests[name]
		out := req // what the destination gets: req, or req re-stamped
		var rs *restamped
		if s.restamp[name] {
			rs = s.outbound.Get().(*restamped)
			if err := s.stamp(rs, req); err != nil {
				s.outbound.Put(rs)
				s.log.Error("request does not re-stamp", "dest", name, "err", err)
				decline(codec.RCSystemError, declineFormat)
				return
			}
			out = &rs.req
		}
		t0 := time.Now()
		dctx, cancel := context.WithTimeout(ctx, timeout)
		err := dest.Exchange(dctx, out, resp)
		cancel()
		o.destTime += time.Since(t0)
		if rs != nil {
			if err == nil {
				err = restore(resp, req)
			}
			defer s.outbound.Put(rs) // after any reversal of it below
		}
		if err == nil {
			if !resp.Has(39) {
				s.log.Error("destination answered without a response code", "dest", name)
				s.reverse(name, mti, out, "answer without a response code")
				decline(codec.RCSystemError, declineBadAnswer)
			}
			return
		}
		switch {
		case errors.Is(err, ErrOverloaded), errors.Is(err, front.ErrBusy):
			decline(s.overload, declineWindow)
			return
		case errors.Is(err, front.ErrNotSent):
			s.log.Warn("destination cannot take the request; trying the next", "channel", p.Channel, "dest", name,
				"rule", d.Rule, "stan", string(req.Get(11)), "err", err)
			continue
		case errors.Is(err, front.ErrDuplicateKey):
			// The same key is in flight on the link: the first keeps its
			// place.
			decline(codec.RCDuplicate, declineDuplicate)
			return
		}
		s.log.Warn("destination did not answer", "channel", p.Channel, "dest", name, "rule", d.Rule,
			"mti", string(mti[:]), "stan", string(req.Get(11)), "terminal", string(req.Get(41)), "err", err)
		if isAdvice(mti) && s.forward(name, req) {
			// The switch holds the advice and delivers it: accepted.
			o.rc = codec.RCApproved
			return
		}
		// The destination knows the request by what it was sent: out.
		s.reverse(name, mti, out, err.Error())
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			decline(timeoutCode, declineTimeout)
		case errors.Is(err, ErrUnavailable), errors.Is(err, front.ErrUnavailable):
			decline(codec.RCIssuerUnavailable, declineUnavailable)
		default:
			decline(codec.RCSystemError, declineBadAnswer)
		}
		return
	}
	if isAdvice(mti) && s.forward(d.Destination, req) {
		o.dest, o.rc = d.Destination, codec.RCApproved
		return
	}
	decline(codec.RCIssuerUnavailable, declineUnavailable)
}

// isAdvice reports whether mti is an advice (0120, 0220, 0420): a
// notification of something done, which must reach its destination, and
// may reach it later.
func isAdvice(mti [4]byte) bool { return mti[2] == '2' }

// forward queues an advice from a channel for dest in the SAF; false when
// there is no SAF or it refused.
func (s *Switch) forward(dest string, req *codec.Message) bool {
	if s.saf == nil {
		return false
	}
	// What goes to disk carries no card secrets: track data, PIN block,
	// ICC data and security control are left out of the stored copy.
	adv := s.reversals.Get().(*codec.Message)
	defer s.reversals.Put(adv)
	adv.Reset(req.Dialect())
	mti, _ := req.MTI()
	if err := adv.SetMTI(mti); err != nil {
		return false
	}
	for id := 2; id <= codec.MaxField; id++ {
		if req.Has(id) && !secret(id) {
			if err := adv.Copy(req, id); err != nil {
				return false
			}
		}
	}
	if err := s.saf.Enqueue(dest, adv); err != nil {
		s.log.Error("advice not queued", "dest", dest, "stan", string(req.Get(11)), "err", err)
		return false
	}
	return true
}

// reverse queues the reversal advice of req, which dest may have acted on
// without answering (why), when it could have changed a balance.
func (s *Switch) reverse(dest string, mti [4]byte, req *codec.Message, why string) {
	if !needsReversal(mti, req) {
		return
	}
	log := s.log.With("dest", dest, "mti", string(mti[:]), "stan", string(req.Get(11)),
		"terminal", string(req.Get(41)), "pan", codec.MaskPAN(req.Get(2)), "why", why)
	if s.saf == nil {
		s.metrics.reversal("unqueued")
		log.Error("REVERSAL NEEDED: no store-and-forward queue to carry it; reverse by hand")
		return
	}
	rev := s.reversals.Get().(*codec.Message)
	defer s.reversals.Put(rev)
	if err := buildReversal(rev, req); err != nil {
		s.metrics.reversal("unqueued")
		log.Error("REVERSAL NEEDED: the reversal advice does not build; reverse by hand", "err", err)
		return
	}
	if err := s.saf.Enqueue(dest, rev); err != nil {
		s.metrics.reversal("unqueued")
		log.Error("REVERSAL NEEDED: the reversal advice was not queued; reverse by hand", "err", err)
		return
	}
	s.metrics.reversal("queued")
	log.Warn("reversal advice queued")
}

// restamped is a request with the switch's own STAN and RRN.
type restamped struct{ req codec.Message }

// stamp makes rs.req a copy of req with the switch's next STAN in 11 and a
// retrieval reference number in 37 (YDDDhh and the STAN: unique while the
// switch sends fewer than 999 999 re-stamped requests an hour).
func (s *Switch) stamp(rs *restamped, req *codec.Message) error {
	rs.req.Reset(req.Dialect())
	mti, _ := req.MTI()
	if err := rs.req.SetMTI(mti); err != nil {
		return err
	}
	for id := 2; id <= codec.MaxField; id++ {
		if req.Has(id) {
			if err := rs.req.Copy(req, id); err != nil {
				return err
			}
		}
	}
	n := s.stan.Add(1)%999999 + 1
	var stan [6]byte
	for i := 5; i >= 0; i-- {
		stan[i] = byte('0' + n%10)
		n /= 10
	}
	now := time.Now().UTC()
	var rrn [12]byte
	rrn[0] = byte('0' + now.Year()%10)
	day, hour := now.YearDay(), now.Hour()
	rrn[1], rrn[2], rrn[3] = byte('0'+day/100), byte('0'+day/10%10), byte('0'+day%10)
	rrn[4], rrn[5] = byte('0'+hour/10), byte('0'+hour%10)
	copy(rrn[6:], stan[:])
	if err := rs.req.Set(11, stan[:]); err != nil {
		return err
	}
	return rs.req.Set(37, rrn[:])
}

// restore puts the channel's STAN and RRN (or their absence) back on the
// answer.
func restore(resp, req *codec.Message) error {
	for _, id := range []int{11, 37} {
		if v := req.Get(id); v != nil {
			if err := resp.Set(id, v); err != nil {
				return err
			}
		} else {
			resp.Del(id)
		}
	}
	return nil
}

// secret reports whether a field carries card secrets that must not be
// stored: track 1, 2 and 3 data, the PIN block, security control, ICC
// data.
func secret(id int) bool {
	switch id {
	case 35, 36, 45, 52, 53, 55:
		return true
	}
	return false
}
