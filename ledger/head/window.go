package head

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/junction-switch/junction/ledger"
)

// ErrWindow is returned for a window that does not exist or is not in the state a call needs.
var ErrWindow = errors.New("head: window")

// State is where a settlement window is in its life.
type State uint8

// Window states, in the order a window passes through them.
const (
	StateOpen    State = iota + 1 // entries are booked in it
	StateClosing                  // cut over: waiting for every region's cutover point and its entries
	StateClosed                   // every entry of it is merged: ready for clearing
	StateSettled                  // cleared: its Settlement is stored and its fees booked
)

// String returns the lower-case state name.
func (s State) String() string {
	switch s {
	case StateOpen:
		return "open"
	case StateClosing:
		return "closing"
	case StateClosed:
		return "closed"
	case StateSettled:
		return "settled"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Window is a settlement window as the head records it.
type Window struct {
	Number  uint32
	Date    uint32 // settlement date, YYYYMMDD
	State   State
	Opened  int64 // unix nanoseconds (the head's clock)
	Cutover int64 // when it went closing; 0 while open
	Closed  int64 // when it went closed; 0 before
	Settled int64 // when it went settled; 0 before
	// Points are the regions that must deliver before it closes, set at cutover: each with the
	// shard's cutover point once the shard reported it.
	Points []Point
}

// Point is one region's cutover point of a window: the last journal seq of that region booked
// in the window (or earlier ones).
type Point struct {
	Region   string
	Reported bool   // false until the shard answered the cutover
	Last     uint64 // meaningful once Reported
}

// pending reports whether some region has not reported its point yet.
func (w *Window) pending() bool {
	for _, p := range w.Points {
		if !p.Reported {
			return true
		}
	}
	return false
}

// closable reports whether every region has reported and the head has merged up to its point;
// hw gives a region's high-water mark.
func (w *Window) closable(hw func(string) uint64) bool {
	for _, p := range w.Points {
		if !p.Reported || hw(p.Region) < p.Last {
			return false
		}
	}
	return true
}

func windowKey(n uint32) []byte { return binary.BigEndian.AppendUint32([]byte(prefixWindow), n) }

// Window and settlement records: a version byte (1), a JSON body, a CRC-32C of both. JSON
// because they are small, rare and nested; the CRC still catches a torn or corrupted value.
func appendJSON(dst []byte, v any) []byte {
	body, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("head: marshal %T: %v", v, err)) // plain structs: cannot fail
	}
	start := len(dst)
	dst = append(dst, recordV1)
	dst = append(dst, body...)
	return seal(dst, start)
}

func decodeJSON(what string, b []byte, v any) error {
	if len(b) < 1+crcSize {
		return corrupt(what, fmt.Sprintf("%d bytes", len(b)))
	}
	p, err := unseal(what, b, len(b))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(p, v); err != nil {
		return corrupt(what, err.Error())
	}
	return nil
}

func putWindow(txn *badger.Txn, w *Window) error {
	return txn.Set(windowKey(w.Number), appendJSON(nil, w))
}

// loadWindows reads every window record into h.windows and creates window 1, open with today's
// date, when there is none.
func (h *Head) loadWindows() error {
	err := h.db.View(func(txn *badger.Txn) error {
		prefix := []byte(prefixWindow)
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			w := new(Window)
			if err := it.Item().Value(func(v []byte) error { return decodeJSON("window", v, w) }); err != nil {
				return err
			}
			h.windows[w.Number] = w
			h.open = max(h.open, w.Number)
		}
		return nil
	})
	if err != nil || h.open != 0 {
		return err
	}
	w := &Window{Number: 1, Date: dateOfTime(h.clock()), State: StateOpen, Opened: h.clock().UnixNano()}
	if err := h.db.Update(func(txn *badger.Txn) error { return putWindow(txn, w) }); err != nil {
		return err
	}
	h.windows[1], h.open = w, 1
	return nil
}

