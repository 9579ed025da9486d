package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/ledger"
)

func ledgerCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "verify" {
		return ledgerVerify(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("junction ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("c", "", "configuration file (YAML): the region must have remote settings")
	region := fs.String("region", "", "the region whose shard this process runs")
	check := fs.Bool("t", false, "check the configuration and exit")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	drain := fs.Duration("drain-timeout", 30*time.Second, "how long Ctrl-C waits for requests in flight")
	httpAddr := fs.String("http", "", "serve /metrics, /healthz and /readyz on this address (host:port); off when empty")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: junction ledger -c FILE --region R [-t] [--http ADDR] [--log-level L] [--drain-timeout D]
       junction ledger verify [--data DIR]

Runs one regional ledger shard as its own process: the badger shard under
<data_dir>/ledger/R (demo cards of the region seeded when demo is on) served as
an ISO 8583 host on the region's remote.listen, in its remote dialect and
framing (default 1987 binary behind a 2-byte length). Only the switch's client
certificate (CN "switch", dev PKI under pki_dir) is admitted, and only after it
signs on. The switch reaches it over persistent links when the same file gives
the region a remote section, e.g.

  regions:
    - name: beijing
      remote: {listen: "127.0.0.1:9701", journal: "127.0.0.1:9702"}
    - name: shanghai

With remote.journal it also serves its journal, cutovers and reconciliation
adjustments to the head ledger in 'junction up' (HTTPS, mutual TLS, the same
certificates). Certificate files are reloaded on SIGHUP and when they change. Ctrl-C drains:
requests in flight are answered, the shard committed and closed.

'junction ledger verify' checks the books of every stopped shard under a data
directory; 'junction ledger verify -h' says how.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *config == "" || *region == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := allinone.LoadConfig(*config)
	if err != nil {
		return fail(stderr, err)
	}
	if err := cfg.ValidateLedger(*region); err != nil {
		return fail(stderr, fmt.Errorf("config %s: %w", *config, err))
	}
	if *check {
		fmt.Fprintln(stdout, "configuration ok")
		return 0
	}
	log, err := logger(stderr, *level)
	if err != nil {
		return fail(stderr, err)
	}

	node, err := allinone.StartLedger(cfg, *region, log)
	if err != nil {
		return fail(stderr, err)
	}
	if *httpAddr != "" {
		if _, err := node.ServeHTTP(*httpAddr); err != nil {
			node.Shutdown(context.Background())
			return fail(stderr, err)
		}
	}
	fmt.Fprintf(stdout, "junction ledger: region %s on %s (mutual TLS, client %q, sign-on required)\n",
		*region, node.Addr(), allinone.SwitchIdentity)
	if a := node.HTTPAddr(); a != nil {
		fmt.Fprintf(stdout, "  http: http://%s/metrics  /healthz  /readyz\n", a)
	}

	return serveUntilSignal(node, log, *drain, stderr)
}

// shardSearchDepth is how many directory levels below --data verify looks
// for ledger/<region>: the default layout, var/data/ledger/beijing, is
// found from ./var and from var/data alike.
const shardSearchDepth = 4

// ledgerVerify is `junction ledger verify`: it opens every shard under a
// data directory in turn and runs ledger.Shard.Verify on it.
func ledgerVerify(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("junction ledger verify", flag.ContinueOnError)
	flags.SetOutput(stderr)
	data := flags.String("data", "var", "the data directory junction up uses: ./var, or its data_dir")
	flags.Usage = func() {
		fmt.Fprintf(stderr, `usage: junction ledger verify [--data DIR]

Verifies the books of every regional shard found under DIR: each directory
ledger/<region> up to %d levels down (the default configuration keeps them in
var/data/ledger/<region>). For each shard it recomputes every account from the
journal and checks Σ debits = Σ credits per currency, the no-overdraft rule,
the journal's sequence, reversals, idempotency records and card bindings, and
prints one line:

  ok    beijing   var/data/ledger/beijing: journal 1204 (reversals 2, stand-ins 0, adjustments 0), ...

followed, for a shard that fails, by what is wrong with it. Amounts are in
minor units. A shard must be stopped first: one that a running junction up or
junction ledger holds is reported as in use. The exit status is 0 only when
every shard found passes; it is 1 when any fails or none is found.

`, shardSearchDepth)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		flags.Usage()
		return 2
	}
	shards, err := findShards(*data)
	if err != nil {
		return fail(stderr, fmt.Errorf("ledger verify: %w", err))
	}
	if len(shards) == 0 {
		return fail(stderr, fmt.Errorf("ledger verify: no shard under %s (looked for ledger/<region> up to %d levels down)",
			*data, shardSearchDepth))
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	failed := 0
	for _, sh := range shards {
		if !verifyShard(sh, log, stdout) {
			failed++
		}
	}
	fmt.Fprintf(stdout, "%d shards: %d ok, %d failed\n", len(shards), len(shards)-failed, failed)
	if failed > 0 {
		return fail(stderr, fmt.Errorf("ledger verify: %d of %d shards failed", failed, len(shards)))
	}
	return 0
}

// shardDir is a shard's badger directory, <something>/ledger/<region>.
type shardDir struct{ region, dir string }

// findShards lists the badger directories named ledger/<region> under root,
// in path order. A directory under ledger/ without a badger MANIFEST holds
// no books and is not a shard: verify never opens it, since opening an
// empty directory would create a shard there.
func findShards(root string) ([]shardDir, error) {
	info, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", root)
	}
	var out []shardDir
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if d.Name() == "ledger" {
			entries, err := os.ReadDir(path)
			if err != nil {
				return err
			}
			for _, e := range entries {
				dir := filepath.Join(path, e.Name())
				if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); e.IsDir() && err == nil {
					out = append(out, shardDir{region: e.Name(), dir: dir})
				}
			}
			return filepath.SkipDir
		}
		if rel, _ := filepath.Rel(root, path); rel != "." && strings.Count(rel, string(filepath.Separator)) >= shardSearchDepth-1 {
			return filepath.SkipDir
		}
		return nil
	})
	return out, err
}

