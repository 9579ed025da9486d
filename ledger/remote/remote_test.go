package remote_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
	"github.com/junction-switch/junction/ledger/remote"
	"github.com/junction-switch/junction/pki"
)

const (
	cny    = 156
	region = "beijing"
	pan    = "6212345678901234" // the card every test opens
)

// env is one shard served over real mutual TLS on loopback, and what a test needs to reach it.
type env struct {
	shard  *ledger.Shard
	srv    *httptest.Server
	ca     *pki.Authority
	client *remote.Client
	logs   *syncBuffer // the handler's log
}

type envOptions struct {
	clientAuth tls.ClientAuthType // default RequireAndVerifyClientCert
	handler    remote.Options
	wrap       func(http.Handler) http.Handler // to tamper with answers
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	day := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC) // window 1 is 20260301
	shard, err := ledger.Open(ledger.Options{Dir: t.TempDir(), Region: region,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Clock:  func() time.Time { return day }})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := shard.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ca := newCA(t, "junction test CA")
	logs := new(syncBuffer)
	o.handler.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := remote.NewHandler(shard, o.handler)
	if o.wrap != nil {
		h = o.wrap(h)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	if o.clientAuth == 0 {
		o.clientAuth = tls.RequireAndVerifyClientCert
	}
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{issue(t, ca, pki.Request{CommonName: "ledger-" + region,
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})},
		ClientCAs:  pool(ca),
		ClientAuth: o.clientAuth,
		MinVersion: tls.VersionTLS12,
	}
	srv.Config.ErrorLog = slog.NewLogLogger(o.handler.Logger.Handler(), slog.LevelDebug) // handshake refusals
	srv.StartTLS()
	t.Cleanup(srv.Close)
	e := &env{shard: shard, srv: srv, ca: ca, logs: logs}
	e.client = e.newClient(t, region, clientTLS(t, ca, issue(t, ca, pki.Request{CommonName: "head", Client: true})))
	return e
}

