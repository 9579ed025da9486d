package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Key layout. Every key starts with a short ASCII prefix; the prefixes differ in their first byte
// (or, for m/, are exact keys), so a prefix scan of one never sees another. The ids of the
// well-known accounts are 1 (settlement-payable), 2 (funding) and 3 (suspense):
//
//	m/seq              last committed journal sequence (u64)
//	m/nextacct         next ordinary account id to allocate (u64, starts at 1000)
//	m/window           the settlement window the shard books in now and its date
//	w/<window BE u32>  cutover point: the date of that window and the last seq booked before it
//	                   opened (one per window the shard has been in, skipped windows have none)
//	a/<id BE u64>      account record
//	card/<PAN>         account id (u64) of the card; the only place a full PAN is kept
//	o/<number>         account id (u64) of the account with this account or phone number, or
//	                   biller code
//	j/<seq BE u64>     journal entry (transfer); big-endian so iteration is in sequence order
//	t/<txid 32 bytes>  idempotency record: content digest and first outcome (and, for a
//	                   purchase, the amount reversed so far), or a reversal's tombstone
//	h/<expires BE u64><seq BE u64>
//	                   the TxID of a hold still pending, by expiry: what the sweep walks
//
// Values are compact binary records: a version byte, the fields in fixed order (integers big
// endian, strings with a one-byte length), and a CRC-32C of everything before it. The CRC is ours,
// on top of badger's own checksums, so that a torn or corrupted value is reported, never booked.
// Every record is well under 256 bytes, far below badger's ValueThreshold, so it travels in the
// LSM and its WAL and never in the value log.
//
// A new version appends fields; every version stays readable. Each value has exactly one
// encoding (the fuzz targets check that what decodes re-encodes to the same bytes), so an encoder
// writes the lowest version that holds the value:
//
//	account    v1  id, type, currency, status, flags, name, mask, debits and credits posted
//	           v2  adds debits and credits pending (u64 each); written when either is not 0
//	           v3  adds credit limit, daily amount and count limits, and the day with what it
//	               spent and how often (u64 each); written when any of these is not 0
//	transfer   v1  purchases and deposits; since stand-in advices also KindStandIn (4), which a
//	               shard from before them refuses as corrupt rather than verify as a purchase
//	           v2  adds Original (u64); written for reversals and refunds only
//	           v3  adds Expires and Released (u64 each); written for holds and the entries that
//	               post, void or expire them (KindHold, KindPost, KindVoid, KindExpire) only
//	           v4  v3's fields for every kind, then Acquirer (≤ 11), STAN (≤ 6) and RRN (≤ 12)
//	               as short strings, Window and SettleDate (u32 each); written when any of these
//	               five is set (every entry booked since settlement windows), and always for
//	               KindAdjust (12), which older shards refuse as corrupt. An entry whose five are
//	               all empty keeps its kind's older version, and a v4 entry with all five empty
//	               is refused unless it is an adjustment
//	tx record  v1  digest, code, seq, currency, ledger, available
//	           v2  adds kind (u8), account (u64), amount (u64), reversed (u64); written for every
//	               new record. A v1 record has kind txUnknown until the loader reads its journal
//	               entry to fill in account and amount (see Shard.loadTx); a reversal then writes
//	               it back as v2. Since stand-in advices kind may be txStandIn (5).
//	           v3  adds flags (u8, never 0: a record without flags is v2); written only for a
//	               declined purchase that a reversal has since named (txVoided) and for the
//	               completion that released an escrow to its seller (txToSeller)
//	           v4  adds expires (u64) and counter (u64, never 0: the other account of the
//	               booking: the one a hold credits, settlement-payable or an escrow's seller, the
//	               funding account of a top-up, the payee of a transfer or payment); written for
//	               approved holds (expires never 0, flags 0 or txExpired) and approved top-ups,
//	               transfers and payments (expires 0, flags 0)
//	               Since adjustments kind may be txAdjust (12; v2, counter 0).
//	hold ref   v1  the TxID of the hold (32 bytes)
//	window     v1  window (u32, ≥ 1), settlement date (u32, YYYYMMDD)
//	cut point  v1  settlement date (u32, YYYYMMDD), last seq (u64)
var (
	keySeq      = []byte("m/seq")
	keyNextAcct = []byte("m/nextacct")
	keyWindow   = []byte("m/window")
)

