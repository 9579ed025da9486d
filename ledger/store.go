package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/dgraph-io/badger/v4"
	"github.com/junction-switch/junction/durable"
)

// badgerOptions returns the badger configuration of a shard. Batches are
// small (a 256-request batch writes about 60 KiB; badger's per-txn limit is
// 15% of the memtable, 2.4 MiB here), so 16 MiB memtables and 64 MiB
// value-log files suffice, and a process that opens many shards (tests,
// `junction up` with one shard per region) maps 5×16 MiB per shard instead
// of 5×64 MiB plus a 256 MiB block cache.
func badgerOptions(dir string, log *slog.Logger) badger.Options {
	return durable.Options(dir, durable.Sizes{MemTable: 16 << 20, ValueLogFile: 64 << 20, BlockCache: 16 << 20}, log)
}

// getValue reads one key; found is false when the key does not exist.
func getValue[T any](txn *badger.Txn, key []byte, decode func([]byte) (T, error)) (v T, found bool, err error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	err = item.Value(func(b []byte) error {
		v, err = decode(b)
		return err
	})
	return v, err == nil, err
}

func counterDecoder(what string) func([]byte) (uint64, error) {
	return func(b []byte) (uint64, error) { return decodeCounter(what, b) }
}

// loadMeta reads and validates the counters, the well-known accounts and the settlement window
// with its cutover points, or creates them on an empty store, all in one commit. A store from
// before suspense accounts or windows gets what it lacks in one commit too: the suspense account
// and window 1 dated today, whose cutover point's Last is the journal's last seq (the entries
// before it have window 0). today is the UTC date YYYYMMDD of the shard's clock.
func loadMeta(db *badger.DB, st *state, currency uint16, today uint32) error {
	var fresh, haveSuspense, haveWindow bool
	err := db.View(func(txn *badger.Txn) error {
		seq, haveSeq, err := getValue(txn, keySeq, counterDecoder("m/seq"))
		if err != nil {
			return err
		}
		next, haveNext, err := getValue(txn, keyNextAcct, counterDecoder("m/nextacct"))
		if err != nil {
			return err
		}
		if !haveSeq && !haveNext {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			it.Rewind()
			if it.Valid() {
				// Name the key's prefix only: a card/ key holds a PAN.
				k := it.Item().Key()
				if i := bytes.IndexByte(k, '/'); i >= 0 {
					k = k[:i+1]
				}
				return fmt.Errorf("%w: store has keys (the first under %q) but no meta", errCorrupt, k)
			}
			fresh = true
			return nil
		}
		if !haveSeq || !haveNext {
			return fmt.Errorf("%w: m/seq present %t, m/nextacct present %t", errCorrupt, haveSeq, haveNext)
		}
		if next < firstAccountID {
			return fmt.Errorf("%w: m/nextacct is %d, below %d", errCorrupt, next, firstAccountID)
		}
		st.seq, st.nextAcct = seq, next

		// The journal must end exactly at m/seq.
		if seq > 0 {
			if _, err := txn.Get(appendJournalKey(nil, seq)); err != nil {
				return fmt.Errorf("%w: journal entry %d (m/seq) missing: %v", errCorrupt, seq, err)
			}
		}
		if _, err := txn.Get(appendJournalKey(nil, seq+1)); !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: journal entry %d beyond m/seq %d (%v)", errCorrupt, seq+1, seq, err)
		}

		for _, id := range []uint64{SettlementPayableID, FundingID} {
			a, ok, err := getValue(txn, appendAccountKey(nil, id), decodeAccount)
			if err != nil {
				return err
			}
			if !ok || a.ID != id || a.Type != InstitutionSettlement {
				return fmt.Errorf("%w: well-known account %d missing or wrong", errCorrupt, id)
			}
			st.accounts[id] = &a
		}
		st.currency = st.accounts[SettlementPayableID].Currency
		if st.accounts[FundingID].Currency != st.currency {
			return fmt.Errorf("%w: well-known accounts disagree on currency", errCorrupt)
		}
		a, ok, err := getValue(txn, appendAccountKey(nil, SuspenseID), decodeAccount)
		switch {
		case err != nil:
			return err
		case ok && (a.ID != SuspenseID || a.Type != Suspense || a.Currency != st.currency):
			return fmt.Errorf("%w: suspense account %d is %d, a %s account in currency %d", errCorrupt, SuspenseID, a.ID, a.Type, a.Currency)
		case ok:
			haveSuspense = true
			st.accounts[SuspenseID] = &a
		}

		if st.window, haveWindow, err = getValue(txn, keyWindow, decodeWindow); err != nil {
			return err
		}
		if st.cuts, err = loadCuts(txn); err != nil {
			return err
		}
		switch n := len(st.cuts); {
		case !haveWindow && n > 0:
			return fmt.Errorf("%w: cutover points without m/window", errCorrupt)
		case haveWindow && (n == 0 || st.cuts[n-1].Window != st.window.window || st.cuts[n-1].Date != st.window.date):
			return fmt.Errorf("%w: m/window %d (date %d) is not the last cutover point", errCorrupt, st.window.window, st.window.date)
		}
		return nil
	})
	if err != nil || !fresh && haveSuspense && haveWindow {
		return err
	}

	txn := db.NewTransaction(true)
	defer txn.Discard()
	var create []*Account
	if fresh {
		st.seq, st.nextAcct, st.currency = 0, firstAccountID, currency
		create = []*Account{
			{ID: SettlementPayableID, Type: InstitutionSettlement, Currency: currency, Status: Active, Name: "settlement-payable"},
			{ID: FundingID, Type: InstitutionSettlement, Currency: currency, Status: Active, Name: "funding"},
		}
		if err := txn.Set(keySeq, appendCounter(nil, 0)); err != nil {
			return err
		}
		if err := txn.Set(keyNextAcct, appendCounter(nil, firstAccountID)); err != nil {
			return err
		}
	}
	if !haveSuspense {
		create = append(create, &Account{ID: SuspenseID, Type: Suspense, Currency: st.currency, Status: Active, Name: "suspense"})
	}
	for _, a := range create {
		if err := txn.Set(appendAccountKey(nil, a.ID), appendAccount(nil, a)); err != nil {
			return err
		}
	}
	if !haveWindow {
		if !validDate(today) {
			return fmt.Errorf("ledger: the clock's date %d is not a date YYYYMMDD", today)
		}
		w := windowState{window: 1, date: today}
		p := CutoverPoint{Window: 1, Date: today, Last: st.seq}
		if err := txn.Set(keyWindow, appendWindow(nil, w)); err != nil {
			return err
		}
		if err := txn.Set(appendCutKey(nil, 1), appendCut(nil, &p)); err != nil {
			return err
		}
		st.window, st.cuts = w, []CutoverPoint{p}
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	for _, a := range create {
		st.accounts[a.ID] = a
	}
	return nil
}

