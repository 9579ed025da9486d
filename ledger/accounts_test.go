package ledger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/junction-switch/junction/codec"
)

const (
	phone  = "01055512345" // a fixed-line phone number owning a debit account
	biller = "WATER-BJ"    // a biller code
)

// accountsShard opens a shard on clock with pan1 (a card with 10000), a debit account owned by
// phone, a water-company biller and a credit line on pan2 with limit 5000.
func accountsShard(t *testing.T, clock *manualClock) (s *Shard, debit, water, credit uint64) {
	t.Helper()
	s = holdShard(t, "", clock)
	ctx := context.Background()
	var err error
	if debit, err = s.OpenAccount(ctx, AccountSpec{Type: Debit, Currency: cny, Name: "home line", Number: phone}); err != nil {
		t.Fatal(err)
	}
	if water, err = s.OpenAccount(ctx, AccountSpec{Type: Merchant, Currency: cny, Name: "water", Number: biller}); err != nil {
		t.Fatal(err)
	}
	if credit, err = s.OpenAccount(ctx, AccountSpec{Type: CreditLine, Currency: cny, Name: "credit", PAN: pan2,
		Limits: Limits{CreditLimit: 5000}}); err != nil {
		t.Fatal(err)
	}
	return s, debit, water, credit
}

func TestAccounts(t *testing.T) {
	ctx := context.Background()

	t.Run("top-up, transfer and bill payment by card and by number", func(t *testing.T) {
		s, debit, water, _ := accountsShard(t, newManualClock())
		if r := do(t, s, Request{Op: OpDeposit, ID: txid("top", 1), From: phone, Amount: 3000, Currency: cny}); r.Code != Approved || r.Ledger != 3000 {
			t.Errorf("top-up by number: %+v", r)
		}
		if r := do(t, s, Request{Op: OpTransfer, ID: txid("tr", 1), PAN: pan1, To: phone, Amount: 2000, Currency: cny}); r.Code != Approved || r.Ledger != 8000 {
			t.Errorf("card to account: %+v", r)
		}
		if r := do(t, s, Request{Op: OpPayment, ID: txid("bill", 1), From: phone, To: biller, Amount: 4500, Currency: cny}); r.Code != Approved || r.Ledger != 500 {
			t.Errorf("bill payment: %+v", r)
		}
		if r := do(t, s, Request{Op: OpPayment, ID: txid("bill", 1), From: phone, To: biller, Amount: 4500, Currency: cny}); !r.Replayed {
			t.Errorf("retransmitted bill payment: %+v", r)
		}
		if r := do(t, s, Request{Op: OpPayment, ID: txid("bill", 1), From: phone, To: pan1, Amount: 4500, Currency: cny}); r.Code != DuplicateDifferent {
			t.Errorf("other payee under the TxID: %+v", r)
		}
		if r := do(t, s, Request{Op: OpPayment, ID: txid("bill", 2), From: phone, To: biller, Amount: 501, Currency: cny}); r.Code != InsufficientFunds {
			t.Errorf("payment beyond the balance: %+v", r)
		}
		if r := do(t, s, Request{Op: OpTransfer, ID: txid("tr", 2), From: phone, To: pan1, Amount: 500, Currency: cny}); r.Code != Approved || r.Ledger != 0 {
			t.Errorf("account to card (a card number in 103): %+v", r)
		}
		for name, tc := range map[string]struct {
			r    Request
			code Code
		}{
			"a bill to a card":               {Request{Op: OpPayment, PAN: pan1, To: phone}, NotPermitted},
			"to itself":                      {Request{Op: OpTransfer, PAN: pan1, To: pan1}, NotPermitted},
			"to nobody":                      {Request{Op: OpTransfer, PAN: pan1, To: "0000000"}, UnknownCard},
			"from the biller":                {Request{Op: OpTransfer, From: biller, To: phone}, NotPermitted},
			"from nobody":                    {Request{Op: OpTransfer, From: "0000000", To: phone}, UnknownCard},
			"a transfer without a payee":     {Request{Op: OpTransfer, PAN: pan1}, InvalidTransaction},
			"a purchase naming a payee":      {Request{Op: OpPurchase, PAN: pan1, To: phone}, InvalidTransaction},
			"a number longer than field 103": {Request{Op: OpTransfer, PAN: pan1, To: "12345678901234567890123456789"}, UnknownCard},
		} {
			r := tc.r
			r.ID, r.Amount, r.Currency = NewTxID([]byte(name)), 1, cny
			if got := do(t, s, r); got.Code != tc.code || got.Seq != 0 {
				t.Errorf("%s: %+v, want %s", name, got, tc.code)
			}
		}
		if a := account(t, s, water); a.CreditsPosted != 4500 {
			t.Errorf("biller: %+v", a)
		}
		if a := account(t, s, debit); a.Balance() != 0 {
			t.Errorf("debit account: %+v", a)
		}
		if rep := mustVerify(t, s); rep.Numbers != 2 {
			t.Errorf("report: %+v", rep)
		}
	})

	t.Run("blocked and closed accounts", func(t *testing.T) {
		s, debit, water, _ := accountsShard(t, newManualClock())
		if err := s.SetStatus(ctx, water, Blocked); err != nil {
			t.Fatal(err)
		}
		if r := do(t, s, Request{Op: OpPayment, ID: txid("bill", 1), PAN: pan1, To: biller, Amount: 1, Currency: cny}); r.Code != RestrictedCard {
			t.Errorf("bill to a blocked biller: %+v", r)
		}
		if err := s.SetStatus(ctx, debit, Closed); err != nil {
			t.Fatal(err)
		}
		if r := do(t, s, Request{Op: OpTransfer, ID: txid("tr", 1), PAN: pan1, To: phone, Amount: 1, Currency: cny}); r.Code != UnknownCard {
			t.Errorf("transfer to a closed account: %+v", r)
		}
		if r := do(t, s, Request{Op: OpBalance, From: phone}); r.Code != UnknownCard {
			t.Errorf("inquiry of a closed account: %+v", r)
		}
		if _, err := s.OpenAccount(ctx, AccountSpec{Type: Debit, Currency: cny, Number: phone}); !errors.Is(err, ErrNumberBound) {
			t.Errorf("a second account for the number: %v", err)
		}
		mustVerify(t, s)
	})

	t.Run("a credit line spends up to its limit", func(t *testing.T) {
		s, _, _, credit := accountsShard(t, newManualClock())
		if r := purchase(t, s, txid("p", 1), pan2, 3000); r.Code != Approved || r.Ledger != -3000 || r.Available != 2000 {
			t.Errorf("purchase on credit: %+v", r)
		}
		if r := preauth(t, s, txid("h", 1), pan2, 2001); r.Code != InsufficientFunds {
			t.Errorf("hold beyond the limit: %+v", r)
		}
		if r := preauth(t, s, txid("h", 2), pan2, 2000); r.Code != Approved || r.Available != 0 {
			t.Errorf("hold up to the limit: %+v", r)
		}
		if err := s.SetLimits(ctx, credit, Limits{CreditLimit: 4999}); err == nil {
			t.Error("a credit limit below what the line uses was accepted")
		}
		if err := s.SetLimits(ctx, credit, Limits{CreditLimit: 8000}); err != nil {
			t.Fatal(err)
		}
		if r := purchase(t, s, txid("p", 2), pan2, 3000); r.Code != Approved || r.Available != 0 {
			t.Errorf("purchase after raising the limit: %+v", r)
		}
		if err := s.SetLimits(ctx, 1000, Limits{CreditLimit: 1}); err == nil {
			t.Error("a credit limit on a card was accepted")
		}
		// Repaying (a top-up) brings the line back.
		deposit(t, s, txid("dep", 2), pan2, 6000)
		if a := account(t, s, credit); a.Balance() != 0 || a.Available() != 6000 {
			t.Errorf("credit line: %+v", a)
		}
		mustVerify(t, s)
	})

	t.Run("daily amount and count limits decline with 61 and 65 until the next day", func(t *testing.T) {
		clock := newManualClock()
		s, _, _, _ := accountsShard(t, clock)
		card, _ := s.AccountByPAN(pan1)
		if err := s.SetLimits(ctx, card.ID, Limits{DailyAmount: 1000, DailyCount: 3}); err != nil {
			t.Fatal(err)
		}
		purchase(t, s, txid("p", 1), pan1, 600)
		if r := purchase(t, s, txid("p", 2), pan1, 401); r.Code != ExceedsAmount {
			t.Errorf("beyond the day's amount: %+v", r)
		}
		preauth(t, s, txid("h", 1), pan1, 300)
		if r := do(t, s, Request{Op: OpTransfer, ID: txid("tr", 1), PAN: pan1, To: phone, Amount: 50, Currency: cny}); r.Code != Approved {
			t.Errorf("third spend: %+v", r)
		}
		if r := purchase(t, s, txid("p", 3), pan1, 1); r.Code != ExceedsCount {
			t.Errorf("fourth spend: %+v", r)
		}
		// Top-ups and refunds are not spending.
		deposit(t, s, txid("dep", 2), pan1, 1)
		if r := refund(t, s, txid("f", 1), txid("p", 1), pan1, 100); r.Code != Approved {
			t.Errorf("refund: %+v", r)
		}
		clock.advance(24 * time.Hour)
		if r := purchase(t, s, txid("p", 4), pan1, 1000); r.Code != Approved {
			t.Errorf("the next day: %+v", r)
		}
		if a, _ := s.AccountByPAN(pan1); a.DaySpent != 1000 || a.DayCount != 1 {
			t.Errorf("day's use: %+v", a)
		}
		mustVerify(t, s)
	})
}

