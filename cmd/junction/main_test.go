package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
)

func junction(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func startNode(t *testing.T, tune ...func(*allinone.Config)) (*allinone.Node, allinone.Config) {
	t.Helper()
	cfg := allinone.LocalConfig(t.TempDir())
	for _, f := range tune {
		f(&cfg)
	}
	n, err := allinone.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n, cfg
}

func TestSend(t *testing.T) {
	n, cfg := startNode(t)
	const pan = "6299901100000013"
	args := func(extra ...string) []string {
		return append([]string{"send", "--channel", "pos", "--addr", n.Addr("pos").String(), "--pki", cfg.PKIDir}, extra...)
	}

	t.Run("a purchase prints masked dumps and the outcome", func(t *testing.T) {
		code, out, errOut := junction(t, args("--pan", pan, "--amount", "12.34", "--type", "purchase")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"MTI 0200", "MTI 0210", "629990******0013", "approved (00)", "ledger balance 199987.66 CNY"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, pan) || strings.Contains(errOut, pan) {
			t.Errorf("output shows the full PAN:\n%s", out)
		}
	})

	t.Run("the printed retransmit flags get the first answer back", func(t *testing.T) {
		flags := []string{"--pan", pan, "--amount", "1.00", "--stan", "4242", "--time", "2026-11-23T09:00:00Z"}
		_, first, _ := junction(t, args(flags...)...)
		_, second, _ := junction(t, args(flags...)...)
		last := func(s string) string { lines := strings.Split(strings.TrimSpace(s), "\n"); return lines[len(lines)-2] }
		if last(first) != last(second) || !strings.Contains(last(first), "approved") {
			t.Fatalf("first %q, retransmission %q", last(first), last(second))
		}
	})

	t.Run("a balance inquiry prints the balance", func(t *testing.T) {
		code, out, _ := junction(t, args("--pan", pan, "--type", "balance")...)
		if code != 0 || !strings.Contains(out, "available 199986.66 CNY") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})

	t.Run("an amount with too many decimals is refused before sending", func(t *testing.T) {
		code, _, errOut := junction(t, args("--pan", pan, "--amount", "1.234")...)
		if code != 1 || !strings.Contains(errOut, "more than 2 decimals") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})

	t.Run("a missing PKI is explained", func(t *testing.T) {
		code, _, errOut := junction(t, "send", "--pan", pan, "--amount", "1", "--addr", n.Addr("pos").String(), "--pki", t.TempDir())
		if code != 1 || !strings.Contains(errOut, "junction up") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}

func TestUpCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("http: 127.0.0.1:9999\nlimits:\n  max_frame: 4096\n"), 0o644)
	if code, out, errOut := junction(t, "up", "-c", good, "-t"); code != 0 || !strings.Contains(out, "configuration ok") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("limits:\n  max_frame: 70000\nchanels: []\n"), 0o644)
	code, _, errOut := junction(t, "up", "-c", bad, "-t")
	if code != 1 || !strings.Contains(errOut, "line 3: field chanels not found") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	os.WriteFile(bad, []byte("limits:\n  max_frame: 70000\nregions: []\n"), 0o644)
	code, _, errOut = junction(t, "up", "-c", bad, "-t")
	if code != 1 || !strings.Contains(errOut, "limits.max_frame") || !strings.Contains(errOut, "regions: no regional ledger shard") {
		t.Fatalf("want every problem reported, exit %d: %s", code, errOut)
	}
}

