// Package bench measures Junction end to end. Today it holds the
// end-to-end benchmark of the all-in-one deployment (BenchmarkEndToEnd):
// the real switch in-process, real mutual-TLS connections, real badger
// ledgers with synced commits, pipelined purchases from several channels.
//
//	go test -run '^$' -bench EndToEnd -benchtime 20000x ./bench
//
// The load-test harness (`junction bench`: open and closed loop, mixes,
// reports, post-run audit) will live here too. Nothing imports this package.
package bench
