package allinone

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/routing"
)

// DemoAccount is a card the demo deployment opens, with its opening
// balance in fen (CNY, currency 156).
type DemoAccount struct {
	PAN     string
	Name    string
	Opening int64
}

// DemoCurrency is the demo accounts' currency: CNY.
const DemoCurrency = 156

// DemoAccounts are the demo cards. Their PANs are Luhn-valid, in the demo
// BIN 629990; digits 7–8 are the region code that routes them (11 Beijing,
// 31 Shanghai).
func DemoAccounts() []DemoAccount {
	return []DemoAccount{
		{PAN: "6299901100000013", Name: "demo beijing 1", Opening: 20_000_000}, // 200 000.00 CNY
		{PAN: "6299901100000021", Name: "demo beijing 2", Opening: 50_000},     // 500.00 CNY
		{PAN: "6299903100000019", Name: "demo shanghai 1", Opening: 5_000_000}, // 50 000.00 CNY
		{PAN: "6299903100000027", Name: "demo shanghai 2", Opening: 1_000},     // 10.00 CNY
	}
}

// DemoNumberedAccount is a demo account found by number rather than by
// card: a biller that bill payments (50) credit, or a fixed-line telephone
// account the hotline serves (balance, top-up, transfer by number).
type DemoNumberedAccount struct {
	Number  string
	Name    string
	Region  string
	Type    ledger.AccountType
	Opening int64
}

// DemoNumbered are the demo billers and telephone accounts, one of each
// per region. The hotline's rule routes a telephone account by its area
// code (010 Beijing, 021 Shanghai).
func DemoNumbered() []DemoNumberedAccount {
	return []DemoNumberedAccount{
		{Number: "BJ-WATER", Name: "beijing water", Region: "beijing", Type: ledger.Merchant},
		{Number: "SH-POWER", Name: "shanghai power", Region: "shanghai", Type: ledger.Merchant},
		{Number: "01062345678", Name: "beijing telephone", Region: "beijing", Type: ledger.Debit, Opening: 100_000},
		{Number: "02161234567", Name: "shanghai telephone", Region: "shanghai", Type: ledger.Debit, Opening: 100_000},
	}
}

// DemoBiller is the demo biller of the region a demo card routes to, by
// the card's region code.
func DemoBiller(pan string) string {
	if len(pan) > 8 && pan[6:8] == "31" {
		return "SH-POWER"
	}
	return "BJ-WATER"
}

// DemoPhoneAccount is the demo telephone account of the region a demo card
// routes to: where the card's transfers (40) can go.
func DemoPhoneAccount(pan string) string {
	if len(pan) > 8 && pan[6:8] == "31" {
		return "02161234567"
	}
	return "01062345678"
}

// seedDemo opens the demo cards that route to the shards given and books
// their opening deposits. A card that routes to a region of regions whose
// shard is not given (it runs in another process, which seeds it) is left
// alone; one that routes anywhere else is an error. It is idempotent: an
// existing card is kept, and each opening deposit carries a fixed
// transaction id, so a restart replays it instead of booking it again.
func seedDemo(ctx context.Context, routes *routing.Table, shards map[string]*ledger.Shard, regions []Region) error {
	for _, a := range DemoAccounts() {
		d := routes.Route([]byte(a.PAN))
		s := shards[d.Destination]
		if s == nil {
			if slices.ContainsFunc(regions, func(r Region) bool { return r.Name == d.Destination }) {
				continue
			}
			return fmt.Errorf("demo: card %s routes to %q, which is not a region (rule %q, decline %q)",
				codec.MaskPAN([]byte(a.PAN)), d.Destination, d.Rule, d.Decline)
		}
		_, err := s.OpenAccount(ctx, ledger.AccountSpec{
			Type: ledger.Card, Currency: DemoCurrency, Name: a.Name, PAN: a.PAN, NoOverdraft: true,
		})
		if err != nil && !errors.Is(err, ledger.ErrPANBound) {
			return fmt.Errorf("demo: open %s: %w", codec.MaskPAN([]byte(a.PAN)), err)
		}
		res, err := s.Do(ctx, &ledger.Request{
			Op: ledger.OpDeposit, ID: openingDepositID(a.PAN),
			PAN: a.PAN, Amount: a.Opening, Currency: DemoCurrency,
		})
		if err != nil {
			return fmt.Errorf("demo: opening deposit %s: %w", codec.MaskPAN([]byte(a.PAN)), err)
		}
		if res.Code != ledger.Approved {
			return fmt.Errorf("demo: opening deposit %s declined %s", codec.MaskPAN([]byte(a.PAN)), res.Code)
		}
	}
	for _, a := range DemoNumbered() {
		s := shards[a.Region]
		if s == nil {
			continue // not here: another process seeds it, or the region is not configured
		}
		_, err := s.OpenAccount(ctx, ledger.AccountSpec{Type: a.Type, Currency: DemoCurrency, Name: a.Name, Number: a.Number})
		if err != nil && !errors.Is(err, ledger.ErrNumberBound) {
			return fmt.Errorf("demo: open %s: %w", a.Number, err)
		}
		if a.Opening == 0 {
			continue
		}
		res, err := s.Do(ctx, &ledger.Request{
			Op: ledger.OpDeposit, ID: ledger.NewTxID([]byte("demo-opening-deposit"), []byte(a.Number)),
			From: a.Number, Amount: a.Opening, Currency: DemoCurrency,
		})
		if err != nil {
			return fmt.Errorf("demo: opening deposit %s: %w", a.Number, err)
		}
		if res.Code != ledger.Approved {
			return fmt.Errorf("demo: opening deposit %s declined %s", a.Number, res.Code)
		}
	}
	return nil
}

// Summary writes, in a few lines, where everything is and a first command
// to try.
func (n *Node) Summary(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "junction up: ISO 8583 switch with %d regional ledger shards in process\n", len(n.shards))
	for _, r := range n.remotes {
		fmt.Fprintf(&b, "  region %s: shard in its own process over links to %s\n", r.name, strings.Join(r.endpoints(), ", "))
	}
	names := make([]string, 0, len(n.addrs))
	for name := range n.addrs {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return n.addrs[names[i]].String() < n.addrs[names[j]].String() })
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s %s", name, n.addrs[name])
		for _, ch := range n.cfg.Channels {
			if ch.Name == name && ch.Plaintext != nil {
				parts[i] += fmt.Sprintf(" (PLAINTEXT, %s engine)", cmp.Or(ch.Plaintext.Engine, "std"))
			}
		}
	}
	fmt.Fprintf(&b, "  channels (mutual TLS): %s\n", strings.Join(parts, ", "))
	if n.httpAddr != nil {
		fmt.Fprintf(&b, "  http: http://%s/metrics  /healthz  /readyz\n", n.httpAddr)
	}
	fmt.Fprintf(&b, "  pki: %s (dev CA, server and client certificates)   data: %s\n", n.cfg.PKIDir, n.cfg.DataDir)
	if n.cfg.Demo {
		demo := DemoAccounts()[0]
		fmt.Fprintf(&b, "  demo cards: %d seeded, e.g. %s with %s\n", len(DemoAccounts()), demo.PAN, ledger.FormatAmount(demo.Opening, DemoCurrency))
		fmt.Fprintf(&b, "  try: ./bin/junction send --channel pos --pan %s --amount 12.34 --type purchase\n", demo.PAN)
	}
	b.WriteString("  Ctrl-C drains and stops.\n")
	io.WriteString(w, b.String())
}