// loadCuts reads every cutover point, in window order.
func loadCuts(txn *badger.Txn) ([]CutoverPoint, error) {
	var cuts []CutoverPoint
	err := scan(txn, []byte(prefixCut), nil, func(k, v []byte) (bool, error) {
		c, err := decodeCut(k, v)
		if err != nil {
			return false, err
		}
		if n := len(cuts); n > 0 && (c.Last < cuts[n-1].Last || c.Date < cuts[n-1].Date) {
			return false, fmt.Errorf("%w: cutover point of window %d goes back from window %d's", errCorrupt, c.Window, cuts[n-1].Window)
		}
		cuts = append(cuts, c)
		return true, nil
	})
	return cuts, err
}

// loadBatch reads, in one read transaction, everything the apply step will need that is not in
// the writer's cache: each request's idempotency record, PAN binding and account. A request whose
// records cannot be read gets its error here and is left out of apply.
func (s *Shard) loadBatch(envs []*envelope, known map[TxID]txRecord) {
	err := s.db.View(func(txn *badger.Txn) error {
		for _, e := range envs {
			if e.skip != nil {
				continue
			}
			if err := s.loadCommand(txn, &e.cmd, known); err != nil {
				e.skip = fmt.Errorf("%w: %w", ErrCommit, err)
				s.log.Error("ledger: read failed", "op", e.cmd.op, "err", err)
			}
		}
		return nil
	})
	if err != nil {
		for _, e := range envs {
			if e.skip == nil {
				e.skip = fmt.Errorf("%w: %w", ErrCommit, err)
			}
		}
	}
}

