package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"

	"github.com/junction-switch/junction/ledger"
)

// Options configure the handler.
type Options struct {
	Logger *slog.Logger // nil → slog.Default()

	// ClientCNs, when not empty, is the list of client certificate common names admitted; any
	// other verified client is refused 403. Empty admits every client whose certificate the TLS
	// server verified against its ClientCAs.
	ClientCNs []string
}

// Handler serves shard's journal, cutover, adjust and do routes (see the package documentation)
// to every client whose certificate the TLS server verified. The http.Server must be a TLS server
// that verifies client certificates (tls.RequireAndVerifyClientCert); a request without a verified
// chain is refused 403 regardless.
func Handler(shard *ledger.Shard, log *slog.Logger) http.Handler {
	return NewHandler(shard, Options{Logger: log})
}

// NewHandler is Handler with options.
func NewHandler(shard *ledger.Shard, o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &server{
		shard: shard,
		log:   o.Logger.With("component", "ledger/remote", "region", shard.Region()),
		cns:   slices.Clone(o.ClientCNs),
		mux:   http.NewServeMux(),
	}
	s.pages.New = func() any { return new([]byte) }
	s.mux.HandleFunc("GET "+pathJournal, s.journal)
	s.mux.HandleFunc("POST "+pathCutover, s.cutover)
	s.mux.HandleFunc("POST "+pathAdjust, s.adjust)
	s.mux.HandleFunc("POST "+pathDo, s.do)
	return s
}

type server struct {
	shard *ledger.Shard
	log   *slog.Logger
	cns   []string
	mux   *http.ServeMux
	pages sync.Pool // *[]byte: journal page buffers
}

// keepPage is the largest buffer returned to the pool; a bigger one (a page of unusually large
// records) is left to the garbage collector.
const keepPage = 1 << 20

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cn, err := s.authenticate(r)
	if err != nil {
		s.refuse(w, r, http.StatusForbidden, err)
		return
	}
	if want := r.Header.Get(headerRegion); want != "" && want != s.shard.Region() {
		s.refuse(w, r, http.StatusConflict, fmt.Errorf("this is the shard of region %s, not %q",
			s.shard.Region(), want))
		return
	}
	w.Header().Set(headerRegion, s.shard.Region())
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "client", cn)
	s.mux.ServeHTTP(w, r)
}

// authenticate returns the common name of the client's verified certificate. Mutual TLS is the
// only authentication: no verified chain, no access.
func (s *server) authenticate(r *http.Request) (string, error) {
	if r.TLS == nil {
		return "", errors.New("not a TLS connection: a client certificate is required")
	}
	if len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", errors.New("no verified client certificate")
	}
	cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
	if len(s.cns) > 0 && !slices.Contains(s.cns, cn) {
		return cn, fmt.Errorf("client %q is not admitted", cn)
	}
	return cn, nil
}

// journal answers GET /ledger/v1/journal?from=N&limit=M with a binary page.
func (s *server) journal(w http.ResponseWriter, r *http.Request) {
	from, limit, err := journalQuery(r.URL.RawQuery)
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	page, err := s.shard.Journal(from, limit)
	if err != nil {
		s.fail(w, r, "read journal", err)
		return
	}
	// Read after the page, so that last covers it; a commit between the two may still have
	// landed in the page before LastSeq moved, hence the max.
	last := s.shard.Stats().LastSeq
	if n := len(page); n > 0 {
		last = max(last, page[n-1].Seq)
	}

	bp := s.pages.Get().(*[]byte)
	b := (*bp)[:0]
	for i := range page {
		b = appendRecord(b, &page[i])
	}
	h := w.Header()
	h.Set("Content-Type", contentJournal)
	h.Set(headerLast, strconv.FormatUint(last, 10))
	h.Set(headerCount, strconv.Itoa(len(page)))
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if _, err := w.Write(b); err != nil {
		s.log.Debug("journal page not delivered", "from", from, "err", err)
	}
	if cap(b) <= keepPage {
		*bp = b[:0]
		s.pages.Put(bp)
	}
}

