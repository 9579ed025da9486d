package ledger

import (
	"bytes"
	"context"
	"strconv"

	"github.com/junction-switch/junction/codec"
)

// Host is a shard seen as an ISO 8583 host: it turns a request message into
// a Request, runs it through the shard, and turns the Result into the
// response message. The switch calls it in-process in the all-in-one
// deployment; a shard process will serve the same code over a link.
type Host struct {
	shard *Shard
}

// NewHost returns the ISO host of s.
func NewHost(s *Shard) *Host { return &Host{shard: s} }

// Exchange answers req in resp. Requests the shard cannot take (a missing
// field, an unsupported processing code) are answered with a decline code,
// not an error; an error means the outcome is unknown (the shard is closed,
// ctx ended, a commit failed) and the switch declines on the shard's behalf.
//
// The idempotency key is TxIDOf(req), except for a stand-in advice (see
// below): a retransmission gets the first answer back and is never booked
// twice.
//
// What it takes, by MTI class and processing code (field 3):
//
//	0100, 0200              31xxxx  balance inquiry         OpBalance
//	0200                    00xxxx  purchase                OpPurchase
//	0400, 0401, 0420, 0421  00xxxx  reversal of a purchase  OpReversal
//	0400, 0401, 0420, 0421  31xxxx  reversal of an inquiry  00 at once: it booked nothing
//	0220, 0221              00xxxx  stand-in purchase       OpAdvice
//	0120, 0121, 0220, 0221  31xxxx  advice of an inquiry    00 at once: nothing to book
//
// Everything else is declined with 12. The response MTI is the request's
// response (0410 for 0400 and 0401, 0430 for 0420 and 0421, 0230 for 0220
// and 0221), and the host speaks ISO 8583:1987: fields 90 and 95 carry their
// 1987 meanings. A purchase needs 2, 4, 7, 11, 41 and 49 besides 3, an
// advice 32 as well; a missing one is 30.
//
// A stand-in advice (0220, repeated as 0221) reports a purchase the switch
// approved while the shard was down. Its key is the purchase's own TxIDOf
// (see adviceTxID), so the purchase, should it have reached the shard after
// all, and its advice book at most once between them. Its answer: 00 when
// booked (forced: a blocked card or a short balance does not stop it; 38
// carries the approval code), when the purchase was already booked (38 is
// the purchase's), or when a reversal of the purchase got there first
// (nothing booked, no 38); 14 for a closed or unknown card and 13 for an
// amount or currency that does not fit, booking nothing: the switch stops
// repeating the advice either way. A reversal of the purchase, before or
// after the advice, undoes the stand-in booking like any purchase.
//
// A reversal names its original by the original's TxIDOf, rebuilt from
// field 90 (see originalTxID), and states in field 95 the amount the
// purchase ended at (a partial reversal; absent, it is reversed fully). Its
// answer: 00 when undone (38 carries the approval code when this reversal
// booked something), or when there was nothing to undo (the original was
// declined, or already reversed that far); 25 when the original is not
// booked here, in which case the shard tombstones the original's TxID so
// that it declines with 68 should it still arrive; 13 for amounts that do
// not fit the original. 0400 and 0420 for one original have different
// TxIDs but undo it once between them; 0421 is 0420's retransmission.
func (h *Host) Exchange(ctx context.Context, req, resp *codec.Message) error {
	if err := resp.InitResponse(req); err != nil {
		return err
	}
	r, rc := request(req)
	if rc != "" {
		return resp.SetString(39, string(rc))
	}
	res, err := h.shard.Do(ctx, &r)
	if err != nil {
		return err
	}
	if err := resp.SetString(39, string(res.Code)); err != nil {
		return err
	}
	if res.AuthCode != "" {
		if err := resp.SetString(38, res.AuthCode); err != nil {
			return err
		}
	}
	if res.Currency != 0 {
		// The card was found: report its balances, as ATMs and POS
		// terminals print them (ledger, then available).
		var buf [40]byte
		acct := string(req.Get(3)[2:4])
		b := codec.AppendAdditionalAmount(buf[:0], codec.AdditionalAmount{
			AccountType: acct, AmountType: codec.AmountLedger, Currency: res.Currency, Amount: res.Ledger})
		b = codec.AppendAdditionalAmount(b, codec.AdditionalAmount{
			AccountType: acct, AmountType: codec.AmountAvailable, Currency: res.Currency, Amount: res.Available})
		if err := resp.Set(54, b); err != nil {
			return err
		}
	}
	return nil
}

