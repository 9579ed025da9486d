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
//	0100                    00xxxx  pre-authorisation       OpPreAuth (a hold); with 103 an
//	                                escrow in favour of the merchant that 103 names
//	0220, 0221              00xxxx  completion              OpCompletion, when 90 names an 0100
//	0220, 0221              00xxxx  stand-in purchase       OpAdvice, otherwise
//	0200                    20xxxx  refund                  OpRefund; 90 names the purchase
//	0400, 0401, 0420, 0421  00xxxx  reversal of a purchase, a completion, or a pre-authorisation
//	                                (a void of its hold)    OpReversal
//	0400, 0401, 0420, 0421  21xxxx, 40xxxx, 50xxxx
//	                                reversal of a top-up, transfer or bill payment: OpReversal,
//	                                51 when the money is no longer where it went
//	0400, 0401, 0420, 0421  31xxxx  reversal of an inquiry  00 at once: it booked nothing
//	0120, 0121, 0220, 0221  31xxxx  advice of an inquiry    00 at once: nothing to book
//	0200                    21xxxx  top-up                  OpDeposit (from the funding account)
//	0200                    40xxxx  transfer                OpTransfer, to the account in 103
//	0200                    50xxxx  bill payment            OpPayment, to the biller in 103
//
// The account a request acts for is the card in field 2; without 2, an
// inquiry, top-up, transfer or payment names it by account or phone number
// in field 102 (the hotline). Field 103 names the account a transfer or bill
// payment credits: its account number, a biller code, or a card number.
//
// (0101 and 0201 are the repeats of 0100 and 0200 and take the same way.) Everything else is
// declined with 12. The response MTI is the request's
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
// The journal entry of a booking keeps fields 32 (acquirer), 11 (STAN) and
// 37 (RRN, without padding) besides 41 and 42; one longer than ISO 8583:1987
// allows is 30. An approved booking's response carries its settlement date
// in field 15 (MMDD; YYMMDD in a dialect whose 15 is six digits), the
// date of the window the shard booked it in; so does its replay.
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
// Naming an 0100, a reversal voids the hold (field 95: down to that amount).
//
// A completion (0220 whose 90 names an 0100) is keyed by its own TxIDOf
// and posts the hold: 00 with 38; 25 when the pre-authorisation is not
// booked here (or was declined, or is another card's); 13 for an amount
// above what is still held or another currency; 12 when the hold is no
// longer pending (completed, voided or expired). A refund (0200, 20xxxx)
// needs 90 (30 without) and credits the card: 25 without its purchase, 13
// beyond what reversals and refunds have not given back yet.
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
	if res.Code == Approved && res.SettleDate != 0 {
		if err := setSettleDate(resp, res.SettleDate); err != nil {
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

// setSettleDate answers the settlement date of a booking in field 15: MMDD
// as ISO 8583:1987 defines it (n4), or YYMMDD where the dialect's field 15 is
// six digits long (ISO 8583:1993). A dialect without field 15 gets none.
func setSettleDate(resp *codec.Message, date uint32) error {
	f, ok := resp.Dialect().Field(15)
	if !ok {
		return nil
	}
	var v [8]byte
	b := strconv.AppendUint(v[:0], uint64(date), 10) // YYYYMMDD
	switch {
	case len(b) != 8:
		return nil // not a date the shard writes
	case f.Length == 4:
		b = b[4:]
	case f.Length == 6:
		b = b[2:]
	default:
		return nil
	}
	return resp.Set(15, b)
}

// request maps an ISO request to a shard Request, or to the response code
// that declines it.
func request(m *codec.Message) (Request, Code) {
	mti, _ := m.MTI()
	pcode := m.Get(3)
	if len(pcode) != 6 || !m.Has(2) && !m.Has(102) {
		return Request{}, Code(codec.RCFormatError)
	}
	r := Request{PAN: string(m.Get(2))}
	if r.PAN == "" {
		// The hotline names accounts by account or phone number instead of a card.
		r.From = string(bytes.TrimRight(m.Get(102), " "))
	}
	advice := mti[2] == '2' // function digit: 0120, 0220 and their repeats
	switch {
	case advice && bytes.HasPrefix(pcode, []byte(codec.TxBalance)) && (mti[1] == codec.ClassFinancial || mti[1] == codec.ClassAuthorization):
		return Request{}, Approved // the switch answered an inquiry: nothing to book
	case advice && bytes.HasPrefix(pcode, []byte(codec.TxPurchase)) && mti[1] == codec.ClassFinancial:
		r.Op = OpAdvice
		if f := m.Get(90); len(f) == 42 && f[1] == codec.ClassAuthorization {
			r.Op = OpCompletion // the advice of a pre-authorisation's completion
		}
	case mti[1] == codec.ClassReversal && bytes.HasPrefix(pcode, []byte(codec.TxBalance)):
		return Request{}, Approved // an inquiry booked nothing: nothing to undo
	case mti[1] == codec.ClassReversal && (bytes.HasPrefix(pcode, []byte(codec.TxPurchase)) ||
		bytes.HasPrefix(pcode, []byte(codec.TxDeposit)) || bytes.HasPrefix(pcode, []byte(codec.TxTransfer)) ||
		bytes.HasPrefix(pcode, []byte(codec.TxPayment))):
		r.Op = OpReversal
	case bytes.HasPrefix(pcode, []byte(codec.TxBalance)) && (mti[1] == codec.ClassFinancial || mti[1] == codec.ClassAuthorization):
		r.Op = OpBalance
		return r, ""
	case bytes.HasPrefix(pcode, []byte(codec.TxDeposit)) && mti[1] == codec.ClassFinancial && mti[2] == '0':
		r.Op = OpDeposit
	case bytes.HasPrefix(pcode, []byte(codec.TxTransfer)) && mti[1] == codec.ClassFinancial && mti[2] == '0':
		r.Op = OpTransfer
	case bytes.HasPrefix(pcode, []byte(codec.TxPayment)) && mti[1] == codec.ClassFinancial && mti[2] == '0':
		r.Op = OpPayment
	case bytes.HasPrefix(pcode, []byte(codec.TxPurchase)) && mti[1] == codec.ClassFinancial && mti[2] == '0':
		r.Op = OpPurchase
	case bytes.HasPrefix(pcode, []byte(codec.TxPurchase)) && mti[1] == codec.ClassAuthorization && mti[2] == '0':
		r.Op = OpPreAuth
	case bytes.HasPrefix(pcode, []byte(codec.TxRefund)) && mti[1] == codec.ClassFinancial && mti[2] == '0':
		r.Op = OpRefund
		if !m.Has(90) {
			return Request{}, Code(codec.RCFormatError) // a refund names its purchase
		}
	default:
		// The rest is declined, never guessed.
		return Request{}, InvalidTransaction
	}
	switch r.Op {
	case OpDeposit:
	case OpTransfer, OpPayment:
		if r.To = string(bytes.TrimRight(m.Get(103), " ")); r.To == "" {
			return Request{}, Code(codec.RCFormatError) // where the money goes
		}
	case OpPreAuth:
		// With 103, an escrow: the hold is in favour of the seller it names.
		if r.To = string(bytes.TrimRight(m.Get(103), " ")); r.PAN == "" {
			return Request{}, Code(codec.RCFormatError)
		}
	case OpReversal:
		// A reversal names the account as its original did.
	default:
		if r.PAN == "" {
			return Request{}, Code(codec.RCFormatError) // only top-ups and transfers go by number
		}
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
	// Annotations for the journal: longer than the 1987 fields allow (a dialect that
	// lets them be) is a format error, never cut short, so what the journal keeps always
	// matches what the acquirer's files say.
	r.Acquirer = string(m.Get(32))
	r.STAN = string(m.Get(11))
	r.RRN = string(bytes.Trim(m.Get(37), " "))
	if len(r.Acquirer) > maxAcquirer || len(r.STAN) > maxSTAN || len(r.RRN) > maxRRN {
		return Request{}, Code(codec.RCFormatError)
	}
	var rc Code
	switch r.Op {
	case OpAdvice:
		if !m.Has(32) {
			return Request{}, Code(codec.RCFormatError) // the purchase's TxID needs it
		}
		r.ID, rc = adviceTxID(m)
	case OpReversal, OpRefund:
		r.ID = TxIDOf(m)
		r.Original, rc = originalTxID(m)
	case OpCompletion:
		r.ID = TxIDOf(m)
		r.Original, rc = originalTxID(m)
		if f := m.Get(90); rc == "" && f[2] != '0' {
			rc = InvalidTransaction // 90 names an advice or a response, not the pre-authorisation
		}
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
// pre-authorisation, which request maps to OpCompletion before it gets here.
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
