package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
)

// Kind is a transaction type of the mix.
type Kind string

// The kinds of the mix. Refunds and reversals take back a purchase the
// same connection had approved (a purchase is sent instead while there is
// none); a pre-authorisation is followed, once approved, by its completion
// (0220) for the full amount. Only purchases and balance inquiries go to
// channels whose dialect needs a conversion map (1993).
const (
	Purchase Kind = "purchase"
	Balance  Kind = "balance"
	PreAuth  Kind = "preauth"
	Refund   Kind = "refund"
	Reversal Kind = "reversal"
	TopUp    Kind = "topup"
	Payment  Kind = "payment"
	Transfer Kind = "transfer"

	completion Kind = "completion" // follows an approved PreAuth
)

// Kinds are the kinds a mix may weigh.
var Kinds = []Kind{Purchase, Balance, PreAuth, Refund, Reversal, TopUp, Payment, Transfer}

// Target is one channel the harness drives: where it listens, the client
// certificate it wants (nil TLS: plaintext), how it speaks, and whether it
// takes one request per connection.
type Target struct {
	Channel string
	Addr    string
	TLS     *tls.Config
	Wire    allinone.Wire
	Short   bool
}

// Options shape a run.
type Options struct {
	Targets []Target
	// Conns long connections are spread over the targets that keep them;
	// ShortConns goroutines each open a connection per transaction on the
	// short-connection targets (TLS session resumption on).
	Conns, ShortConns int
	// InFlight is the requests each long connection keeps unanswered.
	InFlight int
	// Rate > 0 runs open loop: requests are due at this many per second,
	// and latency is measured from when each was due, so a stalled server
	// cannot hide its queue. Rate 0 runs closed loop: every connection
	// sends as soon as an answer frees a slot.
	Rate     float64
	Duration time.Duration // measured
	Warmup   time.Duration // sent, not measured
	// Ramp brings the load up gradually from the start of the run: open
	// loop, the rate grows linearly from nothing to Rate; closed loop, the
	// connections start one after another across it.
	Ramp     time.Duration
	Mix      map[Kind]int // weights
	Cards    []string     // PANs; requests pick one at random
	Payees   []string     // per card, the biller its bill payments credit (field 103)
	Accounts []string     // per card, the account its transfers credit (field 103)
	HotShare float64      // share of requests on Cards[0], the hot card
	Amount   int64        // minor units per purchase
	Currency uint16
	// Progress gets a line every second while the run lasts; nil: none.
	Progress io.Writer
}

// NoAnswer is the error of a request the switch never answered before its
// connection closed: its outcome is unknown to the harness.
const NoAnswer = "no answer (connection closed or lost)"

// result is one answer, or one failure, as a connection saw it.
type result struct {
	kind    Kind
	card    int
	amount  int64 // what an approval takes off the card's ledger balance (negative: puts on)
	latency time.Duration
	rc      string // "" on failure
	err     string
}

// run is the shared state of a run.
type run struct {
	o        Options
	start    time.Time // measurement starts (after warmup)
	end      time.Time
	kinds    []Kind // one per unit of weight
	due      chan time.Time
	terminal atomic.Int64

	mu       sync.Mutex
	hist     histogram
	seconds  []second
	current  int       // the second curHist holds
	curHist  histogram // the latencies of that second: one histogram, not one per second
	codes    map[string]int64
	errors   map[string]int64
	approved map[int]int64 // card → approved purchase amount
	resumed  atomic.Int64
	shortTx  atomic.Int64
	backlog  atomic.Int64
	sent     atomic.Int64
}

// second is one second of the run, for the plot.
type second struct {
	Answered int64 `json:"answered"`
	P99us    int64 `json:"p99_us"`
}

