package recon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/junction-switch/junction/ledger"
)

// Errors. Every error Reconcile and BatchDebit return wraps one of these.
var (
	// ErrName: the file name is not ORG_IFACE_UNIT_YYYYMMDD.txt, or names another kind of file.
	ErrName = errors.New("recon: bad file name")
	// ErrFormat: the file's content is bad — encoding, header, trailer, count or sum (a
	// truncated file), or a record. LineError wraps it and names the line. Nothing was applied.
	ErrFormat = errors.New("recon: bad file")
	// ErrDuplicate: a file of this name was ingested before with other content. Nothing was
	// applied.
	ErrDuplicate = errors.New("recon: file name already ingested with other content")
	// ErrIncomplete: some corrections or debits could not be booked (a shard unreachable); the
	// others were. The file is not registered and no report or response file is written, so
	// ingesting it again finishes the work: what was booked replays under its TxID.
	ErrIncomplete = errors.New("recon: not everything was booked")
	// ErrNotReady refuses a reconciliation file before the head ledger holds every entry of the
	// days it covers: a purchase still on its way would look like one only the partner has, and
	// be booked twice. Nothing is applied or registered; ingest the file again later.
	ErrNotReady = errors.New("recon: the ledger is not complete for the file's days yet")
	// ErrConfig: the Config lacks something the file needs (a directory, the partner mapping).
	ErrConfig = errors.New("recon: bad configuration")
)

// Class is what became of a record or a ledger entry.
type Class string

// Reconciliation classes.
const (
	Matched     Class = "matched"      // partner and ledger agree (within the amount tolerance)
	PartnerOnly Class = "partner_only" // the partner has it, the ledger does not: we are short
	LedgerOnly  Class = "ledger_only"  // the ledger has it, the partner does not: we are long
	Mismatch    Class = "mismatch"     // both have it, with amounts beyond the tolerance apart
)

// Batch-debit classes.
const (
	Booked    Class = "booked"    // debited (response code 00)
	Declined  Class = "declined"  // the ledger declined it (its code)
	Malformed Class = "malformed" // the line itself is bad (30, or 94 for a repeated sequence number)
)

// Total counts the records of one class in one currency.
type Total struct {
	Class    Class  `json:"class"`
	Currency uint16 `json:"currency"`
	Count    int    `json:"count"`
	Amount   int64  `json:"amount"` // minor units: the partner's amounts, or the ledger's for ledger-only
}

// Break is one reconciliation break and the correction booked for it.
type Break struct {
	Class     Class     `json:"class"`
	Line      int       `json:"line,omitempty"` // the partner's record; 0 for ledger-only
	Direction Direction `json:"direction"`
	RRN       string    `json:"rrn"`
	STAN      string    `json:"stan,omitempty"`
	Account   string    `json:"account"` // masked reference, or "account <id>" for a ledger-side break
	Region    string    `json:"region,omitempty"`
	Seq       uint64    `json:"seq,omitempty"` // the ledger entry; 0 for partner-only
	Currency  uint16    `json:"currency"`
	Partner   int64     `json:"partner"` // the partner's amount, minor units; 0 for ledger-only
	Ledger    int64     `json:"ledger"`  // the ledger's amount; 0 for partner-only
	// The correction: Amount credited to the account (Credit) or debited from it, against
	// suspense; Code is the shard's answer ("" when it could not be booked: Error says why).
	Credit bool        `json:"credit"`
	Amount int64       `json:"amount"`
	Code   ledger.Code `json:"code"`
	Error  string      `json:"error,omitempty"`

	account string     // partner-only: the full reference, to locate and book it; never reported
	ref     *ledgerRef // ledger-side: the entry's account and annotations
}

// Line is the outcome of one batch-debit line.
type Line struct {
	Line    int         `json:"line"`
	Seq     string      `json:"seq"`
	Account string      `json:"account"` // masked
	Amount  string      `json:"amount"`  // as the request had it, when it was a decimal
	Code    ledger.Code `json:"code"`
	Text    string      `json:"text"`
	Class   Class       `json:"class"`
	Error   string      `json:"error,omitempty"` // Do failed: the outcome is unknown
}

// EntryRef names one ledger entry.
type EntryRef struct {
	Region string `json:"region"`
	Seq    uint64 `json:"seq"`
}

// Report is what one ingest of a file did. The registry keeps it; ingesting the same file again
// returns it with Replayed set.
type Report struct {
	File     string  `json:"file"`
	SHA256   string  `json:"sha256"`
	Encoding string  `json:"encoding"`
	Date     uint32  `json:"date"`
	Acquirer string  `json:"acquirer,omitempty"`
	Replayed bool    `json:"-"`
	Output   string  `json:"output,omitempty"` // the report (DZ) or response (DKKK) file written
	Records  int     `json:"records"`          // detail records in the file
	Totals   []Total `json:"totals"`
	Breaks   []Break `json:"breaks,omitempty"` // DZ
	Lines    []Line  `json:"lines,omitempty"`  // DKKK
	// Consumed lists the ledger entries this file accounted for (matched or corrected), so that
	// the files of neighbouring dates do not count them again.
	Consumed []EntryRef `json:"consumed,omitempty"`
}

// Count returns how many records of class c the report has, over all currencies.
func (r *Report) Count(c Class) int {
	n := 0
	for _, t := range r.Totals {
		if t.Class == c {
			n += t.Count
		}
	}
	return n
}

// add counts one record of class c.
func (r *Report) add(c Class, cur uint16, amount int64) {
	for i := range r.Totals {
		if t := &r.Totals[i]; t.Class == c && t.Currency == cur {
			t.Count++
			t.Amount += amount
			return
		}
	}
	r.Totals = append(r.Totals, Total{Class: c, Currency: cur, Count: 1, Amount: amount})
}

// registry remembers every file ingested to the end: <dir>/<name>.json holds its SHA-256 and its
// report, written atomically.
type registry struct{ dir string }

type registered struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Report Report `json:"report"`
}

func digestOf(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func (g registry) path(name string) string { return filepath.Join(g.dir, name+".json") }

// lookup returns the stored record of name, if there is one.
func (g registry) lookup(name string) (registered, bool, error) {
	b, err := os.ReadFile(g.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return registered{}, false, nil
	}
	if err != nil {
		return registered{}, false, fmt.Errorf("recon: registry: %w", err)
	}
	var r registered
	if err := json.Unmarshal(b, &r); err != nil || r.Name != name {
		return registered{}, false, fmt.Errorf("recon: registry %s: not a registry record", g.path(name))
	}
	return r, true, nil
}

// check answers whether the file name with content digest sum was ingested before: its stored
// report if so, ErrDuplicate if it was with other content.
func (g registry) check(name, sum string) (*Report, error) {
	r, ok, err := g.lookup(name)
	if err != nil || !ok {
		return nil, err
	}
	if r.SHA256 != sum {
		return nil, fmt.Errorf("%w: %s was ingested with SHA-256 %s, this one is %s", ErrDuplicate, name, r.SHA256, sum)
	}
	rep := r.Report
	rep.Replayed = true
	return &rep, nil
}

func (g registry) store(rep *Report) error {
	b, err := json.MarshalIndent(registered{Name: rep.File, SHA256: rep.SHA256, Report: *rep}, "", "  ")
	if err != nil {
		return fmt.Errorf("recon: registry: %w", err)
	}
	return writeAtomic(g.path(rep.File), append(b, '\n'))
}

// writeAtomic writes data to path through a synced temporary file in the same directory and a
// rename, so a reader sees the old file or the whole new one.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("recon: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("recon: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("recon: write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
