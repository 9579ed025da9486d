// Package ledger is a regional ledger shard: the accounts, double-entry transfers, idempotency
// records and journal of one region, booked in real time and stored in badger.
//
// # What it does
//
// A Shard owns one badger directory and one writer goroutine. Every change goes through the
// writer, which applies requests in arrival order with a deterministic, I/O-free state machine
// (apply.go), writes each batch of requests as a single badger transaction and acknowledges them
// only after that transaction is synced. Each approved transfer debits one account and credits
// another by the same amount, so Σ debits = Σ credits per currency after every commit, and an
// account flagged DebitsMustNotExceedCredits (every card) is never overdrawn, except by the
// stand-in bookings the switch approved while the shard was down.
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
// # Response codes
//
//	00  approved: booked, or answered; also a reversal or advice with nothing (more) to book
//	12  unsupported operation or malformed request; a reversal of something not a purchase
//	13  amount ≤ 0, another currency than the card's, an overflow; a reversal's amounts that do
//	    not fit its original
//	14  no account for the PAN, or a closed one (an advice: nothing booked, the switch's loss)
//	25  a reversal whose original is not booked here (it also tombstones the original's TxID)
//	51  insufficient funds (never for an advice)
//	62  blocked card (never for a reversal or an advice)
//	68  a purchase that a reversal tombstoned before it arrived
//	94  the TxID was used with other content
//	96  the caller's answer when Do returns an error (the outcome is unknown; retry)
//
// It does not route, replicate, merge shards into the head ledger, or run clearing. Holds,
// limits, refunds and credit lines come later; the enums and record versions leave room for them.
//
// # How data enters and leaves
//
// In: Shard.Do for channel requests (purchase, balance inquiry, deposit, reversal, stand-in
// advice) and the admin calls OpenAccount and SetStatus, all through the writer's bounded queue.
// Host is the same shard as an ISO 8583:1987 host: it maps 0100/0200 inquiries, 0200 purchases,
// 0400/0420 reversals and 0220 stand-in advices (with their repeats) onto Requests and Results
// back onto responses. Out: a Result per request
// (an ISO 8583 response code, balances, approval code); Journal for the head ledger, which pages
// through entries by sequence; Account, AccountByPAN, Accounts and Verify for operators. Reads go
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
// # Storage layout
//
// Keys are byte strings with short prefixes:
//
//	m/seq              last committed journal sequence
//	m/nextacct         next ordinary account id (from 1000; 1 and 2 are well-known)
//	a/<id BE u64>      account record (the masked PAN only)
//	card/<PAN>         account id of the card: the only place a full PAN is stored
//	j/<seq BE u64>     journal entry, sequence 1, 2, 3, … without gaps; a reversal's names the
//	                   purchase's seq; a stand-in booking has kind KindStandIn
//	t/<txid 32 bytes>  idempotency record: digest of the request content and its first outcome;
//	                   since record v2 also its kind, card account, amount booked and, for a
//	                   purchase, the amount reversed so far; or a tombstone left by a reversal;
//	                   since v3 flags (a declined purchase voided by a reversal)
//
// Values are versioned binary records with a CRC-32C, each well under 256 bytes so they stay in
// badger's LSM tree and WAL, far below its ValueThreshold. Every version stays readable; record.go
// lists them. A v1 idempotency record (written before reversals existed) is filled in from its
// journal entry when loaded and written back as v2 when a reversal changes it.
//
// A full PAN never reaches a log line, an error string or a metric label: they use maskPAN.
package ledger