// Windows returns every window, oldest first.
func (h *Head) Windows() ([]Window, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, ErrClosed
	}
	out := make([]Window, 0, len(h.windows))
	for _, w := range h.windows {
		out = append(out, copyWindow(w))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// Window returns window n (ErrWindow when there is none).
func (h *Head) Window(n uint32) (Window, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return Window{}, ErrClosed
	}
	w, ok := h.windows[n]
	if !ok {
		return Window{}, fmt.Errorf("%w %d: none", ErrWindow, n)
	}
	return copyWindow(w), nil
}

func copyWindow(w *Window) Window {
	c := *w
	c.Points = slices.Clone(w.Points)
	return c
}

// Cutover closes the open window N and opens N+1 with settlement date date (YYYYMMDD; 0 for N's
// date when that is today or later, else today, by the head's clock in UTC; a date before N's is
// refused). It commits "N closing, N+1 open" in one transaction first, then moves every source
// into N+1 (Source.Cutover) and records the point each returns. A source that fails stays
// pending: Resume asks it again. The regions that must deliver before N closes are
// Options.Regions and the sources' regions: a region that was cut over has entries of N up to
// its point, which N must not close without. N closes (Closing → Closed) in the
// transaction that records its last point, or later in the Apply that merges a region up to its
// point. Cutover returns window N as it stands after the points are recorded; an error only when
// the first step failed (a failing source is logged and left pending, not an error).
func (h *Head) Cutover(ctx context.Context, date uint32, srcs []Source) (Window, error) {
	h.cut.Lock()
	defer h.cut.Unlock()
	if date != 0 && !validDate(date) {
		return Window{}, fmt.Errorf("%w: date %d is not a YYYYMMDD date", ErrWindow, date)
	}
	for _, s := range srcs {
		if err := checkRegion(s.Region()); err != nil {
			return Window{}, err
		}
	}
	n, err := h.startCutover(date, srcs)
	if err != nil {
		return Window{}, err
	}
	h.resume(ctx, srcs)
	return h.Window(n)
}

// startCutover is Cutover's first transaction; it returns the window it moved to closing.
func (h *Head) startCutover(date uint32, srcs []Source) (uint32, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, ErrClosed
	}
	now := h.clock()
	cur := h.windows[h.open]
	today := dateOfTime(now)
	switch {
	case date == 0 && cur.Date >= today:
		date = cur.Date
	case date == 0:
		date = today
	case date < cur.Date:
		return 0, fmt.Errorf("%w: date %d is before window %d's date %d", ErrWindow, date, cur.Number, cur.Date)
	}
	regions := slices.Clone(h.regions)
	for _, s := range srcs {
		regions = append(regions, s.Region())
	}
	slices.Sort(regions)
	regions = slices.Compact(regions)
	closing := copyWindow(cur)
	closing.State, closing.Cutover = StateClosing, now.UnixNano()
	closing.Points = make([]Point, len(regions))
	for i, r := range regions {
		closing.Points[i] = Point{Region: r}
	}
	h.maybeClose(&closing, func(r string) uint64 { return h.high[r] }) // no region to wait for
	next := &Window{Number: cur.Number + 1, Date: date, State: StateOpen, Opened: now.UnixNano()}
	err := h.db.Update(func(txn *badger.Txn) error {
		if err := putWindow(txn, &closing); err != nil {
			return err
		}
		return putWindow(txn, next)
	})
	if err != nil {
		return 0, fmt.Errorf("head: cutover of window %d: %w", cur.Number, err)
	}
	h.windows[closing.Number], h.windows[next.Number], h.open = &closing, next, next.Number
	h.log.Info("head: cutover", "closing", closing.Number, "open", next.Number, "date", date,
		"regions", regions)
	return closing.Number, nil
}

func validDate(d uint32) bool {
	y, m, day := int(d/10000), time.Month(d/100%100), int(d%100)
	return y >= 1970 && y <= 9999 && time.Date(y, m, day, 0, 0, 0, 0, time.UTC).Format("20060102") == fmt.Sprintf("%08d", d)
}

