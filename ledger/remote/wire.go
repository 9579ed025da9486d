package remote

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/junction-switch/junction/ledger"
)

// Routes, all under one version prefix: a change of wire format gets a new prefix, and a server
// can answer both while its clients move over.
const (
	pathJournal = "/ledger/v1/journal"
	pathCutover = "/ledger/v1/cutover"
	pathAdjust  = "/ledger/v1/adjust"
	pathDo      = "/ledger/v1/do"
)

// Headers. The client names the region it means to reach in headerRegion; the server refuses a
// request for another region before touching its shard, and names its own region in every answer.
const (
	headerRegion = "Junction-Region"
	headerLast   = "Junction-Last-Seq" // journal page: the shard's last committed seq
	headerCount  = "Junction-Count"    // journal page: how many records the body holds

	contentJournal = "application/x-junction-journal; v=1"
	contentJSON    = "application/json"
)

// Limits of the wire.
const (
	// MaxLimit is the most entries one journal page carries; a larger limit is cut to it. It is
	// the head ledger's largest apply batch.
	MaxLimit = 4096

	// maxRecord bounds one journal record on the wire. Records are far smaller (under 256
	// bytes); the bound only stops a corrupt length from allocating.
	maxRecord = 1 << 10
	lenPrefix = 4 // bytes of the big-endian length before each record
	maxPage   = MaxLimit * (lenPrefix + maxRecord)

	// maxBody bounds a JSON request body on the server and a JSON answer on the client.
	maxBody = 16 << 10
)

// appendRecord appends t as one page record: its length as 4 bytes big-endian, then its journal
// record (ledger.AppendTransfer: versioned, CRC-32C).
func appendRecord(dst []byte, t *ledger.Transfer) []byte {
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = ledger.AppendTransfer(dst, t)
	binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at-lenPrefix))
	return dst
}

// decodePage decodes a journal page body that should hold count records with seqs from, from+1,
// and so on. Anything else — a short or torn record, a bad CRC, a gap, a trailing byte, more or
// fewer records than count — is an error, never a partial page.
func decodePage(b []byte, from uint64, count int) ([]ledger.Transfer, error) {
	if count < 0 || count > MaxLimit {
		return nil, fmt.Errorf("page claims %d records, want 0..%d", count, MaxLimit)
	}
	from = max(from, 1)
	out := make([]ledger.Transfer, 0, count)
	for len(b) > 0 {
		if len(out) == count {
			return nil, fmt.Errorf("%d bytes after the %d records the page claims", len(b), count)
		}
		if len(b) < lenPrefix {
			return nil, fmt.Errorf("record %d: torn length prefix (%d bytes)", len(out)+1, len(b))
		}
		n := binary.BigEndian.Uint32(b)
		b = b[lenPrefix:]
		if n == 0 || n > maxRecord {
			return nil, fmt.Errorf("record %d: length %d, want 1..%d", len(out)+1, n, maxRecord)
		}
		if uint32(len(b)) < n {
			return nil, fmt.Errorf("record %d: torn: %d of %d bytes", len(out)+1, len(b), n)
		}
		t, err := ledger.DecodeTransfer(b[:n])
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", len(out)+1, err)
		}
		if want := from + uint64(len(out)); t.Seq != want {
			return nil, fmt.Errorf("record %d: seq %d, want %d", len(out)+1, t.Seq, want)
		}
		out = append(out, t)
		b = b[n:]
	}
	if len(out) != count {
		return nil, fmt.Errorf("short page: %d of %d records", len(out), count)
	}
	return out, nil
}

// txid is a TxID in JSON: 64 lower-case hex digits, or "" for the zero id.
type txid ledger.TxID

func (id txid) IsZero() bool { return ledger.TxID(id).IsZero() }

func (id txid) MarshalText() ([]byte, error) {
	if id.IsZero() {
		return []byte{}, nil
	}
	return hex.AppendEncode(nil, id[:]), nil
}

var errTxID = errors.New("want 64 hex digits")

func (id *txid) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*id = txid{}
		return nil
	}
	if len(b) != 2*len(id) {
		return errTxID
	}
	if _, err := hex.Decode(id[:], b); err != nil {
		return errTxID // hex's error quotes the byte; the id is not secret, but say it plainly
	}
	return nil
}