const (
	prefixAccount = "a/"
	prefixCard    = "card/"
	prefixJournal = "j/"
	prefixTx      = "t/"
	prefixHold    = "h/"
	prefixOwner   = "o/"
	prefixCut     = "w/"
)

// Record versions.
const (
	recordV1 = 1
	recordV2 = 2
	recordV3 = 3 // transfers and tx records
	recordV4 = 4 // transfers and tx records
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Sizes of the fixed parts of each record, for bounds checks.
const (
	crcSize        = 4
	accountFixed   = 1 + 8 + 1 + 2 + 1 + 2 + 1 + 1 + 8 + 8 + crcSize      // v1 + name + mask; v2 adds 16
	transferFixed  = 1 + 8 + 32 + 1 + 8 + 8 + 8 + 2 + 8 + 1 + 1 + crcSize // v1; v2 adds 8, v3 24, v4 35 + strings
	txRecordSize   = 1 + 32 + 2 + 8 + 2 + 8 + 8 + crcSize                 // v1
	txRecordV2Size = txRecordSize + 1 + 8 + 8 + 8
	txRecordV3Size = txRecordV2Size + 1
	txRecordV4Size = txRecordV3Size + 8 + 8
	holdRefSize    = 1 + 32 + crcSize
	counterSize    = 1 + 8 + crcSize
	windowSize     = 1 + 4 + 4 + crcSize
	cutSize        = 1 + 4 + 8 + crcSize
	maxRecordBytes = 256
)

var errCorrupt = errors.New("ledger: corrupt record")

func corrupt(what, why string) error { return fmt.Errorf("%w: %s: %s", errCorrupt, what, why) }

func appendAccountKey(dst []byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, prefixAccount...), id)
}

func appendJournalKey(dst []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, prefixJournal...), seq)
}

func appendCardKey(dst []byte, pan string) []byte { return append(append(dst, prefixCard...), pan...) }

func appendOwnerKey(dst []byte, number string) []byte {
	return append(append(dst, prefixOwner...), number...)
}

func appendTxKey(dst []byte, id *TxID) []byte { return append(append(dst, prefixTx...), id[:]...) }

// appendHoldKey is the key of a pending hold in the expiry index: ordered by expiry, then by the
// hold's journal sequence, which is the order the sweep releases them in.
func appendHoldKey(dst []byte, expires int64, seq uint64) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, prefixHold...), uint64(expires))
	return binary.BigEndian.AppendUint64(dst, seq)
}

// appendHoldRef encodes the value of a hold key: the hold's TxID.
func appendHoldRef(dst []byte, id *TxID) []byte {
	start := len(dst)
	dst = append(dst, recordV1)
	dst = append(dst, id[:]...)
	return seal(dst, start)
}

func decodeHoldRef(b []byte) (TxID, error) {
	const what = "hold ref"
	_, p, err := unseal(what, b, holdRefSize, recordV1)
	if err != nil {
		return TxID{}, err
	}
	r := reader{b: p}
	var id TxID
	copy(id[:], r.take(len(id)))
	return id, r.done(what)
}

// seal appends the CRC of b[start:] to b.
func seal(b []byte, start int) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// unseal checks the version byte (1..latest) and CRC and returns the version and the payload
// between them. min is the size of the smallest version.
func unseal(what string, b []byte, min int, latest byte) (byte, []byte, error) {
	if len(b) < min {
		return 0, nil, corrupt(what, fmt.Sprintf("%d bytes, want at least %d", len(b), min))
	}
	if len(b) > maxRecordBytes {
		return 0, nil, corrupt(what, fmt.Sprintf("%d bytes, longer than any record", len(b)))
	}
	if b[0] < recordV1 || b[0] > latest {
		return 0, nil, corrupt(what, fmt.Sprintf("unknown version %d", b[0]))
	}
	body := b[:len(b)-crcSize]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[len(b)-crcSize:]); got != want {
		return 0, nil, corrupt(what, "checksum mismatch")
	}
	return b[0], body[1:], nil
}

// reader walks a payload; the first short read sets err and every later read returns zero.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = errShort
		r.b = nil
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

var errShort = errors.New("short")

