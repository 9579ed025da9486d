package routing

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func demoTable(t testing.TB) *Table {
	t.Helper()
	tbl, err := NewTable([]Rule{
		{Name: "demo-cards", BIN: BINs{"629990"}, Luhn: true, MinLength: 16, MaxLength: 19,
			Region: &RegionCode{Offset: 6, Length: 2}, Regions: map[string]string{"11": "beijing", "31": "shanghai"}},
		{Name: "corporate", BIN: BINs{"62999099"}, Luhn: true, Destination: "shanghai"},
		{Name: "partner-bank", BIN: BINs{"4"}, Destination: "bank-host"},
	}, map[string]bool{"beijing": true, "shanghai": true, "bank-host": true})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func pan(payload string) string { return payload + string(LuhnDigit(payload)) }

func TestNewTableChecksDestinations(t *testing.T) {
	_, err := NewTable([]Rule{
		{Name: "a", BIN: BINs{"629990"}, Region: &RegionCode{Offset: 6, Length: 2}, Regions: map[string]string{"11": "nowhere"}},
		{Name: "b", BIN: BINs{"4"}, Destination: "beijing", Alternates: []string{"stand-in"}},
	}, map[string]bool{"beijing": true})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`rule 1 (a): regions[11]: unknown destination "nowhere"`,
		`rule 2 (b): alternates: unknown destination "stand-in"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestRangePrefixes checks the range cover on random ranges: every number
// inside is covered by exactly one prefix, none outside is covered.
func TestRangePrefixes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		a, b := r.IntN(10000), r.IntN(10000)
		lo, hi := min(a, b), max(a, b)
		ps := rangePrefixes(fmt.Sprintf("%04d", lo), fmt.Sprintf("%04d", hi))
		for n := 0; n < 10000; n++ {
			s := fmt.Sprintf("%04d", n)
			covers := 0
			for _, p := range ps {
				if strings.HasPrefix(s, p) {
					covers++
				}
			}
			if inside := n >= lo && n <= hi; inside && covers != 1 || !inside && covers != 0 {
				t.Fatalf("%04d-%04d → %v: %s covered %d times", lo, hi, ps, s, covers)
			}
		}
	}
}

func TestLuhn(t *testing.T) {
	for _, valid := range []string{"4111111111111111", "6299901100000013", "79927398713"} {
		if !Luhn([]byte(valid)) {
			t.Errorf("%s should pass", valid)
		}
	}
	for _, invalid := range []string{"4111111111111112", "79927398710", "1", "", "41111111111111a1"} {
		if Luhn([]byte(invalid)) {
			t.Errorf("%s should fail", invalid)
		}
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	tbl := bigTable(t, 10000)
	in := bigInput()
	if n := testing.AllocsPerRun(1000, func() { _ = tbl.Decide(&in) }); n != 0 {
		t.Fatalf("Decide allocates %.1f times", n)
	}
	if d := tbl.Decide(&in); d.Destination == "" {
		t.Fatalf("the benchmark's request is not routed: %+v", d)
	}
}

// bigTable is n BIN ranges of 8 digits over 4 destinations, each range
// with a channel condition, behind a few broad rules: a table the size of a
// national switch's.
func bigTable(t testing.TB, n int) *Table {
	t.Helper()
	dests := []string{"beijing", "shanghai", "guangzhou", "bank-host"}
	rules := make([]Rule, 0, n+2)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range n {
		lo := 40000000 + i*5000 + r.IntN(1000)
		hi := lo + 100 + r.IntN(3000)
		rules = append(rules, Rule{
			Name: "range-" + strconv.Itoa(i), BIN: BINs{fmt.Sprintf("%08d-%08d", lo, hi)},
			Channels: []string{"pos", "web"}, MTI: []string{"02xx", "04xx"}, Luhn: true,
			Destination: dests[i%len(dests)], Alternates: []string{dests[(i+1)%len(dests)]},
		})
	}
	rules = append(rules,
		Rule{Name: "visa-fallback", BIN: BINs{"4"}, Destination: "bank-host"},
		Rule{Name: "no-issuer", Decline: "15"})
	tbl, err := NewTable(rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func bigInput() Input {
	return Input{
		Channel: "web", MTI: [4]byte{'0', '2', '0', '0'}, PCode: []byte("000000"),
		PAN: []byte(pan("420001055000000")), Amount: 1234, HasAmount: true, Currency: 156,
	}
}

// BenchmarkDecide is one routing decision on a table of 10 000 BIN ranges.
//
//	go test -run '^$' -bench Decide -benchmem ./routing
func BenchmarkDecide(b *testing.B) {
	tbl := bigTable(b, 10000)
	in := bigInput()
	b.ReportAllocs()
	for b.Loop() {
		_ = tbl.Decide(&in)
	}
}

func BenchmarkRoute(b *testing.B) {
	tbl := demoTable(b)
	p := []byte(pan("629990310000001"))
	b.ReportAllocs()
	for b.Loop() {
		_ = tbl.Route(p)
	}
}
