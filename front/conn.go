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
		c.peer.Identity = tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	c.log = c.log.With("identity", c.peer.Identity)
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
	fr, err := codec.NewFrameReader(c.rw, ch.Framing, 4096)
	if err != nil {
		c.log.Error("framing", "err", err) // validated by Listen: a bug
		return "read_error"
	}
	for {
		if fr.Buffered() == 0 {
			// Waiting for a new frame: the idle limit applies.
			c.nc.SetReadDeadline(time.Now().Add(ch.IdleTimeout))
		}
		if c.draining.Load() {
			return "drain"
		}
		header, payload, err := fr.Next()
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
			continue
		}
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
		if c.draining.Load() {
			return "drain"
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
	buf := make([]byte, 0, 16<<10)
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
			buf = make([]byte, 0, 16<<10) // do not keep a burst's buffer forever
		}
	}
}
