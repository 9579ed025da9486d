package front_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/pki"
	"github.com/prometheus/client_golang/prometheus"
)

// hostHandler is the far end of a link: it answers every request approved
// (00, or 000 in 1993), remembers the STANs it saw, holds requests whose
// STAN is hold until the gate opens, and delays the others when delay is
// set.
type hostHandler struct {
	rc    string
	hold  string
	delay func(stan []byte) time.Duration
	gate  chan struct{}
	once  sync.Once
	held  atomic.Int32
	mu    sync.Mutex
	stans map[string]int
}

func newHostHandler(rc string) *hostHandler {
	return &hostHandler{rc: rc, gate: make(chan struct{}), stans: map[string]int{}}
}

func (h *hostHandler) open() { h.once.Do(func() { close(h.gate) }) }

func (h *hostHandler) Serve(ctx context.Context, p *front.Peer, req, resp *codec.Message) bool {
	stan := req.Get(11)
	h.mu.Lock()
	h.stans[string(stan)]++
	h.mu.Unlock()
	switch {
	case h.hold != "" && string(stan) == h.hold:
		h.held.Add(1)
		<-h.gate
		h.held.Add(-1)
	case h.delay != nil:
		time.Sleep(h.delay(stan))
	}
	if resp.InitResponse(req) != nil {
		return false
	}
	resp.SetString(39, h.rc)
	return true
}

// Reject answers a request before sign-on with 91, like the switch.
func (h *hostHandler) Reject(p *front.Peer, req *codec.Message, cause error, resp *codec.Message) bool {
	if !errors.Is(cause, front.ErrSignOn) || resp.InitResponse(req) != nil {
		return false
	}
	resp.SetString(39, "91")
	return true
}

func (h *hostHandler) seen() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.stans))
	for k, v := range h.stans {
		out[k] = v
	}
	return out
}

// host is a front.Server standing in for a destination, with the PKI both
// sides use: the server certificate, and the "switch" client certificate
// the link presents.
type host struct {
	pki  string
	srv  *front.Server
	addr string
	reg  *prometheus.Registry
	h    *hostHandler
	ch   front.Channel
}

func newHost(t testing.TB, ch front.Channel, h *hostHandler) *host {
	t.Helper()
	dir := t.TempDir()
	if _, err := pki.EnsureDev(dir, pki.DevOptions{Channels: []string{"switch"}, Hosts: []string{"localhost"}}); err != nil {
		t.Fatal(err)
	}
	cert, key := pki.ServerFiles(dir)
	srvTLS, err := front.ServerTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(dir)}, []string{"switch"})
	if err != nil {
		t.Fatal(err)
	}
	ch.Name, ch.TLS = "switch", srvTLS
	if ch.Addr == "" {
		ch.Addr = "127.0.0.1:0"
	}
	if ch.Dialect == nil {
		ch.Dialect = codec.ISO87Binary()
	}
	hs := &host{pki: dir, h: h, ch: ch}
	hs.start(t)
	t.Cleanup(func() { h.open(); hs.stop(t) })
	return hs
}

// start serves the channel (again), on the address it had.
func (hs *host) start(t testing.TB) {
	t.Helper()
	hs.reg = prometheus.NewRegistry()
	hs.srv = front.NewServer(front.Options{Handler: hs.h, Logger: silentLog(), Registerer: hs.reg})
	addr, err := hs.srv.Listen(hs.ch)
	if err != nil {
		t.Fatal(err)
	}
	hs.addr = addr.String()
	hs.ch.Addr = hs.addr
}

func (hs *host) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.srv.Shutdown(ctx)
}

func (hs *host) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	cert, key := pki.ClientFiles(hs.pki, "switch")
	c, err := front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(hs.pki)}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func silentLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newLink opens a link to hs from the switch's dialect (1987 ASCII), with
