// Package ledger is a regional ledger shard: the accounts, double-entry transfers, idempotency
// records and journal of one region, booked in real time and stored in badger.
//
// # What it does
//
// A Shard owns one badger directory and one writer goroutine. Every change goes through the
// writer, which applies requests in arrival order with a deterministic, I/O-free state machine
// (apply.go), writes each batch of requests as a single badger transaction and acknowledges them
// only after that transaction is synced. Each approved transfer debits one account and credits
// another by the same amount, posted or pending (a hold), so Σ debits = Σ credits per currency,
// posted and pending alike, after every commit, and an account flagged DebitsMustNotExceedCredits
// (every card, debit and credit-line account) never spends beyond its available balance (credits
// − debits − pending debits + its credit limit), except by the stand-in bookings the switch
// approved while the shard was down. The writer reads the clock once per batch and hands the
// value to the state machine, which stamps entries, computes hold expiries and counts per-day
// limits with it; nothing inside reads a clock.
//
// Every mutating request carries a TxID. The first outcome for a TxID, approval or decline, is
// stored in the same commit as its booking; a retransmission gets that outcome again with
// Replayed set, and a different request under the same TxID gets 94. A request that failed with an
// error (commit failure, closed shard, cancelled context) left no record, so retrying it is safe.
//
// # Reversals
//
// An OpReversal undoes an approved purchase, named by the purchase's TxID, fully or down to the
// amount it ended at. It books a compensating transfer (debit settlement-payable, credit the card)
// whose journal entry carries the purchase's Seq in Original, through the same batch and commit
// as everything else. The purchase's idempotency record keeps the running total reversed, so
// reversals of one purchase under different TxIDs (an 0400 and a later 0420) undo it at most
// once between them, and their own retransmissions replay like any other request. A reversal of
// a declined purchase, or of one already reversed that far, is approved and books nothing; the
// declined purchase's record is marked voided, so that a stand-in advice of it books nothing
// either (see Stand-in advices). A stand-in booking is reversed like any purchase.
//
// A reversal whose purchase has no record at all is the switch's timeout race: it gave up on the
// purchase and reversed it, and the purchase may still be on its way. The reversal is answered
// 25, and in the same commit a tombstone is recorded under the purchase's TxID; should the
// purchase arrive after all, it is declined with 68 (TooLate) and never booked.
//
// # Stand-in advices
//
// While a shard is down the switch may approve a purchase in stand-in, within its own per-card
// limits, and owe the shard an advice (0220, repeated as 0221) from its store-and-forward queue.
// The cardholder already has the goods, so an OpAdvice is a report, not a question: it books the
// purchase as OpPurchase would (debit the card, credit settlement-payable) but forced, on a
// blocked card and beyond the balance too, as a journal entry of kind KindStandIn. A card may go
// below zero only by such entries; that is the stand-in exposure, and Verify tells it from a bug
// by replaying the journal: every debit of a no-overdraft account that is not a stand-in must
// leave it at zero or above. A closed or unknown card is answered 14 and an amount or currency
// that does not fit 13; nothing is booked, and the switch, which stops repeating the advice on
// any answer but 91 and 96, reports the approval as its own loss.
//
// An advice carries the TxID of the purchase it stands in for, not one of its own, and digests as
// that purchase, so the purchase (should it have reached the shard after all, or be retransmitted
// once the shard is back) and its advice share one idempotency record and book at most once:
//
//   - advice first: booked; 0221 repeats replay its outcome; so does the original 0200/0201 with
//     the same PAN, amount and currency (00, the advice's approval code), and other content
//     under the TxID gets 94. Recorded declines (14, 13) replay the same way.
//   - purchase first, approved: the advice replays the purchase's outcome (00) and books nothing.
//   - purchase first, declined (the switch never heard the answer and stood in): the advice
//     books forced all the same, and its booking replaces the decline as the TxID's outcome, so
//     the original's retransmission now replays 00, which is what the terminal was told.
//   - a reversal first: when the purchase had no record it left a tombstone; when the purchase
//     had been declined the reversal marks its record voided (tx record v3). Either way the
//     acquirer undid the sale before the advice came, and booking the advice and then that
//     reversal would net to nothing, so the advice is answered 00, books nothing and changes no
//     record; its repeats get the same. An original arriving after it still gets 68.
//   - a reversal after the advice: it finds the stand-in booking under the purchase's TxID and
//     undoes it like a purchase, fully or partly, once between 0400 and 0420.
//
// Both orders of advice and reversal end in the same balances.
//
// Top-ups, transfers and bill payments are reversed the same way, by the TxID of the original
// and a target, back the way they came (from the card to the funding account, from the payee to
// the payer); unlike a purchase's, such a reversal needs the money still to be there (51), and a
// declined one may be retried under another TxID. Their records keep the other account (tx record
// v4). Reversals and refunds themselves are not reversed (12).
//
// # Pre-authorisations, completions and expiry
//
// An OpPreAuth (0100) places a hold: a KindHold entry adds its amount to the card's DebitsPending
// and to settlement-payable's CreditsPending and posts nothing, so the available balance drops
// and the ledger balance stays. The hold expires Options.HoldTTL (default 7 days) after the clock
// value of the batch that placed it. An OpCompletion (0220 whose field 90 names the 0100) posts
// Amount of it, at most what is still held, and releases the rest (KindPost: Released is what
// left pending, Amount what posted); a completion is then reversed and refunded like a purchase.
// A reversal of the pre-authorisation (0400/0420 naming the 0100) voids it (KindVoid), fully or
// down to field 95. The hold's record keeps what has been released; once nothing is held any
// more, later completions get 12 and reversals 00 with nothing booked.
//
// Expiry is a sweep inside the writer: before the requests of a batch, it releases (KindExpire,
// under the hold's own TxID) every hold whose expiry is at or before the batch's clock value, in
// order of expiry and then journal sequence, at most 64 per batch. The holds still pending are
// indexed by expiry (h/ keys), so a sweep reads only what is due; an idle writer wakes up every
// Options.SweepEvery (default 1 s) to sweep. The same inputs give the same journal.
//
// An escrow is a hold in favour of a seller instead of settlement-payable: OpPreAuth with To
// naming a merchant account (0100 with field 103). Its completion releases it to the seller, and
// that release is final (reversals and refunds of it get 12); its reversal is the refund to the
// buyer, and its expiry too.
//
// # Refunds
//
// An OpRefund (0200, processing code 20, field 90 naming the purchase) gives back part or all of an
// approved purchase, stand-in booking or completion: debit settlement-payable, credit the card
// (KindRefund, Original its seq). Refunds and reversals share the purchase's running total, so
// together they never give back more than it booked (13 beyond); 25 when the purchase is not
// booked here or was declined.
//
// # Settlement windows and annotations
//
// Every journal entry carries the settlement window the shard was in when it booked it and that
// window's settlement date (YYYYMMDD), and the request's acquirer (field 32), STAN (11) and RRN
// (37) besides its terminal and merchant; an expiry, which no request asked for, has no
// annotations. Annotations are not part of a request's content: a retransmission without them
// replays. A new shard starts in window 1 dated the UTC date of its clock when first opened; a
// shard from before windows starts there on opening, and its older entries have window 0.
// Shard.Cutover, from the head ledger's settlement, moves the shard to the next window through
// the writer: entries applied before it in its batch keep the old window, those after it get the
// new one, and the cutover point (Last: the last seq booked before the new window) is committed
// with the new window and returned. Repeating a cutover returns the point again. Results of
// bookings carry the window and date (a replay those of the first booking), and the ISO host
// answers the date in field 15.
//
// # Adjustments
//
// Shard.Adjust, from reconciliation and never from a channel, books a correction (KindAdjust)
// between an account and the shard's suspense account (SuspenseID, created with the shard or on
// opening a shard from before it): forced like a stand-in advice, on a blocked account and below
// zero too; 14 for an unknown or closed account, 13 for an amount or currency that does not fit,
// 12 for an Original (the entry it corrects, optional) that is not in the journal. It is
// idempotent by its ID like a request. Only adjustments book to suspense, so its balance is what
// reconciliation has moved there; channels cannot reverse or refund an adjustment (12).
//
// # Accounts, owners and limits
//
// Accounts are cards, debit and credit-line accounts (the customer accounts that spend through
// channels), merchants and billers, and institution accounts; the fee-income and escrow types
// are reserved, and the suspense type is the suspense account's. An account is found by its PAN (card/<PAN>, the only place a full PAN
// is kept) or by an account number, fixed-line phone number or biller code (o/<number>). Requests
// name the account they act for by PAN or, without one, by From (field 102), and the account a
// transfer credits by To (field 103, a number or a card number). OpDeposit tops up (21) from the
// funding account; OpTransfer (40) moves money between customer accounts; OpPayment (50) pays a
// bill into a merchant account. Merchant and institution accounts do not spend through channels
// (57).
//
// Limits live in the account record: a credit line's credit limit, and per-UTC-day amount and
// count limits on spending (purchases, holds, transfers, payments; 61 and 65), counted in the
// account from the batch clock's day while a daily limit is set; reversals and refunds do not
// give the allowance back. The admin calls OpenAccount, SetStatus and SetLimits go through the
// writer like requests but are not reachable from channels. A blocked account declines with 62
// (still refunded, reversed and completed), a closed one is unknown (14); an account with holds
// pending or a balance does not close, and a credit limit does not drop below what is used of it.
//
// # Response codes
//
//	00  approved: booked, or answered; also a reversal or advice with nothing (more) to book
//	12  unsupported operation or malformed request; a reversal of a reversal or a refund; a
//	    completion of a hold no longer pending; a reversal or refund of an escrow release
//	13  amount ≤ 0, another currency than the account's, an overflow; a reversal's amounts that do
//	    not fit its original; a completion above what is held; a refund above what is left
//	14  no account for the PAN or number, or a closed one (an advice: nothing booked, the
//	    switch's loss)
//	25  a reversal, completion or refund whose original is not booked here (a reversal also
//	    tombstones the original's TxID)
//	51  insufficient funds: beyond the available balance (never for an advice); for a reversal
//	    of a top-up, transfer or payment, the money is no longer where it went
//	57  not permitted: a merchant or institution account spending, a transfer to itself, a bill
//	    or escrow to an account that is not a merchant's
//	61  beyond the account's per-day amount limit
//	62  blocked account (never for a reversal, refund, completion or advice)
//	65  beyond the account's per-day count limit
//	68  a request that a reversal tombstoned before it arrived
//	94  the TxID was used with other content
//	96  the caller's answer when Do returns an error (the outcome is unknown; retry)
//
// It does not route, replicate, merge shards into the head ledger (ledger/head), decide when a
// window closes, or run clearing, fees, reconciliation or interest on credit lines.
//
// # How data enters and leaves
//
// In: Shard.Do for channel requests (purchase, balance inquiry, top-up, reversal, stand-in
// advice, pre-authorisation and escrow, completion, refund, transfer, bill payment) and the admin
// calls OpenAccount, SetStatus, SetLimits, Cutover and Adjust, all through the writer's bounded
// queue. Host is the
// same shard as an ISO 8583:1987 host: it maps 0100/0200 inquiries, 0200 purchases, refunds (20),
// top-ups (21), transfers (40) and bill payments (50), 0100 pre-authorisations, 0400/0420
// reversals and 0220 stand-in advices and completions (with their repeats) onto Requests and
// Results back onto responses (Host.Exchange has the table). Out: a Result per request
// (an ISO 8583 response code, balances, approval code); Journal for the head ledger, which pages
// through entries by sequence (AppendTransfer and DecodeTransfer are their wire form between
// processes), and Window for the current settlement window; Account, AccountByPAN, Accounts and Verify for operators. Reads go
// to badger directly and see whole committed batches only.
//
// # Durability
//
// A request is acknowledged only after the badger transaction holding it has been committed with
// SyncWrites on. If the commit fails, every request of the batch gets an error wrapping ErrCommit,
// the in-memory state is left as it was before the batch (the batch only ever changed an overlay),
// and the writer reloads its counters from badger before taking the next batch. Close commits and
// answers everything already queued before closing badger.
//
// # Verify
//
// Verify re-derives every account's posted and pending totals from the journal and checks them,
// Σ debits = Σ credits per currency (posted and pending), the no-overdraft rule entry by entry
// (credit lines on their final state, since their limit may have moved; stand-ins and
// adjustments excepted), every reference from an entry to its original (reversals and refunds to
// purchases, posts, voids and expiries to holds, never more than the original; an adjustment's to
// an earlier entry), that only adjustments touch suspense, every entry's window and date against
// the cutover points, the idempotency records against the journal, the expiry index against the
// holds still pending, and the PAN and number indexes. The per-day use of limits is
// not re-derived.
//
// # Storage layout
//
// Keys are byte strings with short prefixes:
//
//	m/seq              last committed journal sequence
//	m/nextacct         next ordinary account id (from 1000; 1, 2 and 3 are well-known)
//	m/window           the current settlement window and its date
//	w/<window BE u32>  cutover point of a window the shard has been in: its date and Last
//	a/<id BE u64>      account record (the masked PAN only); since v2 pending totals, since v3
//	                   limits and the day's use
//	card/<PAN>         account id of the card: the only place a full PAN is stored
//	o/<number>         account id of the account with this account or phone number or biller code
//	h/<expires BE u64><seq BE u64>
//	                   TxID of a hold still pending: the expiry index the sweep walks
//	j/<seq BE u64>     journal entry, sequence 1, 2, 3, … without gaps; a reversal's or refund's
//	                   names the purchase's seq (v2), a post's, void's or expiry's the hold's, and
//	                   a hold carries its expiry (v3); a stand-in booking has kind KindStandIn;
//	                   since v4 annotations and the window (all kinds), and KindAdjust
//	t/<txid 32 bytes>  idempotency record: digest of the request content and its first outcome;
//	                   since record v2 also its kind, card account, amount booked and, for a
//	                   purchase, the amount given back so far (for a hold, released); or a
//	                   tombstone left by a reversal; since v3 flags (a declined purchase voided by
//	                   a reversal, an expired hold, an escrow release); since v4 a hold's expiry
//	                   and the account it credits; an adjustment's (kind txAdjust) as a request's
//
// Values are versioned binary records with a CRC-32C, each well under 256 bytes so they stay in
// badger's LSM tree and WAL, far below its ValueThreshold. Every version stays readable; record.go
// lists them. A v1 idempotency record (written before reversals existed) is filled in from its
// journal entry when loaded and written back as v2 when a reversal changes it.
//
// A full PAN never reaches a log line, an error string or a metric label: they use maskPAN.
package ledger
