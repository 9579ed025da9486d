package allinone

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/pki"
	switching "github.com/junction-switch/junction/switch"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Node is a running all-in-one deployment: the channel listeners, the
// switch, one ledger shard per region and the HTTP endpoint, in one process.
type Node struct {
	cfg      Config
	log      *slog.Logger
	registry *prometheus.Registry
	dialect  *codec.Dialect

	shards   map[string]*ledger.Shard
	remotes  []*remoteRegion // regions whose shard runs in its own process
	saf      *switching.SAF
	pools    []*switching.Pool // one per destination, in configuration order
	front    *front.Server
	wires    map[string]Wire     // channel → dialect and framing
	addrs    map[string]net.Addr // channel → bound address
	http     *http.Server
	httpAddr net.Addr
	created  []string // PKI files created at start

	ready atomic.Bool
	sw    *switching.Switch
	head  *headNode // the head ledger (headnode.go)

	routesMu     sync.Mutex // one reload at a time
	routesDigest [32]byte   // of the rules file content last judged

	tls       map[front.TLSFiles]*front.TLSSource // one per distinct set of files, shared by listeners
	stopWatch context.CancelFunc                  // stops the certificate file watchers
}

// Start brings a node up: the dev PKI (created when missing), the ledger
// shards (demo accounts seeded when cfg.Demo), the switch, one listener per
// channel and the HTTP endpoint. On error everything started is stopped.
func Start(cfg Config, log *slog.Logger) (n *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	started := &Node{
		cfg:      cfg,
		log:      log,
		registry: prometheus.NewRegistry(),
		shards:   map[string]*ledger.Shard{},
		addrs:    map[string]net.Addr{},
	}
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

	channels := make([]string, len(cfg.Channels))
	for i, ch := range cfg.Channels {
		channels[i] = ch.Name
	}
	if cfg.remote() {
		channels = append(channels, SwitchIdentity) // the client certificate of the links to remote shards
	}
	n.created, err = pki.EnsureDev(cfg.PKIDir, pki.DevOptions{Channels: channels, Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		return nil, err
	}

	dests := map[string]switching.Destination{}
	for _, r := range cfg.Regions {
		if r.Remote != nil {
			// The shard runs as its own process: reach it over links.
			d, err := n.remoteDestination(r)
			if err != nil {
				return nil, fmt.Errorf("region %s: %w", r.Name, err)
			}
			n.remotes = append(n.remotes, d)
			dests[r.Name] = d.pool
			continue
		}
		s, err := ledger.Open(ledger.Options{
			Dir:        filepath.Join(cfg.DataDir, "ledger", r.Name),
			Region:     r.Name,
			Logger:     log,
			Registerer: n.registry,
			MaxBatch:   cfg.Ledger.MaxBatch,
			Clock:      cfg.Clock,
		})
		if err != nil {
			return nil, fmt.Errorf("region %s: %w", r.Name, err)
		}
		n.shards[r.Name] = s
		// One endpoint, in-process; the pool gives it a window and a
		// breaker like any other.
		if dests[r.Name], err = n.pool(r.Name, []switching.Member{{Name: r.Name, Dest: ledger.NewHost(s)}}); err != nil {
			return nil, err
		}
	}
	if n.saf, err = switching.OpenSAF(switching.SAFOptions{
		Dir: filepath.Join(cfg.DataDir, "saf"), Dialect: codec.ISO87ASCII(), Destinations: dests,
		BackoffMin: cfg.Switch.SAF.BackoffMin, BackoffMax: cfg.Switch.SAF.BackoffMax, MaxAge: cfg.Switch.SAF.MaxAge,
		Timeout: cfg.Switch.Timeout, Logger: log, Registerer: n.registry,
	}); err != nil {
		return nil, err
	}

	routes, err := cfg.RoutingTable()
	if err != nil {
		return nil, err
	}
	dialects, err := cfg.DialectSet()
	if err != nil {
		return nil, err
	}
	n.dialect = dialects[SwitchDialect]
	if n.wires, err = cfg.Wires(dialects); err != nil {
		return nil, err
	}
	inbound := map[string]*codec.Map{}
	for name, w := range n.wires {
		if w.Inbound != nil {
			inbound[name] = w.Inbound
		}
	}
	if cfg.Demo {
		if err := seedDemo(context.Background(), routes, n.shards, cfg.Regions); err != nil {
			return nil, err
		}
	}
	channelRates, identityRates := map[string]switching.Rate{}, map[string]switching.Rate{}
	for _, ch := range cfg.Channels {
		if r := ch.Rate; r != nil {
			channelRates[ch.Name] = switching.Rate{PerSecond: r.PerSecond, Burst: r.Burst}
		}
		if r := ch.IdentityRate; r != nil {
			identityRates[ch.Name] = switching.Rate{PerSecond: r.PerSecond, Burst: r.Burst}
		}
	}
	var standIn *switching.StandIn
	if si := cfg.Switch.StandIn; si != nil {
		limits, _ := si.limits() // validated
		if standIn, err = switching.NewStandIn(limits, n.saf, nil, log); err != nil {
			return nil, err
		}
	}
	n.sw, err = switching.New(switching.Options{
		Routes: routes, Destinations: dests, Logger: log, Registerer: n.registry, Timeout: cfg.Switch.Timeout,
		Inbound: inbound, Match: cfg.Switch.Match, OverloadCode: cfg.Switch.OverloadCode, QueueBudget: cfg.Switch.QueueBudget,
		ChannelRates: channelRates, IdentityRates: identityRates, SAF: n.saf, StandIn: standIn,
	})
	if err != nil {
		return nil, err
	}

	if err := n.startHead(); err != nil {
		return nil, fmt.Errorf("head ledger: %w", err)
	}

	n.front = front.NewServer(front.Options{Handler: n.sw, Logger: log, Registerer: n.registry})
	var watch context.Context
	watch, n.stopWatch = context.WithCancel(context.Background())
	go n.watchRoutes(watch)
	for _, ch := range cfg.Channels {
		wire := n.wires[ch.Name]
		fc := front.Channel{
			Name: ch.Name, Addr: ch.Listen, Institution: ch.Institution,
			SignOn: ch.SignOn, Short: ch.Short,
			Dialect: wire.Dialect, Framing: wire.Framing,
			MaxInFlight: cfg.Limits.MaxInFlight, MaxConns: cfg.Limits.MaxConns,
			MaxConnsPerIdentity: cfg.Limits.MaxConnsPerIdentity,
			HandshakeTimeout:    cfg.Limits.HandshakeTimeout, IdleTimeout: cfg.Limits.IdleTimeout,
			FrameTimeout: cfg.Limits.FrameTimeout, WriteTimeout: cfg.Limits.WriteTimeout,
		}
		if ch.Cutover {
			fc.Cutover = func(ctx context.Context, p *front.Peer) error {
				_, err := n.head.cutover(ctx, 0)
				return err
			}
		}
		if p := ch.Plaintext; p != nil {
			fc.Plaintext, fc.PlainIdentity = true, p.Identity
			fc.Engine, _ = front.ParseEngine(cmp.Or(p.Engine, "std")) // validated
			n.log.Warn("channel without TLS: only behind a TLS-terminating balancer or in a trusted segment",
				"channel", ch.Name, "listen", ch.Listen, "engine", fc.Engine.String())
		} else {
			src, err := n.tlsSource(ch, watch)
			if err != nil {
				return nil, fmt.Errorf("channel %s: %w", ch.Name, err)
			}
			fc.TLS, fc.Identities = src.Config(), ch.identityRules()
		}
		addr, err := n.front.Listen(fc)
		if err != nil {
			return nil, err
		}
		n.addrs[ch.Name] = addr
	}

	if cfg.HTTP != "" {
		if err := n.serveHTTP(); err != nil {
			return nil, err
		}
	}
	n.ready.Store(true)
	log.Info("junction up", "channels", len(n.addrs), "regions", len(n.shards))
	return n, nil
}

func (n *Node) serveHTTP() (err error) {
	n.http, n.httpAddr, err = serveHTTP(n.cfg.HTTP, n.registry, &n.ready, n.log, func(mux *http.ServeMux) {
		// The HTTP port is loopback in the default configuration: an
		// operator's, not a channel's.
		mux.HandleFunc("POST /admin/routes/reload", func(w http.ResponseWriter, _ *http.Request) {
			if err := n.ReloadRoutes(); err != nil {
				http.Error(w, err.Error(), http.StatusUnprocessableEntity)
				return
			}
			fmt.Fprintf(w, "routing rules reloaded: %d rules\n", len(n.sw.Routes().Rules()))
		})
		mux.HandleFunc("GET /admin/destinations", n.adminDestinations)
		mux.HandleFunc("GET /admin/saf", n.adminSAF)
		n.adminLedgerRoutes(mux) // POST /admin/accounts, GET /admin/ledger/verify (admin.go)
		n.headRoutes(mux)
	})
	return err
}

// serveHTTP serves /metrics from registry, /healthz, /readyz (200 while
// ready, 503 otherwise) and what more adds on addr, and returns the server
// and its bound address.
func serveHTTP(addr string, registry *prometheus.Registry, ready *atomic.Bool, log *slog.Logger, more func(*http.ServeMux)) (*http.Server, net.Addr, error) {
	mux := http.NewServeMux()
	if more != nil {
		more(mux)
	}
	// Profiles for whoever may read metrics: the port is the operators'.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("http: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	return srv, ln.Addr(), nil
}

// Shutdown stops the node cleanly: it reports not ready, drains the
// channels (every request in flight is answered and written), closes the
// links to remote shards, closes the in-process ledger shards (everything queued is committed) and stops HTTP last, so
// that the drain can be watched.
func (n *Node) Shutdown(ctx context.Context) error {
	return n.stop(ctx)
}

// tlsSource is the reloading TLS configuration of a channel's certificate
// files (its own, or the dev PKI's), shared by the channels that use the
// same files and watched for changes every Limits.TLSReload.
func (n *Node) tlsSource(ch Channel, watch context.Context) (*front.TLSSource, error) {
	files := front.TLSFiles{Cert: ch.TLS.Cert, Key: ch.TLS.Key, CA: ch.TLS.CA}
	if files.Cert == "" {
		files.Cert, files.Key = pki.ServerFiles(n.cfg.PKIDir)
		files.CA = pki.CAFile(n.cfg.PKIDir)
	}
	if src := n.tls[files]; src != nil {
		return src, nil
	}
	src, err := front.NewTLSSource(files, n.log)
	if err != nil {
		return nil, err
	}
	if n.tls == nil {
		n.tls = map[front.TLSFiles]*front.TLSSource{}
	}
	n.tls[files] = src
	go src.Watch(watch, n.cfg.Limits.TLSReload)
	return src, nil
}

// ReloadTLS reads every listener's certificate files again (on SIGHUP):
// handshakes from now on use what changed, open connections carry on. It
// returns the problems of the files that failed; those keep their
// certificates in use.
func (n *Node) ReloadTLS() error {
	var errs []error
	for _, src := range n.tls {
		if err := src.Reload(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Node) stop(ctx context.Context) error {
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
	if n.saf != nil {
		// Before the links and shards it delivers to: an advice in flight
		// is cut short and stays queued for the next start.
		if err := n.saf.Close(); err != nil {
			errs = append(errs, fmt.Errorf("saf: %w", err))
		}
	}
	for _, r := range n.remotes {
		if err := r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("region %s: links: %w", r.name, err))
		}
	}
	if n.head != nil {
		// Before the shards it pulls from.
		if err := n.head.close(); err != nil {
			errs = append(errs, fmt.Errorf("head ledger: %w", err))
		}
	}
	for name, s := range n.shards {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("region %s: %w", name, err))
		}
	}
	if n.http != nil {
		if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	return errors.Join(errs...)
}