// request maps an ISO request to a shard Request, or to the response code
// that declines it.
func request(m *codec.Message) (Request, Code) {
	mti, _ := m.MTI()
	pcode := m.Get(3)
	if len(pcode) != 6 || !m.Has(2) {
		return Request{}, Code(codec.RCFormatError)
	}
	r := Request{PAN: string(m.Get(2))}
	advice := mti[2] == '2' // function digit: 0120, 0220 and their repeats
	switch {
	case advice && bytes.HasPrefix(pcode, []byte(codec.TxBalance)) && (mti[1] == codec.ClassFinancial || mti[1] == codec.ClassAuthorization):
		return Request{}, Approved // the switch answered an inquiry: nothing to book
	case advice && bytes.HasPrefix(pcode, []byte(codec.TxPurchase)) && mti[1] == codec.ClassFinancial:
		r.Op = OpAdvice
	case mti[1] == codec.ClassReversal && bytes.HasPrefix(pcode, []byte(codec.TxBalance)):
		return Request{}, Approved // an inquiry booked nothing: nothing to undo
	case mti[1] == codec.ClassReversal && bytes.HasPrefix(pcode, []byte(codec.TxPurchase)):
		r.Op = OpReversal
	case bytes.HasPrefix(pcode, []byte(codec.TxBalance)) && (mti[1] == codec.ClassFinancial || mti[1] == codec.ClassAuthorization):
		r.Op = OpBalance
		return r, ""
	case bytes.HasPrefix(pcode, []byte(codec.TxPurchase)) && mti[1] == codec.ClassFinancial && mti[2] == '0':
		r.Op = OpPurchase
	default:
		// Pre-authorisation, refunds and the rest come with the holds work;
		// until then they are declined, never guessed.
		return Request{}, InvalidTransaction
	}
	amount, ok := number(m.Get(4))
	currency, ok2 := number(m.Get(49))
	if !ok || !ok2 || !m.Has(7) || !m.Has(11) || !m.Has(41) {
		return Request{}, Code(codec.RCFormatError)
	}
	r.Amount = amount
	r.Currency = uint16(currency)
	r.Terminal = string(m.Get(41))
	r.Merchant = string(bytes.TrimRight(m.Get(42), " "))
	var rc Code
	switch r.Op {
	case OpAdvice:
		if !m.Has(32) {
			return Request{}, Code(codec.RCFormatError) // the purchase's TxID needs it
		}
		r.ID, rc = adviceTxID(m)
	case OpReversal:
		r.ID = TxIDOf(m)
		r.Original, rc = originalTxID(m)
	default:
		r.ID = TxIDOf(m)
	}
	if rc != "" {
		return Request{}, rc
	}
	if r.Op == OpReversal {
		if v := m.Get(95); v != nil {
			// Replacement amounts: the first 12 characters are the
			// transaction amount the purchase ended at.
			if len(v) < 12 {
				return Request{}, Code(codec.RCFormatError)
			}
			if r.Actual, ok = number(v[:12]); !ok {
				return Request{}, Code(codec.RCFormatError)
			}
		}
	}
	return r, ""
}

// TxIDOf is the idempotency key of the transaction m belongs to: the MTI's
// version and class with the function digit of its request (so 0200, 0201
// and their 0210 give the same key, and 0420, 0421 and 0430 another), the
// acquiring institution (32), the terminal (41), the STAN (11) and the
// transmission time (7). A stand-in advice (0220) is not keyed by its own
// TxIDOf but by its purchase's: see adviceTxID.
func TxIDOf(m *codec.Message) TxID {
	mti, _ := m.MTI()
	return txIDOf(mti, m.Get(32), m.Get(41), m.Get(11), m.Get(7))
}

func txIDOf(mti [4]byte, acquirer, terminal, stan, when []byte) TxID {
	key := [3]byte{mti[0], mti[1], '0' + (mti[2]-'0')&^1}
	return NewTxID(key[:], acquirer, terminal, stan, when)
}

// originalTxID is the TxIDOf of the request that m, a reversal or an advice,
// refers to. Field 90 (original data elements, n42: MTI n4, STAN n6,
// transmission date and time n10, acquiring institution n11, forwarding
// institution n11) names it when present. Without 90, m repeats the
// original's 7, 11 and 32, and the original was an 0200. The terminal (41) is
// m's own either way: 90 does not carry it, and a reversal or advice comes
// from where its original came from. An original that was neither an
// authorisation nor a financial request cannot be referred to (12).
func originalTxID(m *codec.Message) (TxID, Code) {
	mti, _ := m.MTI()
	f := m.Get(90)
	if f == nil {
		return txIDOf([4]byte{mti[0], codec.ClassFinancial, '0', '0'}, m.Get(32), m.Get(41), m.Get(11), m.Get(7)), ""
	}
	if len(f) != 42 {
		return TxID{}, Code(codec.RCFormatError)
	}
	for _, c := range f {
		if c < '0' || c > '9' {
			return TxID{}, Code(codec.RCFormatError)
		}
	}
	orig := [4]byte(f[0:4])
	if orig[1] != codec.ClassAuthorization && orig[1] != codec.ClassFinancial {
		return TxID{}, InvalidTransaction
	}
	return txIDOf(orig, acquirer(f[20:31], m.Get(32)), m.Get(41), f[4:10], f[10:20]), ""
}

// adviceTxID is the TxID of the purchase a stand-in advice m reports: that
// purchase's own TxIDOf, not m's, so that the purchase and its advice share
// one idempotency record whichever reaches the shard first. It is rebuilt as
// for a reversal (originalTxID): from field 90, or without 90 from m's own
// 7, 11, 32 and 41 under the class of an 0200. Field 90 must name an 0200
// (or its 0201 repeat); an 0220 for an 0100 is the completion of a
// pre-authorisation, which comes with the holds work (12).
func adviceTxID(m *codec.Message) (TxID, Code) {
	id, rc := originalTxID(m)
	if rc != "" {
		return TxID{}, rc
	}
	if f := m.Get(90); f != nil && (f[1] != codec.ClassFinancial || f[2] != '0') {
		return TxID{}, InvalidTransaction
	}
	return id, ""
}

// acquirer returns the original's field 32 given field 90's copy of it,
// which is zero padded to 11 digits where 32 itself is variable length and
// was sent without the padding. All zeros means "not given": the reversal's
// own 32 stands in. When the padded value is the reversal's own 32 (the
// usual case, one acquirer), that spelling is taken as it is, so an id that
// itself begins with a zero still matches.
func acquirer(padded, own []byte) []byte {
	id := bytes.TrimLeft(padded, "0")
	if len(id) == 0 || bytes.Equal(id, bytes.TrimLeft(own, "0")) {
		return own
	}
	return id
}

// number parses an n field of at most 18 digits; false when absent.
func number(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}