func (e *env) newClient(t *testing.T, region string, cfg *tls.Config) *remote.Client {
	t.Helper()
	c, err := remote.New(e.srv.URL, cfg, region)
	if err != nil {
		t.Fatalf("remote.New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func newCA(t *testing.T, name string) *pki.Authority {
	t.Helper()
	ca, err := pki.NewAuthority(name, time.Now())
	if err != nil {
		t.Fatalf("NewAuthority: %v", err)
	}
	return ca
}

func issue(t *testing.T, ca *pki.Authority, r pki.Request) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(r)
	if err != nil {
		t.Fatalf("Issue(%s): %v", r.CommonName, err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	return c
}

func pool(ca *pki.Authority) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// clientTLS trusts serverCA and presents cert.
func clientTLS(t *testing.T, serverCA *pki.Authority, cert tls.Certificate) *tls.Config {
	t.Helper()
	return &tls.Config{RootCAs: pool(serverCA), Certificates: []tls.Certificate{cert}}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func txid(tag string, n int) ledger.TxID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return ledger.NewTxID([]byte(tag), b[:])
}

func openCard(t *testing.T, s *ledger.Shard, pan string) uint64 {
	t.Helper()
	id, err := s.OpenAccount(context.Background(), ledger.AccountSpec{Type: ledger.Card, Currency: cny, Name: "card", PAN: pan})
	if err != nil {
		t.Fatalf("OpenAccount: %v", err)
	}
	return id
}

// book makes n journal entries on the shard directly: a deposit and then purchases.
func book(t *testing.T, s *ledger.Shard, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		r := ledger.Request{Op: ledger.OpPurchase, ID: txid("book", i), PAN: pan, Amount: 1, Currency: cny,
			Terminal: "T0000001", Merchant: "M00000000000001", Acquirer: "12345678", STAN: "000001", RRN: "000000000001"}
		if i == 0 {
			r = ledger.Request{Op: ledger.OpDeposit, ID: txid("book", i), PAN: pan, Amount: 1_000_000, Currency: cny}
		}
		res, err := s.Do(ctx, &r)
		if err != nil || res.Code != ledger.Approved {
			t.Fatalf("Do %s #%d: %+v, %v", r.Op, i, res, err)
		}
	}
}

func shardJournal(t *testing.T, s *ledger.Shard) []ledger.Transfer {
	t.Helper()
	var all []ledger.Transfer
	for from := uint64(1); ; {
		page, err := s.Journal(from, 0)
		if err != nil {
			t.Fatalf("Journal: %v", err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		from = page[len(page)-1].Seq + 1
	}
}

func TestJournal(t *testing.T) {
	e := newEnv(t, envOptions{})
	openCard(t, e.shard, pan)
	book(t, e.shard, 50)
	want := shardJournal(t, e.shard)
	if len(want) != 50 {
		t.Fatalf("shard journal has %d entries, want 50", len(want))
	}
	ctx := context.Background()

	t.Run("pages through the wire equal the shard's journal", func(t *testing.T) {
		for _, limit := range []int{1, 7, 50, 0, 100_000} {
			var got []ledger.Transfer
			for from := uint64(1); ; {
				page, last, err := e.client.Journal(ctx, from, limit)
				if err != nil {
					t.Fatalf("limit %d: Journal(%d): %v", limit, from, err)
				}
				if last != e.shard.Stats().LastSeq {
					t.Fatalf("limit %d: last %d, shard's %d", limit, last, e.shard.Stats().LastSeq)
				}
				if limit > 0 && len(page) > limit {
					t.Fatalf("limit %d: page of %d", limit, len(page))
				}
				if len(page) == 0 {
					break
				}
				direct, err := e.shard.Journal(from, limit)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(page, direct) {
					t.Fatalf("limit %d from %d: page differs from Shard.Journal:\n got %+v\nwant %+v", limit, from, page, direct)
				}
				got = append(got, page...)
				from = page[len(page)-1].Seq + 1
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("limit %d: %d entries over the wire differ from the shard's %d", limit, len(got), len(want))
			}
		}
	})

	t.Run("past the end is an empty page with the last seq", func(t *testing.T) {
		for _, from := range []uint64{51, 52, 1 << 40} {
			page, last, err := e.client.Journal(ctx, from, 10)
			if err != nil || len(page) != 0 || last != 50 {
				t.Fatalf("Journal(%d): %d entries, last %d, %v; want none, 50", from, len(page), last, err)
			}
		}
	})

	t.Run("from 0 reads from the first entry", func(t *testing.T) {
		page, _, err := e.client.Journal(ctx, 0, 3)
		if err != nil || len(page) != 3 || page[0].Seq != 1 {
			t.Fatalf("Journal(0, 3): %d entries, %v", len(page), err)
		}
	})

	t.Run("an entry booked later shows up on the next page", func(t *testing.T) {
		r := ledger.Request{Op: ledger.OpPurchase, ID: txid("late", 1), PAN: pan, Amount: 5, Currency: cny}
		if _, err := e.shard.Do(ctx, &r); err != nil {
			t.Fatal(err)
		}
		page, last, err := e.client.Journal(ctx, 51, 10)
		if err != nil || len(page) != 1 || page[0].Seq != 51 || page[0].Amount != 5 || last != 51 {
			t.Fatalf("Journal(51): %+v, last %d, %v", page, last, err)
		}
	})
}

func TestAuthentication(t *testing.T) {
	ctx := context.Background()

	t.Run("the head's certificate is admitted", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		if _, _, err := e.client.Journal(ctx, 1, 1); err != nil {
			t.Fatalf("Journal: %v", err)
		}
	})

	t.Run("a client without a certificate fails the handshake", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(e.ca)}}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(e.srv.URL + "/ledger/v1/journal")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a client without a certificate got %s", resp.Status)
		}
	})

	t.Run("a certificate from another CA fails the handshake", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		rogue := newCA(t, "rogue CA")
		c := e.newClient(t, region, clientTLS(t, e.ca, issue(t, rogue, pki.Request{CommonName: "head", Client: true})))
		_, _, err := c.Journal(ctx, 1, 1)
		if !errors.Is(err, remote.ErrUnavailable) {
			t.Fatalf("Journal with a rogue certificate: %v, want ErrUnavailable (handshake refused)", err)
		}
	})

	t.Run("a server that does not demand certificates still refuses clients without one", func(t *testing.T) {
		e := newEnv(t, envOptions{clientAuth: tls.VerifyClientCertIfGiven})
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(e.ca)}}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(e.srv.URL + "/ledger/v1/journal")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %s, want 403", resp.Status)
		}
		if !strings.Contains(e.logs.String(), "no verified client certificate") {
			t.Errorf("no log line for the refusal:\n%s", e.logs)
		}
		if _, _, err := e.client.Journal(ctx, 1, 1); err != nil { // and a verified one gets in
			t.Fatalf("Journal with a certificate: %v", err)
		}
	})

	t.Run("a plain-HTTP request is refused", func(t *testing.T) {
		shard, err := ledger.Open(ledger.Options{Dir: t.TempDir(), Region: region})
		if err != nil {
			t.Fatal(err)
		}
		defer shard.Close()
		rec := httptest.NewRecorder()
		remote.Handler(shard, slog.New(slog.DiscardHandler)).ServeHTTP(rec, httptest.NewRequest("GET", "/ledger/v1/journal", nil))
		if rec.Code != http.StatusForbidden {
			t.Fatalf("status %d, want 403", rec.Code)
		}
	})

	t.Run("a client whose name is not on the list is refused", func(t *testing.T) {
		e := newEnv(t, envOptions{handler: remote.Options{ClientCNs: []string{"head", "recon"}}})
		if _, _, err := e.client.Journal(ctx, 1, 1); err != nil {
			t.Fatalf("head: %v", err)
		}
		c := e.newClient(t, region, clientTLS(t, e.ca, issue(t, e.ca, pki.Request{CommonName: "pos", Client: true})))
		_, _, err := c.Journal(ctx, 1, 1)
		var se *remote.StatusError
		if !errors.Is(err, remote.ErrRefused) || !errors.As(err, &se) || se.Status != http.StatusForbidden {
			t.Fatalf("pos: %v, want a 403 ErrRefused", err)
		}
		if !strings.Contains(err.Error(), `client "pos" is not admitted`) {
			t.Errorf("error does not say why: %v", err)
		}
	})
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, envOptions{})
	openCard(t, e.shard, pan)
	book(t, e.shard, 3)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(t, e.ca,
		issue(t, e.ca, pki.Request{CommonName: "head", Client: true}))}}
	defer hc.CloseIdleConnections()
	id := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name, method, path, ctype, body string
		status                          int
		says                            string
	}{
		{"a from that is not a number", "GET", "/ledger/v1/journal?from=x", "", "", 400, "from: want a journal seq"},
		{"a negative limit", "GET", "/ledger/v1/journal?from=1&limit=-1", "", "", 400, "limit: want 0..4096"},
		{"a misspelt parameter", "GET", "/ledger/v1/journal?form=1", "", "", 400, `unknown query parameter "form"`},
		{"a parameter given twice", "GET", "/ledger/v1/journal?from=1&from=2", "", "", 400, `"from" given 2 times`},
		{"a malformed query", "GET", "/ledger/v1/journal?from=%zz", "", "", 400, "malformed query"},
		{"an unknown route", "GET", "/ledger/v1/accounts", "", "", 404, ""},
		{"a journal POST", "POST", "/ledger/v1/journal", "application/json", "{}", 405, ""},
		{"a do GET", "GET", "/ledger/v1/do", "", "", 405, ""},
		{"a body that is not JSON", "POST", "/ledger/v1/do", "application/json", "op=purchase", 400, "bad JSON"},
		{"an empty body", "POST", "/ledger/v1/do", "application/json", "", 400, "empty body"},
		{"another content type", "POST", "/ledger/v1/do", "text/plain", `{"op":"balance"}`, 400, "Content-Type must be application/json"},
		{"an unknown field", "POST", "/ledger/v1/do", "application/json", `{"op":"balance","pan":"` + pan + `","pin":"1234"}`, 400, `unknown field "pin"`},
		{"a PAN where a number belongs", "POST", "/ledger/v1/do", "application/json", `{"op":"purchase","amount":"` + pan + `"}`, 400, "bad JSON"},
		{"data after the object", "POST", "/ledger/v1/do", "application/json", `{"op":"balance"} {}`, 400, "data after the JSON object"},
		{"an oversized body", "POST", "/ledger/v1/do", "application/json", `{"op":"balance","terminal":"` + strings.Repeat("x", 20<<10) + `"}`, 400, "body over 16384 bytes"},
		{"an admin operation", "POST", "/ledger/v1/do", "application/json", `{"op":"open_account","pan":"` + pan + `"}`, 400, "op: not an operation a channel can submit"},
		{"a short TxID", "POST", "/ledger/v1/do", "application/json", `{"op":"purchase","id":"abcd"}`, 400, "want 64 hex digits"},
		{"a TxID that is not hex", "POST", "/ledger/v1/do", "application/json", `{"op":"purchase","id":"` + strings.Repeat("zz", 32) + `"}`, 400, "want 64 hex digits"},
		{"an adjustment with a bad id", "POST", "/ledger/v1/adjust", "application/json", `{"id":"x","amount":1}`, 400, "want 64 hex digits"},
		{"an adjustment with an unknown field", "POST", "/ledger/v1/adjust", "application/json", `{"id":"` + id + `","amount":1,"debit":true}`, 400, `unknown field "debit"`},
		{"a cutover to window 0", "POST", "/ledger/v1/cutover", "application/json", `{"window":0,"date":20260301}`, 422, "cutover refused: window 0"},
		{"a cutover to February 30th", "POST", "/ledger/v1/cutover", "application/json", `{"window":2,"date":20260230}`, 422, "20260230 is not a date"},
		{"a cutover to a date before the window's", "POST", "/ledger/v1/cutover", "application/json", `{"window":2,"date":20260228}`, 422, "before window 1's date"},
		{"a cutover with a date in the wrong shape", "POST", "/ledger/v1/cutover", "application/json", `{"window":2,"date":"2026-03-01"}`, 400, "bad JSON"},
		{"a negative window", "POST", "/ledger/v1/cutover", "application/json", `{"window":-1,"date":20260301}`, 400, "bad JSON"},
	} {
		t.Run(c.name+" is answered "+http.StatusText(c.status), func(t *testing.T) {
			req, err := http.NewRequest(c.method, e.srv.URL+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			msg := string(body)
			var eb struct{ Error string }
			if json.Unmarshal(body, &eb) == nil {
				msg = eb.Error
			}
			if resp.StatusCode != c.status || !strings.Contains(msg, c.says) {
				t.Fatalf("%s %s: %s %s, want %d saying %q", c.method, c.path, resp.Status, body, c.status, c.says)
			}
			if strings.Contains(string(body), pan) {
				t.Errorf("the answer holds the PAN: %s", body)
			}
			// The server keeps serving.
			page, last, err := e.client.Journal(context.Background(), 1, 0)
			if err != nil || len(page) != 3 || last != 3 {
				t.Fatalf("Journal after it: %d entries, last %d, %v", len(page), last, err)
			}
		})
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "request refused") {
		t.Errorf("no log line for refused requests:\n%s", logs)
	}
	if strings.Contains(logs, pan) {
		t.Errorf("the log holds a full PAN:\n%s", logs)
	}
	if n := e.shard.Stats().LastSeq; n != 3 {
		t.Errorf("bad requests booked something: last seq %d, want 3", n)
	}
}

