package allinone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/remote"
	"github.com/junction-switch/junction/pki"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// LedgerNode is one regional ledger shard running as its own process
// (`junction ledger --region R`): the same shard and the same ISO host
// (ledger.Host) that `junction up` calls in-process, served to the
// switch's links over one mutual-TLS listener. Only the switch's client
// certificate is admitted, and only after it signs on.
type LedgerNode struct {
	cfg      Config
	region   string
	log      *slog.Logger
	registry *prometheus.Registry
	shard    *ledger.Shard
	front    *front.Server
	tls      *front.TLSSource
	addr     net.Addr
	http     *http.Server
	httpAddr net.Addr
	journal  *http.Server // the head's journal service (ledger/remote), when remote.journal is set
	created  []string

	stopWatch context.CancelFunc
	ready     atomic.Bool
}

// ValidateLedger checks cfg for running region's shard as its own process:
// the whole configuration, and that the region exists and is remote.
func (c Config) ValidateLedger(region string) error {
	if err := c.Validate(); err != nil {
		return err
	}
	_, err := c.ledgerRegion(region)
	return err
}

func (c Config) ledgerRegion(region string) (Region, error) {
	var names []string
	for i, r := range c.Regions {
		if r.Name != region {
			names = append(names, r.Name)
			continue
		}
		if r.Remote == nil {
			return r, fmt.Errorf("regions[%d].remote: region %s has no remote settings: give it remote.listen to run it as its own process", i, region)
		}
		return r, nil
	}
	return Region{}, fmt.Errorf("region %q is not in regions (%v)", region, names)
}

// StartLedger brings one region's shard up as an ISO host: the dev PKI
// (created when missing), the badger shard under DataDir/ledger/<region>
// (its demo cards seeded when cfg.Demo) and the listener on the region's
// remote.listen, in the remote dialect and framing, sign-on required. On
// error everything started is stopped.
func StartLedger(cfg Config, region string, log *slog.Logger) (n *LedgerNode, err error) {
	if err := cfg.ValidateLedger(region); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	shardLog := log // the shard names its region itself
	log = log.With("region", region)
	r, _ := cfg.ledgerRegion(region)
	set, err := cfg.DialectSet()
	if err != nil {
		return nil, err
	}
	rw, errs := cfg.remoteWire(r.Remote, set, "remote")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	started := &LedgerNode{cfg: cfg, region: region, log: log, registry: prometheus.NewRegistry()}
	n = started
	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	defer func() {
		// A failed start stops what it started; n is already nil here
		// (return nil, err), so the node is reached through started.
		if err != nil {
			started.stop(context.Background())
			n = nil
		}
	}()
	n.created, err = pki.EnsureDev(cfg.PKIDir, pki.DevOptions{Channels: []string{SwitchIdentity}, Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		return nil, err
	}
	n.shard, err = ledger.Open(ledger.Options{
		Dir:        filepath.Join(cfg.DataDir, "ledger", region),
		Region:     region,
		Logger:     shardLog,
		Registerer: n.registry,
		MaxBatch:   cfg.Ledger.MaxBatch,
		Clock:      cfg.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("region %s: %w", region, err)
	}
	if cfg.Demo {
		routes, err := cfg.RoutingTable()
		if err != nil {
			return nil, err
		}
		if err := seedDemo(context.Background(), routes, map[string]*ledger.Shard{region: n.shard}, cfg.Regions); err != nil {
			return nil, err
		}
	}

	cert, key := pki.ServerFiles(cfg.PKIDir)
	if n.tls, err = front.NewTLSSource(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(cfg.PKIDir)}, log); err != nil {
		return nil, err
	}
	var watch context.Context
	watch, n.stopWatch = context.WithCancel(context.Background())
	go n.tls.Watch(watch, cfg.Limits.TLSReload)

	n.front = front.NewServer(front.Options{
		Handler: &ledgerHandler{host: ledger.NewHost(n.shard), log: log}, Logger: log, Registerer: n.registry,
	})
	n.addr, err = n.front.Listen(front.Channel{
		Name: SwitchIdentity, Addr: rw.listen, TLS: n.tls.Config(),
		Identities: []front.IdentityRule{{CN: SwitchIdentity}},
		SignOn:     true,
		Dialect:    rw.Dialect, Framing: rw.Framing,
		// The switch's links bound what they send; the listener admits as
		// much, so that a link's bound is the one that acts.
		MaxInFlight: rw.maxInFlight, MaxConns: cfg.Limits.MaxConns, MaxConnsPerIdentity: cfg.Limits.MaxConnsPerIdentity,
		HandshakeTimeout: cfg.Limits.HandshakeTimeout, FrameTimeout: cfg.Limits.FrameTimeout,
		// Heartbeats keep a quiet link open whatever its echo interval.
		IdleTimeout:  max(cfg.Limits.IdleTimeout, 3*rw.echo),
		WriteTimeout: cfg.Limits.WriteTimeout,
	})
	if err != nil {
		return nil, err
	}
	if r.Remote.Journal != "" {
		if err := n.serveJournal(r.Remote.Journal); err != nil {
			return nil, err
		}
	}
	n.ready.Store(true)
	log.Info("ledger shard up", "listen", n.addr.String(), "dialect", rw.Dialect.Name(), "journal", r.Remote.Journal)
	return n, nil
}

// ledgerHandler serves the switch's requests with the shard's ISO host.
type ledgerHandler struct {
	host *ledger.Host
	log  *slog.Logger
}

// Serve answers with ledger.Host. An error there leaves the outcome
// unknown (the shard closing, a failed commit): the answer is 96, the code
// the switch gives for the same error when it calls the host in-process.
func (h *ledgerHandler) Serve(ctx context.Context, p *front.Peer, req, resp *codec.Message) bool {
	mti, _ := req.MTI()
	if !codec.IsRequest(mti) {
		return false
	}
	if err := h.host.Exchange(ctx, req, resp); err != nil {
		h.log.Warn("shard failed", "mti", string(mti[:]), "stan", string(req.Get(11)), "terminal", string(req.Get(41)), "err", err)
		return answer(req, resp, codec.RCSystemError)
	}
	return true
}

// Reject answers a frame that did not decode with 30 (format error), and a
// request before sign-on with 91.
func (h *ledgerHandler) Reject(p *front.Peer, req *codec.Message, cause error, resp *codec.Message) bool {
	rc := codec.RCFormatError
	if errors.Is(cause, front.ErrSignOn) {
		rc = codec.RCIssuerUnavailable
	}
	return answer(req, resp, rc)
}

// serveJournal serves the shard's journal, cutovers and adjustments to the
// head ledger on addr over HTTPS with mutual TLS: the certificates the
// links' listener uses, and only the switch's client certificate.
func (n *LedgerNode) serveJournal(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("journal service: %w", err)
	}
	cfg := n.tls.Config().Clone()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.NextProtos = []string{"h2", "http/1.1"}
	n.journal = &http.Server{
		Handler:           remote.NewHandler(n.shard, remote.Options{Logger: n.log, ClientCNs: []string{SwitchIdentity}}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := n.journal.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("journal service stopped", "err", err)
		}
	}()
	n.log.Info("journal service up", "listen", ln.Addr().String())
	return nil
}

