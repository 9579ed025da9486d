package front_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/prometheus/client_golang/prometheus"
)

// holdHandler answers every request 00. Requests for which hold says so
// wait until the gate opens; held counts them. It remembers the peers it
// served, and the requests it saw.
type holdHandler struct {
	hold   func(stan string) bool
	gate   chan struct{}
	opened sync.Once
	held   atomic.Int32
	served atomic.Int32

	mu    sync.Mutex
	peers []front.Peer
}

func (h *holdHandler) Serve(_ context.Context, p *front.Peer, req, resp *codec.Message) bool {
	h.served.Add(1)
	h.mu.Lock()
	h.peers = append(h.peers, *p)
	h.mu.Unlock()
	if h.hold != nil && h.hold(string(req.Get(11))) {
		h.held.Add(1)
		<-h.gate
		h.held.Add(-1)
	}
	if resp.InitResponse(req) != nil {
		return false
	}
	resp.SetString(39, "00")
	return true
}

func (h *holdHandler) Reject(*front.Peer, *codec.Message, error, *codec.Message) bool { return false }

// open lets every held and future request through.
func (h *holdHandler) open() { h.opened.Do(func() { close(h.gate) }) }

// gnetBed is a plaintext channel on the gnet engine.
type gnetBed struct {
	srv  *front.Server
	addr string
	d    *codec.Dialect
	reg  *prometheus.Registry
	h    *holdHandler
}

