package head

import (
	"encoding/binary"
	"fmt"
	"math"
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
func detailKey(region string, seq uint64) []byte { return appendDetailKey(nil, region, seq) }

func appendDetailKey(dst []byte, region string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendRegion(dst, prefixDetail, region), seq)
}

func detailKeyLen(region string) int { return len(prefixDetail) + 1 + len(region) + 8 }

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

// rrnIndexPrefix is x/r<len><rrn>, and with a region <len><region>.
func rrnIndexPrefix(rrn, region string) []byte {
	k := appendStr([]byte(prefixByRRN), rrn)
	if region != "" {
		k = appendStr(k, region)
	}
	return k
}

func rrnIndexKeyLen(rrn, region string) int {
	return len(prefixByRRN) + 1 + len(rrn) + 1 + len(region) + 8 + 1
}

// windowSeqsKey is q/w<window BE u32>, and with a region <len><region>: the key of the range of
// seqs a region booked in a window, or the prefix of a window's ranges.
func windowSeqsKey(dst []byte, window uint32, region string) []byte {
	dst = binary.BigEndian.AppendUint32(append(dst, prefixWindowSeqs...), window)
	if region != "" {
		dst = appendStr(dst, region)
	}
	return dst
}

// dateSeqsKey is q/d<date BE u32>, then with an acquirer <len><acquirer>, then with a region
// <len><region>: the key of the range of seqs a region booked for an acquirer on a UTC date, or
// the prefix of a date's (and acquirer's) ranges.
func dateSeqsKey(dst []byte, date uint32, acquirer string, withAcquirer bool, region string) []byte {
	dst = binary.BigEndian.AppendUint32(append(dst, prefixDateSeqs...), date)
	if withAcquirer {
		dst = appendStr(dst, acquirer)
		if region != "" {
			dst = appendStr(dst, region)
		}
	}
	return dst
}

// parseSeqsKey returns the region at the end of a q/ key, and for a q/d key its acquirer.
func parseSeqsKey(k []byte) (acquirer, region string, err error) {
	p := k[len(prefixWindowSeqs):]
	if len(p) < 4 {
		return "", "", corrupt("seq range key", "too short")
	}
	p = p[4:]
	if string(k[:len(prefixDateSeqs)]) == prefixDateSeqs {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return "", "", corrupt("seq range key", "acquirer runs past the end")
		}
		acquirer, p = string(p[1:1+int(p[0])]), p[1+int(p[0]):]
	}
	if len(p) < 2 || int(p[0]) != len(p)-1 {
		return "", "", corrupt("seq range key", fmt.Sprintf("%d bytes of region", len(p)))
	}
	return acquirer, string(p[1:]), nil
}

// putDetail stores an entry and, when it has an RRN, its RRN index key. Keys and values come from
// b's arena, in the exact sizes (so no append reallocates).
func putDetail(b *batch, region string, t *ledger.Transfer) error {
	k := appendDetailKey(b.take(detailKeyLen(region)), region, t.Seq)
	if err := b.set(k, appendDetail(b.take(detailLen(t)), t)); err != nil {
		return err
	}
	if t.RRN == "" {
		return nil
	}
	k = appendTail(appendStr(append(b.take(rrnIndexKeyLen(t.RRN, region)), prefixByRRN...), t.RRN), region, t.Seq)
	return b.set(k, nil)
}

// detail record v1: seq, TxID (32 bytes), kind (u8), debit, credit (u64), amount (i64), currency
// (u16), time, original, expires, released (u64 each), window, settle date (u32), then terminal,
// merchant, acquirer, STAN and RRN, each with a one-byte length; CRC-32C.
const detailFixed = 1 + 8 + 32 + 1 + 8 + 8 + 8 + 2 + 8 + 8 + 8 + 8 + 4 + 4 + 5 + crcSize

func detailLen(t *ledger.Transfer) int {
	return detailFixed + len(t.Terminal) + len(t.Merchant) + len(t.Acquirer) + len(t.STAN) + len(t.RRN)
}

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
		*s = string(p[1 : 1+int(p[0])])
		p = p[1+int(p[0]):]
	}
	if len(p) != 0 {
		return ledger.Transfer{}, corrupt("detail", fmt.Sprintf("%d bytes left over", len(p)))
	}
	return t, nil
}

