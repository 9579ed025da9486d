package remote

import (
	"bytes"
	"testing"

	"github.com/junction-switch/junction/ledger"
)

func TestJournalQuery(t *testing.T) {
	for _, c := range []struct {
		raw         string
		from        uint64
		limit       int
		wantsFailed bool
	}{
		{"", 0, 0, false},
		{"from=5", 5, 0, false},
		{"from=5&limit=10", 5, 10, false},
		{"limit=4096", 0, MaxLimit, false},
		{"limit=100000", 0, MaxLimit, false}, // cut, not refused
		{"limit=99999999999", 0, 0, true},
		{"from=18446744073709551616", 0, 0, true},
		{"from=1&x=2", 0, 0, true},
	} {
		from, limit, err := journalQuery(c.raw)
		if (err != nil) != c.wantsFailed || (err == nil && (from != c.from || limit != c.limit)) {
			t.Errorf("journalQuery(%q) = %d, %d, %v; want %d, %d, failed %v", c.raw, from, limit, err, c.from, c.limit, c.wantsFailed)
		}
	}
}

func samplePage() []byte {
	var b []byte
	for i := uint64(1); i <= 3; i++ {
		t := ledger.Transfer{Seq: i, TxID: ledger.NewTxID([]byte{byte(i)}), Kind: ledger.KindDeposit,
			Debit: ledger.FundingID, Credit: 1000, Amount: int64(i * 100), Currency: 156, Time: int64(i),
			Terminal: "T1", Merchant: "M1", Acquirer: "1234", STAN: "000001", RRN: "RRN1", Window: 1, SettleDate: 20260301}
		b = appendRecord(b, &t)
	}
	return b
}

func TestDecodePage(t *testing.T) {
	b := samplePage()
	page, err := decodePage(b, 1, 3)
	if err != nil || len(page) != 3 || page[2].Amount != 300 || page[2].RRN != "RRN1" {
		t.Fatalf("decodePage: %+v, %v", page, err)
	}
	if _, err := decodePage(b, 2, 3); err == nil {
		t.Error("a page from 1 decoded as a page from 2")
	}
	if _, err := decodePage(b, 1, 4); err == nil {
		t.Error("a page of 3 decoded as a page of 4")
	}
	if _, err := decodePage(b, 1, 2); err == nil {
		t.Error("a page of 3 decoded as a page of 2")
	}
	for n := range len(b) {
		if _, err := decodePage(b[:n], 1, 3); err == nil {
			t.Fatalf("a page cut to %d of %d bytes decoded", n, len(b))
		}
	}
}

// FuzzDecodePage: whatever the body, decodePage returns an error or a page that encodes back
// to exactly the body (so nothing in it was skipped or guessed).
func FuzzDecodePage(f *testing.F) {
	f.Add(samplePage(), uint64(1), 3)
	f.Add([]byte{}, uint64(0), 0)
	f.Add([]byte{0, 0, 0, 1, 9}, uint64(1), 1)
	f.Fuzz(func(t *testing.T, b []byte, from uint64, count int) {
		page, err := decodePage(b, from, count)
		if err != nil {
			return
		}
		var again []byte
		for i := range page {
			again = appendRecord(again, &page[i])
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded %d entries that encode to other bytes", len(page))
		}
	})
}
