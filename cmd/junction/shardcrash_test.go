package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/pki"
)

// crashPurchase is one purchase the crash test sent to the shard process,
// and what it heard back.
type crashPurchase struct {
	tx   front.Txn
	id   ledger.TxID // ledger.TxIDOf of the request: its journal entry's TxID
	want string      // the answer the shard must give, first time and on every retransmission
	rc   string      // the last answer heard; "" while none has been
	auth string      // field 38 of that answer
}

// crashLoad is the purchases of the whole test, by terminal and STAN (the
// fields a response is matched on).
type crashLoad struct {
	mu       sync.Mutex
	byKey    map[string]*crashPurchase
	answered int // answers heard in the current round
}

func crashKey(terminal, stan string) string { return terminal + "/" + stan }

// TestShardCrashKeepsEveryApprovalOnce runs `junction ledger --region beijing` as
// its own process and talks to it as the switch does: mutual TLS with the
// switch's certificate, the remote dialect and framing, sign-on first, then
// purchases pipelined on three connections. It kills the process with
// SIGKILL at a random point of each round, many times, and after each kill
// checks the books: every approval a connection received is in the journal
// exactly once with the approval code it was given, nothing declined is
// booked, nothing the test did not send is booked, and `junction ledger
// verify` passes. Purchases in flight at a kill have an unknown outcome; the
// next round retransmits them first, and each must get its one outcome:
// the booking it already has, or a first one.
func TestShardCrashKeepsEveryApprovalOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a process many times")
	}
	const (
		kills       = 20
		conns       = 3
		inFlight    = 32  // per connection, within the listener's bound
		maxAnswered = 200 // a round is killed after a random number of answers up to this
	)
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	rnd := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d", seed)

	dir := t.TempDir()
	listen := freePort(t)
	pkiDir := filepath.Join(dir, "pki")
	cfgFile := filepath.Join(dir, "junction.yaml")
	yaml := fmt.Sprintf("pki_dir: %s\ndata_dir: %s\nhttp: \"\"\ndemo: true\nregions:\n  - name: beijing\n    remote: {listen: %q}\n  - name: shanghai\n",
		pkiDir, filepath.Join(dir, "data"), listen)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startLedgerProcess(t, cfgFile, "beijing", listen)

	d := codec.ISO87Binary()
	load := &crashLoad{byKey: map[string]*crashPurchase{}}
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var unknown []*crashPurchase // in flight at the last kill, not yet retransmitted
	var stats struct{ sent, retransmitted, alreadyBooked, approvalsChecked, declinesChecked int }

	for round := 1; round <= kills; round++ {
		// This round's queue per connection: the last round's unknown
		// outcomes first, then new purchases without end.
		queues := make([][]*crashPurchase, conns)
		for i, cp := range unknown {
			queues[i%conns] = append(queues[i%conns], cp)
		}
		stats.retransmitted += len(unknown)
		unknown = nil
		next := func(c int, stan uint32) *crashPurchase {
			if len(queues[c]) > 0 {
				cp := queues[c][0]
				queues[c] = queues[c][1:]
				return cp
			}
			cp := &crashPurchase{tx: front.Txn{Type: codec.TxPurchase, PAN: richPAN, Amount: 1, Currency: 156, STAN: stan,
				Terminal: fmt.Sprintf("K%d%06d", c, round), Merchant: "CRASH SHOP", Time: at}, want: codec.RCApproved}
			switch stan % 10 {
			case 3:
				cp.tx.PAN, cp.tx.Amount, cp.want = poorPAN, 10_000_000, "51"
			case 7:
				cp.tx.PAN, cp.want = unknownPAN, "14"
			}
			return cp
		}

		load.mu.Lock()
		load.answered = 0
		load.mu.Unlock()
		var wg sync.WaitGroup
		var clients []*front.Client
		killed := make(chan struct{})
		for c := range conns {
			cl := dialShard(t, pkiDir, listen, d)
			clients = append(clients, cl)
			sem := make(chan struct{}, inFlight)
			wg.Add(2)
			go func() { // sender
				defer wg.Done()
				for stan := uint32(1); ; stan++ {
					cp := next(c, stan)
					req := codec.NewMessage(d)
					if err := cp.tx.Build(d, req); err != nil {
						t.Error(err)
						return
					}
					if err := req.SetString(32, "10000001"); err != nil {
						t.Error(err)
						return
					}
					select {
					case sem <- struct{}{}:
					case <-killed:
						return
					}
					load.mu.Lock()
					if cp.id.IsZero() { // a new purchase, not a retransmission
						cp.id = ledger.TxIDOf(req)
						load.byKey[crashKey(cp.tx.Terminal, string(req.Get(11)))] = cp
						stats.sent++
					}
					load.mu.Unlock()
					if cl.Send(req) != nil {
						return
					}
				}
			}()
			go func() { // receiver
				defer wg.Done()
				resp := codec.NewMessage(d)
				for cl.Receive(resp) == nil {
					load.mu.Lock()
					cp := load.byKey[crashKey(string(resp.Get(41)), string(resp.Get(11)))]
					if cp == nil {
						t.Errorf("an answer to nothing sent: %s stan %s terminal %s", resp.MTIString(), resp.Get(11), resp.Get(41))
					} else {
						cp.rc, cp.auth = string(resp.Get(39)), string(resp.Get(38))
						load.answered++
					}
					load.mu.Unlock()
					<-sem
				}
			}()
		}

		// Kill at a random point: after a random number of answers.
		target := rnd.IntN(maxAnswered + 1)
		eventually(t, fmt.Sprintf("round %d has %d answers", round, target), func() bool {
			load.mu.Lock()
			defer load.mu.Unlock()
			return load.answered >= target
		})
		p.kill()
		close(killed)
		for _, cl := range clients {
			cl.Close()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}

		// The books after the crash.
		booked := crashJournal(t, filepath.Join(dir, "data", "ledger", "beijing"))
		load.mu.Lock()
		ours := make(map[ledger.TxID]bool, len(load.byKey))
		for _, cp := range load.byKey {
			ours[cp.id] = true
		}
		for id, n := range booked.count {
			if n != 1 {
				t.Errorf("round %d: a purchase is booked %d times", round, n)
			}
			if !ours[id] {
				t.Errorf("round %d: journal entry %d books a purchase nobody sent", round, booked.seq[id])
			}
		}
		for _, cp := range load.byKey {
			switch {
			case cp.rc == "":
				unknown = append(unknown, cp)
			case cp.rc != cp.want:
				t.Errorf("round %d: %s stan %d answered %s, want %s", round, cp.tx.Terminal, cp.tx.STAN, cp.rc, cp.want)
			case cp.rc == codec.RCApproved:
				stats.approvalsChecked++
				if booked.count[cp.id] != 1 {
					t.Errorf("round %d: an approval (%s stan %d) is booked %d times", round, cp.tx.Terminal, cp.tx.STAN, booked.count[cp.id])
				} else if want := approvalCode(booked.seq[cp.id]); cp.auth != want {
					t.Errorf("round %d: %s stan %d was approved with code %q, its booking (seq %d) gives %q",
						round, cp.tx.Terminal, cp.tx.STAN, cp.auth, booked.seq[cp.id], want)
				}
			default:
				stats.declinesChecked++
				if booked.count[cp.id] != 0 {
					t.Errorf("round %d: a decline %s (%s stan %d) is booked", round, cp.rc, cp.tx.Terminal, cp.tx.STAN)
				}
			}
		}
		load.mu.Unlock()
		// A few hundred are in flight at a kill, and those of earlier rounds
		// not retransmitted yet are still unknown: a sample is retransmitted
		// next round, so that a round is not all replays.
		rnd.Shuffle(len(unknown), func(i, j int) { unknown[i], unknown[j] = unknown[j], unknown[i] })
		unknown = unknown[:min(len(unknown), 32)]
		for _, cp := range unknown {
			if booked.count[cp.id] == 1 {
				stats.alreadyBooked++ // its retransmission must replay this booking: 00, the same code
			}
		}

		verify := exec.Command(os.Args[0], "-test.run=^$", "--", "ledger", "verify", "--data", dir)
		// Built with -race, the test binary would wait a second before it
		// exits (the race runtime's atexit_sleep_ms), twenty times over.
		verify.Env = append(os.Environ(), "JUNCTION_TEST_RUN=1", "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
		if out, err := verify.CombinedOutput(); err != nil {
			t.Fatalf("round %d: junction ledger verify: %v\n%s", round, err, out)
		}
		if t.Failed() {
			t.FailNow()
		}
		if round < kills {
			p.start(listen)
		}
	}
	approved, declined, open := 0, 0, 0
	for _, cp := range load.byKey {
		switch cp.rc {
		case "":
			open++
		case codec.RCApproved:
			approved++
		default:
			declined++
		}
	}
	t.Logf("%d kills in %v: %d purchases sent, %d approved, %d declined, %d never answered; "+
		"%d in-flight outcomes retransmitted (%d of them already booked); %d approval and %d decline checks against the journal",
		kills, time.Since(began).Round(time.Millisecond), stats.sent, approved, declined, open,
		stats.retransmitted, stats.alreadyBooked, stats.approvalsChecked, stats.declinesChecked)
}

