package ledger

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/junction-switch/junction/codec"
)

// Messages as the switch hands them to a shard: ISO 8583:1987 with the acquirer (32) set.
const (
	isoAcquirer = "10000001"
	isoTerminal = "T0000001"
	isoTime     = "0301080000"
)

// isoMessage builds a request of dialect d with the given MTI and fields.
func isoMessage(t testing.TB, d *codec.Dialect, mti string, fields map[int]string) *codec.Message {
	t.Helper()
	m := codec.NewMessage(d)
	if err := m.SetMTI([4]byte([]byte(mti))); err != nil {
		t.Fatalf("MTI %s: %v", mti, err)
	}
	for id, v := range fields {
		if err := m.SetString(id, v); err != nil {
			t.Fatalf("field %d = %q: %v", id, v, err)
		}
	}
	return m
}

// isoPurchase is an 0200 purchase of amount on pan with STAN stan.
func isoPurchase(t testing.TB, d *codec.Dialect, pan, stan string, amount int64) *codec.Message {
	return isoMessage(t, d, "0200", map[int]string{
		2: pan, 3: "000000", 4: fmt.Sprintf("%012d", amount), 7: isoTime, 11: stan,
		32: isoAcquirer, 41: isoTerminal, 42: "M00000000000001", 49: "156",
	})
}

// isoReversal is a reversal (mti) of orig: orig's fields with the given changes, where "" deletes
// a field.
func isoReversal(t testing.TB, orig *codec.Message, mti string, changes map[int]string) *codec.Message {
	t.Helper()
	m := codec.NewMessage(orig.Dialect())
	if err := m.SetMTI([4]byte([]byte(mti))); err != nil {
		t.Fatal(err)
	}
	orig.Each(func(id int, v []byte) {
		if err := m.Set(id, v); err != nil {
			t.Fatal(err)
		}
	})
	for id, v := range changes {
		if v == "" {
			m.Del(id)
			continue
		}
		if err := m.SetString(id, v); err != nil {
			t.Fatalf("field %d = %q: %v", id, v, err)
		}
	}
	return m
}

// originalData is field 90 for an original with this MTI, STAN, time and acquirer.
func originalData(mti, stan, when, acquirer string) string {
	pad := func(s string) string { return strings.Repeat("0", 11-len(s)) + s }
	return mti + stan + when + pad(acquirer) + pad("")
}

// replacement is field 95 with actual as the transaction amount.
func replacement(actual int64) string {
	return fmt.Sprintf("%012d%012d%s", actual, actual, strings.Repeat("0", 18))
}

// exchange sends req through h and returns the response.
func exchange(t testing.TB, h *Host, req *codec.Message) *codec.Message {
	t.Helper()
	resp := codec.NewMessage(req.Dialect())
	if err := h.Exchange(context.Background(), req, resp); err != nil {
		t.Fatalf("Exchange %s: %v", req.MTIString(), err)
	}
	return resp
}

// expect checks a response's MTI and response code.
func expect(t testing.TB, resp *codec.Message, mti, rc string) {
	t.Helper()
	if got := resp.MTIString(); got != mti {
		t.Errorf("MTI %s, want %s", got, mti)
	}
	if got := string(resp.Get(39)); got != rc {
		t.Errorf("%s: 39 = %q, want %q", resp.MTIString(), got, rc)
	}
}

// balanceOf reads the card's ledger balance, for checks between messages.
func balanceOf(t testing.TB, s *Shard, pan string) int64 {
	t.Helper()
	a, err := s.AccountByPAN(pan)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance()
}

// hostShard opens a shard with pan1 funded with 10000 and returns it with its host.
func hostShard(t *testing.T, dir string) (*Shard, *Host) {
	t.Helper()
	s := openShard(t, dir)
	openCard(t, s, pan1)
	deposit(t, s, txid("dep", 1), pan1, 10000)
	return s, NewHost(s)
}

func TestHostReversal(t *testing.T) {
	for _, d := range []*codec.Dialect{codec.ISO87ASCII(), codec.ISO87Binary()} {
		t.Run(d.Name(), func(t *testing.T) { testHostReversal(t, d) })
	}
}

