package front

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/panjf2000/gnet/v2"
)

// Engine is what carries a channel's bytes. Both engines feed the same
// session: framing, network management at the edge, the handler.
type Engine uint8

const (
	// EngineStd is std net and crypto/tls, two goroutines per connection:
	// the default, and the only engine for mutual TLS.
	EngineStd Engine = iota
	// EngineGnet is gnet/v2's event loops, for plaintext listeners only
	// (behind a TLS-terminating balancer or inside a trusted segment), and
	// only when configured explicitly. gnet has no TLS.
	EngineGnet
)

var engineNames = [...]string{EngineStd: "std", EngineGnet: "gnet"}

func (e Engine) String() string {
	if int(e) < len(engineNames) {
		return engineNames[e]
	}
	return fmt.Sprintf("engine(%d)", uint8(e))
}

// ParseEngine reads an engine's name: std or gnet.
func ParseEngine(s string) (Engine, error) {
	for e, name := range engineNames {
		if name == s {
			return Engine(e), nil
		}
	}
	return 0, fmt.Errorf("front: engine %q: want std or gnet", s)
}

// gnetMaxOutbound is how many bytes of answers may wait in gnet's outbound
// buffer (the socket took no more) before a connection's requests stop
// being read: the peer is not reading, and gnet's buffer has no bound of
// its own. WriteTimeout later, the connection is dropped.
const gnetMaxOutbound = 64 << 10

// gnetListener runs one plaintext channel listener on its own gnet engine.
// The engine's loops accept, read and write; each connection's session
// decodes, answers network management and runs the handler, as on the std
// engine. Decisions about a connection are taken on its loop (OnTraffic);
// serve goroutines and the ticker only hand answers over and wake it.
//
// It is the listener's net.Listener for Addr and Close (which Shutdown
// calls); gnet accepts on its own loop, so Accept is not used.
type gnetListener struct {
	gnet.BuiltinEventEngine
	l     *listener
	eng   gnet.Engine
	addr  net.Addr
	epoch time.Time     // now() is monotonic time since epoch, storable in an atomic
	tick  time.Duration // how often the ticker looks for idle, slow and drained connections
	ahead int           // bytes a paused connection may have waiting in gnet's inbound buffer

	booted  bool          // OnBoot ran (set and read on the Run goroutine)
	boot    chan error    // OnBoot's outcome
	stopped chan struct{} // closed when gnet.Run has returned

	mu     sync.Mutex
	conns  map[*gnetConn]struct{}
	closed bool
}

// listenGnet is Listen for EngineGnet: ch is validated and has its
// defaults.
func (s *Server) listenGnet(ch Channel) (net.Addr, error) {
	switch {
	case ch.Engine != EngineGnet:
		return nil, fmt.Errorf("front: channel %s: unknown engine %s", ch.Name, ch.Engine)
	case !ch.Plaintext:
		return nil, fmt.Errorf("front: channel %s: the gnet engine serves plaintext listeners only (mutual TLS runs on the std engine)", ch.Name)
	}
	l := &listener{srv: s, ch: ch, metrics: s.metrics.forChannel(ch.Name), byIdentity: map[string]int{}, done: make(chan struct{})}
	g := &gnetListener{
		l:       l,
		epoch:   time.Now(),
		tick:    min(max(min(ch.IdleTimeout, ch.FrameTimeout, ch.WriteTimeout)/8, 5*time.Millisecond), time.Second),
		ahead:   ch.MaxInFlight * ch.Framing.Max,
		boot:    make(chan error, 1),
		stopped: make(chan struct{}),
		conns:   map[*gnetConn]struct{}{},
	}
	l.ln = g
	go g.run()
	if err := <-g.boot; err != nil {
		<-g.stopped
		return nil, fmt.Errorf("front: channel %s: %w", ch.Name, err)
	}
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		g.Close()
		g.stop()
		return nil, fmt.Errorf("front: channel %s: server is shutting down", ch.Name)
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	return g.addr, nil
}

