package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRouteCommands(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "routes.yaml")
	os.WriteFile(rules, []byte(`rules:
  - name: big-to-shanghai
    bin: "629990"
    channels: [pos]
    currency: [156]
    amount: {min: "1000.00"}
    destination: shanghai
  - name: demo-cards
    bin: "629990"
    luhn: true
    region: {offset: 6, length: 2}
    regions: {"11": beijing, "31": shanghai}
    alternates: [shanghai]
`), 0o644)

	t.Run("explain says which rule decided and why the others did not", func(t *testing.T) {
		code, out, errOut := junction(t, "route", "explain", "--rules", rules, "--channel", "pos",
			"--pan", "6299901100000013", "--pcode", "000000", "--amount", "12.34")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{
			"decision: rule demo-cards: → beijing, then [shanghai]",
			"  big-to-shanghai (line 2): amount 1234 (minor units) is outside 1000.00..∞",
			"* demo-cards (line 8): decides (BIN 629990): → beijing (region code in the PAN), alternates shanghai",
			"PAN 629990******0013",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "6299901100000013") {
			t.Error("the full PAN is printed")
		}
	})

	t.Run("check accepts a good file and names every problem of a bad one", func(t *testing.T) {
		if code, out, errOut := junction(t, "route", "check", rules); code != 0 || !strings.Contains(out, "2 rules, ok") {
			t.Fatalf("exit %d: %s %s", code, out, errOut)
		}
		bad := filepath.Join(dir, "bad.yaml")
		os.WriteFile(bad, []byte("rules:\n  - name: x\n    bin: \"629990\"\n    destination: mars\n  - name: y\n    mti: [\"2\"]\n    decline: \"05\"\n"), 0o644)
		code, _, errOut := junction(t, "route", "check", bad)
		if code == 0 || !strings.Contains(errOut, `line 2: rule "x": destination: unknown destination "mars"`) || !strings.Contains(errOut, `line 5: rule "y": mti`) {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}