// Run drives the targets for Warmup then Duration and returns what it
// measured. It stops early when ctx ends.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	r := &run{o: o, codes: map[string]int64{}, errors: map[string]int64{}, approved: map[int]int64{}}
	for _, k := range Kinds {
		for range o.Mix[k] {
			r.kinds = append(r.kinds, k)
		}
	}
	began := time.Now()
	// The switch keys a transaction by terminal, STAN and transmission
	// time to the second: a run that numbered its terminals from 1 again
	// would, within a second of the last run's end, repeat its keys and be
	// answered the last run's outcomes with nothing booked. Each run
	// numbers its terminals from a block of 1000 of its own (by the
	// millisecond it began, repeating every 10 s).
	r.terminal.Store(began.UnixMilli() % 10_000 * 1000)
	r.start = began.Add(o.Warmup)
	r.end = r.start.Add(o.Duration)
	r.seconds = make([]second, int(o.Duration/time.Second)+1)
	ctx, cancel := context.WithDeadline(ctx, r.end)
	defer cancel()

	var long, short []Target
	for _, t := range o.Targets {
		if t.Short {
			short = append(short, t)
		} else {
			long = append(long, t)
		}
	}
	if o.Rate > 0 {
		r.due = make(chan time.Time, 1<<16)
		go r.schedule(ctx, began)
	}
	var wg sync.WaitGroup
	var dialErr error
	var once sync.Once
	for i := 0; i < o.Conns && len(long) > 0; i++ {
		t := long[i%len(long)]
		c, err := dial(ctx, t)
		if err != nil {
			once.Do(func() { dialErr = err })
			break
		}
		// Closed loop with a ramp: connection i starts i/Conns into it.
		var delay time.Duration
		if o.Rate == 0 && o.Ramp > 0 {
			delay = o.Ramp * time.Duration(i) / time.Duration(o.Conns)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if delay > 0 {
				select {
				case <-ctx.Done():
					c.Close()
					return
				case <-time.After(delay):
				}
			}
			r.long(ctx, t, c)
		}()
	}
	for i := 0; i < o.ShortConns && len(short) > 0 && dialErr == nil; i++ {
		t := short[i%len(short)]
		wg.Add(1)
		go func() { defer wg.Done(); r.short(ctx, t) }()
	}
	if dialErr != nil {
		cancel()
		wg.Wait()
		return nil, dialErr
	}
	progressDone := make(chan struct{})
	if o.Progress != nil {
		go func() { defer close(progressDone); r.progress(ctx) }()
	} else {
		close(progressDone)
	}
	wg.Wait()
	cancel()
	<-progressDone // no line after Run returns
	return r.report(), nil
}

func (o *Options) check() error {
	var errs []error
	if len(o.Targets) == 0 {
		errs = append(errs, errors.New("bench: no target"))
	}
	if o.Conns < 0 || o.ShortConns < 0 || o.Conns+o.ShortConns == 0 {
		errs = append(errs, errors.New("bench: no connection to drive"))
	}
	if o.InFlight < 1 {
		errs = append(errs, errors.New("bench: in-flight must be at least 1"))
	}
	if o.Rate > 1e7 {
		errs = append(errs, fmt.Errorf("bench: rate %.0f/s is beyond what one generator can schedule (10 million/s)", o.Rate))
	}
	if o.Duration <= 0 || o.Warmup < 0 || o.Rate < 0 || o.Ramp < 0 {
		errs = append(errs, errors.New("bench: duration must be positive, warmup, ramp and rate not negative"))
	}
	if len(o.Cards) == 0 {
		errs = append(errs, errors.New("bench: no card to use"))
	}
	total := 0
	for k, w := range o.Mix {
		if !slices.Contains(Kinds, k) {
			errs = append(errs, fmt.Errorf("bench: %q is not a kind of the mix (%v)", k, Kinds))
		}
		if w < 0 {
			errs = append(errs, fmt.Errorf("bench: weight %d of %s is negative", w, k))
		}
		total += w
	}
	if total <= 0 {
		errs = append(errs, errors.New("bench: the mix needs a positive weight"))
	}
	if o.Mix[Payment] > 0 && len(o.Payees) != len(o.Cards) {
		errs = append(errs, errors.New("bench: bill payments need a payee per card"))
	}
	if o.Mix[Transfer] > 0 && len(o.Accounts) != len(o.Cards) {
		errs = append(errs, errors.New("bench: transfers need an account per card to credit"))
	}
	return errors.Join(errs...)
}

