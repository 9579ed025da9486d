package head_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
)

// headClock is the head's clock in these tests: 2026-03-01 09:00 UTC, the shards' day.
func headClock() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) }

func openHeadWith(t testing.TB, dir string, regions ...string) *head.Head {
	t.Helper()
	h, err := head.Open(head.Options{Dir: dir, Logger: testLogger(t), Regions: regions, Clock: headClock})
	if err != nil {
		t.Fatalf("head.Open: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func openCard(t testing.TB, s *ledger.Shard, pan string) {
	t.Helper()
	if _, err := s.OpenAccount(context.Background(), ledger.AccountSpec{Type: ledger.Card, Currency: cny, Name: "card", PAN: pan}); err != nil {
		t.Fatalf("OpenAccount: %v", err)
	}
}

func window(t testing.TB, h *head.Head, n uint32) head.Window {
	t.Helper()
	w, err := h.Window(n)
	if err != nil {
		t.Fatalf("Window(%d): %v", n, err)
	}
	return w
}

// TestSettleAWindowWithKnownTotals clears a window whose every amount is known, with fees that
// round at half a fen, and checks every figure to the fen, the files byte for byte, the fee
// postings, and that settling again changes nothing and rewrites a lost file identically.
func TestSettleAWindowWithKnownTotals(t *testing.T) {
	ctx := context.Background()
	s := openShard(t, "beijing")
	h := openHeadWith(t, t.TempDir(), "beijing")
	const pan, pan2 = "6200000000000001", "6200000000000002"
	openCard(t, s, pan)
	openCard(t, s, pan2)
	req := func(op ledger.Op, id string, p string, amount int64, acq, merchant string) ledger.Request {
		return ledger.Request{Op: op, ID: txid(id, 0), PAN: p, Amount: amount, Currency: cny, Acquirer: acq,
			Merchant: merchant, RRN: "R" + id}
	}
	do(t, s, req(ledger.OpDeposit, "dep", pan, 100_00, "1001", ""))  // 1001 collects 100.00
	do(t, s, req(ledger.OpDeposit, "dep2", pan2, 50_00, "2002", "")) // 2002 collects 50.00
	do(t, s, req(ledger.OpPurchase, "p1", pan, 40_00, "1001", "M1"))
	do(t, s, req(ledger.OpPurchase, "p2", pan, 22_00, "1001", "M1"))
	do(t, s, req(ledger.OpPurchase, "p3", pan, 1_00, "1001", "M1"))
	rev := req(ledger.OpReversal, "r3", pan, 1_00, "1001", "M1")
	rev.Original = txid("p3", 0)
	do(t, s, rev)
	do(t, s, req(ledger.OpPreAuth, "h1", pan, 5_00, "1001", "M1"))
	post := req(ledger.OpCompletion, "c1", pan, 3_00, "1001", "M1")
	post.Original = txid("h1", 0)
	do(t, s, post)
	do(t, s, req(ledger.OpPurchase, "p4", pan, 20_00, "1001", "M2"))
	refund := req(ledger.OpRefund, "f4", pan, 10_00, "1001", "M2")
	refund.Original = txid("p4", 0)
	do(t, s, refund)
	do(t, s, req(ledger.OpPurchase, "p5", pan2, 2_50, "2002", "M3"))
	do(t, s, req(ledger.OpPurchase, "p6", pan2, 1_00, "2002", "M3"))

	if _, err := h.Pull(ctx, head.Local(s), 0); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if err := h.Apply("beijing", journal(t, s)); err != nil { // a retry of everything: no effect
		t.Fatalf("Apply again: %v", err)
	}
	if _, err := h.Settle(1, head.Clearing{Out: t.TempDir()}); !errors.Is(err, head.ErrWindow) {
		t.Fatalf("Settle of the open window = %v, want ErrWindow", err)
	}
	w, err := h.Cutover(ctx, 0, []head.Source{head.Local(s)})
	if err != nil {
		t.Fatalf("Cutover: %v", err)
	}
	if w.State != head.StateClosed || w.Date != 20260301 || len(w.Points) != 1 || w.Points[0].Last != s.Stats().LastSeq {
		t.Fatalf("window 1 after cutover: %+v", w)
	}
	if w2 := window(t, h, 2); w2.State != head.StateOpen || w2.Date != 20260301 {
		t.Fatalf("window 2: %+v", w2)
	}

	out := t.TempDir()
	c := head.Clearing{
		Institutions: []head.Institution{{ID: "1001", Name: "Bank A", Account: "6222000011112222"}},
		Fees: head.Fees{
			Default: head.Fee{Rate: decimal.RequireFromString("0.0038")},
			Merchants: map[string]head.Fee{"M1": {Rate: decimal.RequireFromString("0.005"),
				Fixed: map[ledger.Kind]decimal.Decimal{ledger.KindPurchase: decimal.RequireFromString("0.10")}}},
		},
		Out: out,
	}
	got, err := h.Settle(1, c)
	if err != nil {
		t.Fatalf("Settle: %v", err)
	}
	// By hand. M1 (rate 0.5 %, 0.10 per purchase): purchases 40.00 + 22.00 + 1.00 = 63.00 → 31.5
	// fen, half up 32, + 3 × 10 = 62; the reversal −1.00 → −0.5 fen, away from zero −1; the
	// completion 3.00 → 1.5 → 2. M2 (0.38 %): 20.00 → 7.6 → 8; refund −10.00 → −3.8 → −4.
	// M3 (0.38 %): 2.50 + 1.00 = 3.50 → 1.33 → 1. Top-ups: 1001 −100.00, 2002 −50.00.
	wantLines := []head.MerchantLine{
		{Merchant: "", Institution: "1001", Kind: "deposit", Currency: cny, Count: 1, Gross: -100_00, Net: -100_00},
		{Merchant: "M1", Institution: "1001", Kind: "purchase", Currency: cny, Count: 3, Gross: 63_00, Fee: 62, Net: 62_38},
		{Merchant: "M1", Institution: "1001", Kind: "reversal", Currency: cny, Count: 1, Gross: -1_00, Fee: -1, Net: -99},
		{Merchant: "M1", Institution: "1001", Kind: "post", Currency: cny, Count: 1, Gross: 3_00, Fee: 2, Net: 2_98},
		{Merchant: "M2", Institution: "1001", Kind: "purchase", Currency: cny, Count: 1, Gross: 20_00, Fee: 8, Net: 19_92},
		{Merchant: "M2", Institution: "1001", Kind: "refund", Currency: cny, Count: 1, Gross: -10_00, Fee: -4, Net: -9_96},
		{Merchant: "", Institution: "2002", Kind: "deposit", Currency: cny, Count: 1, Gross: -50_00, Net: -50_00},
		{Merchant: "M3", Institution: "2002", Kind: "purchase", Currency: cny, Count: 2, Gross: 3_50, Fee: 1, Net: 3_49},
	}
	if !reflect.DeepEqual(got.Merchants, wantLines) {
		t.Fatalf("merchant lines:\n got %+v\nwant %+v", got.Merchants, wantLines)
	}
	// 1001: −100.00 + 62.38 − 0.99 + 2.98 + 19.92 − 9.96 = −25.67; fees 62 − 1 + 2 + 8 − 4 = 67.
	// 2002: −50.00 + 3.49 = −46.51; fee 1.
	wantPos := []head.Position{
		{ID: "1001", Name: "Bank A", Account: "6222000011112222", Currency: cny, Fees: 67, Net: -25_67},
		{ID: "2002", Currency: cny, Fees: 1, Net: -46_51},
	}
	if !reflect.DeepEqual(got.Institutions, wantPos) {
		t.Fatalf("positions:\n got %+v\nwant %+v", got.Institutions, wantPos)
	}
	if got.Institutions[0].Direction() != "RECEIVE" {
		t.Errorf("direction of 1001 = %s", got.Institutions[0].Direction())
	}
	wantFiles := map[string]string{
		"SETTLE_20260301_W000001_CNY.txt": "H|1|20260301|CNY\n" +
			"D|1001|Bank A|6222000011112222|RECEIVE|25.67|CNY\n" +
			"D|2002|||RECEIVE|46.51|CNY\n" +
			"T|2|72.18\n",
		"MERCHANTS_20260301_W000001.csv": "merchant,institution,kind,count,gross,fee,net,currency\n" +
			",1001,deposit,1,-100.00,0.00,-100.00,CNY\n" +
			"M1,1001,purchase,3,63.00,0.62,62.38,CNY\n" +
			"M1,1001,reversal,1,-1.00,-0.01,-0.99,CNY\n" +
			"M1,1001,post,1,3.00,0.02,2.98,CNY\n" +
			"M2,1001,purchase,1,20.00,0.08,19.92,CNY\n" +
			"M2,1001,refund,1,-10.00,-0.04,-9.96,CNY\n" +
			",2002,deposit,1,-50.00,0.00,-50.00,CNY\n" +
			"M3,2002,purchase,2,3.50,0.01,3.49,CNY\n",
	}
	checkFiles := func() {
		t.Helper()
		ents, err := os.ReadDir(out)
		if err != nil || len(ents) != len(wantFiles) {
			t.Fatalf("files in %s: %v, %v", out, ents, err)
		}
		for name, want := range wantFiles {
			b, err := os.ReadFile(filepath.Join(out, name))
			if err != nil || string(b) != want {
				t.Fatalf("%s: %v\n got %q\nwant %q", name, err, b, want)
			}
		}
	}
	checkFiles()
	fees, err := h.HeadAccount(head.FeeIncome)
	if err != nil || len(fees) != 1 || fees[0].Credits != 68 || fees[0].Debits != 0 {
		t.Fatalf("fee income: %+v, %v", fees, err)
	}
	if inst, err := h.HeadAccount(head.InstitutionAccount("1001")); err != nil || len(inst) != 1 || inst[0].Debits != 67 {
		t.Fatalf("institution 1001: %+v, %v", inst, err)
	}
	if w := window(t, h, 1); w.State != head.StateSettled {
		t.Fatalf("window 1 is %s after Settle", w.State)
	}

	t.Run("settling again returns the stored settlement and rewrites a lost file identically", func(t *testing.T) {
		os.Remove(filepath.Join(out, "MERCHANTS_20260301_W000001.csv"))
		c.Fees.Default.Rate = decimal.RequireFromString("0.5") // ignored: the window is settled
		again, err := h.Settle(1, c)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("second Settle: %+v, %v", again, err)
		}
		checkFiles()
		if fees2, _ := h.HeadAccount(head.FeeIncome); !reflect.DeepEqual(fees2, fees) {
			t.Fatalf("fee income after the second Settle: %+v, before %+v", fees2, fees)
		}
	})
	t.Run("a bad clearing is refused with every reason", func(t *testing.T) {
		bad := head.Clearing{Institutions: []head.Institution{{ID: "1"}, {ID: "1", Name: "a|b"}},
			Fees: head.Fees{Default: head.Fee{Rate: decimal.RequireFromString("1.5")}}}
		_, err := h.Settle(2, bad)
		if !errors.Is(err, head.ErrClearing) {
			t.Fatalf("Settle = %v, want ErrClearing", err)
		}
		for _, want := range []string{"Out", "twice", "rate 1.5", "line break"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}

// flaky is a real shard whose cutover can be made to fail, as an unreachable remote shard does.
type flaky struct {
	head.Source
	fail atomic.Bool
}

func (f *flaky) Cutover(ctx context.Context, window, date uint32) (ledger.CutoverPoint, error) {
	if f.fail.Load() {
		return ledger.CutoverPoint{}, errors.New("unreachable")
	}
	return f.Source.Cutover(ctx, window, date)
}

func TestAWindowClosesOnlyWhenEveryRegionDelivered(t *testing.T) {
	ctx := context.Background()
	a, b := openShard(t, "a"), openShard(t, "b")
	book(t, a, "x", 2, 2)
	book(t, b, "yy", 2, 1)
	dir := t.TempDir()
	h := openHeadWith(t, dir, "a", "b")
	fb := &flaky{Source: head.Local(b)}
	fb.fail.Store(true)
	if _, err := h.Pull(ctx, head.Local(b), 0); err != nil {
		t.Fatal(err)
	}
	// a lags: the head has none of its entries when the cutover comes; b is unreachable.
	w, err := h.Cutover(ctx, 0, []head.Source{head.Local(a), fb})
	if err != nil {
		t.Fatalf("Cutover: %v", err)
	}
	if w.State != head.StateClosing || !w.Points[0].Reported || w.Points[1].Reported {
		t.Fatalf("window 1: %+v, want closing with a reported and b pending", w)
	}
	// New bookings land in window 2 on a; merging them (and a's window 1) does not close 1.
	book(t, a, "z", 1, 1)
	if _, err := h.Pull(ctx, head.Local(a), 3); err != nil {
		t.Fatal(err)
	}
	if w := window(t, h, 1); w.State != head.StateClosing {
		t.Fatalf("window 1 is %s while b's point is pending", w.State)
	}
	if err := h.Resume(ctx, []head.Source{head.Local(a), fb}); err == nil {
		t.Fatal("Resume with b still unreachable returned nil")
	}
	if w := window(t, h, 1); w.State != head.StateClosing {
		t.Fatalf("window 1 is %s after a failed resume", w.State)
	}
	fb.fail.Store(false)
	if err := h.Resume(ctx, []head.Source{head.Local(a), fb}); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	w = window(t, h, 1)
	if w.State != head.StateClosed || w.Points[1].Last != b.Stats().LastSeq {
		t.Fatalf("window 1 after resume: %+v", w)
	}
	if err := h.Resume(ctx, []head.Source{fb}); err != nil {
		t.Fatalf("Resume with nothing pending: %v", err)
	}

	t.Run("a lagging region keeps the window closing until its merge reaches the point", func(t *testing.T) {
		book(t, b, "w", 1, 1) // window 2 on b, not yet merged
		w, err := h.Cutover(ctx, 0, []head.Source{head.Local(a), fb})
		if err != nil || w.Number != 2 || w.State != head.StateClosing {
			t.Fatalf("Cutover: %+v, %v", w, err)
		}
		page, err := b.Journal(h.HighWater("b")+1, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Apply("b", page); err != nil {
			t.Fatal(err)
		}
		if w := window(t, h, 2); w.State != head.StateClosing {
			t.Fatalf("window 2 is %s with b merged to %d of %d", w.State, h.HighWater("b"), b.Stats().LastSeq)
		}
		if _, err := h.Pull(ctx, head.Local(b), 0); err != nil {
			t.Fatal(err)
		}
		if w := window(t, h, 2); w.State != head.StateClosed {
			t.Fatalf("window 2 is %s after b's merge", w.State)
		}
	})
	t.Run("entries of a closed window or beyond the open one are refused", func(t *testing.T) {
		for _, n := range []uint32{1, 2, 4} {
			e := ledger.Transfer{Seq: 1, Kind: ledger.KindDeposit, Debit: 2, Credit: 1000, Amount: 1, Currency: cny, Window: n}
			if err := h.Apply("c", []ledger.Transfer{e}); !errors.Is(err, head.ErrBadBatch) {
				t.Errorf("entry of window %d: %v, want ErrBadBatch", n, err)
			}
		}
		if hw := h.HighWater("c"); hw != 0 {
			t.Fatalf("HighWater(c) = %d", hw)
		}
	})
	t.Run("a date before the window's is refused, and windows survive a reopen", func(t *testing.T) {
		for _, d := range []uint32{20260228, 20260230, 2026031} {
			if _, err := h.Cutover(ctx, d, nil); !errors.Is(err, head.ErrWindow) {
				t.Fatalf("Cutover to date %d: %v, want ErrWindow", d, err)
			}
		}
		if w := window(t, h, 3); w.State != head.StateOpen {
			t.Fatalf("window 3 after refused cutovers: %+v", w)
		}
		before, err := h.Windows()
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
		h2 := openHeadWith(t, dir, "a", "b")
		if after, err := h2.Windows(); err != nil || !reflect.DeepEqual(after, before) || len(after) != 3 {
			t.Fatalf("windows after reopening: %+v, %v; before %+v", after, err, before)
		}
	})
}

// TestCutoverUnderLoad books on two shards from several goroutines while a puller merges them
// and three cutovers run; then every window's GL equals the sum of the journal entries carrying it.
func TestCutoverUnderLoad(t *testing.T) {
	ctx := context.Background()
	regions := []string{"east", "west"}
	shards := []*ledger.Shard{openShard(t, "east"), openShard(t, "west")}
	srcs := []head.Source{head.Local(shards[0]), head.Local(shards[1])}
	h := openHeadWith(t, t.TempDir(), regions...)
	const cards, per = 4, 60
	for _, s := range shards {
		for c := range cards {
			pan := "62" + string(rune('0'+c)) + "0000000000001"
			openCard(t, s, pan)
			do(t, s, ledger.Request{Op: ledger.OpDeposit, ID: txid(s.Region()+"dep", c), PAN: pan, Amount: 1_000_000,
				Currency: cny, Acquirer: "1001"})
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for si, s := range shards {
		for c := range cards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pan := "62" + string(rune('0'+c)) + "0000000000001"
				for i := range per {
					r := ledger.Request{Op: ledger.OpPurchase, ID: txid(s.Region()+"buy", c*1000+i), PAN: pan,
						Amount: int64(100 + i), Currency: cny, Acquirer: []string{"1001", "2002"}[(si+i)%2],
						Merchant: "M" + string(rune('0'+c))}
					if res, err := s.Do(ctx, &r); err != nil || res.Code != ledger.Approved {
						t.Errorf("Do: %+v, %v", res, err)
						return
					}
				}
			}()
		}
	}
	pulled := make(chan struct{})
	go func() {
		defer close(pulled)
		for !stop.Load() {
			for _, src := range srcs {
				if _, err := h.Pull(ctx, src, 50); err != nil {
					t.Errorf("Pull: %v", err)
					return
				}
			}
			h.Resume(ctx, srcs)
		}
	}()
	for range 3 {
		time.Sleep(20 * time.Millisecond) // spread the cutovers over the load; correctness does not depend on it
		if _, err := h.Cutover(ctx, 0, srcs); err != nil {
			t.Fatalf("Cutover: %v", err)
		}
	}
	wg.Wait()
	stop.Store(true)
	<-pulled
	for _, src := range srcs {
		if _, err := h.Pull(ctx, src, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Resume(ctx, srcs); err != nil {
		t.Fatal(err)
	}
	want := make(map[uint32]int64)
	entries := make(map[uint32]uint64)
	for _, s := range shards {
		for _, e := range journal(t, s) {
			w := max(e.Window, 1)
			if e.Kind != ledger.KindHold && e.Kind != ledger.KindVoid && e.Kind != ledger.KindExpire {
				want[w] += e.Amount
			}
			entries[w]++
		}
	}
	ws, err := h.Windows()
	if err != nil || len(ws) != 4 || ws[3].State != head.StateOpen {
		t.Fatalf("windows: %+v, %v", ws, err)
	}
	for _, w := range ws[:3] {
		if w.State != head.StateClosed {
			t.Fatalf("window %d is %s after every shard was merged", w.Number, w.State)
		}
	}
	if entries[2] == 0 && entries[3] == 0 {
		t.Fatalf("every entry landed in window 1 (%v): the cutovers missed the load", entries)
	}
	var n uint64
	for _, w := range ws {
		lines, err := h.GL(w.Number, head.LevelInstitution)
		if err != nil {
			t.Fatal(err)
		}
		var debits, credits int64
		var count uint64
		for _, l := range lines {
			debits += l.Debits
			credits += l.Credits
			count += l.Entries
		}
		if debits != want[w.Number] || credits != want[w.Number] || count != 2*entries[w.Number] {
			t.Errorf("window %d: GL debits %d credits %d leaf entries %d; journals %d and %d entries",
				w.Number, debits, credits, count, want[w.Number], entries[w.Number])
		}
		got, err := h.Entries(head.Query{Window: w.Number})
		if err != nil || uint64(len(got)) != entries[w.Number] {
			t.Errorf("window %d: %d entries, %v; journals %d", w.Number, len(got), err, entries[w.Number])
		}
		n += entries[w.Number]
	}
	if n != shards[0].Stats().LastSeq+shards[1].Stats().LastSeq {
		t.Fatalf("entries over the windows %d, journals %d", n, shards[0].Stats().LastSeq+shards[1].Stats().LastSeq)
	}
}