// Resume asks each source for the cutover points it still owes (windows closing with its region
// pending, oldest first) and records them. With nothing pending it returns at once without
// touching a source, so the pull loop calls it every round. A source that fails again stays
// pending; Resume returns the first such error.
func (h *Head) Resume(ctx context.Context, srcs []Source) error {
	h.cut.Lock()
	defer h.cut.Unlock()
	return h.resume(ctx, srcs)
}

// resume does Resume's work; h.cut is held.
func (h *Head) resume(ctx context.Context, srcs []Source) error {
	var first error
	for _, src := range srcs {
		region := src.Region()
		for _, n := range h.owed(region) {
			w, err := h.Window(n + 1)
			if err != nil {
				return err
			}
			p, err := src.Cutover(ctx, n+1, w.Date)
			if err == nil && p.Window != n+1 {
				err = fmt.Errorf("answered the point of window %d", p.Window)
			}
			if err == nil {
				err = h.recordPoint(n, region, p.Last)
			}
			if err != nil {
				h.log.Warn("head: cutover point pending", "window", n, "region", region, "err", err)
				if first == nil {
					first = fmt.Errorf("head: cutover point of window %d, region %s: %w", n, region, err)
				}
				break // later windows of this source wait for this one
			}
		}
	}
	return first
}

// owed lists the closing windows, oldest first, whose point of region is still pending.
func (h *Head) owed(region string) []uint32 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []uint32
	for n, w := range h.windows {
		if w.State != StateClosing {
			continue
		}
		for _, p := range w.Points {
			if p.Region == region && !p.Reported {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// recordPoint records region's cutover point of window n and closes the window when that was the
// last thing it waited for, in one transaction.
func (h *Head) recordPoint(n uint32, region string, last uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	w := copyWindow(h.windows[n])
	for i := range w.Points {
		if w.Points[i].Region == region {
			w.Points[i].Reported, w.Points[i].Last = true, last
		}
	}
	h.maybeClose(&w, func(r string) uint64 { return h.high[r] })
	if err := h.db.Update(func(txn *badger.Txn) error { return putWindow(txn, &w) }); err != nil {
		return err
	}
	h.windows[n] = &w
	h.logState(&w)
	return nil
}

// maybeClose moves a closing window to closed when it is closable.
func (h *Head) maybeClose(w *Window, hw func(string) uint64) {
	if w.State == StateClosing && w.closable(hw) {
		w.State, w.Closed = StateClosed, h.clock().UnixNano()
	}
}

func (h *Head) logState(w *Window) {
	if w.State == StateClosed {
		h.log.Info("head: window closed", "window", w.Number, "date", w.Date)
	}
}

// checkWindows refuses the fresh entries of a batch that name a window above the open one or one
// already closed or settled. h.mu is held.
func (h *Head) checkWindows(region string, fresh []ledger.Transfer) error {
	for i := range fresh {
		t := &fresh[i]
		n := effWindow(t)
		if n > h.open {
			return fmt.Errorf("%w: region %s seq %d: window %d is above the open window %d",
				ErrBadBatch, region, t.Seq, n, h.open)
		}
		if w := h.windows[n]; w == nil || w.State >= StateClosed {
			return fmt.Errorf("%w: region %s seq %d: window %d is closed", ErrBadBatch, region, t.Seq, n)
		}
	}
	return nil
}

// closeReached writes, inside an Apply's txn, every closing window that the new high-water mark
// of region makes closable, and returns them for the cache. h.mu is held.
func (h *Head) closeReached(txn *badger.Txn, region string, hw uint64) ([]*Window, error) {
	var out []*Window
	for _, cur := range h.windows {
		if cur.State != StateClosing {
			continue
		}
		w := copyWindow(cur)
		h.maybeClose(&w, func(r string) uint64 {
			if r == region {
				return hw
			}
			return h.high[r]
		})
		if w.State != StateClosed {
			continue
		}
		if err := putWindow(txn, &w); err != nil {
			return nil, err
		}
		out = append(out, &w)
	}
	return out, nil
}
