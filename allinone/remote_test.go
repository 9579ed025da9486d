package allinone_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/pki"
	"github.com/prometheus/client_golang/prometheus"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startLedger(t *testing.T, cfg allinone.Config, region string) *allinone.LedgerNode {
	t.Helper()
	ln, err := allinone.StartLedger(cfg, region, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ln.Shutdown(ctx)
	})
	return ln
}

// gauge reads one series of a gauge by its endpoint label.
func gauge(t *testing.T, reg *prometheus.Registry, name, endpoint string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" && l.GetValue() == endpoint {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func TestRemoteRegion(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	listen := freeAddr(t)
	// Two endpoints for the region; only the first has a shard behind it.
	cfg.Regions[0].Remote = &allinone.Remote{Listen: listen, Endpoints: []string{listen, freeAddr(t)}, Conns: 2}
	ledgerCfg := cfg
	ledgerCfg.Demo = true
	shard := startLedger(t, ledgerCfg, "beijing")
	n := start(t, cfg)
	eventually(t, "the link to the shard is up", func() bool {
		return gauge(t, n.Registry(), "junction_link_health", "beijing-1") == 2
	})
	d := n.Dialect()
	pos := dial(t, n, cfg, "pos")

	t.Run("a purchase crosses the link and is booked in the shard process", func(t *testing.T) {
		a, err := shard.Shard().AccountByPAN(richPAN)
		must(t, err)
		resp := exchange(t, pos, d, txn(codec.TxPurchase, richPAN, 1234))
		if rc(resp) != "00" || len(resp.Get(38)) != 6 || resp.MTIString() != "0210" {
			t.Fatalf("MTI %s rc %s auth %q", resp.MTIString(), rc(resp), resp.Get(38))
		}
		b, err := shard.Shard().AccountByPAN(richPAN)
		must(t, err)
		if b.Balance() != a.Balance()-1234 {
			t.Fatalf("balance %d, want %d", b.Balance(), a.Balance()-1234)
		}
	})

	t.Run("the endpoint with no shard is down and skipped", func(t *testing.T) {
		if h := gauge(t, n.Registry(), "junction_link_health", "beijing-2"); h != 0 {
			t.Fatalf("beijing-2 health %v", h)
		}
		for range 10 {
			if resp := exchange(t, pos, d, txn(codec.TxBalance, poorPAN, 0)); rc(resp) != "00" {
				t.Fatalf("rc %s", rc(resp))
			}
		}
	})

	t.Run("the binary bank gets its answer in its own dialect", func(t *testing.T) {
		w := n.Wire("bank")
		c := dial(t, n, cfg, "bank")
		req, resp := codec.NewMessage(w.Dialect), codec.NewMessage(w.Dialect)
		must(t, txn(codec.TxPurchase, richPAN, 5).Build(w.Dialect, req))
		must(t, c.Send(req))
		h, err := c.ReceiveHeader(resp)
		must(t, err)
		if !bytes.Equal(h, []byte{0x60, 0x00, 0x00, 0x00, 0x01}) || rc(resp) != "00" || len(resp.Get(54)) == 0 {
			t.Fatalf("TPDU %x rc %s 54 %q", h, rc(resp), resp.Get(54))
		}
	})

	t.Run("a 1993 bank's purchase is converted in, crosses the link and goes back in 1993", func(t *testing.T) {
		w := n.Wire("bank93")
		c := dial(t, n, cfg, "bank93")
		internal, req, resp := codec.NewMessage(d), codec.NewMessage(w.Dialect), codec.NewMessage(w.Dialect)
		must(t, txn(codec.TxPurchase, poorPAN, 10).Build(d, internal))
		var saved codec.Saved
		must(t, w.Outbound.Request(req, internal, &codec.Context{Now: time.Now()}, &saved))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		must(t, c.Exchange(ctx, req, resp))
		if resp.MTIString() != "1210" || rc(resp) != "000" {
			t.Fatalf("MTI %s rc %s", resp.MTIString(), rc(resp))
		}
	})

	t.Run("a shard that drains answers 91 for its region only, and the switch finds it again", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		must(t, shard.Shutdown(ctx))
		eventually(t, "beijing is answered 91", func() bool {
			return rc(exchange(t, pos, d, txn(codec.TxBalance, richPAN, 0))) == codec.RCIssuerUnavailable
		})
		if resp := exchange(t, pos, d, txn(codec.TxPurchase, shPAN, 1)); rc(resp) != "00" {
			t.Fatalf("shanghai answered %s while beijing is away", rc(resp))
		}
		startLedger(t, ledgerCfg, "beijing")
		eventually(t, "beijing is served again", func() bool {
			return rc(exchange(t, pos, d, txn(codec.TxBalance, richPAN, 0))) == "00"
		})
	})
}