func TestHostAccounts(t *testing.T) {
	for _, d := range []*codec.Dialect{codec.ISO87ASCII(), codec.ISO87Binary()} {
		t.Run(d.Name(), func(t *testing.T) {
			s, debit, water, _ := accountsShard(t, newManualClock())
			h := NewHost(s)
			msg := func(pcode, stan string, amount int64, fields map[int]string) *codec.Message {
				m := isoPurchase(t, d, pan1, stan, amount)
				m.SetString(3, pcode)
				for id, v := range fields {
					if v == "" {
						m.Del(id)
					} else if err := m.SetString(id, v); err != nil {
						t.Fatal(err)
					}
				}
				return m
			}
			// The hotline tops up the phone account by number (no field 2), then by card number.
			expect(t, exchange(t, h, msg("210000", "004001", 2000, map[int]string{2: "", 102: phone})), "0210", "00")
			expect(t, exchange(t, h, msg("210000", "004002", 500, nil)), "0210", "00")
			expect(t, exchange(t, h, msg("400000", "004003", 1000, map[int]string{103: phone})), "0210", "00")
			expect(t, exchange(t, h, msg("500000", "004004", 2500, map[int]string{2: "", 102: phone, 103: biller})), "0210", "00")
			expect(t, exchange(t, h, msg("500000", "004005", 1, map[int]string{103: phone})), "0210", "57")
			expect(t, exchange(t, h, msg("400000", "004006", 1, nil)), "0210", "30")
			expect(t, exchange(t, h, msg("000000", "004007", 1, map[int]string{2: "", 102: phone})), "0210", "30")
			resp := exchange(t, h, msg("310000", "004008", 0, map[int]string{2: "", 102: phone, 4: ""}))
			expect(t, resp, "0210", "00")
			if l := ledgerOf(t, resp); l != 500 {
				t.Errorf("phone account balance %d, want 500", l)
			}
			// A reversal of the transfer needs the money still on the phone account: 500 of 1000.
			transfer := msg("400000", "004003", 1000, map[int]string{103: phone})
			expect(t, exchange(t, h, isoReversal(t, transfer, "0420", nil)), "0430", "51")
			expect(t, exchange(t, h, isoReversal(t, transfer, "0400", map[int]string{95: replacement(600)})), "0410", "00")
			if a := account(t, s, debit); a.Balance() != 100 {
				t.Errorf("debit account: %+v", a)
			}
			// The top-up by number is reversed by number, from the account it credited.
			topup := msg("210000", "004001", 2000, map[int]string{2: "", 102: phone})
			expect(t, exchange(t, h, isoReversal(t, topup, "0420", map[int]string{95: replacement(1900)})), "0430", "00")
			if a := account(t, s, debit); a.Balance() != 0 {
				t.Errorf("debit account after the top-up's reversal: %+v", a)
			}
			if a := account(t, s, water); a.CreditsPosted != 2500 {
				t.Errorf("biller: %+v", a)
			}
			wantCard(t, s, pan1, 10000+500-1000+400, 10000+500-1000+400)
			mustVerify(t, s)
		})
	}
}

