package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/pki"
)

// The words: in junction up the shards are reachable in-process
// without a socket; the same shard also runs as junction ledger --region R
// behind a real link, and the two give the same results. These tests run
// `junction ledger` as its own process (the test binary stands in for
// junction, see TestMain in crash_test.go).

const (
	richPAN    = "6299901100000013" // beijing, 200 000.00 CNY
	poorPAN    = "6299901100000021" // beijing, 500.00 CNY
	unknownPAN = "6299901100000047" // beijing's range, Luhn-valid, no account
	shPAN      = "6299903100000019" // shanghai
)

// ledgerProcess is `junction ledger` running as a child process.
type ledgerProcess struct {
	t       *testing.T
	args    []string
	cmd     *exec.Cmd
	done    chan error
	running bool
}

func startLedgerProcess(t *testing.T, cfgFile, region, addr string) *ledgerProcess {
	t.Helper()
	p := &ledgerProcess{t: t, args: []string{"-test.run=^$", "--", "ledger", "-c", cfgFile, "--region", region, "--log-level", "error"}}
	p.start(addr)
	t.Cleanup(p.kill)
	return p
}

// start runs the process and waits until it accepts connections on addr.
func (p *ledgerProcess) start(addr string) {
	p.t.Helper()
	p.cmd = exec.Command(os.Args[0], p.args...)
	p.cmd.Env = append(os.Environ(), "JUNCTION_TEST_RUN=1")
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.running = true
	p.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(p.cmd, p.done)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-p.done:
			p.running = false
			p.t.Fatalf("junction ledger exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("junction ledger did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the process at once, as a crash would.
func (p *ledgerProcess) kill() {
	if p.running {
		p.cmd.Process.Kill()
		<-p.done
		p.running = false
	}
}

// stop interrupts the process, which drains and closes its shard.
func (p *ledgerProcess) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		p.t.Fatal(err)
	}
	err := <-p.done
	p.running = false
	if err != nil {
		p.t.Fatalf("junction ledger after Ctrl-C: %v", err)
	}
}

// remoteNode runs beijing as `junction ledger` and a node that reaches it
// over links, shanghai in-process; data and certificates under dir.
func remoteNode(t *testing.T, dir string, tune ...func(*allinone.Config)) (*allinone.Node, allinone.Config, *ledgerProcess) {
	t.Helper()
	listen := freePort(t)
	yaml := fmt.Sprintf(`pki_dir: %s
data_dir: %s
http: ""
regions:
  - name: beijing
    remote: {listen: %q}
  - name: shanghai
`, filepath.Join(dir, "pki"), filepath.Join(dir, "data"), listen)
	cfgFile := filepath.Join(dir, "junction.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startLedgerProcess(t, cfgFile, "beijing", listen)

	cfg := allinone.LocalConfig(dir)
	cfg.Regions[0].Remote = &allinone.Remote{Listen: listen}
	for _, f := range tune {
		f(&cfg)
	}
	// Start seeds the demo cards of shanghai, its own shard; the process
	// seeds beijing's.
	n := startNodeWith(t, cfg)
	eventually(t, "the link to the beijing process is up", func() bool { return linkUp(t, n, "beijing-1") })
	return n, cfg, p
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startNodeWith(t *testing.T, cfg allinone.Config) *allinone.Node {
	t.Helper()
	n, err := allinone.Start(cfg, quietLog())
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

func linkUp(t *testing.T, n *allinone.Node, endpoint string) bool {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "junction_link_health" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" && l.GetValue() == endpoint {
					return m.GetGauge().GetValue() == 2
				}
			}
		}
	}
	return false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client dials a channel of n in its dialect and framing.
