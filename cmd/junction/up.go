package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/junction-switch/junction/allinone"
)

func up(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("junction up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("c", "", "configuration file (YAML); without it the built-in demo configuration runs")
	check := fs.Bool("t", false, "check the configuration and exit")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	drain := fs.Duration("drain-timeout", 30*time.Second, "how long Ctrl-C waits for requests in flight")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: junction up [-c FILE] [-t] [--log-level L] [--drain-timeout D]

Runs the all-in-one switch: mutual-TLS channel listeners (pos 8583, kiosk 8584,
web 8585, bank 8586, hotline 8587), the switch, one badger ledger shard per
region under ./var/data, the head ledger that merges their journals (settlement
windows, clearing, reconciliation; see 'junction head') and HTTP /metrics,
/healthz, /readyz and the operators' /admin endpoints on 9583. On first
start it creates a dev CA and certificates under ./var/pki and seeds demo cards.
Certificate files are reloaded on SIGHUP and when they change. Ctrl-C drains:
requests in flight are answered, the ledgers committed and closed.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := allinone.LoadConfig(*config)
	if err != nil {
		return fail(stderr, err)
	}
	if *check {
		fmt.Fprintln(stdout, "configuration ok")
		return 0
	}
	log, err := logger(stderr, *level)
	if err != nil {
		return fail(stderr, err)
	}

	node, err := allinone.Start(cfg, log)
	if err != nil {
		return fail(stderr, err)
	}
	node.Summary(stdout)

	return serveUntilSignal(node, log, *drain, stderr)
}

// server is a running process's node: junction up's or junction ledger's.
type server interface {
	ReloadTLS() error
	Shutdown(context.Context) error
}

// serveUntilSignal keeps node running: SIGHUP reloads its certificate files
// and, for junction up, its routing rules (both are also watched), SIGINT or SIGTERM drains it within drain. A
// second SIGINT kills at once.
func serveUntilSignal(node server, log *slog.Logger, drain time.Duration, stderr io.Writer) int {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			log.Info("SIGHUP: reloading certificates")
			if err := node.ReloadTLS(); err != nil {
				log.Error("certificate reload failed; the certificates in use stay", "err", err)
			}
			if r, ok := node.(interface{ ReloadRoutes() error }); ok {
				log.Info("SIGHUP: reloading routing rules")
				if err := r.ReloadRoutes(); errors.Is(err, allinone.ErrNoRoutesFile) {
					log.Info("routing rules come from the built-in configuration: nothing to reload")
				} // ReloadRoutes logs the rest
			}
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	<-ctx.Done()
	stop() // a second Ctrl-C kills at once
	log.Info("draining", "timeout", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := node.Shutdown(sctx); err != nil {
		return fail(stderr, err)
	}
	log.Info("stopped cleanly")
	return 0
}
