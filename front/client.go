package front

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/junction-switch/junction/codec"
)

// ErrNoMatch means the connection closed or timed out before a response
// matching the request arrived.
var ErrNoMatch = errors.New("front: no matching response")

// Client is a channel connection seen from the terminal side: mutual TLS
// and the channel's framing. Send and Receive may be used from two
// goroutines (one each) to pipeline; Exchange is for one request at a time.
type Client struct {
	tc     net.Conn // a *tls.Conn, or plain TCP
	fr     *codec.FrameReader
	d      *codec.Dialect
	scan   codec.Scan // matches answers without decoding the ones Exchange skips
	f      codec.Framing
	header []byte // the fixed header every request carries (a TPDU)
	wbuf   []byte
}

// ClientOptions says how a client speaks: the channel's dialect and
// framing, and the fixed header it puts on each request (exactly
// Framing.Header bytes; zeros when nil).
type ClientOptions struct {
	Dialect *codec.Dialect
	Framing codec.Framing
	Header  []byte
}

// Dial connects to a channel listener and completes the TLS handshake; with
// a nil cfg it connects in plaintext, for listeners configured so.
func Dial(ctx context.Context, addr string, cfg *tls.Config, o ClientOptions) (*Client, error) {
	if err := o.Framing.Validate(); err != nil {
		return nil, err
	}
	if o.Header == nil {
		o.Header = make([]byte, o.Framing.Header)
	}
	if len(o.Header) != o.Framing.Header {
		return nil, fmt.Errorf("front: a %d-byte header for a framing with %d", len(o.Header), o.Framing.Header)
	}
	var nc net.Conn
	var err error
	if cfg == nil {
		nc, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", addr)
	} else {
		nc, err = (&tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("front: dial %s: %w", addr, err)
	}
	tc := nc
	fr, err := codec.NewFrameReader(tc, o.Framing, 4096)
	if err != nil {
		tc.Close()
		return nil, err
	}
	return &Client{tc: tc, fr: fr, d: o.Dialect, f: o.Framing, header: o.Header}, nil
}

// ErrDialect means a message of another dialect was given to a client.
var ErrDialect = errors.New("front: message dialect differs from the channel's")

// Send writes one message. It must be of the client's dialect.
func (c *Client) Send(m *codec.Message) error {
	if m.Dialect() == nil || m.Dialect().Name() != c.d.Name() {
		return fmt.Errorf("%w (it speaks %s)", ErrDialect, c.d.Name())
	}
	var err error
	if c.wbuf, err = codec.AppendFrame(c.wbuf[:0], &c.f, c.header, m); err != nil {
		return err
	}
	_, err = c.tc.Write(c.wbuf)
	return err
}

// SendRaw writes payload as one frame (a 2-byte binary length, no fixed
// header), as it is: for tests of what the switch does with malformed
// messages.
func (c *Client) SendRaw(payload []byte) error {
	frame := append([]byte{byte(len(payload) >> 8), byte(len(payload))}, payload...)
	_, err := c.tc.Write(frame)
	return err
}

// WriteRaw writes b to the connection as it is, header and all: for tests
// of what the switch does with broken framing.
func (c *Client) WriteRaw(b []byte) error {
	_, err := c.tc.Write(b)
	return err
}

// Receive reads the next message into m, skipping keep-alive frames.
func (c *Client) Receive(m *codec.Message) error {
	_, err := c.ReceiveHeader(m)
	return err
}

// ReceiveHeader is Receive that also returns the frame's fixed header,
// valid until the next receive.
func (c *Client) ReceiveHeader(m *codec.Message) ([]byte, error) {
	for {
		header, frame, err := c.fr.Next()
		if err != nil {
			return nil, err
		}
		if len(frame) == 0 {
			continue
		}
		m.Reset(c.d)
		return header, m.Unpack(frame)
	}
}

// Exchange sends req and waits until ctx ends for its response: the
// response MTI with the same STAN (11) and terminal (41). Other messages
// arriving meanwhile (late answers to earlier requests) are skipped.
func (c *Client) Exchange(ctx context.Context, req, resp *codec.Message) error {
	if dl, ok := ctx.Deadline(); ok {
		c.tc.SetDeadline(dl)
		defer c.tc.SetDeadline(time.Time{})
	}
	mti, _ := req.MTI()
	want, ok := codec.ResponseMTI(mti)
	if !ok {
		return codec.ErrNotRequest
	}
	if err := c.Send(req); err != nil {
		return err
	}
	match := codec.NewScanSet(11, 41)
	for {
		_, frame, err := c.fr.Next()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNoMatch, err)
		}
		if len(frame) == 0 {
			continue
		}
		// Scan for the matching key first: an answer to another request is
		// skipped without being decoded.
		if err := c.d.Scan(frame, match, &c.scan); err != nil {
			resp.Reset(c.d)
			return resp.Unpack(frame) // the same error, and what did decode
		}
		if c.scan.MTI() == want && bytes.Equal(c.scan.Get(11), req.Get(11)) && bytes.Equal(c.scan.Get(41), req.Get(41)) {
			resp.Reset(c.d)
			return resp.Unpack(frame)
		}
	}
}

// ConnectionState is the TLS state of the connection (zero for plaintext).
func (c *Client) ConnectionState() tls.ConnectionState {
	if tc, ok := c.tc.(*tls.Conn); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

// Close closes the connection.
func (c *Client) Close() error { return c.tc.Close() }