func TestDo(t *testing.T) {
	e := newEnv(t, envOptions{})
	card := openCard(t, e.shard, pan)
	ctx := context.Background()

	dep := ledger.Request{Op: ledger.OpDeposit, ID: txid("dep", 1), PAN: pan, Amount: 10_000, Currency: cny}
	res, err := e.client.Do(ctx, &dep)
	if err != nil || res.Code != ledger.Approved || res.Seq != 1 || res.Ledger != 10_000 || res.Currency != cny {
		t.Fatalf("deposit: %+v, %v", res, err)
	}

	buy := ledger.Request{Op: ledger.OpPurchase, ID: txid("buy", 1), PAN: pan, Amount: 2_500, Currency: cny,
		Terminal: "T0000001", Merchant: "M00000000000001", Acquirer: "12345678", STAN: "000042", RRN: "604212345678"}
	res, err = e.client.Do(ctx, &buy)
	if err != nil || res.Code != ledger.Approved || res.Seq != 2 || res.Ledger != 7_500 || res.Available != 7_500 || len(res.AuthCode) != 6 {
		t.Fatalf("purchase: %+v, %v", res, err)
	}

	t.Run("a retransmission replays the first result", func(t *testing.T) {
		again, err := e.client.Do(ctx, &buy)
		want := res
		want.Replayed = true
		if err != nil || again != want {
			t.Fatalf("replay: %+v, %v; want %+v", again, err, want)
		}
	})

	t.Run("the booking is the shard's, with its annotations", func(t *testing.T) {
		a, err := e.shard.Account(card)
		if err != nil || a.Balance() != 7_500 {
			t.Fatalf("card: %+v, %v", a, err)
		}
		j, err := e.shard.Journal(2, 1)
		if err != nil || len(j) != 1 {
			t.Fatal(j, err)
		}
		if j[0].TxID != buy.ID || j[0].Terminal != buy.Terminal || j[0].Merchant != buy.Merchant || j[0].Amount != 2_500 {
			t.Fatalf("entry %+v", j[0])
		}
	})

	t.Run("a reversal names its original by TxID", func(t *testing.T) {
		rev := ledger.Request{Op: ledger.OpReversal, ID: txid("rev", 1), PAN: pan, Amount: 2_500, Currency: cny, Original: buy.ID}
		r, err := e.client.Do(ctx, &rev)
		if err != nil || r.Code != ledger.Approved || r.Ledger != 10_000 {
			t.Fatalf("reversal: %+v, %v", r, err)
		}
	})

	t.Run("a decline is a result, not an error", func(t *testing.T) {
		big := ledger.Request{Op: ledger.OpPurchase, ID: txid("buy", 2), PAN: pan, Amount: 1_000_000, Currency: cny}
		r, err := e.client.Do(ctx, &big)
		if err != nil || r.Code != ledger.InsufficientFunds {
			t.Fatalf("purchase beyond the balance: %+v, %v", r, err)
		}
		bal := ledger.Request{Op: ledger.OpBalance, PAN: "6299999999999999", Currency: cny}
		if r, err := e.client.Do(ctx, &bal); err != nil || r.Code != ledger.UnknownCard {
			t.Fatalf("balance of an unknown card: %+v, %v", r, err)
		}
	})

	t.Run("a nil request or an admin op is declined 12 without a call", func(t *testing.T) {
		before := e.shard.Stats().Requests
		for _, r := range []*ledger.Request{nil, {Op: 0}, {Op: ledger.Op(200)}} {
			if res, err := e.client.Do(ctx, r); err != nil || res.Code != ledger.InvalidTransaction {
				t.Fatalf("Do(%+v): %+v, %v", r, res, err)
			}
		}
		if e.shard.Stats().Requests != before {
			t.Fatal("the shard saw them")
		}
	})
}