func answer(req, resp *codec.Message, rc string) bool {
	return resp.InitResponse(req) == nil && resp.SetString(39, rc) == nil
}

// ServeHTTP serves /metrics, /healthz and /readyz on addr and returns the
// bound address.
func (n *LedgerNode) ServeHTTP(addr string) (net.Addr, error) {
	var err error
	n.http, n.httpAddr, err = serveHTTP(addr, n.registry, &n.ready, n.log, nil)
	return n.httpAddr, err
}

// Shutdown drains: the listener stops, every request in flight is answered
// and written, the links' connections close, then the shard commits what
// is queued and closes, and HTTP stops last.
func (n *LedgerNode) Shutdown(ctx context.Context) error { return n.stop(ctx) }

func (n *LedgerNode) stop(ctx context.Context) error {
	n.ready.Store(false)
	if n.stopWatch != nil {
		n.stopWatch()
	}
	var errs []error
	if n.front != nil {
		if err := n.front.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drain: %w", err))
		}
	}
	if n.journal != nil {
		if err := n.journal.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("journal service: %w", err))
		}
	}
	if n.shard != nil {
		if err := n.shard.Close(); err != nil {
			errs = append(errs, fmt.Errorf("region %s: %w", n.region, err))
		}
	}
	if n.http != nil {
		if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ReloadTLS reads the certificate files again (on SIGHUP).
func (n *LedgerNode) ReloadTLS() error { return n.tls.Reload() }

// Addr is where the shard accepts the switch's links.
func (n *LedgerNode) Addr() net.Addr { return n.addr }

// HTTPAddr is the bound HTTP address (nil unless ServeHTTP ran).
func (n *LedgerNode) HTTPAddr() net.Addr { return n.httpAddr }

// Shard is the region's ledger shard.
func (n *LedgerNode) Shard() *ledger.Shard { return n.shard }

// Registry is the node's Prometheus registry.
func (n *LedgerNode) Registry() *prometheus.Registry { return n.registry }

// CreatedPKI lists the certificate files this start created.
func (n *LedgerNode) CreatedPKI() []string { return n.created }
