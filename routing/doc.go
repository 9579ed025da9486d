// Package routing decides where a transaction goes. It is a deterministic
// core: a Table of rules and an Input (the routing fields of a scanned
// message and where it came from) in, a Decision out; no sockets, no clock,
// no goroutines, no allocation per decision.
//
// A Rule has conditions — channel, client identity, MTI pattern, processing
// code pattern (transaction type, from and to account), PAN BINs and BIN
// ranges, amount bounds and currency — and one outcome: a destination (a
// regional ledger shard, a bank host, or StandIn) with ordered alternates,
// a region split (a region code at a fixed place in the PAN, or a telephone
// area code at the start of the account id in field 102, picks the
// destination), or a decline code. Among the rules whose conditions hold,
// the longest matching BIN wins; then the one written first. A request no
// rule takes is declined 15 (no such issuer); a rule that checks the PAN
// (length, Luhn) or splits by region declines 14 (invalid card) when the
// PAN fails or the code is unknown.
//
// Tables are built whole by NewTable or LoadFile, which check every rule
// and report every problem at once, each with its line in the YAML file,
// including rules another rule always hides. A Table never changes: a new
// file is a new Table, swapped in by the caller (package switch holds it
// in an atomic pointer). Explain says, rule by rule, why each did or did not
// decide, for `junction route explain`.
//
// Not here: the message pipeline (package switch), destinations themselves
// (package ledger, package front for outbound links), counting decisions
// (package switch keeps a metric per rule).
package routing
