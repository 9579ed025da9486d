package routing

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/junction-switch/junction/ledger"
)

// Input is what a routing decision reads: where the request came from and
// the fields that matter, taken from a scanned message. Slices are read,
// never kept.
type Input struct {
	Channel  string
	Identity string
	MTI      [4]byte
	PCode    []byte // field 3
	PAN      []byte // field 2
	Account  []byte // field 102, account identification 1
	Amount   int64  // field 4, minor units; meaningful when HasAmount
	Currency uint16 // field 49; 0 when absent

	HasAmount bool
}

// Decision is the outcome of routing one request: a destination with its
// alternates, or a decline code. Rule names the rule that decided and
// Index its position in the table's rule list (Rules); both are empty (""
// and -1) when no rule matched. Alternates belongs to the table: read it,
// do not change it.
type Decision struct {
	Rule        string
	Index       int
	Destination string
	Alternates  []string
	Decline     string
	// Timeout and TimeoutCode are the rule's: how long the destination
	// has (0: the caller's default) and what the channel gets when it
	// does not answer in time ("" : the caller's default).
	Timeout     time.Duration
	TimeoutCode string
}

// maxBIN is the longest BIN a rule may give (BASE24-eps's PAN prefix
// limit).
const maxBIN = 11

// Table is a validated, immutable routing table. Decide is safe for
// concurrent use, reads no clock, touches no socket and does not allocate.
//
// The BINs of all rules sit in a digit trie; a decision walks the PAN down
// the trie once, then tries the rules met on the way from the deepest
// (longest BIN) up to the root (rules without a BIN), each node's rules in
// file order. The first rule whose conditions hold decides. Its cost
// depends on the PAN's length and the rules on its path, not on the size
// of the table.
type Table struct {
	rules []rule
	nodes []node // nodes[0] is the root
}

type node struct {
	child [10]int32 // 0: none (the root is nobody's child)
	rules []int32   // rules with a BIN ending here, in file order
	bins  []string  // the BIN entry of each rule, as written (for explanations)
}

// rule is a Rule compiled for matching.
type rule struct {
	Rule
	mti, pcode     []pattern
	minAmt, maxAmt int64
	hasMin, hasMax bool
	codes          []string // Regions' codes, longest first (Length 0 splits)
	checkPAN       bool
}