func (r *reader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (r *reader) str(max int) string {
	n := int(r.u8())
	if n > max {
		r.err = fmt.Errorf("string of %d bytes, limit %d", n, max)
		return ""
	}
	return string(r.take(n))
}

// done reports the first error, or trailing bytes.
func (r *reader) done(what string) error {
	if r.err != nil {
		return corrupt(what, r.err.Error())
	}
	if len(r.b) != 0 {
		return corrupt(what, fmt.Sprintf("%d trailing bytes", len(r.b)))
	}
	return nil
}

func appendAccount(dst []byte, a *Account) []byte {
	start := len(dst)
	version := byte(recordV1)
	switch {
	case a.Limits != (Limits{}) || a.Day != 0 || a.DaySpent != 0 || a.DayCount != 0:
		version = recordV3
	case a.DebitsPending != 0 || a.CreditsPending != 0:
		version = recordV2
	}
	dst = append(dst, version)
	dst = binary.BigEndian.AppendUint64(dst, a.ID)
	dst = append(dst, byte(a.Type))
	dst = binary.BigEndian.AppendUint16(dst, a.Currency)
	dst = append(dst, byte(a.Status))
	dst = binary.BigEndian.AppendUint16(dst, uint16(a.Flags))
	dst = append(dst, byte(len(a.Name)))
	dst = append(dst, a.Name...)
	dst = append(dst, byte(len(a.MaskedPAN)))
	dst = append(dst, a.MaskedPAN...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(a.DebitsPosted))
	dst = binary.BigEndian.AppendUint64(dst, uint64(a.CreditsPosted))
	if version >= recordV2 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(a.DebitsPending))
		dst = binary.BigEndian.AppendUint64(dst, uint64(a.CreditsPending))
	}
	if version >= recordV3 {
		for _, v := range [...]int64{a.CreditLimit, a.DailyAmount, a.DailyCount, a.Day, a.DaySpent, a.DayCount} {
			dst = binary.BigEndian.AppendUint64(dst, uint64(v))
		}
	}
	return seal(dst, start)
}

func decodeAccount(b []byte) (Account, error) {
	const what = "account"
	version, p, err := unseal(what, b, accountFixed, recordV3)
	if err != nil {
		return Account{}, err
	}
	r := reader{b: p}
	a := Account{
		ID:        r.u64(),
		Type:      AccountType(r.u8()),
		Currency:  r.u16(),
		Status:    Status(r.u8()),
		Flags:     AccountFlags(r.u16()),
		Name:      r.str(maxName),
		MaskedPAN: r.str(maxPAN),
	}
	a.DebitsPosted = int64(r.u64())
	a.CreditsPosted = int64(r.u64())
	if version >= recordV2 {
		a.DebitsPending = int64(r.u64())
		a.CreditsPending = int64(r.u64())
	}
	if version >= recordV3 {
		for _, v := range [...]*int64{&a.CreditLimit, &a.DailyAmount, &a.DailyCount, &a.Day, &a.DaySpent, &a.DayCount} {
			*v = int64(r.u64())
		}
	}
	if err := r.done(what); err != nil {
		return Account{}, err
	}
	switch {
	case version == recordV2 && a.DebitsPending == 0 && a.CreditsPending == 0:
		return Account{}, corrupt(what, fmt.Sprintf("account %d: v2 without pending amounts", a.ID))
	case version == recordV3 && a.Limits == (Limits{}) && a.Day == 0 && a.DaySpent == 0 && a.DayCount == 0:
		return Account{}, corrupt(what, fmt.Sprintf("account %d: v3 without limits", a.ID))
	case a.DebitsPending < 0 || a.CreditsPending < 0 || a.CreditLimit < 0 || a.DailyAmount < 0 || a.DailyCount < 0 ||
		a.Day < 0 || a.DaySpent < 0 || a.DayCount < 0:
		return Account{}, corrupt(what, fmt.Sprintf("account %d: negative pending amount, limit or use", a.ID))
	case a.CreditLimit != 0 && a.Type != CreditLine:
		return Account{}, corrupt(what, fmt.Sprintf("account %d: credit limit on a %s account", a.ID, a.Type))
	case !a.Type.valid():
		return Account{}, corrupt(what, fmt.Sprintf("account %d: invalid type %d", a.ID, a.Type))
	case !a.Status.valid():
		return Account{}, corrupt(what, fmt.Sprintf("account %d: invalid status %d", a.ID, a.Status))
	case a.Flags&^knownFlags != 0:
		return Account{}, corrupt(what, fmt.Sprintf("account %d: unknown flags %#x", a.ID, a.Flags))
	}
	return a, nil
}

