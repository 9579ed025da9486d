package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/bench"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/pki"
)

func benchCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("junction bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		config     = fs.String("c", "", "configuration of the switch to drive (channels, addresses, pki_dir); default: the built-in one `junction up` runs")
		duration   = fs.Duration("duration", 15*time.Second, "how long to measure")
		warmup     = fs.Duration("warmup", 2*time.Second, "load before measuring, not measured")
		ramp       = fs.Duration("ramp", 0, "bring the load up over this long from the start: open loop the rate grows linearly, closed loop the connections start one after another")
		conns      = fs.Int("conns", 8, "long connections, spread over the long-connection channels")
		shortConns = fs.Int("short-conns", 0, "loops opening one connection per transaction on the short-connection channels (kiosk)")
		inFlight   = fs.Int("in-flight", 16, "requests each long connection keeps unanswered")
		rate       = fs.Float64("rate", 0, "open loop at this many requests/s (latency from when each was due); 0: closed loop")
		mix        = fs.String("mix", "purchase=9,balance=1", "transaction mix by weight: purchase, balance, preauth (then its completion), refund, reversal, topup, payment, transfer")
		hot        = fs.Float64("hot", 0.5, "share of requests on the first card (a hot account)")
		cards      = fs.String("cards", "", "comma-separated PANs (default: the demo cards with funds)")
		accounts   = fs.Int("accounts", 0, "open this many test cards on the switch before the run (POST /admin/accounts on its HTTP port) and drive them instead of the demo cards: demo BIN, spread over the regions, each opened with "+benchOpening+"; a rerun reuses them")
		amount     = fs.String("amount", "0.01", "amount of each purchase")
		channels   = fs.String("channels", "", "comma-separated channels to drive (default: every channel of the configuration)")
		targets    = fs.String("target", "", "comma-separated channel=host:port overriding where a channel is reached")
		out        = fs.String("out", "bench/out", "directory for report.json, report.md and plot.svg ('' to skip)")
		audit      = fs.Bool("audit", true, "after the run, check each card's balance moved by exactly the approved purchases (no other traffic must run meanwhile), then ask the switch to verify its ledger shards")
		noResume   = fs.Bool("no-resume", false, "short connections do a full TLS handshake every time (no session tickets)")
		p99        = fs.Duration("p99", 0, "search for the highest open-loop rate whose p99 stays within this bound (e.g. 20ms), then measure half that rate; each step runs --warmup and --duration")
		steps      = fs.Int("search-steps", 6, "rates the --p99 search tries")
		cpuProfile = fs.String("cpuprofile", "", "write the load generator's CPU profile to this file")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: junction bench [-c FILE] [--duration 15s] [--conns 8] [--in-flight 16] [--rate R] [flags]

Drives a running switch (by default the one 'junction up' runs on this machine,
with the dev certificates in ./var/pki) over its channels: long pipelined mutual-TLS
connections, and with --short-conns a connection per transaction (TLS session
resumption on). Closed loop by default; --rate runs open loop and measures latency
from when each request was due. It prints a progress line a second and a summary
"N approvals/s", writes report.json, report.md and plot.svg, and audits the
ledger through balance inquiries. It sends only to the addresses of the
configuration or of --target. With --accounts N it first opens N test cards
through the switch's HTTP port; after the audit it asks the switch to verify
its ledger shards (GET /admin/ledger/verify) and reports the result.

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
	o := bench.Options{Duration: *duration, Warmup: *warmup, Ramp: *ramp, Conns: *conns, ShortConns: *shortConns, InFlight: *inFlight,
		Rate: *rate, HotShare: *hot, Currency: allinone.DemoCurrency, Progress: stdout, Mix: map[bench.Kind]int{}}
	if o.Amount, err = ledger.ParseAmount(*amount, o.Currency); err != nil {
		return fail(stderr, fmt.Errorf("--amount: %w", err))
	}
	if err := parseMix(*mix, o.Mix); err != nil {
		return fail(stderr, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch {
	case *accounts > 0 && *cards != "":
		return fail(stderr, errors.New("give --cards or --accounts, not both"))
	case *accounts > 0:
		pans, spread, err := benchCards(cfg, *accounts)
		if err != nil {
			return fail(stderr, err)
		}
		opened, lowest, err := openCards(ctx, cfg.HTTP, pans)
		if err != nil {
			return fail(stderr, err)
		}
		var where []string
		for _, r := range cfg.Regions {
			if spread[r.Name] > 0 {
				where = append(where, fmt.Sprintf("%d in %s", spread[r.Name], r.Name))
			}
		}
		fmt.Fprintf(stdout, "test cards: %d (%d opened now, %s), the lowest balance %s\n",
			len(pans), opened, strings.Join(where, ", "), ledger.FormatAmount(lowest, o.Currency))
		// At the machine's ceiling (about 200 000 authorizations/s) all on the hot card.
		if need := o.Amount * 200_000 * int64((*warmup+*ramp+*duration).Seconds()+1); lowest < need {
			fmt.Fprintf(stderr, "junction bench: a test card holds %s, less than the run may spend on it (%s): expect declines 51\n",
				ledger.FormatAmount(lowest, o.Currency), ledger.FormatAmount(need, o.Currency))
		}
		o.Cards = pans
	case *cards == "":
		for _, a := range allinone.DemoAccounts() {
			if a.Opening >= 1_000_000 { // the demo cards that can take a long run
				o.Cards = append(o.Cards, a.PAN)
			}
		}
	default:
		o.Cards = strings.Split(*cards, ",")
	}
	for _, pan := range o.Cards {
		o.Payees = append(o.Payees, allinone.DemoBiller(pan))
		o.Accounts = append(o.Accounts, allinone.DemoPhoneAccount(pan))
	}
	if o.Targets, err = benchTargets(cfg, *channels, *targets); err != nil {
		return fail(stderr, err)
	}
	if *noResume {
		for i := range o.Targets {
			if o.Targets[i].TLS != nil {
				o.Targets[i].TLS = o.Targets[i].TLS.Clone()
				o.Targets[i].TLS.ClientSessionCache = nil
			}
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fail(stderr, err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(stderr, err)
		}
		defer pprof.StopCPUProfile()
	}
	audited := o.Targets[0]
	for _, t := range o.Targets {
		if !t.Short && t.Wire.Outbound == nil {
			audited = t // a plain 1987 long channel asks the balances
			break
		}
	}
	var before []int64
	if *audit && *p99 == 0 { // a search is many runs: it is not audited
		if before, err = balances(ctx, audited, o.Cards); err != nil {
			return fail(stderr, fmt.Errorf("audit: balances before the run: %w", err))
		}
	}
	if *p99 > 0 {
		return benchSearch(ctx, o, *p99, *steps, *out, stdout, stderr)
	}
	rep, err := bench.Run(ctx, o)
	if err != nil {
		return fail(stderr, err)
	}
	if *audit {
		// Reversals of what timed out, and advices the switch accepted,
		// wait in its SAF: the books are whole once it is empty.
		if err := waitSAF(ctx, cfg.HTTP); err != nil {
			fmt.Fprintf(stderr, "junction bench: audit: %v; the audit may count them as breaks\n", err)
		}
		after, err := balances(context.Background(), audited, o.Cards)
		if err != nil {
			return fail(stderr, fmt.Errorf("audit: balances after the run: %w", err))
		}
		rep.Audit = &bench.Audit{Passed: true, Cards: len(o.Cards)}
		if lost := rep.Errors[bench.NoAnswer]; lost > 0 {
			rep.Audit.Breaks = append(rep.Audit.Breaks, fmt.Sprintf("%d requests got no answer: their outcome is unknown to the harness", lost))
		}
		for i, pan := range o.Cards {
			if moved, want := before[i]-after[i], rep.ApprovedAmounts[i]; moved != want {
				rep.Audit.Passed = false
				rep.Audit.Breaks = append(rep.Audit.Breaks, fmt.Sprintf("card %s: balance moved by %d, the approvals received move it by %d",
					codec.MaskPAN([]byte(pan)), moved, want))
			}
		}
		// The switch re-derives its books from the journals: what the
		// balances above cannot show (Σ debits = Σ credits, reversals,
		// idempotency records).
		rep.Verify = switchVerify(context.Background(), cfg.HTTP)
		if rep.Verify.Error != "" {
			fmt.Fprintf(stderr, "junction bench: ledger verify not run: %s\n", rep.Verify.Error)
		}
	}
	fmt.Fprintln(stdout, rep.Summary())
	if *out != "" {
		if err := writeReports(*out, rep); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "reports in %s\n", *out)
	}
	if rep.Audit != nil && !rep.Audit.Passed || rep.Verify != nil && rep.Verify.Error == "" && !rep.Verify.Passed {
		return 1
	}
	return 0
}

func parseMix(s string, into map[bench.Kind]int) error {
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return fmt.Errorf("--mix %q: want kind=weight,… e.g. purchase=9,balance=1", s)
		}
		into[bench.Kind(k)] = n
	}
	return nil
}

