package allinone_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
)

const beijingRules = `rules:
  - name: all-to-beijing
    bin: "629990"
    destination: beijing
`

const regionRules = `rules:
  - name: by-region
    bin: "629990"
    luhn: true
    region: {offset: 6, length: 2}
    regions: {"11": beijing, "31": shanghai}
`

// TestRoutesReload swaps the routing rules of a running node from their
// file: by the admin endpoint, by a change of the file, and refuses a
// broken file while the rules in use keep serving.
func TestRoutesReload(t *testing.T) {
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "routes.yaml")
	must(t, os.WriteFile(rulesFile, []byte(regionRules), 0o600))
	cfg := testConfig(dir)
	cfg.Routes = nil
	cfg.RoutesFile = rulesFile
	cfg.Switch.RoutesCheck = 20 * time.Millisecond
	n := start(t, cfg)
	d := n.Dialect()
	pos := dial(t, n, cfg, "pos")
	shanghaiBefore := balance(t, n, "shanghai", shPAN)

	// The Shanghai card goes to its shard.
	if got := rc(exchange(t, pos, d, txn(codec.TxPurchase, shPAN, 100))); got != "00" {
		t.Fatalf("rc %s", got)
	}
	if got := balance(t, n, "shanghai", shPAN); got != shanghaiBefore-100 {
		t.Fatalf("shanghai balance %d", got)
	}

	post := func() (int, string) {
		resp, err := http.Post("http://"+n.HTTPAddr().String()+"/admin/routes/reload", "", nil)
		must(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		must(t, err)
		return resp.StatusCode, string(body)
	}

	t.Run("a broken file is refused and the rules in use stay", func(t *testing.T) {
		must(t, os.WriteFile(rulesFile, []byte("rules:\n  - name: x\n    bin: \"62x\"\n    destination: beijing\n"), 0o600))
		code, body := post()
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, "line 2") {
			t.Fatalf("%d %q", code, body)
		}
		if got := rc(exchange(t, pos, d, txn(codec.TxPurchase, shPAN, 100))); got != "00" {
			t.Fatalf("rc %s after a refused reload", got)
		}
		if got := balance(t, n, "shanghai", shPAN); got != shanghaiBefore-200 {
			t.Fatalf("shanghai balance %d: the old rules did not serve", got)
		}
	})

	t.Run("the admin endpoint swaps good rules in", func(t *testing.T) {
		must(t, os.WriteFile(rulesFile, []byte(beijingRules), 0o600))
		code, body := post()
		if code != http.StatusOK {
			t.Fatalf("%d %q", code, body)
		}
		// The Shanghai card now routes to Beijing, where it has no account.
		if got := rc(exchange(t, pos, d, txn(codec.TxPurchase, shPAN, 100))); got != "14" {
			t.Fatalf("rc %s, want 14 from the beijing shard", got)
		}
	})

	t.Run("a change of the file is picked up by itself", func(t *testing.T) {
		must(t, os.WriteFile(rulesFile, []byte(regionRules), 0o600))
		eventually(t, "the region rules are back", func() bool {
			return rc(exchange(t, pos, d, txn(codec.TxPurchase, shPAN, 1))) == "00"
		})
	})

	t.Run("decisions are counted per rule", func(t *testing.T) {
		if got := counter(t, n, "junction_routing_decisions_total", "rule", "by-region"); got < 3 {
			t.Fatalf("by-region counted %v decisions", got)
		}
		if got := counter(t, n, "junction_routing_decisions_total", "rule", "all-to-beijing"); got < 1 {
			t.Fatalf("all-to-beijing counted %v decisions", got)
		}
	})
}

// TestRoutesReloadUnderLoad swaps the rules back and forth while four
// connections keep sending purchases: every request is answered 00.
func TestRoutesReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "routes.yaml")
	must(t, os.WriteFile(rulesFile, []byte(regionRules), 0o600))
	alt := strings.Replace(regionRules, "by-region", "by-region-2", 1)
	cfg := testConfig(dir)
	cfg.Routes, cfg.RoutesFile = nil, rulesFile
	n := start(t, cfg)
	d := n.Dialect()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		c := dial(t, n, cfg, "pos")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, resp := codec.NewMessage(d), codec.NewMessage(d)
				if err := txn(codec.TxPurchase, richPAN, 1).Build(d, req); err != nil {
					t.Error(err)
					return
				}
				sent.Add(1)
				if err := c.Exchange(context.Background(), req, resp); err != nil || rc(resp) != "00" {
					failed.Add(1)
				}
			}
		}()
	}
	reloads := 0
	for ctx.Err() == nil {
		body := regionRules
		if reloads%2 == 1 {
			body = alt
		}
		must(t, os.WriteFile(rulesFile, []byte(body), 0o600))
		must(t, n.ReloadRoutes())
		reloads++
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	if failed.Load() != 0 || sent.Load() == 0 {
		t.Fatalf("%d of %d requests failed across %d reloads", failed.Load(), sent.Load(), reloads)
	}
	t.Logf("%d requests, %d reloads, none failed", sent.Load(), reloads)
}

// counter reads the series of a counter or gauge with label=value.
func counter(t *testing.T, n *allinone.Node, name, label, value string) float64 {
	t.Helper()
	mfs, err := n.Registry().Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// TestAdminViews: the destinations' endpoints and the SAF, as an operator
// reads them on the HTTP port.
func TestAdminViews(t *testing.T) {
	cfg := testConfig(t.TempDir())
	n := start(t, cfg)
	dests := get(t, "http://"+n.HTTPAddr().String()+"/admin/destinations")
	for _, want := range []string{`"beijing": [`, `"breaker": "closed"`, `"health": "up"`, `"window": 256`} {
		if !strings.Contains(dests, want) {
			t.Errorf("/admin/destinations lacks %s:\n%s", want, dests)
		}
	}
	saf := get(t, "http://"+n.HTTPAddr().String()+"/admin/saf")
	if !strings.Contains(saf, `"shanghai": {`) || !strings.Contains(saf, `"depth": 0`) {
		t.Errorf("/admin/saf:\n%s", saf)
	}
}