func TestAdjust(t *testing.T) {
	e := newEnv(t, envOptions{})
	card := openCard(t, e.shard, pan)
	ctx := context.Background()

	a := ledger.Adjustment{ID: txid("adj", 1), PAN: pan, Credit: true, Amount: 300, Currency: cny,
		Acquirer: "12345678", STAN: "000007", RRN: "604200000007", Merchant: "M00000000000001"}
	res, err := e.client.Adjust(ctx, a)
	if err != nil || res.Code != ledger.Approved || res.Seq == 0 {
		t.Fatalf("Adjust: %+v, %v", res, err)
	}
	if acct, err := e.shard.Account(card); err != nil || acct.Balance() != 300 {
		t.Fatalf("card after a credit adjustment: %+v, %v", acct, err)
	}
	page, _, err := e.client.Journal(ctx, res.Seq, 1)
	if err != nil || len(page) != 1 {
		t.Fatalf("Journal: %v", err)
	}
	if got := page[0]; got.Kind != ledger.KindAdjust || got.Credit != card || got.Debit != ledger.SuspenseID ||
		got.Amount != 300 || got.RRN != a.RRN || got.STAN != a.STAN || got.Acquirer != a.Acquirer {
		t.Fatalf("adjustment entry %+v", got)
	}

	t.Run("the same id replays", func(t *testing.T) {
		again, err := e.client.Adjust(ctx, a)
		if err != nil || !again.Replayed || again.Seq != res.Seq {
			t.Fatalf("again: %+v, %v", again, err)
		}
	})

	t.Run("by account id, a debit", func(t *testing.T) {
		d := ledger.Adjustment{ID: txid("adj", 2), Account: card, Amount: 100, Currency: cny}
		r, err := e.client.Adjust(ctx, d)
		if err != nil || r.Code != ledger.Approved {
			t.Fatalf("Adjust: %+v, %v", r, err)
		}
		if acct, _ := e.shard.Account(card); acct.Balance() != 200 {
			t.Fatalf("balance %d, want 200", acct.Balance())
		}
	})
}

