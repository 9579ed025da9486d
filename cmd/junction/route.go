package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/routing"
)

const routeUsage = `usage: junction route <explain|check> [flags]

  explain  route one request as the switch would and say, rule by rule, why
           each rule did or did not decide
  check    validate a routing rules file (every problem, with its line)
`

func routeCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, routeUsage)
		return 2
	}
	switch args[0] {
	case "explain":
		return routeExplain(args[1:], stdout, stderr)
	case "check":
		return routeCheck(args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, routeUsage)
	return 2
}

func routeExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("junction route explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		config   = fs.String("c", "", "configuration file whose rules (routes or routes_file) to use; default: the built-in demo rules")
		rules    = fs.String("rules", "", "a routing rules file to use instead of the configuration's")
		channel  = fs.String("channel", "", "channel the request comes in on, e.g. pos")
		identity = fs.String("identity", "", "client identity (certificate name) on that channel")
		mti      = fs.String("mti", "0200", "message type")
		pcode    = fs.String("pcode", "000000", "processing code (field 3)")
		pan      = fs.String("pan", "", "card number (field 2)")
		account  = fs.String("account", "", "account id (field 102), e.g. a telephone number")
		amount   = fs.String("amount", "", "amount in major units, e.g. 12.34 (field 4)")
		currency = fs.Uint("currency", allinone.DemoCurrency, "ISO 4217 numeric currency (field 49)")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: junction route explain [-c FILE | --rules FILE] --channel C [--pan P] [--pcode 000000] [--amount 12.34] [flags]

Routes one request through the rules as the switch would, prints the decision,
then every rule in file order: * marks the one that decided, the others say the
first reason they did not. The PAN is printed masked.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(*mti) != 4 || *currency > 999 {
		return fail(stderr, fmt.Errorf("--mti %q must be 4 digits, --currency at most 999", *mti))
	}
	table, err := loadRules(*config, *rules)
	if err != nil {
		return fail(stderr, err)
	}
	in := routing.Input{
		Channel: *channel, Identity: *identity, PCode: []byte(*pcode),
		PAN: []byte(*pan), Account: []byte(*account), Currency: uint16(*currency),
	}
	copy(in.MTI[:], *mti)
	if *amount != "" {
		if in.Amount, err = ledger.ParseAmount(*amount, in.Currency); err != nil {
			return fail(stderr, err)
		}
		in.HasAmount = true
	}
	d, verdicts := table.Explain(&in)
	fmt.Fprintf(stdout, "request: channel %q identity %q MTI %s pcode %s PAN %s account %q", *channel, *identity, *mti, *pcode, codec.MaskPAN(in.PAN), *account)
	if in.HasAmount {
		fmt.Fprintf(stdout, " amount %s", ledger.FormatAmount(in.Amount, in.Currency))
	}
	fmt.Fprintln(stdout)
	switch {
	case d.Index < 0:
		fmt.Fprintf(stdout, "decision: no rule matches: declined %s\n", d.Decline)
	case d.Decline != "":
		fmt.Fprintf(stdout, "decision: rule %s: declined %s\n", d.Rule, d.Decline)
	default:
		fmt.Fprintf(stdout, "decision: rule %s: → %s", d.Rule, d.Destination)
		if len(d.Alternates) > 0 {
			fmt.Fprintf(stdout, ", then %v", d.Alternates)
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintln(stdout, "rules, in file order:")
	for _, v := range verdicts {
		mark := " "
		if v.Decided {
			mark = "*"
		}
		where := ""
		if v.Line > 0 {
			where = fmt.Sprintf(" (line %d)", v.Line)
		}
		fmt.Fprintf(stdout, "%s %s%s: %s\n", mark, v.Rule, where, v.Why)
	}
	return 0
}

func routeCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("junction route check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("c", "", "configuration file, for the destinations the rules may name (its regions)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: junction route check [-c FILE] RULES_FILE\n\nValidates a routing rules file as a reload would; exit status 0 when it is good.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	table, err := loadRules(*config, fs.Arg(0))
	if err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s: %d rules, ok\n", fs.Arg(0), len(table.Rules()))
	return 0
}

// loadRules reads the rules of a configuration (the built-in one when
// config is empty), or of rulesFile checked against the configuration's
// destinations.
func loadRules(config, rulesFile string) (*routing.Table, error) {
	cfg, err := allinone.LoadConfig(config)
	if err != nil {
		return nil, err
	}
	if rulesFile != "" {
		return routing.LoadFile(rulesFile, cfg.Destinations())
	}
	return cfg.RoutingTable()
}
