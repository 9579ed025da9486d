package remote

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/junction-switch/junction/ledger"
)

// Errors a caller tells apart with errors.Is. Every error a Client returns wraps exactly one.
var (
	// ErrUnavailable: the shard was not reached, or it was and the outcome is unknown (a network
	// failure, a timeout, a 5xx answer, a torn or malformed answer). Nothing may be assumed about
	// a Do or Adjust that failed so: retry it with the same id, which the shard makes idempotent.
	ErrUnavailable = errors.New("remote: shard not reached or outcome unknown")

	// ErrRefused: the shard's server answered 4xx: it did not carry out the request (bad input,
	// an unknown account, a client certificate it does not admit). Repeating it will not help.
	ErrRefused = errors.New("remote: request refused")

	// ErrWrongRegion: the server runs the shard of another region than the client was made
	// for. The request was not carried out; the configuration is wrong.
	ErrWrongRegion = errors.New("remote: server is another region's shard")
)

// StatusError is an error answer from the server. It wraps ErrUnavailable for a 5xx status and
// ErrRefused (or ErrWrongRegion for 409) for a 4xx one.
type StatusError struct {
	Call    string // e.g. "beijing journal"
	Status  int
	Message string // the server's message
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("remote: %s: %d %s: %s", e.Call, e.Status, http.StatusText(e.Status), e.Message)
}

func (e *StatusError) Unwrap() error {
	switch {
	case e.Status == http.StatusConflict:
		return ErrWrongRegion
	case e.Status >= 400 && e.Status < 500:
		return ErrRefused
	}
	return ErrUnavailable
}

// Client timeouts. A call's context bounds it further.
const (
	dialTimeout     = 5 * time.Second
	headerTimeout   = 30 * time.Second // a cutover or a batch under load answers well within it
	callTimeout     = 60 * time.Second // any call, whatever its context allows
	idleTimeout     = 90 * time.Second
	maxIdlePerShard = 4
)

// Client reaches one region's shard in another process over HTTPS with mutual TLS. It has the
// shard's Region, Journal, Cutover, Adjust and Do, so the head ledger and reconciliation use it
// where they would use an in-process shard. It is safe for concurrent use; connections are kept
// alive between calls.
type Client struct {
	base   string // https://host:port, no trailing slash
	region string
	http   *http.Client
	tr     *http.Transport
}

