package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// SuspenseID is the shard's suspense account: the other side of every reconciliation
// adjustment (KindAdjust). Created in the first commit of a new shard and on opening a shard
// from before adjustments.
const SuspenseID uint64 = 3

// CutoverPoint is where a shard's journal moved from one settlement window to the next: every
// entry with Seq ≤ Last was booked in an earlier window, every later one in Window (or after).
type CutoverPoint struct {
	Window uint32 // the window opened
	Date   uint32 // its settlement date, YYYYMMDD
	Last   uint64 // the last journal seq booked before Window opened
}

// Adjustment is a correction that reconciliation books against the shard's suspense account:
// Credit credits the account and debits suspense (a refund the partner made that we lack, a
// booking the partner does not have); otherwise it debits the account and credits suspense (a
// debit the partner made that we lack). It is booked forced, as a stand-in advice is: the
// account may be blocked or go below zero by it. Its ID makes it idempotent: the same ID with
// the same content replays the first result, with other content it is declined 94.
type Adjustment struct {
	ID       TxID
	PAN      string // the account, by card number; or
	Number   string // by account or phone number; or
	Account  uint64 // by id (a ledger-side break knows it from the journal)
	Credit   bool
	Amount   int64 // minor units, > 0
	Currency uint16
	Original uint64 // the seq of the journal entry it corrects; 0 when there is none
	Acquirer string // annotations, as in Transfer
	STAN     string
	RRN      string
	Merchant string
}

// ErrWindow is returned by Cutover for a window or date it cannot move to; nothing changed.
var ErrWindow = errors.New("ledger: cutover refused")

// Cutover moves the shard into settlement window window with settlement date date (YYYYMMDD),
// through the writer, so that every entry booked before it carries the old window and every
// entry after it the new one; the point (Last: the last seq booked before it) and the new window
// are written in one synced commit before Cutover returns.
//
// It is idempotent: for a window the shard is already in or past it returns the point recorded
// when that window opened, whatever date is given (for a window that was skipped, the point of
// the first window opened after it, under the asked number). Moving on by more than one window
// is allowed; the date must then be a valid date no earlier than the current window's, else
// Cutover returns an error wrapping ErrWindow and nothing changes. Window 0 is never valid.
func (s *Shard) Cutover(ctx context.Context, window, date uint32) (CutoverPoint, error) {
	e := s.envelopes.Get().(*envelope)
	e.cmd.op = opCutover
	e.cmd.window = windowState{window: window, date: date}
	out, err := s.submit(ctx, e)
	return out.cut, err
}

// Window returns the settlement window the shard books in now and its date (YYYYMMDD), as of
// the last commit. It reads one atomic value.
func (s *Shard) Window() (window, date uint32) {
	v := s.window.Load()
	return uint32(v >> 32), uint32(v)
}

// Adjust books a reconciliation adjustment (KindAdjust) between an account and suspense,
// through the writer like a request but never reachable from a channel. The account (any but
// suspense itself, institution accounts included) is named by exactly one of PAN, Number and
// Account (else 12, as for a zero ID, suspense itself or an
// annotation beyond its length; those are not recorded). It is booked forced: a blocked account
// and a short balance do not stop it. Declines, recorded under the ID like an approval: 14 for
// an unknown or closed account, 13 for an amount ≤ 0 or another currency than the account's,
// 12 for an Original that names no journal entry. Replays and 94 as for Do. An error means the
// outcome is unknown, and a retry with the same ID is safe.
func (s *Shard) Adjust(ctx context.Context, a Adjustment) (Result, error) {
	e := s.envelopes.Get().(*envelope)
	e.cmd.op = opAdjust
	e.cmd.adj = a
	out, err := s.submit(ctx, e)
	return out.res, err
}

// AppendTransfer appends the journal record of t (the bytes the shard stores under j/<seq>:
// versioned, with a CRC-32C) to dst: the wire form of journal pages between processes.
func AppendTransfer(dst []byte, t *Transfer) []byte { return appendTransfer(dst, t) }

// DecodeTransfer decodes one journal record as AppendTransfer wrote it; a torn, corrupted or
// unknown record is an error, never a guess.
func DecodeTransfer(b []byte) (Transfer, error) { return decodeTransfer(b) }

// packWindow is the Shard.window value of w.
func packWindow(w windowState) uint64 { return uint64(w.window)<<32 | uint64(w.date) }

// utcDate is the UTC date of t as YYYYMMDD.
func utcDate(t time.Time) uint32 {
	y, m, d := t.UTC().Date()
	return uint32(y*10000 + int(m)*100 + d)
}

// validDate reports whether d is a calendar date YYYYMMDD in years 1..9999.
func validDate(d uint32) bool {
	y, m, day := int(d/10000), time.Month(d/100%100), int(d%100)
	if y < 1 || y > 9999 || m < 1 || m > 12 || day < 1 {
		return false
	}
	t := time.Date(y, m, day, 0, 0, 0, 0, time.UTC)
	return t.Month() == m && t.Day() == day
}

// cutover applies a Cutover in the batch: entries posted before it carry the old window, those
// after it the new one.
func (b *batch) cutover(w windowState) (CutoverPoint, error) {
	switch {
	case w.window == 0:
		return CutoverPoint{}, fmt.Errorf("%w: window 0 (windows count from 1)", ErrWindow)
	case w.window <= b.window.window:
		return b.cutPoint(w.window), nil
	case !validDate(w.date):
		return CutoverPoint{}, fmt.Errorf("%w: window %d: %d is not a date YYYYMMDD", ErrWindow, w.window, w.date)
	case w.date < b.window.date:
		return CutoverPoint{}, fmt.Errorf("%w: window %d: date %d is before window %d's date %d",
			ErrWindow, w.window, w.date, b.window.window, b.window.date)
	}
	p := CutoverPoint{Window: w.window, Date: w.date, Last: b.seq}
	b.window = w
	b.cuts = append(b.cuts, p)
	return p, nil
}