func newGnetBed(t *testing.T, ch front.Channel, hold func(stan string) bool) *gnetBed {
	t.Helper()
	b := &gnetBed{d: codec.ISO87ASCII(), reg: prometheus.NewRegistry(), h: &holdHandler{hold: hold, gate: make(chan struct{})}}
	b.srv = front.NewServer(front.Options{Handler: b.h, Registerer: b.reg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ch.Name, ch.Addr, ch.Dialect = "pos", "127.0.0.1:0", b.d
	ch.Engine, ch.Plaintext, ch.PlainIdentity = front.EngineGnet, true, "balancer"
	addr, err := b.srv.Listen(ch)
	if err != nil {
		t.Fatal(err)
	}
	b.addr = addr.String()
	t.Cleanup(func() {
		b.h.open()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return b
}

func (b *gnetBed) dial(t *testing.T) *front.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := front.Dial(ctx, b.addr, nil, front.ClientOptions{Dialect: b.d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (b *gnetBed) send(t *testing.T, c *front.Client, stan uint32) {
	t.Helper()
	m := codec.NewMessage(b.d)
	tx := front.Txn{Type: codec.TxBalance, PAN: "6299901100000013", Currency: 156, STAN: stan, Terminal: "T0000001", Time: time.Now()}
	if err := tx.Build(b.d, m); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(m); err != nil {
		t.Fatal(err)
	}
}

// receive is Client.Receive that gives up (closing c) after 10 s rather
// than hang the test.
func receive(c *front.Client, m *codec.Message) error {
	t := time.AfterFunc(10*time.Second, func() { c.Close() })
	defer t.Stop()
	return c.Receive(m)
}

// stans receives n answers and returns their STANs in arrival order.
func (b *gnetBed) stans(t *testing.T, c *front.Client, n int) []string {
	t.Helper()
	var got []string
	resp := codec.NewMessage(b.d)
	for range n {
		if err := receive(c, resp); err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, string(resp.Get(11)))
	}
	return got
}

// closed reports whether the server closes c without sending it anything.
func (b *gnetBed) closed(c *front.Client) bool {
	return receive(c, codec.NewMessage(b.d)) != nil
}

func (b *gnetBed) counter(t *testing.T, name, reason string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := reason == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetName() == "reason" && l.GetValue() == reason
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestGnetAnswersPipelinedRequestsAsTheyComplete(t *testing.T) {
	b := newGnetBed(t, front.Channel{}, func(stan string) bool { return stan == "000001" })
	c := b.dial(t)
	for stan := uint32(1); stan <= 3; stan++ {
		b.send(t, c, stan)
	}
	if got := b.stans(t, c, 2); strings.Join(got, ",") != "000002,000003" && strings.Join(got, ",") != "000003,000002" {
		t.Fatalf("first answers %v, want 2 and 3 while 1 is held", got)
	}
	b.h.open()
	if got := b.stans(t, c, 1); got[0] != "000001" {
		t.Fatalf("last answer %v", got)
	}
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	for _, p := range b.h.peers {
		if p.Identity != "balancer" || p.Channel != "pos" {
			t.Fatalf("peer %+v: want the plaintext identity", p)
		}
	}
}

func TestGnetIgnoresKeepAlives(t *testing.T) {
	b := newGnetBed(t, front.Channel{}, nil)
	c := b.dial(t)
	if err := c.WriteRaw([]byte{0, 0, 0, 0}); err != nil { // two keep-alive frames
		t.Fatal(err)
	}
	b.send(t, c, 7)
	if got := b.stans(t, c, 1); got[0] != "000007" {
		t.Fatalf("answered STAN %s", got[0])
	}
	if n := b.counter(t, "junction_front_frames_total", ""); n != 3 {
		t.Fatalf("%v frames counted, want 3", n)
	}
}

func TestGnetAnswersEchoTestsAtTheEdge(t *testing.T) {
	b := newGnetBed(t, front.Channel{}, nil)
	c := b.dial(t)
	req, resp := codec.NewMessage(b.d), codec.NewMessage(b.d)
	req.SetMTI([4]byte{'0', '8', '0', '0'})
	req.SetString(11, "000777")
	req.SetString(70, "301")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Exchange(ctx, req, resp); err != nil {
		t.Fatal(err)
	}
	if resp.MTIString() != "0810" || string(resp.Get(39)) != "00" || string(resp.Get(70)) != "301" {
		t.Fatalf("answer %s 39=%s 70=%s", resp.MTIString(), resp.Get(39), resp.Get(70))
	}
	if n := b.h.served.Load(); n != 0 {
		t.Fatalf("the handler saw %d requests", n)
	}
}

func TestGnetClosesAStreamWithoutMTI(t *testing.T) {
	b := newGnetBed(t, front.Channel{}, nil)
	c := b.dial(t)
	if err := c.SendRaw([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if !b.closed(c) {
		t.Fatal("the connection got an answer")
	}
	waitUntil(t, "the close is counted as unreadable", func() bool {
		return b.counter(t, "junction_front_connections_closed_total", "unreadable") == 1
	})
	if n := b.counter(t, "junction_front_malformed_total", ""); n != 1 {
		t.Fatalf("%v malformed frames counted", n)
	}
}

func TestGnetClosesOnAFrameAboveTheLimit(t *testing.T) {
	b := newGnetBed(t, front.Channel{Framing: codec.Framing{Max: 512}}, nil)
	c := b.dial(t)
	if err := c.WriteRaw([]byte{1000 >> 8, 1000 & 0xff, '0', '2'}); err != nil {
		t.Fatal(err)
	}
	if !b.closed(c) {
		t.Fatal("the connection got an answer")
	}
	waitUntil(t, "the close is counted as frame_too_large", func() bool {
		return b.counter(t, "junction_front_connections_closed_total", "frame_too_large") == 1
	})
}

func TestGnetBoundsInFlightPerConnection(t *testing.T) {
	b := newGnetBed(t, front.Channel{MaxInFlight: 2}, func(string) bool { return true })
	c := b.dial(t)
	for stan := uint32(1); stan <= 6; stan++ {
		b.send(t, c, stan)
	}
	waitUntil(t, "2 requests are held", func() bool { return b.h.held.Load() == 2 })
	// The loop leaves the other frames in gnet's buffer: no third request
	// reaches the handler.
	for range 50 {
		if n := b.h.held.Load(); n > 2 {
			t.Fatalf("%d requests in flight, limit 2", n)
		}
		time.Sleep(time.Millisecond)
	}
	if n := b.counter(t, "junction_front_in_flight_full_total", ""); n < 1 {
		t.Fatal("the pause is not counted")
	}
	b.h.open()
	if got := b.stans(t, c, 6); len(got) != 6 {
		t.Fatalf("answers %v", got)
	}
}

func TestGnetDrainAnswersWorkInFlight(t *testing.T) {
	b := newGnetBed(t, front.Channel{}, func(string) bool { return true })
	c := b.dial(t)
	for stan := uint32(1); stan <= 5; stan++ {
		b.send(t, c, stan)
	}
	waitUntil(t, "5 requests are held", func() bool { return b.h.held.Load() == 5 })

	done := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- b.srv.Shutdown(ctx)
	}()
	// gnet keeps its listening socket until the engine stops: a connection
	// opened during the drain is refused once accepted (one that made it in
	// just before is drained at once: it has nothing in flight).
	waitUntil(t, "a new connection is refused", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		late, err := front.Dial(ctx, b.addr, nil, front.ClientOptions{Dialect: b.d})
		if err == nil {
			defer late.Close()
			if !b.closed(late) {
				t.Fatal("a connection opened during the drain got a message")
			}
		}
		return b.counter(t, "junction_front_connections_refused_total", "draining") >= 1
	})
	b.h.open()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := b.stans(t, c, 5); len(got) != 5 {
		t.Fatalf("answers %v", got)
	}
	if !b.closed(c) {
		t.Fatal("connection still open after the drain")
	}
	if n := b.counter(t, "junction_front_connections_closed_total", "drain"); n < 1 {
		t.Fatal("the drained connection is not counted")
	}
}

func TestGnetClosesIdleAndSlowConnections(t *testing.T) {
	b := newGnetBed(t, front.Channel{IdleTimeout: 50 * time.Millisecond, FrameTimeout: 50 * time.Millisecond}, nil)
	t.Run("a connection that sends nothing is closed as idle", func(t *testing.T) {
		if !b.closed(b.dial(t)) {
			t.Fatal("an idle connection got a message")
		}
		waitUntil(t, "the close is counted as idle", func() bool {
			return b.counter(t, "junction_front_connections_closed_total", "idle") == 1
		})
	})
	t.Run("a frame that does not arrive whole in time is cut off", func(t *testing.T) {
		c := b.dial(t)
		if err := c.WriteRaw([]byte{0, 200, '0', '2'}); err != nil {
			t.Fatal(err)
		}
		if !b.closed(c) {
			t.Fatal("a slow connection got a message")
		}
		waitUntil(t, "the close is counted as slow_frame", func() bool {
			return b.counter(t, "junction_front_connections_closed_total", "slow_frame") == 1
		})
	})
}

func TestGnetConnectionLimits(t *testing.T) {
	b := newGnetBed(t, front.Channel{MaxConns: 1}, nil)
	first := b.dial(t)
	b.send(t, first, 1)
	b.stans(t, first, 1)
	second := b.dial(t)
	b.send(t, second, 2)
	if !b.closed(second) {
		t.Fatal("a connection above the limit was served")
	}
	waitUntil(t, "the refusal is counted", func() bool {
		return b.counter(t, "junction_front_connections_refused_total", "limit") == 1
	})
}

func TestGnetShortConnections(t *testing.T) {
	b := newGnetBed(t, front.Channel{Short: true}, nil)
	c := b.dial(t)
	b.send(t, c, 1)
	b.send(t, c, 2)
	if got := b.stans(t, c, 1); got[0] != "000001" {
		t.Fatalf("answered %v", got)
	}
	if !b.closed(c) {
		t.Fatal("a short connection answered twice")
	}
	waitUntil(t, "the close is counted as short", func() bool {
		return b.counter(t, "junction_front_connections_closed_total", "short") == 1
	})
}

func TestGnetListenersOnlyServePlaintext(t *testing.T) {
	srv := front.NewServer(front.Options{Handler: &holdHandler{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer srv.Shutdown(context.Background())
	d := codec.ISO87ASCII()
	for name, ch := range map[string]front.Channel{
		"with mutual TLS":                   {TLS: &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert}},
		"with nothing":                      {},
		"an unknown engine, even plaintext": {Plaintext: true, Engine: 7},
	} {
		if ch.Engine == 0 {
			ch.Engine = front.EngineGnet
		}
		ch.Name, ch.Addr, ch.Dialect = "pos", "127.0.0.1:0", d
		if _, err := srv.Listen(ch); err == nil {
			t.Errorf("%s: gnet listener accepted", name)
		}
	}
	for _, c := range []struct {
		s string
		e front.Engine
	}{{"std", front.EngineStd}, {"gnet", front.EngineGnet}} {
		if e, err := front.ParseEngine(c.s); err != nil || e != c.e || e.String() != c.s {
			t.Errorf("ParseEngine(%q) = %v, %v", c.s, e, err)
		}
	}
	if _, err := front.ParseEngine("epoll"); err == nil {
		t.Error("ParseEngine accepted epoll")
	}
}

func TestGnetShutdownLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	d := codec.ISO87ASCII()
	srv := front.NewServer(front.Options{Handler: &holdHandler{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	addr, err := srv.Listen(front.Channel{Name: "pos", Addr: "127.0.0.1:0", Dialect: d,
		Plaintext: true, PlainIdentity: "balancer", Engine: front.EngineGnet})
	if err != nil {
		t.Fatal(err)
	}
	b := &gnetBed{srv: srv, addr: addr.String(), d: d}
	for i := range 3 {
		c := b.dial(t)
		b.send(t, c, uint32(i+1))
		b.stans(t, c, 1)
		if i == 0 {
			c.Close() // one leaves before the drain, two during it
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Client connections are closed by t.Cleanup, after this test's body:
	// they hold no goroutine of their own.
	waitUntil(t, "the goroutines are back to their number before Listen", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func TestGnetCutsOffAPeerFarAheadOfItsAnswers(t *testing.T) {
	// One request in flight and frames of at most 512 bytes: a paused
	// connection may have 512 bytes waiting in gnet's buffer, which keeps
	// reading the socket whatever the engine does.
	b := newGnetBed(t, front.Channel{MaxInFlight: 1, Framing: codec.Framing{Max: 512}}, func(string) bool { return true })
	c := b.dial(t)
	// Ten requests in one write, so that they arrive together.
	var burst []byte
	m := codec.NewMessage(b.d)
	for stan := uint32(1); stan <= 10; stan++ {
		tx := front.Txn{Type: codec.TxBalance, PAN: "6299901100000013", Currency: 156, STAN: stan, Terminal: "T0000001", Time: time.Now()}
		if err := tx.Build(b.d, m); err != nil {
			t.Fatal(err)
		}
		var err error
		if burst, err = codec.AppendFrame(burst, &codec.Framing{}, nil, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WriteRaw(burst); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first request is held", func() bool { return b.h.held.Load() == 1 })
	b.h.open()
	if got := b.stans(t, c, 1); got[0] != "000001" {
		t.Fatalf("answered %v", got)
	}
	if !b.closed(c) {
		t.Fatal("the connection carried on")
	}
	waitUntil(t, "the close is counted as overrun", func() bool {
		return b.counter(t, "junction_front_connections_closed_total", "overrun") == 1
	})
}
