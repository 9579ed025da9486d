package allinone_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/junction-switch/junction/allinone"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("a configuration with every channel setting loads", func(t *testing.T) {
		cfg, err := allinone.LoadConfig(write("good.yaml", `
limits:
  max_conns_per_identity: 50
  frame_timeout: 5s
channels:
  - name: pos
    listen: 127.0.0.1:0
    institution: "10000001"
    sign_on: true
    identities:
      - {cn: "pos-*", institution: "20000001", group: retail}
      - {ou: kiosks, group: self-service}
  - name: bank
    listen: 127.0.0.1:0
    institution: "10000004"
    dialect: iso87binary
    framing: {length: bcd2, header: 5, mirror: tpdu, tpdu: "6000010000"}
  - name: bank93
    listen: 127.0.0.1:0
    institution: "10000006"
    dialect: iso93ascii
    short: true
    framing: {length: ascii4}
`))
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Channels) != 3 || !cfg.Channels[0].SignOn || cfg.Limits.MaxConnsPerIdentity != 50 || len(cfg.Channels[0].Identities) != 2 {
			t.Fatalf("loaded %+v", cfg)
		}
	})

	t.Run("every mistake is reported with its key", func(t *testing.T) {
		_, err := allinone.LoadConfig(write("bad.yaml", `
limits:
  max_conns_per_identity: 0
channels:
  - name: pos
    listen: 127.0.0.1:0
    institution: "10000001"
    identities:
      - {group: nobody}
      - {cn: "p*s", institution: "ABC"}
    tls: {cert: only-a-cert.pem}
  - name: bank
    listen: 127.0.0.1:0
    institution: "10000004"
    dialect: iso99
    framing: {length: ascii5, mirror: swap}
`))
		if err == nil {
			t.Fatal("loaded")
		}
		for _, want := range []string{
			"limits.max_conns_per_identity",
			"channels[0].identities[0]: give at least one of cn, ou, san",
			`channels[0].identities[1].cn: "p*s": '*' only at the end`,
			`channels[0].identities[1].institution: "ABC"`,
			"channels[0].tls: give cert, key and ca together",
			`channels[1]: dialect: "iso99"`,
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
	})
}
