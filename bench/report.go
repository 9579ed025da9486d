package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Report is what a run measured. Latencies are in microseconds.
type Report struct {
	Start    time.Time `json:"start"`
	Mode     string    `json:"mode"` // closed or open loop
	Rate     float64   `json:"target_rate,omitempty"`
	Duration float64   `json:"duration_s"`
	Conns    int       `json:"conns"`
	Short    int       `json:"short_conns"`
	InFlight int       `json:"in_flight"`

	Sent       int64            `json:"sent"`
	Answered   int64            `json:"answered"`
	Approved   int64            `json:"approved"`
	Throughput float64          `json:"answers_per_s"`
	Approvals  float64          `json:"approvals_per_s"`
	Latency    Latency          `json:"latency_us"`
	Codes      map[string]int64 `json:"response_codes"`
	Errors     map[string]int64 `json:"errors"`
	Backlog    int64            `json:"generator_backlog"` // open loop: requests the generator could not even queue
	ShortTx    int64            `json:"short_transactions"`
	Resumed    int64            `json:"short_resumed_handshakes"`
	Seconds    []second         `json:"per_second"`
	// ApprovedAmounts is, per card index, what the approvals the harness
	// received (warmup included) take off the card's ledger balance:
	// purchases, payments and completions less refunds, reversals and
	// top-ups. The audit holds the ledger to it.
	ApprovedAmounts map[int]int64 `json:"approved_amounts"`
	Audit           *Audit        `json:"audit,omitempty"`
	Verify          *Verify       `json:"ledger_verify,omitempty"`
}

// Latency summarises a histogram.
type Latency struct {
	P50, P90, P99, P999, Max int64
}

// Audit is the check after a run: for every card, the ledger's balance
// moved by exactly the purchases the harness saw approved.
type Audit struct {
	Passed bool     `json:"passed"`
	Cards  int      `json:"cards"`
	Breaks []string `json:"breaks,omitempty"`
}

// Verify is the switch's own check of its books after the run (GET
// /admin/ledger/verify on `junction up`): every in-process shard's
// balances, Σ debits = Σ credits, reversals and idempotency records
// re-derived from its journal, as `junction ledger verify` does on a
// stopped one.
type Verify struct {
	Passed bool            `json:"passed"`
	Shards []VerifiedShard `json:"shards,omitempty"`
	Remote []string        `json:"not_verified,omitempty"` // regions whose shard runs in its own process
	Error  string          `json:"error,omitempty"`        // the verify could not be asked: it did not run
}

// VerifiedShard is one shard's verify.
type VerifiedShard struct {
	Region  string   `json:"region"`
	OK      bool     `json:"ok"`
	Entries int      `json:"journal_entries"`
	Breaks  []string `json:"breaks,omitempty"`
}

// summary is the verify's part of the summary line.
func (v *Verify) summary() string {
	switch {
	case v.Error != "":
		return "ledger verify not run: " + v.Error
	case v.Passed:
		s := fmt.Sprintf("ledger verify passed (%d shards", len(v.Shards))
		if len(v.Remote) > 0 {
			s += fmt.Sprintf("; %s in its own process not verified", strings.Join(v.Remote, ", "))
		}
		return s + ")"
	}
	var breaks []string
	for _, sh := range v.Shards {
		if !sh.OK {
			breaks = append(breaks, fmt.Sprintf("%s: %s", sh.Region, strings.Join(sh.Breaks[:min(len(sh.Breaks), 3)], "; ")))
		}
	}
	return "LEDGER VERIFY FAILED: " + strings.Join(breaks, "; ")
}

func (r *run) report() *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	dur := r.o.Duration.Seconds()
	if el := time.Since(r.start).Seconds(); el < dur && el > 0 {
		dur = el // stopped early
	}
	rep := &Report{
		Start: r.start, Mode: "closed", Duration: dur, Conns: r.o.Conns, Short: r.o.ShortConns, InFlight: r.o.InFlight,
		Sent: r.sent.Load(), Codes: r.codes, Errors: r.errors, Backlog: r.backlog.Load(),
		ShortTx: r.shortTx.Load(), Resumed: r.resumed.Load(), ApprovedAmounts: r.approved,
		Latency: Latency{P50: r.hist.quantile(0.5), P90: r.hist.quantile(0.9), P99: r.hist.quantile(0.99),
			P999: r.hist.quantile(0.999), Max: r.hist.quantile(1)},
	}
	if r.o.Rate > 0 {
		rep.Mode, rep.Rate = "open", r.o.Rate
	}
	for _, n := range r.codes {
		rep.Answered += n
	}
	rep.Approved = r.codes["00"]
	rep.Throughput = float64(rep.Answered) / dur
	rep.Approvals = float64(rep.Approved) / dur
	r.closeSecond()
	rep.Seconds = r.seconds[:min(len(r.seconds), int(dur+0.999))]
	return rep
}

