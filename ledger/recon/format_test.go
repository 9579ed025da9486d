package recon

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/junction-switch/junction/ledger"
)

func TestParseName(t *testing.T) {
	good := map[string]Name{
		"SDDL_DKKK_37101_20131012.txt":        {"SDDL", "DKKK", "37101", 20131012},
		"/in/SDDL_REDKKK_37101_20131012.txt":  {"SDDL", "REDKKK", "37101", 20131012},
		"B2_DZ_1_20240229.txt":                {"B2", "DZ", "1", 20240229},
		"ABCDEFGH_DZ_1234567890_20131231.txt": {"ABCDEFGH", "DZ", "1234567890", 20131231},
	}
	for in, want := range good {
		got, err := ParseName(in)
		if err != nil || got != want {
			t.Errorf("ParseName(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != want.String() || len(got.String()) == 0 {
			t.Errorf("String() = %q", got.String())
		}
	}
	for _, in := range []string{
		"SDDL_DKKK_37101_20131012.csv", "SDDL_DKKK_37101_20131012", "SDDL_DKKK_20131012.txt",
		"SDDL_DKKK_37101_20131012_1.txt", "S_DKKK_37101_20131012.txt", "ABCDEFGHI_DZ_1_20131012.txt",
		"SdDL_DZ_1_20131012.txt", "SDDL_D1_1_20131012.txt", "SDDL_DZ_A1_20131012.txt", "SDDL_DZ__20131012.txt",
		"SDDL_DZ_12345678901_20131012.txt", "SDDL_DZ_1_20130229.txt", "SDDL_DZ_1_20131301.txt",
		"SDDL_DZ_1_2013101.txt", "SDDL_DZ_1_19691231.txt",
	} {
		if _, err := ParseName(in); !errors.Is(err, ErrName) {
			t.Errorf("ParseName(%q): %v, want ErrName", in, err)
		}
	}
}

func TestReconFileRoundTrip(t *testing.T) {
	n := Name{Org: "SDDL", Iface: IfaceRecon, Unit: "37101", Date: fileDate}
	recs := []Record{
		{Date: fileDate, Time: "000000", STAN: "000001", RRN: "A1", Account: "6222020000000000018", Amount: 1, Currency: cny, Direction: Debited, Acquirer: "12345678901"},
		{Date: 20131011, Time: "235959", RRN: "ABCDEFGHIJKL", Account: "13800138000", Amount: 999_999_999_999, Currency: cny, Direction: Refunded},
		{Date: fileDate, Time: "120000", STAN: "42", RRN: "B2", Account: "acct-1", Amount: 500, Currency: 392, Direction: Debited},
	}
	for _, enc := range []Encoding{CSV, FixedWidth} {
		data := encode(t, enc, n, recs)
		f, err := splitFile(n, data)
		if err != nil {
			t.Fatalf("%s: splitFile: %v\n%s", enc, err, data)
		}
		got, err := decodeRecon(f)
		if err != nil {
			t.Fatalf("%s: decodeRecon: %v", enc, err)
		}
		for i := range got {
			got[i].Line = 0
			if enc == FixedWidth && recs[i].STAN == "42" {
				got[i].STAN = "42" // fixed width pads STANs to six digits
			}
		}
		if !reflect.DeepEqual(got, recs) {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", enc, got, recs)
		}
		if f.enc != enc {
			t.Errorf("read as %s, written as %s", f.enc, enc)
		}
	}
}

func TestDirection(t *testing.T) {
	for _, c := range []struct {
		t    ledger.Transfer
		want Direction
	}{
		{ledger.Transfer{Kind: ledger.KindPurchase}, Debited},
		{ledger.Transfer{Kind: ledger.KindStandIn}, Debited},
		{ledger.Transfer{Kind: ledger.KindPost}, Debited},
		{ledger.Transfer{Kind: ledger.KindPayment}, Debited},
		{ledger.Transfer{Kind: ledger.KindTransfer}, Debited},
		{ledger.Transfer{Kind: ledger.KindRefund}, Refunded},
		{ledger.Transfer{Kind: ledger.KindReversal, Credit: 1000, Debit: ledger.SettlementPayableID}, Refunded},
		{ledger.Transfer{Kind: ledger.KindReversal, Credit: ledger.FundingID, Debit: 1000}, 0},
		{ledger.Transfer{Kind: ledger.KindHold}, 0},
		{ledger.Transfer{Kind: ledger.KindVoid}, 0},
		{ledger.Transfer{Kind: ledger.KindExpire}, 0},
		{ledger.Transfer{Kind: ledger.KindDeposit}, 0},
		{ledger.Transfer{Kind: ledger.KindAdjust}, 0},
	} {
		if got := direction(&c.t); got != c.want {
			t.Errorf("direction(%s) = %q, want %q", c.t.Kind, got, c.want)
		}
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"6222020000000000018": "622202*********0018",
		"622202000000":        "622202**0000",
		"13800138000":         "13800138000",
		"acct-1234567890123":  "acct-1234567890123",
		"":                    "",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzFiles feeds arbitrary bytes to the readers of every file kind: an error or records, never a
// panic, and what is read writes back to the same records.
func FuzzFiles(f *testing.F) {
	n := Name{Org: "SDDL", Iface: IfaceRecon, Unit: "37101", Date: fileDate}
	recs := []Record{{Date: fileDate, Time: "101500", STAN: "1", RRN: "R1", Account: "6222020000000000018", Amount: 1234, Currency: cny, Direction: Debited}}
	f.Add(encode(f, CSV, n, recs), uint8(0))
	f.Add(encode(f, FixedWidth, n, recs), uint8(0))
	var buf bytes.Buffer
	WriteBatchFile(&buf, CSV, n.WithIface(IfaceBatchDebit), "BJ-WATER", cny, []BatchLine{{Seq: "1", Account: "13800138000", Amount: "1.00", Reference: "X"}})
	f.Add(buf.Bytes(), uint8(1))
	f.Add([]byte("H,01,SDDL,DZ,37101,20131012\nT,0,0\n"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		switch kind % 3 {
		case 0:
			raw, err := splitFile(n, data)
			if err != nil {
				return
			}
			got, err := decodeRecon(raw)
			if err != nil {
				return
			}
			again, err := splitFile(n, encode(t, raw.enc, n, got))
			if err != nil {
				t.Fatalf("written records do not read back: %v", err)
			}
			if _, err := decodeRecon(again); err != nil {
				t.Fatalf("written records do not decode: %v", err)
			}
		case 1:
			bn := n.WithIface(IfaceBatchDebit)
			raw, err := splitFile(bn, data)
			if err != nil {
				return
			}
			if cur, ok := currency(raw.header[7]); ok {
				decodeBatch(raw, cur)
			}
		default:
			ParseName(string(data))
		}
	})
}
