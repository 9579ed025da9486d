package head_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
)

const jpy = 392 // no minor unit: amounts are whole yen

// openShardIn opens a shard of region that books currency, with openShard's clock.
func openShardIn(t testing.TB, region string, currency uint16) *ledger.Shard {
	t.Helper()
	base := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	var n int64
	s, err := ledger.Open(ledger.Options{
		Dir: t.TempDir(), Region: region, Logger: testLogger(t), Currency: currency,
		Clock: func() time.Time { n++; return base.Add(time.Duration(n) * time.Second) },
	})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("shard Close: %v", err)
		}
	})
	return s
}

// dirFiles returns the names of the files in dir.
func dirFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir(%s): %v", dir, err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestSettleAWindowInTwoCurrencies clears one window booked in CNY (beijing, 2 decimals) and JPY
// (tokyo, no decimals) by two institutions, with one rate whose rounding lands on half a minor
// unit in each currency, and checks every figure to the minor unit per currency, one settlement
// file per currency with the currency's decimals, the fee postings per currency, and that
// settling again changes nothing and rewrites a lost file identically.
func TestSettleAWindowInTwoCurrencies(t *testing.T) {
	ctx := context.Background()
	bj, tk := openShardIn(t, "beijing", cny), openShardIn(t, "tokyo", jpy)
	h := openHeadWith(t, t.TempDir(), "beijing", "tokyo")
	const panA, panB, panC = "6200000000000001", "6200000000000002", "6200000000000003"
	for _, c := range []struct {
		s        *ledger.Shard
		pan      string
		currency uint16
	}{{bj, panA, cny}, {bj, panB, cny}, {tk, panC, jpy}} {
		if _, err := c.s.OpenAccount(ctx, ledger.AccountSpec{Type: ledger.Card, Currency: c.currency, Name: "card", PAN: c.pan}); err != nil {
			t.Fatalf("OpenAccount: %v", err)
		}
	}
	req := func(op ledger.Op, id, pan string, amount int64, currency uint16, acq, merchant string) ledger.Request {
		return ledger.Request{Op: op, ID: txid(id, 0), PAN: pan, Amount: amount, Currency: currency, Acquirer: acq,
			Merchant: merchant, RRN: "R" + id}
	}
	refundOf := func(orig, id, pan string, amount int64, currency uint16, acq, merchant string) ledger.Request {
		r := req(ledger.OpRefund, id, pan, amount, currency, acq, merchant)
		r.Original = txid(orig, 0)
		return r
	}
	// Beijing, CNY in fen.
	do(t, bj, req(ledger.OpDeposit, "bd1", panA, 500_00, cny, "1001", ""))
	do(t, bj, req(ledger.OpDeposit, "bd2", panB, 100_00, cny, "1001", ""))
	do(t, bj, req(ledger.OpPurchase, "bp1", panA, 40_00, cny, "1001", "M1"))
	do(t, bj, req(ledger.OpPurchase, "bp2", panA, 21_00, cny, "1001", "M1"))
	do(t, bj, refundOf("bp1", "bf1", panA, 1_00, cny, "1001", "M1"))
	do(t, bj, req(ledger.OpPurchase, "bp3", panB, 25_00, cny, "2002", "M4"))
	// Tokyo, JPY in yen.
	do(t, tk, req(ledger.OpDeposit, "td1", panC, 50_000, jpy, "2002", ""))
	do(t, tk, req(ledger.OpPurchase, "tp1", panC, 1_500, jpy, "1001", "M1"))
	do(t, tk, req(ledger.OpPurchase, "tp2", panC, 1_000, jpy, "1001", "M1"))
	do(t, tk, refundOf("tp1", "tf1", panC, 100, jpy, "1001", "M1"))
	do(t, tk, req(ledger.OpPurchase, "tp3", panC, 2_500, jpy, "2002", "M3"))
	do(t, tk, req(ledger.OpPurchase, "tp4", panC, 25, jpy, "2002", "M4"))

	srcs := []head.Source{head.Local(bj), head.Local(tk)}
	for _, src := range srcs {
		if _, err := h.Pull(ctx, src, 0); err != nil {
			t.Fatalf("Pull %s: %v", src.Region(), err)
		}
	}
	if w, err := h.Cutover(ctx, 0, srcs); err != nil || w.State != head.StateClosed {
		t.Fatalf("Cutover: %+v, %v", w, err)
	}

	out := t.TempDir()
	c := head.Clearing{
		Institutions: []head.Institution{
			{ID: "1001", Name: "Bank A", Account: "6222000011112222"},
			{ID: "2002", Name: "Bank B", Account: "6222000033334444"},
		},
		Fees: head.Fees{
			Default: head.Fee{Rate: decimal.RequireFromString("0.0038")},
			Merchants: map[string]head.Fee{"M1": {Rate: decimal.RequireFromString("0.005"),
				Fixed: map[ledger.Kind]decimal.Decimal{ledger.KindPurchase: decimal.RequireFromString("0.10")}}},
		},
		Out: out,
	}

	t.Run("a fixed fee finer than a yen is refused and settles nothing", func(t *testing.T) {
		// 0.10 is ten fen but a tenth of a yen: the window holds M1 purchases in JPY.
		_, err := h.Settle(1, c)
		if !errors.Is(err, head.ErrClearing) || !strings.Contains(err.Error(), "JPY") {
			t.Fatalf("Settle = %v, want ErrClearing naming JPY", err)
		}
		if w := window(t, h, 1); w.State != head.StateClosed {
			t.Fatalf("window 1 is %s after a refused Settle", w.State)
		}
		if names := dirFiles(t, out); len(names) != 0 {
			t.Fatalf("files after a refused Settle: %v", names)
		}
		if fees, err := h.HeadAccount(head.FeeIncome); err != nil || len(fees) != 0 {
			t.Fatalf("fee income after a refused Settle: %+v, %v", fees, err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	c.Fees.Merchants["M1"] = head.Fee{Rate: decimal.RequireFromString("0.005"),
		Fixed: map[ledger.Kind]decimal.Decimal{ledger.KindPurchase: decimal.RequireFromString("1")}} // 1.00 CNY, 1 JPY
	got, err := h.Settle(1, c)
	if err != nil {
		t.Fatalf("Settle: %v", err)
	}
	// By hand, CNY (fen). M1 (0.5 %, 1.00 per purchase): 40.00 + 21.00 = 61.00 → 30.5 fen, half
	// up 31, + 2 × 100 = 231; the refund −1.00 → −0.5 fen, away from zero −1. M4 (0.38 %): 25.00
	// → 9.5 fen → 10. Top-ups collected by 1001: −600.00.
	// JPY (yen). M1: 1500 + 1000 = 2500 → 12.5 yen → 13, + 2 × 1 = 15; the refund −100 → −0.5 →
	// −1. M3 (0.38 %): 2500 → 9.5 → 10. M4 (0.38 %): 25 → 0.095 → 0, where 25.00 CNY gave 0.10.
	// Top-up collected by 2002: −50000.
	wantLines := []head.MerchantLine{
		{Merchant: "", Institution: "1001", Kind: "deposit", Currency: cny, Count: 2, Gross: -600_00, Net: -600_00},
		{Merchant: "M1", Institution: "1001", Kind: "purchase", Currency: cny, Count: 2, Gross: 61_00, Fee: 2_31, Net: 58_69},
		{Merchant: "M1", Institution: "1001", Kind: "refund", Currency: cny, Count: 1, Gross: -1_00, Fee: -1, Net: -99},
		{Merchant: "M4", Institution: "2002", Kind: "purchase", Currency: cny, Count: 1, Gross: 25_00, Fee: 10, Net: 24_90},
		{Merchant: "M1", Institution: "1001", Kind: "purchase", Currency: jpy, Count: 2, Gross: 2_500, Fee: 15, Net: 2_485},
		{Merchant: "M1", Institution: "1001", Kind: "refund", Currency: jpy, Count: 1, Gross: -100, Fee: -1, Net: -99},
		{Merchant: "", Institution: "2002", Kind: "deposit", Currency: jpy, Count: 1, Gross: -50_000, Net: -50_000},
		{Merchant: "M3", Institution: "2002", Kind: "purchase", Currency: jpy, Count: 1, Gross: 2_500, Fee: 10, Net: 2_490},
		{Merchant: "M4", Institution: "2002", Kind: "purchase", Currency: jpy, Count: 1, Gross: 25, Fee: 0, Net: 25},
	}
	if !reflect.DeepEqual(got.Merchants, wantLines) {
		t.Fatalf("merchant lines:\n got %+v\nwant %+v", got.Merchants, wantLines)
	}
	// CNY: 1001 −600.00 + 58.69 − 0.99 = −542.30, fees 2.31 − 0.01 = 2.30; 2002 +24.90, fees 0.10.
	// JPY: 1001 2485 − 99 = +2386, fees 15 − 1 = 14; 2002 −50000 + 2490 + 25 = −47485, fees 10.
	wantPos := []head.Position{
		{ID: "1001", Name: "Bank A", Account: "6222000011112222", Currency: cny, Fees: 2_30, Net: -542_30},
		{ID: "2002", Name: "Bank B", Account: "6222000033334444", Currency: cny, Fees: 10, Net: 24_90},
		{ID: "1001", Name: "Bank A", Account: "6222000011112222", Currency: jpy, Fees: 14, Net: 2_386},
		{ID: "2002", Name: "Bank B", Account: "6222000033334444", Currency: jpy, Fees: 10, Net: -47_485},
	}
	if !reflect.DeepEqual(got.Institutions, wantPos) {
		t.Fatalf("positions:\n got %+v\nwant %+v", got.Institutions, wantPos)
	}
	for i, want := range []string{"RECEIVE", "PAY", "PAY", "RECEIVE"} {
		if d := got.Institutions[i].Direction(); d != want {
			t.Errorf("direction of %s in %d = %s, want %s", got.Institutions[i].ID, got.Institutions[i].Currency, d, want)
		}
	}
	wantFiles := map[string]string{
		"SETTLE_20260301_W000001_CNY.txt": "H|1|20260301|CNY\n" +
			"D|1001|Bank A|6222000011112222|RECEIVE|542.30|CNY\n" +
			"D|2002|Bank B|6222000033334444|PAY|24.90|CNY\n" +
			"T|2|567.20\n",
		"SETTLE_20260301_W000001_JPY.txt": "H|1|20260301|JPY\n" +
			"D|1001|Bank A|6222000011112222|PAY|2386|JPY\n" +
			"D|2002|Bank B|6222000033334444|RECEIVE|47485|JPY\n" +
			"T|2|49871\n",
		"MERCHANTS_20260301_W000001.csv": "merchant,institution,kind,count,gross,fee,net,currency\n" +
			",1001,deposit,2,-600.00,0.00,-600.00,CNY\n" +
			"M1,1001,purchase,2,61.00,2.31,58.69,CNY\n" +
			"M1,1001,refund,1,-1.00,-0.01,-0.99,CNY\n" +
			"M4,2002,purchase,1,25.00,0.10,24.90,CNY\n" +
			"M1,1001,purchase,2,2500,15,2485,JPY\n" +
			"M1,1001,refund,1,-100,-1,-99,JPY\n" +
			",2002,deposit,1,-50000,0,-50000,JPY\n" +
			"M3,2002,purchase,1,2500,10,2490,JPY\n" +
			"M4,2002,purchase,1,25,0,25,JPY\n",
	}
	wantNames := []string{"SETTLE_20260301_W000001_CNY.txt", "SETTLE_20260301_W000001_JPY.txt", "MERCHANTS_20260301_W000001.csv"}
	if !reflect.DeepEqual(got.Files, wantNames) {
		t.Fatalf("Files = %v, want %v", got.Files, wantNames)
	}
	checkFiles := func() {
		t.Helper()
		if names := dirFiles(t, out); len(names) != len(wantFiles) {
			t.Fatalf("files in %s: %v", out, names)
		}
		for name, want := range wantFiles {
			b, err := os.ReadFile(filepath.Join(out, name))
			if err != nil || string(b) != want {
				t.Fatalf("%s: %v\n got %q\nwant %q", name, err, b, want)
			}
		}
	}
	checkFiles()

	// Fee postings, per currency: debit each institution by its fees, credit fee income.
	wantGL := map[string][]head.Total{
		head.FeeIncome:                  {{Currency: cny, Credits: 2_40, Entries: 2}, {Currency: jpy, Credits: 24, Entries: 2}},
		head.InstitutionAccount("1001"): {{Currency: cny, Debits: 2_30, Entries: 1}, {Currency: jpy, Debits: 14, Entries: 1}},
		head.InstitutionAccount("2002"): {{Currency: cny, Debits: 10, Entries: 1}, {Currency: jpy, Debits: 10, Entries: 1}},
	}
	checkGL := func() {
		t.Helper()
		for account, want := range wantGL {
			if got, err := h.HeadAccount(account); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("HeadAccount(%s) = %+v, %v; want %+v", account, got, err, want)
			}
		}
	}
	checkGL()
	if w := window(t, h, 1); w.State != head.StateSettled {
		t.Fatalf("window 1 is %s after Settle", w.State)
	}

	t.Run("settling again returns the stored settlement and rewrites a lost file identically", func(t *testing.T) {
		for _, name := range []string{"SETTLE_20260301_W000001_JPY.txt", "SETTLE_20260301_W000001_CNY.txt"} {
			if err := os.Remove(filepath.Join(out, name)); err != nil {
				t.Fatal(err)
			}
			c.Fees.Default.Rate = decimal.RequireFromString("0.5") // ignored: the window is settled
			again, err := h.Settle(1, c)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("Settle after %s was lost: %+v, %v", name, again, err)
			}
			checkFiles()
			checkGL()
		}
	})
}

// TestSettleRefusesACurrencyWithoutAKnownMinorUnit: a window with entries in a currency
// ledger.CurrencyByCode does not know (414, KWD, three decimals) cannot be cleared, since its
// fees cannot be rounded nor its amounts written; Settle refuses the whole window, writes
// nothing and books nothing, and the window stays closed.
func TestSettleRefusesACurrencyWithoutAKnownMinorUnit(t *testing.T) {
	const kwd = 414
	if _, ok := ledger.CurrencyByCode(kwd); ok {
		t.Skip("ledger.CurrencyByCode knows 414 now: pick another currency")
	}
	h := openHeadWith(t, t.TempDir()) // no regions to wait for: the cutover closes the window at once
	entries := synthetic(1, 4, 1)
	entries[1].Currency, entries[3].Currency = kwd, kwd
	if err := h.Apply("beijing", entries); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if w, err := h.Cutover(context.Background(), 0, nil); err != nil || w.State != head.StateClosed {
		t.Fatalf("Cutover: %+v, %v", w, err)
	}
	out := t.TempDir()
	c := head.Clearing{Fees: head.Fees{Default: head.Fee{Rate: decimal.RequireFromString("0.0038")}}, Out: out}
	for range 2 { // a refusal leaves nothing behind that a retry would trip over
		s, err := h.Settle(1, c)
		if !errors.Is(err, head.ErrClearing) || !strings.Contains(err.Error(), "414") {
			t.Fatalf("Settle = %v, want ErrClearing naming 414", err)
		}
		if !reflect.DeepEqual(s, head.Settlement{}) {
			t.Errorf("Settle returned %+v with its error", s)
		}
		if names := dirFiles(t, out); len(names) != 0 {
			t.Fatalf("files after a refused Settle: %v", names)
		}
		if w := window(t, h, 1); w.State != head.StateClosed || w.Settled != 0 {
			t.Fatalf("window 1 after a refused Settle: %+v", w)
		}
		if fees, err := h.HeadAccount(head.FeeIncome); err != nil || len(fees) != 0 {
			t.Fatalf("fee income after a refused Settle: %+v, %v", fees, err)
		}
	}
}