func TestEscrow(t *testing.T) {
	escrow := func(t *testing.T, s *Shard, id TxID, amount int64) Result {
		t.Helper()
		return do(t, s, Request{Op: OpPreAuth, ID: id, PAN: pan1, To: biller, Amount: amount, Currency: cny})
	}
	t.Run("release to the seller, partly; the rest goes back to the buyer", func(t *testing.T) {
		s, _, seller, _ := accountsShard(t, newManualClock())
		if r := escrow(t, s, txid("e", 1), 4000); r.Code != Approved || r.Available != 6000 {
			t.Fatalf("escrow: %+v", r)
		}
		if a := account(t, s, seller); a.CreditsPending != 4000 || a.CreditsPosted != 0 {
			t.Errorf("seller while in escrow: %+v", a)
		}
		if r := complete(t, s, txid("rel", 1), txid("e", 1), pan1, 3000); r.Code != Approved || r.Ledger != 7000 || r.Available != 7000 {
			t.Errorf("release: %+v", r)
		}
		if a := account(t, s, seller); a.CreditsPending != 0 || a.CreditsPosted != 3000 {
			t.Errorf("seller after the release: %+v", a)
		}
		if a := account(t, s, SettlementPayableID); a.CreditsPending != 0 || a.CreditsPosted != 0 {
			t.Errorf("settlement-payable: %+v", a)
		}
		// A release is final: neither reversed nor refunded.
		if r := reverse(t, s, txid("r", 1), txid("rel", 1), pan1, 3000, 0); r.Code != InvalidTransaction {
			t.Errorf("reversal of the release: %+v", r)
		}
		if r := refund(t, s, txid("f", 1), txid("rel", 1), pan1, 100); r.Code != InvalidTransaction {
			t.Errorf("refund of the release: %+v", r)
		}
		mustVerify(t, s)
	})
	t.Run("a refund to the buyer is the escrow's reversal; an expired escrow goes back too", func(t *testing.T) {
		clock := newManualClock()
		s, _, seller, _ := accountsShard(t, clock)
		escrow(t, s, txid("e", 1), 4000)
		escrow(t, s, txid("e", 2), 1000)
		if r := reverse(t, s, txid("r", 1), txid("e", 1), pan1, 4000, 0); r.Code != Approved || r.Available != 9000 {
			t.Errorf("refund to the buyer: %+v", r)
		}
		clock.advance(2 * time.Hour)
		do(t, s, Request{Op: OpBalance, PAN: pan1}) // a batch: the sweep runs first
		wantCard(t, s, pan1, 10000, 10000)
		if a := account(t, s, seller); a.CreditsPending != 0 || a.CreditsPosted != 0 {
			t.Errorf("seller: %+v", a)
		}
		if r := escrow(t, s, txid("e", 3), 1); r.Code != Approved {
			t.Errorf("escrow after the sweep: %+v", r)
		}
		if r := do(t, s, Request{Op: OpPreAuth, ID: txid("e", 4), PAN: pan1, To: phone, Amount: 1, Currency: cny}); r.Code != NotPermitted {
			t.Errorf("escrow to a non-merchant: %+v", r)
		}
		if rep := mustVerify(t, s); rep.Pending != 1 {
			t.Errorf("report: %+v", rep)
		}
	})
	t.Run("through the host: an 0100 naming the seller in 103", func(t *testing.T) {
		s, _, seller, _ := accountsShard(t, newManualClock())
		h := NewHost(s)
		m := isoPurchase(t, codec.ISO87ASCII(), pan1, "005001", 2500)
		m.SetMTI([4]byte{'0', '1', '0', '0'})
		m.SetString(103, biller)
		expect(t, exchange(t, h, m), "0110", "00")
		if a := account(t, s, seller); a.CreditsPending != 2500 {
			t.Errorf("seller: %+v", a)
		}
		mustVerify(t, s)
	})
}

