package recon

import (
	"fmt"
	"io"
	"strconv"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/routing"
	"github.com/shopspring/decimal"
)

// Direction says what a partner's record did to the customer.
type Direction byte

// Directions.
const (
	Debited  Direction = 'D' // the partner debited the customer (a purchase or payment it booked)
	Refunded Direction = 'R' // the partner refunded or reversed a debit
)

// String returns "D" or "R".
func (d Direction) String() string { return string(rune(d)) }

// Record is one detail record of a reconciliation (DZ) file: one transaction as the partner
// booked it.
type Record struct {
	Line      int    // the line it was read from; 0 when written
	Date      uint32 // YYYYMMDD, the transaction's date
	Time      string // HHMMSS
	STAN      string // field 11, 1–6 digits; optional
	RRN       string // field 37, 1–12 of A-Z, a-z, 0-9
	Account   string // the customer: a PAN, or an account or phone number
	Amount    int64  // minor units of Currency, > 0
	Currency  uint16 // ISO 4217 numeric
	Direction Direction
	Acquirer  string // field 32, 1–11 digits; optional
}

// BatchLine is one detail record of a batch-debit (DKKK) request.
type BatchLine struct {
	Line      int    // the line it was read from; 0 when written
	Seq       string // the line's sequence number, 1–8 digits, unique in the file
	Account   string // the customer: a PAN, or an account or phone number
	Amount    string // decimal, major units, e.g. "12.34"
	Reference string // the customer's reference at the biller (bill number), 1–20 characters
}

// WriteReconFile writes a reconciliation file named n (its Iface must be DZ) with records recs in
// encoding enc: what a partner sends. It is the format's reference writer, for partners'
// simulators and tests.
func WriteReconFile(w io.Writer, enc Encoding, n Name, recs []Record) error {
	if n.Iface != IfaceRecon {
		return fmt.Errorf("recon: %s is not a %s file", n, IfaceRecon)
	}
	lay := layouts[IfaceRecon]
	e, err := newEncoder(w, enc)
	if err != nil {
		return err
	}
	if err := e.write(lay.header, headerValues(n)); err != nil {
		return err
	}
	sum := decimal.Zero
	places := int32(0)
	for i := range recs {
		r := &recs[i]
		places = max(places, exponent(r.Currency))
		amt, err := major(r.Amount, r.Currency)
		if err != nil {
			return err
		}
		sum = sum.Add(amt)
		stan := r.STAN
		if enc == FixedWidth && stan != "" {
			stan = fmt.Sprintf("%06s", stan)
		}
		if err := e.write(lay.detail, []string{recDetail, fmt.Sprintf("%08d", r.Date), r.Time, stan, r.RRN,
			r.Account, amt.StringFixed(exponent(r.Currency)), fmt.Sprintf("%03d", r.Currency), r.Direction.String(), r.Acquirer}); err != nil {
			return err
		}
	}
	if err := e.write(lay.trailer, trailerValues(len(recs), sum, places)); err != nil {
		return err
	}
	return e.flush()
}

// WriteBatchFile writes a batch-debit request named n (its Iface must be DKKK) for biller in
// currency cur, in encoding enc: what a biller sends. The lines are written as given, so a test
// can write a malformed one; the trailer's control sum counts the amounts that are decimals.
func WriteBatchFile(w io.Writer, enc Encoding, n Name, biller string, cur uint16, lines []BatchLine) error {
	if n.Iface != IfaceBatchDebit {
		return fmt.Errorf("recon: %s is not a %s file", n, IfaceBatchDebit)
	}
	lay := layouts[IfaceBatchDebit]
	e, err := newEncoder(w, enc)
	if err != nil {
		return err
	}
	if err := e.write(lay.header, headerValues(n, biller, fmt.Sprintf("%03d", cur))); err != nil {
		return err
	}
	sum := decimal.Zero
	for _, l := range lines {
		if d, err := parseDecimal(l.Amount); err == nil {
			sum = sum.Add(d)
		}
		if err := e.write(lay.detail, []string{recDetail, l.Seq, l.Account, l.Amount, l.Reference}); err != nil {
			return err
		}
	}
	if err := e.write(lay.trailer, trailerValues(len(lines), sum, exponent(cur))); err != nil {
		return err
	}
	return e.flush()
}

// major turns minor units into the decimal amount in major units that files carry.
func major(minor int64, code uint16) (decimal.Decimal, error) {
	cur, ok := ledger.CurrencyByCode(code)
	if !ok {
		return decimal.Decimal{}, fmt.Errorf("recon: unknown currency %d", code)
	}
	return decimal.New(minor, -cur.Exponent), nil
}

// formatMajor renders minor units of currency code as the decimal a file carries, with as many
// decimals as the currency has ("12.30").
func formatMajor(minor int64, code uint16) string {
	cur, ok := ledger.CurrencyByCode(code)
	if !ok {
		return strconv.FormatInt(minor, 10)
	}
	return decimal.New(minor, -cur.Exponent).StringFixed(cur.Exponent)
}