func (s *Shard) loadCommand(txn *badger.Txn, c *command, known map[TxID]txRecord) error {
	switch c.op {
	case OpPurchase, OpDeposit, OpBalance, OpReversal, OpAdvice, OpPreAuth, OpCompletion, OpRefund, OpTransfer, OpPayment:
		r := &c.req
		if r.Op != OpBalance && !r.ID.IsZero() {
			if err := s.loadTx(txn, &r.ID, known); err != nil {
				return err
			}
			if err := loadBooked(txn, &r.ID, known); err != nil {
				return err
			}
		}
		if r.Op.refers() && !r.Original.IsZero() {
			if err := s.loadTx(txn, &r.Original, known); err != nil {
				return fmt.Errorf("original: %w", err)
			}
			if rec := known[r.Original]; rec.counter != 0 {
				if err := s.loadAccount(txn, rec.counter); err != nil {
					return fmt.Errorf("original: %w", err)
				}
			}
		}
		if r.PAN == "" && r.From != "" {
			if err := s.loadOwner(txn, r.From); err != nil {
				return err
			}
		}
		if r.To != "" {
			if err := s.loadOwner(txn, r.To); err != nil {
				return err
			}
		}
		return s.loadCard(txn, r.PAN)
	case opOpenAccount:
		if err := s.loadOwner(txn, c.spec.Number); err != nil {
			return err
		}
		return s.loadCard(txn, c.spec.PAN)
	case opSetStatus, opSetLimits:
		return s.loadAccount(txn, c.acct)
	case opAdjust:
		a := &c.adj
		if !a.ID.IsZero() {
			if err := s.loadTx(txn, &a.ID, known); err != nil {
				return err
			}
			if err := loadBooked(txn, &a.ID, known); err != nil {
				return err
			}
		}
		if err := s.loadOwner(txn, a.Number); err != nil {
			return err
		}
		if a.Account != 0 {
			if err := s.loadAccount(txn, a.Account); err != nil {
				return err
			}
		}
		return s.loadCard(txn, a.PAN)
	}
	return nil
}

// loadBooked adds to a loaded approved record of id the settlement window and date of its
// booking, read from its journal entry, so that a replay answers them as the first answer did.
// Only a request's own record needs them, and only a retransmission has one.
func loadBooked(txn *badger.Txn, id *TxID, known map[TxID]txRecord) error {
	rec, ok := known[*id]
	if !ok || rec.code != Approved || rec.seq == 0 || rec.window != 0 {
		return nil
	}
	t, found, err := getValue(txn, appendJournalKey(nil, rec.seq), decodeTransfer)
	if err != nil || !found {
		return fmt.Errorf("journal entry %d of a tx record: found %t, %v", rec.seq, found, err)
	}
	rec.window, rec.date = t.Window, t.SettleDate
	known[*id] = rec
	return nil
}

// firstExpiry is the earliest expiry in the hold index, or math.MaxInt64 when it is empty.
func firstExpiry(db *badger.DB) (int64, error) {
	first := int64(math.MaxInt64)
	err := db.View(func(txn *badger.Txn) error {
		return scan(txn, []byte(prefixHold), nil, func(k, _ []byte) (bool, error) {
			if len(k) != len(prefixHold)+16 {
				return false, fmt.Errorf("%w: hold index key %x", errCorrupt, k)
			}
			first = int64(binary.BigEndian.Uint64(k[len(prefixHold):]))
			return false, nil
		})
	})
	return first, err
}

// loadExpired appends to dst, in index order, up to maxSweep holds whose expiry is at or before
// now, and loads their records and accounts for the sweep. It moves s.sweepAt to the first expiry
// it did not take (or far ahead when the index is empty), so that batches before then skip it.
func (s *Shard) loadExpired(now int64, dst []holdKey, known map[TxID]txRecord) []holdKey {
	next := int64(math.MaxInt64)
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(txn, []byte(prefixHold), nil, func(k, v []byte) (bool, error) {
			if len(k) != len(prefixHold)+16 {
				return false, fmt.Errorf("%w: hold index key %x", errCorrupt, k)
			}
			expires := int64(binary.BigEndian.Uint64(k[len(prefixHold):]))
			if expires > now || len(dst) == maxSweep {
				next = expires
				return false, nil
			}
			id, err := decodeHoldRef(v)
			if err != nil {
				return false, err
			}
			if err := s.loadTx(txn, &id, known); err != nil {
				return false, err
			}
			if rec, ok := known[id]; ok && rec.account != 0 && rec.counter != 0 {
				if err := s.loadAccount(txn, rec.account); err != nil {
					return false, err
				}
				if err := s.loadAccount(txn, rec.counter); err != nil {
					return false, err
				}
			}
			dst = append(dst, holdKey{expires: expires, seq: binary.BigEndian.Uint64(k[len(prefixHold)+8:]), id: id})
			return true, nil
		})
	})
	if err != nil {
		// The requests go on; the sweep tries again with the next batch.
		s.log.Error("ledger: reading the hold index failed", "err", err)
		return dst[:0]
	}
	s.sweepAt = next
	return dst
}