func appendTransfer(dst []byte, t *Transfer) []byte {
	start := len(dst)
	version := transferVersion(t)
	dst = append(dst, version)
	dst = binary.BigEndian.AppendUint64(dst, t.Seq)
	dst = append(dst, t.TxID[:]...)
	dst = append(dst, byte(t.Kind))
	dst = binary.BigEndian.AppendUint64(dst, t.Debit)
	dst = binary.BigEndian.AppendUint64(dst, t.Credit)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Amount))
	dst = binary.BigEndian.AppendUint16(dst, t.Currency)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Time))
	dst = appendStr(dst, t.Terminal)
	dst = appendStr(dst, t.Merchant)
	if version >= recordV2 {
		dst = binary.BigEndian.AppendUint64(dst, t.Original)
	}
	if version >= recordV3 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(t.Expires))
		dst = binary.BigEndian.AppendUint64(dst, uint64(t.Released))
	}
	if version >= recordV4 {
		dst = appendStr(dst, t.Acquirer)
		dst = appendStr(dst, t.STAN)
		dst = appendStr(dst, t.RRN)
		dst = binary.BigEndian.AppendUint32(dst, t.Window)
		dst = binary.BigEndian.AppendUint32(dst, t.SettleDate)
	}
	return seal(dst, start)
}

func appendStr(dst []byte, s string) []byte { return append(append(dst, byte(len(s))), s...) }

// transferVersion is the one record version that holds t: v4 when it carries annotations or a
// window, otherwise its kind's (kindVersion). So an entry has one encoding, entries from before
// windows keep theirs, and an older shard refuses what it cannot read.
func transferVersion(t *Transfer) byte {
	if t.annotated() {
		return recordV4
	}
	return kindVersion(t.Kind)
}

// annotated reports whether t carries any of the fields that only transfer record v4 holds.
func (t *Transfer) annotated() bool {
	return t.Acquirer != "" || t.STAN != "" || t.RRN != "" || t.Window != 0 || t.SettleDate != 0
}

// kindVersion is the lowest record version that holds entries of kind k. Every kind has exactly
// one, so an older shard refuses a kind it does not know.
func kindVersion(k Kind) byte {
	switch k {
	case KindReversal, KindRefund:
		return recordV2
	case KindHold, KindPost, KindVoid, KindExpire:
		return recordV3
	case KindAdjust:
		return recordV4
	}
	return recordV1
}

func decodeTransfer(b []byte) (Transfer, error) {
	const what = "transfer"
	version, p, err := unseal(what, b, transferFixed, recordV4)
	if err != nil {
		return Transfer{}, err
	}
	r := reader{b: p}
	var t Transfer
	t.Seq = r.u64()
	copy(t.TxID[:], r.take(len(t.TxID)))
	t.Kind = Kind(r.u8())
	t.Debit = r.u64()
	t.Credit = r.u64()
	t.Amount = int64(r.u64())
	t.Currency = r.u16()
	t.Time = int64(r.u64())
	t.Terminal = r.str(maxAnnotation)
	t.Merchant = r.str(maxAnnotation)
	if version >= recordV2 {
		t.Original = r.u64()
	}
	if version >= recordV3 {
		t.Expires = int64(r.u64())
		t.Released = int64(r.u64())
	}
	if version >= recordV4 {
		t.Acquirer = r.str(maxAcquirer)
		t.STAN = r.str(maxSTAN)
		t.RRN = r.str(maxRRN)
		t.Window = r.u32()
		t.SettleDate = r.u32()
	}
	if err := r.done(what); err != nil {
		return Transfer{}, err
	}
	switch {
	case t.Kind < KindPurchase || t.Kind > lastKind || transferVersion(&t) != version:
		return Transfer{}, corrupt(what, fmt.Sprintf("seq %d: kind %d in a v%d entry", t.Seq, t.Kind, version))
	case t.Kind != KindAdjust && (t.Original != 0) != t.Kind.refers():
		return Transfer{}, corrupt(what, fmt.Sprintf("seq %d: %s with original %d", t.Seq, t.Kind, t.Original))
	case (t.Expires != 0) != (t.Kind == KindHold):
		return Transfer{}, corrupt(what, fmt.Sprintf("seq %d: %s expiring at %d", t.Seq, t.Kind, t.Expires))
	case t.Kind == KindHold && t.Released != 0,
		t.Kind == KindPost && t.Released < t.Amount,
		(t.Kind == KindVoid || t.Kind == KindExpire) && t.Released != t.Amount,
		!t.Kind.releases() && t.Kind != KindHold && t.Released != 0:
		return Transfer{}, corrupt(what, fmt.Sprintf("seq %d: %s of %d releasing %d", t.Seq, t.Kind, t.Amount, t.Released))
	case !validKeys(t.Acquirer, t.STAN, t.RRN):
		return Transfer{}, corrupt(what, fmt.Sprintf("seq %d: acquirer, STAN or RRN with characters no ISO field carries", t.Seq))
	}
	return t, nil
}

