package head

import (
	"context"
	"fmt"
	"time"

	"github.com/junction-switch/junction/ledger"
)

// Source is a shard as the head sees it: in-process (Local) or remote (ledger/remote.Client).
type Source interface {
	Region() string
	// Journal returns up to limit entries from seq from on, and the shard's last committed seq.
	Journal(ctx context.Context, from uint64, limit int) (entries []ledger.Transfer, last uint64, err error)
	Cutover(ctx context.Context, window, date uint32) (ledger.CutoverPoint, error)
}

// Local is the Source of a shard in the same process.
func Local(s *ledger.Shard) Source { return local{s} }

type local struct{ s *ledger.Shard }

func (l local) Region() string { return l.s.Region() }

func (l local) Journal(_ context.Context, from uint64, limit int) ([]ledger.Transfer, uint64, error) {
	page, err := l.s.Journal(from, limit)
	if err != nil {
		return nil, 0, err
	}
	// Read after the page, so last is never below the page's last entry.
	return page, l.s.Stats().LastSeq, nil
}

func (l local) Cutover(ctx context.Context, window, date uint32) (ledger.CutoverPoint, error) {
	return l.s.Cutover(ctx, window, date)
}

// Pull merges src's region into the head: it reads src's journal from the region's high-water
// mark on, in pages of batch entries (≤ 0 for 1024, at most MaxBatch), and applies each page,
// until a page comes back empty. It returns how many entries it applied. Pull is the merge that
// `junction up` runs, in-process or over ledger/remote; stopping it anywhere (ctx, a crash)
// loses nothing, since the next Pull starts from the mark that the last committed page left.
//
// Each page sets the region's merge lag twice, before and after applying it:
// junction_head_lag_entries is the source's last seq (as the page reported it) − the high-water
// mark; junction_head_lag_seconds, by the head's clock, is before applying the age of the oldest
// entry not merged (the page's first), after applying now − the time of the last entry merged
// while entries remain behind it, and 0 once caught up.
func (h *Head) Pull(ctx context.Context, src Source, batch int) (int, error) {
	region := src.Region()
	if err := checkRegion(region); err != nil {
		return 0, err
	}
	if batch <= 0 {
		batch = defaultPull
	}
	batch = min(batch, MaxBatch)
	applied := 0
	for {
		if err := ctx.Err(); err != nil {
			return applied, err
		}
		hw := h.HighWater(region)
		asked := h.clock()
		page, last, err := src.Journal(ctx, hw+1, batch)
		if err != nil {
			return applied, fmt.Errorf("head: region %s: read journal from %d: %w", region, hw+1, err)
		}
		if len(page) == 0 {
			// Read after asked and empty: whatever the shard committed before asked is merged.
			h.caughtUp(region, asked)
			h.metrics.lag(region, last, hw, 0)
			return applied, nil
		}
		h.metrics.lag(region, last, hw, h.clock().UnixNano()-page[0].Time)
		n, err := h.apply(region, page)
		applied += n
		if err != nil {
			return applied, err
		}
		hw = h.HighWater(region)
		h.metrics.lag(region, last, hw, h.clock().UnixNano()-page[len(page)-1].Time)
	}
}

// caughtUp records that every entry region's shard committed before at is merged.
func (h *Head) caughtUp(region string, at time.Time) {
	h.caughtMu.Lock()
	defer h.caughtMu.Unlock()
	if at.After(h.caught[region]) {
		h.caught[region] = at
	}
}

// MergedThrough is the instant up to which the head holds every entry of every region it knows
// (Options.Regions and every region it has merged from): for each, when the last Pull that found
// nothing more to merge began, by the head's clock; the earliest of them. It is the zero time
// while a region has not been caught up since the head opened. Shards date their entries by their
// own clocks, so the instant holds as far as those agree with the head's. Reconciliation waits
// for it to pass the end of the days a partner's file covers, so that nothing booked on them is
// still on its way.
func (h *Head) MergedThrough() time.Time {
	h.mu.RLock()
	regions := append([]string(nil), h.regions...)
	for r := range h.high {
		regions = append(regions, r)
	}
	h.mu.RUnlock()
	h.caughtMu.Lock()
	defer h.caughtMu.Unlock()
	var through time.Time
	for i, r := range regions {
		at, ok := h.caught[r]
		if !ok {
			return time.Time{}
		}
		if i == 0 || at.Before(through) {
			through = at
		}
	}
	return through
}
