package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strconv"
)

// ErrClosed is returned by every call on a shard that is closing or closed.
var ErrClosed = errors.New("ledger: shard closed")

// ErrNotFound is returned when an account, PAN binding or record does not exist.
var ErrNotFound = errors.New("ledger: not found")

// ErrCommit wraps a storage failure: the batch holding the request was not committed, so nothing
// of it was booked or recorded and a retry with the same TxID is safe.
var ErrCommit = errors.New("ledger: commit failed")

// ErrPANBound is returned by OpenAccount when the PAN already belongs to an account.
var ErrPANBound = errors.New("ledger: PAN already bound to an account")

// Code is an ISO 8583 response code (field 39). The shard is an ISO host and answers in these
// directly, so the adapter copies Code into the response without translation.
type Code string

// Response codes the shard produces.
const (
	// Approved: booked, or answered. A reversal is approved without booking when there is
	// nothing (more) to undo: its original was declined, or is already reversed that far. A
	// stand-in advice is approved without booking when its purchase is already booked, or was
	// reversed before the advice arrived.
	Approved           Code = "00"
	InvalidTransaction Code = "12" // unsupported operation or malformed request; a reversal of a non-purchase
	// InvalidAmount: amount ≤ 0, currency differs from the account's, or it would overflow; for a
	// reversal also an actual amount (field 95) below 0 or above the original's, or a field 4 that
	// is not the original's amount.
	InvalidAmount Code = "13"
	// UnknownCard: no account for the PAN, or the account is closed. To a stand-in advice it is
	// the acknowledgement that nothing was booked: the switch stops repeating it and reports the
	// stand-in approval as its own loss.
	UnknownCard Code = "14"
	// OriginalNotFound answers a reversal whose original was never booked here (or belongs to
	// another card). When no record of the original's TxID exists at all, the reversal also
	// leaves a tombstone under it, so that the original, should it still arrive, gets TooLate.
	OriginalNotFound  Code = "25"
	InsufficientFunds Code = "51"
	RestrictedCard    Code = "62" // account blocked
	// TooLate declines a request whose TxID was tombstoned by a reversal that arrived first:
	// the switch timed out on it, answered the terminal and reversed it, so booking it now would
	// take money for a sale the terminal was told had failed. ISO 8583:1987 names 68 "response
	// received too late", the code acquirers put in such reversals; it declines, and unlike 12
	// or 94 it tells an operator exactly what happened. Retransmissions of the same content get
	// it again; other content under the TxID gets 94.
	TooLate            Code = "68"
	DuplicateDifferent Code = "94" // TxID already used with different content
	SystemError        Code = "96" // the caller's answer when Do returns an error
)

// Unsupported is InvalidTransaction under the name the channel side uses for it.
const Unsupported = InvalidTransaction

// Op is a request kind a channel (through the ISO adapter) can submit with Do.
type Op uint8

// Operations. The zero Op is invalid so that a forgotten field is declined, not guessed.
const (
	OpPurchase Op = iota + 1 // debit the card, credit settlement-payable
	OpBalance                // read the card balance; books and records nothing
	OpDeposit                // admin: debit funding, credit the card
	OpReversal               // undo an approved purchase, fully or partly: debit settlement-payable, credit the card
	// OpAdvice books a purchase the switch approved in stand-in while the shard was down, as
	// OpPurchase does but forced: the card may be blocked or go below zero. Its ID is the
	// purchase's TxID, so that the purchase and its advice book at most once between them.
	OpAdvice
	// Later: pre-authorisation (hold), completion, void, refund.

	opOpenAccount // admin, internal: AccountSpec through the writer
	opSetStatus   // admin, internal: change an account's status
)

