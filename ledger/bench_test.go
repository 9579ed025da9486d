package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
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