// dialShard connects to the shard process as the switch does and signs on.
func dialShard(t *testing.T, pkiDir, addr string, d *codec.Dialect) *front.Client {
	t.Helper()
	cert, key := pki.ClientFiles(pkiDir, allinone.SwitchIdentity)
	tlsCfg, err := front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(pkiDir)}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The remote defaults: 1987 binary behind a 2-byte binary length, no
	// header (allinone's remoteWire), which is the zero Framing.
	c, err := front.Dial(ctx, addr, tlsCfg, front.ClientOptions{Dialect: d})
	if err != nil {
		t.Fatal(err)
	}
	signOn, resp := codec.NewMessage(d), codec.NewMessage(d)
	for _, f := range []struct {
		id int
		v  string
	}{{7, time.Now().UTC().Format("0102150405")}, {11, "000001"}, {70, "001"}} {
		if err := signOn.SetString(f.id, f.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := signOn.SetMTI([4]byte{'0', '8', '0', '0'}); err != nil {
		t.Fatal(err)
	}
	if err := c.Exchange(ctx, signOn, resp); err != nil || string(resp.Get(39)) != codec.RCApproved {
		t.Fatalf("sign-on: %v rc %s", err, resp.Get(39))
	}
	return c
}

// crashBooks is the purchases in a shard's journal, by TxID.
type crashBooks struct {
	count map[ledger.TxID]int
	seq   map[ledger.TxID]uint64
}

// crashJournal opens the stopped shard in dir, reads its whole journal and
// closes it again. Opening it recovers it as the restarted process would.
func crashJournal(t *testing.T, dir string) crashBooks {
	t.Helper()
	s, err := ledger.Open(ledger.Options{Dir: dir, Region: "beijing", Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	b := crashBooks{count: map[ledger.TxID]int{}, seq: map[ledger.TxID]uint64{}}
	for from := uint64(1); ; {
		page, err := s.Journal(from, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return b
		}
		for _, e := range page {
			if e.Kind == ledger.KindPurchase {
				b.count[e.TxID]++
				b.seq[e.TxID] = e.Seq
			}
		}
		from = page[len(page)-1].Seq + 1
	}
}

// approvalCode is the approval code the ledger gives a booking: its journal
// sequence in base 36, six characters (ledger's authCode).
func approvalCode(seq uint64) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [6]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[seq%36]
		seq /= 36
	}
	return string(b[:])
}
