package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
)

// TestHeadMergeSurvivesKills runs `junction up` (the switch, beijing's shard and the head ledger)
// and `junction ledger` (shanghai's shard, which the head pulls over its mutual-TLS journal
// service) as processes, keeps purchases flowing to both regions, and SIGKILLs one process or the
// other again and again while the head merges. Then it opens the books: every journal entry of
// both shards is in the head's general ledger exactly once (detail, high-water mark and account
// totals agree with the shards), the window cut over in the middle closed with every region's
// point, and the shards verify.
func TestHeadMergeSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills processes many times")
	}
	const kills = 20 // alternating: junction up, junction ledger
	seed := uint64(time.Now().UnixNano())
	rnd := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d", seed)

	dir := t.TempDir()
	pos, links, journal, httpAddr := freePort(t), freePort(t), freePort(t), freePort(t)
	dataDir := filepath.Join(dir, "data")
	yaml := fmt.Sprintf(`pki_dir: %s
data_dir: %s
http: %q
channels:
  - {name: pos, listen: %q, institution: "10000001"}
regions:
  - name: beijing
  - name: shanghai
    remote: {listen: %q, journal: %q}
head: {pull: 5ms, batch: 64, cutover: []}
`, filepath.Join(dir, "pki"), dataDir, httpAddr, pos, links, journal)
	cfgFile := filepath.Join(dir, "junction.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := allinone.LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	shard := startLedgerProcess(t, cfgFile, "shanghai", links)
	up := &ledgerProcess{t: t, args: []string{"-test.run=^$", "--", "up", "-c", cfgFile, "--log-level", "error"}}
	up.start(pos)
	t.Cleanup(up.kill)

	// Purchases of 0.01 on a card of each region, over connections that are dialled again
	// whenever junction up dies; shanghai's are approved in stand-in while its shard is down.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var approvals atomic.Int64
	d := codec.ISO87ASCII()
	for g, pan := range []string{richPAN, shPAN} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for gen := 0; ; gen++ {
				select {
				case <-stop:
					return
				default:
				}
				c, err := dialChannel(cfg, cfg.Channels[0], d)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				req, resp := codec.NewMessage(d), codec.NewMessage(d)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				for stan := uint32(1); ; stan++ {
					tx := front.Txn{Type: codec.TxPurchase, PAN: pan, Amount: 1, Currency: 156, STAN: stan,
						Terminal: fmt.Sprintf("H%d%06d", g, gen), Merchant: "MERGE SHOP", Time: time.Now()}
					if tx.Build(d, req) != nil || c.Exchange(ctx, req, resp) != nil {
						break
					}
					if string(resp.Get(39)) == codec.RCApproved {
						approvals.Add(1)
					}
					select {
					case <-stop:
					default:
						continue
					}
					break
				}
				cancel()
				c.Close()
			}
		}()
	}

	status := func() (s struct {
		Windows []struct {
			Number uint32 `json:"number"`
			State  string `json:"state"`
		} `json:"windows"`
		Regions []struct {
			Name      string `json:"name"`
			HighWater uint64 `json:"high_water"`
		} `json:"regions"`
	}, ok bool) {
		resp, err := http.Get("http://" + httpAddr + "/admin/head/status")
		if err != nil {
			return s, false
		}
		defer resp.Body.Close()
		return s, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&s) == nil
	}
	merged := func() (total uint64) {
		s, ok := status()
		if !ok {
			return 0
		}
		for _, r := range s.Regions {
			total += r.HighWater
		}
		return total
	}

	cutover := kills / 2
	for k := 1; k <= kills; k++ {
		// Let the head merge something new, then kill at a random moment of its next pulls.
		from := merged()
		eventually(t, fmt.Sprintf("the head merges again before kill %d", k), func() bool { return merged() > from+20 })
		if k == cutover {
			resp, err := http.Post("http://"+httpAddr+"/admin/head/cutover", "", nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("cutover: %v %v", err, resp)
			}
			resp.Body.Close()
		}
		time.Sleep(time.Duration(rnd.IntN(30)) * time.Millisecond)
		if k%2 == 1 {
			up.kill()
			up.start(pos)
		} else {
			shard.kill()
			shard.start(links)
		}
	}
	close(stop)
	wg.Wait()

	// Both processes up and quiet: the head catches up, the cut-over window closes.
	eventually(t, "window 1 closes", func() bool {
		s, ok := status()
		return ok && len(s.Windows) == 2 && s.Windows[0].State == "closed"
	})
	var last uint64
	eventually(t, "the merge settles", func() bool {
		now := merged()
		steady := now == last
		last = now
		time.Sleep(100 * time.Millisecond)
		return steady && now > 0
	})
	up.stop()
	shard.stop()

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := head.Open(head.Options{Dir: filepath.Join(dataDir, "head"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	entries := 0
	for _, region := range []string{"beijing", "shanghai"} {
		s, err := ledger.Open(ledger.Options{Dir: filepath.Join(dataDir, "ledger", region), Region: region, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Verify(); err != nil {
			t.Fatalf("%s: %v", region, err)
		}
		// Whatever the last minute left unmerged merges now; the exactly-once checks follow.
		late, err := h.Pull(context.Background(), head.Local(s), 0)
		if err != nil {
			t.Fatal(err)
		}
		if late > 0 {
			t.Logf("%s: %d entries merged after the processes stopped", region, late)
		}
		j, err := s.Journal(1, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		got, err := h.Entries(head.Query{Region: region})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(j) || h.HighWater(region) != uint64(len(j)) {
			t.Fatalf("%s: the head holds %d entries up to %d, the shard's journal %d", region, len(got), h.HighWater(region), len(j))
		}
		for i := range j {
			g := got[i].Transfer
			if g.Seq != j[i].Seq || g.TxID != j[i].TxID || g.Amount != j[i].Amount || g.Debit != j[i].Debit || g.Credit != j[i].Credit || g.Window != j[i].Window {
				t.Fatalf("%s: entry %d differs: head %+v, shard %+v", region, i, g, j[i])
			}
		}
		accounts, err := s.Accounts()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range accounts {
			totals, err := h.AccountTotals(region, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			var tot head.Total
			if len(totals) == 1 {
				tot = totals[0]
			}
			if tot.Debits != a.DebitsPosted || tot.Credits != a.CreditsPosted || tot.DebitsPending != a.DebitsPending || tot.CreditsPending != a.CreditsPending {
				t.Fatalf("%s account %d: head %+v, shard %+v", region, a.ID, tot, a)
			}
		}
		entries += len(j)
	}
	w, err := h.Window(1)
	if err != nil {
		t.Fatal(err)
	}
	if w.State != head.StateClosed || len(w.Points) != 2 {
		t.Fatalf("window 1: %+v", w)
	}
	t.Logf("%d kills, %d approvals, %d journal entries merged exactly once", kills, approvals.Load(), entries)
}
