package allinone

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/junction-switch/junction/front"
)

// Identity maps client certificates to who a connection speaks for: the
// first rule whose patterns match the certificate wins. Patterns are exact
// or end in '*' (a prefix); an empty pattern matches anything; a rule needs
// at least one.
type Identity struct {
	CN          string `yaml:"cn"`
	OU          string `yaml:"ou"`
	SAN         string `yaml:"san"`         // a DNS name, URI or e-mail address of the certificate
	Institution string `yaml:"institution"` // acquiring institution id (field 32); default: the channel's
	Group       string `yaml:"group"`       // terminal group
}

// TLSConfig names a channel's own certificate files, instead of the dev
// PKI's.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"` // the CA client certificates must chain to
}

// identityRules are the rules a channel's listener applies: its identities,
// then one rule per allow_cn name; with neither, the channel's own name as
// the certificate's CN.
func (ch Channel) identityRules() []front.IdentityRule {
	var rules []front.IdentityRule
	for _, id := range ch.Identities {
		rules = append(rules, front.IdentityRule{CN: id.CN, OU: id.OU, SAN: id.SAN, Institution: id.Institution, Group: id.Group})
	}
	for _, cn := range ch.AllowCN {
		rules = append(rules, front.IdentityRule{CN: cn})
	}
	if len(rules) == 0 {
		rules = append(rules, front.IdentityRule{CN: ch.Name})
	}
	return rules
}

// validateIdentities checks every channel's identity rules and TLS files.
func (c Config) validateIdentities() []error {
	var errs []error
	for i, ch := range c.Channels {
		for j, id := range ch.Identities {
			key := fmt.Sprintf("channels[%d].identities[%d]", i, j)
			if id.CN == "" && id.OU == "" && id.SAN == "" {
				errs = append(errs, fmt.Errorf("%s: give at least one of cn, ou, san", key))
			}
			for field, p := range map[string]string{"cn": id.CN, "ou": id.OU, "san": id.SAN} {
				if strings.Contains(strings.TrimSuffix(p, "*"), "*") {
					errs = append(errs, fmt.Errorf("%s.%s: %q: '*' only at the end", key, field, p))
				}
			}
			if id.Institution != "" && (len(id.Institution) > 11 || !allDigits(id.Institution)) {
				errs = append(errs, fmt.Errorf("%s.institution: %q must be 1–11 digits (field 32)", key, id.Institution))
			}
		}
		t := ch.TLS
		if (t.Cert != "" || t.Key != "" || t.CA != "") && (t.Cert == "" || t.Key == "" || t.CA == "") {
			errs = append(errs, fmt.Errorf("channels[%d].tls: give cert, key and ca together", i))
		}
		if p := ch.Plaintext; p != nil {
			key := fmt.Sprintf("channels[%d].plaintext", i)
			if p.Identity == "" {
				errs = append(errs, fmt.Errorf("%s.identity: is empty: a plaintext connection has no certificate to name it", key))
			}
			if _, err := front.ParseEngine(cmp.Or(p.Engine, "std")); err != nil {
				errs = append(errs, fmt.Errorf("%s.engine: %q: want std or gnet", key, p.Engine))
			}
			if t.Cert != "" || len(ch.Identities) > 0 || len(ch.AllowCN) > 0 {
				errs = append(errs, fmt.Errorf("%s: a plaintext channel takes no tls, identities or allow_cn", key))
			}
		}
	}
	return errs
}