func (g *gnetListener) run() {
	defer close(g.stopped)
	log := g.l.srv.log.With("channel", g.l.ch.Name, "engine", "gnet")
	err := gnet.Run(g, "tcp://"+g.l.ch.Addr,
		gnet.WithMulticore(true),
		gnet.WithTicker(true),
		gnet.WithReuseAddr(true), // as net.Listen does: a restart binds despite TIME_WAIT
		gnet.WithLogger(gnetLogger{log}),
	)
	switch {
	case err != nil && !g.booted:
		g.boot <- err // the address did not bind
	case err != nil:
		log.Error("engine stopped", "err", err)
	}
}

// OnBoot runs on Run's goroutine once the listening socket is bound, before
// the loops start. gnet does not expose the bound address (port 0), so it
// is read from a duplicate of the listening socket.
func (g *gnetListener) OnBoot(eng gnet.Engine) gnet.Action {
	g.booted, g.eng = true, eng
	addr, err := boundAddr(eng)
	g.addr = addr
	g.boot <- err
	if err != nil {
		return gnet.Shutdown
	}
	return gnet.None
}

func boundAddr(eng gnet.Engine) (net.Addr, error) {
	fd, err := eng.Dup()
	if err != nil {
		return nil, fmt.Errorf("gnet listener address: %w", err)
	}
	f := os.NewFile(uintptr(fd), "gnet listener")
	defer f.Close()
	ln, err := net.FileListener(f) // another duplicate: closing it leaves gnet's socket listening
	if err != nil {
		return nil, fmt.Errorf("gnet listener address: %w", err)
	}
	defer ln.Close()
	return ln.Addr(), nil
}

// Addr is the bound address.
func (g *gnetListener) Addr() net.Addr { return g.addr }

// Accept is not used: gnet accepts on its own loop. It waits until Close,
// as a closed listener's Accept would.
func (g *gnetListener) Accept() (net.Conn, error) {
	<-g.l.done
	return nil, net.ErrClosed
}

// Close stops admitting connections and wakes every open one, so that
// those marked draining close once their answers are written. The engine
// keeps running, and its listening socket open, until stop: gnet cannot
// close one without stopping the loops the drain still needs.
func (g *gnetListener) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	for gc := range g.conns {
		gc.c.Wake(nil)
	}
	close(g.l.done)
	return nil
}

// stop stops the engine and waits until its goroutines have ended. Engine.Stop
// signals the engine, then polls every 500 ms until it is down (gnet.go:153,
// shutdownPollInterval): with a context already cancelled it only signals,
// and Run's return says when the loops are gone.
func (g *gnetListener) stop() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g.eng.Stop(ctx) // ErrEngineInShutdown when it is down already
	<-g.stopped
}

// stopGnet stops the gnet engines among listeners. Shutdown calls it once
// every connection has closed.
func stopGnet(listeners []*listener) {
	for _, l := range listeners {
		if g, ok := l.ln.(*gnetListener); ok {
			g.stop()
		}
	}
}

func (g *gnetListener) now() int64 { return int64(time.Since(g.epoch)) }

// OnOpen admits a connection as the std engine does: the server's
// connection and identity limits, and registration for Shutdown.
func (g *gnetListener) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	l, srv := g.l, g.l.srv
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	cn, reason := (*conn)(nil), "draining"
	if !closed {
		cn, reason = srv.admit(l, c)
	}
	if cn == nil {
		l.metrics.refuse(reason)
		srv.log.Warn("connection refused", "channel", l.ch.Name, "remote", c.RemoteAddr().String(), "reason", reason)
		return nil, gnet.Close // OnClose finds no context
	}
	cn.peer.Identity = l.ch.PlainIdentity
	cn.log = srv.log.With("channel", l.ch.Name, "remote", cn.peer.Remote, "identity", cn.peer.Identity)
	if !srv.admitIdentity(cn) {
		l.metrics.refuse("identity_limit")
		cn.log.Warn("connection refused: identity at its connection limit", "max", l.ch.MaxConnsPerIdentity)
		srv.release(cn)
		return nil, gnet.Close
	}
	gc := &gnetConn{cn: cn, s: &cn.session, g: g, c: c}
	gc.refs.Store(1)
	gc.lastFrame.Store(g.now())
	c.SetContext(gc)
	g.mu.Lock()
	g.conns[gc] = struct{}{}
	g.mu.Unlock()
	l.metrics.accepted.Inc()
	l.metrics.open.Inc()
	cn.log.Debug("connection open")
	if cn.draining.Load() {
		c.Wake(nil) // Shutdown began between admit and now: let the loop close it
	}
	return nil, gnet.None
}

