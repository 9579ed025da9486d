package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/junction-switch/junction/allinone"
)

func ledgerCmd(args []string, stdout, stderr io.Writer) int {
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

Runs one regional ledger shard as its own process: the badger shard under
<data_dir>/ledger/R (demo cards of the region seeded when demo is on) served as
an ISO 8583 host on the region's remote.listen, in its remote dialect and
framing (default 1987 binary behind a 2-byte length). Only the switch's client
certificate (CN "switch", dev PKI under pki_dir) is admitted, and only after it
signs on. The switch reaches it over persistent links when the same file gives
the region a remote section, e.g.

  regions:
    - name: beijing
      remote: {listen: "127.0.0.1:9701"}
    - name: shanghai

Certificate files are reloaded on SIGHUP and when they change. Ctrl-C drains:
requests in flight are answered, the shard committed and closed.

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
