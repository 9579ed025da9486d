package head_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
)

const cny = 156

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openHead opens a head in dir; the test closes it when it ends (a second Close is harmless).
func openHead(t testing.TB, dir string, reg prometheus.Registerer) *head.Head {
	t.Helper()
	h, err := head.Open(head.Options{Dir: dir, Logger: testLogger(t), Registerer: reg})
	if err != nil {
		t.Fatalf("head.Open: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func openShard(t testing.TB, region string) *ledger.Shard {
	t.Helper()
	base := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	var n int64
	s, err := ledger.Open(ledger.Options{
		Dir: t.TempDir(), Region: region, Logger: testLogger(t),
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

func txid(tag string, n int) ledger.TxID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return ledger.NewTxID([]byte(tag), b[:])
}

func do(t testing.TB, s *ledger.Shard, r ledger.Request) {
	t.Helper()
	res, err := s.Do(context.Background(), &r)
	if err != nil || res.Code != ledger.Approved {
		t.Fatalf("Do(%s %d): %+v, %v", r.Op, r.Amount, res, err)
	}
}

// book opens cards on the shard and books n rounds of deposits, purchases, reversals, holds and
// completions on them, so that the journal has every common kind, pending amounts included.
func book(t testing.TB, s *ledger.Shard, tag string, cards, rounds int) {
	t.Helper()
	ctx := context.Background()
	pans := make([]string, cards)
	for i := range pans {
		pans[i] = fmt.Sprintf("62%014d", len(tag)*1000+i)
		if _, err := s.OpenAccount(ctx, ledger.AccountSpec{Type: ledger.Card, Currency: cny, Name: "card", PAN: pans[i]}); err != nil {
			// The card may exist from an earlier call on the same shard.
			if !errors.Is(err, ledger.ErrPANBound) {
				t.Fatalf("OpenAccount: %v", err)
			}
		}
	}
	for r := range rounds {
		for i, pan := range pans {
			k := r*cards + i
			do(t, s, ledger.Request{Op: ledger.OpDeposit, ID: txid(tag+"dep", k), PAN: pan, Amount: 10_000, Currency: cny})
			buy := txid(tag+"buy", k)
			do(t, s, ledger.Request{Op: ledger.OpPurchase, ID: buy, PAN: pan, Amount: int64(100 + k), Currency: cny})
			if k%3 == 0 {
				do(t, s, ledger.Request{Op: ledger.OpReversal, ID: txid(tag+"rev", k), Original: buy, PAN: pan,
					Amount: int64(100 + k), Currency: cny})
			}
			hold := txid(tag+"hold", k)
			do(t, s, ledger.Request{Op: ledger.OpPreAuth, ID: hold, PAN: pan, Amount: 500, Currency: cny})
			if k%2 == 0 {
				do(t, s, ledger.Request{Op: ledger.OpCompletion, ID: txid(tag+"post", k), Original: hold, PAN: pan,
					Amount: 300, Currency: cny})
			}
		}
	}
}

func journal(t testing.TB, s *ledger.Shard) []ledger.Transfer {
	t.Helper()
	var all []ledger.Transfer
	for from := uint64(1); ; {
		page, err := s.Journal(from, 0)
		if err != nil {
			t.Fatalf("Journal(%d): %v", from, err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		from = page[len(page)-1].Seq + 1
	}
}

// checkMerged checks the head's totals for region against the shard: the region's against sums
// over the journal, and every account's against the shard's own account record, which the shard's
// state machine keeps and the head never sees.
func checkMerged(t testing.TB, h *head.Head, region string, s *ledger.Shard) {
	t.Helper()
	entries := journal(t, s)
	var want head.Total
	if len(entries) > 0 {
		want.Currency = cny
	}
	for _, e := range entries {
		want.Entries++
		switch e.Kind {
		case ledger.KindHold:
			want.DebitsPending += e.Amount
		case ledger.KindVoid, ledger.KindExpire:
			want.DebitsPending -= e.Released
		case ledger.KindPost:
			want.DebitsPending -= e.Released
			want.Debits += e.Amount
		default:
			want.Debits += e.Amount
		}
	}
	want.Credits, want.CreditsPending = want.Debits, want.DebitsPending
	var wantTotals []head.Total
	if want.Entries > 0 {
		wantTotals = []head.Total{want}
	}
	got, err := h.Totals(region)
	if err != nil {
		t.Fatalf("Totals(%s): %v", region, err)
	}
	if !reflect.DeepEqual(got, wantTotals) {
		t.Fatalf("Totals(%s) = %+v, want %+v", region, got, wantTotals)
	}
	if hw, last := h.HighWater(region), uint64(len(entries)); hw != last {
		t.Fatalf("HighWater(%s) = %d, want %d", region, hw, last)
	}

	accounts, err := s.Accounts()
	if err != nil {
		t.Fatalf("Accounts: %v", err)
	}
	for _, a := range accounts {
		got, err := h.AccountTotals(region, a.ID)
		if err != nil {
			t.Fatalf("AccountTotals(%s, %d): %v", region, a.ID, err)
		}
		if a.DebitsPosted == 0 && a.CreditsPosted == 0 && a.DebitsPending == 0 && a.CreditsPending == 0 {
			continue // possibly never touched by an entry
		}
		if len(got) != 1 {
			t.Fatalf("account %d: %d totals, want 1: %+v", a.ID, len(got), got)
		}
		g := got[0]
		if g.Currency != a.Currency || g.Debits != a.DebitsPosted || g.Credits != a.CreditsPosted ||
			g.DebitsPending != a.DebitsPending || g.CreditsPending != a.CreditsPending || g.Net() != a.Balance() {
			t.Fatalf("account %d: head %+v (net %d), shard %+v", a.ID, g, g.Net(), a)
		}
	}
}

func mustPull(t testing.TB, h *head.Head, region string, s *ledger.Shard, batch int) int {
	t.Helper()
	if s.Region() != region {
		t.Fatalf("mustPull(%s) of the shard of %s", region, s.Region())
	}
	n, err := h.Pull(context.Background(), head.Local(s), batch)
	if err != nil {
		t.Fatalf("Pull(%s): %v", region, err)
	}
	return n
}

func TestPullMergesTheWholeJournal(t *testing.T) {
	s := openShard(t, "beijing")
	book(t, s, "a", 4, 3)
	reg := prometheus.NewRegistry()
	h := openHead(t, t.TempDir(), reg)

	n := mustPull(t, h, "beijing", s, 7)
	if want := len(journal(t, s)); n != want {
		t.Fatalf("Pull applied %d, want %d", n, want)
	}
	checkMerged(t, h, "beijing", s)
	if got := metricValue(t, reg, "junction_head_entries_total", "beijing"); got != float64(n) {
		t.Errorf("entries_total = %v, want %d", got, n)
	}
	if got := metricValue(t, reg, "junction_head_high_water", "beijing"); got != float64(n) {
		t.Errorf("high_water = %v, want %d", got, n)
	}
	for _, name := range []string{"junction_head_lag_entries", "junction_head_lag_seconds"} {
		if got := metricValue(t, reg, name, "beijing"); got != 0 {
			t.Errorf("%s = %v after a full Pull, want 0", name, got)
		}
	}

	t.Run("a second Pull with nothing new applies nothing", func(t *testing.T) {
		if n := mustPull(t, h, "beijing", s, 7); n != 0 {
			t.Fatalf("Pull applied %d, want 0", n)
		}
		checkMerged(t, h, "beijing", s)
	})
	t.Run("a Pull after more bookings applies only them", func(t *testing.T) {
		before := len(journal(t, s))
		book(t, s, "b", 2, 1)
		if n, want := mustPull(t, h, "beijing", s, 0), len(journal(t, s))-before; n != want {
			t.Fatalf("Pull applied %d, want %d", n, want)
		}
		checkMerged(t, h, "beijing", s)
	})
}

// metricValue returns the value of the gauge or counter name for region in reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name, region string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "region" && l.GetValue() == region {
					if m.Gauge != nil {
						return m.Gauge.GetValue()
					}
					return m.Counter.GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{region=%q}", name, region)
	return 0
}

func TestApplyIsExactlyOnce(t *testing.T) {
	s := openShard(t, "beijing")
	book(t, s, "a", 3, 2)
	all := journal(t, s)
	if len(all) < 12 {
		t.Fatalf("journal has %d entries, want at least 12", len(all))
	}
	h := openHead(t, t.TempDir(), nil)
	apply := func(batch []ledger.Transfer) error { return h.Apply("beijing", batch) }
	snapshot := func() ([]head.Total, uint64) {
		got, err := h.Totals("beijing")
		if err != nil {
			t.Fatalf("Totals: %v", err)
		}
		return got, h.HighWater("beijing")
	}

	if err := apply(all[:5]); err != nil {
		t.Fatalf("Apply(1..5): %v", err)
	}

	t.Run("the same batch again changes nothing", func(t *testing.T) {
		tot, hw := snapshot()
		if err := apply(all[:5]); err != nil {
			t.Fatalf("Apply(1..5) again: %v", err)
		}
		if tot2, hw2 := snapshot(); !reflect.DeepEqual(tot, tot2) || hw != hw2 || hw != 5 {
			t.Fatalf("after the retry: %+v hw %d, before: %+v hw %d", tot2, hw2, tot, hw)
		}
	})
	t.Run("a batch whose merged part differs from what was merged is refused whole", func(t *testing.T) {
		tot, hw := snapshot()
		rewritten := append([]ledger.Transfer(nil), all[:7]...)
		rewritten[2].Amount++ // seq 3, merged above with its own amount
		if err := apply(rewritten); !errors.Is(err, head.ErrDiverged) {
			t.Fatalf("Apply of a rewritten history: %v, want ErrDiverged", err)
		}
		if tot2, hw2 := snapshot(); !reflect.DeepEqual(tot, tot2) || hw != hw2 {
			t.Fatalf("a refused batch changed the head: %+v hw %d, before: %+v hw %d", tot2, hw2, tot, hw)
		}
	})
	t.Run("a batch overlapping the high-water mark applies only its tail", func(t *testing.T) {
		if err := apply(all[2:9]); err != nil {
			t.Fatalf("Apply(3..9): %v", err)
		}
		if hw := h.HighWater("beijing"); hw != 9 {
			t.Fatalf("HighWater = %d, want 9", hw)
		}
	})
	t.Run("a batch with a gap is refused and writes nothing", func(t *testing.T) {
		tot, hw := snapshot()
		err := apply(all[10:12]) // 11..12 after 9
		if !errors.Is(err, head.ErrGap) {
			t.Fatalf("Apply(11..12) = %v, want ErrGap", err)
		}
		for _, want := range []string{"9", "11"} {
			if !containsWord(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		}
		if tot2, hw2 := snapshot(); !reflect.DeepEqual(tot, tot2) || hw != hw2 {
			t.Fatalf("after the refusal: %+v hw %d, before: %+v hw %d", tot2, hw2, tot, hw)
		}
	})
	t.Run("a malformed batch is refused whole", func(t *testing.T) {
		bad := func(mod func(b []ledger.Transfer)) []ledger.Transfer {
			b := append([]ledger.Transfer(nil), all[9:12]...) // 10..12: the first two are fine
			mod(b)
			return b
		}
		cases := map[string][]ledger.Transfer{
			"amount 0":        bad(func(b []ledger.Transfer) { b[2].Amount = 0 }),
			"negative amount": bad(func(b []ledger.Transfer) { b[2].Amount = -5 }),
			"no currency":     bad(func(b []ledger.Transfer) { b[2].Currency = 0 }),
			"seq out of order": bad(func(b []ledger.Transfer) {
				b[1], b[2] = b[2], b[1]
			}),
			"seq repeated":  bad(func(b []ledger.Transfer) { b[2].Seq = b[1].Seq }),
			"unknown kind":  bad(func(b []ledger.Transfer) { b[2].Kind = 200 }),
			"same accounts": bad(func(b []ledger.Transfer) { b[2].Credit = b[2].Debit }),
		}
		for name, batch := range cases {
			tot, hw := snapshot()
			if err := apply(batch); !errors.Is(err, head.ErrBadBatch) {
				t.Errorf("%s: Apply = %v, want ErrBadBatch", name, err)
			}
			if tot2, hw2 := snapshot(); !reflect.DeepEqual(tot, tot2) || hw != hw2 {
				t.Errorf("%s: after the refusal %+v hw %d, before %+v hw %d", name, tot2, hw2, tot, hw)
			}
		}
	})
	t.Run("an empty batch and a region name out of range", func(t *testing.T) {
		if err := apply(nil); err != nil {
			t.Errorf("Apply(nil) = %v", err)
		}
		if err := h.Apply("", all[:1]); err == nil {
			t.Error("Apply with an empty region succeeded")
		}
	})
	t.Run("the rest then applies and matches the shard", func(t *testing.T) {
		if err := apply(all[9:]); err != nil {
			t.Fatalf("Apply(10..): %v", err)
		}
		checkMerged(t, h, "beijing", s)
	})
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w && (i == 0 || s[i-1] < '0' || s[i-1] > '9') &&
			(i+len(w) == len(s) || s[i+len(w)] < '0' || s[i+len(w)] > '9') {
			return true
		}
	}
	return false
}

// stopAfter is a context that reports itself cancelled after its Err has been asked n times:
// Pull asks once before each page, so it stops Pull between batches, deterministically.
type stopAfter struct {
	context.Context
	n int
}

func (c *stopAfter) Err() error {
	if c.n <= 0 {
		return context.Canceled
	}
	c.n--
	return nil
}

func TestMergeSurvivesACloseBetweenBatches(t *testing.T) {
	s := openShard(t, "beijing")
	book(t, s, "a", 3, 3)
	total := len(journal(t, s))
	dir := t.TempDir()
	reg := prometheus.NewRegistry()

	h := openHead(t, dir, reg)
	n1, err := h.Pull(&stopAfter{Context: context.Background(), n: 2}, head.Local(s), 4)
	if !errors.Is(err, context.Canceled) || n1 != 8 {
		t.Fatalf("interrupted Pull = %d, %v; want 8, context.Canceled", n1, err)
	}
	if got := metricValue(t, reg, "junction_head_lag_entries", "beijing"); got != float64(total-8) {
		t.Errorf("lag_entries after the interrupted Pull = %v, want %d", got, total-8)
	}
	if got := metricValue(t, reg, "junction_head_lag_seconds", "beijing"); got <= 0 {
		t.Errorf("lag_seconds after the interrupted Pull = %v, want > 0", got)
	}
	page, err := s.Journal(h.HighWater("beijing")-3, 4) // the last page applied, to retry below
	if err != nil {
		t.Fatalf("Journal: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.Apply("beijing", page); !errors.Is(err, head.ErrClosed) {
		t.Fatalf("Apply after Close = %v, want ErrClosed", err)
	}

	h = openHead(t, dir, reg) // the same registry: Close unregistered the collectors
	if hw := h.HighWater("beijing"); hw != 8 {
		t.Fatalf("HighWater after reopening = %d, want 8", hw)
	}
	// The puller did not hear that its last page committed, and sends it again.
	if err := h.Apply("beijing", page); err != nil {
		t.Fatalf("retry of the last page: %v", err)
	}
	n2 := mustPull(t, h, "beijing", s, 4)
	if n1+n2 != total {
		t.Fatalf("applied %d + %d entries, want %d", n1, n2, total)
	}
	checkMerged(t, h, "beijing", s)

	// Once more, with new bookings, a close and a reopen.
	book(t, s, "b", 2, 2)
	h.Close()
	h = openHead(t, dir, reg)
	mustPull(t, h, "beijing", s, 5)
	checkMerged(t, h, "beijing", s)
}

func TestRegionsMergeIndependently(t *testing.T) {
	bj, sh := openShard(t, "beijing"), openShard(t, "shanghai")
	book(t, bj, "a", 3, 2)
	book(t, sh, "bb", 2, 4)
	h := openHead(t, t.TempDir(), prometheus.NewRegistry())

	mustPull(t, h, "beijing", bj, 3)
	checkMerged(t, h, "beijing", bj)
	if hw := h.HighWater("shanghai"); hw != 0 {
		t.Fatalf("HighWater(shanghai) = %d before its merge, want 0", hw)
	}
	if got, err := h.Totals("shanghai"); err != nil || len(got) != 0 {
		t.Fatalf("Totals(shanghai) before its merge = %+v, %v", got, err)
	}

	// Both shards number their journals from 1 and their accounts from 1000: the same seq and
	// account ids in two regions are different entries and accounts.
	mustPull(t, h, "shanghai", sh, 0)
	checkMerged(t, h, "shanghai", sh)
	checkMerged(t, h, "beijing", bj)

	book(t, bj, "c", 1, 1)
	mustPull(t, h, "beijing", bj, 0)
	checkMerged(t, h, "beijing", bj)
	checkMerged(t, h, "shanghai", sh)
}

func TestApplyTakesAFullBatchInOneTransaction(t *testing.T) {
	h := openHead(t, t.TempDir(), nil)
	// The worst case for the transaction's size: every entry touches two accounts of its own.
	batch := make([]ledger.Transfer, head.MaxBatch)
	for i := range batch {
		batch[i] = ledger.Transfer{Seq: uint64(i + 1), Kind: ledger.KindDeposit, Debit: uint64(2*i + 1),
			Credit: uint64(2*i + 2), Amount: 1, Currency: cny, Merchant: fmt.Sprintf("M%014d", i), Acquirer: "10010010010",
			RRN: fmt.Sprintf("%012d", i), STAN: "000001", Terminal: "T0000001"}
	}
	if err := h.Apply("beijing", batch); err != nil {
		t.Fatalf("Apply of %d entries: %v", len(batch), err)
	}
	got, err := h.Totals("beijing")
	if err != nil || len(got) != 1 || got[0].Debits != head.MaxBatch || got[0].Entries != head.MaxBatch {
		t.Fatalf("Totals = %+v, %v", got, err)
	}
	if err := h.Apply("beijing", append(batch, ledger.Transfer{})); !errors.Is(err, head.ErrBadBatch) {
		t.Fatalf("Apply of %d entries = %v, want ErrBadBatch", len(batch)+1, err)
	}
	over := ledger.Transfer{Seq: head.MaxBatch + 1, Kind: ledger.KindDeposit, Debit: 1, Credit: 2,
		Amount: math.MaxInt64, Currency: cny}
	if err := h.Apply("beijing", []ledger.Transfer{over}); !errors.Is(err, head.ErrBadBatch) {
		t.Fatalf("Apply of an overflowing entry = %v, want ErrBadBatch", err)
	}
	if hw := h.HighWater("beijing"); hw != head.MaxBatch {
		t.Fatalf("HighWater after the overflow = %d, want %d", hw, head.MaxBatch)
	}
}