// loadTx puts the committed record of id, if there is one, in known. A v1 record of a booking
// does not say what it booked; loadTx fills that in from its journal entry, so that apply sees
// every approved record with its kind, card and amount, whatever version stored it.
func (s *Shard) loadTx(txn *badger.Txn, id *TxID, known map[TxID]txRecord) error {
	if _, ok := known[*id]; ok {
		return nil
	}
	s.key = appendTxKey(s.key[:0], id)
	rec, found, err := getValue(txn, s.key, decodeTxRecord)
	if err != nil {
		return fmt.Errorf("tx record: %w", err)
	}
	if !found {
		return nil
	}
	if rec.kind == txUnknown && rec.code == Approved && rec.seq != 0 {
		if err := fillV1(txn, id, &rec); err != nil {
			return err
		}
	}
	known[*id] = rec
	return nil
}

// fillV1 completes an approved v1 tx record from the journal entry it points at.
func fillV1(txn *badger.Txn, id *TxID, rec *txRecord) error {
	t, found, err := getValue(txn, appendJournalKey(nil, rec.seq), decodeTransfer)
	switch {
	case err != nil:
		return fmt.Errorf("journal entry %d of a v1 tx record: %w", rec.seq, err)
	case !found || t.TxID != *id:
		return fmt.Errorf("%w: v1 tx record points at journal entry %d, which is not its booking", errCorrupt, rec.seq)
	}
	switch t.Kind {
	case KindPurchase:
		rec.kind, rec.account = txPurchase, t.Debit
	case KindDeposit:
		rec.kind, rec.account = txDeposit, t.Credit
	default:
		return fmt.Errorf("%w: v1 tx record for a %s entry", errCorrupt, t.Kind)
	}
	rec.amount = t.Amount
	return nil
}

// loadCard caches the PAN's binding and account, if it has one.
func (s *Shard) loadCard(txn *badger.Txn, pan string) error {
	if !plausiblePAN(pan) {
		return nil // cannot be bound; apply answers 14
	}
	id, ok := s.st.cards[pan]
	if !ok {
		s.key = appendCardKey(s.key[:0], pan)
		v, found, err := getValue(txn, s.key, counterDecoder("card index"))
		if err != nil {
			return fmt.Errorf("card %s: %w", maskPAN(pan), err)
		}
		if !found {
			return nil
		}
		id = v
	}
	if err := s.loadAccount(txn, id); err != nil {
		return err
	}
	if _, ok := s.st.accounts[id]; !ok {
		return fmt.Errorf("%w: card %s points to missing account %d", errCorrupt, maskPAN(pan), id)
	}
	s.st.cards[pan] = id
	return nil
}

// loadOwner caches the binding of an account number (or phone number, or biller code) and its
// account, if it has one; a PAN given in its place is looked up as a card.
func (s *Shard) loadOwner(txn *badger.Txn, n string) error {
	if !plausibleNumber(n) {
		return nil
	}
	id, ok := s.st.owners[n]
	if !ok {
		s.key = appendOwnerKey(s.key[:0], n)
		v, found, err := getValue(txn, s.key, counterDecoder("owner index"))
		if err != nil {
			return fmt.Errorf("number %s: %w", maskPAN(n), err)
		}
		if !found {
			return s.loadCard(txn, n)
		}
		id = v
	}
	if err := s.loadAccount(txn, id); err != nil {
		return err
	}
	if _, ok := s.st.accounts[id]; !ok {
		return fmt.Errorf("%w: number %s points to missing account %d", errCorrupt, maskPAN(n), id)
	}
	s.st.owners[n] = id
	return nil
}

