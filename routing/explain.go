package routing

import (
	"fmt"
	"strings"
)

// Verdict is what one rule made of a request, for an operator: whether it
// decided, and if not, the first reason it did not.
type Verdict struct {
	Rule    string
	Line    int  // 0 when the rule was not read from a file
	Decided bool // this rule gave the decision
	Why     string
}

// Explain decides like Decide and says, rule by rule in file order, why
// each rule did or did not decide. It allocates; it is for `junction route
// explain` and the admin endpoint, not for the request path.
func (t *Table) Explain(in *Input) (Decision, []Verdict) {
	d := t.Decide(in)
	covered := t.covering(in.PAN)
	out := make([]Verdict, len(t.rules))
	for i := range t.rules {
		r := &t.rules[i]
		v := Verdict{Rule: r.Name, Line: r.Line}
		bin, ok := covered[i]
		switch {
		case len(r.BIN) > 0 && !ok:
			v.Why = fmt.Sprintf("bin: the PAN %s starts with none of %s", maskedPrefix(in.PAN), strings.Join(r.BIN, ", "))
		case r.mismatch(in) != matched:
			v.Why = r.mismatchText(in)
		case i == d.Index:
			v.Decided = true
			v.Why = r.outcomeText(in, d, bin)
		case d.Index < 0: // cannot happen: Decide takes every rule that holds
			v.Why = "its conditions hold, yet no rule decided"
		default:
			w := &t.rules[d.Index]
			if wbin := covered[d.Index]; len(prefixOf(wbin, in.PAN)) > len(prefixOf(bin, in.PAN)) {
				v.Why = fmt.Sprintf("its conditions hold, but %q matches a longer BIN (%s)", w.Name, wbin)
			} else {
				v.Why = fmt.Sprintf("its conditions hold, but %q, as specific and written before it, decided", w.Name)
			}
		}
		out[i] = v
	}
	return d, out
}

// covering maps each rule with a BIN entry that covers pan to the entry
// with the longest prefix of pan.
func (t *Table) covering(pan []byte) map[int]string {
	out := map[int]string{}
	n := int32(0)
	visit := func(n int32) {
		for k, i := range t.nodes[n].rules {
			out[int(i)] = t.nodes[n].bins[k] // deeper nodes come later and win
		}
	}
	visit(0)
	for i := 0; i < len(pan) && i < maxBIN; i++ {
		c := pan[i]
		if c < '0' || c > '9' {
			break
		}
		if n = t.nodes[n].child[c-'0']; n == 0 {
			break
		}
		visit(n)
	}
	return out
}

// prefixOf is the prefix of pan that the BIN entry covers: its length
// tells which of two entries is more specific.
func prefixOf(entry string, pan []byte) string {
	if entry == "" {
		return ""
	}
	for _, p := range binPrefixes(entry) {
		if len(pan) >= len(p) && string(pan[:len(p)]) == p {
			return p
		}
	}
	return ""
}

func (r *rule) mismatchText(in *Input) string {
	switch r.mismatch(in) {
	case byChannel:
		return fmt.Sprintf("channel %q is not one of %s", in.Channel, strings.Join(r.Channels, ", "))
	case byIdentity:
		return fmt.Sprintf("identity %q is not one of %s", in.Identity, strings.Join(r.Identities, ", "))
	case byMTI:
		return fmt.Sprintf("MTI %s is not one of %s", in.MTI[:], strings.Join(r.MTI, ", "))
	case byPCode:
		return fmt.Sprintf("processing code %q is not one of %s", in.PCode, strings.Join(r.PCode, ", "))
	case byCurrency:
		return fmt.Sprintf("currency %d is not one of %v", in.Currency, r.Currency)
	case byAmount:
		if !in.HasAmount {
			return "amount: the request carries none"
		}
		return fmt.Sprintf("amount %d (minor units) is outside %s..%s", in.Amount, orOpen(r.Amount.Min), orOpen(r.Amount.Max))
	}
	return ""
}

func orOpen(s string) string {
	if s == "" {
		return "∞"
	}
	return s
}

func (r *rule) outcomeText(in *Input, d Decision, bin string) string {
	var b strings.Builder
	b.WriteString("decides")
	if bin != "" {
		fmt.Fprintf(&b, " (BIN %s)", bin)
	}
	switch {
	case r.Decline != "":
		fmt.Fprintf(&b, ": declines %s, as the rule says", d.Decline)
	case d.Decline == InvalidCard && r.checkPAN && !r.validPAN(in.PAN):
		fmt.Fprintf(&b, ": declines 14, the PAN fails the rule's checks (length %d..%d%s)",
			r.MinLength, r.MaxLength, map[bool]string{true: ", Luhn check digit", false: ""}[r.Luhn])
	case d.Decline == InvalidCard:
		fmt.Fprintf(&b, ": declines 14, no destination for the region code in the %s", regionSource(r.Region))
	default:
		fmt.Fprintf(&b, ": → %s", d.Destination)
		if r.Region != nil {
			fmt.Fprintf(&b, " (region code in the %s)", regionSource(r.Region))
		}
		if len(d.Alternates) > 0 {
			fmt.Fprintf(&b, ", alternates %s", strings.Join(d.Alternates, ", "))
		}
	}
	return b.String()
}

func regionSource(rc *RegionCode) string {
	if rc.Source == "account" {
		return "account (field 102)"
	}
	return "PAN"
}

// maskedPrefix shows a PAN as operators may see it: the first six digits.
func maskedPrefix(pan []byte) string {
	if len(pan) == 0 {
		return "(none)"
	}
	if len(pan) > 6 {
		return string(pan[:6]) + "…"
	}
	return string(pan)
}
