package main

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
)

// TestAFrozenShardProcessIsReversed freezes the `junction ledger` process
// of a region (SIGSTOP) while a purchase is on its way: the terminal gets
// 91 at the switch's timeout, a reversal advice waits in the SAF, and once
// the process runs again (SIGCONT) the advice reaches it over the link.
// The card ends where it started, the ledger holds the purchase and its
// reversal (or, if the reversal overtook it, a tombstone and no purchase),
// and the shard verifies.
func TestAFrozenShardProcessIsReversed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	n, cfg, proc := remoteNode(t, dir, func(c *allinone.Config) {
		c.Switch.Timeout = 500 * time.Millisecond
		c.Switch.Breaker = allinone.BreakerSettings{Failures: 3, Cooldown: 100 * time.Millisecond}
		c.Switch.SAF.BackoffMin, c.Switch.SAF.BackoffMax = 50*time.Millisecond, 300*time.Millisecond
	})
	pos := client(t, n, cfg, "pos")
	d := n.Dialect()
	stan := uint32(100)
	tx := func(typ string, amount int64) front.Txn {
		stan++
		return front.Txn{Type: typ, PAN: richPAN, Amount: amount, Currency: 156, STAN: stan, Terminal: "FROZEN01", Time: time.Now()}
	}
	ledgerBalance := func() int64 {
		t.Helper()
		resp := ask(t, pos, d, tx(codec.TxBalance, 0))
		amounts, err := codec.ParseAdditionalAmounts(resp.Get(54))
		if rc := string(resp.Get(39)); rc != "00" || err != nil || len(amounts) == 0 {
			t.Fatalf("balance inquiry: rc %s, 54 %q, %v", rc, resp.Get(54), err)
		}
		return amounts[0].Amount
	}
	before := ledgerBalance()

	if err := proc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resp := ask(t, pos, d, tx(codec.TxPurchase, 777))
	if rc := string(resp.Get(39)); rc != codec.RCIssuerUnavailable || resp.Has(38) {
		t.Fatalf("purchase to a frozen shard: rc %s auth %q", rc, resp.Get(38))
	}
	if depth := n.SAF().Depth("beijing"); depth != 1 {
		t.Fatalf("SAF depth %d, want the one reversal advice", depth)
	}
	time.Sleep(300 * time.Millisecond) // let an attempt or two fail while it is frozen
	if err := proc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reversal advice is delivered", func() bool { return n.SAF().Depth("beijing") == 0 })
	if after := ledgerBalance(); after != before {
		t.Fatalf("balance %d after the reversal, want %d", after, before)
	}

	proc.stop()
	shard, err := ledger.Open(ledger.Options{Dir: filepath.Join(cfg.DataDir, "ledger", "beijing"), Region: "beijing", Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer shard.Close()
	report, err := shard.Verify()
	if err != nil {
		t.Fatal(err)
	}
	j, err := shard.Journal(1, 100000)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[ledger.Kind]int{}
	for _, e := range j {
		if e.Amount == 777 {
			kinds[e.Kind]++
		}
	}
	booked, reversed := kinds[ledger.KindPurchase], kinds[ledger.KindReversal]
	if booked != reversed || booked > 1 || booked == 0 && report.Tombstones != 1 {
		t.Fatalf("journal: %d purchases and %d reversals of 777, %d tombstones", booked, reversed, report.Tombstones)
	}
	t.Logf("purchase booked %d, reversed %d, tombstones %d", booked, reversed, report.Tombstones)
}