// txRecord is what t/<txid> holds: the digest of the first request's content and its outcome,
// and, for a purchase, how much of it has been reversed since. The auth code is not stored; it is
// derived from Seq again on replay. One exception to "first": a stand-in advice for a purchase
// that was declined books all the same, and its outcome replaces the decline (see Shard.Do).
type txRecord struct {
	digest    [32]byte // zero in an unclaimed tombstone
	code      Code
	seq       uint64
	currency  uint16
	ledger    int64
	available int64

	// Since v2.
	kind     txKind
	account  uint64 // the card account of the booking; 0 when nothing was booked
	amount   int64  // the amount booked, minor units; 0 when nothing was
	reversed int64  // purchases: the part of amount that reversals have undone, 0..amount

	// Since v3.
	flags txFlags

	// Since v4: approved holds, top-ups, transfers and payments.
	expires int64  // unix nanoseconds when the sweep releases what the hold still has pending
	counter uint64 // the other account: what a hold credits, a top-up debits, a transfer credits

	// Not stored: the settlement window and date of the booking (seq), read from its journal
	// entry by the loader for a request's own record, so that a replay answers them too.
	window, date uint32
}

// txKind says which request wrote a tx record.
type txKind uint8

// Tx record kinds.
const (
	txUnknown  txKind = iota // a v1 record, from before records said; see recordV2
	txPurchase               // OpPurchase
	txDeposit                // OpDeposit
	txReversal               // OpReversal
	// txTombstone is written under the TxID of a reversal's original that had no record yet: it
	// holds the answer TooLate for that original, should it still arrive, and never books.
	txTombstone
	// txStandIn is written by OpAdvice, under the TxID of the purchase it stands in for: its
	// forced booking, or the decline (14, 13) that booked nothing. It is reversed like a purchase.
	txStandIn
	// txHold is written by OpPreAuth. For an approved hold, amount is what it held and reversed
	// what voids, its completion and its expiry have released since; amount − reversed is still
	// pending, and the hold is in the expiry index (h/) while that is above 0.
	txHold
	txCompletion // OpCompletion: amount is what it posted; reversed and refunded like a purchase
	txRefund     // OpRefund: amount is what it gave back
	txTransfer   // OpTransfer: account is the account debited
	txPayment    // OpPayment: account is the account debited
	// txAdjust is written by Shard.Adjust: account is the account adjusted (not suspense),
	// amount what was booked; declines (14, 13, 12) are recorded too.
	txAdjust
)

// givesBack reports whether records of kind k are purchases that reversals and refunds undo.
func (k txKind) givesBack() bool { return k == txPurchase || k == txStandIn || k == txCompletion }

// movesMoney reports whether records of kind k are top-ups, transfers or payments: reversed by
// swapping their accounts back, from the account they credited.
func (k txKind) movesMoney() bool { return k == txDeposit || k == txTransfer || k == txPayment }

// txFlags are facts about a TxID learnt after its first outcome.
type txFlags uint8

// Tx record flags.
const (
	// txVoided marks a declined purchase that a reversal has named since: nothing may book
	// under its TxID any more, a stand-in advice included, just as after a tombstone.
	txVoided txFlags = 1 << iota
	// txExpired marks a hold that the sweep released, in whole or in what was left of it.
	txExpired
	// txToSeller marks a completion that released an escrow to its seller: final, it is neither
	// reversed nor refunded (12); the buyer's refund is the escrow's reversal before release.
	txToSeller

	knownTxFlags = txVoided | txExpired | txToSeller
)

