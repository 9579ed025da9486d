// Package bench measures Junction end to end: the load-test harness behind
// `junction bench`, and the in-process end-to-end benchmark.
//
// Run drives a running switch over its channels: long mutual-TLS
// connections that keep a number of requests in flight (closed loop), or
// requests due at a target rate whose latency counts from when each was
// due, so a stalled server cannot hide its queue (open loop); and loops
// that open a connection per transaction on short-connection channels,
// resuming their TLS sessions. Requests come from a weighted mix
// (purchases, balance inquiries, pre-authorisations and their completions,
// refunds and reversals of earlier approvals, top-ups, bill payments,
// transfers) over a set of cards with a hot share. Latencies go into log-linear histograms (under 1 % error) per
// connection and per second; the Report has throughput, p50 to max,
// response codes, errors by kind, the per-second series, and what was
// approved per card, for the audit `junction bench` makes afterwards
// through balance inquiries, and the switch's ledger verify after it
// (Verify, filled in by `junction bench`). Reports are written as JSON,
// Markdown and an SVG plot.
//
// BenchmarkEndToEnd is the all-in-one node in the same process: real
// mutual-TLS connections, real badger ledgers with synced commits.
// BenchmarkVersusBaseline runs one closed-loop load against Junction and
// against package baseline, the switch most teams would write first, and
// reports both and their ratio.
//
//	go test -run '^$' -bench EndToEnd -benchtime 20000x ./bench
//	go test -run '^$' -bench VersusBaseline -benchtime 1x ./bench
//
// FindSustained bisects open-loop rates for the highest one whose p99 stays
// within a bound, and measures half of it.
//
// The cards are the caller's: `junction bench` gives the demo cards, or
// with --accounts test cards it opens through the switch's admin port
// first. Payments and transfers still go to the demo billers and telephone
// accounts.
package bench
