// Package routing decides where a transaction goes. It is a deterministic
// core: a Table of rules in, a Decision out; no sockets, no clock, no
// goroutines, no allocation per decision.
//
// A rule covers a BIN (a PAN prefix; the longest matching prefix wins),
// checks the PAN's length and, if asked, its Luhn check digit, and picks a
// destination: one fixed destination, or a regional ledger shard chosen by a
// region code at a fixed position inside the PAN. A PAN no rule covers is
// declined 15 (no such issuer); a PAN a rule covers but cannot place (bad
// check digit, length, unknown region code) is declined 14 (invalid card).
//
// Tables are built whole by NewTable, which reports every problem at once,
// and never change afterwards: a new configuration is a new Table, swapped in
// by the caller.
//
// Not here: the message pipeline (package switch), destinations themselves
// (package ledger, package front for outbound links).
package routing