// cutPoint returns the point of window w ≤ the current window: the one recorded for it or, when
// w was skipped, that of the first window opened after it, numbered w.
func (b *batch) cutPoint(w uint32) CutoverPoint {
	for _, cuts := range [...][]CutoverPoint{b.st.cuts, b.cuts} { // each sorted, the second after the first
		i, _ := slices.BinarySearchFunc(cuts, w, func(c CutoverPoint, w uint32) int { return int(int64(c.Window) - int64(w)) })
		if i < len(cuts) {
			p := cuts[i]
			p.Window = w
			return p
		}
	}
	panic(fmt.Sprintf("ledger: no cutover point at or after window %d, the shard is in window %d", w, b.window.window))
}

// malformedAdjustment answers adjustments whose content alone makes them unusable; like
// malformed requests they are not recorded.
func malformedAdjustment(a *Adjustment) (Code, bool) {
	refs := 0
	for _, set := range [...]bool{a.PAN != "", a.Number != "", a.Account != 0} {
		if set {
			refs++
		}
	}
	switch {
	case a.ID.IsZero(), refs != 1, a.Account == SuspenseID:
		return InvalidTransaction, true
	case len(a.Merchant) > maxAnnotation, !validKeys(a.Acquirer, a.STAN, a.RRN):
		return InvalidTransaction, true
	case len(a.PAN) > maxPAN, len(a.Number) > maxNumber:
		return UnknownCard, true
	}
	return "", false
}

// adjustDigest identifies an adjustment's content: the account reference, direction, amount,
// currency and original; not its annotations. Its first byte (opAdjust) keeps it apart from
// every request digest.
func adjustDigest(a *Adjustment) [32]byte {
	var buf [1 + 1 + maxPAN + 1 + maxNumber + 8 + 1 + 8 + 2 + 8]byte
	p := append(buf[:0], byte(opAdjust), byte(len(a.PAN)))
	p = append(p, a.PAN...)
	p = append(p, byte(len(a.Number)))
	p = append(p, a.Number...)
	p = binary.BigEndian.AppendUint64(p, a.Account)
	credit := byte(0)
	if a.Credit {
		credit = 1
	}
	p = append(p, credit)
	p = binary.BigEndian.AppendUint64(p, uint64(a.Amount))
	p = binary.BigEndian.AppendUint16(p, a.Currency)
	p = binary.BigEndian.AppendUint64(p, a.Original)
	return sha256.Sum256(p)
}

// adjust decides an adjustment: replay or 94 under a known ID, otherwise book it and record the
// outcome, decline or approval.
func (b *batch) adjust(a *Adjustment) Result {
	if code, bad := malformedAdjustment(a); bad {
		return Result{Code: code}
	}
	d := adjustDigest(a)
	if rec, ok := b.txRecord(&a.ID); ok {
		if rec.digest != d {
			return Result{Code: DuplicateDifferent}
		}
		res := rec.result()
		res.Replayed = true
		return res
	}
	rec := txRecord{digest: d, kind: txAdjust}
	res := b.bookAdjust(a, &rec)
	rec.setResult(res)
	b.putTx(&a.ID, rec)
	return res
}

// bookAdjust books an adjustment forced: only a missing or closed account (14), an amount or
// currency that does not fit (13) and an Original beyond the journal (12) stop it.
func (b *batch) bookAdjust(a *Adjustment, rec *txRecord) Result {
	var id uint64
	var ok bool
	switch {
	case a.PAN != "":
		id, ok = b.cardID(a.PAN)
	case a.Number != "":
		id, ok = b.ownerID(a.Number)
	default:
		id, ok = a.Account, b.account(a.Account) != nil
	}
	if !ok {
		return Result{Code: UnknownCard}
	}
	acct := b.account(id)
	if acct == nil {
		panic(fmt.Sprintf("ledger: index points to account %d, which was not loaded", id))
	}
	if acct.Status == Closed {
		return Result{Code: UnknownCard}
	}
	res := view(acct)
	debitID, creditID := id, SuspenseID
	if a.Credit {
		debitID, creditID = SuspenseID, id
	}
	switch {
	case a.Amount <= 0 || a.Currency != acct.Currency || !fits(b.account(debitID), b.account(creditID), a.Amount):
		res.Code = InvalidAmount
		return res
	case a.Original > b.seq:
		res.Code = InvalidTransaction // names no journal entry
		return res
	}
	b.post(Transfer{TxID: a.ID, Kind: KindAdjust, Debit: debitID, Credit: creditID, Amount: a.Amount,
		Currency: a.Currency, Merchant: a.Merchant, Original: a.Original,
		Acquirer: a.Acquirer, STAN: a.STAN, RRN: a.RRN})
	rec.account, rec.amount = id, a.Amount
	return b.approved(res, id)
}

// validKeys checks the annotations that settlement files and reconciliation key on: an acquirer
// and a STAN of digits, an RRN of letters, digits and spaces (ISO 8583 an), each within its
// field's length. Anything else would be a field no ISO message carries, and a character such as
// '|' or a newline would break the files they are written to.
func validKeys(acquirer, stan, rrn string) bool {
	if len(acquirer) > maxAcquirer || len(stan) > maxSTAN || len(rrn) > maxRRN {
		return false
	}
	for _, s := range [...]string{acquirer, stan} {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
	}
	for i := 0; i < len(rrn); i++ {
		c := rrn[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == ' ') {
			return false
		}
	}
	return true
}