func testHostReversal(t *testing.T, d *codec.Dialect) {
	t.Run("an 0420 repeating the purchase's fields undoes it and its 0421 books nothing more", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "000101", 2500)
		expect(t, exchange(t, h, buy), "0210", "00")
		adv := exchange(t, h, isoReversal(t, buy, "0420", nil))
		expect(t, adv, "0430", "00")
		if len(adv.Get(38)) != 6 {
			t.Errorf("0430 38 = %q, want an approval code", adv.Get(38))
		}
		if !adv.Has(54) || string(adv.Get(4)) != "000000002500" {
			t.Errorf("0430 lacks balances (54 %q) or the echoed amount (4 %q)", adv.Get(54), adv.Get(4))
		}
		rep := exchange(t, h, isoReversal(t, buy, "0421", nil))
		expect(t, rep, "0430", "00")
		if string(rep.Get(38)) != string(adv.Get(38)) {
			t.Errorf("0421 38 = %q, want the 0420's %q", rep.Get(38), adv.Get(38))
		}
		if b := balanceOf(t, s, pan1); b != 10000 {
			t.Errorf("balance %d, want 10000", b)
		}
		if n := journalKinds(t, s)[KindReversal]; n != 1 {
			t.Errorf("%d reversal entries, want 1", n)
		}
		mustVerify(t, s)
	})

	t.Run("an 0400 and then an 0420 for one purchase book once", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "000201", 1000)
		expect(t, exchange(t, h, buy), "0210", "00")
		rev := exchange(t, h, isoReversal(t, buy, "0400", nil))
		expect(t, rev, "0410", "00")
		if !rev.Has(38) {
			t.Error("the booking 0410 has no approval code")
		}
		adv := exchange(t, h, isoReversal(t, buy, "0420", nil))
		expect(t, adv, "0430", "00")
		if adv.Has(38) {
			t.Errorf("the 0430 that booked nothing has approval code %q", adv.Get(38))
		}
		expect(t, exchange(t, h, isoReversal(t, buy, "0401", nil)), "0410", "00")
		if b := balanceOf(t, s, pan1); b != 10000 {
			t.Errorf("balance %d, want 10000", b)
		}
		if n := journalKinds(t, s)[KindReversal]; n != 1 {
			t.Errorf("%d reversal entries, want 1", n)
		}
		mustVerify(t, s)
	})

	t.Run("field 90 names the original when the reversal has its own STAN and time", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "000301", 700)
		expect(t, exchange(t, h, buy), "0210", "00")
		// Another STAN and time of its own: without 90 it names a purchase that never was.
		other := map[int]string{11: "000302", 7: "0301080105"}
		wrong := exchange(t, h, isoReversal(t, buy, "0400", other))
		expect(t, wrong, "0410", "25")
		other[90] = originalData("0200", "000301", isoTime, isoAcquirer)
		expect(t, exchange(t, h, isoReversal(t, buy, "0420", other)), "0430", "00")
		if b := balanceOf(t, s, pan1); b != 10000 {
			t.Errorf("balance %d, want 10000", b)
		}
		mustVerify(t, s)
	})

	t.Run("field 90 with a zero acquirer takes the reversal's own", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "000401", 700)
		expect(t, exchange(t, h, buy), "0210", "00")
		rev := isoReversal(t, buy, "0420", map[int]string{11: "000402", 90: originalData("0200", "000401", isoTime, "")})
		expect(t, exchange(t, h, rev), "0430", "00")
		if b := balanceOf(t, s, pan1); b != 10000 {
			t.Errorf("balance %d, want 10000", b)
		}
		mustVerify(t, s)
	})

	t.Run("field 90 names another acquirer's purchase", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "000451", 700)
		if err := buy.SetString(32, "20000002"); err != nil {
			t.Fatal(err)
		}
		expect(t, exchange(t, h, buy), "0210", "00")
		// Forwarded by another institution (its own 32), naming the acquirer in 90.
		rev := isoReversal(t, buy, "0420", map[int]string{32: "30000003", 11: "000452",
			90: originalData("0200", "000451", isoTime, "20000002")})
		expect(t, exchange(t, h, rev), "0430", "00")
		if b := balanceOf(t, s, pan1); b != 10000 {
			t.Errorf("balance %d, want 10000", b)
		}
		mustVerify(t, s)
	})

	t.Run("field 95 reverses part of the purchase", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "000501", 3000)
		expect(t, exchange(t, h, buy), "0210", "00")
		expect(t, exchange(t, h, isoReversal(t, buy, "0420", map[int]string{95: replacement(1200)})), "0430", "00")
		if b := balanceOf(t, s, pan1); b != 8800 {
			t.Errorf("balance %d, want 8800 (1200 of 3000 stands)", b)
		}
		expect(t, exchange(t, h, isoReversal(t, buy, "0400", nil)), "0410", "00")
		if b := balanceOf(t, s, pan1); b != 10000 {
			t.Errorf("balance %d after the full reversal, want 10000", b)
		}
		mustVerify(t, s)
	})

	t.Run("amounts that do not fit the purchase are 13", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "000601", 3000)
		expect(t, exchange(t, h, buy), "0210", "00")
		expect(t, exchange(t, h, isoReversal(t, buy, "0420", map[int]string{95: replacement(3001)})), "0430", "13")
		expect(t, exchange(t, h, isoReversal(t, buy, "0400", map[int]string{4: "000000002999"})), "0410", "13")
		if d.Name() == "iso87ascii" {
			neg := "-00000000001" + strings.Repeat("0", 30)
			expect(t, exchange(t, h, isoReversal(t, buy, "0400", map[int]string{11: "000602", 95: neg,
				90: originalData("0200", "000601", isoTime, isoAcquirer)})), "0410", "13")
		}
		if b := balanceOf(t, s, pan1); b != 7000 {
			t.Errorf("balance %d, want 7000", b)
		}
		mustVerify(t, s)
	})

	t.Run("a reversal before its purchase: 25, and the purchase is declined 68", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "000701", 4000)
		expect(t, exchange(t, h, isoReversal(t, buy, "0420", nil)), "0430", "25")
		late := exchange(t, h, buy)
		expect(t, late, "0210", "68")
		if late.Has(38) {
			t.Errorf("the declined purchase has approval code %q", late.Get(38))
		}
		expect(t, exchange(t, h, isoMessageLike(t, buy, "0201")), "0210", "68")
		expect(t, exchange(t, h, isoReversal(t, buy, "0421", nil)), "0430", "25")
		if b := balanceOf(t, s, pan1); b != 10000 {
			t.Errorf("balance %d, want 10000", b)
		}
		if n := journalKinds(t, s); n[KindPurchase] != 0 {
			t.Errorf("journal kinds %v: the late purchase booked", n)
		}
		if rep := mustVerify(t, s); rep.Tombstones != 1 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("a reversal of a declined purchase is 00 and books nothing", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "000801", 20000)
		expect(t, exchange(t, h, buy), "0210", "51")
		rev := exchange(t, h, isoReversal(t, buy, "0400", nil))
		expect(t, rev, "0410", "00")
		if rev.Has(38) {
			t.Errorf("38 = %q for a reversal that booked nothing", rev.Get(38))
		}
		if st := s.Stats(); st.LastSeq != 1 {
			t.Errorf("LastSeq = %d, want 1", st.LastSeq)
		}
		mustVerify(t, s)
	})

	t.Run("a reversal of a balance inquiry is 00 and books nothing", func(t *testing.T) {
		s, h := hostShard(t, "")
		inq := isoPurchase(t, d, pan1, "000901", 0)
		if err := inq.SetString(3, "310000"); err != nil {
			t.Fatal(err)
		}
		expect(t, exchange(t, h, inq), "0210", "00")
		expect(t, exchange(t, h, isoReversal(t, inq, "0420", nil)), "0430", "00")
		if st := s.Stats(); st.LastSeq != 1 {
			t.Errorf("LastSeq = %d, want 1", st.LastSeq)
		}
		mustVerify(t, s)
	})

	t.Run("reversals that cannot be taken are declined, not guessed", func(t *testing.T) {
		s, h := hostShard(t, "")
		buy := isoPurchase(t, d, pan1, "001001", 100)
		expect(t, exchange(t, h, buy), "0210", "00")
		for _, tc := range []struct {
			name    string
			mti     string
			changes map[int]string
			rc      string
		}{
			{"a refund's reversal", "0420", map[int]string{3: "200000"}, "12"},
			{"an original that was itself a reversal", "0420", map[int]string{90: originalData("0400", "001001", isoTime, isoAcquirer)}, "12"},
			{"no amount", "0420", map[int]string{4: ""}, "30"},
			{"no terminal", "0400", map[int]string{41: ""}, "30"},
			{"a field 95 that is not an amount", "0420", map[int]string{95: "ABCDEFGHIJKL" + strings.Repeat("0", 30)}, "30"},
		} {
			resp := exchange(t, h, isoReversal(t, buy, tc.mti, tc.changes))
			if got := string(resp.Get(39)); got != tc.rc {
				t.Errorf("%s: 39 = %q, want %q", tc.name, got, tc.rc)
			}
		}
		if b := balanceOf(t, s, pan1); b != 9900 {
			t.Errorf("balance %d, want 9900", b)
		}
		if rep := mustVerify(t, s); rep.Tombstones != 0 {
			t.Errorf("report = %+v", rep)
		}
	})

	t.Run("a restart between purchase and reversal changes nothing", func(t *testing.T) {
		dir := t.TempDir()
		s, h := hostShard(t, dir)
		buy := isoPurchase(t, d, pan1, "001101", 1500)
		expect(t, exchange(t, h, buy), "0210", "00")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openShard(t, dir)
		h = NewHost(s)
		first := exchange(t, h, isoReversal(t, buy, "0420", nil))
		expect(t, first, "0430", "00")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openShard(t, dir)
		h = NewHost(s)
		again := exchange(t, h, isoReversal(t, buy, "0421", nil))
		expect(t, again, "0430", "00")
		if string(again.Get(38)) != string(first.Get(38)) || len(first.Get(38)) != 6 {
			t.Errorf("0421 after restart: 38 %q, first %q", again.Get(38), first.Get(38))
		}
		expect(t, exchange(t, h, isoReversal(t, buy, "0400", nil)), "0410", "00")
		if b := balanceOf(t, s, pan1); b != 10000 {
			t.Errorf("balance %d, want 10000", b)
		}
		if n := journalKinds(t, s)[KindReversal]; n != 1 {
			t.Errorf("%d reversal entries, want 1", n)
		}
		mustVerify(t, s)
	})
}

