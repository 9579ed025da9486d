package ledger

import "github.com/dgraph-io/badger/v4"

// Reads go straight to badger, not through the writer: every batch is one badger transaction, so
// a read transaction sees whole batches only, and it sees every batch whose callers have been
// answered.

// view runs fn in a badger read transaction unless the shard is closed.
func (s *Shard) view(fn func(txn *badger.Txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

// Account returns the committed state of an account, or ErrNotFound.
func (s *Shard) Account(id uint64) (Account, error) {
	var a Account
	err := s.view(func(txn *badger.Txn) error {
		var found bool
		var err error
		a, found, err = getValue(txn, appendAccountKey(nil, id), decodeAccount)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	return a, err
}

// AccountByPAN returns the committed state of the card account bound to pan, or ErrNotFound.
func (s *Shard) AccountByPAN(pan string) (Account, error) {
	if !plausiblePAN(pan) {
		return Account{}, ErrNotFound
	}
	var a Account
	err := s.view(func(txn *badger.Txn) error {
		id, found, err := getValue(txn, appendCardKey(nil, pan), counterDecoder("card index"))
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		a, found, err = getValue(txn, appendAccountKey(nil, id), decodeAccount)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	return a, err
}

// Accounts returns every account in id order.
func (s *Shard) Accounts() ([]Account, error) {
	var out []Account
	err := s.view(func(txn *badger.Txn) error {
		return scan(txn, []byte(prefixAccount), nil, func(_, v []byte) (bool, error) {
			a, err := decodeAccount(v)
			if err != nil {
				return false, err
			}
			out = append(out, a)
			return true, nil
		})
	})
	return out, err
}

// Journal returns up to limit journal entries with Seq ≥ from, in sequence order. limit ≤ 0 means
// a page of 1024. The head ledger pages through it with from = last seen Seq + 1.
func (s *Shard) Journal(from uint64, limit int) ([]Transfer, error) {
	if limit <= 0 {
		limit = journalPage
	}
	from = max(from, 1)
	var out []Transfer
	err := s.view(func(txn *badger.Txn) error {
		return scan(txn, []byte(prefixJournal), appendJournalKey(nil, from), func(_, v []byte) (bool, error) {
			t, err := decodeTransfer(v)
			if err != nil {
				return false, err
			}
			out = append(out, t)
			return len(out) < limit, nil
		})
	})
	return out, err
}

// scan calls fn for each key with the prefix, starting at seek (or the prefix), until fn returns
// false or an error. The slices are only valid during the call.
func scan(txn *badger.Txn, prefix, seek []byte, fn func(k, v []byte) (bool, error)) error {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: prefix})
	defer it.Close()
	if seek == nil {
		seek = prefix
	}
	for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		var more bool
		err := item.Value(func(v []byte) error {
			var err error
			more, err = fn(item.Key(), v)
			return err
		})
		if err != nil || !more {
			return err
		}
	}
	return nil
}
