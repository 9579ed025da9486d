package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkPurchase measures durable purchases (SyncWrites on) submitted by many goroutines to
// one shard: ns/op is the shard's throughput per purchase, allocs/op includes badger's share of
// each commit. req/commit shows how much the group commit batched.
func BenchmarkPurchase(b *testing.B) {
	for _, submitters := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("submitters=%d", submitters), func(b *testing.B) {
			s := openShard(b, "")
			const cards = 64
			pans := make([]string, cards)
			for i := range pans {
				pans[i] = fmt.Sprintf("62999%011d", i)
				openCard(b, s, pans[i])
				if r := deposit(b, s, txid("fund", i), pans[i], 1<<50); r.Code != Approved {
					b.Fatalf("funding: %+v", r)
				}
			}
			var next atomic.Uint64
			start := s.Stats()
			b.ReportAllocs()
			b.ResetTimer()
			runParallel(b, submitters, func() {
				n := next.Add(1)
				var id TxID
				binary.BigEndian.PutUint64(id[:], n)
				id[31] = 1
				r := Request{Op: OpPurchase, ID: id, PAN: pans[n%cards], Amount: 1, Currency: cny}
				res, err := s.Do(context.Background(), &r)
				if err != nil || res.Code != Approved {
					b.Errorf("purchase %d: %+v %v", n, res, err)
				}
			})
			b.StopTimer()
			end := s.Stats()
			if c := end.Commits - start.Commits; c > 0 {
				b.ReportMetric(float64(end.Requests-start.Requests)/float64(c), "req/commit")
			}
		})
	}
}

// runParallel runs fn b.N times in total from exactly n goroutines (b.RunParallel ties the
// goroutine count to GOMAXPROCS, which on a small machine hides the batching).
func runParallel(b *testing.B, n int, fn func()) {
	var left atomic.Int64
	left.Store(int64(b.N))
	done := make(chan struct{})
	for range n {
		go func() {
			defer func() { done <- struct{}{} }()
			for left.Add(-1) >= 0 {
				fn()
			}
		}()
	}
	for range n {
		<-done
	}
}

// BenchmarkTransfers measures durable transfers per second on one shard against its batch size
// (Options.MaxBatch), for two mixes of cards: every purchase on one of 10 hot cards, or spread
// evenly over 10 000 (in turn, so a batch touches as many cards as it can). Each transfer is a purchase, one journal entry debiting the card and
// crediting settlement-payable, acknowledged only after its commit is synced. Twice MaxBatch
// submitters (at least 64) keep the queue full, so that a batch fills while the one before it
// commits. transfers/s is the throughput, req/commit how full the commits were; a uniform batch
// writes one account record per card it touches, a hot one ten.
//
//	go test -run '^$' -bench Transfers -benchtime 2s ./ledger
func BenchmarkTransfers(b *testing.B) {
	for _, mix := range []struct {
		name  string
		cards int
	}{{"hot10", 10}, {"uniform10000", 10_000}} {
		for _, maxBatch := range []int{1, 8, 64, 512, 4096} {
			s, pans := seededShard(b, maxBatch, mix.cards)
			var ids atomic.Uint64 // across the calls of one sub-benchmark, which share s
			b.Run(fmt.Sprintf("mix=%s/maxbatch=%d", mix.name, maxBatch), func(b *testing.B) {
				benchTransfers(b, s, pans, max(64, 2*maxBatch), &ids)
			})
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// seededShard opens a shard with the given batch size and cards, each funded far beyond what a
// benchmark spends. The cards are opened and funded from many goroutines, so that seeding 10 000
// of them takes a few dozen commits, not 20 000.
func seededShard(b *testing.B, maxBatch, cards int) (*Shard, []string) {
	b.Helper()
	o := testOptions(b, b.TempDir())
	o.MaxBatch = maxBatch
	s, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	pans := make([]string, cards)
	for i := range pans {
		pans[i] = fmt.Sprintf("62999%011d", i)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(cards, 256) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(cards); i = next.Add(1) - 1 {
				ctx := context.Background()
				if _, err := s.OpenAccount(ctx, AccountSpec{Type: Card, Currency: cny, Name: "bench", PAN: pans[i]}); err != nil {
					b.Errorf("open card %d: %v", i, err)
					return
				}
				r := Request{Op: OpDeposit, ID: txid("fund", int(i)), PAN: pans[i], Amount: 1 << 40, Currency: cny} // 10 000 × 2⁴⁰ fits funding's int64 totals
				if res, err := s.Do(ctx, &r); err != nil || res.Code != Approved {
					b.Errorf("fund card %d: %+v %v", i, res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		s.Close()
		b.FailNow()
	}
	return s, pans
}

// benchTransfers runs b.N purchases of 1 fen from the given number of submitters, on the cards
// of pans in turn. The shard outlives this call (the benchmark calls it again with a larger b.N),
// so the TxIDs are numbered on from next.
func benchTransfers(b *testing.B, s *Shard, pans []string, submitters int, next *atomic.Uint64) {
	start := s.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	runParallel(b, submitters, func() {
		n := next.Add(1)
		var id TxID
		binary.BigEndian.PutUint64(id[:], n)
		id[31] = 2
		r := Request{Op: OpPurchase, ID: id, PAN: pans[n%uint64(len(pans))], Amount: 1, Currency: cny}
		res, err := s.Do(context.Background(), &r)
		if err != nil || res.Code != Approved {
			b.Errorf("purchase %d: %+v %v", n, res, err)
		}
	})
	b.StopTimer()
	end := s.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transfers/s")
	if c := end.Commits - start.Commits; c > 0 {
		b.ReportMetric(float64(end.Requests-start.Requests)/float64(c), "req/commit")
	}
}
