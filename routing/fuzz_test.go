package routing

import "testing"

// FuzzRules feeds arbitrary rule files and requests: a file is refused or
// compiled, never a panic, and a compiled table decides any request
// without one, within its rules.
func FuzzRules(f *testing.F) {
	f.Add([]byte("rules:\n  - name: a\n    bin: \"629990\"\n    region: {offset: 6, length: 2}\n    regions: {\"11\": b}\n"), []byte("6299901100000013"), []byte("0100"), "pos")
	f.Add([]byte("rules:\n  - name: r\n    bin: [\"62999000-62999199\", \"4\"]\n    channels: [pos]\n    mti: [\"02xx\"]\n    pcode: [\"00xxxx\"]\n    currency: [156]\n    amount: {min: \"1.00\"}\n    destination: d\n    alternates: [e]\n"), []byte("6299915500000019"), []byte("0000"), "pos")
	f.Add([]byte("rules:\n  - name: p\n    region: {source: account}\n    regions: {\"010\": b, \"0531\": c}\n"), []byte(""), []byte("053188887777"), "hotline")
	f.Fuzz(func(t *testing.T, file, pan, account []byte, channel string) {
		rules, err := ParseRules(file)
		if err != nil {
			return
		}
		tbl, err := NewTable(rules, nil)
		if err != nil {
			return
		}
		in := Input{Channel: channel, MTI: [4]byte{'0', '2', '0', '0'}, PCode: []byte("000000"), PAN: pan, Account: account,
			Amount: int64(len(pan)) * 100, HasAmount: true, Currency: 156}
		d := tbl.Decide(&in)
		if d.Index >= len(tbl.rules) || d.Index < -1 || (d.Destination == "") == (d.Decline == "") {
			t.Fatalf("decision %+v", d)
		}
		if _, v := tbl.Explain(&in); len(v) != len(tbl.rules) {
			t.Fatalf("%d verdicts for %d rules", len(v), len(tbl.rules))
		}
	})
}
