package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/junction-switch/junction/codec"
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

// ErrNumberBound is returned by OpenAccount when the account or phone number already belongs to
// an account.
var ErrNumberBound = errors.New("ledger: account number already bound to an account")

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
	InvalidTransaction Code = "12" // unsupported operation or malformed request; a reversal of a reversal or refund
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
	// NotPermitted declines an operation the account's type does not take: a purchase on a
	// settlement account, a transfer into a card from itself.
	NotPermitted   Code = codec.RCNotPermitted
	ExceedsAmount  Code = codec.RCExceedsAmount // the account's per-day amount limit would be exceeded
	RestrictedCard Code = "62"                  // account blocked
	ExceedsCount   Code = codec.RCExceedsCount  // the account's per-day count limit would be exceeded
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
	// OpDeposit tops up: debit funding, credit the card (PAN) or, without a PAN, the account
	// whose number or phone number is From.
	OpDeposit
	// OpReversal undoes an approved purchase, completion, top-up, transfer or payment, fully
	// or partly, back the way it came; of a pre-authorisation or escrow it voids the hold.
	OpReversal
	// OpAdvice books a purchase the switch approved in stand-in while the shard was down, as
	// OpPurchase does but forced: the card may be blocked or go below zero. Its ID is the
	// purchase's TxID, so that the purchase and its advice book at most once between them.
	OpAdvice
	// OpPreAuth places a hold on the card: a pending debit (the card) and credit
	// (settlement-payable) that lowers the available balance until a completion posts it, a
	// reversal voids it or it expires (Options.HoldTTL after the batch that placed it).
	OpPreAuth
	// OpCompletion posts the hold of the pre-authorisation named by Original, fully or partly
	// (Amount ≤ what is still held); the rest of the hold is released.
	OpCompletion
	// OpRefund gives back part or all of an approved purchase (or completion) named by Original:
	// debit settlement-payable, credit the card. Refunds and reversals of one purchase together
	// never give back more than it booked.
	OpRefund
	// OpTransfer moves Amount from the card (PAN) or the account From to the account To.
	OpTransfer
	// OpPayment pays a bill: as OpTransfer, into a merchant (biller) account named by To, its
	// account number or biller code.
	OpPayment

	opOpenAccount // admin, internal: AccountSpec through the writer
	opSetStatus   // admin, internal: change an account's status
	opSetLimits   // admin, internal: change an account's limits
	opCutover     // admin, internal: move into another settlement window
	opAdjust      // admin, internal: a reconciliation adjustment (Adjustment)
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
	case OpPreAuth:
		return "preauth"
	case OpCompletion:
		return "completion"
	case OpRefund:
		return "refund"
	case OpTransfer:
		return "transfer"
	case OpPayment:
		return "payment"
	case opOpenAccount:
		return "open_account"
	case opSetStatus:
		return "set_status"
	case opSetLimits:
		return "set_limits"
	case opCutover:
		return "cutover"
	case opAdjust:
		return "adjust"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// channelOp reports whether o is one of the operations Do accepts.
func (o Op) channelOp() bool { return o >= OpPurchase && o <= lastChannelOp }

// refers reports whether o names an original request (Request.Original).
func (o Op) refers() bool { return o == OpReversal || o == OpCompletion || o == OpRefund }

// lastChannelOp is the highest channel Op; metrics size their tables by it.
const lastChannelOp = OpPayment

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
	// KindHold is a pending transfer: it adds Amount to the debit account's DebitsPending and
	// the credit account's CreditsPending and posts nothing. Expires is when the sweep releases it.
	KindHold
	// KindPost posts Amount of the hold named by Original and releases all of what the hold
	// still had pending (Released ≥ Amount): the completion of a pre-authorisation.
	KindPost
	// KindVoid releases Amount of the hold named by Original: a reversal of the pre-authorisation.
	KindVoid
	// KindExpire releases what the hold named by Original still had pending, when it expired. It
	// carries the hold's TxID: no request asked for it.
	KindExpire
	// KindRefund gives back part of the purchase (or completion) named by Original.
	KindRefund
	KindTransfer // between two customer accounts
	KindPayment  // a bill paid into a biller (merchant) account
	// KindAdjust is a reconciliation correction between an account and the shard's suspense
	// account (SuspenseID), booked forced; Original is the entry it corrects, or 0. See Adjust.
	KindAdjust

	lastKind = KindAdjust
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
	case KindHold:
		return "hold"
	case KindPost:
		return "post"
	case KindVoid:
		return "void"
	case KindExpire:
		return "expire"
	case KindRefund:
		return "refund"
	case KindTransfer:
		return "transfer"
	case KindPayment:
		return "payment"
	case KindAdjust:
		return "adjust"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// AccountType says what an account represents. Cards, debit and credit-line accounts are the