// isoMessageLike is m under another MTI (a repeat, say).
func isoMessageLike(t testing.TB, m *codec.Message, mti string) *codec.Message {
	return isoReversal(t, m, mti, nil)
}

func TestOriginalTxID(t *testing.T) {
	d := codec.ISO87ASCII()
	buy := isoPurchase(t, d, pan1, "123456", 100)
	want := TxIDOf(buy)
	for _, tc := range []struct {
		name    string
		mti     string
		changes map[int]string
		same    bool
	}{
		{"an 0420 repeating 7, 11 and 32", "0420", nil, true},
		{"an 0400 repeating them", "0400", nil, true},
		{"field 90 with the acquirer", "0420", map[int]string{11: "000001", 7: "0301090000",
			90: originalData("0200", "123456", isoTime, isoAcquirer)}, true},
		{"field 90 naming an 0201 repeat", "0420", map[int]string{11: "000001",
			90: originalData("0201", "123456", isoTime, isoAcquirer)}, true},
		{"field 90 with a zero acquirer", "0420", map[int]string{11: "000001",
			90: originalData("0200", "123456", isoTime, "")}, true},
		{"field 90 with another STAN", "0420", map[int]string{90: originalData("0200", "123457", isoTime, isoAcquirer)}, false},
		{"field 90 with another acquirer", "0420", map[int]string{90: originalData("0200", "123456", isoTime, "10000002")}, false},
		{"field 90 naming an 0100", "0420", map[int]string{90: originalData("0100", "123456", isoTime, isoAcquirer)}, false},
		{"another terminal", "0420", map[int]string{41: "T0000002"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev := isoReversal(t, buy, tc.mti, tc.changes)
			got, rc := originalTxID(rev)
			if rc != "" {
				t.Fatalf("rc %s", rc)
			}
			if (got == want) != tc.same {
				t.Errorf("original TxID equal to the purchase's: %t, want %t", got == want, tc.same)
			}
			if TxIDOf(rev) == want {
				t.Error("the reversal's own TxID is its original's")
			}
		})
	}

	t.Run("an acquirer id that begins with a zero still matches", func(t *testing.T) {
		buy := isoPurchase(t, d, pan1, "123456", 100)
		if err := buy.SetString(32, "0123"); err != nil {
			t.Fatal(err)
		}
		rev := isoReversal(t, buy, "0420", map[int]string{90: originalData("0200", "123456", isoTime, "0123")})
		if got, _ := originalTxID(rev); got != TxIDOf(buy) {
			t.Error("original TxID differs from the purchase's")
		}
	})

	t.Run("0420 and 0421 share a TxID, 0400 has its own", func(t *testing.T) {
		adv, rep, rev := isoReversal(t, buy, "0420", nil), isoReversal(t, buy, "0421", nil), isoReversal(t, buy, "0400", nil)
		if TxIDOf(adv) != TxIDOf(rep) || TxIDOf(adv) == TxIDOf(rev) {
			t.Error("reversal TxIDs do not follow the MTI")
		}
	})
}
