package recon

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/junction-switch/junction/ledger"

	"github.com/shopspring/decimal"
)

// Version is the record-format version written in every header; files of another version are
// refused.
const Version = "01"

// Encoding is how a file's records are laid out. Both encodings carry the same fields in the same
// order (see the package documentation); the first line tells them apart.
type Encoding uint8

// Encodings.
const (
	CSV        Encoding = iota + 1 // comma-separated, RFC 4180 quoting, one record per line
	FixedWidth                     // fixed columns, one record per line, every record type its own length
)

// String returns "csv" or "fixed".
func (e Encoding) String() string {
	switch e {
	case CSV:
		return "csv"
	case FixedWidth:
		return "fixed"
	}
	return "encoding(" + strconv.Itoa(int(e)) + ")"
}

// Record types: the first field of every record.
const (
	recHeader  = "H"
	recDetail  = "D"
	recTrailer = "T"
)

// maxFile bounds what is read of a file: a partner's day is far below it.
const maxFile = 64 << 20

// field is one column of a record: its name (for errors), its width in the fixed-width
// encoding, and whether it is right-aligned there (numbers and amounts) or left-aligned (text).
type field struct {
	name  string
	width int
	right bool
}

// layout lists the fields of a file kind's three record types, the record type first.
type layout struct {
	header, detail, trailer []field
}

var (
	typeField    = field{"record type", 1, false}
	headerFields = []field{typeField, {"version", 2, false}, {"organisation", 8, false},
		{"interface", 6, false}, {"unit", 10, false}, {"date", 8, false}}
	billerFields  = []field{{"biller", 16, false}, {"currency", 3, true}}
	trailerFields = []field{typeField, {"record count", 10, true}, {"control sum", 20, true}}
)

// Field positions in detail records, shared by both encodings.
const (
	// Reconciliation (DZ).
	dzDate = iota + 1
	dzTime
	dzSTAN
	dzRRN
	dzAccount
	dzAmount
	dzCurrency
	dzDirection
	dzAcquirer
)

const (
	// Batch debit request (DKKK) and response (REDKKK).
	dkSeq = iota + 1
	dkAccount
	dkAmount
	dkReference // DKKK: the customer reference; REDKKK: the response code
	rdText      // REDKKK only
)

var layouts = map[string]layout{
	IfaceRecon: {
		header: headerFields,
		detail: []field{typeField, {"date", 8, false}, {"time", 6, false}, {"STAN", 6, true},
			{"RRN", 12, false}, {"account", 28, false}, {"amount", 16, true}, {"currency", 3, true},
			{"type", 1, false}, {"acquirer", 11, false}},
		trailer: trailerFields,
	},
	IfaceBatchDebit: {
		header: append(append([]field{}, headerFields...), billerFields...),
		detail: []field{typeField, {"sequence", 8, true}, {"account", 28, false}, {"amount", 16, true},
			{"customer reference", 20, false}},
		trailer: trailerFields,
	},
	IfaceBatchResponse: {
		header: append(append([]field{}, headerFields...), billerFields...),
		detail: []field{typeField, {"sequence", 8, true}, {"account", 28, false}, {"amount", 16, true},
			{"response code", 2, false}, {"text", 40, false}},
		trailer: trailerFields,
	},
}

// lineLen returns the length of a fixed-width record of fields.
func lineLen(fs []field) int {
	n := 0
	for _, f := range fs {
		n += f.width
	}
	return n
}

// rawRecord is one line of a file split into fields.
type rawRecord struct {
	line   int // 1-based line number in the file
	fields []string
	err    error // the line could not be split (wrong length, bad CSV, wrong field count)
}

// rawFile is a file split into header, detail and trailer records, before the detail fields mean
// anything.
type rawFile struct {
	name     Name
	enc      Encoding
	header   []string
	details  []rawRecord
	count    int             // the trailer's record count
	sum      decimal.Decimal // the trailer's control sum
	trailerN int             // the trailer's line number
}

// LineError is a problem with one line of a file (or with the file as a whole when Line is 0).
type LineError struct {
	File   string
	Line   int
	Reason string
}

func (e *LineError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("recon: %s: %s", e.File, e.Reason)
	}
	return fmt.Sprintf("recon: %s line %d: %s", e.File, e.Line, e.Reason)
}

// Unwrap lets errors.Is(err, ErrFormat) hold for every LineError.
func (e *LineError) Unwrap() error { return ErrFormat }

// maxErrors bounds how many line errors one refusal lists.
const maxErrors = 20

// errorList collects line errors up to maxErrors.
type errorList struct {
	file    string
	errs    []error
	dropped int
}

func (l *errorList) add(line int, format string, a ...any) {
	if len(l.errs) >= maxErrors {
		l.dropped++
		return
	}
	l.errs = append(l.errs, &LineError{File: l.file, Line: line, Reason: fmt.Sprintf(format, a...)})
}