// currency parses a three-digit ISO 4217 numeric code of a currency the platform settles in.
func currency(s string) (uint16, bool) {
	if len(s) != 3 || !allDigits(s) {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	if _, ok := ledger.CurrencyByCode(uint16(n)); !ok {
		return 0, false
	}
	return uint16(n), true
}

// decodeRecon decodes and checks every detail record of a reconciliation file. Every problem is
// an error naming its line; the file is refused whole.
func decodeRecon(f *rawFile) ([]Record, error) {
	errs := errorList{file: f.name.String()}
	recs := make([]Record, 0, len(f.details))
	sum := decimal.Zero
	type key struct {
		rrn, stan string
		dir       Direction
	}
	seen := make(map[key]int)
	for _, raw := range f.details {
		if raw.err != nil {
			errs.add(raw.line, "%v", raw.err)
			continue
		}
		v := raw.fields
		r := Record{Line: raw.line, Time: v[dzTime], STAN: v[dzSTAN], RRN: v[dzRRN], Account: v[dzAccount], Acquirer: v[dzAcquirer]}
		bad := func(format string, a ...any) { errs.add(raw.line, format, a...) }
		var ok bool
		if r.Date, ok = parseDate(v[dzDate]); !ok {
			bad("date %q is not a calendar date YYYYMMDD", Mask(v[dzDate]))
		}
		if !parseTime(r.Time) {
			bad("time %q is not HHMMSS", Mask(r.Time))
		}
		if r.STAN != "" && (len(r.STAN) > 6 || !allDigits(r.STAN)) {
			bad("STAN %q is not 1–6 digits", Mask(r.STAN))
		}
		if !validRRN(r.RRN) {
			bad("RRN %q is not 1–12 of A-Z, a-z, 0-9", Mask(r.RRN))
		}
		if !validRef(r.Account) {
			bad("account (%d characters) is not a card, account or phone number", len(r.Account))
		}
		if r.Currency, ok = currency(v[dzCurrency]); !ok {
			bad("currency %q is not a numeric ISO 4217 code the platform settles in", Mask(v[dzCurrency]))
		} else if d, err := parseDecimal(v[dzAmount]); err != nil {
			bad("amount %q is not a decimal amount like 12.34", Mask(v[dzAmount]))
		} else if r.Amount, err = ledger.ParseAmount(v[dzAmount], r.Currency); err != nil {
			// ParseAmount's error quotes the amount: a card number in the wrong column would show.
			bad("amount %q: more decimals than the currency has, or above 12 digits", Mask(v[dzAmount]))
		} else if r.Amount == 0 {
			bad("amount is zero")
		} else {
			sum = sum.Add(d)
		}
		switch v[dzDirection] {
		case "D":
			r.Direction = Debited
		case "R":
			r.Direction = Refunded
		default:
			bad("type %q is neither D (debited) nor R (refunded)", Mask(v[dzDirection]))
		}
		if r.Acquirer != "" && (len(r.Acquirer) > 11 || !allDigits(r.Acquirer)) {
			bad("acquirer %q is not 1–11 digits", Mask(r.Acquirer))
		}
		k := key{r.RRN, r.STAN, r.Direction}
		if first, dup := seen[k]; dup {
			bad("the same RRN, STAN and type as line %d", first)
		} else {
			seen[k] = raw.line
		}
		recs = append(recs, r)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	if !sum.Equal(f.sum) {
		return nil, &LineError{File: f.name.String(), Line: f.trailerN,
			Reason: fmt.Sprintf("trailer control sum %s is not the sum of the amounts, %s", f.sum, sum)}
	}
	return recs, nil
}

// validRRN: ISO 8583 field 37 is 12 alphanumeric characters; partners drop leading zeros or
// spaces, so 1–12 are taken.
func validRRN(s string) bool {
	if len(s) == 0 || len(s) > 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isUpper(c) && !isDigit(c) && !('a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// validRef reports whether s can name a customer: a card number, or an account or phone number
// (1–28 of 0-9, A-Z, a-z, -), as the ledger binds them.
func validRef(s string) bool { return validBillerLen(s, 28) }

func validBillerLen(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isUpper(c) && !isDigit(c) && !('a' <= c && c <= 'z') && c != '-' {
			return false
		}
	}
	return true
}

// isPAN reports whether ref is a card number rather than an account or phone number: 12–19
// digits with a valid Luhn check digit.
func isPAN(ref string) bool {
	return len(ref) >= 12 && len(ref) <= 19 && allDigits(ref) && routing.Luhn([]byte(ref))
}

// Mask hides a card number in ref for reports and logs: a reference of 12 or more digits keeps
// its first 6 and last 4, as the ledger masks PANs. Shorter references (phone numbers, account
// numbers with letters) are not card numbers and are shown as they are.
// Dashes between the digits (6222-0200-…) do not stop it being masked: they are kept, and
// the digits counted without them.
func Mask(ref string) string {
	digits := 0
	for i := 0; i < len(ref); i++ {
		switch {
		case isDigit(ref[i]):
			digits++
		case ref[i] != '-':
			return ref
		}
	}
	if digits < 12 {
		return ref
	}
	b := []byte(ref)
	n := 0
	for i := range b {
		if b[i] == '-' {
			continue
		}
		if n >= 6 && n < digits-4 {
			b[i] = '*'
		}
		n++
	}
	return string(b)
}
