package head

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/junction-switch/junction/durable"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/junction-switch/junction/ledger"
)

// ErrClosed is returned by every call on a head that is closed.
var ErrClosed = errors.New("head: closed")

// ErrGap is returned by Apply when a batch's first new entry is not the one after the region's
// high-water mark: entries in between would be lost. Nothing of the batch is written.
var ErrGap = errors.New("head: gap in journal")

// ErrBadBatch is returned by Apply for a batch that cannot be posted: out of sequence, an amount
// not above 0, no currency, an unknown kind, or a total that would overflow. Nothing of the batch
// is written.
var ErrBadBatch = errors.New("head: bad batch")

// ErrDiverged is returned by Apply for a batch that repeats an entry the head merged before with
// other content: the shard's journal is not the one the head merged (restored from an old backup,
// or rewritten). Nothing of the batch is written; an operator must look.
var ErrDiverged = errors.New("head: shard journal differs from what was merged")

// ErrLayout is returned by Open for a directory that holds another key layout than this head
// reads (see Storage layout in the package documentation), such as one written before the
// layout record existed. The head does not convert one: merge the shards' journals into a new
// directory.
var ErrLayout = errors.New("head: storage layout")

// MaxBatch is the most entries Apply takes at once; Pull reads pages of at most this many. It keeps
// one batch's badger transaction (at most 10 keys per entry: detail, RRN index key, two account
// totals, two GL leaves, one clearing aggregate, and at worst a region total, a window's and a
// date's seq range each; in practice those last three are a few per batch) below badger's size
// limit.
const MaxBatch = 4096

const (
	defaultPull  = 1024 // Pull's page size when batch ≤ 0
	maxRegionLen = 64
)

// Options configure a head ledger.
type Options struct {
	Dir        string                // badger directory; created if missing
	Logger     *slog.Logger          // nil → slog.Default()
	Registerer prometheus.Registerer // nil → no metrics registered
	// Regions are the regions whose cutover points and entries a window waits for before it
	// closes, besides those of the sources given to Cutover.
	Regions []string
	Clock   func() time.Time // nil → time.Now; dates window 1 and Cutover, stamps window records
}

// Total is what the general ledger has posted in one currency, for a region or one account.
// Amounts are minor units.
type Total struct {
	Currency       uint16
	Debits         int64  // posted
	Credits        int64  // posted
	DebitsPending  int64  // held by holds not yet posted, voided or expired
	CreditsPending int64  // likewise
	Entries        uint64 // journal entries that touched it
}

// Net is Credits − Debits: for a region always 0 (every entry debits and credits the same
// amount), for a card its balance, for an institution account its balance with the opposite sign.
func (t Total) Net() int64 { return t.Credits - t.Debits }

// Head is the head ledger: the general ledger that the regional shards' journals are merged into.
// All methods are safe for concurrent use; Apply calls are serialised.
type Head struct {
	log     *slog.Logger
	db      *badger.DB
	metrics *metrics

	clock   func() time.Time
	regions []string

	// mu serialises the writers (Apply, the steps of Cutover and Resume, Settle) and guards
	// closed, high, windows and open; readers hold it shared so that Close does not close badger
	// under them.
	mu      sync.RWMutex
	closed  bool
	high    map[string]uint64  // committed high-water marks, for HighWater and the gauge
	windows map[uint32]*Window // every window record, as committed; replaced, never changed
	open    uint32             // the open window: the highest

	// cut serialises Cutover and Resume as wholes, so that the sources hear of windows in order.
	cut sync.Mutex

	caughtMu sync.Mutex
	caught   map[string]time.Time // per region: every entry committed before it is merged (MergedThrough)
}