// NewTable validates every rule and returns all problems at once, each
// naming the rule by its line (or its position and name). destinations,
// when non-nil, is the set of destinations that exist; a rule naming
// another is an error. StandIn is a destination like the others: include it
// in destinations when stand-in processing is available.
func NewTable(rules []Rule, destinations map[string]bool) (*Table, error) {
	var errs []error
	t := &Table{nodes: make([]node, 1)}
	names := map[string]int{}
	for i := range rules {
		r, e := compile(rules, i, destinations, names)
		errs = append(errs, e...)
		t.rules = append(t.rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for i := range t.rules {
		r := &t.rules[i]
		if len(r.BIN) == 0 {
			t.nodes[0].rules = append(t.nodes[0].rules, int32(i))
			t.nodes[0].bins = append(t.nodes[0].bins, "")
			continue
		}
		for _, entry := range r.BIN {
			for _, prefix := range binPrefixes(entry) {
				n := t.insert(prefix)
				t.nodes[n].rules = append(t.nodes[n].rules, int32(i))
				t.nodes[n].bins = append(t.nodes[n].bins, entry)
			}
		}
	}
	if err := t.shadowed(); err != nil {
		return nil, err
	}
	return t, nil
}

// compile validates rules[i] and compiles it.
func compile(rules []Rule, i int, destinations map[string]bool, names map[string]int) (rule, []error) {
	r := rule{Rule: rules[i]}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("routing: %s: %s", r.where(i), fmt.Sprintf(format, args...)))
	}
	known := func(what, dest string) {
		if dest == "" {
			bad("%s is empty", what)
		} else if destinations != nil && !destinations[dest] {
			bad("%s: unknown destination %q", what, dest)
		}
	}
	if r.Name == "" {
		bad("name is missing")
	} else if j, dup := names[r.Name]; dup {
		bad("name is also used by %s", rules[j].where(j))
	} else {
		names[r.Name] = i
	}
	for _, c := range r.Channels {
		if c == "" {
			bad("channels: an empty name")
		}
	}
	for _, id := range r.Identities {
		if id == "" || strings.Contains(strings.TrimSuffix(id, "*"), "*") {
			bad("identities: %q: a name, or a prefix ending in '*'", id)
		}
	}
	for _, s := range r.MTI {
		p, err := compilePattern(s, 4)
		if err != nil {
			bad("mti: %v", err)
		}
		r.mti = append(r.mti, p)
	}
	for _, s := range r.PCode {
		p, err := compilePattern(s, 6)
		if err != nil {
			bad("pcode: %v", err)
		}
		r.pcode = append(r.pcode, p)
	}
	for _, b := range r.BIN {
		if err := checkBIN(b); err != nil {
			bad("bin: %v", err)
		}
	}
	for _, c := range r.Currency {
		if c == 0 || c > 999 {
			bad("currency: %d is not an ISO 4217 numeric code", c)
		}
	}
	if a := r.Amount; a != nil {
		if len(r.Currency) != 1 {
			bad("amount: name exactly one currency, whose exponent reads the bounds")
		} else {
			var err error
			if a.Min != "" {
				if r.minAmt, err = ledger.ParseAmount(a.Min, r.Currency[0]); err != nil {
					bad("amount.min: %v", err)
				}
				r.hasMin = true
			}
			if a.Max != "" {
				if r.maxAmt, err = ledger.ParseAmount(a.Max, r.Currency[0]); err != nil {
					bad("amount.max: %v", err)
				}
				r.hasMax = true
			}
			if !r.hasMin && !r.hasMax {
				bad("amount: give min, max or both")
			} else if r.hasMin && r.hasMax && r.minAmt > r.maxAmt {
				bad("amount: min %s is above max %s", a.Min, a.Max)
			}
		}
	}

	r.checkPAN = len(r.BIN) > 0 || r.Luhn || r.MinLength > 0 || r.MaxLength > 0
	if r.MinLength == 0 {
		r.MinLength = 12
	}
	if r.MaxLength == 0 {
		r.MaxLength = 19
	}
	longestBIN := 0
	for _, b := range r.BIN {
		lo, _, _ := strings.Cut(b, "-")
		longestBIN = max(longestBIN, len(lo))
	}
	if r.MinLength < max(longestBIN, 8) || r.MaxLength > 19 || r.MinLength > r.MaxLength {
		bad("PAN length bounds %d..%d must lie within %d..19", r.MinLength, r.MaxLength, max(longestBIN, 8))
	}

	outcomes := 0
	if r.Destination != "" {
		outcomes++
		known("destination", r.Destination)
	}
	if r.Region != nil || len(r.Regions) > 0 {
		outcomes++
		compileRegion(&r, bad, known)
	}
	if r.Decline != "" {
		outcomes++
		if len(r.Decline) != 2 || !alnum(r.Decline) {
			bad("decline: %q must be a two-character response code", r.Decline)
		}
		if len(r.Alternates) > 0 {
			bad("alternates: a declining rule has no destination to stand in for")
		}
	}
	if outcomes != 1 {
		bad("needs exactly one outcome: destination, a region split (region and regions), or decline")
	}
	if r.Timeout < 0 || r.Timeout > 5*time.Minute {
		bad("timeout: %v must be between 0 (the switch's default) and 5m", r.Timeout)
	}
	switch r.TimeoutCode {
	case "", "91", "68":
	default:
		bad("timeout_code: %q: want 91 (issuer unavailable) or 68 (response received too late)", r.TimeoutCode)
	}
	seen := map[string]bool{r.Destination: true}
	for _, a := range r.Alternates {
		known("alternates", a)
		if seen[a] {
			bad("alternates: %q is named twice or is the destination itself", a)
		}
		seen[a] = true
	}
	return r, errs
}

// compileRegion checks a region split and sorts its codes for the lookup.
func compileRegion(r *rule, bad func(string, ...any), known func(string, string)) {
	rc := r.Region
	switch {
	case rc == nil:
		bad("regions without region: say where the region code sits")
		return
	case len(r.Regions) == 0:
		bad("region split has no regions")
		return
	}
	switch rc.Source {
	case "", "pan":
		if rc.Length < 1 || rc.Offset < 0 || rc.Offset+rc.Length > r.MinLength {
			bad("region code at offset %d length %d must lie inside the shortest PAN (%d digits)", rc.Offset, rc.Length, r.MinLength)
		}
	case "account":
		if rc.Offset < 0 || rc.Length < 0 || rc.Offset > 28 || rc.Length > 8 {
			bad("region code at offset %d length %d must lie inside an account id (28 characters)", rc.Offset, rc.Length)
		}
	default:
		bad("region.source: %q: want pan or account", rc.Source)
	}
	for _, code := range sortedKeys(r.Regions) {
		switch {
		case rc.Length > 0 && (len(code) != rc.Length || !digits(code)):
			bad("region code %q must be %d digits", code, rc.Length)
		case rc.Length == 0 && (len(code) < 1 || len(code) > 8 || !digits(code)):
			bad("region code %q must be 1 to 8 digits", code)
		}
		known(fmt.Sprintf("regions[%s]", code), r.Regions[code])
		r.codes = append(r.codes, code)
	}
	// Longest first, so that a variable-length lookup takes the most
	// specific code (0531 before 053).
	sort.SliceStable(r.codes, func(i, j int) bool { return len(r.codes[i]) > len(r.codes[j]) })
}

