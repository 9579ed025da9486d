package ledger

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// VerifyReport is what Verify found. Breaks lists every inconsistency (up to maxBreaks, with
// Dropped counting the rest); an empty Breaks means the shard is consistent.
type VerifyReport struct {
	LastSeq    uint64          // m/seq
	Accounts   int             // account records
	Cards      int             // card/<PAN> bindings
	Numbers    int             // o/<number> bindings: account and phone numbers, biller codes
	Transfers  int             // journal entries
	Reversals  int             // journal entries that reverse a purchase
	Refunds    int             // journal entries that refund a purchase
	Holds      int             // journal entries that place a hold (pre-authorisations)
	Pending    int             // holds still pending: each has its expiry index entry
	Releases   int             // journal entries that post, void or expire a hold
	StandIns   int             // journal entries booked forced from stand-in advices
	Adjusts    int             // reconciliation adjustments (KindAdjust), booked forced too
	Overdrawn  int             // no-overdraft accounts below zero, each by forced entries only
	Window     uint32          // the settlement window the shard books in (m/window)
	Cutovers   int             // cutover points recorded, one per window the shard has been in
	TxRecords  int             // idempotency records, tombstones included
	Tombstones int             // records left by reversals whose original had not arrived
	Totals     []CurrencyTotal // Σ posted debits and credits over all accounts, per currency
	Breaks     []string
	Dropped    int // breaks found beyond maxBreaks
}

// CurrencyTotal sums the posted and pending totals of every account in one currency.
type CurrencyTotal struct {
	Currency       uint16
	Debits         int64
	Credits        int64
	DebitsPending  int64
	CreditsPending int64
}

const maxBreaks = 100

func (r *VerifyReport) breakf(format string, a ...any) {
	if len(r.Breaks) >= maxBreaks {
		r.Dropped++
		return
	}
	r.Breaks = append(r.Breaks, fmt.Sprintf(format, a...))
}

// Verify recomputes every account's posted and pending debits and credits from the journal
// (reversals, refunds and holds with their posts, voids and expiries included) and compares them
// with the stored accounts; checks Σ debits = Σ credits per currency, posted and pending, the
// no-overdraft flags, that the journal runs 1..m/seq without a gap, that every journal entry's
// idempotency record points back at it, that every reversal or refund gives back an earlier
// purchase (stand-in, completion or not) with its accounts swapped and no purchase is given back
// by more than its amount (and its record agrees), that every post, void and expiry releases an
// earlier hold on the same accounts, never more than it held, a post or expiry closing it, that
// the expiry index lists exactly the holds still pending, that every idempotency record decodes
// and tombstones booked nothing, that every card binding points at a card with the matching
// masked PAN, that the suspense account exists and only adjustments (each naming an earlier
// entry or none) book to it, and that every entry carries the window and date the cutover points
// put it in (m/window being the last point). It reads one badger snapshot, so it sees whole
// batches only and may run while the shard takes traffic. The error, when not
// nil, describes the first few breaks; the report lists them all.
//
// The no-overdraft rule is checked on the journal, not on the final balances, because a stand-in
// advice may take a card below zero: replaying the entries in sequence order, every entry that
// spends from a no-overdraft account leaves that account's running available balance (credits −
// debits − pending debits so far) at zero or above, unless the entry is forced: a stand-in
// (KindStandIn) or a reconciliation adjustment (KindAdjust).
// Posts, voids and expiries never lower it, so they are not checked. That is the rule the state
// machine applies when it books (a purchase is approved only when the balance before it covers
// it), so a bug that overdraws a card is still found, also on a card a stand-in has taken below
// zero: the stand-in excuses itself, never a later purchase. A negative final balance follows
// from forced entries alone, since the last other debit left the account at zero or above.
func (s *Shard) Verify() (VerifyReport, error) {
	var rep VerifyReport
	err := s.view(func(txn *badger.Txn) error { return verify(txn, &rep) })
	if err != nil {
		return rep, fmt.Errorf("ledger: verify: %w", err)
	}
	if n := len(rep.Breaks) + rep.Dropped; n > 0 {
		first := rep.Breaks[:min(len(rep.Breaks), 5)]
		return rep, fmt.Errorf("ledger: verify: %d breaks: %s", n, strings.Join(first, "; "))
	}
	return rep, nil
}

