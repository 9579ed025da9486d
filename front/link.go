package front

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-switch/junction/codec"
	sharedmetrics "github.com/junction-switch/junction/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Outbound links: the switch's side of a destination host. A Link is one
// endpoint, a pool of persistent connections that carry requests pipelined
// and answered in any order. Each connection has a reader and a writer
// goroutine, like a channel connection; requests are packed on the caller's
// goroutine (so that one core does not bound one socket) and the writer
// sends whatever is ready in one write.
//
// Matching follows jPOS QMUX: the key is the response MTI and the Match
// fields of the request as it leaves (after conversion and re-stamping),
// read back from the answer with a Scan before anything is decoded. A key
// already in flight is refused (ErrDuplicateKey), never overwritten, and an
// answer nobody waits for is counted and logged, never handed to another
// request.

// Errors of outbound links.
var (
	// ErrUnavailable means the link could not carry the request or lost it:
	// no connection is ready, every ready one is full, the link is closed,
	// or the connection carrying the request dropped before the answer came.
	// In the last case the outcome at the host is unknown; the request is
	// not retried (a reversal decides).
	ErrUnavailable = errors.New("front: link unavailable")
	// ErrDuplicateKey means a request with the same matching key is already
	// in flight on the link. The first request keeps its place and gets its
	// answer; the second is refused before it is sent.
	ErrDuplicateKey = errors.New("front: matching key already in flight")
	// ErrBadReply means an answer matched the request but did not decode as
	// a message of the endpoint's dialect; the error names the field.
	ErrBadReply = errors.New("front: answer does not decode")
	// ErrBusy means every connection of the link has its maximum of
	// requests in flight: the host is up and working, the request was not
	// sent. It is neither the host's failure (a breaker must not eject it)
	// nor a reason to go elsewhere: the caller declines at once, as for a
	// full window.
	ErrBusy = errors.New("front: link busy")
	// ErrNotSent is wrapped, beside ErrUnavailable, when the request never
	// left: the host cannot have acted on it, so the caller may send it
	// elsewhere (an alternate route) without a reversal.
	ErrNotSent = errors.New("front: request not sent")
)

// Health is how much of a link works.
type Health int32

const (
	// Down: no connection can carry a request.
	Down Health = iota
	// Degraded: some connections are ready, or a connection missed a
	// heartbeat.
	Degraded
	// Up: every connection is ready.
	Up
)

func (h Health) String() string {
	switch h {
	case Up:
		return "up"
	case Degraded:
		return "degraded"
	}
	return "down"
}