// checkBIN validates a BIN entry: digits, or a range lo-hi of two digit
// strings of the same length with lo <= hi.
func checkBIN(b string) error {
	lo, hi, isRange := strings.Cut(b, "-")
	if !digits(lo) || len(lo) > maxBIN {
		return fmt.Errorf("%q must be 1 to %d digits, or a range of them", b, maxBIN)
	}
	if isRange && (!digits(hi) || len(hi) != len(lo) || hi < lo) {
		return fmt.Errorf("range %q: both ends must have the same number of digits, the lower first", b)
	}
	return nil
}

// binPrefixes turns a BIN entry into the prefixes that cover it exactly:
// "629990" is itself; the range "62999000-62999199" is 6299900 and 6299901
// (the fewest prefixes, as CIDR blocks cover an address range).
func binPrefixes(b string) []string {
	lo, hi, isRange := strings.Cut(b, "-")
	if !isRange {
		return []string{lo}
	}
	return rangePrefixes(lo, hi)
}

func rangePrefixes(lo, hi string) []string {
	k := 0
	for k < len(lo) && lo[k] == hi[k] {
		k++
	}
	if k == len(lo) {
		return []string{lo}
	}
	if strings.Trim(lo[k:], "0") == "" && strings.Trim(hi[k:], "9") == "" {
		return []string{lo[:k]}
	}
	var out []string
	tail := len(lo) - k - 1
	out = append(out, rangePrefixes(lo, lo[:k+1]+strings.Repeat("9", tail))...)
	for d := lo[k] + 1; d < hi[k]; d++ {
		out = append(out, lo[:k]+string(d))
	}
	return append(out, rangePrefixes(hi[:k+1]+strings.Repeat("0", tail), hi)...)
}

// insert adds prefix to the trie and returns its node.
func (t *Table) insert(prefix string) int32 {
	n := int32(0)
	for i := 0; i < len(prefix); i++ {
		d := prefix[i] - '0'
		next := t.nodes[n].child[d]
		if next == 0 {
			t.nodes = append(t.nodes, node{})
			next = int32(len(t.nodes) - 1)
			t.nodes[n].child[d] = next
		}
		n = next
	}
	return n
}

// shadowed refuses a rule that can never decide: an earlier rule at the
// same trie node without any condition besides the BIN always wins first.
func (t *Table) shadowed() error {
	var errs []error
	for _, n := range t.nodes {
		for a, i := range n.rules {
			if !t.rules[i].unconditional() {
				continue
			}
			for _, j := range n.rules[a+1:] {
				if j == i {
					continue
				}
				errs = append(errs, fmt.Errorf("routing: %s can never match %s: %s, written before it, takes every request of that BIN",
					t.rules[j].where(int(j)), binName(n.bins[slices.Index(n.rules, j)]), t.rules[i].where(int(i))))
			}
			break
		}
	}
	return errors.Join(errs...)
}

func binName(b string) string {
	if b == "" {
		return "any request"
	}
	return "BIN " + b
}

func (r *rule) unconditional() bool {
	return len(r.Channels) == 0 && len(r.Identities) == 0 && len(r.mti) == 0 && len(r.pcode) == 0 &&
		r.Amount == nil && len(r.Currency) == 0
}

// Decide routes one request. It reads no clock, touches no socket and does
// not allocate.
func (t *Table) Decide(in *Input) Decision {
	var path [maxBIN + 1]int32 // nodes with rules on the PAN's way down, root first
	depth := 0
	if len(t.nodes[0].rules) > 0 {
		path[0] = 0
		depth = 1
	}
	n := int32(0)
	for i := 0; i < len(in.PAN) && i < maxBIN; i++ {
		c := in.PAN[i]
		if c < '0' || c > '9' {
			break
		}
		if n = t.nodes[n].child[c-'0']; n == 0 {
			break
		}
		if len(t.nodes[n].rules) > 0 {
			path[depth] = n
			depth++
		}
	}
	for d := depth - 1; d >= 0; d-- {
		for _, i := range t.nodes[path[d]].rules {
			r := &t.rules[i]
			if r.mismatch(in) == matched {
				return r.decide(in, int(i))
			}
		}
	}
	return Decision{Index: -1, Decline: NoSuchIssuer}
}