// a copy map unless o has one, and waits until it is up.
func newLink(t testing.TB, hs *host, o front.LinkOptions) (*front.Link, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if o.Map == nil {
		m, err := codec.CopyMap(codec.ISO87ASCII(), hs.ch.Dialect)
		if err != nil {
			t.Fatal(err)
		}
		o.Map = m
	}
	if o.Name == "" {
		o.Name = "host-1"
	}
	o.Addr, o.TLS, o.Framing = hs.addr, hs.clientTLS(t), hs.ch.Framing
	if o.Logger == nil {
		o.Logger = silentLog()
	}
	o.Registerer = reg
	l, err := front.NewLink(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for l.Health() != front.Up {
		if time.Now().After(deadline) {
			t.Fatal("the link did not come up")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return l, reg
}

var switchDialect = codec.ISO87ASCII()

const linkPAN = "6299901100000013"

// linkPurchase is a 0200 in the switch's dialect.
func linkPurchase(t testing.TB, stan uint32, terminal string, amount int64) *codec.Message {
	t.Helper()
	m := codec.NewMessage(switchDialect)
	tx := front.Txn{Type: codec.TxPurchase, PAN: linkPAN, Amount: amount, Currency: 156, STAN: stan,
		Terminal: terminal, Merchant: "M1", Time: time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)}
	if err := tx.Build(switchDialect, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// metric reads a link or front series: a counter's or gauge's value, or a
// histogram's count, of the series carrying every given label pair.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func TestLinkMatchesPipelinedAnswersOutOfOrder(t *testing.T) {
	h := newHostHandler("00")
	h.delay = func(stan []byte) time.Duration {
		f := fnv.New32a()
		f.Write(stan)
		return time.Duration(f.Sum32()%5) * time.Millisecond
	}
	hs := newHost(t, front.Channel{}, h)
	// Every caller uses the same terminal and STANs 1–20: only the link's
	// own STAN keeps their keys apart.
	restamp, err := codec.NewMap(codec.MapSpec{
		Name:     "restamp",
		Request:  map[int][]codec.Rule{11: {{Derive: "stan"}, {}}},
		Response: map[int][]codec.Rule{11: {{Restore: true}}},
	}, switchDialect, hs.ch.Dialect)
	if err != nil {
		t.Fatal(err)
	}
	l, reg := newLink(t, hs, front.LinkOptions{Map: restamp})

	const callers, each = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, callers*each)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 1; k <= each; k++ {
				amount := int64(g*1000 + k)
				req, resp := linkPurchase(t, uint32(k), "T0000001", amount), codec.NewMessage(switchDialect)
				if err := l.Exchange(context.Background(), req, resp); err != nil {
					errs <- err
					continue
				}
				mti, _ := resp.MTI()
				if string(mti[:]) != "0210" || string(resp.Get(39)) != "00" ||
					string(resp.Get(11)) != fmt.Sprintf("%06d", k) || string(resp.Get(4)) != fmt.Sprintf("%012d", amount) {
					errs <- fmt.Errorf("caller %d request %d got MTI %s rc %s STAN %s amount %s", g, k, mti[:], resp.Get(39), resp.Get(11), resp.Get(4))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if seen := h.seen(); len(seen) != callers*each {
		t.Errorf("the host saw %d distinct STANs for %d requests: the link did not re-stamp", len(seen), callers*each)
	}
	if ok := metric(t, reg, "junction_link_requests_total", "result", "ok"); ok != callers*each {
		t.Errorf("requests_total{ok} = %v", ok)
	}
	if late := metric(t, reg, "junction_link_late_replies_total"); late != 0 {
		t.Errorf("%v late replies", late)
	}
	if l.Outstanding() != 0 {
		t.Errorf("%d requests still outstanding", l.Outstanding())
	}
}

func TestLinkRefusesADuplicateKeyInFlight(t *testing.T) {
	h := newHostHandler("00")
	h.hold = "000005"
	hs := newHost(t, front.Channel{}, h)
	l, reg := newLink(t, hs, front.LinkOptions{})

	first := make(chan error, 1)
	resp := codec.NewMessage(switchDialect)
	go func() { first <- l.Exchange(context.Background(), linkPurchase(t, 5, "T0000001", 100), resp) }()
	eventually(t, "the host holds the first request", func() bool { return h.held.Load() == 1 })

	err := l.Exchange(context.Background(), linkPurchase(t, 5, "T0000001", 200), codec.NewMessage(switchDialect))
	if !errors.Is(err, front.ErrDuplicateKey) {
		t.Fatalf("second request with the same key: %v", err)
	}
	if n := metric(t, reg, "junction_link_requests_total", "result", "duplicate"); n != 1 {
		t.Errorf("requests_total{duplicate} = %v", n)
	}
	h.open()
	if err := <-first; err != nil {
		t.Fatalf("the first request lost its answer: %v", err)
	}
	if string(resp.Get(39)) != "00" || string(resp.Get(4)) != "000000000100" {
		t.Fatalf("the first request got rc %s amount %s", resp.Get(39), resp.Get(4))
	}
	if n := h.seen()["000005"]; n != 1 {
		t.Fatalf("the host saw STAN 5 %d times", n)
	}
}

func TestLinkCountsALateReplyAndDeliversItToNobody(t *testing.T) {
	h := newHostHandler("00")
	h.hold = "000007"
	hs := newHost(t, front.Channel{}, h)
	var logs syncBuffer
	l, reg := newLink(t, hs, front.LinkOptions{Timeout: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	err := l.Exchange(context.Background(), linkPurchase(t, 7, "T0000001", 100), codec.NewMessage(switchDialect))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request the host holds: %v", err)
	}
	if n := metric(t, reg, "junction_link_requests_total", "result", "timeout"); n != 1 {
		t.Errorf("requests_total{timeout} = %v", n)
	}
	h.open()
	eventually(t, "the late reply is counted", func() bool {
		return metric(t, reg, "junction_link_late_replies_total") == 1
	})

	resp := codec.NewMessage(switchDialect)
	if err := l.Exchange(context.Background(), linkPurchase(t, 8, "T0000001", 300), resp); err != nil {
		t.Fatal(err)
	}
	if string(resp.Get(11)) != "000008" || string(resp.Get(4)) != "000000000300" {
		t.Fatalf("the next request got STAN %s amount %s", resp.Get(11), resp.Get(4))
	}
	out := logs.String()
	if !strings.Contains(out, "629990******0013") || strings.Contains(out, linkPAN) {
		t.Fatalf("the late reply is not logged masked:\n%s", out)
	}
}

func TestLinkLosesItsHostAndFindsItAgain(t *testing.T) {
	h := newHostHandler("00")
	h.hold = "000009"
	hs := newHost(t, front.Channel{}, h)
	l, reg := newLink(t, hs, front.LinkOptions{BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})

	inFlight := make(chan error, 1)
	go func() {
		inFlight <- l.Exchange(context.Background(), linkPurchase(t, 9, "T0000001", 100), codec.NewMessage(switchDialect))
	}()
	eventually(t, "the host holds the request", func() bool { return h.held.Load() == 1 })

	// A drain that has already run out of time closes every connection at
	// once, with the request still in the handler.
	stopped := make(chan struct{})
	go func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		hs.srv.Shutdown(ctx)
		close(stopped)
	}()

	t.Run("requests in flight fail as unavailable", func(t *testing.T) {
		if err := <-inFlight; !errors.Is(err, front.ErrUnavailable) {
			t.Fatalf("in-flight request: %v", err)
		}
	})
	t.Run("the link goes down and fails fast", func(t *testing.T) {
		eventually(t, "the link is down", func() bool { return l.Health() == front.Down })
		if n := metric(t, reg, "junction_link_health"); n != 0 {
			t.Errorf("health gauge %v", n)
		}
		err := l.Exchange(context.Background(), linkPurchase(t, 10, "T0000001", 100), codec.NewMessage(switchDialect))
		if !errors.Is(err, front.ErrUnavailable) {
			t.Fatalf("a request while down: %v", err)
		}
	})
	h.open()
	<-stopped

	t.Run("it reconnects by itself when the host is back", func(t *testing.T) {
		h.hold = ""
		hs.start(t)
		eventually(t, "the link is up again", func() bool { return l.Health() == front.Up })
		resp := codec.NewMessage(switchDialect)
		if err := l.Exchange(context.Background(), linkPurchase(t, 11, "T0000001", 100), resp); err != nil {
			t.Fatal(err)
		}
		if string(resp.Get(39)) != "00" {
			t.Fatalf("rc %s", resp.Get(39))
		}
		if n := metric(t, reg, "junction_link_reconnects_total"); n < 1 {
			t.Errorf("reconnects_total = %v", n)
		}
		// The gauge follows the connections as they come back one by one: up once all are.
		eventually(t, "the health gauge says up", func() bool { return metric(t, reg, "junction_link_health") == 2 })
	})
}

func TestLinkSignsOnBeforeCarryingTraffic(t *testing.T) {
	hs := newHost(t, front.Channel{SignOn: true}, newHostHandler("00"))

	t.Run("a link that signs on is served", func(t *testing.T) {
		l, _ := newLink(t, hs, front.LinkOptions{SignOn: true, Conns: 2})
		resp := codec.NewMessage(switchDialect)
		if err := l.Exchange(context.Background(), linkPurchase(t, 1, "T0000001", 100), resp); err != nil {
			t.Fatal(err)
		}
		if string(resp.Get(39)) != "00" {
			t.Fatalf("rc %s", resp.Get(39))
		}
		if n := metric(t, hs.reg, "junction_front_sign_ons_total"); n != 2 {
			t.Fatalf("the host counted %v sign-ons for 2 connections", n)
		}
	})
	t.Run("a link that does not is refused", func(t *testing.T) {
		l, _ := newLink(t, hs, front.LinkOptions{Name: "host-2"})
		resp := codec.NewMessage(switchDialect)
		if err := l.Exchange(context.Background(), linkPurchase(t, 2, "T0000001", 100), resp); err != nil {
			t.Fatal(err)
		}
		if string(resp.Get(39)) != "91" {
			t.Fatalf("rc %s before sign-on", resp.Get(39))
		}
	})
}

func TestLinkSendsHeartbeatsWhenIdle(t *testing.T) {
	hs := newHost(t, front.Channel{}, newHostHandler("00"))
	l, reg := newLink(t, hs, front.LinkOptions{Conns: 1, Echo: 20 * time.Millisecond})
	eventually(t, "three heartbeats are answered", func() bool {
		return metric(t, reg, "junction_link_heartbeat_seconds") >= 3
	})
	if n := metric(t, hs.reg, "junction_front_frames_total"); n < 3 {
		t.Errorf("the host read %v frames", n)
	}
	if l.Health() != front.Up {
		t.Errorf("health %v", l.Health())
	}
}

func TestLinkDropsAConnectionThatMissesTwoHeartbeats(t *testing.T) {
	hs := newHost(t, front.Channel{}, newHostHandler("00"))
	hs.stop(t)
	// A host that completes the handshake and then never answers.
	cert, key := pki.ServerFiles(hs.pki)
	srvTLS, err := front.ServerTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(hs.pki)}, []string{"switch"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	hs.addr = ln.Addr().String()

	reg := prometheus.NewRegistry()
	m, _ := codec.CopyMap(switchDialect, hs.ch.Dialect)
	l, err := front.NewLink(front.LinkOptions{Name: "silent", Addr: hs.addr, TLS: hs.clientTLS(t), Map: m,
		Conns: 1, Echo: 20 * time.Millisecond, Timeout: 50 * time.Millisecond,
		BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond, Logger: silentLog(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	eventually(t, "one missed heartbeat degrades the link", func() bool { return l.Health() == front.Degraded })
	eventually(t, "two close the connection and the link reconnects", func() bool {
		return metric(t, reg, "junction_link_reconnects_total") >= 1 && accepted.Load() >= 2
	})
}

func TestLinkCloseAnswersWhatIsInFlight(t *testing.T) {
	h := newHostHandler("00")
	h.hold = "000003"
	hs := newHost(t, front.Channel{}, h)
	l, _ := newLink(t, hs, front.LinkOptions{})

	first := make(chan error, 1)
	go func() {
		first <- l.Exchange(context.Background(), linkPurchase(t, 3, "T0000001", 100), codec.NewMessage(switchDialect))
	}()
	eventually(t, "the host holds the request", func() bool { return h.held.Load() == 1 })
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	eventually(t, "the closing link refuses new requests", func() bool {
		err := l.Exchange(context.Background(), linkPurchase(t, 4, "T0000001", 100), codec.NewMessage(switchDialect))
		return errors.Is(err, front.ErrUnavailable)
	})
	h.open()
	if err := <-first; err != nil {
		t.Fatalf("the request in flight during Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if l.Health() != front.Down {
		t.Fatalf("health %v after Close", l.Health())
	}
}

func TestLinkToA1993HostRestampsAndRestores(t *testing.T) {
	iso93 := codec.ISO93ASCII()
	h := newHostHandler("000")
	hs := newHost(t, front.Channel{Dialect: iso93, Framing: codec.Framing{Length: codec.Len4ASCII}, SignOn: true}, h)
	maps, err := codec.BuiltinMaps(map[string]*codec.Dialect{"iso87ascii": switchDialect, "iso93ascii": iso93, "iso87binary": codec.ISO87Binary()})
	if err != nil {
		t.Fatal(err)
	}
	var out *codec.Map
	for _, m := range maps {
		if m.Name() == "iso87-to-iso93" {
			out = m
		}
	}
	l, _ := newLink(t, hs, front.LinkOptions{Map: out, SignOn: true, Conns: 1})

	resp := codec.NewMessage(switchDialect)
	if err := l.Exchange(context.Background(), linkPurchase(t, 424242, "T0000001", 100), resp); err != nil {
		t.Fatal(err)
	}
	mti, _ := resp.MTI()
	if string(mti[:]) != "0210" || string(resp.Get(39)) != "00" || string(resp.Get(11)) != "424242" {
		t.Fatalf("MTI %s rc %s STAN %s", mti[:], resp.Get(39), resp.Get(11))
	}
	seen := h.seen()
	if seen["424242"] != 0 || len(seen) != 1 {
		t.Fatalf("the host saw STANs %v: want only the link's own", seen)
	}
}

// A wrong configuration is refused before any connection is tried.
func TestNewLinkRefusesABadConfiguration(t *testing.T) {
	m, _ := codec.CopyMap(switchDialect, codec.ISO87Binary())
	for name, o := range map[string]front.LinkOptions{
		"no map":           {Name: "x", Addr: "127.0.0.1:1"},
		"no address":       {Name: "x", Map: m},
		"a wrong header":   {Name: "x", Addr: "127.0.0.1:1", Map: m, Header: []byte{1, 2}},
		"an unknown key":   {Name: "x", Addr: "127.0.0.1:1", Map: m, Match: []int{11, 129}},
		"a broken frame":   {Name: "x", Addr: "127.0.0.1:1", Map: m, Framing: codec.Framing{Header: 99}},
		"a TPDU of 3":      {Name: "x", Addr: "127.0.0.1:1", Map: m, Framing: codec.Framing{Header: 3, Mirror: codec.MirrorTPDU}},
		"a bad length":     {Name: "x", Addr: "127.0.0.1:1", Map: m, Framing: codec.Framing{Length: 9}},
		"field 0 in a key": {Name: "x", Addr: "127.0.0.1:1", Map: m, Match: []int{0}},
	} {
		if l, err := front.NewLink(o); err == nil {
			l.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkLinkExchange measures pipelined exchanges over one link of two
// mutual-TLS connections to a front.Server answering at once: the link's
// cost and allocations per request, both ends in one process.
func BenchmarkLinkExchange(b *testing.B) {
	hs := newHost(b, front.Channel{MaxInFlight: 256}, newHostHandler("00"))
	restamp, err := codec.NewMap(codec.MapSpec{
		Name:     "restamp",
		Request:  map[int][]codec.Rule{11: {{Derive: "stan"}, {}}},
		Response: map[int][]codec.Rule{11: {{Restore: true}}},
	}, switchDialect, hs.ch.Dialect)
	if err != nil {
		b.Fatal(err)
	}
	l, _ := newLink(b, hs, front.LinkOptions{Map: restamp})
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		req, resp := linkPurchase(b, 1, "T0000001", 100), codec.NewMessage(switchDialect)
		for pb.Next() {
			if err := l.Exchange(context.Background(), req, resp); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
