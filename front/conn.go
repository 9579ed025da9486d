package front

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-switch/junction/codec"
)

// conn is one channel connection: a reader goroutine that cuts frames and
// starts a goroutine per request, and a writer goroutine that writes
// responses as they complete (not in request order), batching whatever is
// ready into one write.
type conn struct {
	l    *listener
	srv  *Server
	nc   net.Conn // the TCP connection; deadlines are set here
	tc   *tls.Conn
	peer Peer

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
		l:     l,
		srv:   l.srv,
		nc:    nc,
		peer:  Peer{Channel: l.ch.Name, Institution: l.ch.Institution, Remote: nc.RemoteAddr().String()},
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
	log := c.srv.log.With("channel", ch.Name, "remote", c.peer.Remote)

	c.tc = tls.Server(c.nc, ch.TLS)
	ctx, cancel := context.WithTimeout(c.srv.base, ch.HandshakeTimeout)
	err := c.tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		lm.handshakes.Inc()
		log.Warn("TLS handshake failed", "err", err)
		c.nc.Close()
		return
	}
	c.peer.Identity = c.tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	log = log.With("identity", c.peer.Identity)
	lm.accepted.Inc()
	lm.open.Inc()
	defer lm.open.Dec()
	log.Debug("connection open")

	go c.writeLoop(log)
	reason := c.readLoop(log)
	c.inflight.Wait()
	close(c.out)
	<-c.wrote
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.tc.Close() // sends close_notify
	lm.close(reason)
	log.Debug("connection closed", "reason", reason)
}

// readLoop reads frames until the peer leaves, the connection fails or the
// server drains, and returns the reason.
func (c *conn) readLoop(log *slog.Logger) string {
	ch := &c.l.ch
	lm := c.l.metrics
	fr, err := codec.NewFrameReader(c.tc, ch.Framing, 4096)
	if err != nil {
		log.Error("framing", "err", err) // validated by Listen: a bug
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
		header, frame, err := fr.Next()
		if err != nil {
			return c.readError(err, log)
		}
		lm.frames.Inc()
		if len(frame) == 0 {
			continue // keep-alive
		}
		x := c.srv.pool.Get().(*exchange)
		x.headerLen = copy(x.header[:], header)
		ch.Framing.MirrorHeader(x.header[:x.headerLen])
		x.req.Reset(ch.Dialect)
		if err := x.req.Unpack(frame); err != nil {
			lm.malformed.Inc()
			field, _ := codec.FieldOf(err)
			log.Warn("malformed message", "mti", x.req.MTIString(), "field", field, "err", err)
			_, readable := x.req.MTI()
			c.slots <- struct{}{}
			if c.srv.h.Reject(&c.peer, &x.req, err, &x.resp) {
				c.out <- x
				continue
			}
			<-c.slots
			c.srv.pool.Put(x)
			if !readable {
				// Not even an MTI: the peer's framing or dialect is not ours,
				// and nothing in this stream can be trusted any more.
				return "unreadable"
			}
			continue
		}
		c.slots <- struct{}{}
		c.inflight.Add(1)
		go c.handle(x, log)
	}
}

func (c *conn) readError(err error, log *slog.Logger) string {
	var fse *codec.FrameSizeError
	var ne net.Error
	switch {
	case c.broken.Load():
		return "write_error"
	case errors.Is(err, codec.ErrFrameLength), errors.Is(err, codec.ErrFrameHeader):
		log.Warn("broken framing, closing", "err", err)
		return "bad_framing"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, io.ErrUnexpectedEOF):
		log.Info("peer closed inside a frame")
		return "eof"
	case errors.As(err, &fse):
		log.Warn("frame too large, closing", "size", fse.Size, "max", fse.Max)
		return "frame_too_large"
	case errors.As(err, &ne) && ne.Timeout():
		if c.draining.Load() {
			return "drain"
		}
		log.Info("idle timeout, closing", "idle", c.l.ch.IdleTimeout)
		return "idle"
	default:
		log.Info("read failed", "err", err)
		return "read_error"
	}
}

func (c *conn) handle(x *exchange, log *slog.Logger) {
	defer c.inflight.Done()
	defer func() {
		// A panic here is a bug in the handler, not bad input; it must not
		// take every other connection down with it.
		if r := recover(); r != nil {
			log.Error("handler panic", "panic", r, "stack", string(debug.Stack()))
			<-c.slots
		}
	}()
	if c.srv.h.Serve(c.srv.base, &c.peer, &x.req, &x.resp) {
		c.out <- x
		return
	}
	c.srv.pool.Put(x)
	<-c.slots
}

// writeLoop packs responses into one buffer while more are ready and writes
// the batch with one call. After a write error it keeps draining (so that
// nothing blocks on c.out) and closes the socket to stop the reader.
func (c *conn) writeLoop(log *slog.Logger) {
	defer close(c.wrote)
	buf := make([]byte, 0, 16<<10)
	for x := range c.out {
		buf = c.pack(buf[:0], x, log)
		for more := true; more; {
			select {
			case y, ok := <-c.out:
				if !ok {
					more = false
					break
				}
				buf = c.pack(buf, y, log)
			default:
				more = false
			}
		}
		if c.broken.Load() || len(buf) == 0 {
			continue
		}
		c.nc.SetWriteDeadline(time.Now().Add(c.l.ch.WriteTimeout))
		if _, err := c.tc.Write(buf); err != nil {
			log.Warn("write failed, closing", "err", err)
			c.broken.Store(true)
			c.nc.Close()
		}
		if cap(buf) > 1<<20 {
			buf = make([]byte, 0, 16<<10) // do not keep a burst's buffer forever
		}
	}
}

func (c *conn) pack(buf []byte, x *exchange, log *slog.Logger) []byte {
	out, err := codec.AppendFrame(buf, &c.l.ch.Framing, x.header[:x.headerLen], &x.resp)
	if err != nil {
		log.Warn("response does not pack, dropped", "mti", x.resp.MTIString(), "err", err)
		out = buf
	}
	c.srv.pool.Put(x)
	<-c.slots
	return out
}
