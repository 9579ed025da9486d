package allinone

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
	"github.com/junction-switch/junction/ledger/recon"
	"github.com/junction-switch/junction/ledger/remote"
	"github.com/junction-switch/junction/pki"
	"github.com/junction-switch/junction/routing"
)

// headNode is the head ledger inside `junction up`: the head itself under
// DataDir/head, the sources it merges (the in-process shards, and the
// remote ones whose journal service is configured), a loop per source that
// pulls it and resumes the cutovers that still wait for it, and the loop
// that runs the scheduled cutovers.
type headNode struct {
	log      *slog.Logger
	h        *head.Head
	srcs     []head.Source
	remotes  map[string]*remote.Client
	shards   map[string]*ledger.Shard
	routes   func() *routing.Table
	channels []string
	times    []int
	pull     time.Duration
	batch    int
	clearing head.Clearing
	recon    recon.Config
	inbox    string // where files posted to the admin API are kept before they are ingested
	now      func() time.Time
	// queuedBefore reports whether the switch's store-and-forward queue holds an advice or a
	// reversal queued before t: a booking still on its way to a shard.
	queuedBefore func(t time.Time) (bool, error)

	files sync.Mutex      // one file ingest at a time
	pokes []chan struct{} // per source: a cutover wants its point now
	stop  context.CancelFunc
	done  chan struct{}
}

// startHead opens the head ledger and starts its loop.
func (n *Node) startHead() error {
	cfg := n.cfg
	hs := cfg.Head
	times, _ := hs.cutoverTimes() // validated
	hn := &headNode{
		log: n.log.With("component", "head"), shards: n.shards, remotes: map[string]*remote.Client{},
		routes: func() *routing.Table { return n.sw.Routes() }, times: times,
		pull: cmpDuration(hs.Pull, 200*time.Millisecond), batch: hs.Batch,
		done:  make(chan struct{}),
		inbox: filepath.Join(cfg.DataDir, "files", "in"), now: cfg.Clock, queuedBefore: n.safQueuedBefore,
	}
	if hn.now == nil {
		hn.now = time.Now
	}
	for _, ch := range cfg.Channels {
		hn.channels = append(hn.channels, ch.Name)
	}
	var regions []string
	for _, r := range cfg.Regions {
		switch {
		case n.shards[r.Name] != nil:
			hn.srcs = append(hn.srcs, head.Local(n.shards[r.Name]))
		case r.Remote != nil && r.Remote.Journal != "":
			c, err := n.journalClient(r)
			if err != nil {
				return fmt.Errorf("region %s: journal service: %w", r.Name, err)
			}
			hn.remotes[r.Name] = c
			hn.srcs = append(hn.srcs, c)
		default:
			n.log.Warn("head ledger: region has no journal service (regions[].remote.journal); it is left out of the general ledger and of window closing",
				"region", r.Name)
			continue
		}
		regions = append(regions, r.Name)
		hn.pokes = append(hn.pokes, make(chan struct{}, 1))
	}
	var err error
	hn.h, err = head.Open(head.Options{
		Dir: filepath.Join(cfg.DataDir, "head"), Logger: n.log, Registerer: n.registry, Regions: regions, Clock: cfg.Clock,
	})
	if err != nil {
		return err
	}
	n.head = hn
	if hn.clearing, err = hs.clearing(filepath.Join(cfg.DataDir, "settlement")); err != nil {
		return err // validated: not reached
	}
	tol := decimal.Zero
	if hs.Recon.Tolerance != "" {
		tol, _ = decimal.NewFromString(hs.Recon.Tolerance) // validated
	}
	partners := map[string]string{}
	for _, p := range hs.Recon.Partners {
		partners[p.Org] = p.Acquirer
	}
	hn.recon = recon.Config{
		Head: hn.h, Books: hn, Partners: partners,
		// Reconciliation amounts are in the platform's currency; the
		// tolerance is given in its major units.
		AmountTolerance: tol.Shift(2).IntPart(), DateTolerance: hs.Recon.DateTolerance,
		Registry: filepath.Join(cfg.DataDir, "files", "registry"), Output: filepath.Join(cfg.DataDir, "files", "out"),
		Logger: n.log,
	}
	ctx, cancel := context.WithCancel(context.Background())
	hn.stop = cancel
	go hn.run(ctx)
	return nil
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// journalClient is the head's client of a remote region's journal service:
// mutual TLS with the switch's client certificate.
func (n *Node) journalClient(r Region) (*remote.Client, error) {
	cert, key := pki.ClientFiles(n.cfg.PKIDir, SwitchIdentity)
	tlsCfg, err := front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(n.cfg.PKIDir)}, "localhost")
	if err != nil {
		return nil, err
	}
	return remote.New("https://"+r.Remote.Journal, tlsCfg, r.Name)
}

