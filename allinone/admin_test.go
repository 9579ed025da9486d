package allinone_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/routing"
)

// testPAN is a Luhn-valid card of the demo BIN in the region of code
// ("11" Beijing, "31" Shanghai).
func testPAN(code, serial string) string {
	p := allinone.DemoBIN + code + serial
	return p + string(routing.LuhnDigit(p))
}

// adminCall sends body (nil: GET) to the admin URL and returns the status
// and the answer.
func adminCall(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	method, rd := http.MethodGet, io.Reader(nil)
	switch b := body.(type) {
	case nil:
	case string:
		method, rd = http.MethodPost, strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		must(t, err)
		method, rd = http.MethodPost, bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	must(t, err)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, out
}

func TestAdminAccountsAndVerify(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	// Shanghai's shard runs in its own process (not started: the switch's
	// links to it just stay down).
	remote := freeAddr(t)
	cfg.Regions[1].Remote = &allinone.Remote{Listen: remote, Endpoints: []string{remote}}
	n := start(t, cfg)
	base := "http://" + n.HTTPAddr().String()
	pan := testPAN("11", "8000001")

	open := func(t *testing.T, opening string, want int) allinone.OpenedAccount {
		t.Helper()
		code, body := adminCall(t, base+"/admin/accounts", allinone.OpenAccountRequest{
			PAN: pan, Type: "card", Currency: 156, Name: "load test 1", Opening: opening})
		if code != want {
			t.Fatalf("status %d, want %d: %s", code, want, body)
		}
		if bytes.Contains(body, []byte(pan)) {
			t.Fatalf("the answer shows the whole PAN: %s", body)
		}
		var a allinone.OpenedAccount
		if code < 300 {
			must(t, json.Unmarshal(body, &a))
		}
		return a
	}

	t.Run("a card is opened with its opening deposit on the region its PAN routes to", func(t *testing.T) {
		a := open(t, "1000.00", http.StatusCreated)
		if !a.Opened || a.Region != "beijing" || a.Minor != 100_000 || a.PAN != "629990******"+pan[12:] {
			t.Fatalf("answer %+v", a)
		}
		acct, err := n.Shard("beijing").AccountByPAN(pan)
		must(t, err)
		if acct.Balance() != 100_000 || acct.Name != "load test 1" {
			t.Fatalf("ledger has %+v", acct)
		}
	})

	t.Run("opening it again changes nothing", func(t *testing.T) {
		a := open(t, "1000.00", http.StatusOK)
		if a.Opened || a.Minor != 100_000 {
			t.Fatalf("answer %+v", a)
		}
		if acct, _ := n.Shard("beijing").AccountByPAN(pan); acct.Balance() != 100_000 {
			t.Fatalf("balance %d after the repeat", acct.Balance())
		}
	})

	t.Run("another opening amount for the same card is a conflict", func(t *testing.T) {
		open(t, "5.00", http.StatusConflict)
	})

	t.Run("bad input is 400", func(t *testing.T) {
		for name, body := range map[string]string{
			"not JSON":         `{"pan":`,
			"an unknown field": `{"pan":"` + pan + `","balance":"1"}`,
			"a bad Luhn digit": `{"pan":"` + pan[:15] + string('0'+(pan[15]-'0'+1)%10) + `"}`,
			"a short PAN":      `{"pan":"62999011"}`,
			"three decimals":   `{"pan":"` + pan + `","opening":"1.001"}`,
			"a negative sum":   `{"pan":"` + pan + `","opening":"-1.00"}`,
			"another type":     `{"pan":"` + pan + `","type":"merchant"}`,
			"a currency":       `{"pan":"` + pan + `","currency":999}`,
		} {
			if code, msg := adminCall(t, base+"/admin/accounts", body); code != http.StatusBadRequest {
				t.Errorf("%s: status %d: %s", name, code, msg)
			} else if bytes.Contains(msg, []byte(pan)) {
				t.Errorf("%s: the error shows the whole PAN: %s", name, msg)
			}
		}
	})

	t.Run("a card the switch cannot hold here is 422", func(t *testing.T) {
		for name, req := range map[string]allinone.OpenAccountRequest{
			"a region in its own process":  {PAN: testPAN("31", "8000001"), Opening: "1.00"},
			"a region not configured":      {PAN: testPAN("11", "8000002"), Region: "guangzhou"},
			"a region the PAN is not for":  {PAN: testPAN("44", "8000001")},
			"a region the rules route not": {PAN: testPAN("44", "8000002"), Region: "beijing"},
		} {
			code, msg := adminCall(t, base+"/admin/accounts", req)
			if code != http.StatusUnprocessableEntity {
				t.Errorf("%s: status %d: %s", name, code, msg)
			}
			if name == "a region in its own process" && !strings.Contains(string(msg), "own process") {
				t.Errorf("%s: %s", name, msg)
			}
		}
	})

	t.Run("verify finds the books whole while the shard books", func(t *testing.T) {
		var wg sync.WaitGroup
		wg.Go(func() { // traffic meanwhile: the verify sees whole batches only
			for i := range 50 {
				res, err := n.Shard("beijing").Do(t.Context(), &ledger.Request{Op: ledger.OpPurchase,
					ID: ledger.NewTxID([]byte("admin-test"), []byte{byte(i)}), PAN: pan, Amount: 1, Currency: 156})
				if err != nil || res.Code != ledger.Approved {
					t.Errorf("purchase %d: %v %s", i, err, res.Code)
				}
			}
		})
		for range 3 {
			code, body := adminCall(t, base+"/admin/ledger/verify", nil)
			var v allinone.LedgerVerify
			if code != http.StatusOK || json.Unmarshal(body, &v) != nil {
				t.Fatalf("status %d: %s", code, body)
			}
			if !v.OK || len(v.Regions) != 2 {
				t.Fatalf("verify: %s", body)
			}
			bj, sh := v.Regions[0], v.Regions[1]
			if bj.Region != "beijing" || !bj.OK || bj.Transfers == 0 || len(bj.Totals) != 1 || bj.Totals[0].Debits != bj.Totals[0].Credits {
				t.Errorf("beijing: %+v", bj)
			}
			if sh.Region != "shanghai" || !sh.Remote || sh.OK {
				t.Errorf("shanghai: %+v", sh)
			}
		}
		wg.Wait()
	})
}