func TestCutover(t *testing.T) {
	e := newEnv(t, envOptions{})
	openCard(t, e.shard, pan)
	book(t, e.shard, 4)
	ctx := context.Background()

	p, err := e.client.Cutover(ctx, 2, 20260302)
	if err != nil {
		t.Fatalf("Cutover: %v", err)
	}
	if want := (ledger.CutoverPoint{Window: 2, Date: 20260302, Last: 4}); p != want {
		t.Fatalf("Cutover: %+v, want %+v", p, want)
	}
	if again, err := e.client.Cutover(ctx, 2, 20260302); err != nil || again != p {
		t.Fatalf("Cutover again: %+v, %v; want %+v", again, err, p)
	}
	r := ledger.Request{Op: ledger.OpPurchase, ID: txid("w2", 1), PAN: pan, Amount: 1, Currency: cny}
	res, err := e.client.Do(ctx, &r)
	if err != nil || res.Window != 2 || res.SettleDate != 20260302 {
		t.Fatalf("purchase after the cutover: %+v, %v", res, err)
	}
	page, _, err := e.client.Journal(ctx, 5, 1)
	if err != nil || len(page) != 1 || page[0].Window != 2 || page[0].SettleDate != 20260302 {
		t.Fatalf("entry after the cutover: %+v, %v", page, err)
	}
}

