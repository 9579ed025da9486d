package head

import "github.com/dgraph-io/badger/v4"

// batch is the writes of one transaction (an Apply, a Settle). badger keeps every key, value
// and Entry a transaction is given until it commits, so each gets its own bytes; batch carves
// them out of a few large chunks instead of allocating each key, value and Entry alone, and
// never hands out the same bytes twice.
type batch struct {
	txn   *badger.Txn
	chunk int    // bytes a new chunk of buf gets at least
	buf   []byte // the current chunk: len is what was handed out
	ents  []badger.Entry
}

// newBatch sizes the first chunks for about bytes of keys and values in about keys keys.
func newBatch(txn *badger.Txn, bytes, keys int) *batch {
	return &batch{txn: txn, chunk: max(bytes, 4096), ents: make([]badger.Entry, 0, max(keys, 16))}
}

// take returns room for n bytes: a slice of length 0 and capacity n that nothing else uses.
// Appending more than n bytes to it is safe, it just allocates.
func (b *batch) take(n int) []byte {
	if cap(b.buf)-len(b.buf) < n {
		b.buf = make([]byte, 0, max(n, b.chunk))
	}
	l := len(b.buf)
	b.buf = b.buf[:l+n]
	return b.buf[l : l : l+n]
}

// set writes key → value in the transaction; both must stay unchanged until it commits.
func (b *batch) set(key, value []byte) error {
	if len(b.ents) == cap(b.ents) {
		// A new slice rather than a grown one: the Entries badger points to stay put, uncopied.
		b.ents = make([]badger.Entry, 0, cap(b.ents))
	}
	b.ents = append(b.ents, badger.Entry{Key: key, Value: value})
	return b.txn.SetEntry(&b.ents[len(b.ents)-1])
}
