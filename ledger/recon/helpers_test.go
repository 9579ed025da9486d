package recon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
	"github.com/junction-switch/junction/routing"
)

const (
	cny      = 156
	acquirer = "12345678"
	fileDate = 20131012
)

// clock is a shard clock the test moves: each reading is one second after the last, from an
// instant the test sets.
type clock struct{ ns atomic.Int64 }

func (c *clock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time  { return time.Unix(0, c.ns.Add(int64(time.Second))).UTC() }

// world is two regional shards, a head ledger that merges them, and Books over the shards.
type world struct {
	t      *testing.T
	clock  *clock
	shards map[string]*ledger.Shard
	head   *head.Head
	books  *books
	dir    string // files, registry and output live under it
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func quietLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, clock: &clock{}, shards: make(map[string]*ledger.Shard), dir: t.TempDir()}
	w.clock.set(time.Date(2013, 10, 12, 9, 0, 0, 0, time.UTC))
	for _, region := range []string{"beijing", "shanghai"} {
		s, err := ledger.Open(ledger.Options{Dir: t.TempDir(), Region: region, Logger: quietLogger(t), Clock: w.clock.now})
		if err != nil {
			t.Fatalf("ledger.Open(%s): %v", region, err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close %s: %v", region, err)
			}
		})
		w.shards[region] = s
	}
	h, err := head.Open(head.Options{Dir: t.TempDir(), Logger: quietLogger(t)})
	if err != nil {
		t.Fatalf("head.Open: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	w.head = h
	w.books = &books{shards: w.shards, where: make(map[string]string)}
	return w
}

// config returns the Config the tests reconcile with.
func (w *world) config() Config {
	return Config{Head: w.head, Books: w.books, Partners: map[string]string{"SDDL": acquirer},
		AmountTolerance: 1, DateTolerance: 1,
		Registry: filepath.Join(w.dir, "registry"), Output: filepath.Join(w.dir, "out"), Logger: quietLogger(w.t)}
}

// merge pulls every shard's journal into the head.
func (w *world) merge() {
	w.t.Helper()
	for _, s := range w.shards {
		if _, err := w.head.Pull(context.Background(), head.Local(s), 0); err != nil {
			w.t.Fatalf("Pull %s: %v", s.Region(), err)
		}
	}
}

// card opens a card with a fresh PAN in region and tops it up with amount.
func (w *world) card(region string, n int, amount int64) (pan string, id uint64) {
	w.t.Helper()
	payload := fmt.Sprintf("622202%012d", n)
	pan = payload + string(routing.LuhnDigit(payload))
	id = w.open(region, ledger.AccountSpec{Type: ledger.Card, Currency: cny, Name: "card", PAN: pan}, pan)
	if amount > 0 {
		w.do(region, ledger.Request{Op: ledger.OpDeposit, ID: txid("deposit", pan), PAN: pan, Amount: amount, Currency: cny})
	}
	return pan, id
}

// open opens an account in region and lets Books locate it by ref.
func (w *world) open(region string, spec ledger.AccountSpec, ref string) uint64 {
	w.t.Helper()
	id, err := w.shards[region].OpenAccount(context.Background(), spec)
	if err != nil {
		w.t.Fatalf("OpenAccount(%s): %v", Mask(ref), err)
	}
	w.books.where[ref] = region
	return id
}

func (w *world) do(region string, r ledger.Request) ledger.Result {
	w.t.Helper()
	res, err := w.shards[region].Do(context.Background(), &r)
	if err != nil {
		w.t.Fatalf("Do(%s): %v", r.Op, err)
	}
	if res.Code != ledger.Approved {
		w.t.Fatalf("Do(%s %d): code %s", r.Op, r.Amount, res.Code)
	}
	return res
}

// balance returns an account's balance (credits − debits).
func (w *world) balance(region string, id uint64) int64 {
	w.t.Helper()
	a, err := w.shards[region].Account(id)
	if err != nil {
		w.t.Fatalf("Account(%d): %v", id, err)
	}
	return a.Balance()
}

// lastSeqs returns every shard's last journal seq.
func (w *world) lastSeqs() map[string]uint64 {
	m := make(map[string]uint64)
	for r, s := range w.shards {
		m[r] = s.Stats().LastSeq
	}
	return m
}

// verify runs Shard.Verify on every shard.
func (w *world) verify() {
	w.t.Helper()
	for r, s := range w.shards {
		rep, err := s.Verify()
		if err != nil {
			w.t.Fatalf("Verify %s: %v (%+v)", r, err, rep)
		}
	}
}

// write writes a file named name under the world's directory and returns its path.
func (w *world) write(name string, data []byte) string {
	w.t.Helper()
	p := filepath.Join(w.dir, "in", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o640); err != nil {
		w.t.Fatal(err)
	}
	return p
}

func txid(parts ...string) ledger.TxID {
	b := make([][]byte, len(parts))
	for i, p := range parts {
		b[i] = []byte(p)
	}
	return ledger.NewTxID(b...)
}

// books routes to in-process shards by a map from reference to region, as the wiring does with
// its directory of accounts.
type books struct {
	shards map[string]*ledger.Shard
	where  map[string]string

	mu      sync.Mutex
	failing string // Adjust and Do in this region fail, as an unreachable shard's would
}

var errUnreachable = errors.New("test: shard unreachable")

func (b *books) fail(region string) {
	b.mu.Lock()
	b.failing = region
	b.mu.Unlock()
}

func (b *books) down(region string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failing == region
}

func (b *books) Locate(ref string) (string, error) {
	if r, ok := b.where[ref]; ok {
		return r, nil
	}
	return "", fmt.Errorf("test: %s: %w", Mask(ref), ledger.ErrNotFound)
}

func (b *books) Adjust(ctx context.Context, region string, a ledger.Adjustment) (ledger.Result, error) {
	if b.down(region) {
		return ledger.Result{}, errUnreachable
	}
	return b.shards[region].Adjust(ctx, a)
}

func (b *books) Do(ctx context.Context, region string, r *ledger.Request) (ledger.Result, error) {
	if b.down(region) {
		return ledger.Result{}, errUnreachable
	}
	return b.shards[region].Do(ctx, r)
}

func encode(t testing.TB, enc Encoding, n Name, recs []Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteReconFile(&buf, enc, n, recs); err != nil {
		t.Fatalf("WriteReconFile: %v", err)
	}
	return buf.Bytes()
}