// txKindOf maps a booking operation to the kind of record it writes.
func txKindOf(op Op) txKind {
	switch op {
	case OpPurchase:
		return txPurchase
	case OpDeposit:
		return txDeposit
	case OpReversal:
		return txReversal
	case OpAdvice:
		return txStandIn
	case OpPreAuth:
		return txHold
	case OpCompletion:
		return txCompletion
	case OpRefund:
		return txRefund
	case OpTransfer:
		return txTransfer
	case OpPayment:
		return txPayment
	case opAdjust:
		return txAdjust
	}
	panic("ledger: no tx record kind for " + op.String())
}

func (r *txRecord) result() Result {
	res := Result{
		Code:      r.code,
		Seq:       r.seq,
		Currency:  r.currency,
		Ledger:    r.ledger,
		Available: r.available,
	}
	if r.code == Approved && r.seq != 0 {
		res.AuthCode = authCode(r.seq)
		res.Window, res.SettleDate = r.window, r.date
	}
	return res
}

func appendTxRecord(dst []byte, t *txRecord) []byte {
	start := len(dst)
	version := byte(recordV2)
	switch {
	case t.kind == txUnknown:
		version = recordV1 // only a v1 record decoded and not filled in encodes like this
	case t.counter != 0:
		version = recordV4
	case t.flags != 0:
		version = recordV3
	}
	dst = append(dst, version)
	dst = append(dst, t.digest[:]...)
	var code [2]byte
	copy(code[:], t.code)
	dst = append(dst, code[:]...)
	dst = binary.BigEndian.AppendUint64(dst, t.seq)
	dst = binary.BigEndian.AppendUint16(dst, t.currency)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.ledger))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.available))
	if version >= recordV2 {
		dst = append(dst, byte(t.kind))
		dst = binary.BigEndian.AppendUint64(dst, t.account)
		dst = binary.BigEndian.AppendUint64(dst, uint64(t.amount))
		dst = binary.BigEndian.AppendUint64(dst, uint64(t.reversed))
	}
	if version >= recordV3 {
		dst = append(dst, byte(t.flags))
	}
	if version >= recordV4 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(t.expires))
		dst = binary.BigEndian.AppendUint64(dst, t.counter)
	}
	return seal(dst, start)
}

func decodeTxRecord(b []byte) (txRecord, error) {
	const what = "tx record"
	version, p, err := unseal(what, b, txRecordSize, recordV4)
	if err != nil {
		return txRecord{}, err
	}
	r := reader{b: p}
	var t txRecord
	copy(t.digest[:], r.take(len(t.digest)))
	code := r.take(2)
	t.seq = r.u64()
	t.currency = r.u16()
	t.ledger = int64(r.u64())
	t.available = int64(r.u64())
	if version >= recordV2 {
		t.kind = txKind(r.u8())
		t.account = r.u64()
		t.amount = int64(r.u64())
		t.reversed = int64(r.u64())
	}
	if version >= recordV3 {
		t.flags = txFlags(r.u8())
	}
	if version >= recordV4 {
		t.expires = int64(r.u64())
		t.counter = r.u64()
	}
	if err := r.done(what); err != nil {
		return txRecord{}, err
	}
	c, ok := knownCode(code)
	if !ok {
		return txRecord{}, corrupt(what, fmt.Sprintf("unknown response code %q", code))
	}
	t.code = c
	switch {
	case version >= recordV2 && (t.kind == txUnknown || t.kind > txAdjust):
		return txRecord{}, corrupt(what, fmt.Sprintf("invalid kind %d", t.kind))
	case t.amount < 0 || t.reversed < 0 || t.reversed > t.amount:
		return txRecord{}, corrupt(what, fmt.Sprintf("amount %d, reversed %d", t.amount, t.reversed))
	case t.reversed != 0 && !t.kind.givesBack() && t.kind != txHold && !t.kind.movesMoney():
		return txRecord{}, corrupt(what, fmt.Sprintf("kind %d with a reversed amount", t.kind))
	case version == recordV3 && t.flags == 0:
		return txRecord{}, corrupt(what, "v3 without flags")
	case version == recordV4 && (t.counter == 0 || t.code != Approved || t.account == 0 ||
		(t.kind == txHold) != (t.expires > 0) || t.flags&^txExpired != 0 ||
		t.kind != txHold && (!t.kind.movesMoney() || t.expires != 0 || t.flags != 0)):
		return txRecord{}, corrupt(what, fmt.Sprintf("v4 of kind %d code %s flags %#x expiring at %d", t.kind, t.code, t.flags, t.expires))
	case t.flags&txToSeller != 0 && (t.kind != txCompletion || t.code != Approved):
		return txRecord{}, corrupt(what, fmt.Sprintf("to-seller flag on kind %d code %s", t.kind, t.code))
	case t.flags&txExpired != 0 && version != recordV4:
		return txRecord{}, corrupt(what, "expired flag on a record that is not a hold")
	case t.flags&^knownTxFlags != 0:
		return txRecord{}, corrupt(what, fmt.Sprintf("unknown flags %#x", t.flags))
	case t.flags&txVoided != 0 && (t.kind != txPurchase || t.code == Approved || t.seq != 0 || t.amount != 0):
		return txRecord{}, corrupt(what, fmt.Sprintf("voided kind %d code %s seq %d amount %d", t.kind, t.code, t.seq, t.amount))
	}
	return t, nil
}

