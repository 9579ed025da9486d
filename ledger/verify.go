package ledger

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// VerifyReport is what Verify found. Breaks lists every inconsistency (up to maxBreaks, with
// Dropped counting the rest); an empty Breaks means the shard is consistent.
type VerifyReport struct {
	LastSeq    uint64          // m/seq
	Accounts   int             // account records
	Cards      int             // card/<PAN> bindings
	Transfers  int             // journal entries
	Reversals  int             // journal entries that reverse a purchase
	StandIns   int             // journal entries booked forced from stand-in advices
	Overdrawn  int             // no-overdraft accounts below zero, each by stand-in entries only
	TxRecords  int             // idempotency records, tombstones included
	Tombstones int             // records left by reversals whose original had not arrived
	Totals     []CurrencyTotal // Σ posted debits and credits over all accounts, per currency
	Breaks     []string
	Dropped    int // breaks found beyond maxBreaks
}

// CurrencyTotal sums the posted totals of every account in one currency.
type CurrencyTotal struct {
	Currency uint16
	Debits   int64
	Credits  int64
}

const maxBreaks = 100

func (r *VerifyReport) breakf(format string, a ...any) {
	if len(r.Breaks) >= maxBreaks {
		r.Dropped++
		return
	}
	r.Breaks = append(r.Breaks, fmt.Sprintf(format, a...))
}

// Verify recomputes every account's posted debits and credits from the journal (reversals
// included) and compares them with the stored accounts; checks Σ debits = Σ credits per currency,
// the no-overdraft flags, that the journal runs 1..m/seq without a gap, that every journal entry's
// idempotency record points back at it, that every reversal undoes an earlier purchase (stand-in
// or not) with its accounts swapped and no purchase is reversed by more than its amount (and its
// record agrees), that every idempotency record decodes and tombstones booked nothing, and that
// every card binding points at a card with the matching masked PAN. It reads one badger snapshot,
// so it sees whole batches only and may run while the shard takes traffic. The error, when not
// nil, describes the first few breaks; the report lists them all.
//
// The no-overdraft rule is checked on the journal, not on the final balances, because a stand-in
// advice may take a card below zero: replaying the entries in sequence order, every entry that
// debits a no-overdraft account leaves that account's running balance (credits − debits so far)
// at zero or above, unless the entry is a stand-in (KindStandIn). That is the rule the state
// machine applies when it books (a purchase is approved only when the balance before it covers
// it), so a bug that overdraws a card is still found, also on a card a stand-in has taken below
// zero: the stand-in excuses itself, never a later purchase. A negative final balance follows
// from stand-in entries alone, since the last other debit left the account at zero or above.
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

