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
// account flagged DebitsMustNotExceedCredits (every card) is never overdrawn.
//
// Every mutating request carries a TxID. The first outcome for a TxID, approval or decline, is
// stored in the same commit as its booking; a retransmission gets that outcome again with
// Replayed set, and a different request under the same TxID gets 94. A request that failed with an
// error (commit failure, closed shard, cancelled context) left no record, so retrying it is safe.
//
// It does not speak ISO 8583 bytes (the adapter beside it decodes messages into Requests), route,
// replicate, merge shards into the head ledger, or run clearing. Holds, limits, refunds, reversals
// and credit lines come later; the enums and record versions leave room for them.
//
// # How data enters and leaves
//
// In: Shard.Do for channel requests (purchase, balance inquiry, deposit) and the admin calls
// OpenAccount and SetStatus, all through the writer's bounded queue. Out: a Result per request
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
//	j/<seq BE u64>     journal entry, sequence 1, 2, 3, … without gaps
//	t/<txid 32 bytes>  idempotency record: digest of the request content and its first outcome
//
// Values are versioned binary records with a CRC-32C, each well under 256 bytes so they stay in
// badger's LSM tree and WAL, far below its ValueThreshold.
//
// A full PAN never reaches a log line, an error string or a metric label: they use maskPAN.
package ledger
