package bench

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/pki"
)

// BenchmarkEndToEnd drives b.N one-fen purchases through the all-in-one
// node: `conns` mutual-TLS connections spread over the long-connection
// channels, each
// keeping `window` requests in flight, all on the richest demo card (a hot
// account: the worst case for a ledger that locks, the normal case for a
// single-writer shard). It reports approvals per second; every answer must
// be 00 and the ledger must have booked exactly b.N purchases.
func BenchmarkEndToEnd(b *testing.B) {
	const conns, window = 8, 16
	cfg := allinone.LocalConfig(b.TempDir())
	n, err := allinone.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	pan := allinone.DemoAccounts()[0].PAN
	before, _ := n.Shard("beijing").AccountByPAN(pan)

	// Long connections only: a short-connection channel (the kiosk) takes
	// one request per connection.
	var long []string
	for _, ch := range cfg.Channels {
		if !ch.Short {
			long = append(long, ch.Name)
		}
	}
	clients := make([]*front.Client, conns)
	wires := make([]allinone.Wire, conns) // each connection speaks its channel's
	for i := range clients {
		ch := long[i%len(long)]
		cert, key := pki.ClientFiles(cfg.PKIDir, ch)
		tlsCfg, err := front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(cfg.PKIDir)}, "localhost")
		if err != nil {
			b.Fatal(err)
		}
		w := n.Wire(ch)
		wires[i] = w
		opts := front.ClientOptions{Dialect: w.Dialect, Framing: w.Framing, Header: w.Header}
		if clients[i], err = front.Dial(context.Background(), n.Addr(ch).String(), tlsCfg, opts); err != nil {
			b.Fatal(err)
		}
		defer clients[i].Close()
	}

	var declined atomic.Int64
	start := time.Now()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, c := range clients {
		w := wires[i]
		share := b.N / conns
		if i < b.N%conns {
			share++
		}
		wg.Add(2)
		credits := make(chan struct{}, window)
		for range window {
			credits <- struct{}{}
		}
		go func() { // reader: exactly share answers, one credit back each
			defer wg.Done()
			resp := codec.NewMessage(w.Dialect)
			for range share {
				if err := c.Receive(resp); err != nil {
					b.Error(err)
					return
				}
				if rc := string(resp.Get(39)); rc != codec.RCApproved && rc != "000" { // 000: a 1993 approval
					declined.Add(1)
				}
				credits <- struct{}{}
			}
		}()
		go func() { // writer: share purchases, never more than window unanswered
			defer wg.Done()
			// Requests are built in 1987 terms; a 1993 channel gets them through
			// its map, as junction send does.
			built, req := codec.NewMessage(n.Dialect()), codec.NewMessage(w.Dialect)
			var saved codec.Saved
			ctx := &codec.Context{Now: start}
			for k := range share {
				<-credits
				tx := front.Txn{Type: codec.TxPurchase, PAN: pan, Amount: 1, Currency: 156,
					STAN: uint32(k%999999) + 1, Terminal: terminal(i, k), Time: start}
				var err error
				if w.Outbound != nil {
					if err = tx.Build(n.Dialect(), built); err == nil {
						err = w.Outbound.Request(req, built, ctx, &saved)
					}
				} else {
					err = tx.Build(w.Dialect, req)
				}
				if err == nil {
					err = c.Send(req)
				}
				if err != nil {
					b.Error(err)
					c.Close() // the reader would wait for answers that never come
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "approvals/s")
	if declined.Load() != 0 {
		b.Fatalf("%d purchases declined", declined.Load())
	}
	after, _ := n.Shard("beijing").AccountByPAN(pan)
	if booked := before.Balance() - after.Balance(); booked != int64(b.N) {
		b.Fatalf("ledger booked %d fen for %d purchases", booked, b.N)
	}
}

// terminal gives every connection its own terminal ids, so that STANs
// (six digits) never repeat within a terminal: each purchase is a new
// transaction, not a retransmission.
func terminal(conn, k int) string {
	const digits = "0123456789"
	t := []byte("B0000000")
	t[1] = digits[conn%10]
	block := k / 999999
	for i := 7; i >= 2 && block > 0; i-- {
		t[i] = digits[block%10]
		block /= 10
	}
	return string(t)
}