type posted struct{ debits, credits, debitsPending, creditsPending int64 }

func verify(txn *badger.Txn, rep *VerifyReport) error {
	seq, haveSeq, err := getValue(txn, keySeq, counterDecoder("m/seq"))
	if err != nil {
		return err
	}
	next, haveNext, err := getValue(txn, keyNextAcct, counterDecoder("m/nextacct"))
	if err != nil {
		return err
	}
	if !haveSeq || !haveNext {
		rep.breakf("meta missing (m/seq %t, m/nextacct %t)", haveSeq, haveNext)
	}
	rep.LastSeq = seq

	// Accounts: decode, check keys, flags and the no-overdraft rule; total per currency.
	accounts := make(map[uint64]*Account)
	err = scan(txn, []byte(prefixAccount), nil, func(k, v []byte) (bool, error) {
		a, err := decodeAccount(v)
		if err != nil {
			rep.breakf("key %x: %v", k, err)
			return true, nil
		}
		rep.Accounts++
		if len(k) != len(prefixAccount)+8 || binary.BigEndian.Uint64(k[len(prefixAccount):]) != a.ID {
			rep.breakf("key %x holds account %d", k, a.ID)
		}
		if a.ID >= firstAccountID && a.ID >= next || a.ID < firstAccountID && a.ID != SettlementPayableID && a.ID != FundingID && a.ID != SuspenseID {
			rep.breakf("account %d outside the allocated ids (next %d)", a.ID, next)
		}
		if a.DebitsPosted < 0 || a.CreditsPosted < 0 {
			rep.breakf("account %d: negative posted total (debits %d, credits %d)", a.ID, a.DebitsPosted, a.CreditsPosted)
		}
		if a.Flags&DebitsMustNotExceedCredits != 0 && a.Available() < 0 {
			rep.Overdrawn++ // allowed only if the journal shows stand-in entries did it; checked below
		}
		if a.Type.spends() && a.Flags&DebitsMustNotExceedCredits == 0 {
			rep.breakf("%s account %d lacks the no-overdraft flag", a.Type, a.ID)
		}
		if a.DailyAmount == 0 && a.DailyCount == 0 && (a.Day != 0 || a.DaySpent != 0 || a.DayCount != 0) {
			rep.breakf("account %d counts a day's use (day %d: %d in %d) without a daily limit", a.ID, a.Day, a.DaySpent, a.DayCount)
		}
		accounts[a.ID] = &a
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, id := range []uint64{SettlementPayableID, FundingID, SuspenseID} {
		if accounts[id] == nil {
			rep.breakf("well-known account %d missing", id)
		}
	}
	if a := accounts[SuspenseID]; a != nil && (a.Type != Suspense || a.Flags != 0) {
		rep.breakf("suspense account %d is a %s account with flags %#x", SuspenseID, a.Type, a.Flags)
	}
	cuts, err := verifyWindows(txn, seq, rep)
	if err != nil {
		return err
	}
	rep.Totals = totals(accounts, rep)

	// Journal: 1..seq without a gap, each entry valid, its tx record pointing back at it; the
	// postings recomputed per account, and the no-overdraft rule checked entry by entry.
	sums := make(map[uint64]*posted, len(accounts))
	forced := make(map[uint64]bool)         // accounts debited by stand-in entries or adjustments
	reversed := make(map[uint64][]Transfer) // original seq → the entries that give it back or release it
	var prev uint64
	err = scan(txn, []byte(prefixJournal), nil, func(k, v []byte) (bool, error) {
		t, err := decodeTransfer(v)
		if err != nil {
			rep.breakf("key %x: %v", k, err)
			return true, nil
		}
		rep.Transfers++
		if len(k) != len(prefixJournal)+8 || binary.BigEndian.Uint64(k[len(prefixJournal):]) != t.Seq {
			rep.breakf("key %x holds journal entry %d", k, t.Seq)
		}
		if t.Seq != prev+1 {
			rep.breakf("journal gap: %d follows %d", t.Seq, prev)
		}
		prev = t.Seq
		checkTransfer(txn, &t, accounts, rep)
		checkWindow(&t, cuts, rep)
		switch t.Kind {
		case KindReversal:
			rep.Reversals++
		case KindRefund:
			rep.Refunds++
		case KindHold:
			rep.Holds++
		case KindPost, KindVoid, KindExpire:
			rep.Releases++
		}
		switch {
		case t.Kind == KindAdjust:
			if t.Original >= t.Seq {
				rep.breakf("seq %d: adjustment of seq %d, which is not an earlier entry", t.Seq, t.Original)
			}
		case t.Original != 0:
			reversed[t.Original] = append(reversed[t.Original], t)
		}
		p, q := t.posts(), t.pends()
		for _, side := range []struct {
			id    uint64
			debit bool
		}{{t.Debit, true}, {t.Credit, false}} {
			ps := sums[side.id]
			if ps == nil {
				ps = new(posted)
				sums[side.id] = ps
			}
			total, pending := &ps.credits, &ps.creditsPending
			if side.debit {
				total, pending = &ps.debits, &ps.debitsPending
			}
			if p > 0 && *total > math.MaxInt64-p || q > 0 && *pending > math.MaxInt64-q {
				rep.breakf("account %d: recomputed total overflows at seq %d", side.id, t.Seq)
				continue
			}
			*total += p
			*pending += q
		}
		if t.Kind == KindStandIn || t.Kind == KindAdjust {
			if t.Kind == KindStandIn {
				rep.StandIns++
			} else {
				rep.Adjusts++
			}
			forced[t.Debit] = true
		} else if a := accounts[t.Debit]; a != nil && a.Flags&DebitsMustNotExceedCredits != 0 && t.spends() && a.Type != CreditLine {
			// A credit line's limit may have moved since the entry; it is checked on its final
			// state below, against the limit it has now.
			// Pending debits count as debits here: a hold spends what it holds.
			if ps := sums[t.Debit]; ps.debits+ps.debitsPending > ps.credits {
				rep.breakf("seq %d: %s overdraws account %d to debits %d > credits %d; only a stand-in may",
					t.Seq, t.Kind, t.Debit, ps.debits+ps.debitsPending, ps.credits)
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if prev != seq {
		rep.breakf("journal ends at %d but m/seq is %d", prev, seq)
	}
	undone := checkReversals(txn, reversed, rep)
	if err := checkTxRecords(txn, seq, undone, rep); err != nil {
		return err
	}
	if err := checkHoldIndex(txn, rep); err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(accounts)) {
		a, ps := accounts[id], sums[id]
		if ps == nil {
			ps = &posted{}
		}
		if a.DebitsPosted != ps.debits || a.CreditsPosted != ps.credits {
			rep.breakf("account %d: stored debits/credits %d/%d, journal gives %d/%d",
				id, a.DebitsPosted, a.CreditsPosted, ps.debits, ps.credits)
		}
		if a.DebitsPending != ps.debitsPending || a.CreditsPending != ps.creditsPending {
			rep.breakf("account %d: stored pending debits/credits %d/%d, journal gives %d/%d",
				id, a.DebitsPending, a.CreditsPending, ps.debitsPending, ps.creditsPending)
		}
		if a.Type == CreditLine && a.Available() < 0 && !forced[id] {
			rep.breakf("credit line %d: debits %d and holds %d beyond credits %d and its limit %d",
				id, a.DebitsPosted, a.DebitsPending, a.CreditsPosted, a.CreditLimit)
		}
	}

	// Card bindings: each points at a card whose mask matches, and each card is bound once.
	bound := make(map[uint64]bool)
	err = scan(txn, []byte(prefixCard), nil, func(k, v []byte) (bool, error) {
		pan := string(k[len(prefixCard):])
		rep.Cards++
		id, err := decodeCounter("card index", v)
		if err != nil {
			rep.breakf("card %s: %v", maskPAN(pan), err)
			return true, nil
		}
		a := accounts[id]
		switch {
		case a == nil:
			rep.breakf("card %s bound to missing account %d", maskPAN(pan), id)
		case !a.Type.spends() || a.MaskedPAN != maskPAN(pan):
			rep.breakf("card %s bound to account %d (%s, %q)", maskPAN(pan), id, a.Type, a.MaskedPAN)
		case bound[id]:
			rep.breakf("account %d bound to more than one PAN", id)
		}
		bound[id] = true
		return true, nil
	})
	if err != nil {
		return err
	}
	for id, a := range accounts {
		if a.Type == Card && !bound[id] {
			rep.breakf("card account %d has no PAN binding", id)
		}
	}

	// Number bindings: each points at an account.
	return scan(txn, []byte(prefixOwner), nil, func(k, v []byte) (bool, error) {
		number := string(k[len(prefixOwner):])
		rep.Numbers++
		id, err := decodeCounter("owner index", v)
		switch {
		case err != nil:
			rep.breakf("number %s: %v", maskPAN(number), err)
		case accounts[id] == nil:
			rep.breakf("number %s bound to missing account %d", maskPAN(number), id)
		case !plausibleNumber(number):
			rep.breakf("number %s bound to account %d is not a number", maskPAN(number), id)
		}
		return true, nil
	})
}

// checkTransfer checks one journal entry against the accounts and its idempotency record.
func checkTransfer(txn *badger.Txn, t *Transfer, accounts map[uint64]*Account, rep *VerifyReport) {
	if t.Amount <= 0 {
		rep.breakf("seq %d: amount %d", t.Seq, t.Amount)
	}
	if t.Debit == t.Credit {
		rep.breakf("seq %d: debit and credit are both account %d", t.Seq, t.Debit)
	}
	for _, id := range []uint64{t.Debit, t.Credit} {
		switch a := accounts[id]; {
		case a == nil:
			rep.breakf("seq %d: account %d missing", t.Seq, id)
		case a.Currency != t.Currency:
			rep.breakf("seq %d: currency %d but account %d books %d", t.Seq, t.Currency, id, a.Currency)
		}
	}
	if (t.Kind == KindAdjust) != (t.Debit == SuspenseID || t.Credit == SuspenseID) {
		rep.breakf("seq %d: %s %d→%d; adjustments and only they book to suspense", t.Seq, t.Kind, t.Debit, t.Credit)
	}
	rec, found, err := getValue(txn, appendTxKey(nil, &t.TxID), decodeTxRecord)
	switch {
	case err != nil:
		rep.breakf("seq %d: tx record: %v", t.Seq, err)
	case !found:
		rep.breakf("seq %d: no tx record for its TxID", t.Seq)
	case t.Kind == KindExpire:
		// No request asked for an expiry: it carries the TxID of the hold it released.
		if rec.kind != txHold || rec.seq != t.Original || rec.flags&txExpired == 0 {
			rep.breakf("seq %d: expiry of hold %d, its TxID's record says kind %d seq %d flags %#x",
				t.Seq, t.Original, rec.kind, rec.seq, rec.flags)
		}
	case rec.code != Approved || rec.seq != t.Seq:
		rep.breakf("seq %d: its TxID's record says code %s seq %d", t.Seq, rec.code, rec.seq)
	case rec.kind != txUnknown && (rec.kind != recordKind(t.Kind) || rec.amount != t.Amount):
		rep.breakf("seq %d: %s of %d, its TxID's record says kind %d amount %d", t.Seq, t.Kind, t.Amount, rec.kind, rec.amount)
	case t.Kind == KindAdjust && rec.account != t.Debit && rec.account != t.Credit:
		rep.breakf("seq %d: adjustment %d→%d, its TxID's record says account %d", t.Seq, t.Debit, t.Credit, rec.account)
	case (t.Kind == KindTransfer || t.Kind == KindPayment) && (rec.counter != t.Credit || rec.account != t.Debit),
		t.Kind == KindDeposit && rec.kind == txDeposit && rec.counter != 0 && (rec.counter != t.Debit || rec.account != t.Credit):
		rep.breakf("seq %d: %s %d→%d, its TxID's record says account %d, counter %d", t.Seq, t.Kind, t.Debit, t.Credit, rec.account, rec.counter)
	case t.Kind == KindHold && (rec.counter != t.Credit || rec.expires != t.Expires || rec.account != t.Debit):
		rep.breakf("seq %d: hold %d→%d expiring at %d, its TxID's record says %d→%d at %d",
			t.Seq, t.Debit, t.Credit, t.Expires, rec.account, rec.counter, rec.expires)
	}
}

// recordKind is the tx record kind that goes with a journal entry kind.
func recordKind(k Kind) txKind {
	switch k {
	case KindPurchase:
		return txPurchase
	case KindDeposit:
		return txDeposit
	case KindReversal:
		return txReversal
	case KindStandIn:
		return txStandIn
	case KindHold:
		return txHold
	case KindPost:
		return txCompletion
	case KindVoid:
		return txReversal
	case KindRefund:
		return txRefund
	case KindTransfer:
		return txTransfer
	case KindPayment:
		return txPayment
	case KindAdjust:
		return txAdjust
	}
	return txUnknown
}

// checkReversals checks each original against the entries that refer to it. A purchase
// (stand-in or completion) is given back by reversals and refunds: each comes later, swaps its
// accounts, keeps its currency, and together they undo at most its amount, which is what its
// record says was reversed. A hold is released by voids, at most one post and at most one expiry:
// each comes later on the same accounts, together they release at most its amount (all of it once
// a post or an expiry has come, and nothing comes after those), and its record agrees. It returns
// the total given back or released per original seq.
func checkReversals(txn *badger.Txn, reversed map[uint64][]Transfer, rep *VerifyReport) map[uint64]int64 {
	undone := make(map[uint64]int64, len(reversed))
	for _, seq := range slices.Sorted(maps.Keys(reversed)) {
		p, found, err := getValue(txn, appendJournalKey(nil, seq), decodeTransfer)
		hold := p.Kind == KindHold
		givesBack := p.Kind == KindPurchase || p.Kind == KindStandIn || p.Kind == KindPost
		moves := p.Kind == KindDeposit || p.Kind == KindTransfer || p.Kind == KindPayment
		if err != nil || !found || !hold && !givesBack && !moves {
			rep.breakf("entries referring to seq %d: it is not a purchase or a hold (found %t, kind %s, err %v)", seq, found, p.Kind, err)
			continue
		}
		var total int64
		closed := false
		for _, r := range reversed[seq] {
			release := r.Kind == KindPost || r.Kind == KindVoid || r.Kind == KindExpire
			debit, credit := p.Credit, p.Debit // what gives back swaps the accounts
			if hold {
				debit, credit = p.Debit, p.Credit // what releases keeps them
			}
			if r.Seq <= p.Seq || release != hold || r.Kind == KindRefund && !givesBack ||
				r.Debit != debit || r.Credit != credit || r.Currency != p.Currency || closed {
				rep.breakf("seq %d (%s) does not fit %s %d (accounts %d→%d, currency %d)",
					r.Seq, r.Kind, p.Kind, p.Seq, r.Debit, r.Credit, r.Currency)
			}
			n := r.Amount
			if hold {
				n = r.Released
				closed = r.Kind != KindVoid
			}
			if n > 0 && total <= math.MaxInt64-n {
				total += n
			}
			if closed && total != p.Amount {
				rep.breakf("seq %d (%s) closes hold %d of %d with %d released", r.Seq, r.Kind, p.Seq, p.Amount, total)
			}
		}
		undone[seq] = total
		if total > p.Amount {
			rep.breakf("%s %d of %d reversed by %d", p.Kind, p.Seq, p.Amount, total)
		}
		rec, found, err := getValue(txn, appendTxKey(nil, &p.TxID), decodeTxRecord)
		holder := p.Debit
		if p.Kind == KindDeposit {
			holder = p.Credit // a top-up acts for the account it credits
		}
		switch {
		case err != nil || !found:
			rep.breakf("%s %d: tx record found %t, %v", p.Kind, p.Seq, found, err)
		case rec.kind != recordKind(p.Kind) || rec.reversed != total || rec.amount != p.Amount || rec.account != holder:
			rep.breakf("%s %d: record says kind %d amount %d reversed %d on account %d, journal %d reversed %d on %d",
				p.Kind, p.Seq, rec.kind, rec.amount, rec.reversed, rec.account, p.Amount, total, holder)
		}
	}
	return undone
}

// checkHoldIndex checks the expiry index against the hold records: every entry names an
// approved hold with that seq and expiry that still has something pending, and every hold with
// something pending has its entry (found by walking the records).
func checkHoldIndex(txn *badger.Txn, rep *VerifyReport) error {
	indexed := make(map[TxID]bool)
	err := scan(txn, []byte(prefixHold), nil, func(k, v []byte) (bool, error) {
		rep.Pending++
		id, err := decodeHoldRef(v)
		if err != nil || len(k) != len(prefixHold)+16 {
			rep.breakf("hold index key %x: %v", k, err)
			return true, nil
		}
		expires := int64(binary.BigEndian.Uint64(k[len(prefixHold):]))
		seq := binary.BigEndian.Uint64(k[len(prefixHold)+8:])
		rec, found, err := getValue(txn, appendTxKey(nil, &id), decodeTxRecord)
		switch {
		case err != nil || !found:
			rep.breakf("hold index %d/%d: tx record found %t, %v", expires, seq, found, err)
		case rec.kind != txHold || rec.code != Approved || rec.seq != seq || rec.expires != expires || rec.reversed >= rec.amount:
			rep.breakf("hold index %d/%d: record says kind %d code %s seq %d expires %d, %d of %d released",
				expires, seq, rec.kind, rec.code, rec.seq, rec.expires, rec.reversed, rec.amount)
		}
		indexed[id] = true
		return true, nil
	})
	if err != nil {
		return err
	}
	return scan(txn, []byte(prefixTx), nil, func(k, v []byte) (bool, error) {
		rec, err := decodeTxRecord(v)
		if err != nil || len(k) != len(prefixTx)+len(TxID{}) {
			return true, nil // checkTxRecords reports it
		}
		if rec.kind == txHold && rec.code == Approved && rec.reversed < rec.amount && !indexed[TxID(k[len(prefixTx):])] {
			rep.breakf("hold %d still pending but not in the expiry index", rec.seq)
		}
		return true, nil
	})
}

// checkTxRecords decodes every idempotency record: a booking's points into the journal, a
// decline's and a tombstone's at nothing, and a purchase's reversed total is what the journal
// undid of it (undone, by seq).
func checkTxRecords(txn *badger.Txn, lastSeq uint64, undone map[uint64]int64, rep *VerifyReport) error {
	return scan(txn, []byte(prefixTx), nil, func(k, v []byte) (bool, error) {
		rep.TxRecords++
		rec, err := decodeTxRecord(v)
		if err != nil {
			rep.breakf("key %x: %v", k, err)
			return true, nil
		}
		if len(k) != len(prefixTx)+len(TxID{}) {
			rep.breakf("key %x is not a tx record key", k)
		}
		switch {
		case rec.kind == txTombstone:
			rep.Tombstones++
			if rec.code != TooLate || rec.seq != 0 || rec.amount != 0 {
				rep.breakf("tombstone %x: code %s seq %d amount %d", k[len(prefixTx):], rec.code, rec.seq, rec.amount)
			}
		case rec.code == Approved && rec.seq > lastSeq, rec.code != Approved && rec.seq != 0:
			rep.breakf("tx record %x: code %s seq %d (last %d)", k[len(prefixTx):], rec.code, rec.seq, lastSeq)
		case rec.seq != 0 && rec.reversed != undone[rec.seq]:
			rep.breakf("tx record %x: reversed %d, journal undid %d of seq %d", k[len(prefixTx):], rec.reversed, undone[rec.seq], rec.seq)
		}
		return true, nil
	})
}

// totals sums posted debits and credits per currency and reports any currency where they differ.
func totals(accounts map[uint64]*Account, rep *VerifyReport) []CurrencyTotal {
	var out []CurrencyTotal
	overflow := false
	for _, a := range accounts {
		i := slices.IndexFunc(out, func(c CurrencyTotal) bool { return c.Currency == a.Currency })
		if i < 0 {
			out = append(out, CurrencyTotal{Currency: a.Currency})
			i = len(out) - 1
		}
		c := &out[i]
		if a.DebitsPosted > math.MaxInt64-c.Debits || a.CreditsPosted > math.MaxInt64-c.Credits ||
			a.DebitsPending > math.MaxInt64-c.DebitsPending || a.CreditsPending > math.MaxInt64-c.CreditsPending {
			overflow = true
			continue
		}
		c.Debits += a.DebitsPosted
		c.Credits += a.CreditsPosted
		c.DebitsPending += a.DebitsPending
		c.CreditsPending += a.CreditsPending
	}
	if overflow {
		rep.breakf("posted totals overflow int64")
	}
	slices.SortFunc(out, func(a, b CurrencyTotal) int { return int(a.Currency) - int(b.Currency) })
	for _, c := range out {
		if c.Debits != c.Credits {
			rep.breakf("currency %d: Σ debits %d ≠ Σ credits %d", c.Currency, c.Debits, c.Credits)
		}
		if c.DebitsPending != c.CreditsPending {
			rep.breakf("currency %d: Σ pending debits %d ≠ Σ pending credits %d", c.Currency, c.DebitsPending, c.CreditsPending)
		}
	}
	return out
}

// verifyWindows checks m/window against the cutover points: each point's Last within the
// journal and never going back, dates never going back, and the last point the current window.
// It returns the points, by window.
func verifyWindows(txn *badger.Txn, seq uint64, rep *VerifyReport) ([]CutoverPoint, error) {
	w, found, err := getValue(txn, keyWindow, decodeWindow)
	if err != nil {
		rep.breakf("m/window: %v", err)
	} else if !found {
		rep.breakf("m/window missing")
	}
	rep.Window = w.window
	var cuts []CutoverPoint
	err = scan(txn, []byte(prefixCut), nil, func(k, v []byte) (bool, error) {
		c, err := decodeCut(k, v)
		if err != nil {
			rep.breakf("key %x: %v", k, err)
			return true, nil
		}
		rep.Cutovers++
		if n := len(cuts); n > 0 && (c.Last < cuts[n-1].Last || c.Date < cuts[n-1].Date) {
			rep.breakf("cutover point of window %d (date %d, last %d) goes back from window %d's (date %d, last %d)",
				c.Window, c.Date, c.Last, cuts[n-1].Window, cuts[n-1].Date, cuts[n-1].Last)
		}
		if c.Last > seq {
			rep.breakf("cutover point of window %d: last %d beyond m/seq %d", c.Window, c.Last, seq)
		}
		cuts = append(cuts, c)
		return true, nil
	})
	if n := len(cuts); found && (n == 0 || cuts[n-1].Window != w.window || cuts[n-1].Date != w.date) {
		rep.breakf("m/window %d (date %d) is not the last cutover point", w.window, w.date)
	}
	return cuts, err
}

// checkWindow checks that entry t carries the window it was booked in: the window whose cutover
// point is the last one with Last < t.Seq (window 0 before the first), and that window's date.
func checkWindow(t *Transfer, cuts []CutoverPoint, rep *VerifyReport) {
	i := sort.Search(len(cuts), func(i int) bool { return cuts[i].Last >= t.Seq }) // the first opened after t
	var want CutoverPoint
	if i > 0 {
		want = cuts[i-1]
	}
	if t.Window != want.Window || t.SettleDate != want.Date {
		rep.breakf("seq %d: booked in window %d (date %d), the cutover points say window %d (date %d)",
			t.Seq, t.Window, t.SettleDate, want.Window, want.Date)
	}
}
