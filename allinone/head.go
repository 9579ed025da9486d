package allinone

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/junction-switch/junction/ledger"
)

// HeadSettings configure the head ledger that `junction up` runs in
// process: it pulls every region's journal (in-process shards directly,
// remote ones over their journal service), keeps the general ledger, cuts
// settlement windows over, clears and settles them, and reconciles
// partners' files.
type HeadSettings struct {
	Pull  time.Duration `yaml:"pull"`  // how often each shard's journal is pulled when caught up; default 200ms
	Batch int           `yaml:"batch"` // journal entries per merge batch; default 1024, at most 4096
	// Cutover lists the scheduled cutovers, "HH:MM" in UTC, every day. A
	// cutover missed while the switch was down runs at the next start.
	Cutover      []string          `yaml:"cutover"`
	Institutions []InstitutionInfo `yaml:"institutions"`
	Fees         FeeSettings       `yaml:"fees"`
	Recon        ReconSettings     `yaml:"reconciliation"`
}

// InstitutionInfo is an acquiring institution (field 32) as clearing knows
// it: where its net position is settled.
type InstitutionInfo struct {
	ID      string `yaml:"id"`
	Name    string `yaml:"name"`
	Account string `yaml:"account"` // its settlement account at the settlement bank
}

// FeeSettings are the merchant service charges clearing deducts: a
// merchant's own, else the default.
type FeeSettings struct {
	Default   FeeRule            `yaml:"default"`
	Merchants map[string]FeeRule `yaml:"merchants"` // by card acceptor id (field 42)
}

// FeeRule is a merchant discount rate (a fraction: "0.0038" is 0.38 %) and
// fixed fees per transaction, by journal kind (purchase, stand_in, post,
// payment, refund, …), in major units ("0.10").
type FeeRule struct {
	Rate  string            `yaml:"rate"`
	Fixed map[string]string `yaml:"fixed"`
}

// ReconSettings configure T+1 reconciliation and batch debit files.
type ReconSettings struct {
	Tolerance     string          `yaml:"tolerance"`      // amounts within this (major units) match; default "0"
	DateTolerance int             `yaml:"date_tolerance"` // days either side of the file's date; default 1
	Partners      []PartnerConfig `yaml:"partners"`
}

// PartnerConfig maps a partner's file organisation code (the ORG of
// ORG_IFACE_UNIT_YYYYMMDD.txt) to the acquiring institution whose ledger
// entries its files cover.
type PartnerConfig struct {
	Org      string `yaml:"org"`
	Acquirer string `yaml:"acquirer"`
}

var clock = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// partnerOrg is the ORG of a partner's file names, as recon.ParseName reads it.
var partnerOrg = regexp.MustCompile(`^[A-Z0-9]{2,8}$`)

// maxDateTolerance is the most days recon.Config takes.
const maxDateTolerance = 31

// cutoverTimes parses the schedule into minutes after midnight UTC.
func (h HeadSettings) cutoverTimes() ([]int, error) {
	out := make([]int, 0, len(h.Cutover))
	for i, c := range h.Cutover {
		if !clock.MatchString(c) {
			return nil, fmt.Errorf("head.cutover[%d]: %q: want HH:MM (UTC)", i, c)
		}
		t, _ := time.Parse("15:04", c)
		out = append(out, t.Hour()*60+t.Minute())
	}
	return out, nil
}

// kindByName is the journal kinds by the names fee rules use.
func kindByName(name string) (ledger.Kind, bool) {
	for k := ledger.KindPurchase; k <= ledger.KindAdjust; k++ {
		if k.String() == name {
			return k, true
		}
	}
	return 0, false
}

// fee parses one fee rule; key names it in errors.
func (r FeeRule) parse(key string) (rate decimal.Decimal, fixed map[ledger.Kind]decimal.Decimal, err error) {
	rate = decimal.Zero
	if r.Rate != "" {
		if rate, err = decimal.NewFromString(r.Rate); err != nil || rate.IsNegative() || rate.GreaterThanOrEqual(decimal.NewFromInt(1)) {
			return rate, nil, fmt.Errorf("%s.rate: %q: want a fraction from 0 up to (not including) 1, e.g. 0.0038", key, r.Rate)
		}
	}
	fixed = map[ledger.Kind]decimal.Decimal{}
	for name, v := range r.Fixed {
		k, ok := kindByName(name)
		if !ok {
			return rate, nil, fmt.Errorf("%s.fixed: unknown transaction kind %q", key, name)
		}
		d, err := decimal.NewFromString(v)
		if err != nil || d.IsNegative() {
			return rate, nil, fmt.Errorf("%s.fixed.%s: %q: want a non-negative amount in major units", key, name, v)
		}
		fixed[k] = d
	}
	return rate, fixed, nil
}