// verifyShard opens, verifies and closes one shard, prints its line (and
// its breaks) and reports whether it passed.
func verifyShard(sh shardDir, log *slog.Logger, w io.Writer) bool {
	failf := func(format string, a ...any) bool {
		fmt.Fprintf(w, "FAIL  %-9s %s: %s\n", sh.region, sh.dir, fmt.Sprintf(format, a...))
		return false
	}
	s, err := ledger.Open(ledger.Options{Dir: sh.dir, Region: sh.region, Logger: log})
	if err != nil {
		if lockedByAnother(err) {
			return failf("in use by a running process; stop it first")
		}
		return failf("%v", err)
	}
	rep, verr := s.Verify()
	if err := s.Close(); err != nil && verr == nil {
		verr = err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "journal %d (reversals %d, stand-ins %d, adjustments %d), accounts %d (cards %d, overdrawn by stand-ins %d), tx records %d (tombstones %d), window %d",
		rep.Transfers, rep.Reversals, rep.StandIns, rep.Adjusts, rep.Accounts, rep.Cards, rep.Overdrawn, rep.TxRecords, rep.Tombstones, rep.Window)
	for _, c := range rep.Totals {
		rel := "="
		if c.Debits != c.Credits {
			rel = "≠"
		}
		fmt.Fprintf(&b, ", %03d: Σ debits %d %s Σ credits %d", c.Currency, c.Debits, rel, c.Credits)
	}
	if verr == nil {
		fmt.Fprintf(w, "ok    %-9s %s: %s\n", sh.region, sh.dir, b.String())
		return true
	}
	if n := len(rep.Breaks) + rep.Dropped; n > 0 {
		failf("%d breaks; %s", n, b.String())
	} else {
		failf("%v; %s", verr, b.String())
	}
	for _, brk := range rep.Breaks {
		fmt.Fprintf(w, "        %s\n", brk)
	}
	if rep.Dropped > 0 {
		fmt.Fprintf(w, "        ... and %d more\n", rep.Dropped)
	}
	return false
}

// lockedByAnother reports whether Open failed because another process
// holds the shard's badger directory lock. badger flattens the flock error
// into its message (y.Wrapf keeps no %w outside its debug mode), so the
// message is all there is to go on; TestLedgerVerify pins it.
func lockedByAnother(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Another process is using this Badger database")
}
