// Package head is the head ledger (总账务中心): the general ledger that the regional shards'
// journals are batch-merged into (批量并账), exactly once, in its own badger directory.
//
// # What it does
//
// Apply takes a batch of one region's journal entries (ledger.Transfer, in sequence, as
// Shard.Journal pages them out) and posts them into the general ledger: for the region and for
// each account (its id in the region's shard), per currency, the debits and credits posted, the
// debits and credits pending (holds not yet posted, voided or expired), and how many entries
// touched it; the net is credits − debits. A region's debits always equal its credits, posted and
// pending alike, since every entry debits one account and credits another by the same amount.
// The posting rules are the shard's own: holds only pend, posts post and release, voids and
// expiries only release; an account's totals in the head equal its record in the shard.
//
// Pull is the in-process merge that `junction up` runs: it pages through a shard's journal from
// the region's high-water mark on and applies each page, until a page comes back empty.
//
// # Exactly once
//
// Everything upstream is at-least-once: a puller that crashed, or never heard that its Apply
// committed, sends the batch again. The head keeps, per region, the high-water mark: the last
// journal seq it applied. Apply reads it, skips the entries at or below it, refuses a batch
// whose first new entry is not mark + 1 (ErrGap: the entries in between would be lost), and
// writes the new totals and the new mark in one badger transaction with SyncWrites on. So an
// entry's totals land together with the mark that covers it or not at all, and once they landed
// the mark makes every later copy of that entry a no-op. Every entry of a batch is checked before
// anything is read or written (sequence, amount > 0, currency, accounts, kind; ErrBadBatch); a
// bad batch is refused whole. Apply calls are serialised, so two pullers of one region cannot
// both read the same mark.
//
// It does not yet check that an entry it skips is the one it applied before (a shard that
// rewrote its history would go unnoticed), roll totals up by institution and station or merchant,
// keep the detail (the entries themselves), or run cutover, clearing, settlement and
// reconciliation.
//
// # How data enters and leaves
//
// In: Apply (any transport that delivers journal pages) and Pull (a *ledger.Shard in the same
// process). Out: Totals and AccountTotals read committed totals; HighWater tells a puller where
// to resume. Metrics, with a Registerer: junction_head_high_water{region} and
// junction_head_entries_total{region}.
//
// # Storage layout
//
//	w/<len><region>                          high-water mark (u64)
//	r/<len><region><currency BE u16>         the region's totals in one currency
//	c/<len><region><account BE u64><currency BE u16>
//	                                         an account's totals in one currency
//
// The region name has a one-byte length in front, so one region's prefix never runs into
// another's. Values are versioned binary records with a CRC-32C, as in package ledger
// (record.go lists them).
package head