type posted struct{ debits, credits int64 }

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
		if a.ID >= firstAccountID && a.ID >= next || a.ID < firstAccountID && a.ID != SettlementPayableID && a.ID != FundingID {
			rep.breakf("account %d outside the allocated ids (next %d)", a.ID, next)
		}
		if a.DebitsPosted < 0 || a.CreditsPosted < 0 {
			rep.breakf("account %d: negative posted total (debits %d, credits %d)", a.ID, a.DebitsPosted, a.CreditsPosted)
		}
		if a.Flags&DebitsMustNotExceedCredits != 0 && a.DebitsPosted > a.CreditsPosted {
			rep.Overdrawn++ // allowed only if the journal shows stand-in entries did it; checked below
		}
		if a.Type == Card && a.Flags&DebitsMustNotExceedCredits == 0 {
			rep.breakf("card account %d lacks the no-overdraft flag", a.ID)
		}
		accounts[a.ID] = &a
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, id := range []uint64{SettlementPayableID, FundingID} {
		if accounts[id] == nil {
			rep.breakf("well-known account %d missing", id)
		}
	}
	rep.Totals = totals(accounts, rep)

	// Journal: 1..seq without a gap, each entry valid, its tx record pointing back at it; the
	// postings recomputed per account, and the no-overdraft rule checked entry by entry.
	sums := make(map[uint64]*posted, len(accounts))
	reversed := make(map[uint64][]Transfer) // purchase seq → the entries that reverse it
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
		if t.Kind == KindReversal {
			rep.Reversals++
			reversed[t.Original] = append(reversed[t.Original], t)
		}
		for _, p := range []struct {
			id    uint64
			debit bool
		}{{t.Debit, true}, {t.Credit, false}} {
			ps := sums[p.id]
			if ps == nil {
				ps = new(posted)
				sums[p.id] = ps
			}
			total := &ps.credits
			if p.debit {
				total = &ps.debits
			}
			if t.Amount > 0 && *total > math.MaxInt64-t.Amount {
				rep.breakf("account %d: recomputed total overflows at seq %d", p.id, t.Seq)
				continue
			}
			*total += t.Amount
		}
		if t.Kind == KindStandIn {
			rep.StandIns++
		} else if a := accounts[t.Debit]; a != nil && a.Flags&DebitsMustNotExceedCredits != 0 {
			if ps := sums[t.Debit]; ps.debits > ps.credits {
				rep.breakf("seq %d: %s overdraws account %d to debits %d > credits %d; only a stand-in may",
					t.Seq, t.Kind, t.Debit, ps.debits, ps.credits)
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
	for _, id := range slices.Sorted(maps.Keys(accounts)) {
		a, ps := accounts[id], sums[id]
		if ps == nil {
			ps = &posted{}
		}
		if a.DebitsPosted != ps.debits || a.CreditsPosted != ps.credits {
			rep.breakf("account %d: stored debits/credits %d/%d, journal gives %d/%d",
				id, a.DebitsPosted, a.CreditsPosted, ps.debits, ps.credits)
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
		case a.Type != Card || a.MaskedPAN != maskPAN(pan):
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
	return nil
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
	rec, found, err := getValue(txn, appendTxKey(nil, &t.TxID), decodeTxRecord)
	switch {
	case err != nil:
		rep.breakf("seq %d: tx record: %v", t.Seq, err)
	case !found:
		rep.breakf("seq %d: no tx record for its TxID", t.Seq)
	case rec.code != Approved || rec.seq != t.Seq:
		rep.breakf("seq %d: its TxID's record says code %s seq %d", t.Seq, rec.code, rec.seq)
	case rec.kind != txUnknown && (rec.kind != recordKind(t.Kind) || rec.amount != t.Amount):
		rep.breakf("seq %d: %s of %d, its TxID's record says kind %d amount %d", t.Seq, t.Kind, t.Amount, rec.kind, rec.amount)
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
	}
	return txUnknown
}

// checkReversals checks each reversed purchase against the entries that reverse it: each comes
// later, swaps its accounts, keeps its currency, and together they undo at most its amount, which
// is what its record says was reversed. It returns the reversed total per purchase seq.
func checkReversals(txn *badger.Txn, reversed map[uint64][]Transfer, rep *VerifyReport) map[uint64]int64 {
	undone := make(map[uint64]int64, len(reversed))
	for _, seq := range slices.Sorted(maps.Keys(reversed)) {
		p, found, err := getValue(txn, appendJournalKey(nil, seq), decodeTransfer)
		if err != nil || !found || p.Kind != KindPurchase && p.Kind != KindStandIn {
			rep.breakf("reversals of seq %d: it is not a purchase (found %t, kind %s, err %v)", seq, found, p.Kind, err)
			continue
		}
		var total int64
		for _, r := range reversed[seq] {
			if r.Seq <= p.Seq || r.Debit != p.Credit || r.Credit != p.Debit || r.Currency != p.Currency {
				rep.breakf("seq %d does not reverse purchase %d (accounts %d→%d, currency %d)",
					r.Seq, p.Seq, r.Debit, r.Credit, r.Currency)
			}
			if r.Amount > 0 && total <= math.MaxInt64-r.Amount {
				total += r.Amount
			}
		}
		undone[seq] = total
		if total > p.Amount {
			rep.breakf("purchase %d of %d reversed by %d", p.Seq, p.Amount, total)
		}
		rec, found, err := getValue(txn, appendTxKey(nil, &p.TxID), decodeTxRecord)
		switch {
		case err != nil || !found:
			rep.breakf("purchase %d: tx record found %t, %v", p.Seq, found, err)
		case rec.kind != recordKind(p.Kind) || rec.reversed != total || rec.amount != p.Amount || rec.account != p.Debit:
			rep.breakf("purchase %d: record says kind %d amount %d reversed %d on account %d, journal %d reversed %d on %d",
				p.Seq, rec.kind, rec.amount, rec.reversed, rec.account, p.Amount, total, p.Debit)
		}
	}
	return undone
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
		if a.DebitsPosted > math.MaxInt64-c.Debits || a.CreditsPosted > math.MaxInt64-c.Credits {
			overflow = true
			continue
		}
		c.Debits += a.DebitsPosted
		c.Credits += a.CreditsPosted
	}
	if overflow {
		rep.breakf("posted totals overflow int64")
	}
	slices.SortFunc(out, func(a, b CurrencyTotal) int { return int(a.Currency) - int(b.Currency) })
	for _, c := range out {
		if c.Debits != c.Credits {
			rep.breakf("currency %d: Σ debits %d ≠ Σ credits %d", c.Currency, c.Debits, c.Credits)
		}
	}
	return out
}
