package front_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/pki"
	"github.com/prometheus/client_golang/prometheus"
)

// gateHandler answers every request 00, but holds each one until the gate
// opens, and counts how many it holds. STAN 999999 makes it panic.
type gateHandler struct {
	held atomic.Int32
	gate chan struct{}
}

func (h *gateHandler) Serve(ctx context.Context, p *front.Peer, req, resp *codec.Message) bool {
	if string(req.Get(11)) == "999999" {
		panic("test panic")
	}
	h.held.Add(1)
	<-h.gate
	h.held.Add(-1)
	if err := resp.InitResponse(req); err != nil {
		return false
	}
	resp.SetString(39, "00")
	return true
}

func (h *gateHandler) Reject(p *front.Peer, req *codec.Message, cause error, resp *codec.Message) bool {
	return false
}

type fixture struct {
	srv    *front.Server
	addr   string
	client *tls.Config
	d      *codec.Dialect
	reg    *prometheus.Registry
	h      *gateHandler
	opened sync.Once
}

func newFixture(t *testing.T, ch front.Channel) *fixture {
	t.Helper()
	dir := t.TempDir()
	if _, err := pki.EnsureDev(dir, pki.DevOptions{Channels: []string{"pos"}, Hosts: []string{"localhost"}}); err != nil {
		t.Fatal(err)
	}
	cert, key := pki.ServerFiles(dir)
	srvTLS, err := front.ServerTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(dir)}, []string{"pos"})
	if err != nil {
		t.Fatal(err)
	}
	ccert, ckey := pki.ClientFiles(dir, "pos")
	cliTLS, err := front.ClientTLS(front.TLSFiles{Cert: ccert, Key: ckey, CA: pki.CAFile(dir)}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{d: codec.ISO87ASCII(), client: cliTLS, reg: prometheus.NewRegistry(), h: &gateHandler{gate: make(chan struct{})}}
	f.srv = front.NewServer(front.Options{Handler: f.h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: f.reg})
	ch.Name, ch.Addr, ch.TLS, ch.Dialect = "pos", "127.0.0.1:0", srvTLS, f.d
	addr, err := f.srv.Listen(ch)
	if err != nil {
		t.Fatal(err)
	}
	f.addr = addr.String()
	t.Cleanup(func() {
		f.open()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.srv.Shutdown(ctx)
	})
	return f
}

// open lets every held and future request through.
func (f *fixture) open() { f.opened.Do(func() { close(f.h.gate) }) }

func (f *fixture) dial(t *testing.T) *front.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := front.Dial(ctx, f.addr, f.client, front.ClientOptions{Dialect: f.d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (f *fixture) send(t *testing.T, c *front.Client, stan uint32) {
	t.Helper()
	m := codec.NewMessage(f.d)
	tx := front.Txn{Type: codec.TxBalance, PAN: "6299901100000013", Currency: 156, STAN: stan, Terminal: "T0000001", Time: time.Now()}
	if err := tx.Build(f.d, m); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(m); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestDrainAnswersWorkInFlight(t *testing.T) {
	f := newFixture(t, front.Channel{})
	c := f.dial(t)
	for stan := uint32(1); stan <= 5; stan++ {
		f.send(t, c, stan)
	}
	eventually(t, "5 requests are held", func() bool { return f.h.held.Load() == 5 })

	done := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- f.srv.Shutdown(ctx)
	}()
	// New connections are refused once the drain has begun.
	eventually(t, "the listener is closed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		nc, err := front.Dial(ctx, f.addr, f.client, front.ClientOptions{Dialect: f.d})
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	f.open()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	resp := codec.NewMessage(f.d)
	for i := 0; i < 5; i++ {
		if err := c.Receive(resp); err != nil {
			t.Fatalf("answer %d lost in the drain: %v", i+1, err)
		}
	}
	if err := c.Receive(resp); err == nil {
		t.Fatal("connection still open after the drain")
	}
}

func TestInFlightIsBoundedPerConnection(t *testing.T) {
	f := newFixture(t, front.Channel{MaxInFlight: 2})
	c := f.dial(t)
	for stan := uint32(1); stan <= 6; stan++ {
		f.send(t, c, stan)
	}
	eventually(t, "2 requests are held", func() bool { return f.h.held.Load() == 2 })
	// The reader waits for a slot: no third request reaches the handler.
	for i := 0; i < 50; i++ {
		if n := f.h.held.Load(); n > 2 {
			t.Fatalf("%d requests in flight, limit 2", n)
		}
		time.Sleep(time.Millisecond)
	}
	f.open()
	resp := codec.NewMessage(f.d)
	for i := 0; i < 6; i++ {
		if err := c.Receive(resp); err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
	}
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	f := newFixture(t, front.Channel{IdleTimeout: 50 * time.Millisecond})
	c := f.dial(t)
	if err := c.Receive(codec.NewMessage(f.d)); err == nil {
		t.Fatal("an idle connection got a message")
	}
	eventually(t, "the close is counted as idle", func() bool {
		return value(t, f.reg, "junction_front_connections_closed_total", "idle") == 1
	})
}

func TestConnectionLimit(t *testing.T) {
	f := newFixture(t, front.Channel{MaxConns: 1})
	f.open()
	first := f.dial(t)
	f.send(t, first, 1)
	if err := first.Receive(codec.NewMessage(f.d)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	second, err := front.Dial(ctx, f.addr, f.client, front.ClientOptions{Dialect: f.d})
	if err == nil {
		defer second.Close()
		f.send(t, second, 2)
		if err := second.Receive(codec.NewMessage(f.d)); err == nil {
			t.Fatal("a connection above the limit was served")
		}
	}
	eventually(t, "the refusal is counted", func() bool {
		return value(t, f.reg, "junction_front_connections_refused_total", "limit") == 1
	})
}

func TestKeepAlivesAndHandlerPanics(t *testing.T) {
	f := newFixture(t, front.Channel{})
	f.open()
	c := f.dial(t)
	if err := c.WriteRaw([]byte{0, 0, 0, 0}); err != nil { // two keep-alive frames
		t.Fatal(err)
	}
	f.send(t, c, 999999) // panics in the handler: no answer
	f.send(t, c, 7)
	resp := codec.NewMessage(f.d)
	if err := c.Receive(resp); err != nil {
		t.Fatal(err)
	}
	if string(resp.Get(11)) != "000007" {
		t.Fatalf("answered STAN %s", resp.Get(11))
	}
}

// value reads the front counter name on channel pos whose reason label is
// reason (0 when absent).
func value(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
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
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
