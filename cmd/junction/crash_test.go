package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/pki"
)

// TestMain lets the test binary stand in for the junction binary: with
// JUNCTION_TEST_RUN set, it runs the command line after "--" and exits.
func TestMain(m *testing.M) {
	if os.Getenv("JUNCTION_TEST_RUN") == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Exit(run(os.Args[i+1:], os.Stdout, os.Stderr))
			}
		}
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestKilledProcessLosesNoApproval runs `junction up` as its own process,
// drives purchases on four pipelined connections, kills the process with
// SIGKILL mid-stream (no drain, no close), then opens the ledger files and
// checks that every approval a terminal received is booked exactly once.
func TestKilledProcessLosesNoApproval(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cfg := allinone.DefaultConfig()
	cfg.PKIDir, cfg.DataDir, cfg.HTTP = filepath.Join(dir, "pki"), filepath.Join(dir, "data"), ""
	yaml := fmt.Sprintf("pki_dir: %s\ndata_dir: %s\nhttp: \"\"\nchannels:\n", cfg.PKIDir, cfg.DataDir)
	cfg.Channels = cfg.Channels[:4]
	for i := range cfg.Channels {
		cfg.Channels[i].Listen = freePort(t)
		yaml += fmt.Sprintf("  - {name: %s, listen: %q, institution: %q}\n", cfg.Channels[i].Name, cfg.Channels[i].Listen, cfg.Channels[i].Institution)
	}
	cfgFile := filepath.Join(dir, "junction.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	child := exec.Command(os.Args[0], "-test.run=^$", "--", "up", "-c", cfgFile, "--log-level", "warn")
	child.Env = append(os.Environ(), "JUNCTION_TEST_RUN=1")
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })

	d := codec.ISO87ASCII()
	dialed := make([]*front.Client, len(cfg.Channels))
	for i, ch := range cfg.Channels {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := dialChannel(cfg, ch, d)
			if err == nil {
				dialed[i] = c
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("junction up did not come up: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	const pan = "6299901100000013"
	var mu sync.Mutex
	var approved []ledger.TxID
	var wg sync.WaitGroup
	for i, c := range dialed {
		wg.Add(2)
		go func() {
			defer wg.Done()
			req := codec.NewMessage(d)
			for k := 1; ; k++ {
				tx := front.Txn{Type: codec.TxPurchase, PAN: pan, Amount: 1, Currency: 156, STAN: uint32(k),
					Terminal: fmt.Sprintf("KILL%04d", i), Time: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
				if tx.Build(d, req) != nil || c.Send(req) != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			resp := codec.NewMessage(d)
			for c.Receive(resp) == nil {
				if string(resp.Get(39)) == codec.RCApproved {
					mu.Lock()
					approved = append(approved, ledger.TxIDOf(resp))
					mu.Unlock()
				}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(approved)
		mu.Unlock()
		if n >= 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d approvals in 30s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	for _, c := range dialed {
		c.Close()
	}
	wg.Wait()

	shard, err := ledger.Open(ledger.Options{Dir: filepath.Join(cfg.DataDir, "ledger", "beijing"), Region: "beijing",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer shard.Close()
	journal, err := shard.Journal(1, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	booked := map[ledger.TxID]int{}
	for _, e := range journal {
		booked[e.TxID]++
	}
	for _, id := range approved {
		if booked[id] != 1 {
			t.Fatalf("an approval sent before the kill is booked %d times", booked[id])
		}
	}
	if _, err := shard.Verify(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d approvals received before SIGKILL, %d journal entries after restart", len(approved), len(journal))
}

func dialChannel(cfg allinone.Config, ch allinone.Channel, d *codec.Dialect) (*front.Client, error) {
	cert, key := pki.ClientFiles(cfg.PKIDir, ch.Name)
	tlsCfg, err := front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(cfg.PKIDir)}, "localhost")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return front.Dial(ctx, ch.Listen, tlsCfg, front.ClientOptions{Dialect: d})
}