// New returns a client of the shard of region served at baseURL (https://host:port). tlsConfig
// must present a client certificate the server admits and should name the CA that signed the
// server's (RootCAs); New keeps its own copy.
func New(baseURL string, tlsConfig *tls.Config, region string) (*Client, error) {
	var errs []error
	u, err := url.Parse(baseURL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("remote: base URL %q: %w", baseURL, err))
	case u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "":
		errs = append(errs, fmt.Errorf("remote: base URL %q: want https://host:port", baseURL))
	}
	if region == "" {
		errs = append(errs, errors.New("remote: region is empty"))
	}
	if tlsConfig == nil {
		errs = append(errs, errors.New("remote: no TLS configuration: the shard's server requires mutual TLS"))
	} else if len(tlsConfig.Certificates) == 0 && tlsConfig.GetClientCertificate == nil {
		errs = append(errs, errors.New("remote: the TLS configuration has no client certificate"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg := tlsConfig.Clone()
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	tr := &http.Transport{
		Proxy:                 nil, // shard to head is a private link; no environment proxy
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       cfg,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: headerTimeout,
		IdleConnTimeout:       idleTimeout,
		MaxIdleConnsPerHost:   maxIdlePerShard,
		ForceAttemptHTTP2:     true,
	}
	return &Client{
		base:   "https://" + u.Host,
		region: region,
		http:   &http.Client{Transport: tr, Timeout: callTimeout},
		tr:     tr,
	}, nil
}

// Region returns the region of the shard the client reaches.
func (c *Client) Region() string { return c.region }

// Close closes the client's idle connections. Calls after it open new ones.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// Journal returns up to limit journal entries from seq from on (≤ 0 for the server's default
// page, at most MaxLimit), and the shard's last committed seq. Every record is checked (length,
// CRC, seq in order from from); a page that is torn or short is an error wrapping ErrUnavailable,
// never a partial page.
func (c *Client) Journal(ctx context.Context, from uint64, limit int) ([]ledger.Transfer, uint64, error) {
	const call = "journal"
	q := url.Values{"from": {strconv.FormatUint(from, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(min(limit, MaxLimit)))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+pathJournal+"?"+q.Encode(), nil)
	if err != nil {
		return nil, 0, c.errorf(call, ErrUnavailable, err)
	}
	resp, err := c.send(call, req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil ||
		mt != "application/x-junction-journal" || params["v"] != "1" {
		return nil, 0, c.errorf(call, ErrUnavailable, fmt.Errorf("answer of type %q, want %s",
			resp.Header.Get("Content-Type"), contentJournal))
	}
	last, err := strconv.ParseUint(resp.Header.Get(headerLast), 10, 64)
	if err != nil {
		return nil, 0, c.errorf(call, ErrUnavailable, fmt.Errorf("bad %s header", headerLast))
	}
	count, err := strconv.Atoi(resp.Header.Get(headerCount))
	if err != nil {
		return nil, 0, c.errorf(call, ErrUnavailable, fmt.Errorf("bad %s header", headerCount))
	}
	body, err := readBody(resp, maxPage)
	if err != nil {
		return nil, 0, c.errorf(call, ErrUnavailable, fmt.Errorf("read page: %w", err))
	}
	page, err := decodePage(body, from, count)
	if err != nil {
		return nil, 0, c.errorf(call, ErrUnavailable, fmt.Errorf("page from %d: %w", from, err))
	}
	if n := len(page); n > 0 && page[n-1].Seq > last {
		return nil, 0, c.errorf(call, ErrUnavailable, fmt.Errorf("page ends at seq %d beyond the last committed %d",
			page[n-1].Seq, last))
	}
	return page, last, nil
}

// Cutover moves the shard into settlement window window with settlement date date (YYYYMMDD)
// and returns its cutover point, as ledger.Shard.Cutover does.
func (c *Client) Cutover(ctx context.Context, window, date uint32) (ledger.CutoverPoint, error) {
	var p cutoverPoint
	if err := c.post(ctx, "cutover", pathCutover, cutoverRequest{Window: window, Date: date}, &p); err != nil {
		return ledger.CutoverPoint{}, err
	}
	return ledger.CutoverPoint{Window: p.Window, Date: p.Date, Last: p.Last}, nil
}

// Adjust books a reconciliation adjustment, as ledger.Shard.Adjust does.
func (c *Client) Adjust(ctx context.Context, a ledger.Adjustment) (ledger.Result, error) {
	var r result
	if err := c.post(ctx, "adjust", pathAdjust, toAdjustment(a), &r); err != nil {
		return ledger.Result{}, err
	}
	return r.result(), nil
}

// Do submits a channel request, as ledger.Shard.Do does: a nil request or one that is not a
// channel operation is declined 12 without reaching the server. An error means the outcome is
// unknown (ErrUnavailable; retry with the same ID) or the request was refused (ErrRefused).
func (c *Client) Do(ctx context.Context, r *ledger.Request) (ledger.Result, error) {
	if r == nil {
		return ledger.Result{Code: ledger.InvalidTransaction}, nil
	}
	if _, ok := channelOp(r.Op.String()); !ok {
		return ledger.Result{Code: ledger.InvalidTransaction}, nil
	}
	var res result
	if err := c.post(ctx, "do "+r.Op.String(), pathDo, toDoRequest(r), &res); err != nil {
		return ledger.Result{}, err
	}
	return res.result(), nil
}

// post sends in as JSON and decodes the JSON answer into out.
func (c *Client) post(ctx context.Context, call, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return c.errorf(call, ErrRefused, err) // not reached: the wire types always encode
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return c.errorf(call, ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", contentJSON)
	resp, err := c.send(call, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := readBody(resp, maxBody)
	if err != nil {
		return c.errorf(call, ErrUnavailable, fmt.Errorf("read answer: %w", err))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return c.errorf(call, ErrUnavailable, fmt.Errorf("decode answer: %w", err))
	}
	return nil
}

// send does req and returns a 200 answer whose region is the client's; any other outcome is an
// error and the body is closed.
func (c *Client) send(call string, req *http.Request) (*http.Response, error) {
	req.Header.Set(headerRegion, c.region)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.errorf(call, ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg := http.StatusText(resp.StatusCode)
		if b, err := readBody(resp, maxBody); err == nil {
			var e errorBody
			if json.Unmarshal(b, &e) == nil && e.Error != "" {
				msg = e.Error
			} else if s := strings.TrimSpace(string(b)); s != "" {
				msg = s
			}
		}
		return nil, &StatusError{Call: c.region + " " + call, Status: resp.StatusCode, Message: msg}
	}
	if got := resp.Header.Get(headerRegion); got != c.region {
		resp.Body.Close()
		return nil, c.errorf(call, ErrWrongRegion, fmt.Errorf("the server answered as region %q", got))
	}
	return resp, nil
}

func (c *Client) errorf(call string, kind, err error) error {
	return fmt.Errorf("%w: %s %s: %w", kind, c.region, call, err)
}

// readBody reads resp's whole body, at most limit bytes; a longer or shorter body (than its
// Content-Length) is an error.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("body of %d bytes, over %d", resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("body over %d bytes", limit)
	}
	if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
		return nil, fmt.Errorf("body of %d bytes, announced %d", len(b), resp.ContentLength)
	}
	return b, nil
}