// LinkOptions configures a Link.
type LinkOptions struct {
	Name string // endpoint name for logs and metric labels, e.g. "beijing-1"; unique per Registerer
	Addr string
	TLS  *tls.Config // client side; nil only for a plaintext endpoint
	// Map converts requests from the switch's dialect (Map.From) into the
	// endpoint's (Map.To), and answers back: codec.CopyMap when the
	// layouts agree. A map that derives field 11 from the context
	// (`11: [{derive: stan}, copy]`, response `11: restore`) gets the
	// link's own STAN, so that keys are unique whatever the callers send.
	Map     *codec.Map
	Framing codec.Framing
	Header  []byte // fixed frame header (TPDU) on requests; zeros when nil

	Conns       int // persistent connections; default 2
	MaxInFlight int // requests in flight per connection; default 256
	// Match lists the fields of the matching key besides the response MTI;
	// default 11, 41. Network management (0800/1804) matches on 11 alone,
	// which the link stamps itself.
	Match   []int
	Timeout time.Duration // per request and per heartbeat; default 10s
	Echo    time.Duration // heartbeat (0800/301) after a connection has received nothing for this long; default 10s
	// SignOn sends 0800/001 after connecting; the connection carries
	// traffic only once the host answers it 00.
	SignOn bool
	// Reconnect backoff: exponential from BackoffMin to BackoffMax with
	// full jitter; defaults 100ms and 30s.
	BackoffMin, BackoffMax time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Link is one outbound endpoint: a pool of persistent connections, kept
// connected in the background. It implements the switch's Destination.
type Link struct {
	o       LinkOptions
	d       *codec.Dialect // the endpoint's
	log     *slog.Logger
	m       linkMetrics
	scanSet codec.ScanSet
	net     netCodes

	stan atomic.Uint32
	pool sync.Pool // *waiter

	ctx    context.Context // ends when Close is done draining
	cancel context.CancelFunc
	conns  []atomic.Pointer[linkConn] // per slot; nil while (re)connecting
	wg     sync.WaitGroup

	mu      sync.Mutex
	waiters map[matchKey]*waiter
	closing bool

	closed    atomic.Bool  // closing, readable without mu
	active    atomic.Int64 // Exchange calls in flight
	drained   chan struct{}
	drainOnce sync.Once

	hmu    sync.Mutex
	health atomic.Int32
}

// netMatch is the matching key of network management: the STAN the link
// stamped, alone, since hosts differ in what else they echo on an 0810.
var netMatch = []int{11}

// NewLink validates o and returns the link; its connections come up in the
// background.
func NewLink(o LinkOptions) (*Link, error) {
	if o.Map == nil {
		return nil, fmt.Errorf("front: link %s: no map", o.Name)
	}
	if o.Addr == "" {
		return nil, fmt.Errorf("front: link %s: no address", o.Name)
	}
	if err := o.Framing.Validate(); err != nil {
		return nil, fmt.Errorf("front: link %s: %w", o.Name, err)
	}
	if o.Header == nil {
		o.Header = make([]byte, o.Framing.Header)
	}
	if len(o.Header) != o.Framing.Header {
		return nil, fmt.Errorf("front: link %s: a %d-byte header for a framing with %d", o.Name, len(o.Header), o.Framing.Header)
	}
	d := o.Map.To()
	if len(o.Match) == 0 {
		o.Match = []int{11, 41}
	}
	for _, id := range o.Match {
		if _, ok := d.Field(id); !ok {
			return nil, fmt.Errorf("front: link %s: matching field %d: %s does not define it", o.Name, id, d.Name())
		}
	}
	if o.Conns <= 0 {
		o.Conns = 2
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Echo <= 0 {
		o.Echo = 10 * time.Second
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 100 * time.Millisecond
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(30*time.Second, o.BackoffMin)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m, err := newLinkMetrics(o.Registerer, o.Name)
	if err != nil {
		return nil, fmt.Errorf("front: link %s: %w", o.Name, err)
	}
	l := &Link{
		o:       o,
		d:       d,
		log:     o.Logger.With("endpoint", o.Name, "addr", o.Addr),
		m:       m,
		scanSet: codec.NewScanSet(append([]int{11}, o.Match...)...),
		net:     netCodesOf(d),
		conns:   make([]atomic.Pointer[linkConn], o.Conns),
		waiters: map[matchKey]*waiter{},
		drained: make(chan struct{}),
	}
	l.pool.New = func() any {
		w := &waiter{done: make(chan error, 1), timer: time.NewTimer(time.Hour)}
		w.timer.Stop()
		return w
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.m.health.Set(float64(Down))
	for i := range l.conns {
		l.wg.Add(1)
		go l.keep(i)
	}
	return l, nil
}

// netCodes are the network management messages of a dialect: 0800 with
// field 70 and response code 00 in 1987, 1804 with function code 24 and
// action code 800 in 1993.
type netCodes struct {
	mti          [4]byte
	field        int
	signOn, echo string
	ok           string
}

func netCodesOf(d *codec.Dialect) netCodes {
	if d.Layout().Version == '1' {
		return netCodes{mti: [4]byte{'1', '8', '0', '4'}, field: 24, signOn: signOn93, echo: echo93, ok: "800"}
	}
	return netCodes{mti: [4]byte{'0', '8', '0', '0'}, field: 70, signOn: signOn87, echo: echo87, ok: "00"}
}

// matchKey is a request's matching key: the response MTI, then each match
// field as a length byte and its content. Fixed size, so that building and
// looking one up does not allocate.
type matchKey [96]byte

// fielder is what a key is read from: the outbound message, or the scan of
// an answer.
type fielder interface{ Get(id int) []byte }

// key fills k from mti (a response MTI) and m's match fields; false when
// they do not fit.
func (l *Link) key(k *matchKey, mti [4]byte, m fielder) bool {
	*k = matchKey{}
	p := copy(k[:], mti[:])
	fields := l.o.Match
	if mti[1] == codec.ClassNetwork {
		fields = netMatch
	}
	for _, id := range fields {
		v := m.Get(id)
		if p+1+len(v) > len(k) {
			return false
		}
		k[p] = byte(len(v))
		p++
		p += copy(k[p:], v)
	}
	return true
}

// waiter is one request in flight: the outbound message, its frame, its
// answer and what the conversion back needs. Pooled, but only reused once
// its answer was delivered after the writer sent it: a waiter abandoned on
// a timeout or a lost connection may still sit in a writer's queue.
type waiter struct {
	key   matchKey
	conn  *linkConn
	out   codec.Message // the request in the endpoint's dialect
	in    codec.Message // its answer
	back  codec.Message // the answer in the map's dialect, when the caller's differs
	saved codec.Saved
	frame []byte
	sent  atomic.Bool // the writer has copied frame; an answer may come
	// abandoned: the caller gave up before the writer got to it; not sent.
	abandoned atomic.Bool
	done      chan error // one delivery: nil with in filled, or why not
	timer     *time.Timer
}

func (l *Link) getWaiter() *waiter {
	w := l.pool.Get().(*waiter)
	w.conn = nil
	w.sent.Store(false)
	w.abandoned.Store(false)
	return w
}

// putWaiter recycles w after its answer was delivered.
func (l *Link) putWaiter(w *waiter) {
	if w.sent.Load() && cap(w.frame) <= 64<<10 {
		l.pool.Put(w)
	}
}

// Exchange sends req (the switch's dialect) to the endpoint and waits for
// its answer, converted back into resp. The request is converted with the
// link's map under a codec.Context carrying the link's next STAN, matched
// by its outbound key and bounded by both ctx and the link's Timeout.
// Errors: ErrUnavailable (nothing carried it, or its connection dropped),
// ErrDuplicateKey, context.DeadlineExceeded (no answer in time; the waiter
// is removed, a later answer is counted as late), ErrBadReply, or a
// conversion error.
func (l *Link) Exchange(ctx context.Context, req, resp *codec.Message) error {
	if d, from := req.Dialect(), l.o.Map.From(); d != nil && d.Name() != from.Name() && !d.SameLayout(from) {
		l.m.invalid.Inc()
		return fmt.Errorf("front: link %s: a request in %s, which does not share the layout of %s", l.o.Name, d.Name(), from.Name())
	}
	w := l.getWaiter()
	cctx := codec.Context{Now: time.Now(), STAN: l.nextSTAN()}
	if err := l.o.Map.Request(&w.out, req, &cctx, &w.saved); err != nil {
		l.pool.Put(w) // never queued
		l.m.invalid.Inc()
		return fmt.Errorf("front: link %s: %w", l.o.Name, err)
	}
	err := l.roundTrip(ctx, nil, w)
	if err != nil {
		l.count(err)
		return err
	}
	// A request of another dialect with the map's layout (the switch
	// serves 1987 binary channels without converting them) gets its answer
	// in its own dialect.
	d := req.Dialect()
	if d == nil || d.Name() == l.o.Map.From().Name() {
		err = l.o.Map.Response(resp, &w.in, &w.saved)
	} else if err = l.o.Map.Response(&w.back, &w.in, &w.saved); err == nil {
		err = rehome(resp, &w.back, d)
	}
	l.putWaiter(w)
	if err != nil {
		l.m.badReply.Inc()
		return fmt.Errorf("front: link %s: answer does not convert back: %w", l.o.Name, err)
	}
	l.m.ok.Inc()
	return nil
}

// rehome makes dst a copy of src in dialect d, which must share src's
// layout: content is canonical, so only the encoding changes.
func rehome(dst, src *codec.Message, d *codec.Dialect) error {
	dst.Reset(d)
	mti, _ := src.MTI()
	if err := dst.SetMTI(mti); err != nil {
		return err
	}
	for id := 2; id <= codec.MaxField; id++ {
		if src.Has(id) {
			if err := dst.Set(id, src.Get(id)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Link) count(err error) {
	switch {
	case errors.Is(err, ErrUnavailable):
		l.m.unavailable.Inc()
	case errors.Is(err, ErrBusy):
		l.m.busy.Inc()
	case errors.Is(err, ErrDuplicateKey):
		l.m.duplicate.Inc()
	case errors.Is(err, ErrBadReply):
		l.m.badReply.Inc()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		l.m.timeout.Inc()
	default:
		l.m.invalid.Inc()
	}
}

// nextSTAN is the link's STAN counter, 1–999999 and round again.
func (l *Link) nextSTAN() uint32 { return (l.stan.Add(1)-1)%999999 + 1 }

// roundTrip sends w.out and waits for its answer into w.in. With c nil it
// is a caller's request: it picks a ready connection and counts as
// outstanding; otherwise it is network management on c, which need not be
// ready yet.
func (l *Link) roundTrip(ctx context.Context, c *linkConn, w *waiter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	mti, _ := w.out.MTI()
	respMTI, ok := codec.ResponseMTI(mti)
	if !ok {
		return fmt.Errorf("front: link %s: %w", l.o.Name, codec.ErrNotRequest)
	}
	if !l.key(&w.key, respMTI, &w.out) {
		return fmt.Errorf("front: link %s: the matching fields are too long for a key", l.o.Name)
	}
	var err error
	if w.frame, err = codec.AppendFrame(w.frame[:0], &l.o.Framing, l.o.Header, &w.out); err != nil {
		return fmt.Errorf("front: link %s: %w", l.o.Name, err)
	}

	user := c == nil
	l.mu.Lock()
	switch {
	case user && l.closing:
		l.mu.Unlock()
		return fmt.Errorf("%w (%w): %s is closed", ErrUnavailable, ErrNotSent, l.o.Name)
	case user:
		if c = l.pick(); c == nil {
			l.mu.Unlock()
			if l.Health() == Down {
				return fmt.Errorf("%w (%w): %s is down", ErrUnavailable, ErrNotSent, l.o.Name)
			}
			return fmt.Errorf("%w: every connection to %s has %d requests in flight", ErrBusy, l.o.Name, l.o.MaxInFlight)
		}
	case c.dead:
		l.mu.Unlock()
		return fmt.Errorf("%w (%w): connection to %s lost", ErrUnavailable, ErrNotSent, l.o.Name)
	default:
		c.inflight.Add(1)
	}
	if _, dup := l.waiters[w.key]; dup {
		l.mu.Unlock()
		c.inflight.Add(-1)
		return fmt.Errorf("%w: %s, MTI %s, STAN %s", ErrDuplicateKey, l.o.Name, respMTI, w.out.Get(11))
	}
	w.conn = c
	l.waiters[w.key] = w
	if user {
		l.active.Add(1)
		l.m.inFlight.Inc()
	}
	l.mu.Unlock()
	defer func() {
		c.inflight.Add(-1)
		if user {
			l.m.inFlight.Dec()
			if l.active.Add(-1) == 0 && l.closed.Load() {
				l.drainOnce.Do(func() { close(l.drained) })
			}
		}
	}()

	select {
	case c.out <- w:
	default:
		// Only waiters abandoned unwritten fill the queue: the writer is
		// stuck on a peer that does not read.
		l.abandon(w, nil)
		return fmt.Errorf("%w (%w): %s is not reading", ErrUnavailable, ErrNotSent, l.o.Name)
	}
	w.timer.Reset(l.o.Timeout)
	defer w.timer.Stop()
	select {
	case err = <-w.done:
	case <-w.timer.C:
		err = l.abandon(w, fmt.Errorf("front: link %s: no answer within %v: %w", l.o.Name, l.o.Timeout, context.DeadlineExceeded))
	case <-ctx.Done():
		err = l.abandon(w, fmt.Errorf("front: link %s: %w", l.o.Name, ctx.Err()))
	}
	return err
}

// abandon removes w from the waiters and returns why. When a reader or a
// lost connection has already claimed w, its delivery is on the way and
// is what counts.
func (l *Link) abandon(w *waiter, why error) error {
	l.mu.Lock()
	mine := l.waiters[w.key] == w
	if mine {
		delete(l.waiters, w.key)
		w.abandoned.Store(true)
	}
	l.mu.Unlock()
	if mine {
		if why == nil {
			why = ErrUnavailable
		}
		return why
	}
	return <-w.done
}

// pick returns the ready connection with the fewest requests in flight,
// a degraded one when none is ready, with a slot reserved; nil when none
// has room. l.mu is held: only here do in-flight counts go up.
func (l *Link) pick() *linkConn {
	var best *linkConn
	bestReady := false
	for i := range l.conns {
		c := l.conns[i].Load()
		if c == nil || c.dead || int(c.inflight.Load()) >= l.o.MaxInFlight {
			continue
		}
		ready := c.state.Load() == connReady
		if best == nil || ready && !bestReady || ready == bestReady && c.inflight.Load() < best.inflight.Load() {
			best, bestReady = c, ready
		}
	}
	if best != nil {
		best.inflight.Add(1)
	}
	return best
}

// Health is Up when every connection is ready, Degraded when some can carry
// requests, Down when none can.
func (l *Link) Health() Health { return Health(l.health.Load()) }

// Outstanding is the number of requests in flight, for least-outstanding
// balancing across endpoints.
func (l *Link) Outstanding() int { return int(l.active.Load()) }

// Name is the endpoint's name.
func (l *Link) Name() string { return l.o.Name }

// Addr is the endpoint's address.
func (l *Link) Addr() string { return l.o.Addr }

func (l *Link) setHealth() {
	l.hmu.Lock()
	defer l.hmu.Unlock()
	ready, usable := 0, 0
	for i := range l.conns {
		if c := l.conns[i].Load(); c != nil {
			usable++
			if c.state.Load() == connReady {
				ready++
			}
		}
	}
	h := Down
	switch {
	case ready == len(l.conns):
		h = Up
	case usable > 0:
		h = Degraded
	}
	if Health(l.health.Swap(int32(h))) != h {
		l.m.health.Set(float64(h))
		l.log.Info("link health", "health", h.String(), "ready", ready, "conns", len(l.conns))
	}
}

// Close stops taking requests, waits up to Timeout for those in flight to
// be answered, then closes the connections; requests still waiting fail
// with ErrUnavailable.
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil
	}
	l.closing = true
	l.closed.Store(true)
	l.mu.Unlock()
	if l.active.Load() > 0 {
		t := time.NewTimer(l.o.Timeout)
		select {
		case <-l.drained:
		case <-t.C:
			l.log.Warn("closing with requests in flight", "in_flight", l.active.Load())
		}
		t.Stop()
	}
	l.cancel()
	for i := range l.conns {
		if c := l.conns[i].Load(); c != nil {
			c.teardown("closed")
		}
	}
	l.wg.Wait()
	l.setHealth()
	return nil
}

// keep holds one connection slot up: connect, serve until the connection
// is lost, back off, connect again, until the link closes.
func (l *Link) keep(slot int) {
	defer l.wg.Done()
	attempt, connected := 0, false
	for l.ctx.Err() == nil {
		c, err := l.connect()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			delay := l.backoff(attempt)
			if attempt == 0 {
				l.log.Warn("cannot connect, retrying", "slot", slot, "err", err, "retry_in", delay)
			} else {
				l.log.Debug("cannot connect, retrying", "slot", slot, "err", err, "attempt", attempt+1, "retry_in", delay)
			}
			attempt++
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		if connected {
			l.m.reconnects.Inc()
		}
		attempt, connected = 0, true
		l.log.Info("connected", "slot", slot)
		l.conns[slot].Store(c)
		l.setHealth()
		reason := c.supervise()
		l.conns[slot].Store(nil)
		l.setHealth()
		if l.ctx.Err() == nil {
			l.log.Warn("connection lost", "slot", slot, "reason", reason)
		}
	}
}

// backoff is the wait before connection attempt n+1: full jitter over an
// exponential ceiling (AWS architecture blog, "Exponential Backoff and
// Jitter"), so that a fleet of switches does not reconnect in step.
func (l *Link) backoff(attempt int) time.Duration {
	ceiling := l.o.BackoffMax
	if attempt < 32 {
		ceiling = min(l.o.BackoffMin<<attempt, l.o.BackoffMax)
	}
	return rand.N(ceiling) + 1
}

// connect dials, completes the TLS handshake, starts the connection's
// reader and writer and signs on when the link should.
func (l *Link) connect() (*linkConn, error) {
	ctx, cancel := context.WithTimeout(l.ctx, l.o.Timeout)
	defer cancel()
	nd := &net.Dialer{Timeout: l.o.Timeout}
	var nc net.Conn
	var err error
	if l.o.TLS == nil {
		nc, err = nd.DialContext(ctx, "tcp", l.o.Addr)
	} else {
		nc, err = (&tls.Dialer{NetDialer: nd, Config: l.o.TLS}).DialContext(ctx, "tcp", l.o.Addr)
	}
	if err != nil {
		return nil, err
	}
	c := &linkConn{l: l, nc: nc, out: make(chan *waiter, l.o.MaxInFlight+4), done: make(chan struct{})}
	c.lastRead.Store(time.Now().UnixNano())
	l.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	if l.o.SignOn {
		rc, err := l.network(ctx, c, l.net.signOn)
		if err == nil && rc != l.net.ok {
			err = fmt.Errorf("sign-on answered %q", rc)
		}
		if err != nil {
			c.teardown("sign_on")
			return nil, fmt.Errorf("sign-on: %w", err)
		}
		l.log.Debug("signed on")
	}
	c.state.Store(connReady)
	return c, nil
}

// network sends a network management request with the given code on c and
// returns the answer's response code.
func (l *Link) network(ctx context.Context, c *linkConn, code string) (string, error) {
	w := l.getWaiter()
	w.out.Reset(l.d)
	err := errors.Join(
		w.out.SetMTI(l.net.mti),
		w.out.SetString(7, time.Now().UTC().Format("0102150405")),
		w.out.SetNumber(11, uint64(l.nextSTAN())),
		w.out.SetString(l.net.field, code),
	)
	if err != nil {
		return "", fmt.Errorf("front: link %s: network management in %s: %w", l.o.Name, l.d.Name(), err)
	}
	if err := l.roundTrip(ctx, c, w); err != nil {
		return "", err
	}
	rc := string(w.in.Get(39))
	l.putWaiter(w)
	return rc, nil
}

// Connection states.
const (
	connConnecting int32 = iota
	connReady
	connDegraded // ready, but the last heartbeat went unanswered
)

// linkConn is one connection of a link: a reader that matches answers to
// waiters and a writer that batches requests.
type linkConn struct {
	l        *Link
	nc       net.Conn
	out      chan *waiter
	inflight atomic.Int32
	state    atomic.Int32
	lastRead atomic.Int64 // unix nanoseconds of the last frame received
	dead     bool         // guarded by l.mu: no new waiter may name this connection
	once     sync.Once
	reason   string // why it was torn down; read after done
	done     chan struct{}
	scratch  codec.Message // the reader's, for answers that fail to scan
}

// teardown fails every request waiting on c with ErrUnavailable (their
// outcome is unknown), and closes the socket.
func (c *linkConn) teardown(reason string) {
	c.once.Do(func() {
		l := c.l
		l.mu.Lock()
		c.dead = true
		var lost []*waiter
		for k, w := range l.waiters {
			if w.conn == c {
				delete(l.waiters, k)
				lost = append(lost, w)
			}
		}
		l.mu.Unlock()
		for _, w := range lost {
			w.done <- fmt.Errorf("%w: connection to %s lost (%s) with the request in flight", ErrUnavailable, l.o.Name, reason)
		}
		c.reason = reason
		c.nc.Close()
		close(c.done)
	})
}

// supervise sends heartbeats while c is idle until c is torn down, and
// returns why it was. A heartbeat unanswered within Timeout degrades the
// connection; two in a row close it.
func (c *linkConn) supervise() string {
	l := c.l
	t := time.NewTimer(l.o.Echo)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-c.done:
			return c.reason
		case <-l.ctx.Done():
			c.teardown("closed")
			return c.reason
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, c.lastRead.Load()))
		if idle < l.o.Echo {
			t.Reset(l.o.Echo - idle)
			continue
		}
		start := time.Now()
		_, err := l.network(l.ctx, c, l.net.echo)
		switch {
		case err == nil:
			l.m.heartbeat.Observe(time.Since(start).Seconds())
			missed = 0
			if c.state.CompareAndSwap(connDegraded, connReady) {
				l.setHealth()
			}
		case errors.Is(err, context.DeadlineExceeded):
			missed++
			l.log.Warn("heartbeat unanswered", "missed", missed, "timeout", l.o.Timeout)
			if missed >= 2 {
				c.teardown("heartbeat")
				return c.reason
			}
			if c.state.CompareAndSwap(connReady, connDegraded) {
				l.setHealth()
			}
		}
		t.Reset(l.o.Echo)
	}
}

// readLoop cuts answers out of the stream, finds each one's waiter by a
// scan of its key, and only then decodes it, into the waiter.
func (c *linkConn) readLoop() {
	l := c.l
	defer l.wg.Done()
	fr, err := codec.NewFrameReader(c.nc, l.o.Framing, 4096)
	if err != nil {
		c.teardown("framing") // validated by NewLink: a bug
		return
	}
	var scan codec.Scan
	var key matchKey
	for {
		_, frame, err := fr.Next()
		if err != nil {
			reason := "read_error"
			if errors.Is(err, net.ErrClosed) {
				reason = "closed"
			}
			c.teardown(reason)
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		if len(frame) == 0 {
			continue // keep-alive
		}
		if err := l.d.Scan(frame, l.scanSet, &scan); err != nil {
			c.badReply(frame, err)
			continue
		}
		mti := scan.MTI()
		if codec.IsRequest(mti) {
			c.request(frame, mti)
			continue
		}
		var w *waiter
		if l.key(&key, mti, &scan) {
			w = c.claim(&key)
		}
		if w == nil {
			l.late(frame, "no request waits for it")
			continue
		}
		w.in.Reset(l.d)
		if err := w.in.Unpack(frame); err != nil {
			field, _ := codec.FieldOf(err)
			w.done <- fmt.Errorf("%w: %s, field %d: %w", ErrBadReply, l.o.Name, field, err)
			continue
		}
		w.done <- nil
	}
}

// claim takes the waiter of key off the table when it was sent on c; nil
// when nobody waits (late, unknown, or an answer before its request left).
func (c *linkConn) claim(key *matchKey) *waiter {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.waiters[*key]
	if w == nil || w.conn != c || !w.sent.Load() {
		return nil
	}
	delete(l.waiters, *key)
	return w
}

// badReply handles an answer that does not scan: when what does decode
// names a waiter, the waiter learns which field is wrong at once instead of
// timing out; otherwise the answer is counted and logged.
func (c *linkConn) badReply(frame []byte, cause error) {
	l := c.l
	m := &c.scratch
	m.Reset(l.d)
	_ = m.Unpack(frame) // the same failure; keeps what decoded before it
	field, _ := codec.FieldOf(cause)
	var key matchKey
	if mti, ok := m.MTI(); ok && !codec.IsRequest(mti) && l.key(&key, mti, m) {
		if w := c.claim(&key); w != nil {
			w.done <- fmt.Errorf("%w: %s, field %d: %w", ErrBadReply, l.o.Name, field, cause)
			return
		}
	}
	l.m.late.Inc()
	l.log.Warn("answer does not decode and matches no request", "mti", m.MTIString(), "field", field, "err", cause)
}

// late counts and logs an answer nobody waits for, masked.
func (l *Link) late(frame []byte, why string) {
	l.m.late.Inc()
	var s codec.Scan
	_ = l.d.Scan(frame, codec.NewScanSet(2, 11, 41), &s)
	mti := s.MTI()
	l.log.Warn("answer dropped: "+why, "mti", string(mti[:]), "stan", string(s.Get(11)),
		"terminal", string(s.Get(41)), "pan", codec.MaskPAN(s.Get(2)))
}

// request answers the host's own network management (an echo test from
// its side); other requests from a host are not the link's to serve.
func (c *linkConn) request(frame []byte, mti [4]byte) {
	l := c.l
	if mti[1] != codec.ClassNetwork {
		l.late(frame, "a request from the host, which a link does not serve")
		return
	}
	req := codec.NewMessage(l.d)
	w := &waiter{}
	if req.Unpack(frame) != nil || w.out.InitResponse(req) != nil || w.out.SetString(39, l.net.ok) != nil {
		l.late(frame, "a network management request that cannot be answered")
		return
	}
	var err error
	if w.frame, err = codec.AppendFrame(nil, &l.o.Framing, l.o.Header, &w.out); err != nil {
		return
	}
	select {
	case c.out <- w:
	default:
	}
}

// writeLoop writes requests as callers queue them, everything ready in one
// write. A write error tears the connection down, which fails its waiters.
func (c *linkConn) writeLoop() {
	l := c.l
	defer l.wg.Done()
	buf := make([]byte, 0, 16<<10)
	for {
		var w *waiter
		select {
		case w = <-c.out:
		case <-c.done:
			return
		}
		buf = c.add(buf[:0], w)
		for more := true; more; {
			select {
			case w = <-c.out:
				buf = c.add(buf, w)
			default:
				more = false
			}
		}
		if len(buf) == 0 {
			continue
		}
		c.nc.SetWriteDeadline(time.Now().Add(l.o.Timeout))
		if _, err := c.nc.Write(buf); err != nil {
			c.teardown("write_error")
			return
		}
		if cap(buf) > 1<<20 {
			buf = make([]byte, 0, 16<<10) // do not keep a burst's buffer forever
		}
	}
}

// add appends w's frame to the batch unless its caller gave up on it.
// After this the writer does not touch w again.
func (c *linkConn) add(buf []byte, w *waiter) []byte {
	if w.abandoned.Load() {
		return buf
	}
	buf = append(buf, w.frame...)
	w.sent.Store(true)
	return buf
}

// linkMetrics are one link's resolved series.
type linkMetrics struct {
	ok, timeout, unavailable, busy, duplicate, badReply, invalid prometheus.Counter

	inFlight   prometheus.Gauge
	late       prometheus.Counter
	reconnects prometheus.Counter
	health     prometheus.Gauge
	heartbeat  prometheus.Observer
}

// newLinkMetrics registers the link series on reg (once per registry: the
// links of one process share them) and resolves the endpoint's children.
func newLinkMetrics(reg prometheus.Registerer, endpoint string) (linkMetrics, error) {
	var errs []error
	requests := sharedmetrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "junction", Subsystem: "link", Name: "requests_total",
		Help: "Requests sent over outbound links, by result (ok, timeout, unavailable, busy, duplicate, bad_reply, invalid).",
	}, []string{"endpoint", "result"}), &errs)
	inFlight := sharedmetrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "junction", Subsystem: "link", Name: "in_flight",
		Help: "Requests waiting for their answer on an outbound link.",
	}, []string{"endpoint"}), &errs)
	late := sharedmetrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "junction", Subsystem: "link", Name: "late_replies_total",
		Help: "Answers no request waited for (late after a timeout, unknown, or undecodable), dropped.",
	}, []string{"endpoint"}), &errs)
	reconnects := sharedmetrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "junction", Subsystem: "link", Name: "reconnects_total",
		Help: "Connections re-established after one was lost.",
	}, []string{"endpoint"}), &errs)
	health := sharedmetrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "junction", Subsystem: "link", Name: "health",
		Help: "Link health: 0 down, 1 degraded, 2 up.",
	}, []string{"endpoint"}), &errs)
	heartbeat := sharedmetrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "junction", Subsystem: "link", Name: "heartbeat_seconds",
		Help:    "Round trip of answered heartbeats (0800/301).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"endpoint"}), &errs)
	if err := errors.Join(errs...); err != nil {
		return linkMetrics{}, err
	}
	return linkMetrics{
		ok:          requests.WithLabelValues(endpoint, "ok"),
		timeout:     requests.WithLabelValues(endpoint, "timeout"),
		unavailable: requests.WithLabelValues(endpoint, "unavailable"),
		busy:        requests.WithLabelValues(endpoint, "busy"),
		duplicate:   requests.WithLabelValues(endpoint, "duplicate"),
		badReply:    requests.WithLabelValues(endpoint, "bad_reply"),
		invalid:     requests.WithLabelValues(endpoint, "invalid"),
		inFlight:    inFlight.WithLabelValues(endpoint),
		late:        late.WithLabelValues(endpoint),
		reconnects:  reconnects.WithLabelValues(endpoint),
		health:      health.WithLabelValues(endpoint),
		heartbeat:   heartbeat.WithLabelValues(endpoint),
	}, nil
}