// benchTargets are the configuration's channels (or those named), each
// with its dev-PKI client certificate and its wire, at its address or the
// one --target gives.
func benchTargets(cfg allinone.Config, only, overrides string) ([]bench.Target, error) {
	addr := map[string]string{}
	if overrides != "" {
		for _, o := range strings.Split(overrides, ",") {
			ch, a, ok := strings.Cut(o, "=")
			if !ok {
				return nil, fmt.Errorf("--target %q: want channel=host:port", o)
			}
			addr[ch] = a
		}
	}
	want := map[string]bool{}
	if only != "" {
		for _, ch := range strings.Split(only, ",") {
			want[ch] = true
		}
	}
	dialects, err := cfg.DialectSet()
	if err != nil {
		return nil, err
	}
	wires, err := cfg.Wires(dialects)
	if err != nil {
		return nil, err
	}
	var out []bench.Target
	for _, ch := range cfg.Channels {
		if len(want) > 0 && !want[ch.Name] {
			continue
		}
		t := bench.Target{Channel: ch.Name, Addr: ch.Listen, Wire: wires[ch.Name], Short: ch.Short}
		if a := addr[ch.Name]; a != "" {
			t.Addr = a
		}
		if ch.Plaintext == nil {
			cert, key := pki.ClientFiles(cfg.PKIDir, ch.Name)
			if t.TLS, err = front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(cfg.PKIDir)}, "localhost"); err != nil {
				return nil, fmt.Errorf("channel %s: %w (has 'junction up' created %s?)", ch.Name, err, cfg.PKIDir)
			}
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("no channel to drive")
	}
	return out, nil
}

