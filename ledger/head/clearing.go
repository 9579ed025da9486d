package head

import (
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/shopspring/decimal"

	"github.com/junction-switch/junction/ledger"
)

// ErrClearing is returned by Settle for a Clearing it cannot apply: a rate outside [0, 1), a
// negative fixed fee or one finer than the currency's minor unit, a duplicate institution, text
// that would break a file line, no output directory, or a currency it does not know.
var ErrClearing = errors.New("head: bad clearing")

// Clearing is what Settle needs beyond the ledger: who the institutions are and what merchants pay.
type Clearing struct {
	Institutions []Institution
	Fees         Fees
	Out          string // directory the files are written to; created if missing
}

// Institution is an acquiring institution: its acquirer code (field 32), name and the bank
// account its settlement is paid to or collected from.
type Institution struct {
	ID      string
	Name    string
	Account string
}

// Fees are the merchant fees: Merchants by merchant id (field 42), Default for the others.
type Fees struct {
	Default   Fee
	Merchants map[string]Fee
}

// Fee is a merchant's fee schedule: a discount rate on the gross amount of each kind (a fraction,
// e.g. 0.0038) and a fixed fee per transaction of a kind, in major units (a kind not listed has
// none).
type Fee struct {
	Rate  decimal.Decimal
	Fixed map[ledger.Kind]decimal.Decimal
}

// Settlement is the stored result of clearing a window.
type Settlement struct {
	Window       uint32
	Date         uint32         // the window's settlement date, YYYYMMDD
	Settled      int64          // unix nanoseconds (head clock)
	Institutions []Position     // by currency, then institution id
	Merchants    []MerchantLine // by currency, institution, merchant, kind
	Files        []string       // base names of the files written into Clearing.Out
}

// Position is an institution's net position of a window in one currency. Amounts are minor units.
type Position struct {
	ID, Name, Account string // Name and Account "" for an institution Clearing does not list
	Currency          uint16
	Fees              int64 // merchant fees the institution's merchants pay (negative: returned)
	Net               int64 // > 0: the platform pays the institution; < 0: the institution pays the platform
}

// Direction is PAY when the platform pays the institution (Net ≥ 0), RECEIVE when it collects.
func (p Position) Direction() string {
	if p.Net < 0 {
		return "RECEIVE"
	}
	return "PAY"
}

// MerchantLine is one merchant's clearing of one kind of flow in a window. Gross carries the
// flow's sign (refunds and reversals negative, top-ups negative); Net = Gross − Fee.
type MerchantLine struct {
	Merchant    string
	Institution string
	Kind        string // the entry kind, or "deposit_reversal" for a reversal of a top-up
	Currency    uint16
	Count       uint64
	Gross       int64
	Fee         int64
	Net         int64
}

// FeeIncome is the head's own GL account (h/ keys) that fee postings credit.
const FeeIncome = "fee_income"

// InstitutionAccount is the head GL account that fee postings debit for institution id.
func InstitutionAccount(id string) string { return "institution/" + id }

// flow is what clearing keys its aggregates by: an entry kind, or flowDepositReversal.
type flow uint8

const flowDepositReversal flow = 0x80 | flow(ledger.KindDeposit)

func (f flow) String() string {
	if f == flowDepositReversal {
		return "deposit_reversal"
	}
	return ledger.Kind(f).String()
}

// sign returns f's sign (+1: owed by the platform to the acquirer, −1: the other way) and
// whether it is a merchant flow (fees apply).
func (f flow) sign() (sign int64, merchant bool) {
	switch ledger.Kind(f) {
	case ledger.KindPurchase, ledger.KindStandIn, ledger.KindPost, ledger.KindPayment:
		return 1, true
	case ledger.KindRefund, ledger.KindReversal:
		return -1, true
	case ledger.KindDeposit:
		return -1, false
	}
	return 1, false // flowDepositReversal
}

func clearingKey(window uint32, acquirer, merchant string, currency uint16, f flow) []byte {
	return appendClearingKey(nil, window, acquirer, merchant, currency, f)
}

func appendClearingKey(dst []byte, window uint32, acquirer, merchant string, currency uint16, f flow) []byte {
	k := binary.BigEndian.AppendUint32(append(dst, prefixClearing...), window)
	k = appendStr(appendStr(k, acquirer), merchant)
	k = binary.BigEndian.AppendUint16(k, currency)
	return append(k, byte(f))
}