// schedule emits the due time of every request of an open-loop run. It
// never waits for the connections: a request that finds no connection free
// waits in due, and its latency counts from when it was due.
func (r *run) schedule(ctx context.Context, began time.Time) {
	full := time.Duration(float64(time.Second) / r.o.Rate)
	// interval is the gap after a request due at t: during the ramp the
	// rate is Rate·t/Ramp (from at least one request a second).
	interval := func(t time.Time) time.Duration {
		into := t.Sub(began)
		if r.o.Ramp <= 0 || into >= r.o.Ramp {
			return full
		}
		rate := max(r.o.Rate*float64(into)/float64(r.o.Ramp), 1)
		return time.Duration(float64(time.Second) / rate)
	}
	next := began
	for {
		if wait := time.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		// Emit every request due by now (a late timer catches up).
		for now := time.Now(); !next.After(now); next = next.Add(interval(next)) {
			select {
			case r.due <- next:
			default:
				r.backlog.Add(1) // the generator itself cannot keep up: counted, never hidden
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func dial(ctx context.Context, t Target) (*front.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := front.Dial(dctx, t.Addr, t.TLS, front.ClientOptions{Dialect: t.Wire.Dialect, Framing: t.Wire.Framing, Header: t.Wire.Header})
	if err != nil {
		return nil, fmt.Errorf("bench: channel %s at %s: %w", t.Channel, t.Addr, err)
	}
	return c, nil
}

// pending is a request a long connection sent and waits for.
type pending struct {
	op   op
	from time.Time // sent (closed loop) or due (open loop)
}

// op is one request of the mix as a long connection builds it, and what
// its approval means for the card's ledger balance.
type op struct {
	kind   Kind
	card   int
	amount int64     // field 4
	effect int64     // taken off the ledger balance when approved
	orig   *original // the purchase or pre-authorisation it is, or refers to (field 90)
}

// original is a purchase or pre-authorisation a later request may refer
// to.
type original struct {
	mti    [4]byte
	stan   uint32
	when   time.Time
	card   int
	amount int64
}

// long drives one long connection: a writer keeps up to InFlight requests
// out, a reader matches answers by STAN.
func (r *run) long(ctx context.Context, t Target, c *front.Client) {
	defer c.Close()
	terminal := fmt.Sprintf("L%07d", r.terminal.Add(1)%10_000_000)
	credits := make(chan struct{}, r.o.InFlight)
	for range r.o.InFlight {
		credits <- struct{}{}
	}
	var mu sync.Mutex
	waiting := map[string]pending{}  // STAN → request
	var purchases, holds []*original // approved, not yet referred to
	done := make(chan struct{})
	go func() { // reader
		defer close(done)
		resp := codec.NewMessage(t.Wire.Dialect)
		for {
			if err := c.Receive(resp); err != nil {
				mu.Lock()
				lost := len(waiting)
				mu.Unlock()
				for range lost {
					r.record(result{err: NoAnswer})
				}
				return
			}
			mu.Lock()
			p, ok := waiting[string(resp.Get(11))]
			delete(waiting, string(resp.Get(11)))
			rc := approvalCode(resp)
			if ok && rc == codec.RCApproved && t.Wire.Outbound == nil {
				// Approved: later requests may refer to it.
				switch {
				case p.op.kind == Purchase && len(purchases) < 64:
					purchases = append(purchases, p.op.orig)
				case p.op.kind == PreAuth:
					holds = append(holds, p.op.orig)
				}
			}
			mu.Unlock()
			if !ok {
				r.record(result{err: "answer to no request (unknown STAN)"})
				continue
			}
			r.record(result{kind: p.op.kind, card: p.op.card, amount: p.op.effect, latency: time.Since(p.from), rc: rc})
			credits <- struct{}{}
		}
	}()
	built, req := codec.NewMessage(codec.ISO87ASCII()), codec.NewMessage(t.Wire.Dialect)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(len(terminal))))
	stan := uint32(0)
	var saved codec.Saved
send:
	for {
		var from time.Time
		select {
		case <-ctx.Done():
			break send
		case <-credits:
		}
		if r.due != nil {
			select {
			case <-ctx.Done():
				break send
			case from = <-r.due:
			}
		} else {
			from = time.Now()
		}
		stan = stan%999999 + 1
		kind, card := r.pick(rng)
		mu.Lock()
		o := r.next(t, kind, card, &purchases, &holds)
		mu.Unlock()
		err := r.buildOp(t, o, stan, terminal, from, built, req, &saved)
		if err == nil {
			mu.Lock()
			waiting[fmt.Sprintf("%06d", stan)] = pending{op: o, from: from}
			mu.Unlock()
			r.sent.Add(1)
			err = c.Send(req)
		}
		if err != nil {
			mu.Lock()
			delete(waiting, fmt.Sprintf("%06d", stan)) // not sent: counted here, not again as unanswered
			mu.Unlock()
			r.record(result{err: errorKind("send", err)})
			break
		}
	}
	// Give the answers in flight up to two seconds, then close: what is
	// still unanswered is counted as lost.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(waiting)
		mu.Unlock()
		if n == 0 {
			break
		}
	}
	c.Close()
	<-done
}

// short drives one short-connection loop: a new connection per
// transaction, resuming the TLS session when the server allows.
func (r *run) short(ctx context.Context, t Target) {
	terminal := fmt.Sprintf("S%07d", r.terminal.Add(1)%10_000_000)
	built, req := codec.NewMessage(codec.ISO87ASCII()), codec.NewMessage(t.Wire.Dialect)
	resp := codec.NewMessage(t.Wire.Dialect)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var saved codec.Saved
	for stan := uint32(1); ctx.Err() == nil; stan = stan%999999 + 1 {
		from := time.Now()
		if r.due != nil {
			select {
			case <-ctx.Done():
				return
			case from = <-r.due:
			}
		}
		// One request per connection: no completion or refund can follow
		// on it, so those kinds go as purchases.
		kind, card := r.pick(rng)
		if kind == PreAuth {
			kind = Purchase
		}
		o := r.next(t, kind, card, new([]*original), new([]*original))
		if err := r.buildOp(t, o, stan, terminal, from, built, req, &saved); err != nil {
			r.record(result{err: errorKind("build", err)})
			return
		}
		c, err := dial(ctx, t)
		if err != nil {
			if ctx.Err() == nil {
				r.record(result{err: errorKind("dial", err)})
				select { // a server that refuses is not hammered
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
			continue
		}
		if c.ConnectionState().DidResume {
			r.resumed.Add(1)
		}
		r.sent.Add(1)
		r.shortTx.Add(1)
		// The answer may arrive after the run's end: wait for it a little,
		// not for the whole run's context.
		xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = c.Exchange(xctx, req, resp)
		cancel()
		c.Close()
		if err != nil {
			r.record(result{err: errorKind("short exchange", err)})
			continue
		}
		r.record(result{kind: o.kind, card: o.card, amount: o.effect, latency: time.Since(from), rc: approvalCode(resp)})
	}
}

// pick draws a kind from the mix and a card: the hot one with HotShare,
// else any.
func (r *run) pick(rng *rand.Rand) (Kind, int) {
	kind := r.kinds[rng.IntN(len(r.kinds))]
	card := 0
	if len(r.o.Cards) > 1 && rng.Float64() >= r.o.HotShare {
		card = rng.IntN(len(r.o.Cards))
	}
	return kind, card
}

// build makes req the request tx in the target's dialect: built in 1987
// terms, through the channel's map when its layout differs (1993).
func (r *run) build(t Target, tx front.Txn, built, req *codec.Message, saved *codec.Saved) error {
	if t.Wire.Outbound == nil {
		return tx.Build(t.Wire.Dialect, req)
	}
	if err := tx.Build(built.Dialect(), built); err != nil {
		return err
	}
	return t.Wire.Outbound.Request(req, built, &codec.Context{Now: tx.Time}, saved)
}

// approvalCode is the answer's response code in 1987 terms: a 1993
// channel's action code 000 is an approval like 00.
func approvalCode(resp *codec.Message) string {
	rc := string(resp.Get(39))
	if rc == "000" {
		return codec.RCApproved
	}
	return rc
}

// record counts one result, if it falls in the measured part of the run.
func (r *run) record(res result) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if res.rc == codec.RCApproved {
		// Every approval counts for the audit, warmup included: the
		// ledger booked it either way.
		r.approved[res.card] += res.amount
	}
	if now.Before(r.start) {
		return
	}
	if res.err != "" {
		r.errors[res.err]++
		return
	}
	r.codes[res.rc]++
	r.hist.record(res.latency)
	if s := int(now.Sub(r.start) / time.Second); s < len(r.seconds) {
		if s != r.current {
			r.closeSecond()
			r.current = s
		}
		r.seconds[s].Answered++
		r.curHist.record(res.latency)
	}
}

// progress prints a line a second: elapsed, rate, p99 so far, errors.
func (r *run) progress(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			r.mu.Lock()
			el := now.Sub(r.start)
			var answered, errs int64
			for _, n := range r.codes {
				answered += n
			}
			for _, n := range r.errors {
				errs += n
			}
			p99 := r.hist.quantile(0.99)
			r.mu.Unlock()
			if el < 0 {
				fmt.Fprintf(r.o.Progress, "warming up … %s left\n", (-el).Round(time.Second))
				continue
			}
			fmt.Fprintf(r.o.Progress, "%5.0fs  %8.0f req/s  p99 %s  errors %d\n",
				el.Seconds(), float64(answered)/max(el.Seconds(), 1e-9), us(p99), errs)
		}
	}
}