// balances asks each card's ledger balance with a balance inquiry, on a
// connection of its own (a short-connection channel takes one request per
// connection).
func balances(ctx context.Context, t bench.Target, cards []string) ([]int64, error) {
	out := make([]int64, len(cards))
	for i, pan := range cards {
		b, err := balance(ctx, t, pan, uint32(i+1))
		if err != nil {
			return nil, fmt.Errorf("card %s: %w", codec.MaskPAN([]byte(pan)), err)
		}
		out[i] = b
	}
	return out, nil
}

func balance(ctx context.Context, t bench.Target, pan string, stan uint32) (int64, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := front.Dial(dctx, t.Addr, t.TLS, front.ClientOptions{Dialect: t.Wire.Dialect, Framing: t.Wire.Framing, Header: t.Wire.Header})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	req, resp := codec.NewMessage(t.Wire.Dialect), codec.NewMessage(t.Wire.Dialect)
	tx := front.Txn{Type: codec.TxBalance, PAN: pan, Currency: allinone.DemoCurrency, STAN: stan,
		Terminal: fmt.Sprintf("AUD%05d", time.Now().UnixNano()%100000), Time: time.Now()}
	if err := tx.Build(t.Wire.Dialect, req); err != nil {
		return 0, err
	}
	if err := c.Exchange(dctx, req, resp); err != nil {
		return 0, err
	}
	amounts, err := codec.ParseAdditionalAmounts(resp.Get(54))
	if rc := string(resp.Get(39)); rc != codec.RCApproved || err != nil {
		return 0, fmt.Errorf("balance inquiry answered %s", rc)
	}
	for _, a := range amounts {
		if a.AmountType == codec.AmountLedger {
			return a.Amount, nil
		}
	}
	return 0, errors.New("no ledger balance in field 54")
}

func writeReports(dir string, rep *bench.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, write := range map[string]func(io.Writer) error{
		"report.json": rep.WriteJSON, "report.md": rep.WriteMarkdown, "plot.svg": rep.WriteSVG,
	} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// benchSearch runs the --p99 search and writes sustained.json.
func benchSearch(ctx context.Context, o bench.Options, bound time.Duration, steps int, out string, stdout, stderr io.Writer) int {
	s, err := bench.FindSustained(ctx, o, bound, steps)
	if err != nil {
		return fail(stderr, err)
	}
	if s.Rate == 0 {
		fmt.Fprintf(stdout, "no rate tried held p99 within %s (closed loop did %.0f/s)\n", bound, s.Capacity)
	} else {
		fmt.Fprintf(stdout, "sustained %.0f requests/s (%.0f approvals/s) with p99 %s within %s; at half that rate p99 %s\n",
			s.Rate, s.AtRate.Approvals, (time.Duration(s.AtRate.Latency.P99) * time.Microsecond), bound,
			(time.Duration(s.AtHalf.Latency.P99) * time.Microsecond))
	}
	if out != "" {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return fail(stderr, err)
		}
		f, err := os.Create(filepath.Join(out, "sustained.json"))
		if err != nil {
			return fail(stderr, err)
		}
		defer f.Close()
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "search in %s\n", filepath.Join(out, "sustained.json"))
	}
	return 0
}

// waitSAF waits until the switch's store-and-forward queues are empty, as
// its /admin/saf on addr reports, for at most a minute.
func waitSAF(ctx context.Context, addr string) error {
	if addr == "" {
		return errors.New("the switch has no HTTP port to ask whether its SAF is empty")
	}
	deadline := time.Now().Add(time.Minute)
	for {
		depth, err := safDepth(ctx, "http://"+addr+"/admin/saf")
		if err == nil && depth == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = fmt.Errorf("%d advices still in the SAF", depth)
			}
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func safDepth(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var queues map[string]struct {
		Depth int `json:"depth"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&queues); err != nil {
		return 0, fmt.Errorf("/admin/saf: %w", err)
	}
	n := 0
	for _, q := range queues {
		n += q.Depth
	}
	return n, nil
}
