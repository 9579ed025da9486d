package bench

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/bench/baseline"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/pki"
)

var compareFor = flag.Duration("compare.duration", 5*time.Second, "how long BenchmarkVersusBaseline measures each switch")

// startBaseline runs the baseline switch on a free port with the demo
// cards, behind the dev PKI's server certificate.
func startBaseline(tb testing.TB, dir string) *baseline.Server {
	tb.Helper()
	pkiDir := filepath.Join(dir, "pki")
	if _, err := pki.EnsureDev(pkiDir, pki.DevOptions{Channels: []string{"pos"}, Hosts: []string{"localhost", "127.0.0.1"}}); err != nil {
		tb.Fatal(err)
	}
	cert, key := pki.ServerFiles(pkiDir)
	srvTLS, err := front.ServerTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(pkiDir)}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	var cards []baseline.Card
	for _, a := range allinone.DemoAccounts() {
		cards = append(cards, baseline.Card{PAN: a.PAN, Opening: a.Opening})
	}
	s, err := baseline.Start(baseline.Options{Addr: "127.0.0.1:0", TLS: srvTLS, Dir: filepath.Join(dir, "baseline"),
		BIN: allinone.DemoBIN, Currency: allinone.DemoCurrency, Cards: cards, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func clientTLS(tb testing.TB, pkiDir, channel string) *tls.Config {
	tb.Helper()
	cert, key := pki.ClientFiles(pkiDir, channel)
	c, err := front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(pkiDir)}, "localhost")
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// load is the one workload both switches get: closed loop, 8 connections
// with 16 requests in flight each, 9 purchases to 1 balance inquiry over
// the two rich demo cards, half on the hot one.
func load(targets []Target, d, warmup time.Duration) Options {
	return Options{
		Targets: targets, Conns: 8, InFlight: 16, Duration: d, Warmup: warmup,
		Mix:   map[Kind]int{Purchase: 9, Balance: 1},
		Cards: []string{allinone.DemoAccounts()[0].PAN, allinone.DemoAccounts()[2].PAN}, HotShare: 0.5,
		Amount: 1, Currency: allinone.DemoCurrency,
	}
}

// TestBaselineBooksWhatItApproves: the baseline is a real switch: every
// purchase it approves is booked once.
func TestBaselineBooksWhatItApproves(t *testing.T) {
	dir := t.TempDir()
	s := startBaseline(t, dir)
	n := allinone.LocalConfig(dir) // for the wire of a 1987 ASCII channel
	dialects, _ := n.DialectSet()
	wires, err := n.Wires(dialects)
	if err != nil {
		t.Fatal(err)
	}
	o := load([]Target{{Channel: "pos", Addr: s.Addr().String(), TLS: clientTLS(t, filepath.Join(dir, "pki"), "pos"), Wire: wires["pos"]}},
		time.Second, 100*time.Millisecond)
	o.Conns, o.InFlight = 2, 4
	before := []int64{}
	for _, pan := range o.Cards {
		b, err := s.Balance(pan)
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, b)
	}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Answered == 0 || rep.Codes["00"] != rep.Answered || len(rep.Errors) != 0 {
		t.Fatalf("codes %v errors %v", rep.Codes, rep.Errors)
	}
	for i, pan := range o.Cards {
		after, _ := s.Balance(pan)
		if moved := before[i] - after; moved != rep.ApprovedAmounts[i] {
			t.Errorf("card %d: moved %d, approved %d", i, moved, rep.ApprovedAmounts[i])
		}
	}
}

// BenchmarkVersusBaseline runs the same closed-loop load against Junction
// (the all-in-one node, its 1987 ASCII long-connection channels) and
// against the baseline switch, one after the other in the same process,
// and reports both and their ratio.
//
//	go test -run '^$' -bench VersusBaseline -benchtime 1x ./bench
func BenchmarkVersusBaseline(b *testing.B) {
	dir := b.TempDir()
	cfg := allinone.LocalConfig(filepath.Join(dir, "junction"))
	n, err := allinone.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	var jt []Target
	for _, ch := range []string{"pos", "web", "hotline"} {
		jt = append(jt, Target{Channel: ch, Addr: n.Addr(ch).String(), TLS: clientTLS(b, cfg.PKIDir, ch), Wire: n.Wire(ch)})
	}
	s := startBaseline(b, dir)
	bt := []Target{{Channel: "pos", Addr: s.Addr().String(), TLS: clientTLS(b, filepath.Join(dir, "pki"), "pos"), Wire: n.Wire("pos")}}

	b.ResetTimer()
	for b.Loop() {
		j, err := Run(context.Background(), load(jt, *compareFor, time.Second))
		if err != nil {
			b.Fatal(err)
		}
		base, err := Run(context.Background(), load(bt, *compareFor, time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for name, rep := range map[string]*Report{"junction": j, "baseline": base} {
			if len(rep.Errors) != 0 || rep.Codes["00"] != rep.Answered {
				b.Fatalf("%s: codes %v errors %v", name, rep.Codes, rep.Errors)
			}
		}
		b.ReportMetric(j.Approvals, "junction-approvals/s")
		b.ReportMetric(base.Approvals, "baseline-approvals/s")
		b.ReportMetric(j.Approvals/base.Approvals, "x-throughput")
		b.ReportMetric(float64(j.Latency.P99)/1000, "junction-p99-ms")
		b.ReportMetric(float64(base.Latency.P99)/1000, "baseline-p99-ms")
		b.Log(fmt.Sprintf("junction: %s", j.Summary()))
		b.Log(fmt.Sprintf("baseline: %s", base.Summary()))
	}
}
