package front

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/prometheus/client_golang/prometheus"
)

// Peer is who sent a request: the channel it arrived on and the identity of
// the client certificate that opened the connection.
type Peer struct {
	Channel     string
	Institution string // acquiring institution id (field 32): the identity rule's, else the channel's
	Identity    string // client certificate common name (or the plaintext listener's identity)
	Group       string // terminal group, from the identity rule
	Remote      string // remote address, for logs
}

// Handler answers requests. Serve is called on its own goroutine for every
// decoded request, concurrently; it fills resp and reports whether resp is
// to be sent (false for messages that get no answer). Reject is called, on
// the connection's reader, for a frame that did not decode: req holds what
// did decode (at least the MTI when it is valid), cause says why; it fills
// resp and reports whether to send it. When Reject sends nothing for a
// frame without a valid MTI, the stream is not trusted any more and the
// connection is closed. Serve's ctx tells when the request's frame was read
// (Received) and must not be kept after Serve returns.
type Handler interface {
	Serve(ctx context.Context, p *Peer, req, resp *codec.Message) bool
	Reject(p *Peer, req *codec.Message, cause error, resp *codec.Message) bool
}

// Channel configures one listener.
type Channel struct {
	Name        string
	Addr        string // host:port; port 0 picks a free one
	Institution string
	TLS         *tls.Config // from ServerTLS: mutual TLS, required unless Plaintext
	// Plaintext serves without TLS: only for listeners behind a
	// TLS-terminating balancer or inside a trusted segment, and only when
	// configured explicitly. Every connection takes PlainIdentity.
	Plaintext     bool
	PlainIdentity string
	Dialect       *codec.Dialect
	// Framing cuts the stream into messages; its Max is the largest frame
	// accepted (default 8192 bytes). A response carries its request's fixed
	// header, mirrored as the framing says.
	Framing codec.Framing

	MaxInFlight int // requests per connection being served or written; default 64
	MaxConns    int // open connections on this listener; default 10000
	// SignOn makes the channel refuse requests (Handler.Reject with
	// ErrSignOn) from a connection that has not signed on (0800/001).
	SignOn bool
	// Identities admit client certificates and say who they speak for; the
	// first matching rule wins and a certificate none matches is refused at
	// the handshake. Empty admits every certificate the CA signed.
	Identities []IdentityRule
	// Cutover, when set, is what a cutover request (0800 with 70=201; 1804
	// with 24=821) from this channel runs: 00 (800) when it returns nil, 96
	// (909) otherwise. Without it the request is answered 12 (902). It runs
	// on the connection's reader, so it must be quick: a commit, not a
	// conversation with other nodes.
	Cutover func(ctx context.Context, p *Peer) error
	// Short is the synchronous short-connection mode of kiosks: one request,
	// one answer, then the server closes. TLS session resumption keeps the
	// next connection's handshake cheap.
	Short bool
	// MaxConnsPerIdentity bounds the open connections of one identity on
	// this listener; default 1000.
	MaxConnsPerIdentity int
	// FrameTimeout bounds how long a frame may take to arrive once its
	// first bytes have: a slow-drip client is cut off; default 10s.
	FrameTimeout time.Duration
	// Engine carries the bytes: EngineStd (the default) or, for a
	// Plaintext listener only, EngineGnet.
	Engine Engine

	HandshakeTimeout time.Duration // default 10s
	IdleTimeout      time.Duration // a connection with no frame for this long is closed; default 5m
	WriteTimeout     time.Duration // a peer that does not read for this long is dropped; default 30s
}

