package ledger

import (
	"context"
	"encoding/binary"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

const cny = 156

// testDay is the settlement date of a new test shard's first window: the UTC date of testClock.
const testDay uint32 = 20260301

// testClock returns a clock that advances one second per reading, from a fixed instant, so
// journal times are predictable.
func testClock() func() time.Time {
	var n atomic.Int64
	base := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Second) }
}

func testOptions(t testing.TB, dir string) Options {
	return Options{
		Dir:    dir,
		Region: "beijing",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Clock:  testClock(),
	}
}

// openShard opens a shard in dir (a new temporary directory when dir is "") and closes it when
// the test ends.
func openShard(t testing.TB, dir string, mods ...func(*Options)) *Shard {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	o := testOptions(t, dir)
	for _, m := range mods {
		m(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openCard opens a card account for pan and returns its id.
func openCard(t testing.TB, s *Shard, pan string) uint64 {
	t.Helper()
	id, err := s.OpenAccount(context.Background(), AccountSpec{Type: Card, Currency: cny, Name: "card", PAN: pan})
	if err != nil {
		t.Fatalf("OpenAccount(%s): %v", maskPAN(pan), err)
	}
	return id
}

// txid returns a distinct TxID per (tag, n).
func txid(tag string, n int) TxID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return NewTxID([]byte(tag), b[:])
}

func do(t testing.TB, s *Shard, r Request) Result {
	t.Helper()
	res, err := s.Do(context.Background(), &r)
	if err != nil {
		t.Fatalf("Do(%s %d): %v", r.Op, r.Amount, err)
	}
	return res
}

func deposit(t testing.TB, s *Shard, id TxID, pan string, amount int64) Result {
	t.Helper()
	return do(t, s, Request{Op: OpDeposit, ID: id, PAN: pan, Amount: amount, Currency: cny})
}

// depositAsync is deposit for a goroutine other than the test's: it reports with Error.
func depositAsync(t testing.TB, s *Shard, id TxID, pan string, amount int64) {
	r, err := s.Do(context.Background(), &Request{Op: OpDeposit, ID: id, PAN: pan, Amount: amount, Currency: cny})
	if err != nil || r.Code != Approved {
		t.Errorf("deposit %d: %+v, %v", amount, r, err)
	}
}

func purchase(t testing.TB, s *Shard, id TxID, pan string, amount int64) Result {
	t.Helper()
	return do(t, s, Request{Op: OpPurchase, ID: id, PAN: pan, Amount: amount, Currency: cny,
		Terminal: "T0000001", Merchant: "M00000000000001"})
}

func account(t testing.TB, s *Shard, id uint64) Account {
	t.Helper()
	a, err := s.Account(id)
	if err != nil {
		t.Fatalf("Account(%d): %v", id, err)
	}
	return a
}

func journal(t testing.TB, s *Shard) []Transfer {
	t.Helper()
	var all []Transfer
	for from := uint64(1); ; {
		page, err := s.Journal(from, 0)
		if err != nil {
			t.Fatalf("Journal(%d): %v", from, err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		from = page[len(page)-1].Seq + 1
	}
}

func mustVerify(t testing.TB, s *Shard) VerifyReport {
	t.Helper()
	rep, err := s.Verify()
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// gate blocks the writer inside its next commit until released; with it a test can pile up
// requests in the queue and see how one batch takes them.
type gate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) hook() error {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
	return nil
}
