package head

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/dgraph-io/badger/v4"
)

// Level is a level of the GL roll-up: institution → region → station or merchant → account.
type Level uint8

// GL levels. LevelAccount is the detail of the roll-up: one line per leaf.
const (
	LevelInstitution Level = iota + 1 // per acquirer
	LevelRegion                       // per acquirer and region
	LevelMerchant                     // per acquirer, region and merchant (field 42; "" when none)
	LevelAccount                      // per acquirer, region, merchant and account: the leaves
)

// String returns the lower-case level name.
func (l Level) String() string {
	switch l {
	case LevelInstitution:
		return "institution"
	case LevelRegion:
		return "region"
	case LevelMerchant:
		return "merchant"
	case LevelAccount:
		return "account"
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// GLLine is one line of the GL roll-up of a window: its keys down to the level asked for (the
// others are zero) and the sum of the leaves under them in one currency. Every entry adds to two
// leaves (its debit and its credit account) under its own acquirer, region and merchant, so at
// every level above the account a line's debits equal its credits.
type GLLine struct {
	Window      uint32
	Institution string // the acquirer (field 32); "" for entries without one
	Region      string
	Merchant    string
	Account     uint64
	Total
}

// glKey is g/<window><len><acquirer><len><region><len><merchant><account BE u64><currency BE u16>.
func glKey(window uint32, acquirer, region, merchant string, account uint64, currency uint16) []byte {
	return appendGLKey(nil, window, acquirer, region, merchant, account, currency)
}

func appendGLKey(dst []byte, window uint32, acquirer, region, merchant string, account uint64, currency uint16) []byte {
	k := binary.BigEndian.AppendUint32(append(dst, prefixGL...), window)
	k = appendStr(appendStr(appendStr(k, acquirer), region), merchant)
	k = binary.BigEndian.AppendUint64(k, account)
	return binary.BigEndian.AppendUint16(k, currency)
}

// parseGLKey reads the keys of a g/ key back.
func parseGLKey(k []byte) (GLLine, error) {
	var l GLLine
	p := k[len(prefixGL):]
	if len(p) < 4 {
		return l, corrupt("GL key", "too short")
	}
	l.Window = binary.BigEndian.Uint32(p)
	p = p[4:]
	for _, s := range [...]*string{&l.Institution, &l.Region, &l.Merchant} {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return l, corrupt("GL key", "text runs past the end")
		}
		*s = string(p[1 : 1+int(p[0])])
		p = p[1+int(p[0]):]
	}
	if len(p) != 10 {
		return l, corrupt("GL key", fmt.Sprintf("%d bytes after the text, want 10", len(p)))
	}
	l.Account = binary.BigEndian.Uint64(p)
	l.Currency = binary.BigEndian.Uint16(p[8:])
	return l, nil
}

// GL returns the roll-up of window at level: one line per key of that level and currency, sorted
// by institution, region, merchant, account and currency. It sums the window's leaves in one
// prefix scan. Entries with Window 0 count in window 1.
func (h *Head) GL(window uint32, level Level) ([]GLLine, error) {
	if level < LevelInstitution || level > LevelAccount {
		return nil, fmt.Errorf("head: GL level %d unknown", level)
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, ErrClosed
	}
	type key struct {
		inst, region, merchant string
		account                uint64
		currency               uint16
	}
	sums := make(map[key]*GLLine)
	prefix := binary.BigEndian.AppendUint32([]byte(prefixGL), window)
	err := h.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			leaf, err := parseGLKey(it.Item().Key())
			if err != nil {
				return err
			}
			if err := it.Item().Value(func(v []byte) error {
				leaf.Total, err = decodeTotal(v, leaf.Currency)
				return err
			}); err != nil {
				return err
			}
			k := key{inst: leaf.Institution, currency: leaf.Currency}
			if level >= LevelRegion {
				k.region = leaf.Region
			}
			if level >= LevelMerchant {
				k.merchant = leaf.Merchant
			}
			if level >= LevelAccount {
				k.account = leaf.Account
			}
			line, ok := sums[k]
			if !ok {
				line = &GLLine{Window: window, Institution: k.inst, Region: k.region, Merchant: k.merchant,
					Account: k.account, Total: Total{Currency: k.currency}}
				sums[k] = line
			}
			t := &line.Total
			if !add(&t.Debits, leaf.Debits) || !add(&t.Credits, leaf.Credits) ||
				!add(&t.DebitsPending, leaf.DebitsPending) || !add(&t.CreditsPending, leaf.CreditsPending) {
				return fmt.Errorf("head: GL of window %d: a sum overflows", window)
			}
			t.Entries += leaf.Entries
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]GLLine, 0, len(sums))
	for _, l := range sums {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		switch {
		case a.Institution != b.Institution:
			return a.Institution < b.Institution
		case a.Region != b.Region:
			return a.Region < b.Region
		case a.Merchant != b.Merchant:
			return a.Merchant < b.Merchant
		case a.Account != b.Account:
			return a.Account < b.Account
		}
		return a.Currency < b.Currency
	})
	return out, nil
}

// cache holds the records of one kind (totals, seq ranges) that one Apply or Settle reads and
// writes, so that each is read once and written once per transaction. A caller that builds its
// keys by appending to key (empty, with room) allocates nothing for a record already loaded:
// load keeps the room for the next key.
type cache[T any] struct {
	txn    *badger.Txn
	m      map[string]*T
	key    []byte // scratch for the caller's keys, length 0
	decode func(v []byte, zero T) (T, error)
	encode func(dst []byte, t *T) []byte
	size   int // encoded size of one record
}

// load returns the record under key: the cached one, the stored one, or zero when there is none.
func (c *cache[T]) load(key []byte, zero T) (*T, error) {
	c.key = key[:0]
	if t, ok := c.m[string(key)]; ok {
		return t, nil
	}
	t := new(T)
	*t = zero
	item, err := c.txn.Get(key)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return nil, err
	default:
		if err := item.Value(func(v []byte) error {
			*t, err = c.decode(v, zero)
			return err
		}); err != nil {
			return nil, err
		}
	}
	c.m[string(key)] = t
	return t, nil
}

// write sets every loaded record in b.
func (c *cache[T]) write(b *batch) error {
	for k, t := range c.m {
		if err := b.set(append(b.take(len(k)), k...), c.encode(b.take(c.size), t)); err != nil {
			return err
		}
	}
	return nil
}

// totals caches totals; a total's currency comes from its caller (load's zero).
type totals = cache[Total]

func newTotals(txn *badger.Txn) *totals {
	return &totals{txn: txn, m: make(map[string]*Total), size: totalSize, encode: appendTotal,
		decode: func(v []byte, zero Total) (Total, error) { return decodeTotal(v, zero.Currency) }}
}

// ranges caches the seq ranges (q/ keys) one Apply widens.
type ranges = cache[seqRange]

func newRanges(txn *badger.Txn) *ranges {
	return &ranges{txn: txn, m: make(map[string]*seqRange), size: rangeSize, encode: appendRange,
		decode: func(v []byte, _ seqRange) (seqRange, error) { return decodeRange(v) }}
}