// customer accounts that channels spend from; the others only receive from channels.
type AccountType uint8

// Account types.
const (
	Card                  AccountType = iota + 1 // stored-value card, credit-normal
	InstitutionSettlement                        // settlement-payable, funding
	Debit                                        // a debit account, e.g. bound to a fixed-line phone number
	CreditLine                                   // spends up to its credit limit beyond its credits
	Merchant                                     // merchants and billers (water, electricity, telephone)
	FeeIncome                                    // reserved
	Suspense                                     // reserved: reconciliation breaks
	Escrow                                       // reserved
)

// spends reports whether channels may debit accounts of type t.
func (t AccountType) spends() bool { return t == Card || t == Debit || t == CreditLine }

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
	// DebitsMustNotExceedCredits forbids overdraft: a transfer or hold that would make
	// DebitsPosted + DebitsPending exceed CreditsPosted + CreditLimit is declined with 51. Always
	// set for cards, debit and credit-line accounts. A stand-in booking (KindStandIn) is the one
	// exception: the switch has already approved it, so it is booked regardless.
	DebitsMustNotExceedCredits AccountFlags = 1 << iota

	knownFlags = DebitsMustNotExceedCredits
)

// Well-known accounts, created in the first commit of a shard (and SuspenseID, window.go).
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

	// Since account record v2.
	DebitsPending  int64 // held by pending transfers (KindHold) not yet posted, voided or expired
	CreditsPending int64

	// Since account record v3: limits, and what today has used of them.
	Limits
	Day      int64 // the UTC day (days since 1970-01-01) that DaySpent and DayCount count
	DaySpent int64 // minor units spent on Day; counted only while a daily limit is set
	DayCount int64 // spending transfers on Day; counted only while a daily limit is set
}

// Limits are an account's spending limits. 0 means none.
type Limits struct {
	CreditLimit int64 // CreditLine only: how far debits and holds may exceed credits
	DailyAmount int64 // per UTC day: what the account may spend (61 beyond)
	DailyCount  int64 // per UTC day: how many spending transfers (65 beyond)
}

// Balance is CreditsPosted − DebitsPosted: what a card holder owns. Institution accounts read it
// with the opposite sign.
func (a Account) Balance() int64 { return a.CreditsPosted - a.DebitsPosted }

// Available is what the holder can spend: the balance less what holds keep pending, plus the
// credit limit.
func (a Account) Available() int64 {
	return a.CreditsPosted - a.DebitsPosted - a.DebitsPending + a.CreditLimit
}

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
	// Original is the Seq of the entry this one refers to: for KindReversal and KindRefund the
	// purchase (stand-in or completion) they give back, for KindPost, KindVoid and KindExpire the
	// hold; for KindAdjust the entry it corrects, or 0. 0 for every other kind.
	Original uint64
	Expires  int64 // KindHold: unix nanoseconds when the sweep releases it; 0 for every other kind
	Released int64 // KindPost, KindVoid, KindExpire: what the entry takes off the hold's pending amount

	// Where the request came from and the settlement window it was booked in (transfer record
	// v4; "" and 0 in entries booked before windows existed). The head ledger rolls entries up
	// by Acquirer and Merchant, assigns them to clearing by Window, and reconciles partners'
	// files against them by RRN and STAN.
	Acquirer   string // ISO 8583 field 32, ≤ 11 digits
	STAN       string // field 11, ≤ 6 digits
	RRN        string // field 37, ≤ 12 characters
	Window     uint32 // the shard's settlement window when it booked the entry (see Shard.Cutover)
	SettleDate uint32 // that window's settlement date, YYYYMMDD (field 15 carries its MMDD)
}

// releases reports whether entries of kind k take something off a hold's pending amount
// (Transfer.Released).
func (k Kind) releases() bool { return k == KindPost || k == KindVoid || k == KindExpire }