// Open opens (or creates) the head ledger stored in o.Dir.
func Open(o Options) (*Head, error) {
	if o.Dir == "" {
		return nil, errors.New("head: Options.Dir is empty")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	for _, r := range o.Regions {
		if err := checkRegion(r); err != nil {
			return nil, err
		}
	}
	log := o.Logger.With("component", "head")
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	db, err := badger.Open(badgerOptions(o.Dir, log))
	if err != nil {
		return nil, fmt.Errorf("head: open %s: %w", o.Dir, err)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	h := &Head{log: log, db: db, high: make(map[string]uint64), caught: make(map[string]time.Time), clock: o.Clock,
		regions: append([]string(nil), o.Regions...), windows: make(map[uint32]*Window)}
	if err := h.checkLayout(); err != nil {
		db.Close()
		return nil, fmt.Errorf("head: open %s: %w", o.Dir, err)
	}
	if err := h.loadHighWater(); err != nil {
		db.Close()
		return nil, fmt.Errorf("head: open %s: %w", o.Dir, err)
	}
	if err := h.loadWindows(); err != nil {
		db.Close()
		return nil, fmt.Errorf("head: open %s: %w", o.Dir, err)
	}
	if h.metrics, err = newMetrics(o.Registerer); err != nil {
		db.Close()
		return nil, fmt.Errorf("head: register metrics: %w", err)
	}
	for region, seq := range h.high {
		h.metrics.setHighWater(region, seq)
	}
	log.Info("head ledger open", "dir", o.Dir, "regions", len(h.high), "open window", h.open)
	return h, nil
}

// badgerOptions: the head's batches are at most MaxBatch entries of at most 9 keys each, inside a
// 32 MiB memtable's transaction limit (15 %: about 4.8 MiB and 50 000 keys).
func badgerOptions(dir string, log *slog.Logger) badger.Options {
	return durable.Options(dir, durable.Sizes{MemTable: 32 << 20, ValueLogFile: 64 << 20, BlockCache: 16 << 20}, log)
}

// rebuild is what an operator can do about a directory of another layout.
const rebuild = ": move the directory away and start again to merge the shards' journals anew (its windows and settlements stay in the old directory)"

// checkLayout refuses a directory of another key layout, and marks an empty one with this one.
func (h *Head) checkLayout() error {
	return h.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(prefixLayout))
		if err == nil {
			var n uint32
			if err := item.Value(func(v []byte) error { n, err = decodeLayout(v); return err }); err != nil {
				return err
			}
			if n != layout {
				return fmt.Errorf("%w %d, this head reads %d%s", ErrLayout, n, layout, rebuild)
			}
			return nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{})
		it.Rewind()
		used := it.Valid()
		it.Close()
		if used {
			return fmt.Errorf("%w 1 (no layout record), this head reads %d%s", ErrLayout, layout, rebuild)
		}
		return txn.Set([]byte(prefixLayout), appendLayout(nil, layout))
	})
}

func (h *Head) loadHighWater() error {
	return h.db.View(func(txn *badger.Txn) error {
		prefix := []byte(prefixHighWater)
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			region, err := regionOfHighWater(it.Item().Key())
			if err != nil {
				return err
			}
			if err := it.Item().Value(func(v []byte) error {
				seq, err := decodeHighWater(v)
				h.high[region] = seq
				return err
			}); err != nil {
				return fmt.Errorf("region %s: %w", region, err)
			}
		}
		return nil
	})
}

// Close closes badger. Later calls return ErrClosed; Close itself is safe to call more than once.
func (h *Head) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	err := h.db.Close()
	h.metrics.unregister()
	h.log.Info("head ledger closed", "err", err)
	return err
}

// HighWater returns the last journal seq of region's shard that the head has applied; 0 when none.
func (h *Head) HighWater(region string) uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.high[region]
}

// Apply posts a batch of one region's journal entries into the general ledger exactly once.
//
// The batch must be in sequence without gaps (as Shard.Journal returns it). Entries at or below
// the region's high-water mark were applied before and are skipped, so a retried batch changes
// nothing and one that overlaps applies only its tail; the first new entry must be the one right
// after the high-water mark (ErrGap otherwise). The new entries and the new high-water mark are
// written in one badger transaction, synced before Apply returns: either all of them are applied
// or none. The same transaction stores each entry's detail and index keys, adds it to its
// window's GL leaves and clearing aggregates, and closes every closing window the new mark
// completes. Every entry is checked first, and a malformed batch is refused whole (ErrBadBatch),
// as is one with a new entry in a window above the open one or in a window already closed.
func (h *Head) Apply(region string, entries []ledger.Transfer) error {
	_, err := h.apply(region, entries)
	return err
}