func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	if l.dropped > 0 {
		l.errs = append(l.errs, &LineError{File: l.file, Reason: fmt.Sprintf("and %d more errors", l.dropped)})
	}
	return errors.Join(l.errs...)
}

// splitFile checks a whole file's encoding, header and trailer and splits its detail lines into
// fields. Any problem with the file as a whole is an error that names the line; problems of a
// single detail line are left in its rawRecord.err for the caller to judge.
func splitFile(n Name, data []byte) (*rawFile, error) {
	errs := errorList{file: n.String()}
	lay, ok := layouts[n.Iface]
	if !ok {
		return nil, &LineError{File: n.String(), Reason: fmt.Sprintf("interface %q is not one this package reads", n.Iface)}
	}
	lines := splitLines(data)
	for i, l := range lines {
		if r, col := badByte(l); r != "" {
			errs.add(i+1, "%s at column %d: files are printable ASCII only", r, col)
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, &LineError{File: n.String(), Reason: "empty file: no header record"}
	}
	f := &rawFile{name: n}
	first := lines[0]
	switch {
	case len(first) >= 2 && first[0] == 'H' && first[1] == ',':
		f.enc = CSV
	case len(first) >= 1 && first[0] == 'H':
		f.enc = FixedWidth
	default:
		return nil, &LineError{File: n.String(), Line: 1, Reason: "the first record is not a header (H)"}
	}
	hdr, err := f.split(lines[0], lay.header)
	if err != nil {
		return nil, &LineError{File: n.String(), Line: 1, Reason: "header: " + err.Error()}
	}
	f.header = hdr
	checkHeader(&errs, f, n, lay)

	last := len(lines) - 1
	tr, err := f.split(lines[last], lay.trailer)
	switch {
	case last == 0 || len(lines[last]) == 0 || lines[last][0] != 'T':
		errs.add(last+1, "the last record is not a trailer (T): the file is truncated")
		tr = nil
	case err != nil:
		errs.add(last+1, "trailer: %v", err)
		tr = nil
	}
	if tr != nil {
		f.trailerN = last + 1
		c, err := strconv.Atoi(tr[1])
		if err != nil || c < 0 || !allDigits(tr[1]) {
			errs.add(last+1, "trailer: record count %q is not a number", tr[1])
		}
		f.count = c
		if f.sum, err = parseDecimal(tr[2]); err != nil {
			errs.add(last+1, "trailer: control sum: %v", err)
		}
	}
	for i := 1; i < last; i++ {
		r := rawRecord{line: i + 1}
		switch l := lines[i]; {
		case len(l) == 0:
			r.err = errors.New("empty line")
		case l[0] == 'H' || l[0] == 'T':
			errs.add(i+1, "a second %c record", l[0])
		case l[0] != 'D':
			r.err = fmt.Errorf("record type %q is not D", l[:1])
		default:
			r.fields, r.err = f.split(l, lay.detail)
		}
		f.details = append(f.details, r)
	}
	if tr != nil && f.count != len(f.details) {
		errs.add(f.trailerN, "trailer counts %d detail records, the file has %d: the file is truncated or padded", f.count, len(f.details))
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// checkHeader checks the header's fields against the file's name and kind.
func checkHeader(errs *errorList, f *rawFile, n Name, lay layout) {
	h := f.header
	if h[1] != Version {
		errs.add(1, "header: format version %q is not %s", h[1], Version)
	}
	for _, c := range []struct{ what, got, want string }{
		{"organisation", h[2], n.Org}, {"interface", h[3], n.Iface}, {"unit", h[4], n.Unit},
	} {
		if c.got != c.want {
			errs.add(1, "header: %s %q is not the file name's %q", c.what, c.got, c.want)
		}
	}
	if d, ok := parseDate(h[5]); !ok {
		errs.add(1, "header: date %q is not a calendar date YYYYMMDD", h[5])
	} else if d != n.Date {
		errs.add(1, "header: date %08d is not the file name's %08d", d, n.Date)
	}
	if len(lay.header) > len(headerFields) {
		if !validBiller(h[6]) {
			errs.add(1, "header: biller %q is not 1–16 of A-Z, a-z, 0-9, -", h[6])
		}
		if _, ok := currency(h[7]); !ok {
			errs.add(1, "header: currency %q is not a numeric ISO 4217 code the platform settles in", h[7])
		}
	}
}

// split splits one line into its fields: by the CSV rules, or by the fixed columns of fs. A
// field count or line length that does not fit fs is an error.
func (f *rawFile) split(line []byte, fs []field) ([]string, error) {
	if f.enc == CSV {
		r := csv.NewReader(bytes.NewReader(line))
		r.FieldsPerRecord = -1
		out, err := r.Read()
		if err != nil {
			return nil, fmt.Errorf("not a CSV record: %v", err)
		}
		if len(out) != len(fs) {
			return nil, fmt.Errorf("%d fields, want %d", len(out), len(fs))
		}
		for i := range out {
			out[i] = strings.TrimSpace(out[i])
		}
		return out, nil
	}
	if want := lineLen(fs); len(line) != want {
		return nil, fmt.Errorf("%d characters, want %d", len(line), want)
	}
	out := make([]string, len(fs))
	at := 0
	for i, fd := range fs {
		v := string(line[at : at+fd.width])
		at += fd.width
		if fd.right {
			v = strings.TrimLeft(v, " ")
		} else {
			v = strings.TrimRight(v, " ")
		}
		out[i] = v
	}
	return out, nil
}

// splitLines splits data at "\n", dropping a "\r" before it and the empty piece after a final
// newline.
func splitLines(data []byte) [][]byte {
	lines := bytes.Split(data, []byte("\n"))
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	for i, l := range lines {
		lines[i] = bytes.TrimSuffix(l, []byte("\r"))
	}
	return lines
}

// badByte describes the first byte of l that is not printable ASCII, and its 1-based column.
func badByte(l []byte) (string, int) {
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c >= 0x20 && c < 0x7f {
			continue
		}
		if c < 0x80 {
			return fmt.Sprintf("control character 0x%02X", c), i + 1
		}
		if r, size := utf8.DecodeRune(l[i:]); r == utf8.RuneError && size <= 1 {
			return fmt.Sprintf("invalid UTF-8 byte 0x%02X", c), i + 1
		}
		return "a non-ASCII character", i + 1
	}
	return "", 0
}

// parseDecimal parses a plain decimal: digits, optionally a point and more digits. Signs,
// exponents and spaces are refused.
func parseDecimal(s string) (decimal.Decimal, error) {
	if !plainDecimal(s) {
		return decimal.Decimal{}, fmt.Errorf("%q is not a decimal amount like 12.34", s)
	}
	return decimal.NewFromString(s)
}

func plainDecimal(s string) bool {
	intPart, frac, dot := strings.Cut(s, ".")
	if intPart == "" || !allDigits(intPart) || len(s) > 20 {
		return false
	}
	return !dot || frac != "" && allDigits(frac)
}

func validBiller(s string) bool { return validBillerLen(s, 16) }

// encoder writes records of one file in one encoding.
type encoder struct {
	enc Encoding
	w   io.Writer
	csv *csv.Writer
	buf []byte
}

func newEncoder(w io.Writer, enc Encoding) (*encoder, error) {
	switch enc {
	case CSV:
		return &encoder{enc: enc, w: w, csv: csv.NewWriter(w)}, nil
	case FixedWidth:
		return &encoder{enc: enc, w: w}, nil
	}
	return nil, fmt.Errorf("recon: unknown encoding %d", enc)
}

// write writes one record of fields fs with values vs (the record type first).
func (e *encoder) write(fs []field, vs []string) error {
	if len(vs) != len(fs) {
		return fmt.Errorf("recon: %d values for %d fields", len(vs), len(fs))
	}
	for i, v := range vs {
		if badText(v) {
			return fmt.Errorf("recon: %s: %q is not printable ASCII", fs[i].name, v)
		}
	}
	if e.enc == CSV {
		return e.csv.Write(vs)
	}
	e.buf = e.buf[:0]
	for i, fd := range fs {
		v := vs[i]
		if len(v) > fd.width {
			return fmt.Errorf("recon: %s: %d characters do not fit %d", fd.name, len(v), fd.width)
		}
		pad := strings.Repeat(" ", fd.width-len(v))
		if fd.right {
			e.buf = append(append(e.buf, pad...), v...)
		} else {
			e.buf = append(append(e.buf, v...), pad...)
		}
	}
	e.buf = append(e.buf, '\n')
	_, err := e.w.Write(e.buf)
	return err
}

func (e *encoder) flush() error {
	if e.csv != nil {
		e.csv.Flush()
		return e.csv.Error()
	}
	return nil
}

func badText(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return true
		}
	}
	return false
}

// headerValues returns the header record of a file named n.
func headerValues(n Name, extra ...string) []string {
	return append([]string{recHeader, Version, n.Org, n.Iface, n.Unit, fmt.Sprintf("%08d", n.Date)}, extra...)
}

// trailerValues returns the trailer record for count details summing to sum.
func trailerValues(count int, sum decimal.Decimal, places int32) []string {
	return []string{recTrailer, fmt.Sprintf("%010d", count), sum.StringFixed(places)}
}

// exponent returns how many decimals amounts in currency code have.
func exponent(code uint16) int32 {
	c, _ := ledger.CurrencyByCode(code)
	return c.Exponent
}
