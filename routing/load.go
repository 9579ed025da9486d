package routing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// File is a routing rules file: the rules in order, under "rules".
//
//	rules:
//	  - name: demo-cards
//	    bin: "629990"
//	    region: {offset: 6, length: 2}
//	    regions: {"11": beijing, "31": shanghai}
type File struct {
	Rules []Rule `yaml:"rules"`
}

// ParseRules reads a rules file's bytes. Unknown keys are errors, with
// their line; an empty file has no rules.
func ParseRules(raw []byte) ([]Rule, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return f.Rules, nil
}

// LoadFile reads, validates and compiles a rules file: the whole file is
// checked before anything uses it, and every problem is reported with its
// line. destinations is as for NewTable.
func LoadFile(path string, destinations map[string]bool) (*Table, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("routing: %w", err)
	}
	rules, err := ParseRules(raw)
	if err != nil {
		return nil, fmt.Errorf("routing: %s: %w", path, err)
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("routing: %s: no rules: every request would be declined", path)
	}
	t, err := NewTable(rules, destinations)
	if err != nil {
		return nil, fmt.Errorf("%s:\n%w", path, err)
	}
	return t, nil
}