// Route decides for a PAN alone: what a request without channel, MTI or
// amount gets (rules with such conditions do not match it).
func (t *Table) Route(pan []byte) Decision { return t.Decide(&Input{PAN: pan}) }

// Rules returns a copy of the table's rules, in file order; Decision.Index
// indexes it.
func (t *Table) Rules() []Rule {
	out := make([]Rule, len(t.rules))
	for i := range t.rules {
		out[i] = t.rules[i].Rule
	}
	return out
}

// why a rule's conditions do not hold; matched when they do.
type mismatchReason uint8

const (
	matched mismatchReason = iota
	byChannel
	byIdentity
	byMTI
	byPCode
	byCurrency
	byAmount
)

// mismatch checks the rule's conditions (not its BIN: the trie did).
func (r *rule) mismatch(in *Input) mismatchReason {
	if len(r.Channels) > 0 && !slices.Contains(r.Channels, in.Channel) {
		return byChannel
	}
	if len(r.Identities) > 0 {
		ok := false
		for _, p := range r.Identities {
			if identityMatch(p, in.Identity) {
				ok = true
				break
			}
		}
		if !ok {
			return byIdentity
		}
	}
	if len(r.mti) > 0 && !anyMatch(r.mti, in.MTI[:]) {
		return byMTI
	}
	if len(r.pcode) > 0 && !anyMatch(r.pcode, in.PCode) {
		return byPCode
	}
	if len(r.Currency) > 0 && !slices.Contains(r.Currency, in.Currency) {
		return byCurrency
	}
	if (r.hasMin || r.hasMax) && (!in.HasAmount || r.hasMin && in.Amount < r.minAmt || r.hasMax && in.Amount > r.maxAmt) {
		return byAmount
	}
	return matched
}

func anyMatch(ps []pattern, v []byte) bool {
	for i := range ps {
		if ps[i].match(v) {
			return true
		}
	}
	return false
}

// decide gives the outcome of a rule whose conditions hold.
func (r *rule) decide(in *Input, index int) Decision {
	d := Decision{Rule: r.Name, Index: index}
	if r.Decline != "" {
		d.Decline = r.Decline
		return d
	}
	if r.checkPAN && !r.validPAN(in.PAN) {
		d.Decline = InvalidCard
		return d
	}
	d.Alternates, d.Timeout, d.TimeoutCode = r.Alternates, r.Timeout, r.TimeoutCode
	if r.Region == nil {
		d.Destination = r.Destination
		return d
	}
	dest, ok := r.region(in)
	if !ok {
		d.Decline, d.Alternates = InvalidCard, nil
		return d
	}
	d.Destination = dest
	return d
}

func (r *rule) validPAN(pan []byte) bool {
	return len(pan) >= r.MinLength && len(pan) <= r.MaxLength && digitsBytes(pan) && (!r.Luhn || Luhn(pan))
}

// region finds the destination of the region code in the PAN or account.
func (r *rule) region(in *Input) (string, bool) {
	src := in.PAN
	if r.Region.Source == "account" {
		src = in.Account
	}
	off := r.Region.Offset
	if r.Region.Length > 0 {
		if off+r.Region.Length > len(src) {
			return "", false
		}
		dest, ok := r.Regions[string(src[off:off+r.Region.Length])] // no allocation in a map index
		return dest, ok
	}
	if off > len(src) {
		return "", false
	}
	rest := src[off:]
	for _, code := range r.codes {
		if len(rest) >= len(code) && string(rest[:len(code)]) == code {
			return r.Regions[code], true
		}
	}
	return "", false
}

// Luhn reports whether pan, all digits, carries a valid mod-10 check digit.
func Luhn(pan []byte) bool {
	if len(pan) < 2 {
		return false
	}
	sum := 0
	double := false
	for i := len(pan) - 1; i >= 0; i-- {
		c := pan[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// LuhnDigit returns the check digit that makes payload+digit Luhn-valid.
func LuhnDigit(payload string) byte {
	for c := byte('0'); c <= '9'; c++ {
		if Luhn(append([]byte(payload), c)) {
			return c
		}
	}
	return '0' // unreachable for a digit payload
}

func digits(s string) bool { return digitsBytes([]byte(s)) }

func digitsBytes(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
