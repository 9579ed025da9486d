package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

var (
	sampleAccount = Account{ID: 1000, Type: Card, Currency: cny, Status: Blocked, Flags: DebitsMustNotExceedCredits,
		Name: "stored value", MaskedPAN: "629990******0018", DebitsPosted: 2550, CreditsPosted: 10000}
	sampleTransfer = Transfer{Seq: 77, TxID: txid("t", 1), Kind: KindPurchase, Debit: 1000, Credit: 1, Amount: 2550,
		Currency: cny, Time: 1_772_352_000_000_000_000, Terminal: "T0000001", Merchant: "M00000000000001"}
	sampleTxRecord = txRecord{digest: txid("d", 1), code: InsufficientFunds, seq: 0, currency: cny, ledger: -3, available: 7,
		kind: txPurchase}
	sampleReversal = Transfer{Seq: 78, TxID: txid("r", 1), Kind: KindReversal, Debit: 1, Credit: 1000, Amount: 550,
		Currency: cny, Time: 1_772_352_001_000_000_000, Terminal: "T0000001", Original: 77}
	sampleReversed = txRecord{digest: txid("d", 2), code: Approved, seq: 77, currency: cny, ledger: 7450, available: 7450,
		kind: txPurchase, account: 1000, amount: 2550, reversed: 550}
	sampleTombstone  = txRecord{code: TooLate, kind: txTombstone}
	sampleTxRecordV1 = txRecord{digest: txid("d", 3), code: Approved, seq: 12, currency: cny, ledger: 100, available: 100}
	sampleStandIn    = Transfer{Seq: 79, TxID: txid("s", 1), Kind: KindStandIn, Debit: 1000, Credit: 1, Amount: 9000,
		Currency: cny, Time: 1_772_352_002_000_000_000, Terminal: "T0000001", Merchant: "M00000000000001"}
	sampleStandInRec = txRecord{digest: txid("d", 4), code: Approved, seq: 79, currency: cny, ledger: -1550, available: -1550,
		kind: txStandIn, account: 1000, amount: 9000, reversed: 1000}
	sampleVoided = txRecord{digest: txid("d", 5), code: InsufficientFunds, currency: cny, ledger: 7, available: 7,
		kind: txPurchase, flags: txVoided}
	sampleHeld = Account{ID: 1001, Type: Card, Currency: cny, Status: Active, Flags: DebitsMustNotExceedCredits,
		Name: "held", MaskedPAN: "629990******0026", DebitsPosted: 100, CreditsPosted: 10000, DebitsPending: 6000}
	sampleLimited = Account{ID: 1002, Type: CreditLine, Currency: cny, Status: Active, Flags: DebitsMustNotExceedCredits,
		Name: "credit line", MaskedPAN: "629990******0034", DebitsPosted: 7000, CreditsPosted: 5000,
		Limits: Limits{CreditLimit: 5000, DailyAmount: 3000, DailyCount: 10}, Day: 20513, DaySpent: 2000, DayCount: 2}
	samplePayment = Transfer{Seq: 84, TxID: txid("b", 1), Kind: KindPayment, Debit: 1002, Credit: 1003, Amount: 450,
		Currency: cny, Time: 1_772_352_007_000_000_000}
	sampleHold = Transfer{Seq: 80, TxID: txid("h", 1), Kind: KindHold, Debit: 1001, Credit: 1, Amount: 6000,
		Currency: cny, Time: 1_772_352_003_000_000_000, Terminal: "T0000001", Expires: 1_772_956_803_000_000_000}
	samplePost = Transfer{Seq: 81, TxID: txid("c", 1), Kind: KindPost, Debit: 1001, Credit: 1, Amount: 4500,
		Currency: cny, Time: 1_772_352_004_000_000_000, Original: 80, Released: 6000}
	sampleExpire = Transfer{Seq: 82, TxID: txid("h", 2), Kind: KindExpire, Debit: 1001, Credit: 1, Amount: 700,
		Currency: cny, Time: 1_772_352_005_000_000_000, Original: 79, Released: 700}
	sampleRefund = Transfer{Seq: 83, TxID: txid("f", 1), Kind: KindRefund, Debit: 1, Credit: 1000, Amount: 300,
		Currency: cny, Time: 1_772_352_006_000_000_000, Original: 77}
	// Entries since settlement windows (transfer record v4).
	sampleAnnotated = Transfer{Seq: 86, TxID: txid("t", 2), Kind: KindPurchase, Debit: 1000, Credit: 1, Amount: 2550,
		Currency: cny, Time: 1_772_352_008_000_000_000, Terminal: "T0000001", Merchant: "M00000000000001",
		Acquirer: "10000000001", STAN: "000101", RRN: "606012000101", Window: 7, SettleDate: 20260301}
	sampleWindowedHold = Transfer{Seq: 87, TxID: txid("h", 3), Kind: KindHold, Debit: 1001, Credit: 1, Amount: 60,
		Currency: cny, Time: 1_772_352_009_000_000_000, Expires: 1_772_956_809_000_000_000, Window: 1, SettleDate: 20260301}
	sampleAdjust = Transfer{Seq: 88, TxID: txid("a", 1), Kind: KindAdjust, Debit: 1000, Credit: SuspenseID, Amount: 5,
		Currency: cny, Time: 1_772_352_010_000_000_000, Original: 86, RRN: "606012000101", Window: 2, SettleDate: 20260302}
	sampleBareAdjust = Transfer{Seq: 89, TxID: txid("a", 2), Kind: KindAdjust, Debit: SuspenseID, Credit: 1000, Amount: 5,
		Currency: cny}
	sampleAdjustRec = txRecord{digest: txid("d", 10), code: Approved, seq: 88, currency: cny, ledger: 1, available: 1,
		kind: txAdjust, account: 1000, amount: 5}
	sampleTransferRec = txRecord{digest: txid("d", 9), code: Approved, seq: 85, currency: cny, ledger: 100, available: 100,
		kind: txTransfer, account: 1000, amount: 400, reversed: 100, counter: 1001}
	sampleReleaseRec = txRecord{digest: txid("d", 8), code: Approved, seq: 81, currency: cny, ledger: 5400, available: 5400,
		kind: txCompletion, account: 1001, amount: 4500, flags: txToSeller}
	sampleHoldRec = txRecord{digest: txid("d", 6), code: Approved, seq: 80, currency: cny, ledger: 9900, available: 3900,
		kind: txHold, account: 1001, amount: 6000, reversed: 1000, expires: 1_772_956_803_000_000_000, counter: 1}
	sampleExpiredRec = txRecord{digest: txid("d", 7), code: Approved, seq: 79, currency: cny, ledger: 9900, available: 9200,
		kind: txHold, account: 1001, amount: 700, reversed: 700, flags: txExpired, expires: 1_772_956_802_000_000_000,
		counter: 1003}
)

