package switching_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/routing"
	switching "github.com/junction-switch/junction/switch"
	"github.com/prometheus/client_golang/prometheus"
)

const pan = "6299901100000013"

func openShard(t *testing.T) *ledger.Shard {
	t.Helper()
	s, err := ledger.Open(ledger.Options{Dir: t.TempDir(), Region: "beijing", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	if _, err := s.OpenAccount(ctx, ledger.AccountSpec{Type: ledger.Card, Currency: 156, Name: "t", PAN: pan}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Do(ctx, &ledger.Request{Op: ledger.OpDeposit, ID: ledger.NewTxID([]byte("open")), PAN: pan, Amount: 10000, Currency: 156}); err != nil {
		t.Fatal(err)
	}
	return s
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newSwitch(t *testing.T, reg prometheus.Registerer, dests map[string]switching.Destination) *switching.Switch {
	t.Helper()
	routes, err := routing.NewTable([]routing.Rule{
		{Name: "cards", BIN: routing.BINs{"629990"}, Luhn: true, Region: &routing.RegionCode{Offset: 6, Length: 2},
			Regions: map[string]string{"11": "beijing", "31": "shanghai"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := switching.New(switching.Options{Routes: routes, Destinations: dests, Logger: quiet(), Registerer: reg, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

// unavailable is a destination whose link is down: what an outbound link
// reports when no endpoint is healthy.
type unavailable struct{}

func (unavailable) Exchange(context.Context, *codec.Message, *codec.Message) error {
	return fmt.Errorf("link beijing-1: %w", switching.ErrUnavailable)
}

var peer = &front.Peer{Channel: "pos", Institution: "10000001", Identity: "pos"}

var stan atomic.Uint32

// request builds a new transaction: a fresh STAN every time, so that no
// two test requests are retransmissions of each other.
func request(t *testing.T, d *codec.Dialect, typ, p string, amount int64) *codec.Message {
	t.Helper()
	m := codec.NewMessage(d)
	tx := front.Txn{Type: typ, PAN: p, Amount: amount, Currency: 156, STAN: stan.Add(1), Terminal: "T0000001", Time: time.Now()}
	if err := tx.Build(d, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func serve(sw *switching.Switch, req *codec.Message) (*codec.Message, bool) {
	resp := codec.NewMessage(req.Dialect())
	ok := sw.Serve(context.Background(), peer, req, resp)
	return resp, ok
}

func TestServe(t *testing.T) {
	d := codec.ISO87ASCII()
	reg := prometheus.NewRegistry()
	sw := newSwitch(t, reg, map[string]switching.Destination{
		"beijing": ledger.NewHost(openShard(t)), "shanghai": unavailable{},
	})

	cases := []struct {
		name string
		req  func() *codec.Message
		mti  string
		rc   string
	}{
		{"a purchase goes to its region's shard and is approved", func() *codec.Message {
			return request(t, d, codec.TxPurchase, pan, 100)
		}, "0210", "00"},
		{"a purchase above the balance is declined by the shard", func() *codec.Message {
			return request(t, d, codec.TxPurchase, pan, 1_000_000)
		}, "0210", "51"},
		{"a balance inquiry as 0100 is answered 0110", func() *codec.Message {
			m := request(t, d, codec.TxBalance, pan, 0)
			m.SetMTI([4]byte{'0', '1', '0', '0'})
			return m
		}, "0110", "00"},
		{"a pre-authorisation reaches the shard, which holds the amount", func() *codec.Message {
			m := request(t, d, codec.TxPurchase, pan, 100)
			m.SetMTI([4]byte{'0', '1', '0', '0'})
			return m
		}, "0110", "00"},
		{"a reversal reaches the shard, which finds no original", func() *codec.Message {
			m := request(t, d, codec.TxPurchase, pan, 100)
			m.SetMTI([4]byte{'0', '4', '0', '0'})
			return m
		}, "0410", "25"},
		{"a request without field 7 is a format error", func() *codec.Message {
			m := request(t, d, codec.TxPurchase, pan, 100)
			m.Del(7)
			return m
		}, "0210", "30"},
		{"a purchase without an amount is a format error at the shard", func() *codec.Message {
			m := request(t, d, codec.TxPurchase, pan, 100)
			m.Del(4)
			return m
		}, "0210", "30"},
		{"a BIN nobody issues has no issuer", func() *codec.Message {
			return request(t, d, codec.TxPurchase, "4111111111111111", 100)
		}, "0210", "15"},
		{"a bad check digit is an invalid card", func() *codec.Message {
			return request(t, d, codec.TxPurchase, "6299901100000011", 100)
		}, "0210", "14"},
		{"a destination that is down is answered 91", func() *codec.Message {
			return request(t, d, codec.TxPurchase, "6299903100000019", 100)
		}, "0210", "91"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, ok := serve(sw, c.req())
			if !ok || resp.MTIString() != c.mti || string(resp.Get(39)) != c.rc {
				t.Fatalf("answered %v: MTI %s rc %s, want %s %s", ok, resp.MTIString(), resp.Get(39), c.mti, c.rc)
			}
		})
	}

	t.Run("the channel's institution is stamped into field 32 when missing", func(t *testing.T) {
		resp, _ := serve(sw, request(t, d, codec.TxBalance, pan, 0))
		if string(resp.Get(32)) != "10000001" {
			t.Fatalf("32 = %q", resp.Get(32))
		}
	})

	t.Run("network management that reaches the switch is not its business", func(t *testing.T) {
		m := codec.NewMessage(d)
		m.SetMTI([4]byte{'0', '8', '0', '0'})
		m.SetString(11, "000001")
		m.SetString(70, "301")
		resp, ok := serve(sw, m)
		if !ok || resp.MTIString() != "0810" || string(resp.Get(39)) != "12" {
			t.Fatalf("MTI %s rc %s", resp.MTIString(), resp.Get(39))
		}
	})

	t.Run("a response from a terminal gets no answer", func(t *testing.T) {
		m := request(t, d, codec.TxPurchase, pan, 100)
		m.SetMTI([4]byte{'0', '2', '1', '0'})
		if _, ok := serve(sw, m); ok {
			t.Fatal("answered a response")
		}
	})

	t.Run("requests are counted by channel, MTI and response code", func(t *testing.T) {
		if n := requests(t, reg, "pos", "0200", "91"); n != 1 {
			t.Fatalf("counted %v", n)
		}
	})
}

// requests reads junction_switch_requests_total for one label set.
func requests(t *testing.T, reg *prometheus.Registry, channel, mti, rc string) float64 {
	t.Helper()
	want := fmt.Sprintf(`channel="%s",mti="%s",rc="%s"`, channel, mti, rc)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "junction_switch_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				if l.GetName() != "route" {
					parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
			}
			if strings.Join(parts, ",") == want {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestAShardThatIsGoneIsASystemError(t *testing.T) {
	d := codec.ISO87ASCII()
	s := openShard(t)
	sw := newSwitch(t, nil, map[string]switching.Destination{"beijing": ledger.NewHost(s), "shanghai": unavailable{}})
	s.Close()
	resp, ok := serve(sw, request(t, d, codec.TxPurchase, pan, 100))
	if !ok || string(resp.Get(39)) != "96" || resp.Has(38) {
		t.Fatalf("rc %s auth %q", resp.Get(39), resp.Get(38))
	}
}

func TestReject(t *testing.T) {
	d := codec.ISO87ASCII()
	sw := newSwitch(t, nil, map[string]switching.Destination{"beijing": unavailable{}, "shanghai": unavailable{}})
	t.Run("a request with a bad field is answered 30", func(t *testing.T) {
		req := codec.NewMessage(d)
		err := req.Unpack([]byte("0200" + "2000000000000000" + "0000X0"))
		resp := codec.NewMessage(d)
		if !sw.Reject(peer, req, err, resp) || resp.MTIString() != "0210" || string(resp.Get(39)) != "30" {
			t.Fatalf("MTI %s rc %s", resp.MTIString(), resp.Get(39))
		}
	})
	t.Run("a request before sign-on is answered 91", func(t *testing.T) {
		req := request(t, d, codec.TxBalance, pan, 0)
		resp := codec.NewMessage(d)
		if !sw.Reject(peer, req, front.ErrSignOn, resp) || string(resp.Get(39)) != "91" {
			t.Fatalf("rc %s", resp.Get(39))
		}
	})
	t.Run("bytes without an MTI get no answer", func(t *testing.T) {
		req := codec.NewMessage(d)
		err := req.Unpack([]byte("hello"))
		if sw.Reject(peer, req, err, codec.NewMessage(d)) {
			t.Fatal("answered")
		}
	})
}

func TestNewRefusesARouteToNowhere(t *testing.T) {
	routes, _ := routing.NewTable([]routing.Rule{{Name: "r", BIN: routing.BINs{"4"}, Destination: "mars"}}, nil)
	_, err := switching.New(switching.Options{Routes: routes, Destinations: map[string]switching.Destination{}})
	if err == nil || !strings.Contains(err.Error(), `"mars"`) {
		t.Fatalf("err = %v", err)
	}
}

// failing is a destination that fails every exchange with err.
type failing struct{ err error }

func (f failing) Exchange(context.Context, *codec.Message, *codec.Message) error { return f.err }

// TestLinkErrorsHaveTheirCodes: what an outbound link reports decides the
// code: a link that cannot carry the request is 91, a matching key already
// in flight (a retransmission racing its original) 94, an answer that does
// not decode 96. None of them is an approval.
func TestLinkErrorsHaveTheirCodes(t *testing.T) {
	d := codec.ISO87ASCII()
	for _, c := range []struct {
		err error
		rc  string
	}{
		{fmt.Errorf("link beijing-1: %w", front.ErrUnavailable), codec.RCIssuerUnavailable},
		{fmt.Errorf("link beijing-1: %w", front.ErrDuplicateKey), codec.RCDuplicate},
		{fmt.Errorf("link beijing-1: %w", front.ErrBusy), codec.RCIssuerUnavailable},
		{fmt.Errorf("link beijing-1: %w: field 39", front.ErrBadReply), codec.RCSystemError},
		{context.DeadlineExceeded, codec.RCIssuerUnavailable},
	} {
		sw := newSwitch(t, nil, map[string]switching.Destination{"beijing": failing{c.err}, "shanghai": unavailable{}})
		resp, ok := serve(sw, request(t, d, codec.TxPurchase, pan, 100))
		if !ok || string(resp.Get(39)) != c.rc || resp.Has(38) {
			t.Errorf("%v: rc %s auth %q, want %s", c.err, resp.Get(39), resp.Get(38), c.rc)
		}
	}
}