// clearing is the settings as head.Clearing, its files written to out.
func (hs HeadSettings) clearing(out string) (head.Clearing, error) {
	c := head.Clearing{Out: out, Fees: head.Fees{Merchants: map[string]head.Fee{}}}
	for _, in := range hs.Institutions {
		c.Institutions = append(c.Institutions, head.Institution{ID: in.ID, Name: in.Name, Account: in.Account})
	}
	var err error
	if c.Fees.Default.Rate, c.Fees.Default.Fixed, err = hs.Fees.Default.parse("head.fees.default"); err != nil {
		return c, err
	}
	for m, r := range hs.Fees.Merchants {
		var f head.Fee
		if f.Rate, f.Fixed, err = r.parse("head.fees.merchants." + m); err != nil {
			return c, err
		}
		c.Fees.Merchants[m] = f
	}
	return c, nil
}

// resumeTimeout bounds how long a source is asked for a cutover point it
// owes: every cutover waits meanwhile.
const resumeTimeout = 5 * time.Second

// run merges every source on a goroutine of its own, so that a region
// whose journal service is slow or down holds up no other region's merge,
// and runs the scheduled cutovers.
func (hn *headNode) run(ctx context.Context) {
	defer close(hn.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, src := range hn.srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hn.merge(ctx, src, hn.pokes[i])
		}()
	}
	for {
		hn.scheduled(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(hn.pull):
		}
	}
}

// merge pulls src until caught up, then asks it for the cutover points it
// still owes, and waits for the pull interval or a poke. A source whose pull
// failed is not asked: it would fail as well, and every cutover waits while
// it is asked. A failure is logged once, and its end once.
func (hn *headNode) merge(ctx context.Context, src head.Source, poke <-chan struct{}) {
	region := src.Region()
	failing, waiting := false, false
	for {
		_, err := hn.h.Pull(ctx, src, hn.batch)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !failing:
			hn.log.Error("merge failed; retrying", "region", region, "err", err)
		case err == nil && failing:
			hn.log.Info("merge recovered", "region", region)
		}
		if failing = err != nil; !failing {
			// Bounded: the head's cutovers wait while a source is asked.
			rctx, cancel := context.WithTimeout(ctx, resumeTimeout)
			err := hn.h.Resume(rctx, []head.Source{src})
			cancel()
			if ctx.Err() != nil {
				return
			}
			switch {
			case err != nil && !waiting:
				hn.log.Warn("cutover still waits for a shard", "region", region, "err", err)
			case err == nil && waiting:
				hn.log.Info("cutover point delivered", "region", region)
			}
			waiting = err != nil
		}
		select {
		case <-ctx.Done():
			return
		case <-poke:
		case <-time.After(hn.pull):
		}
	}
}

// scheduled runs the cutover the schedule says is due, if any. The last
// cutover of the day ends the business day: the window it opens is dated
// the next day. The others open another window of the same day.
func (hn *headNode) scheduled(ctx context.Context) {
	if len(hn.times) == 0 {
		return
	}
	open, err := hn.openWindow()
	if err != nil {
		hn.log.Error("scheduled cutover: read windows", "err", err)
		return
	}
	now := hn.now()
	if !cutoverDue(hn.times, time.Unix(0, open.Opened), now) {
		return
	}
	// The sources hear of it from their own loops, as of any cutover: a
	// region that is down must not hold the others' points up.
	w, err := hn.h.Cutover(ctx, businessDate(hn.times, lastScheduled(hn.times, now)), nil)
	if err != nil {
		hn.log.Error("scheduled cutover failed", "window", open.Number, "err", err)
		return
	}
	hn.log.Info("scheduled cutover", "closing", w.Number, "date", w.Date)
	hn.poke()
}

// businessDate is the settlement date (YYYYMMDD) of the window a scheduled
// cutover at instant at opens: the next day after the day's last cutover,
// the same day after the others.
func businessDate(times []int, at time.Time) uint32 {
	at = at.UTC()
	if at.Hour()*60+at.Minute() == slices.Max(times) {
		at = at.AddDate(0, 0, 1)
	}
	return uint32(at.Year()*10000 + int(at.Month())*100 + at.Day())
}

// openWindow is the window open now.
func (hn *headNode) openWindow() (head.Window, error) {
	ws, err := hn.h.Windows()
	if err != nil {
		return head.Window{}, err
	}
	for i := len(ws) - 1; i >= 0; i-- {
		if ws[i].State == head.StateOpen {
			return ws[i], nil
		}
	}
	return head.Window{}, errors.New("head: no open window")
}

// cutover closes the open window now (date 0: the head picks it) and has
// the sources' loops tell the shards; a network management request runs it.
func (hn *headNode) cutover(ctx context.Context, date uint32) (head.Window, error) {
	w, err := hn.h.Cutover(ctx, date, nil)
	if err == nil {
		hn.log.Info("cutover", "closing", w.Number, "date", w.Date)
		hn.poke()
	}
	return w, err
}

