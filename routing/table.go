package routing

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// Decline codes a routing decision can carry (ISO 8583 field 39).
const (
	// NoSuchIssuer: no rule covers the PAN's BIN.
	NoSuchIssuer = "15"
	// InvalidCard: a rule covers the BIN but the PAN fails its check digit, its
	// length, or carries a region code the rule does not know.
	InvalidCard = "14"
)

// Rule routes the PANs that start with BIN. When Region is set, the digits at
// Region.Offset pick the destination from Regions (a regional ledger shard per
// region code); otherwise every PAN of the BIN goes to Destination.
type Rule struct {
	Name        string            `yaml:"name"`
	BIN         string            `yaml:"bin"`
	Luhn        bool              `yaml:"luhn"`       // require a valid check digit
	MinLength   int               `yaml:"min_length"` // PAN length bounds; 0 means 12 and 19
	MaxLength   int               `yaml:"max_length"`
	Region      *RegionCode       `yaml:"region"`
	Regions     map[string]string `yaml:"regions"`     // region code → destination
	Destination string            `yaml:"destination"` // destination without a region split
}

// RegionCode says where a region code sits inside the PAN: Length digits
// from Offset (0-based).
type RegionCode struct {
	Offset int `yaml:"offset"`
	Length int `yaml:"length"`
}

// Decision is the outcome of routing one PAN: a destination, or a decline
// code when there is none. Rule names the rule that decided ("" when no rule
// matched).
type Decision struct {
	Rule        string
	Destination string
	Decline     string
}

// Table is a validated, immutable set of rules. Route is safe for concurrent
// use and does not allocate.
type Table struct {
	rules []Rule // longest BIN first, so the first match is the most specific
}

// NewTable validates every rule and returns all problems at once, each naming
// the rule by its position and name. destinations, when non-nil, is the set of
// destination names that exist; a rule naming another is an error.
func NewTable(rules []Rule, destinations map[string]bool) (*Table, error) {
	var errs []error
	seenName := map[string]int{}
	seenBIN := map[string]int{}
	t := &Table{}
	for i, r := range rules {
		where := fmt.Sprintf("routing: rule %d (%s)", i+1, r.Name)
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
		}
		if r.Name == "" {
			bad("name is missing")
		} else if j, dup := seenName[r.Name]; dup {
			bad("name is also used by rule %d", j+1)
		}
		seenName[r.Name] = i
		if r.BIN == "" || len(r.BIN) > 11 || !digits(r.BIN) {
			bad("bin %q must be 1 to 11 digits", r.BIN)
		} else if j, dup := seenBIN[r.BIN]; dup {
			bad("bin %s is also routed by rule %d", r.BIN, j+1)
		}
		seenBIN[r.BIN] = i
		if r.MinLength == 0 {
			r.MinLength = 12
		}
		if r.MaxLength == 0 {
			r.MaxLength = 19
		}
		if r.MinLength < len(r.BIN) || r.MaxLength > 19 || r.MinLength > r.MaxLength {
			bad("PAN length bounds %d..%d must lie within %d..19", r.MinLength, r.MaxLength, len(r.BIN))
		}
		switch {
		case r.Region == nil && r.Destination == "":
			bad("needs a destination, or a region code with regions")
		case r.Region != nil && r.Destination != "":
			bad("has both a destination and a region split; keep one")
		case r.Region != nil:
			if r.Region.Length < 1 || r.Region.Offset < 0 || r.Region.Offset+r.Region.Length > r.MinLength {
				bad("region code at offset %d length %d must lie inside the shortest PAN (%d digits)", r.Region.Offset, r.Region.Length, r.MinLength)
			}
			if len(r.Regions) == 0 {
				bad("region split has no regions")
			}
			for _, code := range sortedKeys(r.Regions) {
				if len(code) != r.Region.Length || !digits(code) {
					bad("region code %q must be %d digits", code, r.Region.Length)
				}
				if dest := r.Regions[code]; destinations != nil && !destinations[dest] {
					bad("region %s routes to unknown destination %q", code, dest)
				}
			}
		default:
			if destinations != nil && !destinations[r.Destination] {
				bad("routes to unknown destination %q", r.Destination)
			}
		}
		t.rules = append(t.rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.SliceStable(t.rules, func(i, j int) bool { return len(t.rules[i].BIN) > len(t.rules[j].BIN) })
	return t, nil
}

// Route decides where a PAN goes. It reads no clock, touches no socket and
// does not allocate.
func (t *Table) Route(pan []byte) Decision {
	for i := range t.rules {
		r := &t.rules[i]
		if len(pan) < len(r.BIN) || string(pan[:len(r.BIN)]) != r.BIN {
			continue
		}
		d := Decision{Rule: r.Name}
		if len(pan) < r.MinLength || len(pan) > r.MaxLength || !digitsBytes(pan) || r.Luhn && !Luhn(pan) {
			d.Decline = InvalidCard
			return d
		}
		if r.Region == nil {
			d.Destination = r.Destination
			return d
		}
		code := pan[r.Region.Offset : r.Region.Offset+r.Region.Length]
		dest, ok := r.Regions[string(code)] // string(code) in a map index does not allocate
		if !ok {
			d.Decline = InvalidCard
			return d
		}
		d.Destination = dest
		return d
	}
	return Decision{Decline: NoSuchIssuer}
}

// Rules returns a copy of the table's rules, most specific BIN first.
func (t *Table) Rules() []Rule { return slices.Clone(t.rules) }

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

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
