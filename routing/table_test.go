package routing

import (
	"strings"
	"testing"
)

func demoTable(t testing.TB) *Table {
	t.Helper()
	tbl, err := NewTable([]Rule{
		{Name: "demo-cards", BIN: "629990", Luhn: true, MinLength: 16, MaxLength: 19,
			Region: &RegionCode{Offset: 6, Length: 2}, Regions: map[string]string{"11": "beijing", "31": "shanghai"}},
		{Name: "corporate", BIN: "62999099", Luhn: true, Destination: "shanghai"},
		{Name: "partner-bank", BIN: "4", Destination: "bank-host"},
	}, map[string]bool{"beijing": true, "shanghai": true, "bank-host": true})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func pan(payload string) string { return payload + string(LuhnDigit(payload)) }

func TestRoute(t *testing.T) {
	tbl := demoTable(t)
	cases := []struct {
		name, pan, rule, dest, decline string
	}{
		{"the region code picks the beijing shard", pan("629990110000001"), "demo-cards", "beijing", ""},
		{"the region code picks the shanghai shard", pan("629990310000001"), "demo-cards", "shanghai", ""},
		{"the longest BIN wins over a shorter one", pan("629990990000001"), "corporate", "shanghai", ""},
		{"an unknown region code is an invalid card", pan("629990550000001"), "demo-cards", "", InvalidCard},
		{"a bad check digit is an invalid card", "6299901100000011", "demo-cards", "", InvalidCard},
		{"a PAN shorter than the rule allows is an invalid card", pan("62999011000"), "demo-cards", "", InvalidCard},
		{"a rule without a Luhn check takes any digits", "4000000000000001", "partner-bank", "bank-host", ""},
		{"a BIN no rule covers has no issuer", pan("510000000000000"), "", "", NoSuchIssuer},
		{"non-digits are an invalid card", "62999011000000A8", "demo-cards", "", InvalidCard},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := tbl.Route([]byte(c.pan))
			if d.Rule != c.rule || d.Destination != c.dest || d.Decline != c.decline {
				t.Fatalf("Route(%s) = %+v, want rule %q dest %q decline %q", c.pan, d, c.rule, c.dest, c.decline)
			}
		})
	}
}

func TestNewTableReportsEveryProblem(t *testing.T) {
	_, err := NewTable([]Rule{
		{Name: "a", BIN: "62x", Destination: "beijing"},
		{Name: "a", BIN: "629990", Region: &RegionCode{Offset: 17, Length: 2}, Regions: map[string]string{"1": "nowhere"}},
		{Name: "c", BIN: "629990"},
		{Name: "d", BIN: "5", Destination: "x", Region: &RegionCode{Offset: 1, Length: 1}, Regions: map[string]string{"1": "beijing"}},
	}, map[string]bool{"beijing": true})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`rule 1 (a): bin "62x" must be 1 to 11 digits`,
		"rule 2 (a): name is also used by rule 1",
		"rule 2 (a): region code at offset 17",
		`rule 2 (a): region code "1" must be 2 digits`,
		`rule 2 (a): region 1 routes to unknown destination "nowhere"`,
		"rule 3 (c): bin 629990 is also routed by rule 2",
		"rule 3 (c): needs a destination",
		"rule 4 (d): has both a destination and a region split",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
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

func TestRouteDoesNotAllocate(t *testing.T) {
	tbl := demoTable(t)
	p := []byte(pan("629990310000001"))
	if n := testing.AllocsPerRun(1000, func() { _ = tbl.Route(p) }); n != 0 {
		t.Fatalf("Route allocates %.1f times", n)
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