// knownCode maps two stored bytes back to a Code constant without allocating.
func knownCode(b []byte) (Code, bool) {
	for _, c := range allCodes {
		if string(b) == string(c) {
			return c, true
		}
	}
	return "", false
}

var allCodes = [...]Code{Approved, InvalidTransaction, InvalidAmount, UnknownCard, OriginalNotFound,
	InsufficientFunds, NotPermitted, ExceedsAmount, RestrictedCard, ExceedsCount, TooLate, DuplicateDifferent,
	SystemError}

// appendCounter encodes a u64 counter (m/seq, m/nextacct) or a card index value.
func appendCounter(dst []byte, v uint64) []byte {
	start := len(dst)
	dst = append(dst, recordV1)
	dst = binary.BigEndian.AppendUint64(dst, v)
	return seal(dst, start)
}

func decodeCounter(what string, b []byte) (uint64, error) {
	_, p, err := unseal(what, b, counterSize, recordV1)
	if err != nil {
		return 0, err
	}
	r := reader{b: p}
	v := r.u64()
	return v, r.done(what)
}

// windowState is what m/window holds: the settlement window the shard books in and its date.
type windowState struct {
	window uint32 // ≥ 1
	date   uint32 // YYYYMMDD
}

func appendWindow(dst []byte, w windowState) []byte {
	start := len(dst)
	dst = append(dst, recordV1)
	dst = binary.BigEndian.AppendUint32(dst, w.window)
	dst = binary.BigEndian.AppendUint32(dst, w.date)
	return seal(dst, start)
}

func decodeWindow(b []byte) (windowState, error) {
	const what = "m/window"
	_, p, err := unseal(what, b, windowSize, recordV1)
	if err != nil {
		return windowState{}, err
	}
	r := reader{b: p}
	w := windowState{window: r.u32(), date: r.u32()}
	if err := r.done(what); err != nil {
		return windowState{}, err
	}
	if w.window == 0 || !validDate(w.date) {
		return windowState{}, corrupt(what, fmt.Sprintf("window %d date %d", w.window, w.date))
	}
	return w, nil
}

func appendCutKey(dst []byte, window uint32) []byte {
	return binary.BigEndian.AppendUint32(append(dst, prefixCut...), window)
}

// appendCut encodes the value of a cutover point's key (w/<window>): its date and Last.
func appendCut(dst []byte, c *CutoverPoint) []byte {
	start := len(dst)
	dst = append(dst, recordV1)
	dst = binary.BigEndian.AppendUint32(dst, c.Date)
	dst = binary.BigEndian.AppendUint64(dst, c.Last)
	return seal(dst, start)
}

// decodeCut decodes the cutover point stored under key.
func decodeCut(key, b []byte) (CutoverPoint, error) {
	const what = "cutover point"
	if len(key) != len(prefixCut)+4 {
		return CutoverPoint{}, corrupt(what, fmt.Sprintf("key %x", key))
	}
	_, p, err := unseal(what, b, cutSize, recordV1)
	if err != nil {
		return CutoverPoint{}, err
	}
	r := reader{b: p}
	c := CutoverPoint{Window: binary.BigEndian.Uint32(key[len(prefixCut):]), Date: r.u32(), Last: r.u64()}
	if err := r.done(what); err != nil {
		return CutoverPoint{}, err
	}
	if c.Window == 0 || !validDate(c.Date) {
		return CutoverPoint{}, corrupt(what, fmt.Sprintf("window %d date %d", c.Window, c.Date))
	}
	return c, nil
}