// flowOf classifies an entry for clearing; 0 for entries clearing ignores (holds, voids, expiries,
// transfers and their reversals, adjustments). A reversal takes its class from its original:
// batch is this batch's entries (in sequence, without gaps), the detail has the earlier ones.
func (h *Head) flowOf(txn *badger.Txn, region string, e *ledger.Transfer, batch []ledger.Transfer) (flow, error) {
	switch e.Kind {
	case ledger.KindPurchase, ledger.KindStandIn, ledger.KindPost, ledger.KindPayment, ledger.KindRefund,
		ledger.KindDeposit:
		return flow(e.Kind), nil
	case ledger.KindReversal:
	default:
		return 0, nil
	}
	var orig ledger.Kind
	ok := false
	if first := batch[0].Seq; e.Original >= first && e.Original <= e.Seq {
		orig, ok = batch[e.Original-first].Kind, true
	}
	if !ok {
		item, err := txn.Get(detailKey(region, e.Original))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return 0, err
		default:
			var t ledger.Transfer
			if err := item.Value(func(v []byte) error { t, err = decodeDetail(v); return err }); err != nil {
				return 0, err
			}
			orig, ok = t.Kind, true
		}
	}
	if !ok {
		// Only a reversal of a top-up credits the funding account.
		h.log.Warn("head: reversal of an entry the head has no detail of", "region", region, "seq", e.Seq,
			"original", e.Original)
		if e.Credit == ledger.FundingID {
			return flowDepositReversal, nil
		}
		return flow(ledger.KindReversal), nil
	}
	switch orig {
	case ledger.KindDeposit:
		return flowDepositReversal, nil
	case ledger.KindTransfer:
		return 0, nil
	}
	return flow(ledger.KindReversal), nil
}

func settlementKey(n uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(prefixSettlement), n)
}

func headGLKey(account string, currency uint16) []byte {
	return binary.BigEndian.AppendUint16(appendRegion(nil, prefixHeadGL, account), currency)
}

// HeadAccount returns the totals of one of the head's own GL accounts (FeeIncome,
// InstitutionAccount(id)), one per currency.
func (h *Head) HeadAccount(name string) ([]Total, error) {
	if name == "" || len(name) > 255 {
		return nil, fmt.Errorf("head: account name %q", name)
	}
	return h.scan(appendRegion(nil, prefixHeadGL, name))
}

// Settle clears window n, which must be closed: per merchant, institution, currency and kind it
// takes the count and gross of the window's entries, charges the merchant's fees, nets each
// institution's position, books the fees (debit InstitutionAccount, credit FeeIncome, per
// institution and currency) and stores the Settlement, moving the window to settled, all in one
// transaction; then it writes the files into c.Out. On a window already settled it returns the
// stored Settlement and writes those of its files that are missing, identically. The rules,
// signs and rounding are in the package documentation.
func (h *Head) Settle(n uint32, c Clearing) (Settlement, error) {
	if err := checkClearing(&c); err != nil {
		h.log.Warn("head: clearing refused", "window", n, "err", err)
		return Settlement{}, err
	}
	s, fresh, err := h.settle(n, &c)
	if err != nil {
		h.log.Warn("head: settle refused", "window", n, "err", err)
		return Settlement{}, err
	}
	if err := writeFiles(&s, c.Out, fresh); err != nil {
		return s, fmt.Errorf("head: window %d settled, files: %w", n, err)
	}
	return s, nil
}

func checkClearing(c *Clearing) error {
	var errs []error
	bad := func(f string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+f, append([]any{ErrClearing}, a...)...))
	}
	if c.Out == "" {
		bad("Out is empty")
	}
	seen := make(map[string]bool)
	for i, in := range c.Institutions {
		if seen[in.ID] {
			bad("institution %d: id %q listed twice", i, in.ID)
		}
		seen[in.ID] = true
		for _, s := range [...]string{in.ID, in.Name, in.Account} {
			if strings.ContainsAny(s, "|\r\n") {
				bad("institution %d (%s): text with | or a line break", i, in.ID)
			}
		}
	}
	checkFee := func(who string, f Fee) {
		if f.Rate.IsNegative() || f.Rate.GreaterThanOrEqual(decimal.NewFromInt(1)) {
			bad("%s: rate %s outside [0, 1)", who, f.Rate)
		}
		for k, v := range f.Fixed {
			if v.IsNegative() {
				bad("%s: fixed fee of %s %s is negative", who, k, v)
			}
		}
	}
	checkFee("default fee", c.Fees.Default)
	for m, f := range c.Fees.Merchants {
		checkFee("merchant "+m, f)
	}
	return errors.Join(errs...)
}

