package ledger

import (
	"errors"
	"fmt"

	"github.com/shopspring/decimal"
)

// ErrAmount is wrapped by ParseAmount's errors.
var ErrAmount = errors.New("ledger: invalid amount")

// Currency is an ISO 4217 currency: its numeric code, alphabetic code and
// exponent (the number of minor-unit digits).
type Currency struct {
	Code     uint16
	Alpha    string
	Exponent int32
}

// CurrencyByCode returns the ISO 4217 currency with numeric code code.
// Only currencies the platform settles in are listed.
func CurrencyByCode(code uint16) (Currency, bool) {
	switch code {
	case 156:
		return Currency{156, "CNY", 2}, true
	case 344:
		return Currency{344, "HKD", 2}, true
	case 446:
		return Currency{446, "MOP", 2}, true
	case 392:
		return Currency{392, "JPY", 0}, true
	case 410:
		return Currency{410, "KRW", 0}, true
	case 840:
		return Currency{840, "USD", 2}, true
	case 978:
		return Currency{978, "EUR", 2}, true
	}
	return Currency{}, false
}

// ParseAmount turns a decimal amount typed by a person ("12.34") into minor
// units of currency code (1234 fen). Rounding rule: none. An amount with
// more decimals than the currency has minor units is refused, because a
// silently rounded amount is a different amount. Negative amounts and
// amounts beyond 12 digits of minor units (ISO 8583 field 4) are refused.
func ParseAmount(s string, code uint16) (int64, error) {
	cur, ok := CurrencyByCode(code)
	if !ok {
		return 0, fmt.Errorf("%w: unknown currency %d", ErrAmount, code)
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not a decimal number", ErrAmount, s)
	}
	if d.IsNegative() {
		return 0, fmt.Errorf("%w: %s is negative", ErrAmount, s)
	}
	minor := d.Shift(cur.Exponent)
	if !minor.Equal(minor.Truncate(0)) {
		return 0, fmt.Errorf("%w: %s has more than %d decimals for %s", ErrAmount, s, cur.Exponent, cur.Alpha)
	}
	if minor.GreaterThan(decimal.New(999_999_999_999, 0)) {
		return 0, fmt.Errorf("%w: %s is above the 12-digit limit of field 4", ErrAmount, s)
	}
	return minor.IntPart(), nil
}

// FormatAmount renders minor units of currency code for people: 1234 fen
// as "12.34 CNY".
func FormatAmount(minor int64, code uint16) string {
	cur, ok := CurrencyByCode(code)
	if !ok {
		return fmt.Sprintf("%d (minor units, currency %03d)", minor, code)
	}
	return decimal.New(minor, -cur.Exponent).StringFixed(cur.Exponent) + " " + cur.Alpha
}
