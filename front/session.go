package front

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/junction-switch/junction/codec"
)

// ErrSignOn is the cause Handler.Reject gets for a financial request on a
// channel that must sign on first, from a connection that has not.
var ErrSignOn = errors.New("front: not signed on")

// session is the protocol state of one channel connection, whatever engine
// carries its bytes (std net + crypto/tls, or gnet for plaintext): it turns
// frames into exchanges, answers network management itself, keeps the
// sign-on state, runs the handler and packs answers into frames. Engines
// only move bytes and bound the work in flight.
type session struct {
	l        *listener
	srv      *Server
	peer     Peer
	log      *slog.Logger
	signedOn atomic.Bool
}

// action is what an engine does with a frame after session.accept.
type action uint8

const (
	// dispatch: run session.serve on its own goroutine, then write the answer.
	dispatch action = iota
	// reply: x.resp is ready; write it.
	reply
	// drop: nothing to answer (a keep-alive, a message that wants no answer).
	drop
	// hangUp: the stream cannot be trusted any more; close the connection.
	hangUp
)

// accept decodes one frame into an exchange from the server's pool. The
// exchange comes back with dispatch and reply; the caller owns it until
// pack (or release) returns it.
func (s *session) accept(header, payload []byte) (*exchange, action) {
	lm := s.l.metrics
	lm.frames.Inc()
	if len(payload) == 0 {
		return nil, drop // keep-alive
	}
	ch := &s.l.ch
	x := s.srv.pool.Get().(*exchange)
	x.ctx.received = time.Now()
	x.headerLen = copy(x.header[:], header)
	ch.Framing.MirrorHeader(x.header[:x.headerLen])
	x.req.Reset(ch.Dialect)
	if err := x.req.Unpack(payload); err != nil {
		lm.malformed.Inc()
		field, _ := codec.FieldOf(err)
		s.log.Warn("malformed message", "mti", x.req.MTIString(), "field", field, "err", err)
		_, readable := x.req.MTI()
		if s.srv.h.Reject(&s.peer, &x.req, err, &x.resp) {
			return x, reply
		}
		s.release(x)
		if !readable {
			// Not even an MTI: the peer's framing or dialect is not ours, and
			// nothing in this stream can be trusted any more.
			return nil, hangUp
		}
		return nil, drop
	}
	mti, _ := x.req.MTI()
	if mti[1] == codec.ClassNetwork && codec.IsRequest(mti) {
		if s.isCutover(x, mti) {
			// The head ledger may wait for a shard: not on the reader
			// (nor on a gnet event loop), which would stop the connection.
			return x, dispatch
		}
		s.network(x, mti)
		return x, reply
	}
	if ch.SignOn && !s.signedOn.Load() && codec.IsRequest(mti) {
		lm.refused("not_signed_on")
		s.log.Info("request before sign-on refused", "mti", string(mti[:]), "stan", string(x.req.Get(11)))
		if s.srv.h.Reject(&s.peer, &x.req, ErrSignOn, &x.resp) {
			return x, reply
		}
		s.release(x)
		return nil, drop
	}
	return x, dispatch
}

// Network management codes: 1987 field 70, 1993 field 24 (function code).
const (
	signOn87, signOff87, echo87, cutover87 = "001", "002", "301", "201"
	signOn93, signOff93, echo93, cutover93 = "801", "802", "831", "821"
)

// network answers a network management request at the edge: echo test,
// sign-on and sign-off, and cutover where the channel takes it, in the
// channel's own dialect (field 70 and response code 00 for 1987; field 24
// and action code 800 for 1993).
func (s *session) network(x *exchange, mti [4]byte) {
	v93 := s.l.ch.Dialect.Layout().Version == '1'
	codeField, ok, missing, unknown, failed := 70, "00", "30", "12", "96"
	if v93 {
		codeField, ok, missing, unknown, failed = 24, "800", "904", "902", "909"
	}
	rc := ok
	if err := x.resp.InitResponse(&x.req); err != nil {
		return // a request MTI always has a response MTI
	}
	switch code := string(x.req.Get(codeField)); code {
	case echo87, echo93:
	case signOn87, signOn93:
		s.signedOn.Store(true)
		s.l.metrics.signOns.Inc()
		s.log.Info("signed on")
	case signOff87, signOff93:
		s.signedOn.Store(false)
		s.log.Info("signed off")
	case cutover87, cutover93:
		rc = s.cutover(mti, ok, unknown, failed)
	case "":
		rc = missing
	default:
		rc = unknown
	}
	if mti[2] != '0' { // an advice (0820) is acknowledged, whatever it says
		rc = ok
	}
	if err := x.resp.SetString(39, rc); err != nil {
		s.log.Error("network management answer", "err", err)
	}
}