func client(t *testing.T, n *allinone.Node, cfg allinone.Config, channel string) *front.Client {
	t.Helper()
	cert, key := pki.ClientFiles(cfg.PKIDir, channel)
	tlsCfg, err := front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(cfg.PKIDir)}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := n.Wire(channel)
	c, err := front.Dial(ctx, n.Addr(channel).String(), tlsCfg, front.ClientOptions{Dialect: w.Dialect, Framing: w.Framing, Header: w.Header})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ask(t *testing.T, c *front.Client, d *codec.Dialect, tx front.Txn) *codec.Message {
	t.Helper()
	req, resp := codec.NewMessage(d), codec.NewMessage(d)
	if err := tx.Build(d, req); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Exchange(ctx, req, resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// step is one request of the sequence both deployments answer.
type step struct {
	what    string
	channel string
	tx      front.Txn
	rc      string
}

func sequence() []step {
	at := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	tx := func(typ, pan string, amount int64, stan uint32) front.Txn {
		return front.Txn{Type: typ, PAN: pan, Amount: amount, Currency: 156, STAN: stan,
			Terminal: "PROOF001", Merchant: "PROOF SHOP", Time: at}
	}
	return []step{
		{"a purchase", "pos", tx(codec.TxPurchase, richPAN, 1234, 1), "00"},
		{"a second card's purchase", "pos", tx(codec.TxPurchase, poorPAN, 100, 2), "00"},
		{"a purchase above the balance", "pos", tx(codec.TxPurchase, poorPAN, 10_000_000, 3), "51"},
		{"an unknown card", "pos", tx(codec.TxPurchase, unknownPAN, 100, 4), "14"},
		{"the first purchase retransmitted", "pos", tx(codec.TxPurchase, richPAN, 1234, 1), "00"},
		{"a binary bank's purchase", "bank", tx(codec.TxPurchase, richPAN, 500, 5), "00"},
		{"a balance inquiry", "pos", tx(codec.TxBalance, richPAN, 0, 6), "00"},
		{"the second card's balance", "pos", tx(codec.TxBalance, poorPAN, 0, 7), "00"},
		{"a purchase in the in-process region", "pos", tx(codec.TxPurchase, shPAN, 700, 8), "00"},
	}
}

// play sends the sequence through n's channels and returns the answers.
func play(t *testing.T, n *allinone.Node, cfg allinone.Config) []*codec.Message {
	t.Helper()
	clients := map[string]*front.Client{}
	var out []*codec.Message
	for _, s := range sequence() {
		if clients[s.channel] == nil {
			clients[s.channel] = client(t, n, cfg, s.channel)
		}
		resp := ask(t, clients[s.channel], n.Wire(s.channel).Dialect, s.tx)
		if got := string(resp.Get(39)); got != s.rc {
			t.Errorf("%s: rc %s, want %s", s.what, got, s.rc)
		}
		out = append(out, resp)
	}
	return out
}

// sameMessage lists how two answers differ, field by field.
func sameMessage(a, b *codec.Message) []string {
	var diffs []string
	if a.MTIString() != b.MTIString() {
		diffs = append(diffs, fmt.Sprintf("MTI %s vs %s", a.MTIString(), b.MTIString()))
	}
	for id := 2; id <= codec.MaxField; id++ {
		switch {
		case a.Has(id) != b.Has(id):
			diffs = append(diffs, fmt.Sprintf("field %d present %v vs %v", id, a.Has(id), b.Has(id)))
		case !bytes.Equal(a.Get(id), b.Get(id)):
			if id == 2 {
				diffs = append(diffs, "field 2 differs")
				continue
			}
			diffs = append(diffs, fmt.Sprintf("field %d %q vs %q", id, a.Get(id), b.Get(id)))
		}
	}
	return diffs
}

func TestLedgerProcessGivesTheSameAnswersAsInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	remoteDir := t.TempDir()
	remote, remoteCfg, proc := remoteNode(t, remoteDir)
	local, localCfg := startNode(t)

	viaLink := play(t, remote, remoteCfg)
	inProcess := play(t, local, localCfg)
	for i, s := range sequence() {
		for _, d := range sameMessage(viaLink[i], inProcess[i]) {
			t.Errorf("%s: behind the link %s in-process", s.what, d)
		}
	}
	if a, b := viaLink[0].Get(38), viaLink[4].Get(38); len(a) != 6 || !bytes.Equal(a, b) {
		t.Errorf("the retransmission's authorization code %q, the first's %q", b, a)
	}

	// The books: stop the shard process cleanly, open its files, and
	// compare them with the in-process shard.
	proc.stop()
	shard, err := ledger.Open(ledger.Options{Dir: filepath.Join(remoteCfg.DataDir, "ledger", "beijing"), Region: "beijing", Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer shard.Close()
	if _, err := shard.Verify(); err != nil {
		t.Fatal(err)
	}
	for _, pan := range []string{richPAN, poorPAN} {
		a, err := shard.AccountByPAN(pan)
		if err != nil {
			t.Fatal(err)
		}
		b, err := local.Shard("beijing").AccountByPAN(pan)
		if err != nil {
			t.Fatal(err)
		}
		if a.Balance() != b.Balance() {
			t.Errorf("%s: balance %d in the shard process, %d in-process", codec.MaskPAN([]byte(pan)), a.Balance(), b.Balance())
		}
	}
	ja, err := shard.Journal(1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := local.Shard("beijing").Journal(1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(ja) != len(jb) {
		t.Errorf("journal of %d entries in the shard process, %d in-process", len(ja), len(jb))
	}
	a, err := remote.Shard("shanghai").AccountByPAN(shPAN)
	if err != nil {
		t.Fatal(err)
	}
	b, err := local.Shard("shanghai").AccountByPAN(shPAN)
	if err != nil {
		t.Fatal(err)
	}
	if a.Balance() != b.Balance() {
		t.Errorf("shanghai: balance %d beside a remote region, %d all in-process", a.Balance(), b.Balance())
	}
}

func TestLedgerProcessOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	n, cfg, proc := remoteNode(t, dir)
	pos := client(t, n, cfg, "pos")
	d := n.Dialect()
	stan := uint32(0)
	balance := func(pan string) string {
		stan++
		resp := ask(t, pos, d, front.Txn{Type: codec.TxBalance, PAN: pan, Currency: 156, STAN: stan,
			Terminal: "OUTAGE01", Time: time.Now()})
		return string(resp.Get(39))
	}
	if rc := balance(richPAN); rc != "00" {
		t.Fatalf("before the outage: rc %s", rc)
	}

	t.Run("a killed shard process makes its region 91", func(t *testing.T) {
		proc.kill()
		eventually(t, "beijing is answered 91", func() bool { return balance(richPAN) == codec.RCIssuerUnavailable })
	})
	t.Run("the other region is still served", func(t *testing.T) {
		if rc := balance(shPAN); rc != "00" {
			t.Fatalf("shanghai: rc %s", rc)
		}
	})
	t.Run("a purchase meanwhile is approved in stand-in and its advice queued", func(t *testing.T) {
		stan++
		resp := ask(t, pos, d, front.Txn{Type: codec.TxPurchase, PAN: richPAN, Amount: 4321, Currency: 156, STAN: stan,
			Terminal: "OUTAGE01", Time: time.Now()})
		if rc, auth := string(resp.Get(39)), resp.Get(38); rc != "00" || len(auth) != 6 || auth[0] != 'S' {
			t.Fatalf("rc %s auth %q, want a stand-in approval", rc, auth)
		}
		if depth := n.SAF().Depth("beijing"); depth != 1 {
			t.Fatalf("SAF depth %d", depth)
		}
	})
	t.Run("the switch recovers by itself when the process is back", func(t *testing.T) {
		proc.start(cfg.Regions[0].Remote.Listen)
		eventually(t, "beijing is served again", func() bool { return balance(richPAN) == "00" })
		eventually(t, "the stand-in advice is delivered", func() bool { return n.SAF().Depth("beijing") == 0 })
	})
}

func TestLedgerCommandLine(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "junction.yaml")
	write := func(yaml string) {
		if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("-h explains the command", func(t *testing.T) {
		code, _, errOut := junction(t, "ledger", "-h")
		if code != 2 || !strings.Contains(errOut, "junction ledger -c FILE --region R") || !strings.Contains(errOut, "remote:") {
			t.Fatalf("exit %d:\n%s", code, errOut)
		}
	})
	t.Run("the file and the region are required", func(t *testing.T) {
		if code, _, _ := junction(t, "ledger", "--region", "beijing"); code != 2 {
			t.Fatalf("exit %d without -c", code)
		}
	})
	t.Run("-t refuses a region that is not remote", func(t *testing.T) {
		write("regions: [{name: beijing}, {name: shanghai}]\n")
		code, _, errOut := junction(t, "ledger", "-c", cfgFile, "--region", "beijing", "-t")
		if code != 1 || !strings.Contains(errOut, "regions[0].remote") {
			t.Fatalf("exit %d:\n%s", code, errOut)
		}
	})
	t.Run("-t accepts a remote region", func(t *testing.T) {
		write("regions: [{name: beijing, remote: {listen: \"127.0.0.1:9701\"}}, {name: shanghai}]\n")
		code, out, errOut := junction(t, "ledger", "-c", cfgFile, "--region", "beijing", "-t")
		if code != 0 || !strings.Contains(out, "configuration ok") {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
	})
}