// Summary is the one line a run ends with.
func (rep *Report) Summary() string {
	s := fmt.Sprintf("%.0f approvals/s (%s loop, %d answers in %.1fs), p50 %s p99 %s p99.9 %s max %s, %d errors",
		rep.Approvals, rep.Mode, rep.Answered, rep.Duration, us(rep.Latency.P50), us(rep.Latency.P99),
		us(rep.Latency.P999), us(rep.Latency.Max), sum(rep.Errors))
	if rep.Audit != nil {
		if rep.Audit.Passed {
			s += fmt.Sprintf("; audit passed (%d cards)", rep.Audit.Cards)
		} else {
			s += fmt.Sprintf("; AUDIT FAILED: %s", strings.Join(rep.Audit.Breaks, "; "))
		}
	}
	if rep.Verify != nil {
		s += "; " + rep.Verify.summary()
	}
	return s
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteMarkdown writes the report as a Markdown page.
func (rep *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# junction bench, %s\n\n", rep.Start.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "%s\n\n", rep.Summary())
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| mode | %s loop", rep.Mode)
	if rep.Mode == "open" {
		fmt.Fprintf(&b, " at %.0f requests/s (latency from when each request was due)", rep.Rate)
	}
	fmt.Fprintf(&b, " |\n| connections | %d long (%d in flight each), %d short |\n", rep.Conns, rep.InFlight, rep.Short)
	fmt.Fprintf(&b, "| measured | %.1f s, %d sent, %d answered, %d approved |\n", rep.Duration, rep.Sent, rep.Answered, rep.Approved)
	fmt.Fprintf(&b, "| throughput | %.0f answers/s, %.0f approvals/s |\n", rep.Throughput, rep.Approvals)
	fmt.Fprintf(&b, "| latency | p50 %s, p90 %s, p99 %s, p99.9 %s, max %s |\n",
		us(rep.Latency.P50), us(rep.Latency.P90), us(rep.Latency.P99), us(rep.Latency.P999), us(rep.Latency.Max))
	if rep.ShortTx > 0 {
		fmt.Fprintf(&b, "| short connections | %d transactions, %d resumed TLS sessions |\n", rep.ShortTx, rep.Resumed)
	}
	if rep.Backlog > 0 {
		fmt.Fprintf(&b, "| generator backlog | %d requests could not be queued |\n", rep.Backlog)
	}
	b.WriteString("\n## Response codes\n\n| code | count |\n|---|---|\n")
	for _, c := range codesSorted(rep.Codes) {
		fmt.Fprintf(&b, "| %s | %d |\n", c, rep.Codes[c])
	}
	if len(rep.Errors) > 0 {
		b.WriteString("\n## Errors\n\n| error | count |\n|---|---|\n")
		for _, e := range codesSorted(rep.Errors) {
			fmt.Fprintf(&b, "| %s | %d |\n", e, rep.Errors[e])
		}
	}
	if rep.Audit != nil {
		fmt.Fprintf(&b, "\n## Audit\n\n%d cards checked: ", rep.Audit.Cards)
		if rep.Audit.Passed {
			b.WriteString("every approved purchase is in the ledger exactly once, nothing declined was booked.\n")
		} else {
			fmt.Fprintf(&b, "FAILED\n\n- %s\n", strings.Join(rep.Audit.Breaks, "\n- "))
		}
	}
	if v := rep.Verify; v != nil {
		b.WriteString("\n## Ledger verify\n\n")
		switch {
		case v.Error != "":
			fmt.Fprintf(&b, "Not run: %s\n", v.Error)
		default:
			if v.Passed {
				b.WriteString("Passed: the switch re-derived every in-process shard's books from its journal after the run and found no break.\n")
			} else {
				b.WriteString("FAILED: the switch found breaks in the books.\n")
			}
			b.WriteString("\n| region | result | journal entries |\n|---|---|---|\n")
			for _, sh := range v.Shards {
				res := "ok"
				if !sh.OK {
					res = "BROKEN: " + strings.Join(sh.Breaks, "; ")
				}
				fmt.Fprintf(&b, "| %s | %s | %d |\n", sh.Region, res, sh.Entries)
			}
			for _, r := range v.Remote {
				fmt.Fprintf(&b, "| %s | not verified (shard in its own process) | |\n", r)
			}
		}
	}
	b.WriteString("\n![throughput and p99 per second](plot.svg)\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteSVG plots answers per second (bars) and p99 latency (line) over the
// run.
func (rep *Report) WriteSVG(w io.Writer) error {
	const width, height, pad = 800, 320, 50
	n := max(len(rep.Seconds), 1)
	var top int64 = 1
	var topLat int64 = 1
	for _, s := range rep.Seconds {
		top, topLat = max(top, s.Answered), max(topLat, s.P99us)
	}
	bw := float64(width-2*pad) / float64(n)
	y := func(v, max int64) float64 { return float64(height-pad) - float64(v)/float64(max)*float64(height-2*pad) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, s := range rep.Seconds {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#8ab"/>`+"\n",
			float64(pad)+float64(i)*bw+1, y(s.Answered, top), max(bw-2, 1), float64(height-pad)-y(s.Answered, top))
	}
	var pts []string
	for i, s := range rep.Seconds {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", float64(pad)+(float64(i)+0.5)*bw, y(s.P99us, topLat)))
	}
	if len(pts) > 0 {
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#c33" stroke-width="2"/>`+"\n", strings.Join(pts, " "))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", pad, height-pad, width-pad, height-pad)
	fmt.Fprintf(&b, `<text x="%d" y="%d">answers/s (bars), max %d</text>`+"\n", pad, pad-20, top)
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#c33" text-anchor="end">p99 (line), max %s</text>`+"\n", width-pad, pad-20, us(topLat))
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">seconds</text>`+"\n", width/2, height-pad+30)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