// doRequest is a ledger.Request on the wire. Op is the operation's name (ledger.Op.String) and
// only the channel operations are accepted.
type doRequest struct {
	Op       string `json:"op"`
	ID       txid   `json:"id,omitzero"`
	PAN      string `json:"pan,omitempty"`
	Amount   int64  `json:"amount"`
	Currency uint16 `json:"currency"`
	Terminal string `json:"terminal,omitempty"`
	Merchant string `json:"merchant,omitempty"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	Original txid   `json:"original,omitzero"`
	Actual   int64  `json:"actual,omitempty"`
	Acquirer string `json:"acquirer,omitempty"`
	STAN     string `json:"stan,omitempty"`
	RRN      string `json:"rrn,omitempty"`
}

func toDoRequest(r *ledger.Request) doRequest {
	return doRequest{Op: r.Op.String(), ID: txid(r.ID), PAN: r.PAN, Amount: r.Amount,
		Currency: r.Currency, Terminal: r.Terminal, Merchant: r.Merchant, From: r.From, To: r.To,
		Original: txid(r.Original), Actual: r.Actual, Acquirer: r.Acquirer, STAN: r.STAN, RRN: r.RRN}
}

func (d *doRequest) request() (ledger.Request, error) {
	op, ok := channelOp(d.Op)
	if !ok {
		return ledger.Request{}, errors.New("op: not an operation a channel can submit " +
			"(purchase, balance, deposit, reversal, advice, preauth, completion, refund, transfer, payment)")
	}
	return ledger.Request{Op: op, ID: ledger.TxID(d.ID), PAN: d.PAN, Amount: d.Amount,
		Currency: d.Currency, Terminal: d.Terminal, Merchant: d.Merchant, From: d.From, To: d.To,
		Original: ledger.TxID(d.Original), Actual: d.Actual, Acquirer: d.Acquirer, STAN: d.STAN,
		RRN: d.RRN}, nil
}

// channelOp returns the channel operation named name.
func channelOp(name string) (ledger.Op, bool) {
	for op := ledger.OpPurchase; op <= ledger.OpPayment; op++ {
		if op.String() == name {
			return op, true
		}
	}
	return 0, false
}

// adjustment is a ledger.Adjustment on the wire.
type adjustment struct {
	ID       txid   `json:"id"`
	PAN      string `json:"pan,omitempty"`
	Number   string `json:"number,omitempty"`
	Account  uint64 `json:"account,omitempty"`
	Credit   bool   `json:"credit"`
	Amount   int64  `json:"amount"`
	Currency uint16 `json:"currency"`
	Original uint64 `json:"original,omitempty"`
	Acquirer string `json:"acquirer,omitempty"`
	STAN     string `json:"stan,omitempty"`
	RRN      string `json:"rrn,omitempty"`
	Merchant string `json:"merchant,omitempty"`
}

func toAdjustment(a ledger.Adjustment) adjustment {
	return adjustment{ID: txid(a.ID), PAN: a.PAN, Number: a.Number, Account: a.Account,
		Credit: a.Credit, Amount: a.Amount, Currency: a.Currency, Original: a.Original,
		Acquirer: a.Acquirer, STAN: a.STAN, RRN: a.RRN, Merchant: a.Merchant}
}

func (a *adjustment) adjustment() ledger.Adjustment {
	return ledger.Adjustment{ID: ledger.TxID(a.ID), PAN: a.PAN, Number: a.Number,
		Account: a.Account, Credit: a.Credit, Amount: a.Amount, Currency: a.Currency,
		Original: a.Original, Acquirer: a.Acquirer, STAN: a.STAN, RRN: a.RRN, Merchant: a.Merchant}
}

// result is a ledger.Result on the wire.
type result struct {
	Code       string `json:"code"`
	Replayed   bool   `json:"replayed,omitempty"`
	Seq        uint64 `json:"seq"`
	Currency   uint16 `json:"currency"`
	Ledger     int64  `json:"ledger"`
	Available  int64  `json:"available"`
	AuthCode   string `json:"auth_code,omitempty"`
	Window     uint32 `json:"window"`
	SettleDate uint32 `json:"settle_date"`
}

func toResult(r ledger.Result) result {
	return result{Code: string(r.Code), Replayed: r.Replayed, Seq: r.Seq, Currency: r.Currency,
		Ledger: r.Ledger, Available: r.Available, AuthCode: r.AuthCode, Window: r.Window,
		SettleDate: r.SettleDate}
}

func (r *result) result() ledger.Result {
	return ledger.Result{Code: ledger.Code(r.Code), Replayed: r.Replayed, Seq: r.Seq,
		Currency: r.Currency, Ledger: r.Ledger, Available: r.Available, AuthCode: r.AuthCode,
		Window: r.Window, SettleDate: r.SettleDate}
}

// cutoverRequest asks the shard to open window Window with settlement date Date (YYYYMMDD).
type cutoverRequest struct {
	Window uint32 `json:"window"`
	Date   uint32 `json:"date"`
}

// cutoverPoint is a ledger.CutoverPoint on the wire.
type cutoverPoint struct {
	Window uint32 `json:"window"`
	Date   uint32 `json:"date"`
	Last   uint64 `json:"last"`
}

// errorBody is every error answer's body.
type errorBody struct {
	Error string `json:"error"`
}
