package front

import (
	"fmt"
	"strconv"
	"time"

	"github.com/junction-switch/junction/codec"
)

// Txn describes a request as a terminal would send it. Build turns it into
// an ISO 8583 message; junction send and the load generator use it.
type Txn struct {
	Type     string // transaction type code, codec.TxPurchase or codec.TxBalance
	PAN      string
	Amount   int64     // minor units; not sent for a balance inquiry
	Currency uint16    // ISO 4217 numeric, e.g. 156
	STAN     uint32    // 1–999999
	Terminal string    // 8 characters, field 41
	Merchant string    // up to 15 characters, field 42 (space-padded)
	Time     time.Time // transmission time (field 7, UTC) and local time (12, 13)
	RRN      string    // 12 characters; derived from time and STAN when empty
}

// Build fills m with the 0200 request for t. m is reset first.
func (t Txn) Build(d *codec.Dialect, m *codec.Message) error {
	m.Reset(d)
	if t.STAN < 1 || t.STAN > 999999 {
		return fmt.Errorf("front: STAN %d out of range 1–999999", t.STAN)
	}
	if len(t.Type) != 2 {
		return fmt.Errorf("front: transaction type %q is not two digits", t.Type)
	}
	utc, local := t.Time.UTC(), t.Time
	rrn := t.RRN
	if rrn == "" {
		// YDDD (year digit, day of year) + hour + STAN: unique per terminal
		// and day, like most acquirers build it.
		rrn = fmt.Sprintf("%01d%03d%02d%06d", utc.Year()%10, utc.YearDay(), utc.Hour(), t.STAN)
	}
	set := []struct {
		id int
		v  string
	}{
		{2, t.PAN},
		{3, t.Type + "0000"},
		{7, utc.Format("0102150405")},
		{11, fmt.Sprintf("%06d", t.STAN)},
		{12, local.Format("150405")},
		{13, local.Format("0102")},
		{22, "012"}, // PAN keyed in, terminal can accept a PIN
		{25, "00"},
		{37, rrn},
		{41, t.Terminal},
		{42, fmt.Sprintf("%-15s", t.Merchant)},
		{49, fmt.Sprintf("%03d", t.Currency)},
	}
	if err := m.SetMTI([4]byte{'0', '2', '0', '0'}); err != nil {
		return err
	}
	for _, f := range set {
		if err := m.SetString(f.id, f.v); err != nil {
			return fmt.Errorf("front: building field %d: %w", f.id, err)
		}
	}
	if t.Type != codec.TxBalance {
		if t.Amount < 0 {
			return fmt.Errorf("front: negative amount %s", strconv.FormatInt(t.Amount, 10))
		}
		if err := m.SetNumber(4, uint64(t.Amount)); err != nil {
			return fmt.Errorf("front: amount: %w", err)
		}
	}
	return nil
}
