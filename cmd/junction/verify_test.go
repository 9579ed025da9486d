package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/junction-switch/junction/ledger"
)

// bookShard creates the shard of region under dataDir/ledger/<region> the
// way junction up lays it out, books a few deposits, purchases and a
// reversal on the given card, and closes it. It returns the shard's
// directory.
func bookShard(t *testing.T, dataDir, region, pan string) string {
	t.Helper()
	dir := filepath.Join(dataDir, "ledger", region)
	s, err := ledger.Open(ledger.Options{Dir: dir, Region: region, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	ctx := context.Background()
	if _, err := s.OpenAccount(ctx, ledger.AccountSpec{Type: ledger.Card, Currency: 156, Name: "verify", PAN: pan}); err != nil {
		t.Fatal(err)
	}
	id := func(n int) ledger.TxID { return ledger.NewTxID([]byte("verify"), []byte(region), []byte{byte(n)}) }
	reqs := []ledger.Request{
		{Op: ledger.OpDeposit, ID: id(1), PAN: pan, Amount: 100_000, Currency: 156},
		{Op: ledger.OpPurchase, ID: id(2), PAN: pan, Amount: 1_234, Currency: 156},
		{Op: ledger.OpPurchase, ID: id(3), PAN: pan, Amount: 500, Currency: 156},
		{Op: ledger.OpReversal, ID: id(4), PAN: pan, Amount: 500, Currency: 156, Original: id(3)},
		{Op: ledger.OpPurchase, ID: id(5), PAN: pan, Amount: 10_000_000, Currency: 156}, // declined: 51
	}
	for _, r := range reqs {
		if _, err := s.Do(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// journalKey is a journal entry's badger key: j/<seq big endian> (the
// storage layout in the ledger package's documentation).
func journalKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte("j/"), seq) }

// tamper changes the shard's badger store directly, as a disk fault or a
// hand edit would, behind the ledger's back.
func tamper(t *testing.T, dir string, change func(txn *badger.Txn) error) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(change); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLedgerVerify(t *testing.T) {
	root := t.TempDir()
	varDir := filepath.Join(root, "var")
	dataDir := filepath.Join(varDir, "data")
	bjDir := bookShard(t, dataDir, "beijing", richPAN)
	bookShard(t, dataDir, "shanghai", shPAN)

	t.Run("a good data directory passes, named as ./var or as its data_dir", func(t *testing.T) {
		for _, dir := range []string{varDir, dataDir} {
			code, out, errOut := junction(t, "ledger", "verify", "--data", dir)
			if code != 0 {
				t.Fatalf("--data %s: exit %d:\n%s%s", dir, code, out, errOut)
			}
			for _, want := range []string{
				"ok    beijing   " + bjDir + ": journal 4 (reversals 1, stand-ins 0, adjustments 0), accounts 4 (cards 1, overdrawn by stand-ins 0), tx records 5 (tombstones 0), window 1",
				// deposit 100 000, purchases 1 234 and 500, reversal 500
				"156: Σ debits 102234 = Σ credits 102234",
				"ok    shanghai",
				"2 shards: 2 ok, 0 failed",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("--data %s: no %q in\n%s", dir, want, out)
				}
			}
		}
	})
	t.Run("no PAN reaches the output", func(t *testing.T) {
		_, out, errOut := junction(t, "ledger", "verify", "--data", varDir)
		if strings.Contains(out+errOut, richPAN) || strings.Contains(out+errOut, shPAN) {
			t.Fatalf("a full PAN in\n%s%s", out, errOut)
		}
	})
	t.Run("a missing directory fails and is not created", func(t *testing.T) {
		missing := filepath.Join(root, "nowhere")
		code, _, errOut := junction(t, "ledger", "verify", "--data", missing)
		if code != 1 || !strings.Contains(errOut, "no such file or directory") {
			t.Fatalf("exit %d:\n%s", code, errOut)
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Fatalf("verify created %s", missing)
		}
	})
	t.Run("a directory without shards fails", func(t *testing.T) {
		empty := filepath.Join(root, "empty")
		if err := os.MkdirAll(filepath.Join(empty, "data", "ledger", "beijing"), 0o750); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := junction(t, "ledger", "verify", "--data", empty)
		if code != 1 || !strings.Contains(errOut, "no shard under") {
			t.Fatalf("exit %d:\n%s", code, errOut)
		}
		if entries, _ := os.ReadDir(filepath.Join(empty, "data", "ledger", "beijing")); len(entries) > 0 {
			t.Fatalf("verify created a shard in an empty directory")
		}
	})
	t.Run("extra arguments are refused", func(t *testing.T) {
		if code, _, _ := junction(t, "ledger", "verify", "--data", varDir, "beijing"); code != 2 {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("-h explains the command", func(t *testing.T) {
		code, _, errOut := junction(t, "ledger", "verify", "-h")
		if code != 2 || !strings.Contains(errOut, "usage: junction ledger verify [--data DIR]") {
			t.Fatalf("exit %d:\n%s", code, errOut)
		}
		if _, _, errOut := junction(t, "ledger", "-h"); !strings.Contains(errOut, "junction ledger verify") {
			t.Fatalf("junction ledger -h does not mention verify:\n%s", errOut)
		}
	})

	// The corruptions change copies, so each case starts from good books.
	corrupt := func(t *testing.T, change func(txn *badger.Txn) error) (code int, out, errOut string) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "var")
		if err := os.CopyFS(dir, os.DirFS(varDir)); err != nil {
			t.Fatal(err)
		}
		tamper(t, filepath.Join(dir, "data", "ledger", "beijing"), change)
		return junction(t, "ledger", "verify", "--data", dir)
	}
	t.Run("a journal entry changed on disk fails its shard only", func(t *testing.T) {
		code, out, errOut := corrupt(t, func(txn *badger.Txn) error {
			item, err := txn.Get(journalKey(2))
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			v[len(v)/2] ^= 0x01 // one flipped bit: the record's CRC no longer matches
			return txn.Set(journalKey(2), v)
		})
		if code != 1 || !strings.Contains(out, "FAIL  beijing") || !strings.Contains(out, "ok    shanghai") ||
			!strings.Contains(out, "2 shards: 1 ok, 1 failed") || !strings.Contains(errOut, "1 of 2 shards failed") {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
		t.Logf("\n%s", out)
	})
	t.Run("a journal entry deleted fails", func(t *testing.T) {
		code, out, errOut := corrupt(t, func(txn *badger.Txn) error { return txn.Delete(journalKey(2)) })
		if code != 1 || !strings.Contains(out, "journal gap: 3 follows 1") {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
	})
	t.Run("a journal entry replaced by another valid one fails", func(t *testing.T) {
		// CRC-valid records in the wrong place: entry 3 copied over entry
		// 2, so the postings no longer add up to the accounts.
		code, out, errOut := corrupt(t, func(txn *badger.Txn) error {
			item, err := txn.Get(journalKey(3))
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			return txn.Set(journalKey(2), v)
		})
		if code != 1 || !strings.Contains(out, "holds journal entry 3") || !strings.Contains(out, "journal gives") {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
	})
	t.Run("an idempotency record deleted fails", func(t *testing.T) {
		code, out, errOut := corrupt(t, func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("t/")})
			var keys [][]byte
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if code != 1 || !strings.Contains(out, "no tx record for its TxID") {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
	})

	t.Run("a shard a running process holds is in use", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a process")
		}
		dir := t.TempDir()
		listen := freePort(t)
		cfgFile := filepath.Join(dir, "junction.yaml")
		yaml := fmt.Sprintf("pki_dir: %s\ndata_dir: %s\nhttp: \"\"\nregions:\n  - name: beijing\n    remote: {listen: %q}\n  - name: shanghai\n",
			filepath.Join(dir, "pki"), filepath.Join(dir, "data"), listen)
		if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startLedgerProcess(t, cfgFile, "beijing", listen)
		code, out, errOut := junction(t, "ledger", "verify", "--data", dir)
		if code != 1 || !strings.Contains(out, "FAIL  beijing") || !strings.Contains(out, "in use by a running process; stop it first") {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
		p.stop()
		code, out, errOut = junction(t, "ledger", "verify", "--data", dir)
		if code != 0 || !strings.Contains(out, "ok    beijing") {
			t.Fatalf("after the process stopped: exit %d:\n%s%s", code, out, errOut)
		}
	})
}