func TestFailures(t *testing.T) {
	ctx := context.Background()

	t.Run("a client of another region is refused before the shard acts", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		openCard(t, e.shard, pan)
		c := e.newClient(t, "shanghai", clientTLS(t, e.ca, issue(t, e.ca, pki.Request{CommonName: "head", Client: true})))
		dep := ledger.Request{Op: ledger.OpDeposit, ID: txid("dep", 1), PAN: pan, Amount: 1, Currency: cny}
		_, err := c.Do(ctx, &dep)
		if !errors.Is(err, remote.ErrWrongRegion) {
			t.Fatalf("Do: %v, want ErrWrongRegion", err)
		}
		if _, _, err := c.Journal(ctx, 1, 1); !errors.Is(err, remote.ErrWrongRegion) {
			t.Fatalf("Journal: %v, want ErrWrongRegion", err)
		}
		if n := e.shard.Stats().LastSeq; n != 0 {
			t.Fatalf("the shard booked %d entries", n)
		}
	})

	t.Run("a closed shard is 503, outcome unknown", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		openCard(t, e.shard, pan)
		if err := e.shard.Close(); err != nil {
			t.Fatal(err)
		}
		dep := ledger.Request{Op: ledger.OpDeposit, ID: txid("dep", 1), PAN: pan, Amount: 1, Currency: cny}
		_, err := e.client.Do(ctx, &dep)
		var se *remote.StatusError
		if !errors.Is(err, remote.ErrUnavailable) || !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
			t.Fatalf("Do: %v, want a 503 ErrUnavailable", err)
		}
		if _, _, err := e.client.Journal(ctx, 1, 1); !errors.Is(err, remote.ErrUnavailable) {
			t.Fatalf("Journal: %v, want ErrUnavailable", err)
		}
	})

	t.Run("a server that is gone is ErrUnavailable", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.srv.Close()
		if _, _, err := e.client.Journal(ctx, 1, 1); !errors.Is(err, remote.ErrUnavailable) {
			t.Fatalf("Journal: %v, want ErrUnavailable", err)
		}
	})

	t.Run("a torn page is refused whole", func(t *testing.T) {
		for _, c := range []struct {
			name string
			cut  func(body []byte) []byte
			says string
		}{
			{"a record cut short", func(b []byte) []byte { return b[:len(b)-3] }, "torn"},
			{"a record missing", func(b []byte) []byte { return b[:lastRecord(b)] }, "short page: 2 of 3"},
			{"a flipped bit", func(b []byte) []byte { b[len(b)-5] ^= 1; return b }, "record 3"},
		} {
			t.Run(c.name, func(t *testing.T) {
				e := newEnv(t, envOptions{wrap: tamper(c.cut)})
				openCard(t, e.shard, pan)
				book(t, e.shard, 3)
				page, _, err := e.client.Journal(ctx, 1, 3)
				if !errors.Is(err, remote.ErrUnavailable) || !strings.Contains(err.Error(), c.says) || page != nil {
					t.Fatalf("Journal: %d entries, %v; want ErrUnavailable saying %q", len(page), err, c.says)
				}
			})
		}
	})
}