func TestCodecDescribe(t *testing.T) {
	d := codec.ISO87ASCII()
	m := codec.NewMessage(d)
	tx := front.Txn{Type: codec.TxPurchase, PAN: "6299901100000013", Amount: 100, Currency: 156, STAN: 1, Terminal: "T0000001", Time: time.Now()}
	if err := tx.Build(d, m); err != nil {
		t.Fatal(err)
	}
	wire, _ := m.Pack(nil)
	in := filepath.Join(t.TempDir(), "msg.hex")
	os.WriteFile(in, []byte(hex.EncodeToString(wire)), 0o644)
	code, out, errOut := junction(t, "codec", "describe", in)
	if code != 0 || !strings.Contains(out, "629990******0013") || strings.Contains(out, "6299901100000013") {
		t.Fatalf("exit %d: %s\n%s", code, out, errOut)
	}

	os.WriteFile(in, []byte(hex.EncodeToString(wire[:len(wire)-3])), 0o644)
	code, _, errOut = junction(t, "codec", "describe", in)
	if code != 1 || !strings.Contains(errOut, "field 49") {
		t.Fatalf("a truncated message: exit %d: %s", code, errOut)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, errOut := junction(t, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestSendOnEveryDialect(t *testing.T) {
	n, cfg := startNode(t)
	for _, c := range []struct{ channel, request, response, outcome string }{
		{"bank", "iso87binary  MTI 0200", "iso87binary  MTI 0210", "approved (00)"},
		{"bank93", "iso93ascii  MTI 1200", "iso93ascii  MTI 1210", "approved (00)"},
	} {
		t.Run(c.channel, func(t *testing.T) {
			code, out, errOut := junction(t, "send", "--channel", c.channel, "--addr", n.Addr(c.channel).String(),
				"--pki", cfg.PKIDir, "--pan", "6299903100000019", "--amount", "1.00")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range []string{c.request, c.response, c.outcome} {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestCodecTools(t *testing.T) {
	d := codec.ISO87ASCII()
	m := codec.NewMessage(d)
	tx := front.Txn{Type: codec.TxPurchase, PAN: "6299901100000013", Amount: 100, Currency: 156, STAN: 1, Terminal: "T0000001", Time: time.Now()}
	if err := tx.Build(d, m); err != nil {
		t.Fatal(err)
	}
	wire, _ := m.Pack(nil)
	dir := t.TempDir()
	in := filepath.Join(dir, "msg.hex")
	os.WriteFile(in, []byte(hex.EncodeToString(wire)), 0o644)

	t.Run("convert turns a 1987 request into 1993 through the built-in map", func(t *testing.T) {
		code, out, errOut := junction(t, "codec", "convert", "--from", "iso87ascii", "--to", "iso93ascii", in)
		if code != 0 || !strings.Contains(out, "-> map iso87-to-iso93") || !strings.Contains(out, "iso93ascii  MTI 1200") {
			t.Fatalf("exit %d: %s\n%s", code, out, errOut)
		}
		if strings.Contains(out, "6299901100000013") {
			t.Fatal("the dump shows the PAN")
		}
	})

	t.Run("describe reads a framed binary message", func(t *testing.T) {
		bin := codec.ISO87Binary()
		bm := codec.NewMessage(bin)
		if err := tx.Build(bin, bm); err != nil {
			t.Fatal(err)
		}
		f := codec.Framing{Length: codec.Len2BCD}
		f.Validate()
		framed, err := codec.AppendFrame(nil, &f, nil, bm)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "bin.raw")
		os.WriteFile(p, framed, 0o644)
		code, out, errOut := junction(t, "codec", "describe", "--dialect", "iso87binary", "--raw", "--framing", "bcd2", p)
		if code != 0 || !strings.Contains(out, "629990******0013") {
			t.Fatalf("exit %d: %s\n%s", code, out, errOut)
		}
	})

	t.Run("export and check round trip a dialect spec", func(t *testing.T) {
		code, spec, _ := junction(t, "codec", "export", "--dialect", "iso93ascii")
		p := filepath.Join(dir, "bank.json")
		os.WriteFile(p, []byte(spec), 0o644)
		code, out, errOut := junction(t, "codec", "check", "--version", "1993", p)
		if code != 0 || !strings.Contains(out, "dialect bank: MTI ascii, bitmap hex") {
			t.Fatalf("exit %d: %s\n%s", code, out, errOut)
		}
	})

	t.Run("check reports every bad field of a spec", func(t *testing.T) {
		p := filepath.Join(dir, "bad.json")
		os.WriteFile(p, []byte(`{"name":"x","fields":{
			"0":{"type":"String","length":4,"enc":"ASCII","prefix":"ASCII.Fixed"},
			"1":{"type":"Bitmap","length":8,"enc":"HexToASCII","prefix":"Hex.Fixed"},
			"4":{"type":"String","length":12,"enc":"EBCDIC","prefix":"ASCII.Fixed"},
			"35":{"type":"Track2","length":37,"enc":"ASCII","prefix":"ASCII.LL"}}}`), 0o644)
		code, _, errOut := junction(t, "codec", "check", p)
		if code != 1 || !strings.Contains(errOut, "field 4: encoding EBCDIC") || !strings.Contains(errOut, "field 35: type Track2") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})

	t.Run("check validates a map file", func(t *testing.T) {
		p := filepath.Join(dir, "map.yaml")
		os.WriteFile(p, []byte("name: m\nfrom: iso93ascii\nto: iso87ascii\nrequest:\n  12: {from: 12, slice: [6, 12]}\n"), 0o644)
		code, _, errOut := junction(t, "codec", "check", "--map", p)
		if code != 1 || !strings.Contains(errOut, "define it differently") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}
