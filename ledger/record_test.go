package ledger

import (
	"bytes"
	"errors"
	"testing"
)

var (
	sampleAccount = Account{ID: 1000, Type: Card, Currency: cny, Status: Blocked, Flags: DebitsMustNotExceedCredits,
		Name: "stored value", MaskedPAN: "629990******0018", DebitsPosted: 2550, CreditsPosted: 10000}
	sampleTransfer = Transfer{Seq: 77, TxID: txid("t", 1), Kind: KindPurchase, Debit: 1000, Credit: 1, Amount: 2550,
		Currency: cny, Time: 1_772_352_000_000_000_000, Terminal: "T0000001", Merchant: "M00000000000001"}
	sampleTxRecord = txRecord{digest: txid("d", 1), code: InsufficientFunds, seq: 0, currency: cny, ledger: -3, available: 7}
)

func TestRecords(t *testing.T) {
	t.Run("records round-trip and stay small", func(t *testing.T) {
		ab := appendAccount(nil, &sampleAccount)
		if a, err := decodeAccount(ab); err != nil || a != sampleAccount {
			t.Errorf("account: %+v, %v", a, err)
		}
		tb := appendTransfer(nil, &sampleTransfer)
		if tr, err := decodeTransfer(tb); err != nil || tr != sampleTransfer {
			t.Errorf("transfer: %+v, %v", tr, err)
		}
		rb := appendTxRecord(nil, &sampleTxRecord)
		if r, err := decodeTxRecord(rb); err != nil || r != sampleTxRecord {
			t.Errorf("tx record: %+v, %v", r, err)
		}
		if v, err := decodeCounter("c", appendCounter(nil, 123456789)); err != nil || v != 123456789 {
			t.Errorf("counter: %d, %v", v, err)
		}
		// The largest possible account and transfer.
		big := Account{Type: Card, Status: Active, Name: string(make([]byte, maxName)), MaskedPAN: "1234567890123456789"}
		bt := Transfer{Kind: KindDeposit, Terminal: "123456789012345", Merchant: "123456789012345"}
		for name, n := range map[string]int{"account": len(appendAccount(nil, &big)), "transfer": len(appendTransfer(nil, &bt)),
			"tx record": len(rb)} {
			if n >= maxRecordBytes {
				t.Errorf("%s record is %d bytes", name, n)
			}
		}
	})

	t.Run("every truncation and every flipped bit is an error", func(t *testing.T) {
		for name, enc := range map[string][]byte{
			"account":   appendAccount(nil, &sampleAccount),
			"transfer":  appendTransfer(nil, &sampleTransfer),
			"tx record": appendTxRecord(nil, &sampleTxRecord),
		} {
			decode := decoders[name]
			for n := range len(enc) {
				if err := decode(enc[:n]); !errors.Is(err, errCorrupt) {
					t.Errorf("%s cut to %d bytes: err = %v", name, n, err)
				}
			}
			for i := range len(enc) * 8 {
				b := bytes.Clone(enc)
				b[i/8] ^= 1 << (i % 8)
				if err := decode(b); !errors.Is(err, errCorrupt) {
					t.Errorf("%s with bit %d flipped: err = %v", name, i, err)
				}
			}
		}
	})
}

var decoders = map[string]func([]byte) error{
	"account":   func(b []byte) error { _, err := decodeAccount(b); return err },
	"transfer":  func(b []byte) error { _, err := decodeTransfer(b); return err },
	"tx record": func(b []byte) error { _, err := decodeTxRecord(b); return err },
}

// The fuzz targets check that decoding never panics and that whatever decodes re-encodes to the
// same bytes (the encoding is canonical, so a record cannot have two spellings).

func FuzzDecodeAccount(f *testing.F) {
	f.Add(appendAccount(nil, &sampleAccount))
	f.Add(appendAccount(nil, &Account{Type: InstitutionSettlement, Status: Active}))
	f.Add([]byte{recordV1})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAccount(b)
		if err != nil {
			return
		}
		if re := appendAccount(nil, &a); !bytes.Equal(re, b) {
			t.Errorf("decoded %+v re-encodes to %x, not %x", a, re, b)
		}
	})
}

func FuzzDecodeTransfer(f *testing.F) {
	f.Add(appendTransfer(nil, &sampleTransfer))
	f.Add(appendTransfer(nil, &Transfer{Kind: KindDeposit}))
	f.Add(appendTxRecord(nil, &sampleTxRecord))
	f.Fuzz(func(t *testing.T, b []byte) {
		if tr, err := decodeTransfer(b); err == nil {
			if re := appendTransfer(nil, &tr); !bytes.Equal(re, b) {
				t.Errorf("decoded %+v re-encodes to %x, not %x", tr, re, b)
			}
		}
		if r, err := decodeTxRecord(b); err == nil {
			if re := appendTxRecord(nil, &r); !bytes.Equal(re, b) {
				t.Errorf("decoded %+v re-encodes to %x, not %x", r, re, b)
			}
		}
	})
}
