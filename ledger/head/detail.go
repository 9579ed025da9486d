package head

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/junction-switch/junction/ledger"
)

// maxAnnotation bounds the text fields of an entry the head takes (Terminal, Merchant, Acquirer,
// STAN, RRN): far above ISO 8583's limits, low enough to keep every key short.
const maxAnnotation = 32

// effWindow is the window an entry counts in: its own, or window 1 for entries booked before
// windows existed (Window 0).
func effWindow(t *ledger.Transfer) uint32 { return max(t.Window, 1) }

// dateOf is the UTC date of a unix-nanosecond time as YYYYMMDD.
func dateOf(ns int64) uint32 { return dateOfTime(time.Unix(0, ns)) }

func dateOfTime(t time.Time) uint32 {
	y, m, d := t.UTC().Date()
	return uint32(y*10000 + int(m)*100 + d)
}

// detailKey is e/<len><region><seq BE u64>.
func detailKey(region string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendRegion(nil, prefixDetail, region), seq)
}

// appendTail ends an index key: <len><region><seq BE u64><len>. The length at the very end lets
// the region and seq be read back from the end of any index key.
func appendTail(dst []byte, region string, seq uint64) []byte {
	dst = append(dst, byte(len(region)))
	dst = append(dst, region...)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return append(dst, byte(len(region)))
}

// tailOf reads the region and seq back from the end of an index key.
func tailOf(k []byte, prefixLen int) (string, uint64, error) {
	n := len(k)
	if n < prefixLen+10 {
		return "", 0, corrupt("index key", fmt.Sprintf("%d bytes", n))
	}
	l := int(k[n-1])
	if n-10-l < prefixLen || int(k[n-10-l]) != l {
		return "", 0, corrupt("index key", "region length does not match")
	}
	return string(k[n-9-l : n-9]), binary.BigEndian.Uint64(k[n-9 : n-1]), nil
}

func appendStr(dst []byte, s string) []byte {
	dst = append(dst, byte(len(s)))
	return append(dst, s...)
}

// windowIndexPrefix is x/w<window BE u32>, and with a region <len><region>.
func windowIndexPrefix(window uint32, region string) []byte {
	k := binary.BigEndian.AppendUint32([]byte(prefixByWindow), window)
	if region != "" {
		k = appendStr(k, region)
	}
	return k
}

// dateIndexPrefix is x/d<date BE u32>, and with an acquirer <len><acquirer>.
func dateIndexPrefix(date uint32, acquirer string, withAcquirer bool) []byte {
	k := binary.BigEndian.AppendUint32([]byte(prefixByDate), date)
	if withAcquirer {
		k = appendStr(k, acquirer)
	}
	return k
}

// rrnIndexPrefix is x/r<len><rrn>, and with a region <len><region>.
func rrnIndexPrefix(rrn, region string) []byte {
	k := appendStr([]byte(prefixByRRN), rrn)
	if region != "" {
		k = appendStr(k, region)
	}
	return k
}

