// Package head is the head ledger (总账务中心): the general ledger that the regional shards'
// journals are batch-merged into (批量并账), exactly once, in its own badger directory. It keeps
// every merged entry (the detail), rolls the GL up by settlement window, institution, region,
// merchant and account, runs the settlement windows (cutover) and clears closed windows into
// net positions, fee postings and settlement files.
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
// expiries only release, every other kind (adjustments included) posts its amount; an account's
// totals in the head equal its record in the shard.
//
// Pull merges one Source (a shard: Local for one in this process, ledger/remote's client for one
// in another): it pages through its journal from the region's high-water mark on and applies each
// page, until a page comes back empty, and keeps the region's merge lag metrics.
//
// # Exactly once
//
// Everything upstream is at-least-once: a puller that crashed, or never heard that its Apply
// committed, sends the batch again. The head keeps, per region, the high-water mark: the last
// journal seq it applied. Apply reads it, skips the entries at or below it, refuses a batch
// whose first new entry is not mark + 1 (ErrGap: the entries in between would be lost), and
// writes the new totals, detail, seq ranges, GL leaves, clearing aggregates, window changes and
// the new mark in one badger transaction with SyncWrites on. So an entry's effects land together with the mark
// that covers it or not at all, and once they landed the mark makes every later copy of that
// entry a no-op. Every entry of a batch is checked before anything is written (sequence, amount
// > 0, currency, accounts, kind, text fields ≤ 32 bytes, window; ErrBadBatch); a bad batch is
// refused whole. Apply calls are serialised, so two pullers of one region cannot both read the
// same mark. An entry it skips is checked against the detail it merged (TxID, kind, accounts,
// amount, original): a shard whose journal says something else under a merged seq (restored from
// an old backup, rewritten) gets ErrDiverged, the batch refused whole.
//
// # Detail and GL roll-up
//
// Every merged entry is stored whole (it has no PAN: a journal entry never has one), under its
// region and seq, with one index key when it has an RRN. Entries answers by RRN (and region) with
// a prefix scan of that index. For windows and dates it needs no key per entry: per region and
// window, and per region, UTC date of the entry's Time and acquirer, Apply keeps the first and last
// seq it merged (widened once per batch, in the batch's transaction), and Entries scans the detail
// between them, keeping only the entries that match (a region's windows and dates follow its seq
// order but need not do so strictly: a late entry of a window still closing, a shard clock that
// stepped back).
//
// The GL roll-up keeps, per window, leaf totals keyed institution (the entry's Acquirer, field
// 32) → region → merchant (its Merchant, field 42: the station or merchant; "" when none) →
// account → currency: each entry adds to the leaf of its debit account and of its credit account. GL sums the leaves of one
// window to any level in one prefix scan. Entries with Window 0 (booked before windows existed)
// count in window 1, in the GL, in clearing and in Entries' window ranges.
//
// # Windows
//
// A settlement window is open → closing → closed → settled. Window 1 is created open, dated with
// the UTC date of Options.Clock, when a head is first opened. Cutover commits "N closing, N+1
// open" in one transaction, then tells every Source to move into N+1 and records the point each
// returns (the last seq of its journal booked in N or earlier). The regions a window waits for
// are Options.Regions and the regions of the sources given to Cutover (a region cut over has
// entries of N up to its point, so N must wait for them). A
// window closes once every one of them has reported its point and the region's high-water mark
// has reached it; the change is written in the same transaction as the Apply that reaches the
// last point, or as the point that comes last. A source that failed stays pending, and the window
// closing, until Resume (which the pull loop calls every round; it does nothing when nothing is
// pending) gets its point; a source is asked for its pending windows oldest first. Entries carry
// their window, so assignment is exact: Apply refuses an entry of a window above the open one or
// of one already closed or settled. Cutover and Resume are serialised with each other, and each
// of their writes with Apply, so states never race.
//
// # Clearing
//
// Settle clears a closed window. Apply keeps, per window, institution, merchant, currency and
// flow, the count and gross (Σ amount) of the entries clearing counts. Flows and their sign (+:
// the platform owes the institution; −: the institution owes the platform):
//
//	purchase, stand_in, post (completion), payment     +gross, merchant fees apply
//	refund; reversal of any of those                    −gross, merchant fees apply
//	deposit (top-up the institution collected)          −gross, no fee
//	deposit_reversal (reversal of a top-up)             +gross, no fee
//	transfer, its reversal, adjust, hold, void, expire  not cleared (they net to zero between
//	                                                    accounts of the platform, or post nothing)
//
// A reversal takes its flow from the entry it reverses (found in the batch or the detail).
//
// Merchant fee, per merchant, kind and currency of a window: round(gross × rate) + count ×
// fixed[kind], with gross signed as above, in minor units. The rate comes from Fees.Merchants
// (else Fees.Default); the fixed fee is per transaction, in major units, and must be a whole
// number of minor units (else ErrClearing). ROUNDING: the rate part is rounded half away from
// zero to the currency's minor unit (ledger.CurrencyByCode gives its exponent), once per
// merchant, kind and window; nothing else is rounded. So a refund or reversal gives the rate part
// back (a negative fee), while its fixed fee, if one is configured for that kind, is charged.
// A line's net is gross − fee. An institution's net position per currency is the sum of its
// lines: PAY (the platform pays it) when ≥ 0, RECEIVE when below. An institution that
// Clearing.Institutions does not list keeps its position with an empty name and account, and a
// warning is logged. Fees are booked in the head's own GL (h/ keys, HeadAccount): per
// institution and currency, debit InstitutionAccount(id) and credit FeeIncome by its fees (the
// other way round when they are negative), in the same transaction that stores the Settlement and
// moves the window to settled. Settle on a settled window returns the stored Settlement and
// writes those of its files that are missing; the files depend on the stored Settlement only, so
// they come out identical.
//
// # Files
//
// Written into Clearing.Out after the settle transaction committed, each atomically (a temporary
// file in the same directory, synced, renamed; the directory synced):
//
//	SETTLE_<date>_W<window, 6 digits>_<currency>.txt   one per currency with positions
//	  H|<window>|<date>|<currency>
//	  D|<institution id>|<name>|<account>|PAY or RECEIVE|<|net| as a decimal, e.g. 25.67>|<currency>
//	  T|<number of D lines>|<control sum: Σ |net| of the D lines, decimal>
//	MERCHANTS_<date>_W<window, 6 digits>.csv          the per-merchant report
//	  merchant,institution,kind,count,gross,fee,net,currency   (signed decimals)
//
// Lines are sorted by currency, then institution (and merchant, flow) and carry no clock value.
//
// # How data enters and leaves
//
// In: Apply (any transport that delivers journal pages), Pull (a Source), Cutover and Resume
// (sources), Settle (a Clearing). Out: Totals, AccountTotals, HighWater, Entries, GL, Windows,
// Window, HeadAccount, the Settlement and its files, and MergedThrough: the instant up to which
// every region's entries are merged (when a Pull last found nothing more; kept in memory, zero
// after an open until every region has been caught up once), which reconciliation waits on. Metrics, with a Registerer:
// junction_head_high_water{region}, junction_head_entries_total{region},
// junction_head_lag_entries{region} (source's last seq − high-water mark) and
// junction_head_lag_seconds{region} (see Pull).
//
// # Storage layout
//
// This is layout 2, recorded in the l/ key when a directory is created. Open refuses (ErrLayout)
// a directory of another layout, such as one of layout 1 (three index keys per entry: x/w by
// window, x/d by date and acquirer, x/r by RRN; no l/ key), rather than misread it; the head does
// not convert one.
//
//	l/                                       layout record (u32: 2)
//	w/<len><region>                          high-water mark (u64)
//	r/<len><region><currency BE u16>         the region's totals in one currency
//	c/<len><region><account BE u64><currency BE u16>
//	                                         an account's totals in one currency
//	e/<len><region><seq BE u64>              detail: the entry (detail record)
//	x/r<len><rrn><len><region><seq BE u64><len>
//	                                         index by RRN (entries with one); the value is empty
//	q/w<window BE u32><len><region>          first and last seq of the region's entries of the
//	                                         window (0 stored as 1)
//	q/d<date BE u32><len><acquirer><len><region>
//	                                         first and last seq of the region's entries of the
//	                                         acquirer whose Time falls on the UTC date
//	g/<window BE u32><len><acquirer><len><region><len><merchant><account BE u64><currency BE u16>
//	                                         GL leaf: a total
//	k/<window BE u32><len><acquirer><len><merchant><currency BE u16><flow u8>
//	                                         clearing aggregate: a total (Debits = gross, Entries = count)
//	n/<window BE u32>                        window record
//	s/<window BE u32>                        settlement record
//	h/<len><head account><currency BE u16>   the head's own GL: fee income, institutions' fees
//
// Text keys have a one-byte length in front, so one region's prefix never runs into another's.
// Values are versioned records with a CRC-32C as in package ledger (record.go, detail.go): totals,
// marks, seq ranges, the layout and details binary; window and settlement records a JSON body
// between the version byte and the CRC.
package head
