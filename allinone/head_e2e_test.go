package allinone_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/recon"
	"github.com/junction-switch/junction/pki"
)

// post sends body to url and decodes the JSON answer into out; it fails the test on any status
// but want.
func post(t *testing.T, url string, body []byte, want int, out any) string {
	t.Helper()
	resp, err := http.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("POST %s: %v: %s", url, err, b)
		}
	}
	return string(b)
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	if err := json.Unmarshal([]byte(get(t, url)), out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

type headStatus struct {
	Windows []struct {
		Number uint32 `json:"number"`
		Date   uint32 `json:"date"`
		State  string `json:"state"`
	} `json:"windows"`
	Regions []struct {
		Name      string `json:"name"`
		HighWater uint64 `json:"high_water"`
		Journal   uint64 `json:"journal_last"`
	} `json:"regions"`
}

// TestHeadLedger runs the head ledger inside the all-in-one node as an operator would: purchases
// from two acquirers, a cutover by network management request from the bank, the window closing
// once every region delivered, clearing with fees to the cent and the settlement file, then a
// partner's T+1 file with every kind of break, its re-ingest, and a batch debit file.
func TestHeadLedger(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Head.Pull = 10 * time.Millisecond
	cfg.Head.Cutover = nil // no schedule: this test cuts over itself
	// The shards and the head book on 20 November until the test moves the clock on.
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixNano())
	cfg.Clock = func() time.Time { return time.Unix(0, clock.Add(int64(time.Millisecond))).UTC() }
	n := start(t, cfg)
	base := "http://" + n.HTTPAddr().String()
	pos, bank := dial(t, n, cfg, "pos"), dial(t, n, cfg, "bank")
	bankD := n.Wire("bank").Dialect

	buy := func(c *front.Client, d *codec.Dialect, merchant, rrn string, amount int64) *codec.Message {
		t.Helper()
		tx := txn(codec.TxPurchase, richPAN, amount)
		tx.Merchant, tx.RRN = merchant, rrn
		resp := exchange(t, c, d, tx)
		if rc(resp) != codec.RCApproved {
			t.Fatalf("purchase %s: rc %s", rrn, rc(resp))
		}
		return resp
	}
	// Window 1: the POS acquirer's shop sells 100.00 + 200.00 + 0.50; the partner bank's shop
	// sells four times. Every answer names the settlement date (field 15).
	var stans = map[string]string{}
	for i, amount := range []int64{10000, 20000, 50} {
		resp := buy(pos, n.Dialect(), "SHOP-A", fmt.Sprintf("63300000010%d", i), amount)
		if len(resp.Get(15)) != 4 {
			t.Fatalf("field 15 %q", resp.Get(15))
		}
	}
	for rrn, amount := range map[string]int64{"633000000201": 15000, "633000000202": 2000, "633000000204": 1200, "633000000205": 300} {
		resp := buy(bank, bankD, "BANK-SHOP", rrn, amount)
		stans[rrn] = string(resp.Get(11))
	}
	before := balance(t, n, "beijing", richPAN)

	// The bank cuts the window over: 0800 with 70=201.
	req, resp := codec.NewMessage(bankD), codec.NewMessage(bankD)
	must(t, req.SetMTI([4]byte{'0', '8', '0', '0'}))
	must(t, req.SetString(7, "1125120000"))
	must(t, req.SetString(11, "000901"))
	must(t, req.SetString(70, "201"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, bank.Exchange(ctx, req, resp))
	if rc(resp) != "00" {
		t.Fatalf("cutover answered %s", rc(resp))
	}
	eventually(t, "window 1 closes", func() bool {
		var s headStatus
		getJSON(t, base+"/admin/head/status", &s)
		return len(s.Windows) == 2 && s.Windows[0].State == "closed" && s.Windows[1].State == "open"
	})
	// A purchase now is booked in window 2.
	buy(pos, n.Dialect(), "SHOP-A", "633000000999", 700)

	// The GL of window 1 at the institution level: every line balances, and the POS acquirer's
	// line holds exactly its three sales on both sides (card debited, settlement credited).
	var gl struct {
		Lines []struct {
			Institution string `json:"institution"`
			Debits      string `json:"debits"`
			Credits     string `json:"credits"`
			Entries     uint64 `json:"entries"`
		} `json:"lines"`
	}
	getJSON(t, base+"/admin/head/gl?window=1&level=institution", &gl)
	found := false
	for _, l := range gl.Lines {
		if l.Debits != l.Credits {
			t.Errorf("institution %q: debits %s, credits %s", l.Institution, l.Debits, l.Credits)
		}
		if l.Institution == "10000001" {
			found = true
			if l.Debits != "300.50 CNY" || l.Entries != 6 {
				t.Errorf("POS acquirer in window 1: %+v", l)
			}
		}
	}
	if !found {
		t.Fatalf("no line for the POS acquirer: %+v", gl.Lines)
	}

	// Clearing: 0.38 % of 300.50 is 1.1419, rounded half away from zero to 1.14; of 185.00 it
	// is 0.703 → 0.70.
	var set struct {
		Institutions []struct {
			ID   string
			Fees int64
			Net  int64
		}
		Files []string
		Dir   string
	}
	post(t, base+"/admin/head/settle?window=1", nil, http.StatusOK, &set)
	nets := map[string][2]int64{}
	for _, p := range set.Institutions {
		nets[p.ID] = [2]int64{p.Fees, p.Net}
	}
	if got := nets["10000001"]; got != [2]int64{114, 30050 - 114} {
		t.Errorf("POS acquirer: fees and net %v, want [114 29936]", got)
	}
	if got := nets["10000004"]; got != [2]int64{70, 18500 - 70} {
		t.Errorf("partner bank: fees and net %v, want [70 18430]", got)
	}
	if len(set.Files) == 0 {
		t.Fatal("no settlement files")
	}
	file, err := os.ReadFile(filepath.Join(set.Dir, set.Files[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(file), "10000001") || !strings.Contains(string(file), "299.36") {
		t.Errorf("settlement file %s lacks the POS acquirer's 299.36:\n%s", set.Files[0], file)
	}
	post(t, base+"/admin/head/settle?window=2", nil, http.StatusUnprocessableEntity, nil)       // still open
	post(t, base+"/admin/head/cutover?date=20200101", nil, http.StatusUnprocessableEntity, nil) // before the open window's date

	// T+1: the partner bank's file (SDDL → acquirer 10000004) for 20 November. 202 differs by
	// 6.00, 203 only the partner has (7.00 debited), 204 only we have (12.00), 205 is refunded
	// by the partner but not by us (3.00), 201 matches.
	const date = 20261120
	name := recon.Name{Org: "SDDL", Iface: recon.IfaceRecon, Unit: "37101", Date: date}
	rec := func(rrn, stan string, amount int64, dir recon.Direction) recon.Record {
		return recon.Record{Date: date, Time: "101500", STAN: stan, RRN: rrn, Account: richPAN, Amount: amount,
			Currency: 156, Direction: dir}
	}
	var dz bytes.Buffer
	must(t, recon.WriteReconFile(&dz, recon.CSV, name, []recon.Record{
		rec("633000000201", stans["633000000201"], 15000, recon.Debited),
		rec("633000000202", stans["633000000202"], 2600, recon.Debited),
		rec("633000000203", "", 700, recon.Debited),
		rec("633000000205", stans["633000000205"], 300, recon.Debited),
		rec("633000000205", "", 300, recon.Refunded),
	}))
	var out struct {
		Replayed bool         `json:"replayed"`
		Report   recon.Report `json:"report"`
	}
	// Until 20 November has ended and the head has merged what came before, the file waits.
	if msg := post(t, base+"/admin/head/recon?name="+name.String(), dz.Bytes(), http.StatusUnprocessableEntity, nil); !strings.Contains(msg, "not complete") {
		t.Fatalf("a file of a day not over: %s", msg)
	}
	clock.Store(time.Date(2026, 11, 21, 0, 0, 5, 0, time.UTC).UnixNano())
	eventually(t, "the head has merged past 20 November", func() bool {
		resp, err := http.Post(base+"/admin/head/recon?name="+name.String(), "", bytes.NewReader(dz.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			must(t, json.NewDecoder(resp.Body).Decode(&out))
		}
		return resp.StatusCode == http.StatusOK
	})
	for class, want := range map[recon.Class]int{recon.Matched: 2, recon.Mismatch: 1, recon.PartnerOnly: 2, recon.LedgerOnly: 1} {
		if got := out.Report.Count(class); got != want {
			t.Errorf("%s: %d, want %d (%+v)", class, got, want, out.Report.Totals)
		}
	}
	// −6.00 −7.00 +12.00 +3.00 on the card: +2.00.
	if got := balance(t, n, "beijing", richPAN) - before + 700; got != 200 {
		t.Errorf("the card moved by %d through reconciliation, want +200", got)
	}
	if strings.Contains(fmt.Sprint(out.Report), richPAN) {
		t.Error("the report carries a full PAN")
	}
	again := balance(t, n, "beijing", richPAN)
	post(t, base+"/admin/head/recon?name="+name.String(), dz.Bytes(), http.StatusOK, &out)
	if !out.Replayed || balance(t, n, "beijing", richPAN) != again {
		t.Errorf("re-ingest: replayed %v, balance %d → %d", out.Replayed, again, balance(t, n, "beijing", richPAN))
	}
	post(t, base+"/admin/head/recon?name=../"+name.String(), dz.Bytes(), http.StatusUnprocessableEntity, nil)
	post(t, base+"/admin/head/recon?name="+name.String(), append(dz.Bytes()[:dz.Len()-1], '9'), http.StatusUnprocessableEntity, nil)

	// A batch debit for the Beijing water company: one good line, one malformed.
	bname := recon.Name{Org: "SDDL", Iface: recon.IfaceBatchDebit, Unit: "37101", Date: date}
	var dk bytes.Buffer
	must(t, recon.WriteBatchFile(&dk, recon.CSV, bname, "BJ-WATER", 156, []recon.BatchLine{
		{Seq: "1", Account: "01062345678", Amount: "10.00", Reference: "WATER-2026-11"},
		{Seq: "2", Account: "01062345678", Amount: "1.2.3", Reference: "WATER-2026-11"},
	}))
	post(t, base+"/admin/head/batch?name="+bname.String(), dk.Bytes(), http.StatusOK, &out)
	codes := []ledger.Code{}
	for _, l := range out.Report.Lines {
		codes = append(codes, l.Code)
	}
	if fmt.Sprint(codes) != "[00 30]" {
		t.Errorf("batch debit codes %v, want [00 30]", codes)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "files", "out", bname.WithIface(recon.IfaceBatchResponse).String())); err != nil {
		t.Errorf("response file: %v", err)
	}
}

// logBuffer keeps a node's log for a test to count lines in.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// merged reports whether the head has merged everything region's in-process shard committed.
func merged(t *testing.T, base, region string) bool {
	var s headStatus
	getJSON(t, base+"/admin/head/status", &s)
	for _, r := range s.Regions {
		if r.Name == region {
			return r.Journal > 0 && r.HighWater == r.Journal
		}
	}
	t.Fatalf("no region %s in %+v", region, s.Regions)
	return false
}

// A region whose journal service is down (refusing, or accepting and never answering) holds up
// neither the merge of the other regions nor their cutover points, and its pending cutover point
// is not logged again every pull.
func TestHeadRemoteJournalDown(t *testing.T) {
	run := func(t *testing.T, journal net.Listener, serve func(cfg allinone.Config)) (*allinone.Node, allinone.Config, string, *logBuffer) {
		cfg := testConfig(t.TempDir())
		cfg.Head.Pull = 10 * time.Millisecond
		cfg.Head.Cutover = nil
		cfg.Regions[1].Remote = &allinone.Remote{Listen: freeAddr(t), Journal: journal.Addr().String()}
		logs := &logBuffer{}
		n := startLogging(t, cfg, logs)
		serve(cfg)
		return n, cfg, "http://" + n.HTTPAddr().String(), logs
	}

	t.Run("a journal service that never answers does not stop the other regions' merge", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		asked := make(chan struct{}, 1)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case asked <- struct{}{}:
			default:
			}
			<-r.Context().Done() // hung: the head's client waits out its timeout
		})}
		t.Cleanup(func() { srv.Close() })
		n, cfg, base, _ := run(t, ln, func(cfg allinone.Config) {
			cert, key := pki.ServerFiles(cfg.PKIDir)
			go srv.ServeTLS(ln, cert, key)
		})
		select {
		case <-asked:
		case <-time.After(10 * time.Second):
			t.Fatal("the head never asked shanghai's journal service")
		}
		pos := dial(t, n, cfg, "pos")
		if resp := exchange(t, pos, n.Dialect(), txn(codec.TxPurchase, richPAN, 100)); rc(resp) != "00" {
			t.Fatalf("purchase: rc %s", rc(resp))
		}
		eventually(t, "beijing's purchase is merged while shanghai's journal hangs", func() bool { return merged(t, base, "beijing") })
	})

	t.Run("a journal service that refuses is not logged every pull", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		ln.Close() // nothing listens: every call is refused at once
		_, _, base, logs := run(t, ln, func(allinone.Config) {})
		post(t, base+"/admin/head/cutover", nil, http.StatusOK, nil)
		eventually(t, "beijing's cutover point is recorded", func() bool {
			var s struct {
				Windows []struct {
					Points []struct {
						Region   string `json:"Region"`
						Reported bool   `json:"Reported"`
					} `json:"points"`
				} `json:"windows"`
			}
			getJSON(t, base+"/admin/head/status", &s)
			for _, p := range s.Windows[0].Points {
				if p.Region == "beijing" {
					return p.Reported
				}
			}
			return false
		})
		// Half a second is some fifty pulls of 10 ms: shanghai's failure is news once.
		for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
			merged(t, base, "beijing")
			time.Sleep(10 * time.Millisecond)
		}
		if got := logs.count("merge failed") + logs.count("cutover point pending") + logs.count("waits for a shard"); got > 3 {
			t.Errorf("shanghai's failing journal service logged %d times in half a second", got)
		}
	})
}

// A file over the admin API's bound is refused as too large (413), not as a bad request.
func TestHeadFileTooLarge(t *testing.T) {
	n := start(t, testConfig(t.TempDir()))
	name := recon.Name{Org: "SDDL", Iface: recon.IfaceRecon, Unit: "37101", Date: 20261120}
	body := io.LimitReader(zeros{}, 64<<20+1)
	resp, err := http.Post("http://"+n.HTTPAddr().String()+"/admin/head/recon?name="+name.String(), "text/plain", body)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 64 MiB + 1 file: %s", resp.Status)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