// validateHead checks the head settings.
func (c Config) validateHead() []error {
	var errs []error
	h := c.Head
	if h.Pull < 0 || (h.Pull > 0 && h.Pull < time.Millisecond) || h.Batch < 0 || h.Batch > 4096 {
		errs = append(errs, fmt.Errorf("head: pull must be 0 (the default) or at least 1ms, and batch 0..4096 (got %v, %d)", h.Pull, h.Batch))
	}
	if _, err := h.cutoverTimes(); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i, in := range h.Institutions {
		if in.ID == "" || len(in.ID) > 11 || !allDigits(in.ID) || seen[in.ID] {
			errs = append(errs, fmt.Errorf("head.institutions[%d].id: %q: want 1-11 digits, once", i, in.ID))
		}
		seen[in.ID] = true
		// Fields of the settlement file's |-separated lines: clearing refuses them.
		for _, f := range [...][2]string{{"name", in.Name}, {"account", in.Account}} {
			if strings.ContainsAny(f[1], "|\r\n") {
				errs = append(errs, fmt.Errorf("head.institutions[%d].%s: %q: no | or line break", i, f[0], f[1]))
			}
		}
	}
	if _, _, err := h.Fees.Default.parse("head.fees.default"); err != nil {
		errs = append(errs, err)
	}
	for m, r := range h.Fees.Merchants {
		if _, _, err := r.parse("head.fees.merchants." + m); err != nil {
			errs = append(errs, err)
		}
	}
	if h.Recon.Tolerance != "" {
		// startHead takes it in minor units (cents): a finer one would be cut, a huge one overflow.
		d, err := decimal.NewFromString(h.Recon.Tolerance)
		if err != nil || d.IsNegative() || !d.Shift(2).IsInteger() || d.GreaterThan(decimal.NewFromInt(1_000_000_000)) {
			errs = append(errs, fmt.Errorf("head.reconciliation.tolerance: %q: want an amount from 0 to 1000000000 in cents at most", h.Recon.Tolerance))
		}
	}
	if h.Recon.DateTolerance < 0 || h.Recon.DateTolerance > maxDateTolerance {
		errs = append(errs, fmt.Errorf("head.reconciliation.date_tolerance: %d: want 0..%d days", h.Recon.DateTolerance, maxDateTolerance))
	}
	orgs := map[string]bool{}
	for i, p := range h.Recon.Partners {
		if !partnerOrg.MatchString(p.Org) || orgs[p.Org] {
			errs = append(errs, fmt.Errorf("head.reconciliation.partners[%d].org: %q: want 2-8 of A-Z, 0-9 (as in file names), once", i, p.Org))
		}
		orgs[p.Org] = true
		if p.Acquirer == "" || len(p.Acquirer) > 11 || !allDigits(p.Acquirer) {
			errs = append(errs, fmt.Errorf("head.reconciliation.partners[%d].acquirer: %q: want 1-11 digits (field 32)", i, p.Acquirer))
		}
	}
	return errs
}

// lastScheduled is the latest scheduled cutover instant at or before now
// (times are minutes after midnight UTC); the zero time when there is no
// schedule.
func lastScheduled(times []int, now time.Time) time.Time {
	var last time.Time
	now = now.UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	for _, day := range []time.Time{midnight.AddDate(0, 0, -1), midnight} {
		for _, m := range times {
			if at := day.Add(time.Duration(m) * time.Minute); !at.After(now) && at.After(last) {
				last = at
			}
		}
	}
	return last
}

// cutoverDue reports whether a scheduled cutover fell after the open
// window opened: one that came while the switch ran, or was missed while
// it was down.
func cutoverDue(times []int, opened, now time.Time) bool {
	last := lastScheduled(times, now)
	return !last.IsZero() && last.After(opened)
}