func (c *Channel) defaults() {
	if c.Framing.Max <= 0 {
		c.Framing.Max = 8192
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 64
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 10000
	}
	if c.MaxConnsPerIdentity <= 0 {
		c.MaxConnsPerIdentity = 1000
	}
	if c.FrameTimeout <= 0 {
		c.FrameTimeout = 10 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
}

// Options configures a Server.
type Options struct {
	Handler    Handler
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Server runs the channel listeners of one process.
type Server struct {
	h       Handler
	log     *slog.Logger
	metrics *metrics
	pool    sync.Pool // *exchange

	// base is the context requests are served under. It is cancelled only
	// when a drain runs out of time, so that a graceful drain lets work in
	// flight finish.
	base   context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	draining  bool
	listeners []*listener
	conns     map[*conn]struct{}
	connsDone sync.WaitGroup
}

// exchange is one request and its response, and the fixed frame header
// the response carries back, pooled.
type exchange struct {
	req, resp codec.Message
	header    [codec.MaxHeader]byte
	headerLen int
	ctx       requestContext
}

// NewServer returns a server with no listeners.
func NewServer(o Options) *Server {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	base, cancel := context.WithCancel(context.Background())
	return &Server{
		h:       o.Handler,
		log:     log,
		metrics: newMetrics(o.Registerer),
		// An exchange's request context wraps base for its whole life: it is
		// set once here and never written again, because a deadline a handler
		// derived from it may still read it (context cancellation, on the
		// timer's goroutine) after the exchange went back to the pool.
		pool: sync.Pool{New: func() any {
			x := new(exchange)
			x.ctx.Context = base
			return x
		}},
		base:   base,
		cancel: cancel,
		conns:  map[*conn]struct{}{},
	}
}

type listener struct {
	srv        *Server
	ch         Channel
	ln         net.Listener
	metrics    *listenerMetrics
	open       int            // guarded by srv.mu
	byIdentity map[string]int // open connections per identity, guarded by srv.mu
	done       chan struct{}
}

// Listen binds ch.Addr and starts accepting connections. It returns the
// bound address (useful when the port was 0).
func (s *Server) Listen(ch Channel) (net.Addr, error) {
	switch {
	case ch.Plaintext && ch.TLS != nil:
		return nil, fmt.Errorf("front: channel %s: plaintext and TLS both configured", ch.Name)
	case !ch.Plaintext && (ch.TLS == nil || ch.TLS.ClientAuth != tls.RequireAndVerifyClientCert):
		return nil, fmt.Errorf("front: channel %s: TLS with required client certificates is mandatory (or plaintext, explicitly)", ch.Name)
	}
	if ch.Dialect == nil {
		return nil, fmt.Errorf("front: channel %s: no dialect", ch.Name)
	}
	ch.defaults()
	if err := ch.Framing.Validate(); err != nil {
		return nil, fmt.Errorf("front: channel %s: %w", ch.Name, err)
	}
	if !ch.Plaintext && len(ch.Identities) > 0 {
		ch.TLS = withIdentities(ch.TLS, ch.Identities)
	}
	if ch.Engine != EngineStd {
		return s.listenGnet(ch)
	}
	ln, err := net.Listen("tcp", ch.Addr)
	if err != nil {
		return nil, fmt.Errorf("front: channel %s: %w", ch.Name, err)
	}
	l := &listener{srv: s, ch: ch, ln: ln, metrics: s.metrics.forChannel(ch.Name), byIdentity: map[string]int{}, done: make(chan struct{})}
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		ln.Close()
		return nil, fmt.Errorf("front: channel %s: server is shutting down", ch.Name)
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	go l.accept()
	return ln.Addr(), nil
}

func (l *listener) accept() {
	defer close(l.done)
	var backoff time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry rather
			// than spin or give up on the channel.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.srv.log.Warn("accept failed", "channel", l.ch.Name, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c, reason := l.srv.admit(l, nc)
		if c == nil {
			l.metrics.refuse(reason)
			l.srv.log.Warn("connection refused", "channel", l.ch.Name, "remote", nc.RemoteAddr().String(), "reason", reason)
			nc.Close()
			continue
		}
		go c.serve()
	}
}

// admit registers a new connection unless the server drains or the
// listener is at its connection limit.
func (s *Server) admit(l *listener, nc net.Conn) (*conn, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return nil, "draining"
	}
	if l.open >= l.ch.MaxConns {
		return nil, "limit"
	}
	l.open++
	c := newConn(l, nc)
	s.conns[c] = struct{}{}
	s.connsDone.Add(1)
	return c, ""
}

func (s *Server) release(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	c.l.open--
	if c.counted {
		if c.l.byIdentity[c.peer.Identity]--; c.l.byIdentity[c.peer.Identity] == 0 {
			delete(c.l.byIdentity, c.peer.Identity)
		}
	}
	s.mu.Unlock()
	s.connsDone.Done()
}

// admitIdentity counts a connection against its identity's limit, once its
// identity is known; false when the identity is at its limit.
func (s *Server) admitIdentity(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.l.byIdentity[c.peer.Identity] >= c.l.ch.MaxConnsPerIdentity {
		return false
	}
	c.l.byIdentity[c.peer.Identity]++
	c.counted = true
	return true
}

// Shutdown drains the server: it stops accepting, stops reading new
// requests, lets every request in flight be answered and written, then
// closes the connections. If ctx ends first, remaining connections are
// closed at once and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	listeners := s.listeners
	for c := range s.conns {
		c.drain()
	}
	s.mu.Unlock()
	for _, l := range listeners {
		l.ln.Close()
		<-l.done
	}

	done := make(chan struct{})
	go func() { s.connsDone.Wait(); stopGnet(listeners); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
