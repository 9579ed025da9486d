package routing

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Decline codes a routing decision can carry (ISO 8583 field 39).
const (
	// NoSuchIssuer: no rule matches the request.
	NoSuchIssuer = "15"
	// InvalidCard: the rule that matches checks the PAN and the PAN fails
	// its check digit or its length, or the region code in the PAN or the
	// account is one the rule does not know.
	InvalidCard = "14"
)

// StandIn is the destination name of stand-in processing: the switch
// approves within configured limits on the issuer's behalf and advises the
// issuer later. A rule may name it as its destination or as an alternate.
const StandIn = "stand-in"

// Rule is one line of the routing table: conditions, then an outcome.
//
// Conditions (all that are given must hold; an empty one holds always):
// the channel and the client identity the request came in on, the MTI, the
// processing code, the PAN's BIN, the amount and the currency. Patterns for
// the MTI and the processing code are digits with 'x' for any digit:
// "02xx" is every financial message, "31xxxx" every balance inquiry,
// "xx10xx" any transaction from a savings account (ISO 8583 account types:
// 00 default, 10 savings, 20 cheque, 30 credit).
//
// Outcome: a destination (a regional ledger shard, a bank host, or
// StandIn), or a region split (Region and Regions: a code in the PAN or in
// the account of field 102 picks the destination), or a decline code. A
// destination outcome may list Alternates, tried in order when the
// destination cannot serve.
//
// Among the rules whose conditions hold, the one with the longest matching
// BIN wins (a rule without a BIN has length zero); between equally long
// ones, the one written first.
type Rule struct {
	Name string `yaml:"name"`

	Channels   []string `yaml:"channels"`   // channel names
	Identities []string `yaml:"identities"` // client identities; a trailing '*' matches a prefix
	MTI        []string `yaml:"mti"`        // e.g. "0200", "02xx", "x4xx"
	PCode      []string `yaml:"pcode"`      // processing code (field 3): type, from account, to account
	BIN        BINs     `yaml:"bin"`        // PAN prefixes ("629990") or ranges ("62999000-62999099")
	Amount     *Amount  `yaml:"amount"`     // bounds of field 4, in Currency's major units
	Currency   []uint16 `yaml:"currency"`   // ISO 4217 numeric codes (field 49)

	// PAN checks, made once the rule matches: a PAN that fails them is
	// declined InvalidCard rather than passed on.
	Luhn      bool `yaml:"luhn"`       // require a valid check digit
	MinLength int  `yaml:"min_length"` // PAN length bounds; 0 means 12 and 19
	MaxLength int  `yaml:"max_length"`

	Destination string            `yaml:"destination"`
	Region      *RegionCode       `yaml:"region"`
	Regions     map[string]string `yaml:"regions"` // region code → destination
	Decline     string            `yaml:"decline"` // a two-character response code
	Alternates  []string          `yaml:"alternates"`

	// Timeout bounds the destination's answer (0: the switch's default);
	// when it passes, the channel gets TimeoutCode (91 by default, or 68)
	// and the request is reversed.
	Timeout     time.Duration `yaml:"timeout"`
	TimeoutCode string        `yaml:"timeout_code"`

	// Line is where the rule starts in its YAML file (0 when it was not
	// read from one), for error messages and explanations.
	Line int `yaml:"-"`
}

// RegionCode says where a region code sits: in the PAN (Source "pan", the
// default) or in the account identification of field 102 (Source
// "account", e.g. a fixed-line telephone number whose area code is the
// region), Length digits from Offset (0-based). Length 0 takes the longest
// code of Regions that starts at Offset: telephone area codes are 3 or 4
// digits (010 Beijing, 021 Shanghai, 0531 Jinan).
type RegionCode struct {
	Source string `yaml:"source"`
	Offset int    `yaml:"offset"`
	Length int    `yaml:"length"`
}

// Amount bounds the transaction amount, both ends included, as decimal
// strings in the currency's major units ("0.01", "5000.00"). The rule must
// name exactly one currency, whose exponent reads them.
type Amount struct {
	Min string `yaml:"min"`
	Max string `yaml:"max"`
}

// BINs is a list of PAN prefixes and ranges. In YAML it is a single string
// or a list of them.
type BINs []string

// UnmarshalYAML accepts "629990" as well as ["629990", "62999100-62999199"].
func (b *BINs) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*b = BINs{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*b = list
	return nil
}

var ruleKeys = []string{"name", "channels", "identities", "mti", "pcode", "bin", "amount", "currency",
	"luhn", "min_length", "max_length", "destination", "region", "regions", "decline", "alternates",
	"timeout", "timeout_code"}

// UnmarshalYAML decodes a rule, refusing keys it does not know (with their
// line, since a misspelt condition would otherwise widen the rule
// silently) and recording the rule's line.
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a rule is a mapping of keys (name, bin, destination, …)", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(ruleKeys, k.Value) {
			return fmt.Errorf("line %d: unknown key %q in a rule (known: %s)", k.Line, k.Value, strings.Join(ruleKeys, ", "))
		}
	}
	type plain Rule // without this method
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*r = Rule(p)
	r.Line = n.Line
	return nil
}

// where names a rule in an error: its line when it came from a file.
func (r *Rule) where(i int) string {
	if r.Line > 0 {
		return fmt.Sprintf("line %d: rule %q", r.Line, r.Name)
	}
	return fmt.Sprintf("rule %d (%s)", i+1, r.Name)
}

// pattern is a digit pattern with 'x' wildcards, compiled.
type pattern struct {
	n          int
	want, care [8]byte
	text       string
}

func compilePattern(s string, n int) (pattern, error) {
	p := pattern{n: n, text: s}
	if len(s) != n {
		return p, fmt.Errorf("%q must be %d characters, digits or x", s, n)
	}
	for i := 0; i < n; i++ {
		switch c := s[i]; {
		case c == 'x' || c == 'X':
		case c >= '0' && c <= '9':
			p.want[i], p.care[i] = c, 1
		default:
			return p, fmt.Errorf("%q must be %d characters, digits or x", s, n)
		}
	}
	return p, nil
}

func (p *pattern) match(v []byte) bool {
	if len(v) != p.n {
		return false
	}
	for i := 0; i < p.n; i++ {
		if p.care[i] != 0 && v[i] != p.want[i] {
			return false
		}
	}
	return true
}

// identityMatch reports whether id matches pattern: exact, or a prefix
// when pattern ends in '*'.
func identityMatch(pattern, id string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(id, p)
	}
	return pattern == id
}
