package allinone_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
)

// TestPlaintextChannels runs two plaintext channels from the configuration,
// one on each engine, and books a purchase through each: the same switch
// behind either engine, with the configured identity in force.
func TestPlaintextChannels(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Channels = append(cfg.Channels,
		allinone.Channel{Name: "lb-std", Listen: "127.0.0.1:0", Institution: "20000001",
			Plaintext: &allinone.Plaintext{Identity: "balancer-1"}},
		allinone.Channel{Name: "lb-gnet", Listen: "127.0.0.1:0", Institution: "20000002", SignOn: true,
			Plaintext: &allinone.Plaintext{Identity: "balancer-2", Engine: "gnet"}},
	)
	n := start(t, cfg)
	before := balance(t, n, "beijing", richPAN)
	for i, name := range []string{"lb-std", "lb-gnet"} {
		w := n.Wire(name)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := front.Dial(ctx, n.Addr(name).String(), nil, front.ClientOptions{Dialect: w.Dialect, Framing: w.Framing})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if name == "lb-gnet" {
			// sign_on holds on this engine too: 91 before, 00 after.
			if got := rc(exchange(t, c, w.Dialect, txn(codec.TxPurchase, richPAN, 100))); got != codec.RCIssuerUnavailable {
				t.Fatalf("%s before sign-on: rc %s, want 91", name, got)
			}
			signOn(t, c, w.Dialect)
		}
		resp := exchange(t, c, w.Dialect, txn(codec.TxPurchase, richPAN, 100))
		if rc(resp) != codec.RCApproved {
			t.Fatalf("%s: rc %s", name, rc(resp))
		}
		if got, want := string(resp.Get(32)), []string{"20000001", "20000002"}[i]; got != want {
			t.Errorf("%s: field 32 %q, want the channel's institution %q", name, got, want)
		}
	}
	if got := balance(t, n, "beijing", richPAN); got != before-200 {
		t.Errorf("balance %d, want %d", got, before-200)
	}
}

func signOn(t *testing.T, c *front.Client, d *codec.Dialect) {
	t.Helper()
	req, resp := codec.NewMessage(d), codec.NewMessage(d)
	req.SetMTI([4]byte{'0', '8', '0', '0'})
	req.SetString(7, "1123100000")
	req.SetString(11, "000777")
	req.SetString(70, "001")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Exchange(ctx, req, resp); err != nil {
		t.Fatal(err)
	}
	if rc(resp) != codec.RCApproved {
		t.Fatalf("sign-on: rc %s", rc(resp))
	}
}

func TestPlaintextConfigErrors(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Channels = append(cfg.Channels,
		allinone.Channel{Name: "p1", Listen: "127.0.0.1:0", Institution: "1", Plaintext: &allinone.Plaintext{}},
		allinone.Channel{Name: "p2", Listen: "127.0.0.1:0", Institution: "1", Plaintext: &allinone.Plaintext{Identity: "x", Engine: "epoll"}},
		allinone.Channel{Name: "p3", Listen: "127.0.0.1:0", Institution: "1", AllowCN: []string{"p3"}, Plaintext: &allinone.Plaintext{Identity: "x"}},
	)
	err := cfg.Validate()
	if err == nil {
		t.Fatal("valid")
	}
	for _, want := range []string{
		"channels[6].plaintext.identity: is empty",
		`channels[7].plaintext.engine: "epoll": want std or gnet`,
		"channels[8].plaintext: a plaintext channel takes no tls, identities or allow_cn",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