// poke wakes every source's loop to deliver its cutover point now.
func (hn *headNode) poke() {
	for _, p := range hn.pokes {
		select {
		case p <- struct{}{}:
		default:
		}
	}
}

// close stops the loop and closes the head and the journal clients.
func (hn *headNode) close() error {
	if hn.stop != nil {
		hn.stop()
		<-hn.done
	}
	for _, c := range hn.remotes {
		c.Close()
	}
	return hn.h.Close()
}

// Locate is the region a card or an account number belongs to: where the
// switch's rules route it.
func (hn *headNode) Locate(ref string) (string, error) {
	t := hn.routes()
	try := func(in *routing.Input) (string, bool) {
		d := t.Decide(in)
		if d.Destination != "" && (hn.shards[d.Destination] != nil || hn.remotes[d.Destination] != nil) {
			return d.Destination, true
		}
		return "", false
	}
	if r, ok := try(&routing.Input{MTI: [4]byte{'0', '2', '0', '0'}, PCode: []byte("000000"), PAN: []byte(ref)}); ok {
		return r, nil
	}
	for _, ch := range hn.channels {
		if r, ok := try(&routing.Input{Channel: ch, MTI: [4]byte{'0', '2', '0', '0'}, PCode: []byte("500000"), Account: []byte(ref)}); ok {
			return r, nil
		}
	}
	return "", fmt.Errorf("no region's rules route %s", recon.Mask(ref))
}

// Adjust books a reconciliation adjustment in region's shard.
func (hn *headNode) Adjust(ctx context.Context, region string, a ledger.Adjustment) (ledger.Result, error) {
	if s := hn.shards[region]; s != nil {
		return s.Adjust(ctx, a)
	}
	if c := hn.remotes[region]; c != nil {
		return c.Adjust(ctx, a)
	}
	return ledger.Result{}, fmt.Errorf("region %q: no shard in this process and no journal service", region)
}

// Do runs a request (a batch debit's payment) in region's shard.
func (hn *headNode) Do(ctx context.Context, region string, r *ledger.Request) (ledger.Result, error) {
	if s := hn.shards[region]; s != nil {
		return s.Do(ctx, r)
	}
	if c := hn.remotes[region]; c != nil {
		return c.Do(ctx, r)
	}
	return ledger.Result{}, fmt.Errorf("region %q: no shard in this process and no journal service", region)
}

// ingest keeps a file posted to the admin API under the inbox and runs it:
// reconciliation (recon true) or batch debit. The name is checked before
// anything is written, so it cannot point outside the inbox; each content
// is kept in its own directory (its SHA-256), so a second file under a name
// never replaces the first. A reconciliation file also waits until no
// advice or reversal queued before the end of its days is still in the
// store-and-forward queue (recon.ErrNotReady): its booking is on the way.
func (hn *headNode) ingest(ctx context.Context, name string, body []byte, isRecon bool) (recon.Report, error) {
	parsed, err := recon.ParseName(name)
	if err != nil || filepath.Base(name) != name {
		return recon.Report{}, fmt.Errorf("file name %q: %v", name, err)
	}
	if isRecon {
		d := parsed.Date
		end := time.Date(int(d/10000), time.Month(d/100%100), int(d%100), 0, 0, 0, 0, time.UTC).AddDate(0, 0, hn.recon.DateTolerance+1)
		queued, err := hn.queuedBefore(end)
		if err != nil {
			return recon.Report{}, err
		}
		if queued {
			return recon.Report{}, fmt.Errorf("%w: the store-and-forward queue still holds advices or reversals from before %s",
				recon.ErrNotReady, end.Format(time.RFC3339))
		}
	}
	hn.files.Lock()
	defer hn.files.Unlock()
	sum := sha256.Sum256(body)
	dir := filepath.Join(hn.inbox, hex.EncodeToString(sum[:]))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return recon.Report{}, err
	}
	path := filepath.Join(dir, name)
	tmp := path + ".part"
	if err := os.WriteFile(tmp, body, 0o640); err != nil {
		return recon.Report{}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return recon.Report{}, err
	}
	if isRecon {
		return recon.Reconcile(ctx, path, hn.recon)
	}
	return recon.BatchDebit(ctx, path, hn.recon)
}

// safQueuedBefore reports whether any destination's store-and-forward
// queue holds an entry queued before t.
func (n *Node) safQueuedBefore(t time.Time) (bool, error) {
	for _, p := range n.pools {
		oldest, err := n.saf.PendingFirst(p.Name(), 1)
		if err != nil {
			return false, err
		}
		if len(oldest) > 0 && oldest[0].Enqueued.Before(t) {
			return true, nil
		}
	}
	return false, nil
}
