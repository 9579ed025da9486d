// Package allinone assembles the embedded deployment that `junction up`
// runs: one process holding the channel listeners (package front), the
// switch (package switch), one ledger shard per region (package ledger),
// the head ledger that merges their journals (package ledger/head; wiring in
// headnode.go: the merge loop, scheduled and 0800 cutovers, reconciliation
// and batch files through package ledger/recon) and an HTTP endpoint for
// /metrics, /healthz, /readyz and the operators' /admin endpoints. A region
// run as its own process (`junction ledger`, LedgerNode) is reached over
// links by the switch and over its journal service (package ledger/remote)
// by the head.
//
// Start creates what a fresh machine lacks: the dev PKI under PKIDir
// (package pki) and the badger directories under DataDir; with Demo set it
// seeds the demo cards, idempotently. Shutdown drains the channels, then
// closes the shards, so that every approval sent is committed and nothing
// queued is lost.
//
// The package holds wiring and configuration only; each job lives in the
// package named for it.
package allinone