// settle is Settle's transaction; fresh is true when it settled the window now.
func (h *Head) settle(n uint32, c *Clearing) (Settlement, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return Settlement{}, false, ErrClosed
	}
	w, ok := h.windows[n]
	if !ok {
		return Settlement{}, false, fmt.Errorf("%w %d: none", ErrWindow, n)
	}
	if w.State == StateSettled {
		var s Settlement
		err := h.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(settlementKey(n))
			if err != nil {
				return err
			}
			return item.Value(func(v []byte) error { return decodeJSON("settlement", v, &s) })
		})
		return s, false, err
	}
	if w.State != StateClosed {
		return Settlement{}, false, fmt.Errorf("%w %d is %s, not closed", ErrWindow, n, w.State)
	}
	now := h.clock().UnixNano()
	var s Settlement
	settled := copyWindow(w)
	settled.State, settled.Settled = StateSettled, now
	err := h.db.Update(func(txn *badger.Txn) error {
		var err error
		if s, err = h.clear(txn, w, c); err != nil {
			return err
		}
		s.Settled = now
		ts := newTotals(txn)
		for _, p := range s.Institutions {
			if p.Fees == 0 {
				continue
			}
			inst, err := ts.load(headGLKey(InstitutionAccount(p.ID), p.Currency), Total{Currency: p.Currency})
			if err != nil {
				return err
			}
			fee, err := ts.load(headGLKey(FeeIncome, p.Currency), Total{Currency: p.Currency})
			if err != nil {
				return err
			}
			dr, cr := inst, fee
			amount := p.Fees
			if amount < 0 { // fees returned: the other way round
				dr, cr, amount = fee, inst, -amount
			}
			if !add(&dr.Debits, amount) || !add(&cr.Credits, amount) {
				return fmt.Errorf("head: window %d: fee posting overflows", n)
			}
			dr.Entries++
			cr.Entries++
		}
		if err := ts.write(newBatch(txn, 0, 0)); err != nil {
			return err
		}
		if err := txn.Set(settlementKey(n), appendJSON(nil, &s)); err != nil {
			return err
		}
		return putWindow(txn, &settled)
	})
	if err != nil {
		return Settlement{}, false, fmt.Errorf("head: settle window %d: %w", n, err)
	}
	h.windows[n] = &settled
	h.log.Info("head: window settled", "window", n, "date", w.Date, "institutions", len(s.Institutions),
		"merchant lines", len(s.Merchants))
	return s, true, nil
}

// clear computes the Settlement of window w from its clearing aggregates.
func (h *Head) clear(txn *badger.Txn, w *Window, c *Clearing) (Settlement, error) {
	s := Settlement{Window: w.Number, Date: w.Date}
	insts := make(map[string]Institution, len(c.Institutions))
	for _, in := range c.Institutions {
		insts[in.ID] = in
	}
	type posKey struct {
		currency uint16
		id       string
	}
	pos := make(map[posKey]*Position)
	prefix := binary.BigEndian.AppendUint32([]byte(prefixClearing), w.Number)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
		k := it.Item().Key()
		acq, merchant, currency, f, err := parseClearingKey(k)
		if err != nil {
			return s, err
		}
		var agg Total
		if err := it.Item().Value(func(v []byte) error { agg, err = decodeTotal(v, currency); return err }); err != nil {
			return s, err
		}
		cur, ok := ledger.CurrencyByCode(currency)
		if !ok {
			return s, fmt.Errorf("%w: window %d has entries in currency %03d, which has no known minor unit",
				ErrClearing, w.Number, currency)
		}
		sign, isMerchant := f.sign()
		line := MerchantLine{Merchant: merchant, Institution: acq, Kind: f.String(), Currency: currency,
			Count: agg.Entries, Gross: sign * agg.Debits}
		if isMerchant {
			fee, ok := c.Fees.Merchants[merchant]
			if !ok {
				fee = c.Fees.Default
			}
			if line.Fee, err = merchantFee(line.Gross, line.Count, fee, ledger.Kind(f), cur); err != nil {
				return s, fmt.Errorf("merchant %s: %w", merchant, err)
			}
		}
		line.Net = line.Gross - line.Fee
		s.Merchants = append(s.Merchants, line)
		p := pos[posKey{currency, acq}]
		if p == nil {
			in, known := insts[acq]
			if !known {
				h.log.Warn("head: clearing an institution the clearing configuration does not list",
					"window", w.Number, "institution", acq)
			}
			p = &Position{ID: acq, Name: in.Name, Account: in.Account, Currency: currency}
			pos[posKey{currency, acq}] = p
		}
		if !add(&p.Fees, line.Fee) || !add(&p.Net, line.Net) {
			return s, fmt.Errorf("head: window %d: institution %s: a sum overflows", w.Number, acq)
		}
	}
	for _, p := range pos {
		s.Institutions = append(s.Institutions, *p)
	}
	sort.Slice(s.Institutions, func(i, j int) bool {
		a, b := &s.Institutions[i], &s.Institutions[j]
		if a.Currency != b.Currency {
			return a.Currency < b.Currency
		}
		return a.ID < b.ID
	})
	sort.SliceStable(s.Merchants, func(i, j int) bool { return s.Merchants[i].Currency < s.Merchants[j].Currency })
	s.Files = fileNames(&s)
	return s, nil
}