// OnTraffic runs on the connection's loop when bytes arrive and when the
// connection is woken (answers ready, a timer due, a drain).
func (g *gnetListener) OnTraffic(c gnet.Conn) gnet.Action {
	gc, ok := c.Context().(*gnetConn)
	if !ok {
		return gnet.Close
	}
	return gc.traffic()
}

// OnClose runs on the loop once gnet has closed the socket, whoever asked.
func (g *gnetListener) OnClose(c gnet.Conn, err error) gnet.Action {
	gc, ok := c.Context().(*gnetConn)
	if !ok {
		return gnet.None // refused in OnOpen
	}
	if gc.reason == "" {
		gc.reason = gc.closeReason(err)
	}
	gc.closing.Store(true)
	gc.unref()
	return gnet.None
}

// OnTick runs on gnet's ticker goroutine. It does not touch connections:
// it wakes those with a decision due, which their loop takes.
func (g *gnetListener) OnTick() (time.Duration, gnet.Action) {
	now := g.now()
	g.mu.Lock()
	for gc := range g.conns {
		if gc.due(now) {
			gc.c.Wake(nil)
		}
	}
	g.mu.Unlock()
	return g.tick, gnet.None
}

// release ends a connection once gnet has closed it and its last serve
// goroutine has returned.
func (g *gnetListener) release(gc *gnetConn) {
	g.mu.Lock()
	delete(g.conns, gc)
	g.mu.Unlock()
	lm := g.l.metrics
	lm.open.Dec()
	lm.close(gc.reason)
	gc.cn.log.Debug("connection closed", "reason", gc.reason)
	g.l.srv.release(gc.cn)
}

// gnetConn is one connection on the gnet engine: gnet's connection, the
// session (inside the conn that admit registered, so that Shutdown finds
// and drains it like any other), and what bounds its work in flight.
type gnetConn struct {
	cn *conn
	s  *session
	g  *gnetListener
	c  gnet.Conn

	// The loop's own.
	out     []byte // this round's write: answers handed over, then edge replies
	full    bool   // reading paused at MaxInFlight (counted once per pause)
	stalled int64  // when the outbound buffer went over its bound; 0 when under
	reason  string // why the connection closes, once it is closing

	// Handed over by serve goroutines, under mu.
	mu      sync.Mutex
	answers []byte // packed answers waiting for the loop
	done    int32  // dispatched requests finished since the loop last looked
	woken   bool   // a Wake is on its way to the loop

	inflight  atomic.Int32 // dispatched requests not yet handed back to the loop
	lastFrame atomic.Int64 // now() of the last frame cut, or of the open
	partial   atomic.Int64 // now() when the incomplete frame in the buffer began; 0 when none
	blocked   atomic.Bool  // the peer does not read its answers
	closing   atomic.Bool  // reason is set: the loop waits for answers in flight, then closes
	refs      atomic.Int32 // the open connection, plus one per serve goroutine
}