// String returns the lower-case name used in logs and metric labels.
func (o Op) String() string {
	switch o {
	case OpPurchase:
		return "purchase"
	case OpBalance:
		return "balance"
	case OpDeposit:
		return "deposit"
	case OpReversal:
		return "reversal"
	case OpAdvice:
		return "advice"
	case opOpenAccount:
		return "open_account"
	case opSetStatus:
		return "set_status"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// channelOp reports whether o is one of the operations Do accepts.
func (o Op) channelOp() bool { return o >= OpPurchase && o <= lastChannelOp }

// lastChannelOp is the highest channel Op; metrics size their tables by it.
const lastChannelOp = OpAdvice

// Kind classifies a journal entry.
type Kind uint8

// Journal entry kinds.
const (
	KindPurchase Kind = iota + 1
	KindDeposit
	KindReversal // debits what a purchase credited and credits what it debited; Original links them
	// KindStandIn is a purchase the switch approved in stand-in, booked from its advice without
	// the no-overdraft and status checks: the card may go below zero by it, and only by entries
	// of this kind (see Verify). It is reversed like a purchase.
	KindStandIn
	// Later: KindRefund, KindHoldPost, KindFee, KindSweep.
)

// String returns the lower-case kind name.
func (k Kind) String() string {
	switch k {
	case KindPurchase:
		return "purchase"
	case KindDeposit:
		return "deposit"
	case KindReversal:
		return "reversal"
	case KindStandIn:
		return "stand_in"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// AccountType says what an account represents. Only Card and InstitutionSettlement can be opened
// today; the others are reserved so their numbers never change once records exist.
type AccountType uint8

// Account types.
const (
	Card                  AccountType = iota + 1 // stored-value card, credit-normal
	InstitutionSettlement                        // settlement-payable, funding
	Debit                                        // reserved: bank debit account
	CreditLine                                   // reserved: overdraft repaid later
	Merchant                                     // reserved
	FeeIncome                                    // reserved
	Suspense                                     // reserved: reconciliation breaks
	Escrow                                       // reserved
)

// String returns the lower-case type name.
func (t AccountType) String() string {
	switch t {
	case Card:
		return "card"
	case InstitutionSettlement:
		return "institution_settlement"
	case Debit:
		return "debit"
	case CreditLine:
		return "credit_line"
	case Merchant:
		return "merchant"
	case FeeIncome:
		return "fee_income"
	case Suspense:
		return "suspense"
	case Escrow:
		return "escrow"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

func (t AccountType) valid() bool { return t >= Card && t <= Escrow }

// Status is an account's lifecycle state.
type Status uint8

// Account statuses. The zero Status is invalid.
const (
	Active  Status = iota + 1
	Blocked        // transactions decline with 62; balances stay
	Closed         // the card is unknown to channels (14); only a zero balance can close
)

// String returns the lower-case status name.
func (s Status) String() string {
	switch s {
	case Active:
		return "active"
	case Blocked:
		return "blocked"
	case Closed:
		return "closed"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

func (s Status) valid() bool { return s >= Active && s <= Closed }

// AccountFlags are TigerBeetle-style account constraints checked inside the state machine.
type AccountFlags uint16

// Account flags.
const (
	// DebitsMustNotExceedCredits forbids overdraft: a transfer that would make DebitsPosted exceed
	// CreditsPosted is declined with 51. Always set for cards. A stand-in booking (KindStandIn)
	// is the one exception: the switch has already approved it, so it is booked regardless.
	DebitsMustNotExceedCredits AccountFlags = 1 << iota

	knownFlags = DebitsMustNotExceedCredits
)

// Well-known accounts, created in the first commit of a shard.
const (
	SettlementPayableID uint64 = 1 // purchases credit it
	FundingID           uint64 = 2 // deposits debit it; may go negative

	firstAccountID uint64 = 1000 // ordinary accounts are numbered from here
)

// Account is the committed state of one account. The PAN itself is never stored in the record:
// only its mask, and a card/<PAN> index key that maps it to the id.
type Account struct {
	ID            uint64
	Type          AccountType
	Currency      uint16 // ISO 4217 numeric, e.g. 156 for CNY
	Status        Status
	Flags         AccountFlags
	Name          string // short label, ≤ maxName bytes
	MaskedPAN     string // first 6 and last 4 digits; "" for accounts without a card
	DebitsPosted  int64  // minor units
	CreditsPosted int64  // minor units
}

// Balance is CreditsPosted − DebitsPosted: what a card holder owns. Institution accounts read it
// with the opposite sign.
func (a Account) Balance() int64 { return a.CreditsPosted - a.DebitsPosted }

// Transfer is one journal entry: a single debit and a single credit of the same amount.
type Transfer struct {
	Seq      uint64 // per-shard journal sequence, 1, 2, 3, … with no gap
	TxID     TxID
	Kind     Kind
	Debit    uint64 // account id
	Credit   uint64 // account id
	Amount   int64  // minor units, > 0
	Currency uint16
	Time     int64  // unix nanoseconds, from the shard clock for the batch
	Terminal string // ≤ 15 bytes, optional
	Merchant string // ≤ 15 bytes, optional
	Original uint64 // KindReversal: Seq of the purchase (or stand-in) it reverses; 0 for every other kind
}

// Limits that keep every record far below badger's ValueThreshold (and under 256 bytes).
const (
	maxName       = 32
	maxAnnotation = 15 // ISO 8583 field 42 (card acceptor id) is 15 bytes; field 41 is 8
	minPAN        = 12
	maxPAN        = 19
)

// TxID is the idempotency key of a mutating request. The switch derives it from stable fields of
// the original message (acquirer, terminal, STAN, transmission time, MTI class) with NewTxID, so
// every retransmission maps to the same id, and a reversal can name the id of what it reverses.
type TxID [32]byte

// NewTxID returns SHA-256 over the parts, each prefixed with its length as a 4-byte big-endian
// integer, so ("ab","c") and ("a","bc") give different ids.
func NewTxID(parts ...[]byte) TxID {
	h := sha256.New()
	var n [4]byte
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var id TxID
	h.Sum(id[:0])
	return id
}

// IsZero reports whether id is the zero TxID, which the shard declines as a forgotten key.
func (id TxID) IsZero() bool { return id == TxID{} }

// Request is one channel operation for Do.
//
// An OpReversal names the purchase it undoes by that purchase's TxID (Original) and repeats its
// PAN, Amount and Currency. Actual is the amount the purchase ended at (ISO 8583 field 95): 0
// undoes it fully, anything between 0 and Amount partly. A reversal states a target, not a delta:
// after it, at most Amount − Actual of the purchase stands reversed, so a second reversal of the
// same purchase under another TxID (an 0400 and then an 0420) books only what is still missing,
// usually nothing. The total reversed never exceeds the purchase's amount.
//
// An OpAdvice carries what the purchase it stands in for carried (PAN, Amount, Currency,
// annotations) under that purchase's TxID, not one of its own: to the idempotency records the
// purchase and its advice are one transaction with one content. See Shard.Do for what it books.
type Request struct {
	Op       Op
	ID       TxID   // idempotency key; ignored for OpBalance; for OpAdvice the purchase's TxID
	PAN      string // card owner reference
	Amount   int64  // minor units; for OpReversal the original's amount
	Currency uint16 // ISO 4217 numeric
	Terminal string // journal annotation, optional, ≤ 15 bytes
	Merchant string // journal annotation, optional, ≤ 15 bytes
	Original TxID   // OpReversal: the TxID of the purchase to reverse
	Actual   int64  // OpReversal: what the purchase ended at, minor units; 0 reverses it fully
}

// Result is the outcome of a request. For a replayed request it is the first outcome, unchanged
// apart from Replayed.
type Result struct {
	Code      Code
	Replayed  bool   // the TxID was already recorded; nothing was booked now
	Seq       uint64 // journal sequence of the booking; 0 when nothing was booked
	Currency  uint16 // the card account's currency (0 when no card was found)
	Ledger    int64  // card balance after the operation (credits − debits), minor units
	Available int64  // available balance; equals Ledger until holds and credit lines exist
	AuthCode  string // 6 base-36 characters for approved bookings, "" otherwise
}

// authCode derives the approval code from the journal sequence: base 36, upper case, zero padded
// to six characters (wrapping after 36⁶ ≈ 2.2 billion bookings, which is fine for an approval code).
func authCode(seq uint64) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [6]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[seq%36]
		seq /= 36
	}
	return string(b[:])
}

// AccountSpec describes an account for OpenAccount.
type AccountSpec struct {
	Type        AccountType
	Currency    uint16
	Name        string
	PAN         string // cards only: bound through the card/<PAN> index; only the mask is kept
	NoOverdraft bool   // sets DebitsMustNotExceedCredits; cards always get it
}

// Stats are cheap counters for tests and operators.
type Stats struct {
	Requests uint64 // requests and admin commands handled by the writer
	Batches  uint64 // batches the writer assembled
	Commits  uint64 // successful badger commits
	LastSeq  uint64 // last committed journal sequence
}

// maskPAN keeps the first 6 and last 4 digits of a PAN and replaces the rest with '*'. PANs too
// short to keep both are masked except for the last 4 characters. Everything that logs, prints or
// stores a card number goes through it.
func maskPAN(pan string) string {
	if len(pan) < 13 {
		if len(pan) <= 4 {
			return stars(len(pan))
		}
		return stars(len(pan)-4) + pan[len(pan)-4:]
	}
	return pan[:6] + stars(len(pan)-10) + pan[len(pan)-4:]
}

func stars(n int) string {
	const s = "********************"
	if n <= len(s) {
		return s[:n]
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = '*'
	}
	return string(b)
}

// plausiblePAN reports whether pan has the shape of a card number (12–19 ASCII digits). Anything
// else cannot be bound, so a lookup for it is skipped.
func plausiblePAN(pan string) bool {
	if len(pan) < minPAN || len(pan) > maxPAN {
		return false
	}
	for i := 0; i < len(pan); i++ {
		if pan[i] < '0' || pan[i] > '9' {
			return false
		}
	}
	return true
}