// lastRecord returns the offset of the last record of a journal page body.
func lastRecord(b []byte) int {
	at := 0
	for next := 0; next < len(b); next += 4 + int(binary.BigEndian.Uint32(b[next:])) {
		at = next
	}
	return at
}

// tamper serves the handler's journal pages with their body passed through cut, and a
// Content-Length that matches what is sent.
func tamper(cut func([]byte) []byte) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			if strings.HasPrefix(r.URL.Path, "/ledger/v1/journal") && rec.Code == 200 {
				body = cut(body)
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
}

func TestNew(t *testing.T) {
	ca := newCA(t, "ca")
	good := clientTLS(t, ca, issue(t, ca, pki.Request{CommonName: "head", Client: true}))
	for _, c := range []struct {
		name, url string
		cfg       *tls.Config
		region    string
		says      string
	}{
		{"plain http", "http://127.0.0.1:1", good, region, "want https://host:port"},
		{"a path", "https://127.0.0.1:1/ledger", good, region, "want https://host:port"},
		{"no host", "https://", good, region, "want https://host:port"},
		{"no region", "https://127.0.0.1:1", good, "", "region is empty"},
		{"no TLS", "https://127.0.0.1:1", nil, region, "requires mutual TLS"},
		{"no client certificate", "https://127.0.0.1:1", &tls.Config{RootCAs: pool(ca)}, region, "no client certificate"},
	} {
		t.Run(c.name+" is refused", func(t *testing.T) {
			if _, err := remote.New(c.url, c.cfg, c.region); err == nil || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("New: %v, want an error saying %q", err, c.says)
			}
		})
	}
	if c, err := remote.New("https://127.0.0.1:1/", good, region); err != nil || c.Region() != region {
		t.Fatalf("New with a trailing slash: %v", err)
	}
}

// The client is a head.Source: the head merges a remote shard as it merges a local one.
var _ head.Source = (*remote.Client)(nil)

func TestHeadPullsThroughTheClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	openCard(t, e.shard, pan)
	book(t, e.shard, 30)
	h, err := head.Open(head.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("head.Open: %v", err)
	}
	defer h.Close()
	n, err := h.Pull(context.Background(), e.client, 7)
	if err != nil || n != 30 || h.HighWater(region) != 30 {
		t.Fatalf("Pull: %d applied, high water %d, %v; want 30", n, h.HighWater(region), err)
	}
	got, err := h.Entries(head.Query{Region: region})
	if err != nil {
		t.Fatalf("Entries: %v", err)
	}
	want := shardJournal(t, e.shard)
	if len(got) != len(want) {
		t.Fatalf("head has %d entries, the shard %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Region != region || !reflect.DeepEqual(got[i].Transfer, want[i]) {
			t.Fatalf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