// traffic writes the answers handed over since the last round, reads what
// it may, and closes once a reason is set and nothing is in flight.
func (gc *gnetConn) traffic() gnet.Action {
	gc.mu.Lock()
	gc.out, gc.answers = gc.answers, gc.out[:0]
	done := gc.done
	gc.done, gc.woken = 0, false
	gc.mu.Unlock()
	gc.inflight.Add(-done)

	if gc.reason == "" {
		if gc.reason = gc.read(gc.g.now()); gc.reason != "" {
			gc.closing.Store(true)
		}
	} else if n := gc.c.InboundBuffered(); n > 0 {
		// Closing: nothing more is read, and gnet's buffer must not grow
		// while answers in flight are awaited.
		gc.c.Discard(n)
	}
	if len(gc.out) > 0 {
		// What the socket does not take, gnet copies to its outbound buffer.
		if _, err := gc.c.Write(gc.out); err != nil {
			return gnet.None // gnet closed the connection; OnClose has run
		}
		if cap(gc.out) > 1<<20 {
			gc.out = nil // do not keep a burst's buffer forever
		}
	}
	if gc.reason != "" && gc.inflight.Load() == 0 {
		return gnet.Close // gnet writes what its outbound buffer holds, then closes
	}
	return gnet.None
}

// read cuts and accepts the frames in gnet's inbound buffer while the
// connection may take more work, and returns a reason to close, or "".
// Frames it leaves (in-flight limit, peer not reading) stay in gnet's
// buffer for a later round.
func (gc *gnetConn) read(now int64) string {
	ch := &gc.cn.l.ch
	log := gc.cn.log
	if gc.cn.draining.Load() {
		return "drain"
	}
	if gc.c.OutboundBuffered() > gnetMaxOutbound {
		if gc.stalled == 0 {
			gc.stalled = now
			gc.blocked.Store(true)
		} else if time.Duration(now-gc.stalled) >= ch.WriteTimeout {
			log.Warn("peer does not read its answers, closing", "write_timeout", ch.WriteTimeout)
			return "write_error"
		}
		return gc.overrun(gc.c.InboundBuffered())
	}
	gc.stalled = 0
	gc.blocked.Store(false)

	if waiting := gc.c.InboundBuffered(); waiting == 0 {
		gc.full = false
	} else if gc.atLimit() {
		// Paused: leave the frames where they are (Peek may copy).
		return gc.overrun(waiting)
	}
	buf, _ := gc.c.Peek(-1) // all of it; valid until Discard
	used := 0
	reason := ""
	for reason == "" {
		n, header, payload, err := ch.Framing.Cut(buf[used:])
		if err != nil {
			reason = gc.framingError(err)
			break
		}
		if n == 0 || gc.atLimit() {
			break
		}
		used += n
		gc.lastFrame.Store(now)
		x, act := gc.s.accept(header, payload)
		switch act {
		case drop:
			continue
		case hangUp:
			reason = "unreadable"
			continue
		case reply:
			gc.out = gc.s.pack(gc.out, x)
		case dispatch:
			gc.inflight.Add(1)
			gc.refs.Add(1)
			go gc.serve(x)
		}
		if ch.Short {
			reason = "short" // one request, one answer: written before the close
		}
	}
	if used > 0 {
		gc.c.Discard(used) // not Discard(0): that empties the whole buffer
	}
	left := len(buf) - used
	switch {
	case reason != "":
		return reason
	case gc.full:
		gc.partial.Store(0)
		return gc.overrun(left)
	case left > 0:
		// An incomplete frame: from its first bytes, it has FrameTimeout
		// to arrive whole, however slowly it drips in.
		if since := gc.partial.Load(); since == 0 || used > 0 {
			gc.partial.Store(now)
		} else if time.Duration(now-since) >= ch.FrameTimeout {
			log.Warn("frame not complete in time, closing", "frame_timeout", ch.FrameTimeout)
			return "slow_frame"
		}
	default:
		gc.partial.Store(0)
		if time.Duration(now-gc.lastFrame.Load()) >= ch.IdleTimeout {
			log.Info("idle timeout, closing", "idle", ch.IdleTimeout)
			return "idle"
		}
	}
	return ""
}

