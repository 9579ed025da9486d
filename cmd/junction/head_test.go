package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
)

// TestHeadCommands drives the head ledger of a running node through `junction head`.
func TestHeadCommands(t *testing.T) {
	n, _ := startNode(t, func(cfg *allinone.Config) {
		cfg.HTTP = "127.0.0.1:0"
		cfg.Head.Pull = 10 * time.Millisecond
	})
	addr := n.HTTPAddr().String()
	head := func(args ...string) (int, string, string) {
		return junction(t, append([]string{"head", args[0], "--http", addr}, args[1:]...)...)
	}

	code, out, errs := head("cutover")
	if code != 0 || !strings.Contains(out, `"number": 1`) {
		t.Fatalf("cutover: %d %s %s", code, out, errs)
	}
	var status struct {
		Windows []struct {
			Number uint32 `json:"number"`
			State  string `json:"state"`
		} `json:"windows"`
	}
	eventually(t, "window 1 closes", func() bool {
		code, out, _ := head("status")
		return code == 0 && json.Unmarshal([]byte(out), &status) == nil && len(status.Windows) == 2 && status.Windows[0].State == "closed"
	})
	// Window 1 holds the demo accounts' opening deposits: no acquirer, debits equal credits.
	if code, out, errs := head("gl", "--window", "1", "--level", "region"); code != 0 || !strings.Contains(out, `"region": "beijing"`) {
		t.Fatalf("gl: %d %s %s", code, out, errs)
	}
	if code, out, errs := head("entries", "--window", "1", "--region", "shanghai", "--limit", "1"); code != 0 || strings.Count(out, `"seq"`) != 1 {
		t.Fatalf("entries: %d %s %s", code, out, errs)
	}
	if code, out, errs := head("settle", "--window", "1"); code != 0 || !strings.Contains(out, "SETTLE_") {
		t.Fatalf("settle: %d %s %s", code, out, errs)
	}
	for _, bad := range [][]string{{"gl"}, {"gl", "--window", "1", "--level", "planet"}, {"settle", "--window", "2"}, {"recon"}} {
		if code, _, errs := head(bad...); code == 0 {
			t.Errorf("head %v succeeded: %s", bad, errs)
		}
	}
	if code, _, errs := junction(t, "head", "status", "--http", "127.0.0.1:1"); code != 1 || !strings.Contains(errs, "junction up") {
		t.Errorf("unreachable switch: %d %s", code, errs)
	}
	if code, _, _ := junction(t, "head", "nonsense"); code != 2 {
		t.Errorf("unknown head command: exit %d", code)
	}
}
