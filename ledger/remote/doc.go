// Package remote lets a process reach a regional ledger shard that runs in another process
// (`junction ledger --region R`): Handler serves the shard over HTTPS with mutual TLS, and Client
// calls it with the shard's own methods — Region, Journal, Cutover, Adjust and Do — so the head
// ledger pulls a remote journal, and reconciliation books corrections, as they would in-process.
//
// It carries calls and nothing else: it does not merge journals (ledger/head does), decide
// windows or reconcile, retry (the caller does, with the same id), or build TLS configurations
// (the caller brings them: server side tls.RequireAndVerifyClientCert with the CA as ClientCAs,
// client side a client certificate and the CA as RootCAs). Admin calls (opening accounts,
// statuses, limits) are not served.
//
// # Routes
//
// Every route is under /ledger/v1; a change of wire format gets a new version prefix.
//
//	GET  /ledger/v1/journal?from=N&limit=M   a journal page (binary, below)
//	POST /ledger/v1/cutover  {"window":N,"date":YYYYMMDD}  → {"window","date","last"}
//	POST /ledger/v1/adjust   an Adjustment as JSON         → a Result as JSON
//	POST /ledger/v1/do       a channel Request as JSON     → a Result as JSON
//
// from defaults to 1 and limit to the shard's page (1024); a limit above MaxLimit (4096) is cut
// to it. Any other query parameter is refused. In JSON, TxIDs are 64 hex digits ("" for none),
// amounts int64 minor units, a Request's op its name ("purchase", "deposit", …: the channel
// operations only), and fields snake_case (auth_code, settle_date); unknown fields are refused.
//
// The client names the region it means in the Junction-Region request header; a server of
// another region answers 409 without touching its shard. Every answer names the server's region
// in the same header, and the client checks it.
//
// # Journal page
//
// A 200 answer has Content-Type application/x-junction-journal; v=1, the headers
// Junction-Last-Seq (the shard's last committed seq, ≥ every seq in the page) and Junction-Count
// (records in the body), a Content-Length, and a body of Count records, each
//
//	length uint32 big-endian | journal record (ledger.AppendTransfer: versioned, CRC-32C)
//
// with seqs from, from+1, … (the journal has no gaps). The server writes a page from one pooled
// buffer. The client refuses the whole page — a short body, a torn or corrupt record, a gap, a
// count that does not match, a seq past Last — never returning part of it.
//
// # Authentication and errors
//
// Mutual TLS is the authentication: a request without a verified client certificate chain is
// refused 403, and so is a client whose certificate's common name is not in Options.ClientCNs
// when that list is set. Bad input (a malformed query, bad or oversized JSON, an unknown field or
// operation) is 400 with {"error": "..."} and a log line; messages name a field at most, never a
// value from the body, so a PAN reaches neither the log nor the answer. A request for another
// region is 409. A cutover the shard refuses (ledger.ErrWindow: window 0, a bad or earlier date)
// is 422; a closed shard, a failed commit or an ended request context 503; an unknown account
// (ledger.ErrNotFound) 404; any other shard error 500. Declines are not errors: they are a 200
// Result with their code.
//
// The client's errors wrap ErrUnavailable (not reached, a 5xx, a torn or malformed answer: the
// outcome is unknown and a retry with the same id is safe), ErrRefused (4xx: not carried out) or
// ErrWrongRegion (the server is another region's shard); answers with a status are StatusError.
package remote