// pool is a destination's endpoints behind the configured balancing, breaker
// and in-flight window.
func (n *Node) pool(name string, members []switching.Member) (*switching.Pool, error) {
	strategy, _ := switching.ParseStrategy(n.cfg.Switch.Balance) // validated
	w := n.cfg.Switch.Window
	p, err := switching.NewPool(name, members, switching.PoolOptions{
		Strategy: strategy, FailureThreshold: n.cfg.Switch.Breaker.Failures, Cooldown: n.cfg.Switch.Breaker.Cooldown,
		Window: &switching.WindowOptions{Initial: w.Initial, Min: w.Min, Max: w.Max, Target: w.Target},
		Logger: n.log, Registerer: n.registry,
	})
	if err == nil {
		n.pools = append(n.pools, p)
	}
	return p, err
}

// SAF is the switch's store-and-forward queue of advices.
func (n *Node) SAF() *switching.SAF { return n.saf }

// Addr is the bound address of a channel listener (nil if none).
func (n *Node) Addr(channel string) net.Addr { return n.addrs[channel] }

// HTTPAddr is the bound address of the HTTP endpoint (nil if disabled).
func (n *Node) HTTPAddr() net.Addr { return n.httpAddr }

// Shard is the in-process ledger shard of a region (nil for a region whose
// shard runs in its own process).
func (n *Node) Shard(region string) *ledger.Shard { return n.shards[region] }

// Dialect is the dialect the switch works in: ISO 8583:1987, whose layout
// every channel's dialect shares.
func (n *Node) Dialect() *codec.Dialect { return n.dialect }

// Wire is how a channel speaks: what a client of it needs besides TLS.
func (n *Node) Wire(channel string) Wire { return n.wires[channel] }

// Registry is the node's Prometheus registry.
func (n *Node) Registry() *prometheus.Registry { return n.registry }

// CreatedPKI lists the certificate files this start created.
func (n *Node) CreatedPKI() []string { return n.created }
