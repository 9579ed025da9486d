package head_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
)

// TestEntriesAgreeWithAFullScan merges three regions' journals across three cutovers, with
// windows that interleave in seq (late entries of the window closing), UTC dates that go back
// and forth within and across batches, repeated RRNs and several acquirers, and checks that every
// kind of query returns exactly what filtering every entry would, in the order the package
// documents, with and without a limit, before and after a reopen.
func TestEntriesAgreeWithAFullScan(t *testing.T) {
	ctx := context.Background()
	regions := []string{"beijing", "sh", "bei"} // key order: sh, bei, beijing
	dir := t.TempDir()
	h := openHeadWith(t, dir, regions...) // the windows wait for points nobody reports: they stay closing
	rnd := rand.New(rand.NewPCG(1, 2))
	days := []time.Time{time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)}
	acquirers := []string{"1001", "2002", "30", ""}
	var all []head.Entry
	next := map[string]uint64{}
	for open := uint32(1); open <= 4; open++ {
		for round := 0; round < 3; round++ {
			for _, region := range regions {
				var batch []ledger.Transfer
				for range 1 + rnd.IntN(40) {
					next[region]++
					seq := next[region]
					w := open
					switch {
					case open == 1 && rnd.IntN(3) == 0:
						w = 0 // booked before windows existed: counts in window 1
					case open > 1 && rnd.IntN(4) == 0:
						w = open - 1 // late, in the window still closing
					}
					rrn := ""
					if rnd.IntN(5) > 0 {
						rrn = fmt.Sprintf("R%02d", rnd.IntN(30))
					}
					e := ledger.Transfer{Seq: seq, Kind: ledger.KindPurchase, Debit: 1000 + uint64(rnd.IntN(3)),
						Credit: ledger.SettlementPayableID, Amount: 1 + rnd.Int64N(500), Currency: cny,
						Time:     days[rnd.IntN(len(days))].Add(time.Duration(rnd.IntN(86400)) * time.Second).UnixNano(),
						Acquirer: acquirers[rnd.IntN(len(acquirers))], Merchant: fmt.Sprintf("M%d", rnd.IntN(3)),
						RRN: rrn, Window: w}
					batch = append(batch, e)
				}
				if err := h.Apply(region, batch); err != nil {
					t.Fatalf("Apply(%s, %d..%d): %v", region, batch[0].Seq, batch[len(batch)-1].Seq, err)
				}
				// A retried overlap changes nothing.
				if err := h.Apply(region, batch[len(batch)/2:]); err != nil {
					t.Fatalf("Apply again: %v", err)
				}
				for _, e := range batch {
					all = append(all, head.Entry{Region: region, Transfer: e})
				}
			}
		}
		if open < 4 {
			if _, err := h.Cutover(ctx, 0, nil); err != nil {
				t.Fatalf("Cutover of window %d: %v", open, err)
			}
		}
	}

	var queries []head.Query
	for _, limit := range []int{0, 1, 7} {
		for _, region := range append([]string{""}, regions...) {
			queries = append(queries, head.Query{Region: region, Limit: limit})
			for w := uint32(1); w <= 5; w++ {
				queries = append(queries, head.Query{Region: region, Window: w, Limit: limit})
			}
			for _, date := range []uint32{20260228, 20260301, 20260302, 20260303} {
				for _, acq := range append(acquirers, "999") {
					queries = append(queries, head.Query{Region: region, Date: date, Acquirer: acq, Limit: limit})
				}
				queries = append(queries, head.Query{Region: region, Date: date, Window: 2, Limit: limit})
			}
			for _, rrn := range []string{"R00", "R07", "R29", "none"} {
				queries = append(queries, head.Query{Region: region, RRN: rrn, Limit: limit})
				queries = append(queries, head.Query{Region: region, RRN: rrn, Acquirer: "1001", Limit: limit})
			}
		}
	}
	check := func(t *testing.T, h *head.Head) {
		for _, q := range queries {
			got, err := h.Entries(q)
			if err != nil {
				t.Fatalf("Entries(%+v): %v", q, err)
			}
			if want := fullScan(all, q); !reflect.DeepEqual(got, want) {
				t.Fatalf("Entries(%+v): %d entries %v, want %d %v", q, len(got), refs(got, 12), len(want), refs(want, 12))
			}
		}
	}
	t.Run("every query agrees with a full scan", func(t *testing.T) { check(t, h) })
	t.Run("and still does after a reopen", func(t *testing.T) {
		h.Close()
		check(t, openHeadWith(t, dir, regions...))
	})
}

// fullScan is what Entries should return for q: every entry that matches, ordered as the
// package documents (key order of regions and acquirers: shorter first, then bytewise), up to
// the limit.
func fullScan(all []head.Entry, q head.Query) []head.Entry {
	var out []head.Entry
	for _, e := range all {
		if (q.Region == "" || e.Region == q.Region) && (q.Window == 0 || max(e.Window, 1) == q.Window) &&
			(q.Date == 0 || utcDate(e.Time) == q.Date) && (q.Acquirer == "" || e.Acquirer == q.Acquirer) &&
			(q.RRN == "" || e.RRN == q.RRN) {
			out = append(out, e)
		}
	}
	keyLess := func(a, b string) bool { return len(a) < len(b) || len(a) == len(b) && a < b }
	sort.SliceStable(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if q.RRN == "" && q.Date != 0 && a.Acquirer != b.Acquirer {
			return keyLess(a.Acquirer, b.Acquirer)
		}
		if a.Region != b.Region {
			return keyLess(a.Region, b.Region)
		}
		return a.Seq < b.Seq
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

func utcDate(ns int64) uint32 {
	y, m, d := time.Unix(0, ns).UTC().Date()
	return uint32(y*10000 + int(m)*100 + d)
}

// refs names the first n entries.
func refs(es []head.Entry, n int) []string {
	var out []string
	for _, e := range es[:min(n, len(es))] {
		out = append(out, fmt.Sprintf("%s/%d", e.Region, e.Seq))
	}
	return out
}