// merchantFee is round_half_up(gross × rate) + count × fixed, in minor units of cur: the rate
// part rounded half away from zero to the minor unit, the fixed part exact (a fixed fee finer
// than the minor unit is refused).
func merchantFee(gross int64, count uint64, fee Fee, kind ledger.Kind, cur ledger.Currency) (int64, error) {
	rated := decimal.NewFromInt(gross).Mul(fee.Rate).Round(0)
	total := rated
	if fixed, ok := fee.Fixed[kind]; ok {
		minor := fixed.Shift(cur.Exponent)
		if !minor.Equal(minor.Truncate(0)) {
			return 0, fmt.Errorf("%w: fixed fee %s of %s is finer than a minor unit of %s", ErrClearing, fixed, kind, cur.Alpha)
		}
		total = total.Add(minor.Mul(decimal.NewFromUint64(count)))
	}
	if !total.IsInteger() || total.Abs().GreaterThan(decimal.NewFromInt(1<<62)) {
		return 0, fmt.Errorf("%w: fee %s out of range", ErrClearing, total)
	}
	return total.IntPart(), nil
}

func parseClearingKey(k []byte) (acq, merchant string, currency uint16, f flow, err error) {
	p := k[len(prefixClearing)+4:]
	for _, s := range [...]*string{&acq, &merchant} {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return "", "", 0, 0, corrupt("clearing key", "text runs past the end")
		}
		*s = string(p[1 : 1+int(p[0])])
		p = p[1+int(p[0]):]
	}
	if len(p) != 3 {
		return "", "", 0, 0, corrupt("clearing key", fmt.Sprintf("%d bytes after the text, want 3", len(p)))
	}
	return acq, merchant, binary.BigEndian.Uint16(p), flow(p[2]), nil
}

// fileNames are the files of a settlement: one instruction file per currency, then the report.
func fileNames(s *Settlement) []string {
	var out []string
	for i, p := range s.Institutions {
		if i == 0 || s.Institutions[i-1].Currency != p.Currency {
			out = append(out, fmt.Sprintf("SETTLE_%08d_W%06d_%s.txt", s.Date, s.Window, alpha(p.Currency)))
		}
	}
	return append(out, fmt.Sprintf("MERCHANTS_%08d_W%06d.csv", s.Date, s.Window))
}

func alpha(currency uint16) string {
	if c, ok := ledger.CurrencyByCode(currency); ok {
		return c.Alpha
	}
	return fmt.Sprintf("%03d", currency)
}

// amount renders minor units as a decimal string in the currency's major unit: -1234 → "-12.34".
func amount(minor int64, currency uint16) string {
	c, _ := ledger.CurrencyByCode(currency)
	return decimal.New(minor, -c.Exponent).StringFixed(c.Exponent)
}

// renderFiles renders every file of s, by base name; it depends on s alone.
func renderFiles(s *Settlement) map[string][]byte {
	out := make(map[string][]byte)
	names := s.Files
	i := 0
	for start := 0; start < len(s.Institutions); {
		currency := s.Institutions[start].Currency
		end := start
		var control int64
		var b bytes.Buffer
		fmt.Fprintf(&b, "H|%d|%08d|%s\n", s.Window, s.Date, alpha(currency))
		for ; end < len(s.Institutions) && s.Institutions[end].Currency == currency; end++ {
			p := &s.Institutions[end]
			abs := p.Net
			if abs < 0 {
				abs = -abs
			}
			control += abs
			fmt.Fprintf(&b, "D|%s|%s|%s|%s|%s|%s\n", p.ID, p.Name, p.Account, p.Direction(), amount(abs, currency), alpha(currency))
		}
		fmt.Fprintf(&b, "T|%d|%s\n", end-start, amount(control, currency))
		out[names[i]] = b.Bytes()
		i++
		start = end
	}
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.Write([]string{"merchant", "institution", "kind", "count", "gross", "fee", "net", "currency"})
	for _, l := range s.Merchants {
		cw.Write([]string{l.Merchant, l.Institution, l.Kind, strconv.FormatUint(l.Count, 10),
			amount(l.Gross, l.Currency), amount(l.Fee, l.Currency), amount(l.Net, l.Currency), alpha(l.Currency)})
	}
	cw.Flush()
	out[names[len(names)-1]] = b.Bytes()
	return out
}

// writeFiles writes s's files into dir, each atomically (a temporary file, synced, renamed);
// all of them when all is true, else only those missing.
func writeFiles(s *Settlement, dir string, all bool) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	files := renderFiles(s)
	for _, name := range s.Files {
		path := filepath.Join(dir, name)
		if !all {
			if _, err := os.Stat(path); err == nil {
				continue
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if err := writeAtomic(path, files[name]); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