func us(v int64) string { return (time.Duration(v) * time.Microsecond).String() }

// codesSorted lists response codes by count, most first.
func codesSorted(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

// next is the op a long connection sends for a drawn kind and card: a
// completion owed first; a refund or reversal of a purchase it had
// approved (a purchase while there is none); anything but purchases and
// inquiries only where no conversion map stands between.
func (r *run) next(t Target, kind Kind, card int, purchases, holds *[]*original) op {
	if len(*holds) > 0 {
		h := (*holds)[0]
		*holds = (*holds)[1:]
		return op{kind: completion, card: h.card, amount: h.amount, effect: h.amount, orig: h}
	}
	if t.Wire.Outbound != nil && kind != Balance {
		kind = Purchase
	}
	if (kind == Refund || kind == Reversal) && len(*purchases) == 0 {
		kind = Purchase
	}
	a := r.o.Amount
	switch kind {
	case Purchase:
		return op{kind: kind, card: card, amount: a, effect: a, orig: &original{mti: [4]byte{'0', '2', '0', '0'}, card: card, amount: a}}
	case PreAuth:
		return op{kind: kind, card: card, amount: a, orig: &original{mti: [4]byte{'0', '1', '0', '0'}, card: card, amount: a}}
	case Refund, Reversal:
		p := (*purchases)[0]
		*purchases = (*purchases)[1:]
		return op{kind: kind, card: p.card, amount: p.amount, effect: -p.amount, orig: p}
	case TopUp:
		return op{kind: kind, card: card, amount: a, effect: -a}
	case Payment, Transfer:
		return op{kind: kind, card: card, amount: a, effect: a}
	}
	return op{kind: Balance, card: card}
}

// buildOp makes req the message of o: a 0200 of o's processing code, an
// 0100, an 0220 completion or an 0420 reversal, with field 90 naming the
// original where there is one. For a purchase or pre-authorisation it
// notes the STAN and time a later request will name it by.
func (r *run) buildOp(t Target, o op, stan uint32, terminal string, at time.Time, built, req *codec.Message, saved *codec.Saved) error {
	tx := front.Txn{PAN: r.o.Cards[o.card], Currency: r.o.Currency, STAN: stan, Terminal: terminal,
		Merchant: "JUNCTION BENCH", Time: at, Amount: o.amount, Type: codec.TxPurchase}
	mti := [4]byte{'0', '2', '0', '0'}
	switch o.kind {
	case Balance:
		tx.Type, tx.Amount = codec.TxBalance, 0
	case PreAuth:
		mti = [4]byte{'0', '1', '0', '0'}
	case completion:
		mti = [4]byte{'0', '2', '2', '0'}
	case Refund:
		tx.Type = codec.TxRefund
	case Reversal:
		mti = [4]byte{'0', '4', '2', '0'}
	case TopUp:
		tx.Type = codec.TxDeposit
	case Payment:
		tx.Type = codec.TxPayment
	case Transfer:
		tx.Type = codec.TxTransfer
	}
	if err := r.build(t, tx, built, req, saved); err != nil {
		return err
	}
	if o.kind == Purchase || o.kind == PreAuth {
		o.orig.stan, o.orig.when = stan, at
	}
	if t.Wire.Outbound != nil {
		return nil // a converted channel gets purchases and inquiries only
	}
	if err := req.SetMTI(mti); err != nil {
		return err
	}
	switch o.kind {
	case Payment:
		if err := req.SetString(103, r.o.Payees[o.card]); err != nil {
			return err
		}
	case Transfer:
		if err := req.SetString(103, r.o.Accounts[o.card]); err != nil {
			return err
		}
	}
	if p := o.orig; p != nil && o.kind != Purchase && o.kind != PreAuth {
		// Field 90: original MTI, STAN, transmission time, acquirer (zeros:
		// the request's own), forwarding institution.
		f := fmt.Sprintf("%s%06d%s%011d%011d", p.mti[:], p.stan, p.when.UTC().Format("0102150405"), 0, 0)
		if err := req.SetString(90, f); err != nil {
			return err
		}
	}
	return nil
}

// errorKind names an error for the report by what went wrong, not by its
// text, which carries addresses and ports: one line per kind, however many
// connections fail.
func errorKind(stage string, err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return stage + ": timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return stage + ": connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return stage + ": connection closed by the switch"
	case errors.Is(err, front.ErrNoMatch):
		return stage + ": no matching answer"
	}
	// Something else: its text, with digits (addresses, ports) masked so
	// that it names a kind, not a connection.
	msg := []byte(err.Error())
	for i, c := range msg {
		if c >= '0' && c <= '9' {
			msg[i] = '#'
		}
	}
	return stage + ": " + string(msg[:min(len(msg), 100)])
}

// closeSecond sets the p99 of the second curHist holds and empties it.
// r.mu is held.
func (r *run) closeSecond() {
	if r.curHist.total > 0 && r.current < len(r.seconds) {
		r.seconds[r.current].P99us = r.curHist.quantile(0.99)
	}
	r.curHist = histogram{}
}
