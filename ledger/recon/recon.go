package recon

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
)

// Books is where corrections and batch debits are booked: the shards, in-process or remote,
// routed by region.
type Books interface {
	// Locate returns the region of the shard that holds the account with card number or account
	// or phone number ref. An unknown ref is an error wrapping ledger.ErrNotFound.
	Locate(ref string) (region string, err error)
	Adjust(ctx context.Context, region string, a ledger.Adjustment) (ledger.Result, error)
	Do(ctx context.Context, region string, r *ledger.Request) (ledger.Result, error)
}

// Detail is the head ledger's detail view (head.Head implements it).
type Detail interface {
	Entries(q head.Query) ([]head.Entry, error)
}

// Config is what Reconcile and BatchDebit need.
type Config struct {
	Head  Detail // DZ: the ledger entries to match against
	Books Books
	// Partners maps a file's organisation (ORG) to the acquirer id (field 32) its transactions
	// carry in the ledger. DZ needs the mapping; DKKK annotates its payments with it if present.
	Partners        map[string]string
	AmountTolerance int64  // minor units: amounts this close are matched
	DateTolerance   int    // days: ledger entries this many days either side of a record's date are candidates
	Registry        string // directory of the registry of ingested files
	Output          string // directory the reports (DZ) and response files (DKKK) are written to
	Logger          *slog.Logger
}