func TestRecords(t *testing.T) {
	t.Run("records round-trip and stay small", func(t *testing.T) {
		ab := appendAccount(nil, &sampleAccount)
		if a, err := decodeAccount(ab); err != nil || a != sampleAccount || ab[0] != recordV1 {
			t.Errorf("account: %+v, %v", a, err)
		}
		hb := appendAccount(nil, &sampleHeld)
		if a, err := decodeAccount(hb); err != nil || a != sampleHeld || hb[0] != recordV2 {
			t.Errorf("account with holds: %+v, %v (version %d)", a, err, hb[0])
		}
		lb := appendAccount(nil, &sampleLimited)
		if a, err := decodeAccount(lb); err != nil || a != sampleLimited || lb[0] != recordV3 {
			t.Errorf("account with limits: %+v, %v (version %d)", a, err, lb[0])
		}
		for _, tr := range []Transfer{sampleHold, samplePost, sampleExpire, sampleRefund, samplePayment,
			sampleAnnotated, sampleWindowedHold, sampleAdjust, sampleBareAdjust} {
			b := appendTransfer(nil, &tr)
			if tr.annotated() != (b[0] == recordV4) && tr.Kind != KindAdjust {
				t.Errorf("%s with annotations %t written as v%d", tr.Kind, tr.annotated(), b[0])
			}
			if got, err := decodeTransfer(b); err != nil || got != tr || !tr.annotated() && b[0] != kindVersion(tr.Kind) {
				t.Errorf("%s: %+v, %v (version %d)", tr.Kind, got, err, b[0])
			}
		}
		if id, err := decodeHoldRef(appendHoldRef(nil, &sampleHold.TxID)); err != nil || id != sampleHold.TxID {
			t.Errorf("hold ref: %x, %v", id, err)
		}
		tb := appendTransfer(nil, &sampleTransfer)
		if tr, err := decodeTransfer(tb); err != nil || tr != sampleTransfer {
			t.Errorf("transfer: %+v, %v", tr, err)
		}
		sib := appendTransfer(nil, &sampleStandIn)
		if tr, err := decodeTransfer(sib); err != nil || tr != sampleStandIn || sib[0] != recordV1 {
			t.Errorf("stand-in: %+v, %v (version %d)", tr, err, sib[0])
		}
		rvb := appendTransfer(nil, &sampleReversal)
		if tr, err := decodeTransfer(rvb); err != nil || tr != sampleReversal || rvb[0] != recordV2 || tb[0] != recordV1 {
			t.Errorf("reversal: %+v, %v (versions %d, %d)", tr, err, rvb[0], tb[0])
		}
		rb := appendTxRecord(nil, &sampleTxRecord)
		for _, rec := range []txRecord{sampleTxRecord, sampleReversed, sampleTombstone, sampleTxRecordV1, sampleStandInRec, sampleVoided,
			sampleHoldRec, sampleExpiredRec, sampleReleaseRec, sampleTransferRec, sampleAdjustRec} {
			b := appendTxRecord(nil, &rec)
			if r, err := decodeTxRecord(b); err != nil || r != rec {
				t.Errorf("tx record: %+v, %v, want %+v", r, err, rec)
			}
			want := txRecordV2Size
			switch {
			case rec.kind == txUnknown:
				want = txRecordSize
			case rec.counter != 0:
				want = txRecordV4Size
			case rec.flags != 0:
				want = txRecordV3Size
			}
			if len(b) != want {
				t.Errorf("tx record of kind %d, flags %d is %d bytes, want %d", rec.kind, rec.flags, len(b), want)
			}
		}
		if v, err := decodeCounter("c", appendCounter(nil, 123456789)); err != nil || v != 123456789 {
			t.Errorf("counter: %d, %v", v, err)
		}
		// The largest possible account and transfer.
		big := Account{Type: Card, Status: Active, Name: string(make([]byte, maxName)), MaskedPAN: "1234567890123456789",
			DebitsPending: 1, Limits: Limits{DailyAmount: 1}}
		bt := Transfer{Kind: KindPost, Terminal: "123456789012345", Merchant: "123456789012345", Original: 1, Released: 1,
			Acquirer: "12345678901", STAN: "123456", RRN: "123456789012", Window: 1, SettleDate: 1}
		for name, n := range map[string]int{"account": len(appendAccount(nil, &big)), "transfer": len(appendTransfer(nil, &bt)),
			"tx record": len(rb), "tx record v2": txRecordV2Size, "tx record v3": txRecordV3Size, "tx record v4": txRecordV4Size} {
			if n >= maxRecordBytes {
				t.Errorf("%s record is %d bytes", name, n)
			}
		}
	})

	t.Run("every truncation and every flipped bit is an error", func(t *testing.T) {
		for _, tc := range []struct {
			name, decoder string
			enc           []byte
		}{
			{"account", "account", appendAccount(nil, &sampleAccount)},
			{"transfer", "transfer", appendTransfer(nil, &sampleTransfer)},
			{"reversal transfer (v2)", "transfer", appendTransfer(nil, &sampleReversal)},
			{"tx record", "tx record", appendTxRecord(nil, &sampleTxRecord)},
			{"tx record v1", "tx record", appendTxRecord(nil, &sampleTxRecordV1)},
			{"tombstone", "tx record", appendTxRecord(nil, &sampleTombstone)},
			{"stand-in transfer", "transfer", appendTransfer(nil, &sampleStandIn)},
			{"stand-in tx record", "tx record", appendTxRecord(nil, &sampleStandInRec)},
			{"voided tx record (v3)", "tx record", appendTxRecord(nil, &sampleVoided)},
			{"account with holds (v2)", "account", appendAccount(nil, &sampleHeld)},
			{"account with limits (v3)", "account", appendAccount(nil, &sampleLimited)},
			{"payment transfer", "transfer", appendTransfer(nil, &samplePayment)},
			{"hold transfer (v3)", "transfer", appendTransfer(nil, &sampleHold)},
			{"post transfer (v3)", "transfer", appendTransfer(nil, &samplePost)},
			{"expire transfer (v3)", "transfer", appendTransfer(nil, &sampleExpire)},
			{"refund transfer (v2)", "transfer", appendTransfer(nil, &sampleRefund)},
			{"hold tx record (v4)", "tx record", appendTxRecord(nil, &sampleHoldRec)},
			{"expired hold tx record (v4)", "tx record", appendTxRecord(nil, &sampleExpiredRec)},
			{"hold ref", "hold ref", appendHoldRef(nil, &sampleHold.TxID)},
			{"escrow release tx record (v3)", "tx record", appendTxRecord(nil, &sampleReleaseRec)},
			{"annotated purchase (v4)", "transfer", appendTransfer(nil, &sampleAnnotated)},
			{"adjustment (v4)", "transfer", appendTransfer(nil, &sampleAdjust)},
			{"adjustment tx record", "tx record", appendTxRecord(nil, &sampleAdjustRec)},
			{"window", "window", appendWindow(nil, windowState{window: 3, date: 20260302})},
			{"cutover point", "cut", appendCut(nil, &CutoverPoint{Window: 3, Date: 20260302, Last: 77})},
		} {
			decode := decoders[tc.decoder]
			for n := range len(tc.enc) {
				if err := decode(tc.enc[:n]); !errors.Is(err, errCorrupt) {
					t.Errorf("%s cut to %d bytes: err = %v", tc.name, n, err)
				}
			}
			for i := range len(tc.enc) * 8 {
				b := bytes.Clone(tc.enc)
				b[i/8] ^= 1 << (i % 8)
				if err := decode(b); !errors.Is(err, errCorrupt) {
					t.Errorf("%s with bit %d flipped: err = %v", tc.name, i, err)
				}
			}
		}
	})

	t.Run("a v2 encoding of what v1 holds is refused, so each value has one encoding", func(t *testing.T) {
		// A purchase entry sealed as v2 with Original 0, and a tx record sealed as v2 with kind 0.
		purchaseV2 := appendTransfer(nil, &sampleTransfer)
		purchaseV2 = binary.BigEndian.AppendUint64(purchaseV2[:len(purchaseV2)-crcSize], 0)
		purchaseV2[0] = recordV2
		purchaseV2 = seal(purchaseV2, 0)
		if _, err := decodeTransfer(purchaseV2); !errors.Is(err, errCorrupt) {
			t.Errorf("purchase as v2: err = %v", err)
		}
		unknownV2 := appendTxRecord(nil, &sampleReversed)
		unknownV2[txRecordSize-crcSize] = byte(txUnknown)
		unknownV2 = seal(unknownV2[:len(unknownV2)-crcSize], 0)
		if _, err := decodeTxRecord(unknownV2); !errors.Is(err, errCorrupt) {
			t.Errorf("tx record v2 of kind 0: err = %v", err)
		}
		over := sampleReversed
		over.reversed = over.amount + 1
		if _, err := decodeTxRecord(appendTxRecord(nil, &over)); !errors.Is(err, errCorrupt) {
			t.Errorf("reversed above the amount: err = %v", err)
		}
		// A tx record sealed as v3 with no flags: what v2 holds.
		noFlags := appendTxRecord(nil, &sampleReversed)
		noFlags = append(noFlags[:len(noFlags)-crcSize], 0)
		noFlags[0] = recordV3
		noFlags = seal(noFlags, 0)
		if _, err := decodeTxRecord(noFlags); !errors.Is(err, errCorrupt) {
			t.Errorf("tx record v3 without flags: err = %v", err)
		}
		// A purchase sealed as v4 without annotations or window: what v1 holds.
		bare := sampleTransfer
		bare.Window = 1
		purchaseV4 := appendTransfer(nil, &bare)
		binary.BigEndian.PutUint32(purchaseV4[len(purchaseV4)-crcSize-8:], 0)
		purchaseV4 = seal(purchaseV4[:len(purchaseV4)-crcSize], 0)
		if _, err := decodeTransfer(purchaseV4); !errors.Is(err, errCorrupt) {
			t.Errorf("purchase as v4 without annotations: err = %v", err)
		}
		// An account sealed as v2 with nothing pending: what v1 holds.
		accountV2 := appendAccount(nil, &sampleAccount)
		accountV2 = append(accountV2[:len(accountV2)-crcSize], make([]byte, 16)...)
		accountV2[0] = recordV2
		accountV2 = seal(accountV2, 0)
		if _, err := decodeAccount(accountV2); !errors.Is(err, errCorrupt) {
			t.Errorf("account v2 without pending amounts: err = %v", err)
		}
		for name, a := range map[string]Account{
			"credit limit on a card": {Type: Card, Status: Active, Limits: Limits{CreditLimit: 1}},
			"negative daily limit":   {Type: Card, Status: Active, Limits: Limits{DailyAmount: -1}},
			"negative pending":       {Type: Card, Status: Active, DebitsPending: -1},
		} {
			if _, err := decodeAccount(appendAccount(nil, &a)); !errors.Is(err, errCorrupt) {
				t.Errorf("%s: err = %v", name, err)
			}
		}
		for name, tr := range map[string]Transfer{
			"hold without expiry":            {Kind: KindHold, Amount: 1},
			"post releasing less":            {Kind: KindPost, Amount: 2, Original: 1, Released: 1},
			"void releasing another sum":     {Kind: KindVoid, Amount: 2, Original: 1, Released: 1},
			"expire without an original":     {Kind: KindExpire, Amount: 1, Released: 1},
			"refund without an original":     {Kind: KindRefund, Amount: 1},
			"post with an expiry":            {Kind: KindPost, Amount: 1, Original: 1, Released: 1, Expires: 5},
			"hold with an original":          {Kind: KindHold, Amount: 1, Original: 1, Expires: 5},
			"purchase with an original":      {Kind: KindPurchase, Amount: 1, Original: 1}, // sealed as v1, Original dropped
			"kind beyond the known kinds":    {Kind: lastKind + 1, Amount: 1},
			"purchase releasing (v4)":        {Kind: KindPurchase, Amount: 1, Released: 1, Window: 1},
			"purchase with an original (v4)": {Kind: KindPurchase, Amount: 1, Original: 1, Window: 1},
		} {
			b := appendTransfer(nil, &tr)
			got, err := decodeTransfer(b)
			if name == "purchase with an original" {
				if err != nil || got.Original != 0 {
					t.Errorf("%s: %+v, %v", name, got, err)
				}
				continue
			}
			if !errors.Is(err, errCorrupt) {
				t.Errorf("%s: err = %v", name, err)
			}
		}
		for name, rec := range map[string]txRecord{
			"to-seller flag on a purchase": {code: Approved, seq: 3, kind: txPurchase, account: 1000, amount: 5, flags: txToSeller},
			"expiry on a purchase":         {code: Approved, seq: 3, kind: txPurchase, account: 1000, amount: 5, expires: 9, counter: 1},
			"expiry on a transfer":         {code: Approved, seq: 3, kind: txTransfer, account: 1000, amount: 5, expires: 9, counter: 1001},
			"counter on a decline":         {code: InsufficientFunds, kind: txTransfer, counter: 1001},
			"expired flag without expiry": {code: Approved, seq: 3, kind: txHold, account: 1000, amount: 5, reversed: 5,
				flags: txExpired},
			"voided approved purchase": {code: Approved, seq: 3, kind: txPurchase, account: 1000, amount: 5, flags: txVoided},
			"voided stand-in":          {code: UnknownCard, kind: txStandIn, flags: txVoided},
			"unknown flag":             {code: InsufficientFunds, kind: txPurchase, flags: 2},
		} {
			if _, err := decodeTxRecord(appendTxRecord(nil, &rec)); !errors.Is(err, errCorrupt) {
				t.Errorf("%s: err = %v", name, err)
			}
		}
	})
}