func TestHostLimits(t *testing.T) {
	d := codec.ISO87ASCII()
	s, debit, _, _ := accountsShard(t, newManualClock())
	h := NewHost(s)
	card, _ := s.AccountByPAN(pan1)
	if err := s.SetLimits(context.Background(), card.ID, Limits{DailyAmount: 1000, DailyCount: 2}); err != nil {
		t.Fatal(err)
	}
	expect(t, exchange(t, h, isoPurchase(t, d, pan1, "006001", 1001)), "0210", "61")
	expect(t, exchange(t, h, isoPurchase(t, d, pan1, "006002", 100)), "0210", "00")
	expect(t, exchange(t, h, isoPurchase(t, d, pan1, "006003", 100)), "0210", "00")
	expect(t, exchange(t, h, isoPurchase(t, d, pan1, "006004", 100)), "0210", "65")
	if err := s.SetStatus(context.Background(), card.ID, Blocked); err != nil {
		t.Fatal(err)
	}
	expect(t, exchange(t, h, isoPurchase(t, d, pan1, "006005", 100)), "0210", "62")
	if err := s.SetLimits(context.Background(), debit, Limits{CreditLimit: 1}); err == nil {
		t.Error("a credit limit on a debit account was accepted")
	}
	if err := s.SetLimits(context.Background(), 999_999, Limits{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("limits of no account: %v", err)
	}
	mustVerify(t, s)
}