// loadAccount caches the account if it exists.
func (s *Shard) loadAccount(txn *badger.Txn, id uint64) error {
	if _, ok := s.st.accounts[id]; ok {
		return nil
	}
	s.key = appendAccountKey(s.key[:0], id)
	a, found, err := getValue(txn, s.key, decodeAccount)
	if err != nil {
		return fmt.Errorf("account %d: %w", id, err)
	}
	if found {
		if a.ID != id {
			return fmt.Errorf("%w: key a/%d holds account %d", errCorrupt, id, a.ID)
		}
		s.st.accounts[id] = &a
	}
	return nil
}

// writeBatch writes the overlay in one read-write transaction and commits it. The keys and values
// live in s.arena, which badger may reference until Commit returns; it is reused by the next batch.
func (s *Shard) writeBatch(b *batch) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	arena := s.arena[:0]
	set := func(k0, v0 int) error {
		k, v := arena[k0:v0:v0], arena[v0:len(arena):len(arena)]
		return txn.Set(k, v)
	}
	for _, id := range b.touched {
		k0 := len(arena)
		arena = appendAccountKey(arena, id)
		v0 := len(arena)
		arena = appendAccount(arena, b.accounts[id])
		if err := set(k0, v0); err != nil {
			return err
		}
	}
	for _, pan := range b.newCards {
		k0 := len(arena)
		arena = appendCardKey(arena, pan)
		v0 := len(arena)
		arena = appendCounter(arena, b.cards[pan])
		if err := set(k0, v0); err != nil {
			return err
		}
	}
	for _, n := range b.newOwners {
		k0 := len(arena)
		arena = appendOwnerKey(arena, n)
		v0 := len(arena)
		arena = appendCounter(arena, b.owners[n])
		if err := set(k0, v0); err != nil {
			return err
		}
	}
	for i := range b.journal {
		t := &b.journal[i]
		k0 := len(arena)
		arena = appendJournalKey(arena, t.Seq)
		v0 := len(arena)
		arena = appendTransfer(arena, t)
		if err := set(k0, v0); err != nil {
			return err
		}
	}
	for i := range b.newTxs {
		id := &b.newTxs[i]
		k0 := len(arena)
		arena = appendTxKey(arena, id)
		v0 := len(arena)
		rec := b.txs[*id]
		arena = appendTxRecord(arena, &rec)
		if err := set(k0, v0); err != nil {
			return err
		}
	}
	for _, h := range b.newHolds {
		k0 := len(arena)
		arena = appendHoldKey(arena, h.expires, h.seq)
		v0 := len(arena)
		arena = appendHoldRef(arena, &h.id)
		if err := set(k0, v0); err != nil {
			return err
		}
	}
	for _, h := range b.delHolds { // after the sets: a hold placed and closed in one batch is gone
		k0 := len(arena)
		arena = appendHoldKey(arena, h.expires, h.seq)
		if err := txn.Delete(arena[k0:len(arena):len(arena)]); err != nil {
			return err
		}
	}
	if b.seq != b.st.seq {
		k0 := len(arena)
		arena = append(arena, keySeq...)
		v0 := len(arena)
		arena = appendCounter(arena, b.seq)
		if err := set(k0, v0); err != nil {
			return err
		}
	}
	for i := range b.cuts {
		k0 := len(arena)
		arena = appendCutKey(arena, b.cuts[i].Window)
		v0 := len(arena)
		arena = appendCut(arena, &b.cuts[i])
		if err := set(k0, v0); err != nil {
			return err
		}
	}
	if b.window != b.st.window {
		k0 := len(arena)
		arena = append(arena, keyWindow...)
		v0 := len(arena)
		arena = appendWindow(arena, b.window)
		if err := set(k0, v0); err != nil {
			return err
		}
	}
	if b.nextAcct != b.st.nextAcct {
		k0 := len(arena)
		arena = append(arena, keyNextAcct...)
		v0 := len(arena)
		arena = appendCounter(arena, b.nextAcct)
		if err := set(k0, v0); err != nil {
			return err
		}
	}
	s.arena = arena
	if s.opts.commitFault != nil {
		if err := s.opts.commitFault(); err != nil {
			return err
		}
	}
	return txn.Commit()
}
