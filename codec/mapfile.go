package codec

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"os"
	"sort"

	"gopkg.in/yaml.v3"
)

// A map file is YAML:
//
//	name: iso93-to-iso87
//	from: iso93ascii            # dialect names
//	to: iso87ascii
//	copy_or_drop: true          # fields defined differently and given no rule are dropped
//	mti: {"1804": "0800"}       # request MTIs; others keep their digits, To's version
//	request:                    # rules for fields of the To message
//	  12: {from: 12, slice: [6, 12]}
//	  43: {fit: right}
//	  70: {from: 24, map: network, unmapped: drop}
//	  64: drop
//	response:                   # rules for fields of the From message
//	  12: restore
//	  39: {map: action-codes, otherwise: "909"}
//	tables:
//	  action-codes: {"00": "000", "8/00": "800"}
//
// A rule is a word (drop, restore, copy), a mapping of Rule's settings
// (from, mti, slice, const, derive, restore, map, otherwise, unmapped,
// fit), or a list of such mappings: alternatives, the first that yields a
// value wins.

type mapFile struct {
	Name       string                       `yaml:"name"`
	From       string                       `yaml:"from"`
	To         string                       `yaml:"to"`
	CopyOrDrop bool                         `yaml:"copy_or_drop"`
	MTI        map[string]string            `yaml:"mti"`
	Request    map[int]ruleList             `yaml:"request"`
	Response   map[int]ruleList             `yaml:"response"`
	Tables     map[string]map[string]string `yaml:"tables"`
}

type ruleList []Rule

type ruleYAML struct {
	Drop      bool   `yaml:"drop"`
	From      int    `yaml:"from"`
	MTI       bool   `yaml:"mti"`
	Slice     []int  `yaml:"slice"`
	Const     string `yaml:"const"`
	Derive    string `yaml:"derive"`
	Restore   bool   `yaml:"restore"`
	Map       string `yaml:"map"`
	Otherwise string `yaml:"otherwise"`
	Unmapped  string `yaml:"unmapped"`
	Fit       string `yaml:"fit"`
}

func (l *ruleList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode, yaml.MappingNode:
		r, err := decodeRule(n)
		*l = ruleList{r}
		return err
	case yaml.SequenceNode:
		for _, item := range n.Content {
			r, err := decodeRule(item)
			if err != nil {
				return err
			}
			*l = append(*l, r)
		}
		return nil
	}
	return fmt.Errorf("line %d: a rule is a word, a mapping or a list", n.Line)
}

func decodeRule(n *yaml.Node) (Rule, error) {
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "drop":
			return Rule{Drop: true}, nil
		case "restore":
			return Rule{Restore: true}, nil
		case "copy":
			return Rule{}, nil
		}
		return Rule{}, fmt.Errorf("line %d: rule %q: want drop, restore, copy or a mapping", n.Line, n.Value)
	}
	if n.Kind != yaml.MappingNode {
		return Rule{}, fmt.Errorf("line %d: a rule is a word, a mapping or a list of them", n.Line)
	}
	// Decode strictly: a misspelt setting is an error, not a silent copy.
	var raw bytes.Buffer
	enc := yaml.NewEncoder(&raw)
	if err := enc.Encode(n); err != nil {
		return Rule{}, err
	}
	dec := yaml.NewDecoder(&raw)
	dec.KnownFields(true)
	var y ruleYAML
	if err := dec.Decode(&y); err != nil {
		return Rule{}, fmt.Errorf("line %d: %w", n.Line, err)
	}
	r := Rule{Drop: y.Drop, From: y.From, FromMTI: y.MTI, Const: y.Const, Derive: y.Derive, Restore: y.Restore,
		Map: y.Map, Otherwise: y.Otherwise, Unmapped: y.Unmapped, Fit: y.Fit}
	switch len(y.Slice) {
	case 0:
	case 2:
		r.Slice = [2]int{y.Slice[0], y.Slice[1]}
	default:
		return Rule{}, fmt.Errorf("line %d: slice is [start, end]", n.Line)
	}
	return r, nil
}

// LoadMap builds a map from a YAML map file, looking its dialects up in
// dialects. Every problem is reported, naming the field.
func LoadMap(raw []byte, dialects map[string]*Dialect) (*Map, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var f mapFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("codec: map: %w", err)
	}
	var errs []error
	from, ok := dialects[f.From]
	if !ok {
		errs = append(errs, fmt.Errorf("codec: map %q: from: no dialect %q", f.Name, f.From))
	}
	to, ok := dialects[f.To]
	if !ok {
		errs = append(errs, fmt.Errorf("codec: map %q: to: no dialect %q", f.Name, f.To))
	}
	if f.Name == "" {
		errs = append(errs, errors.New("codec: map: no name"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	spec := MapSpec{Name: f.Name, MTI: f.MTI, CopyOrDrop: f.CopyOrDrop, Tables: f.Tables,
		Request: map[int][]Rule{}, Response: map[int][]Rule{}}
	for id, l := range f.Request {
		spec.Request[id] = l
	}
	for id, l := range f.Response {
		spec.Response[id] = l
	}
	return NewMap(spec, from, to)
}

// LoadMapFile reads path and calls LoadMap; errors name the file.
func LoadMapFile(path string, dialects map[string]*Dialect) (*Map, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("codec: map: %w", err)
	}
	m, err := LoadMap(raw, dialects)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

//go:embed maps/*.yaml
var builtinMapFiles embed.FS

// BuiltinMaps are the maps that ship with Junction, between the built-in
// dialects: ISO 8583:1993 to and from 1987, for a 1993 channel into the
// switch and for the switch out to a 1993 host. They are built on the
// dialects of the given set (the built-in ones when nil), so that converted
// messages carry the caller's dialect instances.
func BuiltinMaps(dialects map[string]*Dialect) ([]*Map, error) {
	if dialects == nil {
		dialects = map[string]*Dialect{}
		for _, n := range BuiltinNames() {
			dialects[n], _ = Builtin(n)
		}
	}
	entries, err := builtinMapFiles.ReadDir("maps")
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var maps []*Map
	for _, e := range entries {
		raw, err := builtinMapFiles.ReadFile("maps/" + e.Name())
		if err != nil {
			return nil, err
		}
		m, err := LoadMap(raw, dialects)
		if err != nil {
			return nil, fmt.Errorf("built-in map %s: %w", e.Name(), err)
		}
		maps = append(maps, m)
	}
	return maps, nil
}
