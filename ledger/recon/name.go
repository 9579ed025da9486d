package recon

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Interface codes (the IFACE part of a file name) of the files this package reads and writes.
const (
	IfaceRecon         = "DZ"     // 对账: a partner's transaction file for one day
	IfaceBatchDebit    = "DKKK"   // 代扣扣款: a batch-debit request
	IfaceBatchResponse = "REDKKK" // the response to a batch-debit request
)

// Name is a file name ORG_IFACE_UNIT_YYYYMMDD.txt taken apart, e.g. SDDL_DKKK_37101_20131012.txt:
// the organisation that sent it, the interface (the kind of file), the unit (branch or
// sub-account of the organisation) and the business date it covers.
type Name struct {
	Org   string // 2–8 of A-Z, 0-9
	Iface string // 1–8 of A-Z
	Unit  string // 1–10 digits
	Date  uint32 // YYYYMMDD, a real calendar date
}

// ParseName parses the base name of path. Anything but ORG_IFACE_UNIT_YYYYMMDD.txt, with the
// parts as Name describes them, is an error wrapping ErrName that says which part is wrong.
func ParseName(path string) (Name, error) {
	base := filepath.Base(path)
	bad := func(format string, a ...any) (Name, error) {
		return Name{}, fmt.Errorf("%w: %q: %s (want ORG_IFACE_UNIT_YYYYMMDD.txt)", ErrName, base, fmt.Sprintf(format, a...))
	}
	stem, ok := strings.CutSuffix(base, ".txt")
	if !ok {
		return bad("the extension is not .txt")
	}
	parts := strings.Split(stem, "_")
	if len(parts) != 4 {
		return bad("%d parts separated by _, not 4", len(parts))
	}
	n := Name{Org: parts[0], Iface: parts[1], Unit: parts[2]}
	if !validOrg(n.Org) {
		return bad("organisation %q is not 2–8 of A-Z, 0-9", n.Org)
	}
	if !validIface(n.Iface) {
		return bad("interface %q is not 1–8 of A-Z", n.Iface)
	}
	if !validUnit(n.Unit) {
		return bad("unit %q is not 1–10 digits", n.Unit)
	}
	d, ok := parseDate(parts[3])
	if !ok {
		return bad("date %q is not a calendar date YYYYMMDD", parts[3])
	}
	n.Date = d
	return n, nil
}

// String returns the file name, e.g. SDDL_DKKK_37101_20131012.txt.
func (n Name) String() string {
	return fmt.Sprintf("%s_%s_%s_%08d.txt", n.Org, n.Iface, n.Unit, n.Date)
}

// WithIface returns the name of the file of interface iface for the same organisation, unit and
// date: the response to a request.
func (n Name) WithIface(iface string) Name {
	n.Iface = iface
	return n
}

func validOrg(s string) bool {
	if len(s) < 2 || len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isUpper(s[i]) && !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func validIface(s string) bool {
	if len(s) < 1 || len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isUpper(s[i]) {
			return false
		}
	}
	return true
}

func validUnit(s string) bool { return len(s) >= 1 && len(s) <= 10 && allDigits(s) }

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// parseDate parses YYYYMMDD; time.Parse refuses days a month does not have (20130230).
func parseDate(s string) (uint32, bool) {
	if len(s) != 8 || !allDigits(s) {
		return 0, false
	}
	t, err := time.Parse("20060102", s)
	if err != nil || t.Year() < 1970 {
		return 0, false
	}
	return uint32(t.Year()*10000 + int(t.Month())*100 + t.Day()), true
}

// parseTime parses HHMMSS.
func parseTime(s string) bool {
	if len(s) != 6 || !allDigits(s) {
		return false
	}
	_, err := time.Parse("150405", s)
	return err == nil
}

// dayOf returns the time.Time at 00:00 UTC of the date YYYYMMDD.
func dayOf(date uint32) time.Time {
	return time.Date(int(date/10000), time.Month(date/100%100), int(date%100), 0, 0, 0, 0, time.UTC)
}

// dateOf returns the YYYYMMDD of t's UTC date.
func dateOf(t time.Time) uint32 {
	t = t.UTC()
	return uint32(t.Year()*10000 + int(t.Month())*100 + t.Day())
}

// addDays returns date moved by n days.
func addDays(date uint32, n int) uint32 { return dateOf(dayOf(date).AddDate(0, 0, n)) }
