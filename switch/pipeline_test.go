package switching_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/routing"
	switching "github.com/junction-switch/junction/switch"
	"github.com/prometheus/client_golang/prometheus"
)

// These tests drive the pipeline against real ledger shards on badger.
// Where a test needs a shard to be slow or to hold a request, it puts a
// fault in front of the real one (slowShard, gatedShard): the shard still
// books, only later.

// slowShard answers financial requests only after the caller has given up
// (its context ended), then books them anyway: a shard that is too slow,
// not one that failed. Reversals and balance inquiries go straight through.
type slowShard struct {
	host *ledger.Host
	slow atomic.Bool
}

func (s *slowShard) Exchange(ctx context.Context, req, resp *codec.Message) error {
	mti, _ := req.MTI()
	if !s.slow.Load() || mti[1] == codec.ClassReversal {
		return s.host.Exchange(ctx, req, resp)
	}
	<-ctx.Done()
	late := codec.NewMessage(req.Dialect())
	if err := s.host.Exchange(context.Background(), req, late); err != nil {
		return err
	}
	return ctx.Err()
}

func openSAF(t *testing.T, reg prometheus.Registerer, dests map[string]switching.Destination) *switching.SAF {
	t.Helper()
	q, err := switching.OpenSAF(switching.SAFOptions{
		Dir: t.TempDir(), Dialect: codec.ISO87ASCII(), Destinations: dests,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Logger: quiet(), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func cardRoutes(t *testing.T, rules ...routing.Rule) *routing.Table {
	t.Helper()
	if len(rules) == 0 {
		rules = []routing.Rule{{Name: "cards", BIN: routing.BINs{"629990"}, Destination: "beijing"}}
	}
	routes, err := routing.NewTable(rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	return routes
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func balanceOf(t *testing.T, s *ledger.Shard) int64 {
	t.Helper()
	a, err := s.AccountByPAN(pan)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance()
}

// TestATimeoutIsReversed: the shard answers too late. The channel gets 91
// (or the route's 68) at the timeout, a reversal advice goes to the SAF,
// and once it is delivered the ledger holds the purchase and its reversal:
// the card is whole again.
func TestATimeoutIsReversed(t *testing.T) {
	for _, c := range []struct {
		name, code string
	}{{"the default code", "91"}, {"the route's code", "68"}} {
		t.Run(c.name, func(t *testing.T) {
			shard := openShard(t)
			slow := &slowShard{host: ledger.NewHost(shard)}
			dests := map[string]switching.Destination{"beijing": slow}
			q := openSAF(t, nil, dests)
			rule := routing.Rule{Name: "cards", BIN: routing.BINs{"629990"}, Destination: "beijing", Timeout: 100 * time.Millisecond}
			if c.code == "68" {
				rule.TimeoutCode = "68"
			}
			sw, err := switching.New(switching.Options{Routes: cardRoutes(t, rule), Destinations: dests, Logger: quiet(), SAF: q})
			if err != nil {
				t.Fatal(err)
			}
			before := balanceOf(t, shard)
			slow.slow.Store(true)
			resp, _ := serve(sw, request(t, codec.ISO87ASCII(), codec.TxPurchase, pan, 1234))
			if got := string(resp.Get(39)); got != c.code || resp.Has(38) {
				t.Fatalf("rc %s auth %q, want %s and no approval", got, resp.Get(38), c.code)
			}
			eventually(t, "the reversal is delivered", func() bool { return q.Depth("beijing") == 0 })
			if got := balanceOf(t, shard); got != before {
				t.Fatalf("balance %d, want %d: the late purchase is not reversed", got, before)
			}
			j, err := shard.Journal(1, 100)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[ledger.Kind]int{}
			for _, e := range j {
				kinds[e.Kind]++
			}
			if kinds[ledger.KindPurchase] != 1 || kinds[ledger.KindReversal] != 1 {
				t.Fatalf("journal kinds %v, want one purchase and one reversal", kinds)
			}
			if _, err := shard.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// downLink is a real outbound link to a port nobody listens on: it is
// Down, and sends nothing.
func downLink(t *testing.T) *switching.Pool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	m, err := codec.CopyMap(codec.ISO87ASCII(), codec.ISO87ASCII())
	if err != nil {
		t.Fatal(err)
	}
	f := codec.Framing{Length: codec.Len2Binary}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	l, err := front.NewLink(front.LinkOptions{Name: "primary-1", Addr: addr, Map: m, Framing: f, Logger: quiet(),
		BackoffMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p, err := switching.NewPool("primary", []switching.Member{{Name: "primary-1", Dest: l}}, switching.PoolOptions{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestADownDestination: a destination whose link is down is skipped at
// once for the route's alternate; without an alternate the channel gets 91
// at once. Never a hang: the switch's timeout is an hour.
func TestADownDestination(t *testing.T) {
	shard := openShard(t)
	dests := map[string]switching.Destination{"primary": downLink(t), "beijing": ledger.NewHost(shard)}
	within := func(sw *switching.Switch) *codec.Message {
		t.Helper()
		done := make(chan *codec.Message, 1)
		go func() {
			resp, _ := serve(sw, request(t, codec.ISO87ASCII(), codec.TxPurchase, pan, 100))
			done <- resp
		}()
		select {
		case resp := <-done:
			return resp
		case <-time.After(30 * time.Second):
			t.Fatal("the switch hangs on a destination that is down")
			return nil
		}
	}

	t.Run("traffic fails over to the alternate", func(t *testing.T) {
		before := balanceOf(t, shard)
		routes := cardRoutes(t, routing.Rule{Name: "cards", BIN: routing.BINs{"629990"}, Destination: "primary", Alternates: []string{"beijing"}})
		sw, err := switching.New(switching.Options{Routes: routes, Destinations: dests, Logger: quiet(), Timeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if rc := string(within(sw).Get(39)); rc != "00" {
			t.Fatalf("rc %s", rc)
		}
		if got := balanceOf(t, shard); got != before-100 {
			t.Fatalf("the alternate did not book: balance %d", got)
		}
	})

	t.Run("without an alternate the answer is 91 at once", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		routes := cardRoutes(t, routing.Rule{Name: "cards", BIN: routing.BINs{"629990"}, Destination: "primary"})
		sw, err := switching.New(switching.Options{Routes: routes, Destinations: dests, Logger: quiet(), Timeout: time.Hour, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		if rc := string(within(sw).Get(39)); rc != "91" {
			t.Fatalf("rc %s", rc)
		}
		if n := counterValue(t, reg, "junction_switch_declines_total", "reason", "unavailable"); n != 1 {
			t.Fatalf("declines{reason=unavailable} = %v", n)
		}
	})
}

// countingShard is a real shard that takes serviceTime per request and
// records how many requests it held at once.
type countingShard struct {
	host        *ledger.Host
	serviceTime time.Duration
	now, peak   atomic.Int64
	calls       atomic.Int64
}

func (c *countingShard) Exchange(ctx context.Context, req, resp *codec.Message) error {
	c.calls.Add(1)
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(c.serviceTime)
	return c.host.Exchange(ctx, req, resp)
}

// TestOverloadIsDeclinedAtOnce offers far more than a destination's window:
// the excess is declined 91 without ever reaching the destination (nothing
// queues), the destination never holds more than its window, and every
// request reaching it is served.
func TestOverloadIsDeclinedAtOnce(t *testing.T) {
	shard := openShard(t)
	slow := &countingShard{host: ledger.NewHost(shard), serviceTime: 20 * time.Millisecond}
	reg := prometheus.NewRegistry()
	pool, err := switching.NewPool("beijing", []switching.Member{{Name: "beijing", Dest: slow}}, switching.PoolOptions{
		Logger: quiet(), Window: &switching.WindowOptions{Initial: 4, Min: 4, Max: 4, Reserve: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := switching.New(switching.Options{Routes: cardRoutes(t), Destinations: map[string]switching.Destination{"beijing": pool},
		Logger: quiet(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	const offered = 200
	codes := make(chan string, offered)
	var wg sync.WaitGroup
	for range offered {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := serve(sw, request(t, codec.ISO87ASCII(), codec.TxPurchase, pan, 1))
			codes <- string(resp.Get(39))
		}()
	}
	wg.Wait()
	close(codes)
	byCode := map[string]int64{}
	for c := range codes {
		byCode[c]++
	}
	if byCode["91"] == 0 || byCode["00"] == 0 || byCode["00"]+byCode["91"] != offered {
		t.Fatalf("answers %v: want approvals and fast 91s only", byCode)
	}
	if p := slow.peak.Load(); p > 4 {
		t.Fatalf("the destination held %d requests at once; its window is 4", p)
	}
	if got := slow.calls.Load(); got != byCode["00"] {
		t.Fatalf("%d requests reached the destination, %d were approved: declined ones must not reach it", got, byCode["00"])
	}
	if n := counterValue(t, reg, "junction_switch_declines_total", "reason", "window"); n != float64(byCode["91"]) {
		t.Fatalf("declines{reason=window} = %v, want %d", n, byCode["91"])
	}
}

// gatedShard holds every request until open is closed.
type gatedShard struct {
	host    *ledger.Host
	open    chan struct{}
	arrived chan struct{}
}

func (g *gatedShard) Exchange(ctx context.Context, req, resp *codec.Message) error {
	g.arrived <- struct{}{}
	<-g.open
	return g.host.Exchange(ctx, req, resp)
}

// TestADuplicateInFlightIs94: a retransmission that arrives while its
// original is still at the destination is answered 94 at once; the
// original keeps its place, gets its own answer, and is booked once.
func TestADuplicateInFlightIs94(t *testing.T) {
	shard := openShard(t)
	g := &gatedShard{host: ledger.NewHost(shard), open: make(chan struct{}), arrived: make(chan struct{}, 2)}
	sw, err := switching.New(switching.Options{Routes: cardRoutes(t), Destinations: map[string]switching.Destination{"beijing": g}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	before := balanceOf(t, shard)
	orig := request(t, codec.ISO87ASCII(), codec.TxPurchase, pan, 500)
	dup := codec.NewMessage(codec.ISO87ASCII())
	mti, _ := orig.MTI()
	dup.SetMTI(mti)
	for id := 2; id <= codec.MaxField; id++ {
		if orig.Has(id) {
			if err := dup.Copy(orig, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	first := make(chan *codec.Message)
	go func() {
		resp, _ := serve(sw, orig)
		first <- resp
	}()
	<-g.arrived
	resp, _ := serve(sw, dup)
	if rc := string(resp.Get(39)); rc != "94" {
		t.Fatalf("the duplicate got %s, want 94", rc)
	}
	close(g.open)
	got := <-first
	if rc := string(got.Get(39)); rc != "00" || string(got.Get(11)) != string(orig.Get(11)) {
		t.Fatalf("the original got rc %s STAN %s", rc, got.Get(11))
	}
	if b := balanceOf(t, shard); b != before-500 {
		t.Fatalf("balance %d, want %d", b, before-500)
	}
	// Answered, the key is free again: a later retransmission reaches the
	// shard, which replays the first outcome.
	again, _ := serve(sw, dup)
	if rc := string(again.Get(39)); rc != "00" || balanceOf(t, shard) != before-500 {
		t.Fatalf("the late retransmission: rc %s, balance %d", rc, balanceOf(t, shard))
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// recordingShard notes the STAN and RRN each request reaches it with.
type recordingShard struct {
	host       ledger.Host
	slow       *slowShard
	mu         sync.Mutex
	stans      []string
	rrns       []string
	reversed90 []string
}

func (r *recordingShard) Exchange(ctx context.Context, req, resp *codec.Message) error {
	r.mu.Lock()
	mti, _ := req.MTI()
	if mti[1] == codec.ClassReversal {
		r.reversed90 = append(r.reversed90, string(req.Get(90)))
	} else {
		r.stans, r.rrns = append(r.stans, string(req.Get(11))), append(r.rrns, string(req.Get(37)))
	}
	r.mu.Unlock()
	return r.slow.Exchange(ctx, req, resp)
}

// TestRestamping: a destination marked for re-stamping gets the switch's
// STAN and RRN, the channel gets its own back; a timeout there is reversed
// under the numbers the destination knows.
func TestRestamping(t *testing.T) {
	shard := openShard(t)
	rec := &recordingShard{slow: &slowShard{host: ledger.NewHost(shard)}}
	dests := map[string]switching.Destination{"beijing": rec}
	q := openSAF(t, nil, dests)
	routes := cardRoutes(t, routing.Rule{Name: "cards", BIN: routing.BINs{"629990"}, Destination: "beijing", Timeout: 100 * time.Millisecond})
	sw, err := switching.New(switching.Options{Routes: routes, Destinations: dests, Logger: quiet(), SAF: q,
		Restamp: map[string]bool{"beijing": true}})
	if err != nil {
		t.Fatal(err)
	}
	req := request(t, codec.ISO87ASCII(), codec.TxPurchase, pan, 100)
	resp, _ := serve(sw, req)
	if rc := string(resp.Get(39)); rc != "00" {
		t.Fatalf("rc %s", rc)
	}
	rec.mu.Lock()
	sent, rrn := rec.stans[0], rec.rrns[0]
	rec.mu.Unlock()
	if sent == string(req.Get(11)) || len(sent) != 6 || len(rrn) != 12 || rrn[6:] != sent || rrn == string(req.Get(37)) {
		t.Fatalf("the destination got STAN %q RRN %q for the channel's STAN %s", sent, rrn, req.Get(11))
	}
	if string(resp.Get(11)) != string(req.Get(11)) || string(resp.Get(37)) != string(req.Get(37)) {
		t.Fatalf("the channel got STAN %q RRN %q back", resp.Get(11), resp.Get(37))
	}

	before := balanceOf(t, shard)
	rec.slow.slow.Store(true)
	resp, _ = serve(sw, request(t, codec.ISO87ASCII(), codec.TxPurchase, pan, 700))
	if rc := string(resp.Get(39)); rc != "91" {
		t.Fatalf("rc %s on a timeout", rc)
	}
	eventually(t, "the reversal is delivered", func() bool { return q.Depth("beijing") == 0 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reversed90) != 1 || rec.reversed90[0][4:10] != rec.stans[1] {
		t.Fatalf("reversals %v name the original by STAN %s?", rec.reversed90, rec.stans[1])
	}
	if got := balanceOf(t, shard); got != before {
		t.Fatalf("balance %d, want %d", got, before)
	}
}

// TestQueueBudget: a request that waited longer than the budget before the
// switch took it up is declined without reaching a destination.
func TestQueueBudget(t *testing.T) {
	shard := openShard(t)
	sw, err := switching.New(switching.Options{Routes: cardRoutes(t), Logger: quiet(), QueueBudget: time.Millisecond,
		Destinations: map[string]switching.Destination{"beijing": ledger.NewHost(shard)}})
	if err != nil {
		t.Fatal(err)
	}
	before := balanceOf(t, shard)
	resp := codec.NewMessage(codec.ISO87ASCII())
	// A frame read a second ago, as front.Received would report it.
	ctx := front.WithReceived(context.Background(), time.Now().Add(-time.Second))
	sw.Serve(ctx, peer, request(t, codec.ISO87ASCII(), codec.TxPurchase, pan, 100), resp)
	if rc := string(resp.Get(39)); rc != "91" || balanceOf(t, shard) != before {
		t.Fatalf("rc %s, balance %d (was %d)", rc, balanceOf(t, shard), before)
	}
}

// outage is a shard behind a line that is down until up is set: while it
// is down nothing reaches the shard.
type outage struct {
	host *ledger.Host
	up   atomic.Bool
}

func (o *outage) Exchange(ctx context.Context, req, resp *codec.Message) error {
	if !o.up.Load() {
		return fmt.Errorf("%w (%w): line down", switching.ErrUnavailable, front.ErrNotSent)
	}
	return o.host.Exchange(ctx, req, resp)
}

// TestStandIn: while the shard cannot be reached, purchases within the
// card's limits are approved in stand-in and their advices wait in the SAF;
// over a limit they are declined 61 or 65; balance inquiries get 91. When
// the shard is back it books every stand-in approval exactly once.
func TestStandIn(t *testing.T) {
	shard := openShard(t) // 100.00 on the card
	line := &outage{host: ledger.NewHost(shard)}
	dests := map[string]switching.Destination{"beijing": line}
	reg := prometheus.NewRegistry()
	q := openSAF(t, nil, dests)
	si, err := switching.NewStandIn(switching.StandInLimits{Currency: 156, MaxAmount: 5000, DailyAmount: 12000, DailyCount: 3}, q, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	routes := cardRoutes(t, routing.Rule{Name: "cards", BIN: routing.BINs{"629990"}, Destination: "beijing", Alternates: []string{routing.StandIn}})
	sw, err := switching.New(switching.Options{Routes: routes, Destinations: dests, Logger: quiet(), SAF: q, StandIn: si, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	before := balanceOf(t, shard)
	d := codec.ISO87ASCII()
	ask := func(typ string, amount int64) *codec.Message {
		resp, _ := serve(sw, request(t, d, typ, pan, amount))
		return resp
	}
	for i, c := range []struct {
		typ    string
		amount int64
		rc     string
	}{
		{codec.TxPurchase, 4000, "00"},
		{codec.TxPurchase, 6000, "61"}, // over the 50.00 a purchase
		{codec.TxPurchase, 5000, "00"},
		{codec.TxPurchase, 3001, "61"}, // over the 120.00 a day
		{codec.TxBalance, 0, "91"},     // stand-in knows no balance
		{codec.TxPurchase, 3000, "00"}, // the third of the day
		{codec.TxPurchase, 1, "65"},    // a fourth
	} {
		resp := ask(c.typ, c.amount)
		if rc := string(resp.Get(39)); rc != c.rc {
			t.Fatalf("request %d (%s %d): rc %s, want %s", i, c.typ, c.amount, rc, c.rc)
		}
		if c.rc == "00" && (len(resp.Get(38)) != 6 || resp.Get(38)[0] != 'S') {
			t.Fatalf("request %d: approval code %q", i, resp.Get(38))
		}
	}
	if depth := q.Depth("beijing"); depth != 3 {
		t.Fatalf("SAF depth %d, want the 3 advices", depth)
	}
	if balanceOf(t, shard) != before {
		t.Fatal("the shard was reached while down")
	}
	if n := counterValue(t, reg, "junction_switch_stand_in_total", "result", "approved"); n != 3 {
		t.Fatalf("stand_in_total{approved} = %v", n)
	}

	line.up.Store(true)
	eventually(t, "the advices are delivered", func() bool { return q.Depth("beijing") == 0 })
	// 120.00 in stand-in against 100.00 on the card: the shard books every
	// advice, forced, and the card is overdrawn by the stand-in exposure.
	if got := balanceOf(t, shard); got != before-12000 {
		t.Fatalf("balance %d, want %d", got, before-12000)
	}
	if _, err := shard.Verify(); err != nil {
		t.Fatal(err)
	}
}