var decoders = map[string]func([]byte) error{
	"account":   func(b []byte) error { _, err := decodeAccount(b); return err },
	"transfer":  func(b []byte) error { _, err := decodeTransfer(b); return err },
	"tx record": func(b []byte) error { _, err := decodeTxRecord(b); return err },
	"hold ref":  func(b []byte) error { _, err := decodeHoldRef(b); return err },
	"window":    func(b []byte) error { _, err := decodeWindow(b); return err },
	"cut":       func(b []byte) error { _, err := decodeCut(appendCutKey(nil, 3), b); return err },
}

// The fuzz targets check that decoding never panics and that whatever decodes re-encodes to the
// same bytes (the encoding is canonical, so a record cannot have two spellings).

func FuzzDecodeAccount(f *testing.F) {
	f.Add(appendAccount(nil, &sampleAccount))
	f.Add(appendAccount(nil, &Account{Type: InstitutionSettlement, Status: Active}))
	f.Add(appendAccount(nil, &sampleHeld))
	f.Add(appendAccount(nil, &sampleLimited))
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
	f.Add(appendTransfer(nil, &sampleReversal))
	f.Add(appendTransfer(nil, &sampleStandIn))
	f.Add(appendTxRecord(nil, &sampleTxRecord))
	f.Add(appendTxRecord(nil, &sampleTxRecordV1))
	f.Add(appendTxRecord(nil, &sampleReversed))
	f.Add(appendTxRecord(nil, &sampleTombstone))
	f.Add(appendTxRecord(nil, &sampleStandInRec))
	f.Add(appendTxRecord(nil, &sampleVoided))
	f.Add(appendTransfer(nil, &sampleHold))
	f.Add(appendTransfer(nil, &samplePost))
	f.Add(appendTransfer(nil, &sampleExpire))
	f.Add(appendTransfer(nil, &sampleRefund))
	f.Add(appendTransfer(nil, &samplePayment))
	f.Add(appendTxRecord(nil, &sampleHoldRec))
	f.Add(appendTxRecord(nil, &sampleExpiredRec))
	f.Add(appendTxRecord(nil, &sampleReleaseRec))
	f.Add(appendTxRecord(nil, &sampleTransferRec))
	f.Add(appendTransfer(nil, &sampleAnnotated))
	f.Add(appendTransfer(nil, &sampleWindowedHold))
	f.Add(appendTransfer(nil, &sampleAdjust))
	f.Add(appendTransfer(nil, &sampleBareAdjust))
	f.Add(appendTxRecord(nil, &sampleAdjustRec))
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
