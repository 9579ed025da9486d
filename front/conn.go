package front

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-switch/junction/codec"
)

// conn is one channel connection on the std engine (net + crypto/tls): a
// reader goroutine that cuts frames and starts a goroutine per request, and
// a writer goroutine that writes answers as they complete (not in request
// order), batching whatever is ready into one write. What a frame means is
// the session's business.
type conn struct {
	session
	nc net.Conn // the TCP connection; deadlines are set here
	rw net.Conn // what carries the frames: the TLS connection, or nc itself for plaintext

	// slots bounds the requests of this connection that are being served or
	// waiting to be written: the reader blocks (and so stops reading from
	// the socket) when it is full, which pushes back on the peer.
	slots    chan struct{}
	out      chan *exchange
	inflight sync.WaitGroup
	wrote    chan struct{} // closed when the writer has exited

	draining atomic.Bool
	broken   atomic.Bool // the writer failed; the reader's error is a consequence
	counted  bool        // the connection counts against its identity's limit (guarded by srv.mu)

	fr           *codec.FrameReader
	frameStarted bool // the frame being read has begun: FrameTimeout runs
}

// Read feeds the frame reader. Between frames the idle deadline (set by
// readLoop) applies; once a frame has begun it must be complete within
// FrameTimeout, however slowly its bytes drip in.
func (c *conn) Read(p []byte) (int, error) {
	if !c.frameStarted && c.fr.Buffered() > 0 {
		c.frameStarted = true
		c.nc.SetReadDeadline(time.Now().Add(c.l.ch.FrameTimeout))
	}
	return c.rw.Read(p)
}

func newConn(l *listener, nc net.Conn) *conn {
	return &conn{
		session: session{
			l: l, srv: l.srv,
			peer: Peer{Channel: l.ch.Name, Institution: l.ch.Institution, Remote: nc.RemoteAddr().String()},
		},
		nc:    nc,
		slots: make(chan struct{}, l.ch.MaxInFlight),
		out:   make(chan *exchange, l.ch.MaxInFlight),
		wrote: make(chan struct{}),
	}
}