// refers reports whether entries of kind k must name an original entry (Transfer.Original). An
// adjustment may name one or not.
func (k Kind) refers() bool {
	switch k {
	case KindReversal, KindRefund, KindPost, KindVoid, KindExpire:
		return true
	}
	return false
}

// posts is what the entry adds to the debit account's DebitsPosted and to the credit account's
// CreditsPosted; pends is what it adds to their DebitsPending and CreditsPending (negative when
// it releases a hold).
func (t *Transfer) posts() int64 {
	switch t.Kind {
	case KindHold, KindVoid, KindExpire:
		return 0
	}
	return t.Amount
}

func (t *Transfer) pends() int64 {
	switch t.Kind {
	case KindHold:
		return t.Amount
	case KindPost, KindVoid, KindExpire:
		return -t.Released
	}
	return 0
}

// spends reports whether the entry lowers what its debit account has available: the entries the
// no-overdraft rule is checked on. Releases and posts of holds never lower it.
func (t *Transfer) spends() bool {
	switch t.Kind {
	case KindPost, KindVoid, KindExpire:
		return false
	}
	return true
}

// Limits that keep every record far below badger's ValueThreshold (and under 256 bytes).
const (
	maxName       = 32
	maxAnnotation = 15 // ISO 8583 field 42 (card acceptor id) is 15 bytes; field 41 is 8
	minPAN        = 12
	maxPAN        = 19
	maxNumber     = 28 // ISO 8583 fields 102 and 103
	maxAcquirer   = 11 // ISO 8583 field 32, n..11
	maxSTAN       = 6  // field 11, n6
	maxRRN        = 12 // field 37, an12
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
	PAN      string // card owner reference; empty when From names the account
	Amount   int64  // minor units; for OpReversal the original's amount, for OpCompletion what to post
	Currency uint16 // ISO 4217 numeric
	Terminal string // journal annotation, optional, ≤ 15 bytes
	Merchant string // journal annotation, optional, ≤ 15 bytes
	From     string // owner reference (account or phone number) of the account when PAN is empty
	To       string // OpTransfer, OpPayment: owner reference of the account credited (biller code too)
	Original TxID   // OpReversal, OpCompletion, OpRefund: the TxID of the request it refers to
	Actual   int64  // OpReversal: what the purchase ended at, minor units; 0 reverses it fully

	// Annotations copied into the journal entry (Transfer); not part of the request's content
	// digest, so a retransmission that lacks them is still the same request.
	Acquirer string // field 32, ≤ 11 digits
	STAN     string // field 11, ≤ 6 digits
	RRN      string // field 37, ≤ 12 characters
}

// Result is the outcome of a request. For a replayed request it is the first outcome, unchanged
// apart from Replayed.
type Result struct {
	Code      Code
	Replayed  bool   // the TxID was already recorded; nothing was booked now
	Seq       uint64 // journal sequence of the booking; 0 when nothing was booked
	Currency  uint16 // the card account's currency (0 when no card was found)
	Ledger    int64  // card balance after the operation (credits − debits), minor units
	Available int64  // available balance: Ledger less what holds keep pending, plus any credit limit
	AuthCode  string // 6 base-36 characters for approved bookings, "" otherwise
	// The settlement window the request was booked in and its date (YYYYMMDD); the ISO host
	// answers the date's MMDD in field 15.
	Window     uint32
	SettleDate uint32
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
	PAN         string // cards, debit and credit-line accounts: bound through the card/<PAN> index; only the mask is kept
	Number      string // account or phone number (1–28 of 0-9, A-Z, a-z, -): bound through o/<number>
	NoOverdraft bool   // sets DebitsMustNotExceedCredits; cards, debit and credit-line accounts always get it
	Limits      Limits // CreditLimit for credit lines only
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

// plausibleNumber reports whether n can be an account number, phone number or biller code.
func plausibleNumber(n string) bool {
	if len(n) == 0 || len(n) > maxNumber {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

// unixDay is the UTC day of a clock value: days since 1970-01-01.
func unixDay(ns int64) int64 {
	const day = 24 * 60 * 60 * 1e9
	if ns < 0 {
		return (ns+1)/day - 1
	}
	return ns / day
}
