// Package recon reads partners' files and acts on them: T+1 reconciliation files (对账), which it
// matches against the head ledger's detail and corrects the shards by, and batch-debit requests
// (批量代扣), which it runs as bill payments and answers with a response file.
//
// It does not move files (a caller hands it a path and collects the output), schedule anything,
// or decide what a break means beyond the platform's rule that the partner's record is
// authoritative; breaks that cannot be corrected automatically (an account nobody holds) are
// reported for an operator.
//
// # File names
//
// ORG_IFACE_UNIT_YYYYMMDD.txt, e.g. SDDL_DKKK_37101_20131012.txt: ORG is the organisation (2–8 of
// A-Z, 0-9), IFACE the kind of file (letters), UNIT the organisation's unit (1–10 digits), and the
// date a calendar date. The interfaces:
//
//	DZ      reconciliation: the partner's transactions of one day        partner → us
//	DKKK    batch-debit request: debits to run for a biller              partner → us
//	REDKKK  batch-debit response: one result per request line            us → partner
//
// A reconciliation run writes its report as <name without .txt>.report.csv in the output
// directory; a batch debit writes ORG_REDKKK_UNIT_YYYYMMDD.txt there.
//
// # Records
//
// Every file is printable ASCII (0x20–0x7E), one record per line ending in LF or CRLF: a header,
// detail records, and a trailer. It comes in one of two encodings with the same fields in the
// same order: CSV (comma-separated, RFC 4180 quoting, spaces around a field ignored) or fixed
// width (each field padded with spaces to its width: text left-aligned, numbers and amounts
// right-aligned; every record type has one exact length). A header line starting "H," is CSV,
// any other "H" fixed width; the rest of the file must follow it.
//
// Amounts are decimals in major units ("12.34"): digits, optionally a point and more digits, no
// sign or exponent, and no more decimals than the currency has (ledger.ParseAmount: nothing is
// rounded). Dates are YYYYMMDD, times HHMMSS, currencies ISO 4217 numeric ("156").
//
//	Header, every file                      width
//	  record type "H"                         1
//	  format version "01"                     2
//	  organisation, interface, unit, date     8, 6, 10, 8   (must equal the file name's)
//	  DKKK and REDKKK only: biller code       16            (the payee, e.g. BJ-WATER)
//	                        currency          3
//	Trailer, every file
//	  record type "T"                         1
//	  record count                            10            (every line between header and trailer)
//	  control sum                             20            (Σ of the detail amounts that are decimals)
//	DZ detail: one transaction as the partner booked it
//	  "D", date, time                         1, 8, 6
//	  STAN (optional), RRN                    6, 12
//	  account: PAN, account or phone number   28
//	  amount, currency                        16, 3
//	  type: D the partner debited the customer, R it refunded or reversed a debit     1
//	  acquirer id (optional)                  11
//	DKKK detail: one debit to run
//	  "D", sequence number (1–8 digits, unique), account, amount, customer reference
//	                                          1, 8, 28, 16, 20
//	REDKKK detail: the result of one request line, in request order
//	  "D", sequence number, masked account, amount, response code, text
//	                                          1, 8, 28, 16, 2, 40
//
// For example, in CSV:
//
//	H,01,SDDL,DZ,37101,20131012
//	D,20131012,101500,000001,000000000001,6222020000000000018,100.00,156,D,12345678
//	T,0000000001,100.00
//
// # Checking a file
//
// A file is read and checked whole before anything is looked up or booked: its name, every
// byte's encoding, the header (version, and organisation, interface, unit and date equal to the
// name's), the trailer (present — a missing one means the file was cut short —, its count equal
// to the records, its sum equal to theirs). A reconciliation file is refused for any bad record
// too, and for two records with the same RRN, STAN and type. Each problem is a LineError naming
// the file and the line (up to 20 of them are reported at once), wrapping ErrFormat; a bad name
// wraps ErrName. Errors and logs never show an account reference that could be a card number.
//
// A batch-debit line that is bad (a missing field, an amount that is not a decimal or has too
// many decimals, a wrong length) is not run: it is answered 30 with its line number in the text,
// and the other lines run. A line that repeats an earlier sequence number is answered 94. Lines
// that cannot be split into fields count toward the record count but not the control sum.
//
// # Duplicates and re-runs
//
// The registry directory keeps <name>.json for every file ingested to the end: its SHA-256 and its
// report, written atomically. The same name with the same bytes again returns that report
// (Replayed) and does nothing; the same name with other bytes is refused (ErrDuplicate). A file
// that was refused is not registered: a corrected file under the same name is taken.
//
// Every booking carries a TxID derived from the file, so running a file twice books nothing
// twice, whatever the registry says: the shard replays the first outcome. A correction's is
// ledger.NewTxID("recon", file name, RRN, type, class, x) where x is the partner record's STAN
// for a partner-only break and "<region>/<seq>" of the ledger entry otherwise (an RRN alone does
// not name one entry: a purchase and its reversal share it, and older entries have none); a batch
// debit's is ledger.NewTxID("batch", file name, sequence number). If some bookings fail (a shard
// unreachable), the call returns ErrIncomplete with what it did, registers nothing and writes no
// report or response: ingesting the file again completes it.
//
// # Matching
//
// A file is matched only against a complete ledger: when the head tells how far it holds every
// shard's entries (head.Head.MergedThrough), Reconcile refuses the file with ErrNotReady, applying
// and registering nothing, until that instant is past the end of the file's date plus the date
// tolerance. Otherwise a booking still on its way to the head would look like one only the
// partner has, and be booked a second time as a correction. (`junction up` also waits until its
// store-and-forward queue holds nothing queued before then.)
//
// The partner mapping names the acquirer id (ISO 8583 field 32) whose entries an organisation's
// file covers. The candidates are that acquirer's entries in the head ledger's detail
// (head.Query by date and acquirer) dated from the file's date less the date tolerance to the
// file's date plus it (an entry's date is the UTC date of Transfer.Time), without the entries the
// registered files of the neighbouring dates (same organisation and unit) already accounted for.
// Only customer debits and refunds take part: purchases, stand-in bookings, completions (post),
// bill payments and transfers are D; refunds and reversals (but for reversals of top-ups) are R;
// holds, voids, expiries, deposits and adjustments are ignored.
//
// Each partner record takes at most one unused candidate with its RRN, type and currency, whose
// STAN equals the record's (as a number) when both have one and whose date is within the date
// tolerance of the record's; the closest amount wins. Then:
//
//	matched       amounts within the amount tolerance (minor units)
//	mismatch      amounts further apart: the difference is corrected
//	partner-only  no candidate: we are short
//	ledger-only   a candidate dated on the file's date that no record took: we are long
//
// Candidates dated on other days that no record took are left to their own days' files.
//
// # Corrections
//
// The partner is authoritative. Each break is booked with Books.Adjust (ledger.Adjustment, kind
// KindAdjust) between the customer's account and the suspense account of its shard, forced:
//
//	partner-only D    debit the account by the partner's amount (located with Books.Locate)
//	partner-only R    credit it
//	ledger-only  D    credit the account back by the entry's amount
//	ledger-only  R    debit it again
//	mismatch          the difference: debit when the partner debited more or refunded less,
//	                  credit otherwise
//
// A partner reference of 12–19 digits with a valid Luhn check digit is booked by PAN, anything
// else by account or phone number. A ledger-side correction names the entry's account by id and
// the entry by Original. An account Books cannot locate is reported with code 14 for an operator.
//
// # Batch debits
//
// Each good line runs as Books.Do(region of the account, ledger.Request{Op: OpPayment, PAN or
// From: the account, To: the header's biller, Amount, Currency: the header's}), annotated with
// the organisation's acquirer id when the partner mapping has one. Its response line carries the
// shard's code (00 approved, 51 insufficient funds, 14 unknown account, …) and a short text.
//
// # Reports
//
// Reconcile and BatchDebit return a Report: counts and amounts per class and currency, each
// break with its correction and the shard's code, or each batch line's result. Account
// references in reports, response files and logs are masked (Mask: first 6 and last 4 digits of
// anything that could be a card number).
package recon