// journalQuery parses from and limit. Both are optional (from 1, limit the shard's default
// page); anything else in the query is refused, so that a misspelt parameter is not ignored.
func journalQuery(raw string) (from uint64, limit int, err error) {
	q, err := parseQuery(raw)
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for k, v := range q {
		switch k {
		case "from":
			if from, err = strconv.ParseUint(v, 10, 64); err != nil {
				errs = append(errs, errors.New("from: want a journal seq (unsigned decimal)"))
			}
		case "limit":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				errs = append(errs, fmt.Errorf("limit: want 0..%d (unsigned decimal)", MaxLimit))
			}
			limit = int(min(n, MaxLimit))
		default:
			errs = append(errs, fmt.Errorf("unknown query parameter %q (want from, limit)", k))
		}
	}
	return from, limit, errors.Join(errs...)
}

// parseQuery splits a query into its parameters, refusing one given twice.
func parseQuery(raw string) (map[string]string, error) {
	q := make(map[string]string, 2)
	if raw == "" {
		return q, nil
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errors.New("malformed query string")
	}
	for k, v := range vals {
		if len(v) != 1 {
			return nil, fmt.Errorf("query parameter %q given %d times", k, len(v))
		}
		q[k] = v[0]
	}
	return q, nil
}

// cutover answers POST /ledger/v1/cutover.
func (s *server) cutover(w http.ResponseWriter, r *http.Request) {
	var c cutoverRequest
	if !s.decode(w, r, &c) {
		return
	}
	p, err := s.shard.Cutover(r.Context(), c.Window, c.Date)
	if err != nil {
		s.fail(w, r, "cutover", err)
		return
	}
	s.log.Info("cutover", "window", p.Window, "date", p.Date, "last", p.Last)
	s.reply(w, cutoverPoint{Window: p.Window, Date: p.Date, Last: p.Last})
}

// adjust answers POST /ledger/v1/adjust.
func (s *server) adjust(w http.ResponseWriter, r *http.Request) {
	var a adjustment
	if !s.decode(w, r, &a) {
		return
	}
	res, err := s.shard.Adjust(r.Context(), a.adjustment())
	if err != nil {
		s.fail(w, r, "adjust", err)
		return
	}
	s.reply(w, toResult(res))
}

// do answers POST /ledger/v1/do.
func (s *server) do(w http.ResponseWriter, r *http.Request) {
	var d doRequest
	if !s.decode(w, r, &d) {
		return
	}
	req, err := d.request()
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, err)
		return
	}
	res, err := s.shard.Do(r.Context(), &req)
	if err != nil {
		s.fail(w, r, "do "+req.Op.String(), err)
		return
	}
	s.reply(w, toResult(res))
}

// decode reads r's body as one JSON object into v: at most maxBody bytes, no unknown fields,
// nothing after it. On failure it has answered 400 and returns false.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != contentJSON {
		s.refuse(w, r, http.StatusBadRequest, errors.New("Content-Type must be application/json"))
		return false
	}
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("data after the JSON object")
	}
	if err != nil {
		if _, over := errors.AsType[*http.MaxBytesError](err); over {
			err = fmt.Errorf("body over %d bytes", maxBody)
		} else if errors.Is(err, io.EOF) {
			err = errors.New("empty body")
		}
		s.refuse(w, r, http.StatusBadRequest, fmt.Errorf("bad JSON: %w", err))
		return false
	}
	return true
}

// reply writes v as a 200 JSON answer.
func (s *server) reply(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil { // the wire types hold only numbers and strings
		s.log.Error("encode answer", "err", err)
		http.Error(w, "encode answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentJSON)
	w.Write(append(b, '\n'))
}

// refuse answers a request the server will not carry out, and logs why. Messages name a field at
// most, never a value from the body, so no PAN reaches the log or the client through them.
func (s *server) refuse(w http.ResponseWriter, r *http.Request, status int, err error) {
	s.log.Warn("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
		"status", status, "err", err)
	writeError(w, status, err.Error())
}

// fail answers a request the shard could not carry out: 503 when the shard is closed, the commit
// failed or the request's context ended (the outcome is unknown, or nothing was done, and a retry
// with the same id is safe); 404 for an account that does not exist; 500 otherwise.
func (s *server) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ledger.ErrClosed), errors.Is(err, ledger.ErrCommit),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	case errors.Is(err, ledger.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ledger.ErrWindow):
		status = http.StatusUnprocessableEntity
	}
	s.log.Warn("shard call failed", "op", what, "remote", r.RemoteAddr, "status", status, "err", err)
	writeError(w, status, what+": "+err.Error())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(errorBody{Error: msg})
	w.Header().Set("Content-Type", contentJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
