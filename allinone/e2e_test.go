package allinone_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/pki"
)

const (
	richPAN = "6299901100000013" // beijing, 200 000.00 CNY
	poorPAN = "6299901100000021" // beijing, 500.00 CNY
	shPAN   = "6299903100000019" // shanghai, 50 000.00 CNY
)

// testConfig is the local deployment with an HTTP endpoint on a free port.
func testConfig(dir string) allinone.Config {
	cfg := allinone.LocalConfig(dir)
	cfg.HTTP = "127.0.0.1:0"
	return cfg
}

func start(t *testing.T, cfg allinone.Config) *allinone.Node {
	t.Helper()
	return startLogging(t, cfg, io.Discard)
}

// startLogging is start with the node's log written to logs.
func startLogging(t *testing.T, cfg allinone.Config, logs io.Writer) *allinone.Node {
	t.Helper()
	n, err := allinone.Start(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n
}

func clientTLS(t *testing.T, cfg allinone.Config, channel string) *tls.Config {
	t.Helper()
	cert, key := pki.ClientFiles(cfg.PKIDir, channel)
	c, err := front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(cfg.PKIDir)}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func dial(t *testing.T, n *allinone.Node, cfg allinone.Config, channel string) *front.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := n.Wire(channel)
	c, err := front.Dial(ctx, n.Addr(channel).String(), clientTLS(t, cfg, channel), front.ClientOptions{Dialect: w.Dialect, Framing: w.Framing, Header: w.Header})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var stanSeq struct {
	sync.Mutex
	n uint32
}

func nextSTAN() uint32 {
	stanSeq.Lock()
	defer stanSeq.Unlock()
	stanSeq.n++
	return stanSeq.n
}

func txn(typ, pan string, amount int64) front.Txn {
	return front.Txn{
		Type: typ, PAN: pan, Amount: amount, Currency: 156, STAN: nextSTAN(),
		Terminal: "TERM0001", Merchant: "E2E SHOP", Time: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
	}
}

func exchange(t *testing.T, c *front.Client, d *codec.Dialect, tx front.Txn) *codec.Message {
	t.Helper()
	req, resp := codec.NewMessage(d), codec.NewMessage(d)
	if err := tx.Build(d, req); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Exchange(ctx, req, resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

func balance(t *testing.T, n *allinone.Node, region, pan string) int64 {
	t.Helper()
	a, err := n.Shard(region).AccountByPAN(pan)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance()
}

func journalLen(t *testing.T, n *allinone.Node, region string) int {
	t.Helper()
	j, err := n.Shard(region).Journal(1, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return len(j)
}

func rc(m *codec.Message) string { return string(m.Get(39)) }

func TestEndToEnd(t *testing.T) {
	cfg := testConfig(t.TempDir())
	n := start(t, cfg)
	d := n.Dialect()
	pos := dial(t, n, cfg, "pos")

	t.Run("a purchase is approved, booked once and debits the card by the exact amount", func(t *testing.T) {
		before, settleBefore := balance(t, n, "beijing", richPAN), settlement(t, n, "beijing")
		resp := exchange(t, pos, d, txn(codec.TxPurchase, richPAN, 1234))
		if resp.MTIString() != "0210" || rc(resp) != "00" || len(resp.Get(38)) != 6 {
			t.Fatalf("MTI %s rc %s auth %q", resp.MTIString(), rc(resp), resp.Get(38))
		}
		if got := balance(t, n, "beijing", richPAN); got != before-1234 {
			t.Fatalf("balance %d, want %d", got, before-1234)
		}
		if got := settlement(t, n, "beijing"); got != settleBefore+1234 {
			t.Fatalf("settlement-payable credited %d, want %d", got-settleBefore, 1234)
		}
		amounts, err := codec.ParseAdditionalAmounts(resp.Get(54))
		if err != nil || len(amounts) != 2 || amounts[0].Amount != before-1234 || amounts[0].Currency != 156 {
			t.Fatalf("field 54 %q: %+v %v", resp.Get(54), amounts, err)
		}
		if string(resp.Get(32)) != "10000001" {
			t.Fatalf("field 32 = %q, want the pos channel's institution", resp.Get(32))
		}
	})

	t.Run("a balance inquiry answers the balance in field 54 and books nothing", func(t *testing.T) {
		j := journalLen(t, n, "shanghai")
		resp := exchange(t, dial(t, n, cfg, "kiosk"), d, txn(codec.TxBalance, shPAN, 0))
		amounts, err := codec.ParseAdditionalAmounts(resp.Get(54))
		if rc(resp) != "00" || err != nil || len(amounts) != 2 {
			t.Fatalf("rc %s, 54 %q", rc(resp), resp.Get(54))
		}
		if amounts[0].AmountType != codec.AmountLedger || amounts[0].Amount != balance(t, n, "shanghai", shPAN) {
			t.Fatalf("ledger amount set %+v", amounts[0])
		}
		if string(resp.Get(54)[:4]) != "0001" || resp.Has(38) {
			t.Fatalf("54 %q, 38 %q", resp.Get(54), resp.Get(38))
		}
		if journalLen(t, n, "shanghai") != j {
			t.Fatal("an inquiry was journaled")
		}
	})

	t.Run("a purchase above the balance is declined 51 and changes nothing", func(t *testing.T) {
		before, j := balance(t, n, "beijing", poorPAN), journalLen(t, n, "beijing")
		resp := exchange(t, pos, d, txn(codec.TxPurchase, poorPAN, before+1))
		if rc(resp) != "51" || resp.Has(38) {
			t.Fatalf("rc %s auth %q", rc(resp), resp.Get(38))
		}
		if balance(t, n, "beijing", poorPAN) != before || journalLen(t, n, "beijing") != j {
			t.Fatal("a declined purchase changed the ledger")
		}
	})

	t.Run("a retransmission gets the first answer and is not booked twice", func(t *testing.T) {
		tx := txn(codec.TxPurchase, richPAN, 5000)
		first := exchange(t, pos, d, tx)
		after, j := balance(t, n, "beijing", richPAN), journalLen(t, n, "beijing")

		again := exchange(t, dial(t, n, cfg, "pos"), d, tx) // same STAN, terminal, time, on a new connection
		repeat := codec.NewMessage(d)
		must(t, tx.Build(d, repeat))
		must(t, repeat.SetMTI([4]byte{'0', '2', '0', '1'})) // the repeat MTI
		resp := codec.NewMessage(d)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		must(t, pos.Exchange(ctx, repeat, resp))

		for _, m := range []*codec.Message{again, resp} {
			if rc(m) != "00" || !bytes.Equal(m.Get(38), first.Get(38)) || !bytes.Equal(m.Get(54), first.Get(54)) {
				t.Fatalf("retransmission answered rc %s auth %q 54 %q; first was auth %q 54 %q",
					rc(m), m.Get(38), m.Get(54), first.Get(38), first.Get(54))
			}
		}
		if balance(t, n, "beijing", richPAN) != after || journalLen(t, n, "beijing") != j {
			t.Fatal("a retransmission was booked")
		}
	})

	t.Run("declines the switch decides itself carry their codes", func(t *testing.T) {
		for _, c := range []struct {
			pan, rc string
		}{
			{"6299901100000039", "14"}, // valid check digit, no such account
			{"6299901100000011", "14"}, // bad check digit
			{"6299905500000014", "14"}, // unknown region code
			{"4111111111111111", "15"}, // nobody issues this BIN here
		} {
			if got := rc(exchange(t, pos, d, txn(codec.TxPurchase, c.pan, 100))); got != c.rc {
				t.Errorf("%s: rc %s, want %s", codec.MaskPAN([]byte(c.pan)), got, c.rc)
			}
		}
		if got := rc(exchange(t, pos, d, txn(codec.TxPurchase, shPAN, 0))); got != "13" {
			t.Errorf("zero amount: rc %s, want 13", got)
		}
	})

	t.Run("an echo test is answered 0810", func(t *testing.T) {
		req, resp := codec.NewMessage(d), codec.NewMessage(d)
		must(t, req.SetMTI([4]byte{'0', '8', '0', '0'}))
		must(t, req.SetString(7, "1123100000"))
		must(t, req.SetString(11, "000777"))
		must(t, req.SetString(70, "301"))
		must(t, pos.Send(req))
		must(t, pos.Receive(resp))
		if resp.MTIString() != "0810" || rc(resp) != "00" || string(resp.Get(70)) != "301" || string(resp.Get(11)) != "000777" {
			t.Fatalf("MTI %s rc %s 70 %q", resp.MTIString(), rc(resp), resp.Get(70))
		}
	})

	t.Run("pipelined requests on one connection are all answered", func(t *testing.T) {
		c := dial(t, n, cfg, "web")
		before := balance(t, n, "shanghai", shPAN)
		const count = 200
		want := map[string]bool{}
		for i := 0; i < count; i++ {
			req := codec.NewMessage(d)
			tx := txn(codec.TxPurchase, shPAN, 1)
			must(t, tx.Build(d, req))
			want[string(req.Get(11))] = true
			must(t, c.Send(req))
		}
		resp := codec.NewMessage(d)
		for i := 0; i < count; i++ {
			must(t, c.Receive(resp))
			if rc(resp) != "00" || !want[string(resp.Get(11))] {
				t.Fatalf("answer %d: rc %s stan %s", i, rc(resp), resp.Get(11))
			}
			delete(want, string(resp.Get(11)))
		}
		if got := balance(t, n, "shanghai", shPAN); got != before-count {
			t.Fatalf("balance %d, want %d", got, before-count)
		}
	})

	t.Run("concurrent connections on every channel are served", func(t *testing.T) {
		before := balance(t, n, "beijing", richPAN)
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		short := map[string]bool{}
		for _, ch := range cfg.Channels {
			short[ch.Name] = ch.Short
		}
		for _, ch := range []string{"pos", "kiosk", "web", "bank", "hotline"} {
			c := dial(t, n, cfg, ch)
			d := n.Wire(ch).Dialect // the bank speaks 1987 binary
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					if short[ch] && i > 0 {
						c = dial(t, n, cfg, ch) // a kiosk connects for every transaction
					}
					req, resp := codec.NewMessage(d), codec.NewMessage(d)
					tx := txn(codec.TxPurchase, richPAN, 100)
					if err := tx.Build(d, req); err != nil {
						errs <- err
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					err := c.Exchange(ctx, req, resp)
					cancel()
					if err != nil || rc(resp) != "00" {
						errs <- fmt.Errorf("%s: rc %s err %v", ch, rc(resp), err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := balance(t, n, "beijing", richPAN); got != before-50*100 {
			t.Fatalf("balance %d, want %d", got, before-5000)
		}
	})

	t.Run("the ledgers balance: debits equal credits and the journal replays to the accounts", func(t *testing.T) {
		for _, region := range []string{"beijing", "shanghai"} {
			if _, err := n.Shard(region).Verify(); err != nil {
				t.Errorf("%s: %v", region, err)
			}
		}
	})

	t.Run("metrics count requests by channel, route and response code", func(t *testing.T) {
		body := get(t, "http://"+n.HTTPAddr().String()+"/metrics")
		for _, want := range []string{
			`junction_switch_requests_total{channel="pos",mti="0200",rc="00",route="demo-cards"}`,
			`junction_switch_requests_total{channel="pos",mti="0200",rc="51",route="demo-cards"}`,
			`junction_switch_stage_seconds_bucket{stage="front"`,
			`junction_switch_stage_seconds_bucket{stage="destination"`,
			`junction_routing_decisions_total{rule="demo-cards"}`,
			`junction_switch_endpoint_in_flight{destination="beijing",endpoint="beijing"}`,
			`junction_switch_saf_depth{destination="beijing"} 0`,
			`junction_switch_request_duration_seconds_bucket{channel="web"`,
			`junction_front_connections_open{channel="pos"}`,
			`junction_ledger_batch_size_bucket`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if strings.Contains(body, richPAN) {
			t.Error("metrics expose a PAN")
		}
		if get(t, "http://"+n.HTTPAddr().String()+"/readyz") != "ready\n" {
			t.Error("not ready")
		}
	})
}

func settlement(t *testing.T, n *allinone.Node, region string) int64 {
	t.Helper()
	a, err := n.Shard(region).Account(ledger.SettlementPayableID)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance()
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventually polls cond until it holds or 10 seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	cfg := testConfig(t.TempDir())
	n := start(t, cfg)
	d := n.Dialect()

	t.Run("a malformed field is answered 30 with the STAN echoed", func(t *testing.T) {
		c := dial(t, n, cfg, "pos")
		req := codec.NewMessage(d)
		must(t, txn(codec.TxPurchase, richPAN, 100).Build(d, req))
		wire, err := req.Pack(nil)
		must(t, err)
		bad := bytes.Replace(wire, []byte("TERM0001"), []byte("TERM\x01001"), 1)
		must(t, c.SendRaw(bad))
		resp := codec.NewMessage(d)
		must(t, c.Receive(resp))
		if resp.MTIString() != "0210" || rc(resp) != "30" || !bytes.Equal(resp.Get(11), req.Get(11)) {
			t.Fatalf("MTI %s rc %s stan %q", resp.MTIString(), rc(resp), resp.Get(11))
		}
		// The connection stays usable.
		if got := rc(exchange(t, c, d, txn(codec.TxBalance, richPAN, 0))); got != "00" {
			t.Fatalf("after a format error: rc %s", got)
		}
	})

	t.Run("a request without the fields routing needs is answered 30", func(t *testing.T) {
		c := dial(t, n, cfg, "pos")
		req := codec.NewMessage(d)
		must(t, txn(codec.TxPurchase, richPAN, 100).Build(d, req))
		req.Del(2)
		resp := codec.NewMessage(d)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		must(t, c.Exchange(ctx, req, resp))
		if rc(resp) != "30" {
			t.Fatalf("rc %s", rc(resp))
		}
	})

	closes := func(t *testing.T, payload []byte, raw bool) {
		t.Helper()
		c := dial(t, n, cfg, "pos")
		if raw {
			must(t, c.WriteRaw(payload))
		} else {
			must(t, c.SendRaw(payload))
		}
		resp := codec.NewMessage(d)
		if err := c.Receive(resp); err == nil {
			t.Fatalf("got an answer %s, want the connection closed", resp.MTIString())
		}
	}
	t.Run("a frame without a readable MTI closes the connection", func(t *testing.T) {
		closes(t, []byte("garbage, not ISO 8583"), false)
	})
	t.Run("a frame above the size limit closes the connection", func(t *testing.T) {
		closes(t, []byte{0xff, 0xff, 'x'}, true)
	})

	t.Run("the switch keeps serving after bad input", func(t *testing.T) {
		if got := rc(exchange(t, dial(t, n, cfg, "pos"), d, txn(codec.TxBalance, richPAN, 0))); got != "00" {
			t.Fatalf("rc %s", got)
		}
	})

	handshakeFails := func(t *testing.T, channel string, tlsCfg *tls.Config) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := front.Dial(ctx, n.Addr(channel).String(), tlsCfg, front.ClientOptions{Dialect: d})
		if err == nil {
			// TLS 1.3 clients learn of a refused certificate on the first read.
			defer c.Close()
			req := codec.NewMessage(d)
			must(t, txn(codec.TxBalance, richPAN, 0).Build(d, req))
			c.Send(req)
			if err = c.Receive(codec.NewMessage(d)); err == nil {
				t.Fatal("served without a valid client certificate")
			}
		}
	}
	t.Run("a client without a certificate is refused at the handshake", func(t *testing.T) {
		cfgNoCert := clientTLS(t, cfg, "pos")
		cfgNoCert.Certificates = nil
		handshakeFails(t, "pos", cfgNoCert)
	})
	t.Run("a certificate from another CA is refused at the handshake", func(t *testing.T) {
		rogue, err := pki.NewAuthority("rogue CA", time.Now())
		must(t, err)
		certPEM, keyPEM, err := rogue.Issue(pki.Request{CommonName: "pos", Client: true, Now: time.Now()})
		must(t, err)
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		must(t, err)
		c := clientTLS(t, cfg, "pos")
		c.Certificates = nil
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		handshakeFails(t, "pos", c)
	})
	t.Run("another channel's certificate is refused on this channel", func(t *testing.T) {
		handshakeFails(t, "pos", clientTLS(t, cfg, "kiosk"))
	})
	t.Run("refusals are counted", func(t *testing.T) {
		// The server counts a refusal after the client has seen it: poll.
		for _, want := range []string{
			`junction_front_handshake_failures_total{channel="pos"} 3`,
			`junction_front_connections_closed_total{channel="pos",reason="unreadable"} 1`,
			`junction_front_connections_closed_total{channel="pos",reason="frame_too_large"} 1`,
			`junction_front_malformed_total{channel="pos"} 2`,
		} {
			eventually(t, "metrics show "+want, func() bool {
				return strings.Contains(get(t, "http://"+n.HTTPAddr().String()+"/metrics"), want)
			})
		}
	})
}

func TestRestartKeepsTheLedger(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	n := start(t, cfg)
	resp := exchange(t, dial(t, n, cfg, "pos"), n.Dialect(), txn(codec.TxPurchase, richPAN, 777))
	if rc(resp) != "00" {
		t.Fatalf("rc %s", rc(resp))
	}
	want := balance(t, n, "beijing", richPAN)
	j := journalLen(t, n, "beijing")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, n.Shutdown(ctx))

	again := start(t, testConfig(dir))
	if got := balance(t, again, "beijing", richPAN); got != want {
		t.Fatalf("after restart balance %d, want %d", got, want)
	}
	if got := journalLen(t, again, "beijing"); got != j {
		t.Fatalf("after restart journal has %d entries, want %d (demo seeding must not book twice)", got, j)
	}
	if _, err := again.Shard("beijing").Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestStartRefusesABrokenConfiguration(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Regions = nil
	cfg.Channels[1].Institution = "ABC"
	_, err := allinone.Start(cfg, nil)
	if err == nil {
		t.Fatal("started")
	}
	for _, want := range []string{"regions: no regional ledger shard", "channels[1].institution", `unknown destination "beijing"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal("unexpected")
	}
}

// A start that fails half-way (a channel's port is taken) says why, stops what it had started
// and leaves the data directories free: the next start on a free port opens the same shards.
func TestStartThatFailsHalfWayStopsCleanly(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := testConfig(t.TempDir())
	cfg.Channels[2].Listen = taken.Addr().String()
	if _, err := allinone.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("start on a taken port: %v", err)
	}
	cfg.Channels[2].Listen = "127.0.0.1:0"
	n := start(t, cfg)
	if journalLen(t, n, "beijing") == 0 {
		t.Fatal("the demo cards were not seeded")
	}
}

// TestDrainUnderLoadLosesNoApproval stops the node while four pipelined
// connections keep sending purchases, starts it again on the same files,
// and checks the promise that matters most: every approval a terminal
// received is booked, exactly once.
func TestDrainUnderLoadLosesNoApproval(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	n := start(t, cfg)
	d := n.Dialect()
	opening := balance(t, n, "beijing", richPAN)

	var mu sync.Mutex
	var approved []ledger.TxID
	var wg sync.WaitGroup
	for i := range 4 {
		c := dial(t, n, cfg, cfg.Channels[i].Name)
		wg.Add(2)
		go func() { // writer: purchases until the connection goes
			defer wg.Done()
			req := codec.NewMessage(d)
			for k := 1; ; k++ {
				tx := txn(codec.TxPurchase, richPAN, 1)
				tx.Terminal = fmt.Sprintf("DRAIN%03d", i)
				tx.STAN = uint32(k)
				if tx.Build(d, req) != nil || c.Send(req) != nil {
					return
				}
			}
		}()
		go func() { // reader: every approval received
			defer wg.Done()
			resp := codec.NewMessage(d)
			for c.Receive(resp) == nil {
				if rc(resp) == "00" {
					mu.Lock()
					approved = append(approved, ledger.TxIDOf(resp))
					mu.Unlock()
				}
			}
		}()
	}
	eventually(t, "500 approvals arrive", func() bool { mu.Lock(); defer mu.Unlock(); return len(approved) >= 500 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, n.Shutdown(ctx))
	wg.Wait()

	again := start(t, testConfig(dir))
	journal, err := again.Shard("beijing").Journal(1, 1<<30)
	must(t, err)
	booked := map[ledger.TxID]int{}
	purchases := 0
	for _, e := range journal {
		booked[e.TxID]++
		if e.Kind == ledger.KindPurchase {
			purchases++
		}
	}
	for _, id := range approved {
		if booked[id] != 1 {
			t.Fatalf("an approval sent to a terminal is booked %d times", booked[id])
		}
	}
	if got := balance(t, again, "beijing", richPAN); got != opening-int64(purchases) {
		t.Fatalf("balance %d, want %d after %d purchases", got, opening-int64(purchases), purchases)
	}
	t.Logf("%d approvals received before the drain, %d purchases booked", len(approved), purchases)
}

func TestBankDialects(t *testing.T) {
	cfg := testConfig(t.TempDir())
	n := start(t, cfg)

	t.Run("the binary bank's TPDU comes back with its addresses swapped", func(t *testing.T) {
		w := n.Wire("bank")
		c := dial(t, n, cfg, "bank") // sends TPDU 60 0001 0000
		req, resp := codec.NewMessage(w.Dialect), codec.NewMessage(w.Dialect)
		must(t, txn(codec.TxBalance, richPAN, 0).Build(w.Dialect, req))
		must(t, c.Send(req))
		h, err := c.ReceiveHeader(resp)
		must(t, err)
		if !bytes.Equal(h, []byte{0x60, 0x00, 0x00, 0x00, 0x01}) || rc(resp) != "00" {
			t.Fatalf("TPDU %x rc %s", h, rc(resp))
		}
	})

	w := n.Wire("bank93")
	c := dial(t, n, cfg, "bank93")
	// exchange93 builds tx in 1987 terms, sends it as 1993 and returns the
	// 1993 answer.
	exchange93 := func(t *testing.T, build func(*codec.Message)) *codec.Message {
		t.Helper()
		internal, req, resp := codec.NewMessage(n.Dialect()), codec.NewMessage(w.Dialect), codec.NewMessage(w.Dialect)
		build(internal)
		var saved codec.Saved
		must(t, w.Outbound.Request(req, internal, &codec.Context{Now: time.Now()}, &saved))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		must(t, c.Exchange(ctx, req, resp))
		return resp
	}

	t.Run("a 1993 bank's purchase is converted in and answered 1210 with action codes", func(t *testing.T) {
		before := balance(t, n, "shanghai", shPAN)
		resp := exchange93(t, func(m *codec.Message) { must(t, txn(codec.TxPurchase, shPAN, 250).Build(n.Dialect(), m)) })
		if resp.MTIString() != "1210" || rc(resp) != "000" || len(resp.Get(38)) != 6 || len(resp.Get(12)) != 12 {
			t.Fatalf("MTI %s 39 %q 38 %q 12 %q", resp.MTIString(), resp.Get(39), resp.Get(38), resp.Get(12))
		}
		if got := balance(t, n, "shanghai", shPAN); got != before-250 {
			t.Fatalf("balance %d, want %d", got, before-250)
		}
		resp = exchange93(t, func(m *codec.Message) { must(t, txn(codec.TxPurchase, shPAN, before*2).Build(n.Dialect(), m)) })
		if rc(resp) != "116" {
			t.Fatalf("insufficient funds answered %q, want 116", rc(resp))
		}
	})

	t.Run("a 1993 echo test 1804/831 is answered 1814 with action code 800", func(t *testing.T) {
		resp := exchange93(t, func(m *codec.Message) {
			must(t, m.SetMTI([4]byte{'0', '8', '0', '0'}))
			must(t, m.SetString(7, "1123100000"))
			must(t, m.SetString(11, "000931"))
			must(t, m.SetString(70, "301"))
		})
		if resp.MTIString() != "1814" || rc(resp) != "800" || string(resp.Get(24)) != "831" {
			t.Fatalf("MTI %s 39 %q 24 %q", resp.MTIString(), resp.Get(39), resp.Get(24))
		}
	})

	t.Run("a 1993 request the switch's dialect cannot hold is a format error, 904", func(t *testing.T) {
		req, resp := codec.NewMessage(w.Dialect), codec.NewMessage(w.Dialect)
		internal := codec.NewMessage(n.Dialect())
		must(t, txn(codec.TxPurchase, shPAN, 1).Build(n.Dialect(), internal))
		var saved codec.Saved
		must(t, w.Outbound.Request(req, internal, &codec.Context{Now: time.Now()}, &saved))
		must(t, req.SetString(49, "EUR"))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		must(t, c.Exchange(ctx, req, resp))
		if resp.MTIString() != "1210" || rc(resp) != "904" {
			t.Fatalf("MTI %s 39 %q", resp.MTIString(), resp.Get(39))
		}
	})

	t.Run("a malformed 1993 field is answered 904 with the STAN echoed", func(t *testing.T) {
		req := codec.NewMessage(w.Dialect)
		must(t, req.SetMTI([4]byte{'1', '2', '0', '0'}))
		must(t, req.SetString(11, "000777"))
		must(t, req.SetString(41, "BANK9301"))
		wire, err := req.Pack(nil)
		must(t, err)
		bad := bytes.Replace(wire, []byte("BANK9301"), []byte("BANK\x01301"), 1)
		must(t, c.WriteRaw(append([]byte(fmt.Sprintf("%04d", len(bad))), bad...)))
		resp := codec.NewMessage(w.Dialect)
		must(t, c.Receive(resp))
		if resp.MTIString() != "1210" || rc(resp) != "904" || string(resp.Get(11)) != "000777" {
			t.Fatalf("MTI %s 39 %q 11 %q", resp.MTIString(), resp.Get(39), resp.Get(11))
		}
	})
}