func TestLedgerNodeAdmitsOnlyTheSwitchSignedOn(t *testing.T) {
	dir := t.TempDir()
	cfg := allinone.LocalConfig(dir)
	cfg.Regions[0].Remote = &allinone.Remote{Listen: "127.0.0.1:0", Endpoints: []string{"127.0.0.1:1"}}
	ln := startLedger(t, cfg, "beijing")
	_, err := pki.EnsureDev(cfg.PKIDir, pki.DevOptions{Channels: []string{"pos"}, Hosts: []string{"localhost", "127.0.0.1"}})
	must(t, err)
	d := codec.ISO87Binary()
	dialAs := func(cn string) (*front.Client, error) {
		cert, key := pki.ClientFiles(cfg.PKIDir, cn)
		tlsCfg, err := front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(cfg.PKIDir)}, "localhost")
		must(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := front.Dial(ctx, ln.Addr().String(), tlsCfg, front.ClientOptions{Dialect: d})
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return c, err
	}
	send := func(c *front.Client, m *codec.Message) (*codec.Message, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp := codec.NewMessage(d)
		return resp, c.Exchange(ctx, m, resp)
	}

	t.Run("a channel's certificate is refused", func(t *testing.T) {
		c, err := dialAs("pos")
		if err == nil {
			// TLS 1.3 reports the refusal on the first read.
			req := codec.NewMessage(d)
			must(t, txn(codec.TxBalance, richPAN, 0).Build(d, req))
			_, err = send(c, req)
		}
		if err == nil {
			t.Fatal("a pos certificate reached the shard")
		}
	})
	t.Run("the switch is answered 91 until it signs on", func(t *testing.T) {
		c, err := dialAs(allinone.SwitchIdentity)
		must(t, err)
		req := codec.NewMessage(d)
		must(t, txn(codec.TxBalance, richPAN, 0).Build(d, req))
		must(t, req.SetString(32, "10000001"))
		resp, err := send(c, req)
		must(t, err)
		if rc(resp) != "91" {
			t.Fatalf("before sign-on: rc %s", rc(resp))
		}
		signOn := codec.NewMessage(d)
		must(t, signOn.SetMTI([4]byte{'0', '8', '0', '0'}))
		must(t, signOn.SetString(7, "1123100000"))
		must(t, signOn.SetString(11, "000001"))
		must(t, signOn.SetString(70, "001"))
		if resp, err := send(c, signOn); err != nil || rc(resp) != "00" {
			t.Fatalf("sign-on: %v rc %s", err, rc(resp))
		}
		req.SetString(11, "999998")
		resp, err = send(c, req)
		must(t, err)
		if rc(resp) != "00" || len(resp.Get(54)) == 0 {
			t.Fatalf("after sign-on: rc %s 54 %q", rc(resp), resp.Get(54))
		}
	})
}

func TestRemoteSettingsAreValidatedWithTheirKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junction.yaml")
	must(t, os.WriteFile(path, []byte(`
channels:
  - {name: switch, listen: "127.0.0.1:0", institution: "1"}
regions:
  - name: beijing
    remote:
      listen: "nowhere"
      endpoints: ["127.0.0.1:0", "x"]
      dialect: iso93ascii
      conns: -1
      max_in_flight: 70000
      echo: -1s
      sign_on: false
  - name: shanghai
    remote:
      listen: "127.0.0.1:9"
      framing: {length: bogus}
  - name: guangzhou
    remote: {listen: "127.0.0.1:9"}
`), 0o600))
	_, err := allinone.LoadConfig(path)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"regions[0].remote.listen", "regions[0].remote.endpoints[0]", "regions[0].remote.endpoints[1]",
		"regions[0].remote.dialect", "regions[0].remote.conns", "regions[0].remote.max_in_flight",
		"regions[0].remote.echo", "regions[1].remote.framing.length", "regions[2].remote.listen: 127.0.0.1:9 is also",
		"channels[0].name: \"switch\"",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s:\n%v", want, err)
		}
	}

	t.Run("junction ledger needs a remote region", func(t *testing.T) {
		cfg := allinone.LocalConfig(t.TempDir())
		if _, err := allinone.StartLedger(cfg, "beijing", quiet()); err == nil || !strings.Contains(err.Error(), "regions[0].remote") {
			t.Fatalf("a local region: %v", err)
		}
		if _, err := allinone.StartLedger(cfg, "atlantis", quiet()); err == nil || !strings.Contains(err.Error(), "atlantis") {
			t.Fatalf("an unknown region: %v", err)
		}
	})
}
