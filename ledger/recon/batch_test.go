package recon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/junction-switch/junction/ledger"
)

func TestBatchDebit(t *testing.T) {
	for _, enc := range []Encoding{CSV, FixedWidth} {
		t.Run("each line is run or answered, in "+enc.String(), func(t *testing.T) {
			w := newWorld(t)
			panA, a := w.card("beijing", 1, 100000)
			panP, poor := w.card("beijing", 2, 1000)
			const phone = "13800138000"
			p := w.open("beijing", ledger.AccountSpec{Type: ledger.Debit, Currency: cny, Name: "phone", Number: phone}, phone)
			w.do("beijing", ledger.Request{Op: ledger.OpDeposit, ID: txid("top-up phone"), From: phone, Amount: 10000, Currency: cny})
			biller := w.open("beijing", ledger.AccountSpec{Type: ledger.Merchant, Currency: cny, Name: "water", Number: "BJ-WATER"}, "BJ-WATER")
			before := map[uint64]int64{a: w.balance("beijing", a), p: w.balance("beijing", p),
				poor: w.balance("beijing", poor), biller: w.balance("beijing", biller)}

			name := Name{Org: "SDDL", Iface: IfaceBatchDebit, Unit: "37101", Date: fileDate}
			var buf bytes.Buffer
			err := WriteBatchFile(&buf, enc, name, "BJ-WATER", cny, []BatchLine{
				{Seq: "1", Account: panA, Amount: "12.34", Reference: "W0001"},
				{Seq: "2", Account: phone, Amount: "5.00", Reference: "W0002"},
				{Seq: "3", Account: panP, Amount: "999.00", Reference: "W0003"},
				{Seq: "4", Account: panA, Amount: "12.3x", Reference: "W0004"},
				{Seq: "5", Account: panA, Amount: "1.00", Reference: ""},
				{Seq: "6", Account: "13999999999", Amount: "1.00", Reference: "W0006"},
				{Seq: "2", Account: panA, Amount: "1.00", Reference: "W0007"},
			})
			if err != nil {
				t.Fatalf("WriteBatchFile: %v", err)
			}
			path := w.write(name.String(), buf.Bytes())
			cfg := w.config()
			rep, err := BatchDebit(context.Background(), path, cfg)
			if err != nil {
				t.Fatalf("BatchDebit: %v", err)
			}
			if want := filepath.Join(cfg.Output, "SDDL_REDKKK_37101_20131012.txt"); rep.Output != want {
				t.Errorf("response %s, want %s", rep.Output, want)
			}
			want := [][]string{
				{"D", "1", Mask(panA), "12.34", "00", "approved"},
				{"D", "2", phone, "5.00", "00", "approved"},
				{"D", "3", Mask(panP), "999.00", "51", "insufficient funds"},
				{"D", "4", Mask(panA), "", "30", `line 5: bad amount "12.3x"`},
				{"D", "5", Mask(panA), "1.00", "30", "line 6: customer reference missing"},
				{"D", "6", "13999999999", "1.00", "14", "unknown account or biller"},
				{"D", "2", Mask(panA), "1.00", "94", "line 8: sequence number of line 3"},
			}
			resp := readResponse(t, rep.Output, enc)
			if !reflect.DeepEqual(resp.details(), want) {
				t.Errorf("response details:\n got %q\nwant %q", resp.details(), want)
			}
			if !reflect.DeepEqual(resp.header, []string{"H", "01", "SDDL", "REDKKK", "37101", "20131012", "BJ-WATER", "156"}) {
				t.Errorf("response header %q", resp.header)
			}
			if resp.count != 7 || resp.sum.String() != "1019.34" {
				t.Errorf("response trailer: %d records, sum %s; want 7, 1019.34", resp.count, resp.sum)
			}
			for c, n := range map[Class]int{Booked: 2, Declined: 2, Malformed: 3} {
				if rep.Count(c) != n {
					t.Errorf("%s: %d, want %d", c, rep.Count(c), n)
				}
			}
			moved := map[uint64]int64{a: -1234, p: -500, poor: 0, biller: 1734}
			check := func() {
				t.Helper()
				for id, d := range moved {
					if got := w.balance("beijing", id) - before[id]; got != d {
						t.Errorf("account %d moved by %d, want %d", id, got, d)
					}
				}
				w.verify()
			}
			check()
			raw, _ := os.ReadFile(rep.Output)
			for _, pan := range []string{panA, panP} {
				if bytes.Contains(raw, []byte(pan)) {
					t.Error("the response shows a full PAN")
				}
			}

			// Again: the stored report. With the registry gone: run again, nothing booked twice.
			seqs := w.lastSeqs()
			again, err := BatchDebit(context.Background(), path, cfg)
			if err != nil || !again.Replayed {
				t.Fatalf("re-ingest: replayed %v, err %v", again.Replayed, err)
			}
			if err := os.Remove(filepath.Join(cfg.Registry, name.String()+".json")); err != nil {
				t.Fatal(err)
			}
			rerun, err := BatchDebit(context.Background(), path, cfg)
			if err != nil || rerun.Replayed {
				t.Fatalf("re-run: replayed %v, err %v", rerun.Replayed, err)
			}
			if got := w.lastSeqs(); !equalSeqs(got, seqs) {
				t.Errorf("re-run booked: %v, was %v", got, seqs)
			}
			if raw2, _ := os.ReadFile(rerun.Output); !bytes.Equal(raw, raw2) {
				t.Errorf("re-run response differs:\n%s\n%s", raw, raw2)
			}
			check()
		})
	}
}

