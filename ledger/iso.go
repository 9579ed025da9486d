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
// The idempotency key is TxIDOf(req): a retransmission gets the first
// answer back and is never booked twice.
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
	switch {
	case bytes.HasPrefix(pcode, []byte(codec.TxBalance)) && (mti[1] == codec.ClassFinancial || mti[1] == codec.ClassAuthorization):
		r.Op = OpBalance
		return r, ""
	case bytes.HasPrefix(pcode, []byte(codec.TxPurchase)) && mti[1] == codec.ClassFinancial && mti[2] == '0':
		r.Op = OpPurchase
	default:
		// Pre-authorisation, refunds, reversals and the rest come with the
		// holds and reversal work; until then they are declined, never guessed.
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
	r.ID = TxIDOf(m)
	return r, ""
}

// TxIDOf is the idempotency key of the transaction m belongs to: the MTI's
// version and class with the function digit of its request (so 0200, 0201
// and their 0210 give the same key), the acquiring institution (32), the
// terminal (41), the STAN (11) and the transmission time (7).
func TxIDOf(m *codec.Message) TxID {
	mti, _ := m.MTI()
	key := [3]byte{mti[0], mti[1], '0' + (mti[2]-'0')&^1}
	return NewTxID(key[:], m.Get(32), m.Get(41), m.Get(11), m.Get(7))
}

// number parses an n field of at most 18 digits; false when absent.
func number(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}
