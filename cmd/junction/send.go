package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/pki"
)

func send(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("junction send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		config   = fs.String("c", "", "configuration file of the target (for channel addresses and the PKI directory)")
		channel  = fs.String("channel", "pos", "channel to send on; its client certificate is used")
		pan      = fs.String("pan", "", "card number (required)")
		amount   = fs.String("amount", "", "amount in major units, e.g. 12.34 (required for a purchase)")
		typ      = fs.String("type", "purchase", "transaction type: purchase or balance")
		currency = fs.Uint("currency", allinone.DemoCurrency, "ISO 4217 numeric currency code")
		addr     = fs.String("addr", "", "host:port to connect to (default: the channel's address in the configuration)")
		pkiDir   = fs.String("pki", "", "PKI directory with ca.crt and clients/<channel>.crt (default: the configuration's)")
		stan     = fs.Uint("stan", 0, "system trace audit number, 1–999999 (default: random)")
		terminal = fs.String("terminal", "", "terminal id, 8 characters (default: channel name + digits, e.g. POS00001)")
		merchant = fs.String("merchant", "JUNCTION DEMO", "card acceptor id, up to 15 characters")
		at       = fs.String("time", "", "transmission time, RFC 3339 (default: now); reuse it with --stan to retransmit")
		timeout  = fs.Duration("timeout", 10*time.Second, "how long to wait for the answer")
		server   = fs.String("server-name", "localhost", "name the server certificate must carry")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: junction send --pan PAN [--amount 12.34] [--type purchase|balance] [--channel pos] [flags]

Connects to a channel with that channel's client certificate (mutual TLS; none
for a channel the configuration declares plaintext), sends
one ISO 8583 0200 request and prints request and response as masked dumps (PAN as
first 6 / last 4), then a one-line outcome. Sending the same --stan, --terminal and
--time again is a retransmission: the switch answers it with the first outcome and
books nothing twice. Exit status 0 when an answer arrived (approved or declined),
1 when none did.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}

	cfg, err := allinone.LoadConfig(*config)
	if err != nil {
		return fail(stderr, err)
	}
	plaintext := false
	for _, ch := range cfg.Channels {
		if ch.Name == *channel {
			plaintext = ch.Plaintext != nil
			if *addr == "" {
				*addr = ch.Listen
			}
		}
	}
	if *addr == "" {
		return fail(stderr, fmt.Errorf("channel %q is not in the configuration; give --addr", *channel))
	}
	if *pkiDir == "" {
		*pkiDir = cfg.PKIDir
	}

	txn := front.Txn{
		PAN: *pan, Currency: uint16(*currency), Merchant: *merchant, Terminal: *terminal,
		STAN: uint32(*stan), Time: time.Now(),
	}
	switch *typ {
	case "purchase":
		txn.Type = codec.TxPurchase
		if *amount == "" {
			return fail(stderr, errors.New("--amount is required for a purchase"))
		}
		var err error
		if txn.Amount, err = ledger.ParseAmount(*amount, txn.Currency); err != nil {
			return fail(stderr, err)
		}
	case "balance":
		txn.Type = codec.TxBalance
	default:
		return fail(stderr, fmt.Errorf("--type %q: want purchase or balance", *typ))
	}
	if txn.PAN == "" {
		return fail(stderr, errors.New("--pan is required"))
	}
	if txn.Terminal == "" {
		txn.Terminal = fmt.Sprintf("%.3s%05d", strings.ToUpper(*channel)+"XXX", 1)
	}
	if txn.STAN == 0 {
		var b [4]byte
		rand.Read(b[:])
		txn.STAN = binary.BigEndian.Uint32(b[:])%999999 + 1
	}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return fail(stderr, fmt.Errorf("--time: %w", err))
		}
		txn.Time = t
	}

	dialects, err := cfg.DialectSet()
	if err != nil {
		return fail(stderr, err)
	}
	wires, err := cfg.Wires(dialects)
	if err != nil {
		return fail(stderr, err)
	}
	wire, ok := wires[*channel]
	if !ok {
		// A channel that is not configured: --addr names it; speak the default.
		wire = allinone.Wire{Dialect: dialects[allinone.SwitchDialect]}
	}
	d := wire.Dialect
	req, resp := codec.NewMessage(d), codec.NewMessage(d)
	// The request is built in 1987 terms; a channel of another layout (1993)
	// gets it through the map into its dialect, and its answer back.
	built := req
	if wire.Outbound != nil {
		built = codec.NewMessage(wire.Outbound.From())
	}
	if err := txn.Build(built.Dialect(), built); err != nil {
		return fail(stderr, err)
	}
	var saved codec.Saved
	if wire.Outbound != nil {
		if err := wire.Outbound.Request(req, built, &codec.Context{Now: txn.Time}, &saved); err != nil {
			return fail(stderr, err)
		}
	}
	var tlsCfg *tls.Config // nil: a plaintext channel
	if !plaintext {
		cert, key := pki.ClientFiles(*pkiDir, *channel)
		tlsCfg, err = front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(*pkiDir)}, *server)
		if err != nil {
			return fail(stderr, fmt.Errorf("%w (has 'junction up' created %s?)", err, *pkiDir))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := front.Dial(ctx, *addr, tlsCfg, front.ClientOptions{Dialect: d, Framing: wire.Framing, Header: wire.Header})
	if err != nil {
		return fail(stderr, err)
	}
	defer c.Close()

	fmt.Fprintf(stdout, "→ %s on %s (%s, %s, %s, %s framing)\n", *typ, *addr, tlsVersion(c.ConnectionState()), *channel, d.Name(), wire.Framing.Length)
	codec.Describe(stdout, req)
	start := time.Now()
	if err := c.Exchange(ctx, req, resp); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "← answer in %s\n", time.Since(start).Round(100*time.Microsecond))
	codec.Describe(stdout, resp)
	answer := resp
	if wire.Outbound != nil {
		answer = codec.NewMessage(wire.Outbound.From())
		if err := wire.Outbound.Response(answer, resp, &saved); err != nil {
			return fail(stderr, err)
		}
	}
	fmt.Fprintln(stdout, outcome(answer))
	fmt.Fprintf(stdout, "retransmit with: --stan %d --terminal %s --time %s\n", txn.STAN, txn.Terminal, txn.Time.UTC().Format(time.RFC3339))
	return 0
}

// outcome is the one-line reading of a response for people.
func outcome(resp *codec.Message) string {
	rc := string(resp.Get(39))
	s := fmt.Sprintf("%s (%s)", codec.ResponseText(rc), rc)
	if auth := resp.Get(38); len(auth) > 0 {
		s += ", auth code " + string(auth)
	}
	amounts, err := codec.ParseAdditionalAmounts(resp.Get(54))
	if err != nil {
		return s + ", field 54 unreadable"
	}
	for _, a := range amounts {
		switch a.AmountType {
		case codec.AmountLedger:
			s += ", ledger balance " + ledger.FormatAmount(a.Amount, a.Currency)
		case codec.AmountAvailable:
			s += ", available " + ledger.FormatAmount(a.Amount, a.Currency)
		}
	}
	return s
}

func tlsVersion(cs tls.ConnectionState) string {
	if !cs.HandshakeComplete {
		return "plaintext"
	}
	return tls.VersionName(cs.Version)
}
