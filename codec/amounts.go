package codec

import "errors"

// AdditionalAmount is one 20-character amount set of field 54: account
// type (2 digits), amount type (2: "01" ledger balance, "02" available
// balance), currency (3 digits), sign and 12 digits of minor units.
type AdditionalAmount struct {
	AccountType string
	AmountType  string
	Currency    uint16
	Amount      int64 // negative for a debit ('D') balance
}

// Amount types of field 54.
const (
	AmountLedger    = "01"
	AmountAvailable = "02"
)

// ErrAmounts means field 54 is not a sequence of 20-character amount sets.
var ErrAmounts = errors.New("codec: field 54 is not a list of 20-character amount sets")

// AppendAdditionalAmount appends one amount set in field 54 form. account
// type and amount type must be two digits each.
func AppendAdditionalAmount(b []byte, a AdditionalAmount) []byte {
	b = append(b, a.AccountType...)
	b = append(b, a.AmountType...)
	c := a.Currency
	b = append(b, byte('0'+c/100%10), byte('0'+c/10%10), byte('0'+c%10))
	sign, amount := byte('C'), a.Amount
	if amount < 0 {
		sign, amount = 'D', -amount
	}
	b = append(b, sign)
	var digits [12]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + amount%10)
		amount /= 10
	}
	return append(b, digits[:]...)
}

// ParseAdditionalAmounts reads the amount sets of field 54.
func ParseAdditionalAmounts(v []byte) ([]AdditionalAmount, error) {
	if len(v)%20 != 0 {
		return nil, ErrAmounts
	}
	var out []AdditionalAmount
	for ; len(v) > 0; v = v[20:] {
		s := v[:20]
		if !ClassN.valid(s[0:7]) || s[7] != 'C' && s[7] != 'D' || !ClassN.valid(s[8:20]) {
			return nil, ErrAmounts
		}
		a := AdditionalAmount{AccountType: string(s[0:2]), AmountType: string(s[2:4])}
		a.Currency = uint16(s[4]-'0')*100 + uint16(s[5]-'0')*10 + uint16(s[6]-'0')
		for _, d := range s[8:20] {
			a.Amount = a.Amount*10 + int64(d-'0')
		}
		if s[7] == 'D' {
			a.Amount = -a.Amount
		}
		out = append(out, a)
	}
	return out, nil
}