// Entries returns the merged entries q selects. With q.RRN it reads the RRN index: by region,
// then seq. Else with q.Date it scans, for each acquirer (or q.Acquirer) and region that booked
// entries of that UTC date, the detail between the first and last seq they booked that date: by
// acquirer, then region, then seq. Else with q.Window it does the same per region for the window:
// by region, then seq. Else it scans the detail of q.Region, or of every region: by region, then
// seq. Regions and acquirers are in key order: shorter first, then bytewise. The other fields of
// q filter what a scan yields. A Window of 1 selects entries booked before windows existed
// (Window 0) too. Acquirer "" matches any acquirer.
func (h *Head) Entries(q Query) ([]Entry, error) {
	if q.Region != "" {
		if err := checkRegion(q.Region); err != nil {
			return nil, err
		}
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, ErrClosed
	}
	c := &collector{q: q}
	err := h.db.View(func(txn *badger.Txn) error {
		switch {
		case q.RRN != "":
			return c.index(txn, rrnIndexPrefix(q.RRN, q.Region))
		case q.Date != 0:
			return c.ranges(txn, dateSeqsKey(nil, q.Date, q.Acquirer, q.Acquirer != "", ""))
		case q.Window != 0:
			return c.ranges(txn, windowSeqsKey(nil, q.Window, q.Region))
		case q.Region != "":
			_, err := c.detail(txn, appendRegion(nil, prefixDetail, q.Region), nil, math.MaxUint64)
			return err
		}
		_, err := c.detail(txn, []byte(prefixDetail), nil, math.MaxUint64)
		return err
	})
	return c.out, err
}

// collector gathers what a Query selects, up to its Limit.
type collector struct {
	q   Query
	out []Entry
	// span, when set, keeps to the acquirer of the date range being scanned: the entries of
	// other acquirers between its first and last seq come in their own range.
	span     bool
	acquirer string
}

// add keeps e when it matches and reports whether the limit is reached.
func (c *collector) add(e *Entry) (full bool) {
	q := &c.q
	if (q.Region == "" || e.Region == q.Region) && (q.Window == 0 || effWindow(&e.Transfer) == q.Window) &&
		(q.Date == 0 || dateOf(e.Time) == q.Date) && (q.Acquirer == "" || e.Acquirer == q.Acquirer) &&
		(q.RRN == "" || e.RRN == q.RRN) && (!c.span || e.Acquirer == c.acquirer) {
		c.out = append(c.out, *e)
	}
	return q.Limit > 0 && len(c.out) >= q.Limit
}

// index reads the detail each index key under prefix points at.
func (c *collector) index(txn *badger.Txn, prefix []byte) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
		e, err := readEntry(txn, it.Item().Key(), len(prefixByRRN))
		if err != nil {
			return err
		}
		if c.add(&e) {
			return nil
		}
	}
	return nil
}

// ranges scans, for each q/ range under prefix in key order, the detail of its region from its
// first to its last seq; of a date's range, only the entries of its acquirer.
func (c *collector) ranges(txn *badger.Txn, prefix []byte) error {
	type span struct {
		acquirer, region string
		seqRange
	}
	var spans []span
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefix})
	for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
		acquirer, region, err := parseSeqsKey(it.Item().Key())
		if err == nil && c.q.Region != "" && region != c.q.Region {
			continue
		}
		if err == nil {
			err = it.Item().Value(func(v []byte) error {
				r, err := decodeRange(v)
				spans = append(spans, span{acquirer, region, r})
				return err
			})
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	it.Close()
	date := string(prefix[:len(prefixDateSeqs)]) == prefixDateSeqs
	for _, s := range spans {
		c.span, c.acquirer = date, s.acquirer
		full, err := c.detail(txn, appendRegion(nil, prefixDetail, s.region), detailKey(s.region, s.first), s.last)
		if full || err != nil {
			return err
		}
	}
	return nil
}

// detail scans the detail keys under prefix from the key from (nil: the first) on, up to the
// entry with seq last.
func (c *collector) detail(txn *badger.Txn, prefix, from []byte, last uint64) (full bool, err error) {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefix})
	defer it.Close()
	if from == nil {
		from = prefix
	}
	for it.Seek(from); it.ValidForPrefix(prefix); it.Next() {
		e, err := detailEntry(it.Item())
		if err != nil {
			return false, err
		}
		if e.Seq > last {
			return false, nil
		}
		if c.add(&e) {
			return true, nil
		}
	}
	return false, nil
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
	e := Entry{Region: string(p[1 : 1+int(p[0])])}
	err := item.Value(func(v []byte) error {
		var err error
		e.Transfer, err = decodeDetail(v)
		return err
	})
	return e, err
}