// drain asks the reader to stop at the next frame boundary; requests in
// flight are still answered.
func (c *conn) drain() {
	c.draining.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

func (c *conn) serve() {
	defer c.srv.release(c)
	ch := &c.l.ch
	lm := c.l.metrics
	c.log = c.srv.log.With("channel", ch.Name, "remote", c.peer.Remote)

	if ch.Plaintext {
		c.rw = c.nc
		c.peer.Identity = ch.PlainIdentity
	} else {
		tc := tls.Server(c.nc, ch.TLS)
		ctx, cancel := context.WithTimeout(c.srv.base, ch.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			lm.handshakes.Inc()
			c.log.Warn("TLS handshake failed", "err", err)
			c.nc.Close()
			return
		}
		c.rw = tc
		cs := tc.ConnectionState()
		if cs.DidResume {
			lm.resumed.Inc()
		}
		id := Identity{Name: cs.PeerCertificates[0].Subject.CommonName, Institution: ch.Institution}
		if len(ch.Identities) > 0 {
			id, _ = identify(ch.Identities, cs.PeerCertificates[0], ch.Institution) // admitted at the handshake
		}
		c.peer.Identity, c.peer.Institution, c.peer.Group = id.Name, id.Institution, id.Group
	}
	c.log = c.log.With("identity", c.peer.Identity)
	if !c.srv.admitIdentity(c) {
		lm.refuse("identity_limit")
		c.log.Warn("connection refused: identity at its connection limit", "max", ch.MaxConnsPerIdentity)
		c.rw.Close()
		return
	}
	lm.accepted.Inc()
	lm.open.Inc()
	defer lm.open.Dec()
	c.log.Debug("connection open")

	go c.writeLoop()
	reason := c.readLoop()
	c.inflight.Wait()
	close(c.out)
	<-c.wrote
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.rw.Close() // TLS sends close_notify
	lm.close(reason)
	c.log.Debug("connection closed", "reason", reason)
}

// readLoop reads frames until the peer leaves, the connection fails or the
// server drains, and returns the reason.
func (c *conn) readLoop() string {
	ch := &c.l.ch
	var err error
	// A small first buffer: an idle terminal should cost little; the reader
	// grows it to the largest frame seen.
	if c.fr, err = codec.NewFrameReader(c, ch.Framing, 1024); err != nil {
		c.log.Error("framing", "err", err) // validated by Listen: a bug
		return "read_error"
	}
	for {
		c.frameStarted = false
		if c.fr.Buffered() == 0 {
			// Waiting for a new frame: the idle limit applies.
			c.nc.SetReadDeadline(time.Now().Add(ch.IdleTimeout))
		}
		if c.draining.Load() {
			return "drain"
		}
		header, payload, err := c.fr.Next()
		if err != nil {
			return c.readError(err)
		}
		x, act := c.accept(header, payload)
		switch act {
		case drop:
			continue
		case hangUp:
			return "unreadable"
		}
		c.acquire()
		if act == reply {
			c.out <- x
		} else {
			c.inflight.Add(1)
			go func() {
				defer c.inflight.Done()
				if c.session.serve(x) {
					c.out <- x
					return
				}
				<-c.slots
			}()
		}
		if ch.Short {
			return "short" // one request, one answer: written before the close
		}
	}
}

// acquire takes an in-flight slot, waiting (and so no longer reading from
// the socket) when the connection has MaxInFlight requests outstanding.
func (c *conn) acquire() {
	select {
	case c.slots <- struct{}{}:
	default:
		c.l.metrics.inFlightFull.Inc()
		c.log.Debug("in-flight limit reached, reading paused", "max", c.l.ch.MaxInFlight)
		c.slots <- struct{}{}
	}
}

func (c *conn) readError(err error) string {
	var fse *codec.FrameSizeError
	var ne net.Error
	switch {
	case c.broken.Load():
		return "write_error"
	case errors.Is(err, codec.ErrFrameLength), errors.Is(err, codec.ErrFrameHeader):
		c.log.Warn("broken framing, closing", "err", err)
		return "bad_framing"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Info("peer closed inside a frame")
		return "eof"
	case errors.As(err, &fse):
		c.log.Warn("frame too large, closing", "size", fse.Size, "max", fse.Max)
		return "frame_too_large"
	case errors.As(err, &ne) && ne.Timeout():
		switch {
		case c.draining.Load():
			return "drain"
		case c.frameStarted:
			c.log.Warn("frame not complete in time, closing", "frame_timeout", c.l.ch.FrameTimeout)
			return "slow_frame"
		}
		c.log.Info("idle timeout, closing", "idle", c.l.ch.IdleTimeout)
		return "idle"
	default:
		c.log.Info("read failed", "err", err)
		return "read_error"
	}
}

// writeLoop packs answers into one buffer while more are ready and writes
// the batch with one call. After a write error it keeps draining (so that
// nothing blocks on c.out) and closes the socket to stop the reader.
func (c *conn) writeLoop() {
	defer close(c.wrote)
	var buf []byte // grown by the first answers, not held by idle connections
	for x := range c.out {
		buf = c.pack(buf[:0], x)
		<-c.slots
		for more := true; more; {
			select {
			case y, ok := <-c.out:
				if !ok {
					more = false
					break
				}
				buf = c.pack(buf, y)
				<-c.slots
			default:
				more = false
			}
		}
		if c.broken.Load() || len(buf) == 0 {
			continue
		}
		c.nc.SetWriteDeadline(time.Now().Add(c.l.ch.WriteTimeout))
		if _, err := c.rw.Write(buf); err != nil {
			c.log.Warn("write failed, closing", "err", err)
			c.broken.Store(true)
			c.nc.Close()
		}
		if cap(buf) > 1<<20 {
			buf = nil // do not keep a burst's buffer forever
		}
	}
}
