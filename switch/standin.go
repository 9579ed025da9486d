package switching

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-switch/junction/codec"
)

// StandInLimits bound what stand-in approves per card, in the minor units
// of Currency: each purchase at most MaxAmount, and per card and UTC day at
// most DailyAmount over at most DailyCount purchases.
type StandInLimits struct {
	Currency    uint16
	MaxAmount   int64
	DailyAmount int64
	DailyCount  int
}

// StandIn approves purchases on an issuer's behalf while its shard cannot
// be reached, within per-card limits, and owes the shard an advice (0220)
// for each: the advice is in the SAF, durable, before the approval is
// given, and the shard books it when it is back (forced: the cardholder
// has the goods). Only purchases stand in; anything else is declined 91, as
// without stand-in.
//
// Per-card usage is kept in memory by a digest of the PAN, per UTC day:
// after a restart a card's usage of the day starts again from zero.
type StandIn struct {
	limits StandInLimits
	saf    *SAF
	now    func() time.Time
	log    *slog.Logger
	auth   atomic.Uint32

	mu    sync.Mutex
	day   int // days since the epoch, UTC
	usage map[[16]byte]cardUsage
}

type cardUsage struct {
	amount int64
	count  int
}

// NewStandIn returns stand-in processing with limits, queuing its advices
// in saf; now is its clock (default time.Now).
func NewStandIn(limits StandInLimits, saf *SAF, now func() time.Time, log *slog.Logger) (*StandIn, error) {
	switch {
	case saf == nil:
		return nil, errors.New("switch: stand-in needs the SAF: its advices must be durable before it approves")
	case limits.Currency == 0 || limits.MaxAmount <= 0 || limits.DailyAmount < limits.MaxAmount || limits.DailyCount < 1:
		return nil, fmt.Errorf("switch: stand-in limits %+v: want a currency, 0 < max <= daily amount, daily count >= 1", limits)
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &StandIn{limits: limits, saf: saf, now: now, log: log, usage: map[[16]byte]cardUsage{}}, nil
}

// standInResult is what stand-in made of a request.
type standInResult uint8

const (
	standInApproved standInResult = iota
	standInNotEligible
	standInOverLimit
	standInOverCount
	standInFailed
)

// approve decides req for home, the destination that could not be
// reached. On approval the advice is queued for home and auth is the
// approval code for field 38.
func (si *StandIn) approve(home string, req *codec.Message, adv *codec.Message) (standInResult, [6]byte) {
	var auth [6]byte
	mti, _ := req.MTI()
	pcode := req.Get(3)
	amount, okAmount := digitsValue(req.Get(4))
	currency, _ := digitsValue(req.Get(49))
	if mti[1] != codec.ClassFinancial || mti[2] != '0' || len(pcode) < 2 || string(pcode[:2]) != codec.TxPurchase ||
		!okAmount || amount <= 0 || uint16(currency) != si.limits.Currency || !req.Has(2) {
		return standInNotEligible, auth
	}
	if amount > si.limits.MaxAmount {
		return standInOverLimit, auth
	}
	card := sha256.Sum256(req.Get(2))
	var key [16]byte
	copy(key[:], card[:16])

	// Reserve the card's usage under the lock, then make the advice
	// durable outside it, so that one card's synced write does not hold up
	// every other card; give the reservation back if the advice fails.
	si.mu.Lock()
	day := int(si.now().UTC().Unix() / 86400)
	if day != si.day {
		si.day, si.usage = day, map[[16]byte]cardUsage{}
	}
	u := si.usage[key]
	switch {
	case u.count >= si.limits.DailyCount:
		si.mu.Unlock()
		return standInOverCount, auth
	case u.amount+amount > si.limits.DailyAmount:
		si.mu.Unlock()
		return standInOverLimit, auth
	}
	si.usage[key] = cardUsage{amount: u.amount + amount, count: u.count + 1}
	si.mu.Unlock()
	release := func() {
		si.mu.Lock()
		if si.day == day {
			r := si.usage[key]
			si.usage[key] = cardUsage{amount: r.amount - amount, count: r.count - 1}
		}
		si.mu.Unlock()
	}

	n := si.auth.Add(1) % 100000
	auth[0] = 'S' // stand-in approvals are told apart from the shard's at a glance
	for i := 5; i >= 1; i-- {
		auth[i] = byte('0' + n%10)
		n /= 10
	}
	if err := buildAdvice(adv, req, auth); err != nil {
		release()
		si.log.Error("stand-in advice does not build; declined", "err", err)
		return standInFailed, auth
	}
	// The SAF's synced write is the price of an approval that survives a
	// crash.
	if err := si.saf.Enqueue(home, adv); err != nil {
		release()
		si.log.Error("stand-in advice not queued; declined", "dest", home, "err", err)
		return standInFailed, auth
	}
	return standInApproved, auth
}

// buildAdvice makes adv the stand-in advice (0220) of the purchase req,
// approved with auth: the purchase's fields, 38 and 39, and field 90
// naming the purchase, whose idempotency key the shard books it under.
func buildAdvice(adv, req *codec.Message, auth [6]byte) error {
	if err := adviceOf(adv, req, codec.ClassFinancial); err != nil {
		return err
	}
	if err := adv.Set(38, auth[:]); err != nil {
		return err
	}
	return adv.SetString(39, codec.RCApproved)
}

// serve stands in for home on req: true when it answered (approved, or
// declined over a limit), false when the request is not one stand-in takes
// and the switch goes on as if it were not configured.
func (si *StandIn) serve(s *Switch, home string, req, resp *codec.Message, o *served) bool {
	if si == nil {
		return false
	}
	adv := s.reversals.Get().(*codec.Message)
	defer s.reversals.Put(adv)
	res, auth := si.approve(home, req, adv)
	s.metrics.standIn(res)
	switch res {
	case standInApproved:
		if resp.InitResponse(req) != nil || resp.Set(38, auth[:]) != nil || resp.SetString(39, codec.RCApproved) != nil {
			// The advice is queued and the shard will book it, but the
			// approval does not build: the terminal hears 96, so the
			// switch undoes the advice with a reversal behind it.
			o.rc, o.reason = codec.RCSystemError, declineStandIn
			mti, _ := req.MTI()
			s.reverse(home, mti, req, "the stand-in approval does not build")
		}
		o.dest = home // what the approval is booked at, and where a reversal of it goes
		si.log.Info("stand-in approval", "home", home, "pan", codec.MaskPAN(req.Get(2)), "stan", string(req.Get(11)), "auth", string(auth[:]))
		return true
	case standInOverLimit:
		o.rc, o.reason = codec.RCExceedsAmount, declineStandIn
		return true
	case standInOverCount:
		o.rc, o.reason = codec.RCExceedsCount, declineStandIn
		return true
	}
	return false
}