// cutover runs the channel's Cutover for an 0800 (or 1804) cutover request
// and returns the answer's code; an advice of one is only acknowledged, and
// a channel without Cutover does not take it.
func (s *session) cutover(mti [4]byte, ok, unknown, failed string) string {
	switch {
	case mti[2] != '0':
		return ok
	case s.l.ch.Cutover == nil:
		s.log.Warn("cutover request refused: the channel does not take cutovers")
		return unknown
	}
	if err := s.l.ch.Cutover(s.srv.base, &s.peer); err != nil {
		s.log.Error("cutover failed", "err", err)
		return failed
	}
	s.log.Info("cutover by network management request")
	return ok
}

// isCutover reports whether x is a cutover request (not an advice) that
// the channel's Cutover runs.
func (s *session) isCutover(x *exchange, mti [4]byte) bool {
	if mti[2] != '0' || s.l.ch.Cutover == nil {
		return false
	}
	field, code := 70, cutover87
	if s.l.ch.Dialect.Layout().Version == '1' {
		field, code = 24, cutover93
	}
	return string(x.req.Get(field)) == code
}

// serve runs the handler for a dispatched exchange, or the cutover that
// accept dispatched, and reports whether its answer is to be written; when
// it is not, x has been released.
func (s *session) serve(x *exchange) (write bool) {
	defer func() {
		// A panic here is a bug in the handler, not bad input; it must not
		// take every other connection down with it. The exchange is not
		// reused: the handler may still hold parts of it.
		if r := recover(); r != nil {
			s.log.Error("handler panic", "panic", r, "stack", string(debug.Stack()))
			write = false
		}
	}()
	if mti, _ := x.req.MTI(); mti[1] == codec.ClassNetwork && codec.IsRequest(mti) {
		s.network(x, mti) // a cutover (isCutover)
		return true
	}
	if s.srv.h.Serve(&x.ctx, &s.peer, &x.req, &x.resp) {
		return true
	}
	s.release(x)
	return false
}

// pack appends x's answer as a frame to buf and releases x.
func (s *session) pack(buf []byte, x *exchange) []byte {
	out, err := codec.AppendFrame(buf, &s.l.ch.Framing, x.header[:x.headerLen], &x.resp)
	if err != nil {
		s.log.Warn("response does not pack, dropped", "mti", x.resp.MTIString(), "err", err)
		out = buf
	}
	s.release(x)
	return out
}

func (s *session) release(x *exchange) { s.srv.pool.Put(x) }

// requestContext is the context Handler.Serve gets: the server's, which
// ends when a drain gives up, plus when the request's frame was read. It
// lives in the pooled exchange, so handing it over allocates nothing; a
// handler must not keep it after Serve returns.
type requestContext struct {
	context.Context
	received time.Time
}

type receivedKey struct{}

func (c *requestContext) Value(key any) any {
	if key == (receivedKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// WithReceived is a context carrying received as the time a request's
// frame was read, as Handler.Serve's does: for handlers called by other
// means (tests, replays).
func WithReceived(parent context.Context, received time.Time) context.Context {
	return &requestContext{Context: parent, received: received}
}

// Received is when the frame of the request that ctx serves was read and
// cut, as Handler.Serve's context carries it; the zero time for any other
// context. The time from it to the handler is the front's share of the
// request's latency: decoding, and waiting for a goroutine.
func Received(ctx context.Context) time.Time {
	if c, ok := ctx.Value(receivedKey{}).(*requestContext); ok {
		return c.received
	}
	return time.Time{}
}