func (c *Config) check(needHead bool) error {
	var errs []error
	if c.Books == nil {
		errs = append(errs, errors.New("Books is nil"))
	}
	if needHead && c.Head == nil {
		errs = append(errs, errors.New("Head is nil"))
	}
	if c.Registry == "" {
		errs = append(errs, errors.New("Registry (directory) is empty"))
	}
	if c.Output == "" {
		errs = append(errs, errors.New("Output (directory) is empty"))
	}
	if c.AmountTolerance < 0 || c.DateTolerance < 0 || c.DateTolerance > 31 {
		errs = append(errs, fmt.Errorf("tolerances %d minor units, %d days: want ≥ 0 and at most 31 days", c.AmountTolerance, c.DateTolerance))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// ingest is the part of both file kinds before anything runs: the name, the registry, the file's
// bytes and their split into records.
type ingest struct {
	name Name
	data []byte
	sum  string
	raw  *rawFile
}

// open reads and checks the file at path, which must be of interface iface. A replay is returned
// as a report; a file-level problem as an error.
func open(path, iface string, c *Config) (*ingest, *Report, error) {
	n, err := ParseName(path)
	if err != nil {
		return nil, nil, err
	}
	if n.Iface != iface {
		return nil, nil, fmt.Errorf("%w: %s is a %s file, not %s", ErrName, n, n.Iface, iface)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("recon: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, nil, fmt.Errorf("recon: read %s: %w", path, err)
	}
	if len(data) > maxFile {
		return nil, nil, &LineError{File: n.String(), Reason: fmt.Sprintf("larger than %d bytes", maxFile)}
	}
	in := &ingest{name: n, data: data, sum: digestOf(data)}
	if rep, err := (registry{c.Registry}).check(n.String(), in.sum); err != nil || rep != nil {
		return nil, rep, err
	}
	if in.raw, err = splitFile(n, data); err != nil {
		return nil, nil, err
	}
	return in, nil, nil
}

// Reconcile ingests the partner's reconciliation file (DZ) at path and books a correction for
// every break, as the package documentation describes. The whole file is checked before anything
// is looked up or booked. The same file again returns the stored report (Replayed) and books
// nothing; another file under the same name is refused (ErrDuplicate).
func Reconcile(ctx context.Context, path string, c Config) (Report, error) {
	if err := c.check(true); err != nil {
		return Report{}, err
	}
	log := c.logger().With("component", "recon", "file", filepath.Base(path))
	in, replay, err := open(path, IfaceRecon, &c)
	if replay != nil {
		log.Info("reconciliation file already ingested: stored report", "breaks", len(replay.Breaks))
		return *replay, nil
	}
	if err != nil {
		log.Warn("reconciliation file refused", "err", err)
		return Report{}, err
	}
	recs, err := decodeRecon(in.raw)
	if err != nil {
		log.Warn("reconciliation file refused", "err", err)
		return Report{}, err
	}
	acq, ok := c.Partners[in.name.Org]
	if !ok || acq == "" {
		return Report{}, fmt.Errorf("%w: no acquirer for organisation %s in Partners", ErrConfig, in.name.Org)
	}
	rep := Report{File: in.name.String(), SHA256: in.sum, Encoding: in.raw.enc.String(), Date: in.name.Date,
		Acquirer: acq, Records: len(recs)}
	if err := ready(in.name.Date, &c); err != nil {
		log.Warn("reconciliation file not ingested yet", "err", err)
		return Report{}, err
	}

	cands, err := candidates(in.name, acq, &c)
	if err != nil {
		return Report{}, err
	}
	breaks := match(&rep, recs, cands, in.name.Date, &c)
	incomplete := 0
	for i := range breaks {
		correct(ctx, &breaks[i], in.name.String(), &c)
		if breaks[i].Error != "" {
			incomplete++
		}
	}
	rep.Breaks = breaks
	if incomplete > 0 {
		log.Warn("reconciliation incomplete: corrections not booked", "failed", incomplete, "breaks", len(breaks))
		return rep, fmt.Errorf("%w: %d of %d corrections of %s failed; ingest it again", ErrIncomplete, incomplete, len(breaks), rep.File)
	}
	out := filepath.Join(c.Output, in.name.String()[:len(in.name.String())-len(".txt")]+".report.csv")
	if err := writeAtomic(out, reconReport(&rep)); err != nil {
		return rep, err
	}
	rep.Output = out
	if err := (registry{c.Registry}).store(&rep); err != nil {
		return rep, err
	}
	log.Info("reconciled", "records", len(recs), "matched", rep.Count(Matched), "partner_only", rep.Count(PartnerOnly),
		"ledger_only", rep.Count(LedgerOnly), "mismatch", rep.Count(Mismatch), "report", out)
	return rep, nil
}

// ready refuses (ErrNotReady) while the head may still lack entries of the file's days: the file's
// date plus the date tolerance must have ended before the head's MergedThrough, when the head
// tells it. A Detail without MergedThrough is taken as complete.
func ready(date uint32, c *Config) error {
	m, ok := c.Head.(interface{ MergedThrough() time.Time })
	if !ok {
		return nil
	}
	need := dayOf(addDays(date, c.DateTolerance+1)) // the end of the last day the file's records may match
	if got := m.MergedThrough(); got.Before(need) {
		return fmt.Errorf("%w: the file's records match entries up to %s, the head holds every entry up to %s",
			ErrNotReady, need.Format(time.RFC3339), got.UTC().Format(time.RFC3339))
	}
	return nil
}

// candidate is a ledger entry a partner record may match.
type candidate struct {
	head.Entry
	dir  Direction
	date uint32
	used bool
}

// direction says what a journal entry did to the customer, as a partner's record would: 0 for
// entries that are not customer debits or refunds (holds, voids, expiries, deposits,
// adjustments, and reversals of deposits).
func direction(t *ledger.Transfer) Direction {
	switch t.Kind {
	case ledger.KindPurchase, ledger.KindStandIn, ledger.KindPost, ledger.KindPayment, ledger.KindTransfer:
		return Debited
	case ledger.KindRefund:
		return Refunded
	case ledger.KindReversal:
		if t.Credit == ledger.FundingID { // a top-up given back: not a customer debit undone
			return 0
		}
		return Refunded
	}
	return 0
}

// customer returns the customer account an entry debited or credited.
func (c *candidate) customer() uint64 {
	if c.dir == Debited {
		return c.Debit
	}
	return c.Credit
}

// candidates returns the acquirer's ledger entries from the file's date less the date tolerance
// to its date plus it, without those that the files of neighbouring dates already accounted for.
func candidates(n Name, acq string, c *Config) ([]*candidate, error) {
	taken := make(map[EntryRef]bool)
	for d := -c.DateTolerance; d <= c.DateTolerance; d++ {
		if d == 0 {
			continue
		}
		other := n
		other.Date = addDays(n.Date, d)
		r, ok, err := (registry{c.Registry}).lookup(other.String())
		if err != nil {
			return nil, err
		}
		if ok {
			for _, e := range r.Report.Consumed {
				taken[e] = true
			}
		}
	}
	var out []*candidate
	for d := -c.DateTolerance; d <= c.DateTolerance; d++ {
		date := addDays(n.Date, d)
		es, err := c.Head.Entries(head.Query{Date: date, Acquirer: acq})
		if err != nil {
			return nil, fmt.Errorf("recon: head entries of %08d for acquirer %s: %w", date, acq, err)
		}
		for _, e := range es {
			dir := direction(&e.Transfer)
			if dir == 0 || taken[EntryRef{e.Region, e.Seq}] {
				continue
			}
			out = append(out, &candidate{Entry: e, dir: dir, date: dateOf(time.Unix(0, e.Time))})
		}
	}
	return out, nil
}

// match pairs each partner record with at most one candidate, counts the classes into rep and
// returns the breaks, corrections not yet booked.
//
// A record's candidates are the unused entries with its RRN, direction and currency, whose STAN
// is the record's when both have one, and whose date is within the date tolerance of the
// record's; among them the one with the closest amount wins (the earliest on a tie). Entries
// dated on the file's date that no record took are ledger-only; those dated on other days are
// left to the files of their own dates.
func match(rep *Report, recs []Record, cands []*candidate, date uint32, c *Config) []Break {
	type key struct {
		rrn string
		dir Direction
	}
	byKey := make(map[key][]*candidate)
	for _, cd := range cands {
		k := key{cd.RRN, cd.dir}
		byKey[k] = append(byKey[k], cd)
	}
	var breaks []Break
	for i := range recs {
		r := &recs[i]
		var best *candidate
		for _, cd := range byKey[key{r.RRN, r.Direction}] {
			if cd.used || cd.Currency != r.Currency || r.STAN != "" && cd.STAN != "" && !sameSTAN(r.STAN, cd.STAN) ||
				daysApart(r.Date, cd.date) > c.DateTolerance {
				continue
			}
			if best == nil || abs(cd.Amount-r.Amount) < abs(best.Amount-r.Amount) {
				best = cd
			}
		}
		b := Break{Line: r.Line, Direction: r.Direction, RRN: r.RRN, STAN: r.STAN, Account: Mask(r.Account),
			Currency: r.Currency, Partner: r.Amount, account: r.Account}
		if best == nil {
			b.Class = PartnerOnly
			b.Amount = r.Amount
			b.Credit = r.Direction == Refunded
			rep.add(PartnerOnly, r.Currency, r.Amount)
			breaks = append(breaks, b)
			continue
		}
		best.used = true
		rep.Consumed = append(rep.Consumed, EntryRef{best.Region, best.Seq})
		diff := r.Amount - best.Amount
		if abs(diff) <= c.AmountTolerance {
			rep.add(Matched, r.Currency, r.Amount)
			continue
		}
		b.Class = Mismatch
		b.Region, b.Seq, b.Ledger = best.Region, best.Seq, best.Amount
		b.Amount = abs(diff)
		// The partner debited more than we did, or refunded less: debit the difference.
		b.Credit = (r.Direction == Debited) != (diff > 0)
		b.ref = refOf(best)
		rep.add(Mismatch, r.Currency, r.Amount)
		breaks = append(breaks, b)
	}
	for _, cd := range cands {
		if cd.used || cd.date != date {
			continue
		}
		rep.Consumed = append(rep.Consumed, EntryRef{cd.Region, cd.Seq})
		rep.add(LedgerOnly, cd.Currency, cd.Amount)
		breaks = append(breaks, Break{Class: LedgerOnly, Direction: cd.dir, RRN: cd.RRN, STAN: cd.STAN,
			Account: "account " + strconv.FormatUint(cd.customer(), 10), Region: cd.Region, Seq: cd.Seq,
			Currency: cd.Currency, Ledger: cd.Amount, Amount: cd.Amount,
			// We debited what the partner never did: credit it back; we refunded what the partner
			// never refunded: debit it again.
			Credit: cd.dir == Debited, ref: refOf(cd)})
	}
	return breaks
}

// ledgerRef is what a correction of a ledger-side break needs to know of the entry.
type ledgerRef struct {
	account  uint64
	acquirer string
	merchant string
}

func refOf(cd *candidate) *ledgerRef {
	return &ledgerRef{account: cd.customer(), acquirer: cd.Acquirer, merchant: cd.Merchant}
}

// correct books b's correction and records the outcome in b. The TxID is derived from the file
// name and the break, so booking it again (a re-run after ErrIncomplete) replays.
func correct(ctx context.Context, b *Break, file string, c *Config) {
	disc := b.STAN // partner-only: the record's RRN, STAN and type are unique in the file
	if b.Seq != 0 {
		disc = b.Region + "/" + strconv.FormatUint(b.Seq, 10) // ledger-side: the entry itself
	}
	a := ledger.Adjustment{
		ID: ledger.NewTxID([]byte("recon"), []byte(file), []byte(b.RRN), []byte(b.Direction.String()),
			[]byte(b.Class), []byte(disc)),
		Credit: b.Credit, Amount: b.Amount, Currency: b.Currency, Original: b.Seq, STAN: b.STAN, RRN: b.RRN,
	}
	region := b.Region
	if b.ref != nil {
		a.Account, a.Acquirer, a.Merchant = b.ref.account, b.ref.acquirer, b.ref.merchant
	} else {
		var err error
		if region, err = c.Books.Locate(b.account); err != nil {
			if errors.Is(err, ledger.ErrNotFound) {
				b.Code = ledger.UnknownCard // permanent: an operator has to look at it
				return
			}
			b.Error = err.Error()
			return
		}
		b.Region = region
		if isPAN(b.account) {
			a.PAN = b.account
		} else {
			a.Number = b.account
		}
	}
	res, err := c.Books.Adjust(ctx, region, a)
	if err != nil {
		b.Error = err.Error()
		return
	}
	b.Code = res.Code
}

// reconReport renders the report file: a CSV of the totals per class and currency, then one row
// per break.
func reconReport(rep *Report) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"file", rep.File, "sha256", rep.SHA256, "date", fmt.Sprintf("%08d", rep.Date), "acquirer", rep.Acquirer, "records", strconv.Itoa(rep.Records)})
	w.Write([]string{"class", "currency", "count", "amount"})
	for _, t := range rep.Totals {
		w.Write([]string{string(t.Class), fmt.Sprintf("%03d", t.Currency), strconv.Itoa(t.Count), formatMajor(t.Amount, t.Currency)})
	}
	w.Write([]string{"class", "line", "type", "rrn", "stan", "account", "region", "seq", "currency", "partner", "ledger", "correction", "code"})
	for _, b := range rep.Breaks {
		corr := "debit " + formatMajor(b.Amount, b.Currency)
		if b.Credit {
			corr = "credit " + formatMajor(b.Amount, b.Currency)
		}
		w.Write([]string{string(b.Class), strconv.Itoa(b.Line), b.Direction.String(), b.RRN, b.STAN, b.Account, b.Region,
			strconv.FormatUint(b.Seq, 10), fmt.Sprintf("%03d", b.Currency), formatMajor(b.Partner, b.Currency),
			formatMajor(b.Ledger, b.Currency), corr, string(b.Code)})
	}
	w.Flush()
	return buf.Bytes()
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func daysApart(a, b uint32) int {
	d := dayOf(a).Sub(dayOf(b)) / (24 * time.Hour)
	if d < 0 {
		d = -d
	}
	return int(d)
}

// sameSTAN compares STANs as numbers: a partner may drop or keep leading zeros.
func sameSTAN(a, b string) bool {
	x, err1 := strconv.Atoi(a)
	y, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return x == y
}