func TestBatchDebitRefusesBadFiles(t *testing.T) {
	w := newWorld(t)
	panA, _ := w.card("beijing", 1, 100000)
	w.open("beijing", ledger.AccountSpec{Type: ledger.Merchant, Currency: cny, Name: "water", Number: "BJ-WATER"}, "BJ-WATER")
	name := Name{Org: "SDDL", Iface: IfaceBatchDebit, Unit: "37101", Date: fileDate}
	var buf bytes.Buffer
	if err := WriteBatchFile(&buf, CSV, name, "BJ-WATER", cny, []BatchLine{
		{Seq: "1", Account: panA, Amount: "12.34", Reference: "W0001"},
		{Seq: "2", Account: panA, Amount: "1.00", Reference: "W0002"},
	}); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	cfg := w.config()
	seqs := w.lastSeqs()
	for _, c := range []struct {
		name, file, data, says string
		want                   error
	}{
		{"a wrong control sum", name.String(), strings.Replace(good, "13.34", "13.35", 1), "line 4: trailer control sum", ErrFormat},
		{"a truncated file", name.String(), strings.Join(strings.SplitAfter(good, "\n")[:3], ""), "line 3: the last record is not a trailer", ErrFormat},
		{"an unknown currency", name.String(), strings.Replace(good, ",156\n", ",999\n", 1), "line 1: header: currency", ErrFormat},
		{"a missing biller", name.String(), strings.Replace(good, "BJ-WATER", "", 1), "line 1: header: biller", ErrFormat},
		{"a response given as a request", "SDDL_REDKKK_37101_20131012.txt", good, "not DKKK", ErrName},
		{"a bad byte", name.String(), strings.Replace(good, "W0002", "W\x000002", 1), "line 3: control character 0x00", ErrFormat},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := BatchDebit(context.Background(), w.write(c.file, []byte(c.data)), cfg)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %v, want %v saying %q", err, c.want, c.says)
			}
			if got := w.lastSeqs(); !equalSeqs(got, seqs) {
				t.Fatalf("something ran: %v, was %v", got, seqs)
			}
			if ents, _ := os.ReadDir(cfg.Output); len(ents) != 0 {
				t.Fatalf("a response was written for a refused file: %v", ents)
			}
		})
	}
}

// response is a response file read back.
type response struct {
	*rawFile
}

func readResponse(t *testing.T, path string, enc Encoding) response {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ParseName(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := splitFile(n, data)
	if err != nil {
		t.Fatalf("the response does not read back: %v\n%s", err, data)
	}
	if f.enc != enc {
		t.Errorf("response in %s, request in %s", f.enc, enc)
	}
	return response{f}
}

func (r response) details() [][]string {
	var out [][]string
	for _, d := range r.rawFile.details {
		out = append(out, d.fields)
	}
	return out
}
