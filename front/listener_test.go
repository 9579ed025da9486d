package front_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
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

// echoHandler answers every request 00 and remembers who asked; Reject
// answers 91 for a request before sign-on, nothing for malformed ones.
type echoHandler struct {
	mu    sync.Mutex
	peers []front.Peer
}

func (h *echoHandler) Serve(_ context.Context, p *front.Peer, req, resp *codec.Message) bool {
	h.mu.Lock()
	h.peers = append(h.peers, *p)
	h.mu.Unlock()
	if resp.InitResponse(req) != nil {
		return false
	}
	resp.SetString(39, "00")
	return true
}

func (h *echoHandler) Reject(_ *front.Peer, req *codec.Message, cause error, resp *codec.Message) bool {
	if resp.InitResponse(req) != nil {
		return false
	}
	rc := "30"
	if cause == front.ErrSignOn {
		rc = "91"
	}
	resp.SetString(39, rc)
	return true
}

func (h *echoHandler) last() front.Peer {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peers[len(h.peers)-1]
}

// bed is a listener on a dev PKI, with its logs and metrics at hand.
type bed struct {
	dir  string
	addr string
	srv  *front.Server
	reg  *prometheus.Registry
	h    *echoHandler
	logs *syncBuffer
	d    *codec.Dialect
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newBed(t *testing.T, clients []string, ch front.Channel, tlsCfg func(dir string) *tls.Config) *bed {
	t.Helper()
	b := &bed{dir: t.TempDir(), reg: prometheus.NewRegistry(), h: &echoHandler{}, logs: &syncBuffer{}, d: codec.ISO87ASCII()}
	if _, err := pki.EnsureDev(b.dir, pki.DevOptions{Channels: clients, Hosts: []string{"localhost"}}); err != nil {
		t.Fatal(err)
	}
	b.srv = front.NewServer(front.Options{Handler: b.h, Registerer: b.reg,
		Logger: slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if tlsCfg != nil {
		ch.TLS = tlsCfg(b.dir)
	} else {
		cert, key := pki.ServerFiles(b.dir)
		cfg, err := front.ServerTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(b.dir)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ch.TLS = cfg
	}
	ch.Name, ch.Addr, ch.Dialect, ch.Institution = "pos", "127.0.0.1:0", b.d, "10000001"
	addr, err := b.srv.Listen(ch)
	if err != nil {
		t.Fatal(err)
	}
	b.addr = addr.String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.srv.Shutdown(ctx)
	})
	return b
}

func (b *bed) clientTLS(t *testing.T, name string) *tls.Config {
	t.Helper()
	cert, key := pki.ClientFiles(b.dir, name)
	cfg, err := front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(b.dir)}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// exchange dials with cfg, sends one balance inquiry and returns its
// answer, or the error of any step.
func (b *bed) exchange(cfg *tls.Config, stan uint32) (*codec.Message, *front.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := front.Dial(ctx, b.addr, cfg, front.ClientOptions{Dialect: b.d})
	if err != nil {
		return nil, nil, err
	}
	req, resp := codec.NewMessage(b.d), codec.NewMessage(b.d)
	tx := front.Txn{Type: codec.TxBalance, PAN: "6299901100000013", Currency: 156, STAN: stan, Terminal: "T0000001", Time: time.Now()}
	if err := tx.Build(b.d, req); err != nil {
		c.Close()
		return nil, nil, err
	}
	if err := c.Exchange(ctx, req, resp); err != nil {
		c.Close()
		return nil, nil, err
	}
	return resp, c, nil
}

func (b *bed) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue metric
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func TestRefusedClients(t *testing.T) {
	b := newBed(t, []string{"pos"}, front.Channel{}, nil)
	ca, err := pki.LoadAuthority(pki.CAFile(b.dir), b.dir+"/ca.key")
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := pki.NewAuthority("rogue", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	with := func(a *pki.Authority, now time.Time, validity time.Duration) *tls.Config {
		certPEM, keyPEM, err := a.Issue(pki.Request{CommonName: "pos", Client: true, Now: now, Validity: validity})
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg := b.clientTLS(t, "pos")
		cfg.Certificates = nil
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		return cfg
	}
	noCert := b.clientTLS(t, "pos")
	noCert.Certificates = nil
	old := func(v uint16) *tls.Config {
		cfg := b.clientTLS(t, "pos")
		cfg.MinVersion, cfg.MaxVersion = v, v
		cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
		return cfg
	}
	for name, cfg := range map[string]*tls.Config{
		"without a certificate":                    noCert,
		"with a certificate from another CA":       with(rogue, time.Now(), 0),
		"with an expired certificate":              with(ca, time.Now().AddDate(-3, 0, 0), 24*time.Hour),
		"speaking TLS 1.0":                         old(tls.VersionTLS10),
		"speaking TLS 1.1":                         old(tls.VersionTLS11),
		"with a certificate not yet valid (CA ok)": with(ca, time.Now().Add(48*time.Hour), 24*time.Hour),
	} {
		t.Run("a client "+name+" is refused", func(t *testing.T) {
			before := b.counter(t, "junction_front_handshake_failures_total")
			if _, _, err := b.exchange(cfg, 1); err == nil {
				t.Fatal("served")
			}
			eventually(t, "the refusal is counted", func() bool {
				return b.counter(t, "junction_front_handshake_failures_total") == before+1
			})
		})
	}
	t.Run("a valid client is served", func(t *testing.T) {
		if _, c, err := b.exchange(b.clientTLS(t, "pos"), 2); err != nil {
			t.Fatal(err)
		} else {
			c.Close()
		}
	})
}

func TestIdentityRules(t *testing.T) {
	b := newBed(t, []string{"pos-17", "kiosk-3", "bank"}, front.Channel{Identities: []front.IdentityRule{
		{CN: "pos-*", Institution: "20000001", Group: "retail"},
		{CN: "kiosk-3", Group: "self-service"},
	}}, nil)

	t.Run("the first matching rule says who the client speaks for", func(t *testing.T) {
		_, c, err := b.exchange(b.clientTLS(t, "pos-17"), 1)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if p := b.h.last(); p.Identity != "pos-17" || p.Institution != "20000001" || p.Group != "retail" {
			t.Fatalf("peer %+v", p)
		}
		_, c, err = b.exchange(b.clientTLS(t, "kiosk-3"), 2)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if p := b.h.last(); p.Institution != "10000001" || p.Group != "self-service" {
			t.Fatalf("peer %+v: want the channel's institution", p)
		}
	})

	t.Run("a certificate of the CA that no rule admits is refused with a logged reason", func(t *testing.T) {
		if _, _, err := b.exchange(b.clientTLS(t, "bank"), 3); err == nil {
			t.Fatal("served")
		}
		eventually(t, "the reason is logged", func() bool {
			return strings.Contains(b.logs.String(), `client certificate not allowed on this channel: CN \"bank\"`)
		})
	})
}

func TestShortConnectionsResumeTheirSessions(t *testing.T) {
	b := newBed(t, []string{"kiosk"}, front.Channel{Short: true}, nil)
	cfg := b.clientTLS(t, "kiosk") // one session cache for all the kiosk's connections
	resumed := 0
	for i := 1; i <= 5; i++ {
		resp, c, err := b.exchange(cfg, uint32(i))
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Get(39)) != "00" {
			t.Fatalf("rc %s", resp.Get(39))
		}
		if c.ConnectionState().DidResume {
			resumed++
		}
		// One request, one answer: the server closes.
		if err := c.Receive(codec.NewMessage(b.d)); err == nil {
			t.Fatal("a short connection stayed open")
		}
		c.Close()
	}
	if resumed < 4 {
		t.Fatalf("%d of 5 connections resumed; want all after the first", resumed)
	}
	eventually(t, "resumptions are counted", func() bool {
		return b.counter(t, "junction_front_handshakes_resumed_total") >= 4
	})
	if n := b.counter(t, "junction_front_connections_closed_total", "reason", "short"); n < 5 {
		eventually(t, "short closes are counted", func() bool {
			return b.counter(t, "junction_front_connections_closed_total", "reason", "short") == 5
		})
	}
}

func TestCertificateReload(t *testing.T) {
	var src *front.TLSSource
	b := newBed(t, []string{"pos"}, front.Channel{}, func(dir string) *tls.Config {
		cert, key := pki.ServerFiles(dir)
		var err error
		if src, err = front.NewTLSSource(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(dir)}, nil); err != nil {
			t.Fatal(err)
		}
		return src.Config()
	})
	serial := func(c *front.Client) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }
	_, first, err := b.exchange(b.clientTLS(t, "pos"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	oldSerial := serial(first)

	// A new server certificate from the same CA, written in place.
	ca, err := pki.LoadAuthority(pki.CAFile(b.dir), b.dir+"/ca.key")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(pki.Request{CommonName: "junction dev server", DNSNames: []string{"localhost"}, Server: true, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := pki.ServerFiles(b.dir)

	t.Run("a broken file is refused and the certificate in use stays", func(t *testing.T) {
		os.WriteFile(keyFile, []byte("not a key"), 0o600)
		if err := src.Reload(); err == nil {
			t.Fatal("reloaded a broken key")
		}
		_, c, err := b.exchange(b.clientTLS(t, "pos"), 2)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if serial(c) != oldSerial {
			t.Fatal("certificate changed")
		}
	})

	t.Run("watching picks up new files; new connections get them, open ones carry on", func(t *testing.T) {
		os.WriteFile(certFile, certPEM, 0o644)
		os.WriteFile(keyFile, keyPEM, 0o600)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go src.Watch(ctx, 20*time.Millisecond)
		eventually(t, "the watcher reloads", func() bool { return src.Reloads() == 1 })
		_, c, err := b.exchange(b.clientTLS(t, "pos"), 3)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		block, _ := pem.Decode(certPEM)
		want, _ := x509.ParseCertificate(block.Bytes)
		if serial(c) != want.SerialNumber.String() {
			t.Fatalf("new connection serial %s, want %s", serial(c), want.SerialNumber)
		}
		req, resp := codec.NewMessage(b.d), codec.NewMessage(b.d)
		must(t, front.Txn{Type: codec.TxBalance, PAN: "6299901100000013", Currency: 156, STAN: 4, Terminal: "T0000001", Time: time.Now()}.Build(b.d, req))
		ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel2()
		if err := first.Exchange(ctx2, req, resp); err != nil {
			t.Fatalf("a connection opened before the reload broke: %v", err)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestConnectionsPerIdentity(t *testing.T) {
	b := newBed(t, []string{"pos", "kiosk"}, front.Channel{MaxConnsPerIdentity: 2}, nil)
	var open []*front.Client
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := 1; i <= 2; i++ {
		_, c, err := b.exchange(b.clientTLS(t, "pos"), uint32(i))
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	if _, _, err := b.exchange(b.clientTLS(t, "pos"), 3); err == nil {
		t.Fatal("a third connection of one identity was served")
	}
	eventually(t, "the refusal is counted", func() bool {
		return b.counter(t, "junction_front_connections_refused_total", "reason", "identity_limit") == 1
	})
	_, c, err := b.exchange(b.clientTLS(t, "kiosk"), 4)
	if err != nil {
		t.Fatalf("another identity was refused: %v", err)
	}
	c.Close()
	open[0].Close()
	eventually(t, "a freed place is taken", func() bool {
		_, c, err := b.exchange(b.clientTLS(t, "pos"), 5)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func TestSlowFramesAreCutOff(t *testing.T) {
	b := newBed(t, []string{"pos"}, front.Channel{FrameTimeout: 200 * time.Millisecond}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := front.Dial(ctx, b.addr, b.clientTLS(t, "pos"), front.ClientOptions{Dialect: b.d})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("a client idle longer than the frame timeout is not cut off", func(t *testing.T) {
		time.Sleep(400 * time.Millisecond) // idle, between frames: the idle timeout applies
		req, resp := codec.NewMessage(b.d), codec.NewMessage(b.d)
		must(t, front.Txn{Type: codec.TxBalance, PAN: "6299901100000013", Currency: 156, STAN: 1, Terminal: "T0000001", Time: time.Now()}.Build(b.d, req))
		if err := c.Exchange(ctx, req, resp); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a frame that drips in slower than the frame timeout is cut off", func(t *testing.T) {
		must(t, c.WriteRaw([]byte{0x00, 0x40, '0', '2'})) // announces 64 bytes, sends 2
		start := time.Now()
		if err := c.Receive(codec.NewMessage(b.d)); err == nil {
			t.Fatal("got an answer")
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Fatalf("cut off after %v", waited)
		}
		eventually(t, "the close is counted as slow_frame", func() bool {
			return b.counter(t, "junction_front_connections_closed_total", "reason", "slow_frame") == 1
		})
	})
}

func TestSignOnRequired(t *testing.T) {
	b := newBed(t, []string{"pos"}, front.Channel{SignOn: true}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := front.Dial(ctx, b.addr, b.clientTLS(t, "pos"), front.ClientOptions{Dialect: b.d})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	purchase := func(stan uint32) string {
		req, resp := codec.NewMessage(b.d), codec.NewMessage(b.d)
		must(t, front.Txn{Type: codec.TxBalance, PAN: "6299901100000013", Currency: 156, STAN: stan, Terminal: "T0000001", Time: time.Now()}.Build(b.d, req))
		must(t, c.Exchange(ctx, req, resp))
		return string(resp.Get(39))
	}
	network := func(code string) string {
		req, resp := codec.NewMessage(b.d), codec.NewMessage(b.d)
		must(t, req.SetMTI([4]byte{'0', '8', '0', '0'}))
		must(t, req.SetString(7, "1123100000"))
		must(t, req.SetString(11, "000009"))
		must(t, req.SetString(70, code))
		must(t, c.Exchange(ctx, req, resp))
		return string(resp.Get(39))
	}
	if rc := purchase(1); rc != "91" {
		t.Fatalf("before sign-on: rc %s, want 91", rc)
	}
	if rc := network("001"); rc != "00" {
		t.Fatalf("sign-on: rc %s", rc)
	}
	if rc := purchase(2); rc != "00" {
		t.Fatalf("after sign-on: rc %s", rc)
	}
	if rc := network("002"); rc != "00" {
		t.Fatalf("sign-off: rc %s", rc)
	}
	if rc := purchase(3); rc != "91" {
		t.Fatalf("after sign-off: rc %s, want 91", rc)
	}
	if n := b.counter(t, "junction_front_requests_refused_total", "reason", "not_signed_on"); n != 2 {
		t.Fatalf("%v refusals counted", n)
	}
}

// TestManyIdleConnections holds 5 000 idle mutual-TLS connections (500
// under the race detector, whose handshakes are ten times slower) and
// reports the memory they cost, both ends together since client and server
// share this process.
func TestManyIdleConnections(t *testing.T) {
	n := 5000
	if raceEnabled || testing.Short() {
		n = 500
	}
	b := newBed(t, []string{"pos"}, front.Channel{MaxConnsPerIdentity: n + 1}, nil)
	cfg := b.clientTLS(t, "pos")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := tls.Dial("tcp", b.addr, cfg)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, fmt.Sprintf("%d connections are open", n), func() bool {
		return b.counter(t, "junction_front_connections_open", "channel", "pos") == float64(n)
	})
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perConn := (float64(after.HeapInuse) + float64(after.StackInuse) - float64(before.HeapInuse) - float64(before.StackInuse)) / float64(n)
	t.Logf("%d idle mTLS connections: %.1f KiB per connection, client and server ends together (heap + stacks)", n, perConn/1024)

	// They are alive: one of them still answers.
	_, c, err := b.exchange(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A cutover request (0800, 70=201) runs the channel's Cutover and is answered by its outcome;
// a channel without one refuses it, and an advice of one is only acknowledged.
func TestCutoverRequest(t *testing.T) {
	var calls atomic.Int32
	var fail atomic.Bool
	cutover := func(ctx context.Context, p *front.Peer) error {
		calls.Add(1)
		if p.Identity != "bank" {
			return fmt.Errorf("identity %q", p.Identity)
		}
		if fail.Load() {
			return errors.New("head ledger unavailable")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	send := func(b *bed, mti, code string) string {
		t.Helper()
		c, err := front.Dial(ctx, b.addr, b.clientTLS(t, "bank"), front.ClientOptions{Dialect: b.d})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req, resp := codec.NewMessage(b.d), codec.NewMessage(b.d)
		must(t, req.SetMTI([4]byte([]byte(mti))))
		must(t, req.SetString(7, "1123100000"))
		must(t, req.SetString(11, "000010"))
		must(t, req.SetString(70, code))
		must(t, c.Exchange(ctx, req, resp))
		return string(resp.Get(39))
	}

	b := newBed(t, []string{"bank"}, front.Channel{Cutover: cutover}, nil)
	if rc := send(b, "0800", "201"); rc != "00" || calls.Load() != 1 {
		t.Fatalf("cutover: rc %s after %d calls", rc, calls.Load())
	}
	fail.Store(true)
	if rc := send(b, "0800", "201"); rc != "96" || calls.Load() != 2 {
		t.Fatalf("failing cutover: rc %s after %d calls", rc, calls.Load())
	}
	if rc := send(b, "0820", "201"); rc != "00" || calls.Load() != 2 {
		t.Fatalf("cutover advice: rc %s after %d calls", rc, calls.Load())
	}

	without := newBed(t, []string{"bank"}, front.Channel{}, nil)
	if rc := send(without, "0800", "201"); rc != "12" {
		t.Fatalf("cutover on a channel without one: rc %s", rc)
	}
}

// A cutover that takes a while (the head ledger waits for a shard) does not stop the connection
// it came on: an echo sent after it is answered while it runs, and its own answer follows.
func TestCutoverDoesNotHoldTheReader(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	cutover := func(ctx context.Context, p *front.Peer) error {
		started <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b := newBed(t, []string{"bank"}, front.Channel{Cutover: cutover}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := front.Dial(ctx, b.addr, b.clientTLS(t, "bank"), front.ClientOptions{Dialect: b.d})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	network := func(stan, code string) *codec.Message {
		m := codec.NewMessage(b.d)
		must(t, m.SetMTI([4]byte{'0', '8', '0', '0'}))
		must(t, m.SetString(7, "1123100000"))
		must(t, m.SetString(11, stan))
		must(t, m.SetString(70, code))
		return m
	}
	must(t, c.Send(network("000030", "201")))
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the cutover never ran")
	}
	echoCtx, echoCancel := context.WithTimeout(ctx, 5*time.Second)
	defer echoCancel()
	resp := codec.NewMessage(b.d)
	if err := c.Exchange(echoCtx, network("000031", "301"), resp); err != nil || string(resp.Get(39)) != "00" {
		t.Fatalf("echo behind a cutover in progress: %v, rc %q", err, resp.Get(39))
	}
	close(release)
	must(t, c.Receive(resp))
	if string(resp.Get(11)) != "000030" || string(resp.Get(39)) != "00" {
		t.Fatalf("cutover answered STAN %q rc %q", resp.Get(11), resp.Get(39))
	}
}