// atLimit reports whether MaxInFlight requests are in flight, and counts
// a pause of reading when it begins.
func (gc *gnetConn) atLimit() bool {
	limit := gc.cn.l.ch.MaxInFlight
	if int(gc.inflight.Load()) < limit {
		gc.full = false
		return false
	}
	if !gc.full {
		gc.full = true
		gc.cn.l.metrics.inFlightFull.Inc()
		gc.cn.log.Debug("in-flight limit reached, reading paused", "max", limit)
	}
	return true
}

// overrun bounds what a paused connection leaves in gnet's inbound buffer.
// The std engine stops reading and TCP pushes back on the peer; gnet keeps
// reading the socket into its buffer, and offers no way to stop.
func (gc *gnetConn) overrun(waiting int) string {
	if waiting <= gc.g.ahead {
		return ""
	}
	gc.cn.log.Warn("peer sends too far ahead of its answers, closing", "waiting", waiting, "max", gc.g.ahead)
	return "overrun"
}

func (gc *gnetConn) framingError(err error) string {
	var fse *codec.FrameSizeError
	if errors.As(err, &fse) {
		gc.cn.log.Warn("frame too large, closing", "size", fse.Size, "max", fse.Max)
		return "frame_too_large"
	}
	gc.cn.log.Warn("broken framing, closing", "err", err)
	return "bad_framing"
}

// closeReason names a close that the loop did not decide.
func (gc *gnetConn) closeReason(err error) string {
	var se *os.SyscallError
	switch {
	case err == nil:
		return "drain" // Shutdown's context ended: closed at once
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.As(err, &se) && (se.Syscall == "write" || se.Syscall == "writev"):
		gc.cn.log.Warn("write failed, closing", "err", err)
		return "write_error"
	default:
		gc.cn.log.Info("read failed", "err", err)
		return "read_error"
	}
}

// due reports whether the loop has a decision to take that no traffic
// will prompt: a drain, an idle or slow connection, a peer not reading.
func (gc *gnetConn) due(now int64) bool {
	if gc.closing.Load() {
		return false // waiting for answers, whose arrival wakes the loop
	}
	ch := &gc.cn.l.ch
	p := gc.partial.Load()
	return gc.cn.draining.Load() || gc.blocked.Load() ||
		p != 0 && time.Duration(now-p) >= ch.FrameTimeout ||
		time.Duration(now-gc.lastFrame.Load()) >= ch.IdleTimeout
}

// serve runs the handler on its own goroutine and hands the answer to the
// loop. Answers that finish together go out in one write: only the first
// of them wakes the loop.
func (gc *gnetConn) serve(x *exchange) {
	write := gc.s.serve(x)
	gc.mu.Lock()
	if write {
		gc.answers = gc.s.pack(gc.answers, x)
	}
	gc.done++
	wake := !gc.woken
	gc.woken = true
	gc.mu.Unlock()
	if wake {
		// A closed connection ignores it. The engine is not stopped before
		// this goroutine ends (see unref), so the wake cannot be lost.
		gc.c.Wake(nil)
	}
	gc.unref()
}

// unref drops a reference; the last one (gnet has closed the socket and
// no serve goroutine is left) releases the connection, so that Shutdown
// waits for handlers as it does on the std engine.
func (gc *gnetConn) unref() {
	if gc.refs.Add(-1) == 0 {
		gc.g.release(gc)
	}
}

// gnetLogger gives gnet the server's logger. gnet's start-up chatter goes
// to debug.
type gnetLogger struct{ log *slog.Logger }

func (g gnetLogger) logf(level slog.Level, format string, args []any) {
	if ctx := context.Background(); g.log.Enabled(ctx, level) {
		g.log.Log(ctx, level, fmt.Sprintf(format, args...))
	}
}

func (g gnetLogger) Debugf(format string, args ...any) { g.logf(slog.LevelDebug, format, args) }
func (g gnetLogger) Infof(format string, args ...any)  { g.logf(slog.LevelDebug, format, args) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.logf(slog.LevelWarn, format, args) }
func (g gnetLogger) Errorf(format string, args ...any) { g.logf(slog.LevelError, format, args) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.logf(slog.LevelError, format, args) }