// putDetail stores an entry and its index keys inside txn.
func putDetail(txn *badger.Txn, region string, t *ledger.Transfer) error {
	if err := txn.Set(detailKey(region, t.Seq), appendDetail(nil, t)); err != nil {
		return err
	}
	keys := [][]byte{
		appendTail(binary.BigEndian.AppendUint32([]byte(prefixByWindow), effWindow(t)), region, t.Seq),
		appendTail(dateIndexPrefix(dateOf(t.Time), t.Acquirer, true), region, t.Seq),
	}
	if t.RRN != "" {
		keys = append(keys, appendTail(appendStr([]byte(prefixByRRN), t.RRN), region, t.Seq))
	}
	for _, k := range keys {
		if err := txn.Set(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// detail record v1: seq, TxID (32 bytes), kind (u8), debit, credit (u64), amount (i64), currency
// (u16), time, original, expires, released (u64 each), window, settle date (u32), then terminal,
// merchant, acquirer, STAN and RRN, each with a one-byte length; CRC-32C.
const detailFixed = 1 + 8 + 32 + 1 + 8 + 8 + 8 + 2 + 8 + 8 + 8 + 8 + 4 + 4 + 5 + crcSize

func appendDetail(dst []byte, t *ledger.Transfer) []byte {
	start := len(dst)
	dst = append(dst, recordV1)
	dst = binary.BigEndian.AppendUint64(dst, t.Seq)
	dst = append(dst, t.TxID[:]...)
	dst = append(dst, byte(t.Kind))
	for _, v := range [...]uint64{t.Debit, t.Credit, uint64(t.Amount)} {
		dst = binary.BigEndian.AppendUint64(dst, v)
	}
	dst = binary.BigEndian.AppendUint16(dst, t.Currency)
	for _, v := range [...]uint64{uint64(t.Time), t.Original, uint64(t.Expires), uint64(t.Released)} {
		dst = binary.BigEndian.AppendUint64(dst, v)
	}
	dst = binary.BigEndian.AppendUint32(dst, t.Window)
	dst = binary.BigEndian.AppendUint32(dst, t.SettleDate)
	for _, s := range [...]string{t.Terminal, t.Merchant, t.Acquirer, t.STAN, t.RRN} {
		dst = appendStr(dst, s)
	}
	return seal(dst, start)
}

func decodeDetail(b []byte) (ledger.Transfer, error) {
	var t ledger.Transfer
	if len(b) < detailFixed {
		return t, corrupt("detail", fmt.Sprintf("%d bytes, want at least %d", len(b), detailFixed))
	}
	p, err := unseal("detail", b, len(b))
	if err != nil {
		return t, err
	}
	u64 := func() uint64 { v := binary.BigEndian.Uint64(p); p = p[8:]; return v }
	t.Seq = u64()
	copy(t.TxID[:], p)
	p = p[len(t.TxID):]
	t.Kind = ledger.Kind(p[0])
	p = p[1:]
	t.Debit, t.Credit, t.Amount = u64(), u64(), int64(u64())
	t.Currency = binary.BigEndian.Uint16(p)
	p = p[2:]
	t.Time, t.Original, t.Expires, t.Released = int64(u64()), u64(), int64(u64()), int64(u64())
	t.Window = binary.BigEndian.Uint32(p)
	t.SettleDate = binary.BigEndian.Uint32(p[4:])
	p = p[8:]
	for _, s := range [...]*string{&t.Terminal, &t.Merchant, &t.Acquirer, &t.STAN, &t.RRN} {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return ledger.Transfer{}, corrupt("detail", "text field runs past the end")
		}
		*s = string(p[1 : 1+p[0]])
		p = p[1+p[0]:]
	}
	if len(p) != 0 {
		return ledger.Transfer{}, corrupt("detail", fmt.Sprintf("%d bytes left over", len(p)))
	}
	return t, nil
}

// Entries returns the merged entries q selects, in key order of the index it reads: by RRN when
// q.RRN is set, else by date (and acquirer) when q.Date is set, else by window (and region) when
// q.Window is set, else by region and seq. Each of these is a prefix scan of one index; the other
// fields of q filter what it yields. A Window of 1 selects entries booked before windows existed
// (Window 0) too. Acquirer "" matches any acquirer.
func (h *Head) Entries(q Query) ([]Entry, error) {
	if q.Region != "" {
		if err := checkRegion(q.Region); err != nil {
			return nil, err
		}
	}
	var prefix []byte
	indexed := true
	switch {
	case q.RRN != "":
		prefix = rrnIndexPrefix(q.RRN, q.Region)
	case q.Date != 0:
		prefix = dateIndexPrefix(q.Date, q.Acquirer, q.Acquirer != "")
	case q.Window != 0:
		prefix = windowIndexPrefix(q.Window, q.Region)
	case q.Region != "":
		prefix, indexed = appendRegion(nil, prefixDetail, q.Region), false
	default:
		prefix, indexed = []byte(prefixDetail), false
	}
	match := func(e *Entry) bool {
		return (q.Region == "" || e.Region == q.Region) && (q.Window == 0 || effWindow(&e.Transfer) == q.Window) &&
			(q.Date == 0 || dateOf(e.Time) == q.Date) && (q.Acquirer == "" || e.Acquirer == q.Acquirer) &&
			(q.RRN == "" || e.RRN == q.RRN)
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, ErrClosed
	}
	var out []Entry
	err := h.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: !indexed, Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			var e Entry
			var err error
			if indexed {
				e, err = readEntry(txn, it.Item().Key(), len(prefixByRRN))
			} else {
				e, err = detailEntry(it.Item())
			}
			if err != nil {
				return err
			}
			if !match(&e) {
				continue
			}
			out = append(out, e)
			if q.Limit > 0 && len(out) >= q.Limit {
				return nil
			}
		}
		return nil
	})
	return out, err
}

// readEntry loads the detail an index key points at.
func readEntry(txn *badger.Txn, key []byte, prefixLen int) (Entry, error) {
	region, seq, err := tailOf(key, prefixLen)
	if err != nil {
		return Entry{}, err
	}
	item, err := txn.Get(detailKey(region, seq))
	if err != nil {
		return Entry{}, fmt.Errorf("head: index names region %s seq %d: %w", region, seq, err)
	}
	e, err := detailEntry(item)
	if err == nil && (e.Region != region || e.Seq != seq) {
		err = corrupt("detail", fmt.Sprintf("key region %s seq %d holds seq %d", region, seq, e.Seq))
	}
	return e, err
}

func detailEntry(item *badger.Item) (Entry, error) {
	k := item.Key()
	p := k[len(prefixDetail):]
	if len(p) < 9 || int(p[0]) != len(p)-9 {
		return Entry{}, corrupt("detail key", fmt.Sprintf("%d bytes after the prefix", len(p)))
	}
	e := Entry{Region: string(p[1 : 1+p[0]])}
	err := item.Value(func(v []byte) error {
		var err error
		e.Transfer, err = decodeDetail(v)
		return err
	})
	return e, err
}
