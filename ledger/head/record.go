package head

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Key layout. A region name is stored with a one-byte length in front, so that a prefix scan of
// one region ("bei") never runs into another ("beijing"):
//
//	w/<len><region>                          high-water mark: the last journal seq applied (u64)
//	r/<len><region><currency BE u16>         the region's totals in one currency
//	c/<len><region><account BE u64><currency BE u16>
//	                                         one account's totals in one currency
//
// Values are versioned binary records as in package ledger: a version byte, the fields in fixed
// order (big endian), and a CRC-32C of everything before it, so that a torn or corrupted value is
// reported, never added to.
//
//	high-water v1  seq (u64)
//	total      v1  debits, credits, debits pending, credits pending (int64 each), entries (u64)
//	range      v1  first seq, last seq (u64 each)
//	layout     v1  layout number (u32)
const (
	prefixLayout     = "l/" // l/ → layout record: which key layout the directory holds
	prefixHighWater  = "w/"
	prefixRegion     = "r/"
	prefixAccount    = "c/"
	prefixDetail     = "e/"  // e/<len><region><seq BE u64> → detail record
	prefixWindowSeqs = "q/w" // q/w<window BE u32><len><region> → range of the window's seqs
	prefixDateSeqs   = "q/d" // q/d<date BE u32><len><acquirer><len><region> → range of the date's seqs
	prefixByRRN      = "x/r" // x/r<len><rrn><tail> → empty
	prefixGL         = "g/"  // g/<window BE u32><len><acquirer><len><region><len><merchant><account BE u64><currency BE u16> → total
	prefixClearing   = "k/"  // k/<window BE u32><len><acquirer><len><merchant><currency BE u16><flow u8> → total (Debits = gross, Entries = count)
	prefixWindow     = "n/"  // n/<window BE u32> → window record
	prefixSettlement = "s/"  // s/<window BE u32> → settlement record
	prefixHeadGL     = "h/"  // h/<len><head account><currency BE u16> → total
)

const (
	recordV1      = 1
	crcSize       = 4
	highWaterSize = 1 + 8 + crcSize
	totalSize     = 1 + 5*8 + crcSize
	rangeSize     = 1 + 2*8 + crcSize
	layoutSize    = 1 + 4 + crcSize
)

// layout is the key layout this code reads and writes, kept in the l/ record. Layout 1 (no l/
// record) kept three index keys per entry; 2 keeps one (RRN) and a seq range per region and
// window and per region, date and acquirer.
const layout = 2

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errCorrupt = errors.New("head: corrupt record")

func corrupt(what, why string) error { return fmt.Errorf("%w: %s: %s", errCorrupt, what, why) }

func appendRegion(dst []byte, prefix, region string) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, byte(len(region)))
	return append(dst, region...)
}

func highWaterKey(region string) []byte { return appendRegion(nil, prefixHighWater, region) }

func regionKey(region string, currency uint16) []byte { return appendRegionKey(nil, region, currency) }

func appendRegionKey(dst []byte, region string, currency uint16) []byte {
	return binary.BigEndian.AppendUint16(appendRegion(dst, prefixRegion, region), currency)
}

func accountPrefix(region string, account uint64) []byte {
	return binary.BigEndian.AppendUint64(appendRegion(nil, prefixAccount, region), account)
}

func accountKey(region string, account uint64, currency uint16) []byte {
	return appendAccountKey(nil, region, account, currency)
}

func appendAccountKey(dst []byte, region string, account uint64, currency uint16) []byte {
	dst = binary.BigEndian.AppendUint64(appendRegion(dst, prefixAccount, region), account)
	return binary.BigEndian.AppendUint16(dst, currency)
}

// regionOfHighWater returns the region a w/ key names.
func regionOfHighWater(k []byte) (string, error) {
	p := k[len(prefixHighWater):]
	if len(p) == 0 || int(p[0]) != len(p)-1 {
		return "", corrupt("high-water key", fmt.Sprintf("%d bytes after the prefix", len(p)))
	}
	return string(p[1:]), nil
}

