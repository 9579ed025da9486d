package recon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/junction-switch/junction/ledger"
	"github.com/shopspring/decimal"
)

// Response codes of batch-debit lines that the ledger did not answer.
const (
	FormatError   ledger.Code = "30" // the line is malformed: it was not run
	DuplicateLine ledger.Code = "94" // the line repeats an earlier line's sequence number: it was not run
)

// maxText is the width of the response text; longer texts are cut.
const maxText = 40

// batchLine is a request line checked and ready to run, or the reason it cannot.
type batchLine struct {
	BatchLine
	amount int64       // minor units
	code   ledger.Code // FormatError or DuplicateLine when the line is not run
	text   string
}

// BatchDebit ingests the batch-debit request (DKKK) at path: each well-formed line is booked as a
// bill payment from the customer's account to the biller the header names, and the response file
// (REDKKK, same name otherwise, same encoding) is written to the output directory with a result
// per line. A malformed line is answered 30 with its line number and does not stop the rest; a
// problem with the file as a whole (name, encoding, header, trailer, truncation) refuses it before
// anything runs. The same file again returns the stored report (Replayed) and runs nothing.
func BatchDebit(ctx context.Context, path string, c Config) (Report, error) {
	if err := c.check(false); err != nil {
		return Report{}, err
	}
	log := c.logger().With("component", "recon", "file", filepath.Base(path))
	in, replay, err := open(path, IfaceBatchDebit, &c)
	if replay != nil {
		log.Info("batch-debit file already ingested: stored report", "lines", len(replay.Lines))
		return *replay, nil
	}
	if err != nil {
		log.Warn("batch-debit file refused", "err", err)
		return Report{}, err
	}
	biller, cur := in.raw.header[6], mustCurrency(in.raw.header[7])
	lines, err := decodeBatch(in.raw, cur)
	if err != nil {
		log.Warn("batch-debit file refused", "err", err)
		return Report{}, err
	}
	rep := Report{File: in.name.String(), SHA256: in.sum, Encoding: in.raw.enc.String(), Date: in.name.Date,
		Acquirer: c.Partners[in.name.Org], Records: len(lines)}
	incomplete := 0
	for i := range lines {
		l := run(ctx, &lines[i], in.name.String(), biller, cur, rep.Acquirer, &c)
		if l.Error != "" {
			incomplete++
		}
		rep.Lines = append(rep.Lines, l)
		if l.Class != "" {
			rep.add(l.Class, cur, lines[i].amount)
		}
	}
	if incomplete > 0 {
		log.Warn("batch debit incomplete", "failed", incomplete, "lines", len(lines))
		return rep, fmt.Errorf("%w: %d of %d lines of %s have no outcome; ingest it again", ErrIncomplete, incomplete, len(lines), rep.File)
	}
	resp := in.name.WithIface(IfaceBatchResponse)
	var buf bytes.Buffer
	if err := writeResponse(&buf, in.raw.enc, resp, biller, cur, rep.Lines); err != nil {
		return rep, err
	}
	out := filepath.Join(c.Output, resp.String())
	if err := writeAtomic(out, buf.Bytes()); err != nil {
		return rep, err
	}
	rep.Output = out
	if err := (registry{c.Registry}).store(&rep); err != nil {
		return rep, err
	}
	log.Info("batch debit done", "lines", len(lines), "booked", rep.Count(Booked), "declined", rep.Count(Declined),
		"malformed", rep.Count(Malformed), "response", out)
	return rep, nil
}

func mustCurrency(s string) uint16 {
	c, ok := currency(s)
	if !ok {
		panic("recon: header currency not checked")
	}
	return c
}

