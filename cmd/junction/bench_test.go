package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/junction-switch/junction/allinone"
)

// TestBenchCommand drives a node with `junction bench`: long and short
// connections, the summary line, the audit, the reports; then a short
// --p99 search.
func TestBenchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs load for seconds")
	}
	dir := t.TempDir()
	pos, kiosk, admin := freePort(t), freePort(t), freePort(t)
	file := filepath.Join(dir, "junction.yaml")
	yaml := fmt.Sprintf(`pki_dir: %s
data_dir: %s
http: %q
channels:
  - {name: pos, listen: %q, institution: "10000001"}
  - {name: kiosk, listen: %q, institution: "10000002", short: true}
`, filepath.Join(dir, "pki"), filepath.Join(dir, "data"), admin, pos, kiosk)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := allinone.LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	startNodeWith(t, cfg)
	out := filepath.Join(dir, "out")

	code, stdout, stderr := junction(t, "bench", "-c", file, "--duration", "1s", "--warmup", "200ms",
		"--conns", "2", "--in-flight", "4", "--short-conns", "1", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"approvals/s (closed loop", "audit passed (2 cards)", "ledger verify passed (2 shards)", "req/s  p99", "reports in"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, f := range []string{"report.json", "report.md", "plot.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "resumed TLS sessions") {
		t.Errorf("report.md says nothing of the short connections:\n%s", md)
	}

	// Test cards the harness opens itself, over both regions; a second run
	// reuses them.
	for _, opened := range []string{"5 opened now", "0 opened now"} {
		code, stdout, stderr = junction(t, "bench", "-c", file, "--accounts", "5", "--duration", "300ms", "--warmup", "100ms",
			"--conns", "2", "--channels", "pos", "--out", out)
		if code != 0 {
			t.Fatalf("--accounts: exit %d: %s\n%s", code, stdout, stderr)
		}
		for _, want := range []string{"test cards: 5 (" + opened + ", 3 in beijing, 2 in shanghai)", "audit passed (5 cards)", "ledger verify passed (2 shards)"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("--accounts: output lacks %q:\n%s", want, stdout)
			}
		}
		if strings.Contains(stdout+stderr, "62999011900000") {
			t.Errorf("--accounts: a whole test PAN in the output:\n%s\n%s", stdout, stderr)
		}
	}
	var rep struct {
		Audit  struct{ Cards int }
		Verify *struct {
			Passed bool
			Shards []struct{ Region string }
		} `json:"ledger_verify"`
	}
	raw, _ := os.ReadFile(filepath.Join(out, "report.json"))
	if err := json.Unmarshal(raw, &rep); err != nil || rep.Audit.Cards != 5 || rep.Verify == nil || !rep.Verify.Passed || len(rep.Verify.Shards) != 2 {
		t.Errorf("report.json: %v\n%s", err, raw)
	}
	if md, _ := os.ReadFile(filepath.Join(out, "report.md")); !strings.Contains(string(md), "## Ledger verify\n\nPassed") {
		t.Errorf("report.md says nothing of the ledger verify:\n%s", md)
	}

	code, stdout, stderr = junction(t, "bench", "-c", file, "--duration", "300ms", "--warmup", "100ms", "--conns", "2",
		"--channels", "pos", "--p99", "1s", "--search-steps", "2", "--out", out)
	if code != 0 || !strings.Contains(stdout, "closed loop:") || !strings.Contains(stdout, "open loop") {
		t.Fatalf("search: exit %d: %s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "sustained.json")); err != nil {
		t.Error(err)
	}
}