// apply is Apply, and returns how many entries were new.
func (h *Head) apply(region string, entries []ledger.Transfer) (int, error) {
	if err := checkRegion(region); err != nil {
		return 0, err
	}
	if err := checkBatch(entries); err != nil {
		h.log.Warn("head: batch refused", "region", region, "err", err)
		return 0, fmt.Errorf("head: region %s: %w", region, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, ErrClosed
	}
	if len(entries) == 0 {
		return 0, nil
	}
	var hw uint64
	var fresh []ledger.Transfer
	var closed []*Window
	err := h.db.Update(func(txn *badger.Txn) error {
		var err error
		if hw, err = readHighWater(txn, region); err != nil {
			return err
		}
		i := 0
		for i < len(entries) && entries[i].Seq <= hw {
			if err := sameAsMerged(txn, region, &entries[i]); err != nil {
				return err
			}
			i++
		}
		fresh = entries[i:]
		if len(fresh) == 0 {
			return nil
		}
		if fresh[0].Seq != hw+1 {
			return fmt.Errorf("%w: region %s: high-water mark %d, first new entry %d",
				ErrGap, region, hw, fresh[0].Seq)
		}
		if err := h.checkWindows(region, fresh); err != nil {
			return err
		}
		if err := h.post(txn, region, fresh); err != nil {
			return err
		}
		closed, err = h.closeReached(txn, region, fresh[len(fresh)-1].Seq)
		return err
	})
	if err != nil {
		if !errors.Is(err, ErrGap) && !errors.Is(err, ErrBadBatch) && !errors.Is(err, ErrDiverged) {
			// A failed commit may have landed or not: read the mark back rather than guess.
			h.reloadHighWater(region)
		}
		h.log.Warn("head: batch refused", "region", region, "err", err)
		return 0, err
	}
	if len(fresh) > 0 {
		seq := fresh[len(fresh)-1].Seq
		h.high[region] = seq
		h.metrics.applied(region, seq, len(fresh))
	}
	for _, w := range closed {
		h.windows[w.Number] = w
		h.logState(w)
	}
	return len(fresh), nil
}

// sameAsMerged checks an entry the head has merged before against what it merged: a shard whose
// journal now says something else under that seq (restored from an old backup, rewritten) is
// refused (ErrDiverged) rather than trusted for the rest of the batch. An entry merged before
// the head kept the detail cannot be checked and passes.
func sameAsMerged(txn *badger.Txn, region string, t *ledger.Transfer) error {
	item, err := txn.Get(detailKey(region, t.Seq))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var merged ledger.Transfer
	if err := item.Value(func(v []byte) error {
		merged, err = decodeDetail(v)
		return err
	}); err != nil {
		return err
	}
	if merged.TxID != t.TxID || merged.Kind != t.Kind || merged.Amount != t.Amount || merged.Currency != t.Currency ||
		merged.Debit != t.Debit || merged.Credit != t.Credit || merged.Original != t.Original {
		return fmt.Errorf("%w: region %s: seq %d is %s of %d from %d to %d in the journal, %s of %d from %d to %d as merged",
			ErrDiverged, region, t.Seq, t.Kind, t.Amount, t.Debit, t.Credit, merged.Kind, merged.Amount, merged.Debit, merged.Credit)
	}
	return nil
}

func (h *Head) reloadHighWater(region string) {
	err := h.db.View(func(txn *badger.Txn) error {
		seq, err := readHighWater(txn, region)
		if err == nil {
			h.high[region] = seq
			h.metrics.setHighWater(region, seq)
		}
		return err
	})
	if err != nil {
		h.log.Error("head: reload high-water mark", "region", region, "err", err)
	}
}

func readHighWater(txn *badger.Txn, region string) (uint64, error) {
	item, err := txn.Get(highWaterKey(region))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var seq uint64
	err = item.Value(func(v []byte) error {
		seq, err = decodeHighWater(v)
		return err
	})
	return seq, err
}

func checkRegion(region string) error {
	if region == "" || len(region) > maxRegionLen {
		return fmt.Errorf("head: region %q: want 1..%d bytes", region, maxRegionLen)
	}
	return nil
}

// checkBatch checks every entry of a batch before anything is read or written.
func checkBatch(entries []ledger.Transfer) error {
	if len(entries) > MaxBatch {
		return fmt.Errorf("%w: %d entries, at most %d", ErrBadBatch, len(entries), MaxBatch)
	}
	for i := range entries {
		t := &entries[i]
		var why string
		switch {
		case t.Seq == 0:
			why = "seq 0"
		case i > 0 && t.Seq != entries[i-1].Seq+1:
			why = fmt.Sprintf("follows seq %d", entries[i-1].Seq)
		case t.Amount <= 0:
			why = fmt.Sprintf("amount %d", t.Amount)
		case t.Currency == 0 || t.Currency > 999:
			why = fmt.Sprintf("currency %d", t.Currency)
		case t.Debit == 0 || t.Credit == 0 || t.Debit == t.Credit:
			why = fmt.Sprintf("debit account %d, credit account %d", t.Debit, t.Credit)
		case len(t.Terminal) > maxAnnotation || len(t.Merchant) > maxAnnotation || len(t.Acquirer) > maxAnnotation ||
			len(t.STAN) > maxAnnotation || len(t.RRN) > maxAnnotation:
			why = fmt.Sprintf("a text field above %d bytes", maxAnnotation)
		default:
			if _, _, ok := effect(t); !ok {
				why = fmt.Sprintf("%s releasing %d", t.Kind, t.Released)
			}
		}
		if why != "" {
			return fmt.Errorf("%w: entry %d (seq %d): %s", ErrBadBatch, i, t.Seq, why)
		}
	}
	return nil
}

// effect is what an entry adds to the posted amounts of its two accounts and to their pending
// amounts (negative when it releases a hold), the same rules as the shard's accounts follow; ok is
// false for a kind the head does not know or a Released that does not fit the kind.
func effect(t *ledger.Transfer) (posts, pends int64, ok bool) {
	switch t.Kind {
	case ledger.KindPurchase, ledger.KindDeposit, ledger.KindReversal, ledger.KindStandIn,
		ledger.KindRefund, ledger.KindTransfer, ledger.KindPayment, ledger.KindAdjust:
		return t.Amount, 0, t.Released == 0
	case ledger.KindHold:
		return 0, t.Amount, t.Released == 0
	case ledger.KindPost:
		return t.Amount, -t.Released, t.Released >= t.Amount
	case ledger.KindVoid, ledger.KindExpire:
		return 0, -t.Released, t.Released == t.Amount
	}
	return 0, 0, false
}

// post adds the entries to the region's and the accounts' totals, stores their detail, adds
// them to their windows' GL leaves and clearing aggregates and to the seq ranges Entries scans,
// and moves the high-water mark to the last of them, all inside txn. Each total and range is read
// once and written once per batch; the keys and values come from one arena (batch).
func (h *Head) post(txn *badger.Txn, region string, entries []ledger.Transfer) error {
	size := 0
	for i := range entries {
		e := &entries[i]
		size += detailKeyLen(region) + detailLen(e)
		if e.RRN != "" {
			size += rrnIndexKeyLen(e.RRN, region)
		}
	}
	b := newBatch(txn, size+8192, 2*len(entries)+64) // the slack: totals, ranges and the mark
	ts, rs := newTotals(txn), newRanges(txn)
	for i := range entries {
		e := &entries[i]
		posts, pends, _ := effect(e) // checkBatch has vetted the kind
		w := effWindow(e)
		// The five totals it adds to: the region's, its two accounts' and its two GL leaves.
		r, err := ts.load(appendRegionKey(ts.key, region, e.Currency), Total{Currency: e.Currency})
		if err != nil {
			return err
		}
		d, err := ts.load(appendAccountKey(ts.key, region, e.Debit, e.Currency), Total{Currency: e.Currency})
		if err != nil {
			return err
		}
		c, err := ts.load(appendAccountKey(ts.key, region, e.Credit, e.Currency), Total{Currency: e.Currency})
		if err != nil {
			return err
		}
		gd, err := ts.load(appendGLKey(ts.key, w, e.Acquirer, region, e.Merchant, e.Debit, e.Currency), Total{Currency: e.Currency})
		if err != nil {
			return err
		}
		gc, err := ts.load(appendGLKey(ts.key, w, e.Acquirer, region, e.Merchant, e.Credit, e.Currency), Total{Currency: e.Currency})
		if err != nil {
			return err
		}
		ok := add(&r.Debits, posts) && add(&r.Credits, posts) &&
			add(&r.DebitsPending, pends) && add(&r.CreditsPending, pends) &&
			add(&d.Debits, posts) && add(&d.DebitsPending, pends) &&
			add(&c.Credits, posts) && add(&c.CreditsPending, pends) &&
			add(&gd.Debits, posts) && add(&gd.DebitsPending, pends) &&
			add(&gc.Credits, posts) && add(&gc.CreditsPending, pends)
		if !ok {
			return fmt.Errorf("%w: seq %d: a total would overflow", ErrBadBatch, e.Seq)
		}
		r.Entries++
		d.Entries++
		c.Entries++
		gd.Entries++
		gc.Entries++
		if f, err := h.flowOf(txn, region, e, entries); err != nil {
			return err
		} else if f != 0 {
			a, err := ts.load(appendClearingKey(ts.key, w, e.Acquirer, e.Merchant, e.Currency, f), Total{Currency: e.Currency})
			if err != nil {
				return err
			}
			if !add(&a.Debits, e.Amount) {
				return fmt.Errorf("%w: seq %d: a clearing total would overflow", ErrBadBatch, e.Seq)
			}
			a.Entries++
		}
		ws, err := rs.load(windowSeqsKey(rs.key, w, region), seqRange{})
		if err != nil {
			return err
		}
		ws.widen(e.Seq)
		ds, err := rs.load(dateSeqsKey(rs.key, dateOf(e.Time), e.Acquirer, true, region), seqRange{})
		if err != nil {
			return err
		}
		ds.widen(e.Seq)
		if err := putDetail(b, region, e); err != nil {
			return err
		}
	}
	if err := ts.write(b); err != nil {
		return err
	}
	if err := rs.write(b); err != nil {
		return err
	}
	return b.set(highWaterKey(region), appendHighWater(nil, entries[len(entries)-1].Seq))
}

// add adds d to *v unless that overflows.
func add(v *int64, d int64) bool {
	if (d > 0 && *v > math.MaxInt64-d) || (d < 0 && *v < math.MinInt64-d) {
		return false
	}
	*v += d
	return true
}

// Totals returns the region's totals, one per currency in currency order; none before the first
// entry of the region is applied.
func (h *Head) Totals(region string) ([]Total, error) {
	if err := checkRegion(region); err != nil {
		return nil, err
	}
	return h.scan(appendRegion(nil, prefixRegion, region))
}

// AccountTotals returns the totals of one account of a region (its id in the region's shard), one
// per currency in currency order.
func (h *Head) AccountTotals(region string, account uint64) ([]Total, error) {
	if err := checkRegion(region); err != nil {
		return nil, err
	}
	return h.scan(accountPrefix(region, account))
}

func (h *Head) scan(prefix []byte) ([]Total, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, ErrClosed
	}
	var out []Total
	err := h.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			if len(item.Key()) != len(prefix)+2 {
				return corrupt("total key", fmt.Sprintf("%d bytes after the prefix", len(item.Key())-len(prefix)))
			}
			if err := item.Value(func(v []byte) error {
				t, err := decodeTotal(v, currencyOf(item.Key()))
				out = append(out, t)
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