// decodeBatch checks every line of a batch-debit request. A bad line is marked, not refused; only
// a control sum that does not add up refuses the file. The control sum covers the amounts of the
// lines whose fields could be read and whose amount is a decimal.
func decodeBatch(f *rawFile, cur uint16) ([]batchLine, error) {
	lines := make([]batchLine, 0, len(f.details))
	sum := decimal.Zero
	seen := make(map[string]int)
	for _, raw := range f.details {
		l := batchLine{BatchLine: BatchLine{Line: raw.line}}
		bad := func(format string, a ...any) {
			if l.code == "" {
				l.code, l.text = FormatError, fmt.Sprintf("line %d: ", raw.line)+fmt.Sprintf(format, a...)
			}
		}
		if raw.err != nil {
			bad("%v", raw.err)
			lines = append(lines, l)
			continue
		}
		v := raw.fields
		l.Seq, l.Account, l.Amount, l.Reference = v[dkSeq], v[dkAccount], v[dkAmount], v[dkReference]
		if d, err := parseDecimal(l.Amount); err == nil {
			sum = sum.Add(d)
		}
		switch {
		case l.Seq == "":
			bad("sequence number missing")
		case len(l.Seq) > 8 || !allDigits(l.Seq):
			bad("sequence number is not 1-8 digits")
		}
		switch {
		case l.Account == "":
			bad("account missing")
		case !validRef(l.Account):
			bad("account is not a card, account or phone number")
		}
		if l.Amount == "" {
			bad("amount missing")
		} else if a, err := ledger.ParseAmount(l.Amount, cur); err != nil || !plainDecimal(l.Amount) {
			bad("bad amount %q", Mask(l.Amount))
		} else if a == 0 {
			bad("amount is zero")
		} else {
			l.amount = a
		}
		if l.Reference == "" {
			bad("customer reference missing")
		}
		if l.code == "" {
			n, _ := strconv.Atoi(l.Seq)
			k := strconv.Itoa(n)
			if first, dup := seen[k]; dup {
				l.code, l.text = DuplicateLine, fmt.Sprintf("line %d: sequence number of line %d", raw.line, first)
			} else {
				seen[k] = raw.line
			}
		}
		lines = append(lines, l)
	}
	if !sum.Equal(f.sum) {
		return nil, &LineError{File: f.name.String(), Line: f.trailerN,
			Reason: fmt.Sprintf("trailer control sum %s is not the sum of the amounts, %s", f.sum, sum)}
	}
	return lines, nil
}

// run books one line as a bill payment and returns its outcome.
func run(ctx context.Context, l *batchLine, file, biller string, cur uint16, acq string, c *Config) Line {
	out := Line{Line: l.Line, Seq: l.Seq, Account: Mask(l.Account), Amount: l.Amount, Code: l.code, Text: l.text}
	if !validRef(l.Account) {
		out.Account = ""
	}
	if !plainDecimal(l.Amount) {
		out.Amount = ""
	}
	if l.code != "" {
		out.Class = Malformed
		return out
	}
	region, err := c.Books.Locate(l.Account)
	if errors.Is(err, ledger.ErrNotFound) {
		out.Code, out.Text, out.Class = ledger.UnknownCard, codeText(ledger.UnknownCard), Declined
		return out
	}
	if err != nil {
		out.Error = err.Error()
		return out
	}
	r := &ledger.Request{Op: ledger.OpPayment, ID: ledger.NewTxID([]byte("batch"), []byte(file), []byte(l.Seq)),
		Amount: l.amount, Currency: cur, To: biller, Acquirer: acq}
	if isPAN(l.Account) {
		r.PAN = l.Account
	} else {
		r.From = l.Account
	}
	res, err := c.Books.Do(ctx, region, r)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Code, out.Text, out.Class = res.Code, codeText(res.Code), Declined
	if res.Code == ledger.Approved {
		out.Class = Booked
	}
	return out
}

// codeText is the response text of a ledger answer.
func codeText(c ledger.Code) string {
	switch c {
	case ledger.Approved:
		return "approved"
	case ledger.InvalidTransaction:
		return "invalid transaction"
	case ledger.InvalidAmount:
		return "invalid amount or currency"
	case ledger.UnknownCard:
		return "unknown account or biller"
	case ledger.InsufficientFunds:
		return "insufficient funds"
	case ledger.NotPermitted:
		return "not permitted for this account"
	case ledger.ExceedsAmount:
		return "exceeds daily amount limit"
	case ledger.RestrictedCard:
		return "account blocked"
	case ledger.ExceedsCount:
		return "exceeds daily count limit"
	case ledger.DuplicateDifferent:
		return "duplicate with different content"
	}
	return "declined"
}

// writeResponse writes the response file: the request's header under the response's name, one
// detail per request line, and a trailer over the amounts written.
func writeResponse(buf *bytes.Buffer, enc Encoding, n Name, biller string, cur uint16, lines []Line) error {
	lay := layouts[IfaceBatchResponse]
	e, err := newEncoder(buf, enc)
	if err != nil {
		return err
	}
	if err := e.write(lay.header, headerValues(n, biller, fmt.Sprintf("%03d", cur))); err != nil {
		return err
	}
	sum := decimal.Zero
	for _, l := range lines {
		amount := l.Amount
		if d, err := parseDecimal(amount); err == nil && len(amount) <= 16 {
			sum = sum.Add(d)
		} else {
			amount = ""
		}
		seq := l.Seq
		if len(seq) > 8 || !allDigits(seq) {
			seq = ""
		}
		text := l.Text
		if badText(text) {
			text = strconv.QuoteToASCII(text)
		}
		if len(text) > maxText {
			text = text[:maxText]
		}
		if err := e.write(lay.detail, []string{recDetail, seq, l.Account, amount, string(l.Code), text}); err != nil {
			return err
		}
	}
	if err := e.write(lay.trailer, trailerValues(len(lines), sum, exponent(cur))); err != nil {
		return err
	}
	return e.flush()
}
