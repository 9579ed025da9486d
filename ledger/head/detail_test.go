package head_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
)

// synthetic returns entries seq from..to of a purchase stream: acquirers 1001 and 2002 in turn,
// merchants M0..M2, RRNs that name the seq, one entry a minute from 2026-03-01 23:58 UTC (so the
// stream crosses midnight), in window w.
func synthetic(from, to uint64, w uint32) []ledger.Transfer {
	base := time.Date(2026, 3, 1, 23, 58, 0, 0, time.UTC)
	var out []ledger.Transfer
	for seq := from; seq <= to; seq++ {
		out = append(out, ledger.Transfer{Seq: seq, Kind: ledger.KindPurchase, Debit: 1000 + seq%3, Credit: ledger.SettlementPayableID,
			Amount: int64(seq), Currency: cny, Time: base.Add(time.Duration(seq) * time.Minute).UnixNano(),
			Merchant: fmt.Sprintf("M%d", seq%3), Acquirer: []string{"1001", "2002"}[seq%2], STAN: fmt.Sprintf("%06d", seq),
			RRN: fmt.Sprintf("RRN%09d", seq), Window: w, SettleDate: 20260301})
	}
	return out
}

func TestDetailAndGLAreExactlyOnce(t *testing.T) {
	h := openHeadWith(t, t.TempDir(), "beijing")
	all := synthetic(1, 10, 1)
	for _, batch := range [][]ledger.Transfer{all[:4], all[:4], all[2:7], all[:7], all, all[9:]} {
		if err := h.Apply("beijing", batch); err != nil {
			t.Fatalf("Apply(%d..%d): %v", batch[0].Seq, batch[len(batch)-1].Seq, err)
		}
	}
	if err := h.Apply("shanghai", synthetic(1, 3, 0)); err != nil { // window 0 counts in window 1
		t.Fatal(err)
	}
	got, err := h.Entries(head.Query{Region: "beijing", Window: 1})
	if err != nil || len(got) != 10 {
		t.Fatalf("Entries(beijing, window 1): %d, %v", len(got), err)
	}
	for i, e := range got {
		if e.Region != "beijing" || !reflect.DeepEqual(e.Transfer, all[i]) {
			t.Fatalf("entry %d: %+v, want %+v", i, e, all[i])
		}
	}
	if got, _ := h.Entries(head.Query{Window: 1}); len(got) != 13 {
		t.Fatalf("Entries(window 1) = %d, want 13", len(got))
	}
	lines, err := h.GL(1, head.LevelInstitution)
	if err != nil || len(lines) != 2 {
		t.Fatalf("GL institution: %+v, %v", lines, err)
	}
	// 1001 has the even seqs: beijing 2+4+6+8+10, shanghai 2; 2002 the odd: 1+3+5+7+9, 1+3.
	if l := lines[0]; l.Institution != "1001" || l.Debits != 32 || l.Credits != 32 || l.Entries != 12 {
		t.Fatalf("GL 1001: %+v", l)
	}
	if l := lines[1]; l.Institution != "2002" || l.Debits != 29 || l.Credits != 29 || l.Entries != 14 {
		t.Fatalf("GL 2002: %+v", l)
	}
	region, _ := h.GL(1, head.LevelRegion)
	merchant, _ := h.GL(1, head.LevelMerchant)
	account, _ := h.GL(1, head.LevelAccount)
	if len(region) != 4 || len(merchant) != 9 || len(account) != 18 {
		t.Fatalf("GL lines: %d regions, %d merchants, %d accounts", len(region), len(merchant), len(account))
	}
	if l := account[0]; l.Institution != "1001" || l.Region != "beijing" || l.Merchant != "M0" || l.Account != 1 ||
		l.Credits != 6 || l.Debits != 0 {
		t.Fatalf("first leaf: %+v", l)
	}

	t.Run("by RRN, by date and acquirer, with a limit", func(t *testing.T) {
		e, err := h.Entries(head.Query{RRN: "RRN000000002"})
		if err != nil || len(e) != 2 || e[0].Region != "beijing" || e[1].Region != "shanghai" || e[0].Seq != 2 {
			t.Fatalf("by RRN: %+v, %v", e, err)
		}
		if e, _ := h.Entries(head.Query{RRN: "RRN000000002", Region: "shanghai"}); len(e) != 1 || e[0].Region != "shanghai" {
			t.Fatalf("by RRN and region: %+v", e)
		}
		// Seq 1 is at 23:59 on 1 March; seq 2 on is 2 March.
		if e, _ := h.Entries(head.Query{Date: 20260301}); len(e) != 2 || e[0].Seq != 1 || e[1].Seq != 1 {
			t.Fatalf("by date 20260301: %+v", e)
		}
		e, _ = h.Entries(head.Query{Date: 20260302, Acquirer: "1001"})
		if len(e) != 6 {
			t.Fatalf("by date 20260302 and acquirer 1001: %d entries", len(e))
		}
		for _, x := range e {
			if x.Acquirer != "1001" {
				t.Fatalf("acquirer %s in %+v", x.Acquirer, x)
			}
		}
		if e, _ := h.Entries(head.Query{Region: "beijing", Limit: 3}); len(e) != 3 || e[2].Seq != 3 {
			t.Fatalf("limit 3: %+v", e)
		}
		if e, _ := h.Entries(head.Query{RRN: "nope"}); len(e) != 0 {
			t.Fatalf("unknown RRN: %+v", e)
		}
	})
	t.Run("bad inputs are refused whole", func(t *testing.T) {
		next := synthetic(11, 13, 1)
		long := strings.Repeat("9", 40)
		for name, mod := range map[string]func(b []ledger.Transfer){
			"a long RRN":      func(b []ledger.Transfer) { b[2].RRN = long },
			"a long acquirer": func(b []ledger.Transfer) { b[2].Acquirer = long },
			"window above":    func(b []ledger.Transfer) { b[2].Window = 2 },
			"unknown kind":    func(b []ledger.Transfer) { b[2].Kind = 99 },
		} {
			b := append([]ledger.Transfer(nil), next...)
			mod(b)
			if err := h.Apply("beijing", b); !errors.Is(err, head.ErrBadBatch) {
				t.Errorf("%s: %v, want ErrBadBatch", name, err)
			}
		}
		if e, _ := h.Entries(head.Query{Region: "beijing"}); len(e) != 10 || h.HighWater("beijing") != 10 {
			t.Fatalf("after the refusals: %d entries, mark %d", len(e), h.HighWater("beijing"))
		}
		if _, err := h.GL(1, 9); err == nil {
			t.Error("GL at level 9 succeeded")
		}
	})
	t.Run("an adjustment posts like a transfer", func(t *testing.T) {
		adj := ledger.Transfer{Seq: 11, Kind: ledger.KindAdjust, Debit: ledger.SuspenseID, Credit: 1000, Amount: 7, Currency: cny, Window: 1}
		if err := h.Apply("beijing", []ledger.Transfer{adj}); err != nil {
			t.Fatal(err)
		}
		tot, _ := h.AccountTotals("beijing", ledger.SuspenseID)
		if len(tot) != 1 || tot[0].Debits != 7 {
			t.Fatalf("suspense: %+v", tot)
		}
	})
}

// BenchmarkMerge measures entries per second through Apply in batches of 1024 on badger on disk.
func BenchmarkMerge(b *testing.B) {
	h, err := head.Open(head.Options{Dir: b.TempDir(), Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	const batch = 1024
	b.ReportAllocs()
	b.ResetTimer()
	seq := uint64(1)
	for b.Loop() {
		page := synthetic(seq, seq+batch-1, 1)
		seq += batch
		if err := h.Apply("beijing", page); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
}