// currencyOf returns the currency at the end of an r/ or c/ key.
func currencyOf(k []byte) uint16 { return binary.BigEndian.Uint16(k[len(k)-2:]) }

func seal(b []byte, start int) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// unseal checks the size, version and CRC and returns the payload between version and CRC.
func unseal(what string, b []byte, size int) ([]byte, error) {
	if len(b) != size {
		return nil, corrupt(what, fmt.Sprintf("%d bytes, want %d", len(b), size))
	}
	if b[0] != recordV1 {
		return nil, corrupt(what, fmt.Sprintf("unknown version %d", b[0]))
	}
	body := b[:len(b)-crcSize]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(body):]) {
		return nil, corrupt(what, "checksum mismatch")
	}
	return body[1:], nil
}

func appendHighWater(dst []byte, seq uint64) []byte {
	start := len(dst)
	dst = append(dst, recordV1)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return seal(dst, start)
}

func decodeHighWater(b []byte) (uint64, error) {
	p, err := unseal("high-water", b, highWaterSize)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(p), nil
}

func appendTotal(dst []byte, t *Total) []byte {
	start := len(dst)
	dst = append(dst, recordV1)
	for _, v := range [...]int64{t.Debits, t.Credits, t.DebitsPending, t.CreditsPending} {
		dst = binary.BigEndian.AppendUint64(dst, uint64(v))
	}
	dst = binary.BigEndian.AppendUint64(dst, t.Entries)
	return seal(dst, start)
}

// decodeTotal decodes a total record; the currency comes from the key.
func decodeTotal(b []byte, currency uint16) (Total, error) {
	p, err := unseal("total", b, totalSize)
	if err != nil {
		return Total{}, err
	}
	t := Total{Currency: currency}
	for i, v := range [...]*int64{&t.Debits, &t.Credits, &t.DebitsPending, &t.CreditsPending} {
		*v = int64(binary.BigEndian.Uint64(p[8*i:]))
	}
	t.Entries = binary.BigEndian.Uint64(p[32:])
	if t.Debits < 0 || t.Credits < 0 {
		return Total{}, corrupt("total", fmt.Sprintf("negative posted amounts %d, %d", t.Debits, t.Credits))
	}
	return t, nil
}

// seqRange is the first and last seq of the entries of one region under a q/ key: a window's, or
// a UTC date's of one acquirer. Other entries may lie between them (windows and dates need not
// be strictly ordered in seq); a reader filters.
type seqRange struct{ first, last uint64 }

// widen makes r cover seq.
func (r *seqRange) widen(seq uint64) {
	if r.first == 0 || seq < r.first {
		r.first = seq
	}
	r.last = max(r.last, seq)
}

func appendRange(dst []byte, r *seqRange) []byte {
	start := len(dst)
	dst = append(dst, recordV1)
	dst = binary.BigEndian.AppendUint64(dst, r.first)
	dst = binary.BigEndian.AppendUint64(dst, r.last)
	return seal(dst, start)
}

func decodeRange(b []byte) (seqRange, error) {
	p, err := unseal("seq range", b, rangeSize)
	if err != nil {
		return seqRange{}, err
	}
	r := seqRange{first: binary.BigEndian.Uint64(p), last: binary.BigEndian.Uint64(p[8:])}
	if r.first == 0 || r.first > r.last {
		return seqRange{}, corrupt("seq range", fmt.Sprintf("%d..%d", r.first, r.last))
	}
	return r, nil
}

func appendLayout(dst []byte, n uint32) []byte {
	start := len(dst)
	dst = append(dst, recordV1)
	dst = binary.BigEndian.AppendUint32(dst, n)
	return seal(dst, start)
}

func decodeLayout(b []byte) (uint32, error) {
	p, err := unseal("layout", b, layoutSize)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(p), nil
}
