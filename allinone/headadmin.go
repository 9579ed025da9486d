package allinone

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/ledger/head"
)

// The head ledger's admin endpoints, on the operators' HTTP port, for
// `junction head`:
//
//	GET  /admin/head/status                 windows and each region's merge progress
//	POST /admin/head/cutover[?date=YYYYMMDD] close the open window, open the next
//	GET  /admin/head/gl?window=N&level=L     the general ledger of a window at a level
//	GET  /admin/head/entries?…               merged entries (window, date, acquirer, rrn, region, limit)
//	POST /admin/head/settle?window=N         clear and settle a closed window
//	POST /admin/head/recon?name=FILE         reconcile a partner's file (the body)
//	POST /admin/head/batch?name=FILE         run a batch debit file (the body)
func (n *Node) headRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/head/status", n.headStatus)
	mux.HandleFunc("POST /admin/head/cutover", n.headCutover)
	mux.HandleFunc("GET /admin/head/gl", n.headGL)
	mux.HandleFunc("GET /admin/head/entries", n.headEntries)
	mux.HandleFunc("POST /admin/head/settle", n.headSettle)
	mux.HandleFunc("POST /admin/head/recon", func(w http.ResponseWriter, r *http.Request) { n.headFile(w, r, true) })
	mux.HandleFunc("POST /admin/head/batch", func(w http.ResponseWriter, r *http.Request) { n.headFile(w, r, false) })
}

// maxFileBody bounds a file posted to the admin API.
const maxFileBody = 64 << 20

type windowView struct {
	Number  uint32      `json:"number"`
	Date    uint32      `json:"date"`
	State   string      `json:"state"`
	Opened  string      `json:"opened"`
	Cutover string      `json:"cutover,omitempty"`
	Closed  string      `json:"closed,omitempty"`
	Settled string      `json:"settled,omitempty"`
	Points  []pointView `json:"points,omitempty"`
}

// pointView is a region's cutover point of a window: reported once its shard answered the
// cutover; last is the last journal seq of the region in the window.
type pointView struct {
	Region   string `json:"region"`
	Reported bool   `json:"reported"`
	Last     uint64 `json:"last"`
}

func stamp(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func viewWindow(w head.Window) windowView {
	v := windowView{Number: w.Number, Date: w.Date, State: w.State.String(), Opened: stamp(w.Opened),
		Cutover: stamp(w.Cutover), Closed: stamp(w.Closed), Settled: stamp(w.Settled)}
	for _, p := range w.Points {
		v.Points = append(v.Points, pointView{Region: p.Region, Reported: p.Reported, Last: p.Last})
	}
	return v
}

func (n *Node) headStatus(w http.ResponseWriter, _ *http.Request) {
	ws, err := n.head.h.Windows()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	type region struct {
		Name      string `json:"name"`
		HighWater uint64 `json:"high_water"`
		Journal   uint64 `json:"journal_last,omitempty"` // in-process shards: their last committed seq
	}
	out := struct {
		Windows []windowView `json:"windows"`
		Regions []region     `json:"regions"`
	}{}
	for _, x := range ws {
		out.Windows = append(out.Windows, viewWindow(x))
	}
	for _, src := range n.head.srcs {
		r := region{Name: src.Region(), HighWater: n.head.h.HighWater(src.Region())}
		if s := n.shards[r.Name]; s != nil {
			r.Journal = s.Stats().LastSeq
		}
		out.Regions = append(out.Regions, r)
	}
	writeJSON(w, out)
}

func (n *Node) headCutover(w http.ResponseWriter, r *http.Request) {
	date, err := queryUint(r, "date")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	closing, err := n.head.cutover(r.Context(), uint32(date))
	if err != nil {
		http.Error(w, err.Error(), headStatusOf(err))
		return
	}
	writeJSON(w, viewWindow(closing))
}

// headStatusOf is the HTTP status of a head ledger error: 422 for a request the head refuses
// (a window in the wrong state, a date before the open window's, a bad clearing), 503 while
// the head is closed, 500 for the rest (storage).
func headStatusOf(err error) int {
	switch {
	case errors.Is(err, head.ErrWindow), errors.Is(err, head.ErrClearing):
		return http.StatusUnprocessableEntity
	case errors.Is(err, head.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

type amountView struct {
	Currency       uint16 `json:"currency"`
	Debits         string `json:"debits"`
	Credits        string `json:"credits"`
	DebitsPending  string `json:"debits_pending"`
	CreditsPending string `json:"credits_pending"`
	Net            string `json:"net"`
	Entries        uint64 `json:"entries"`
}

func viewTotal(t head.Total) amountView {
	f := func(v int64) string { return ledger.FormatAmount(v, t.Currency) }
	return amountView{Currency: t.Currency, Debits: f(t.Debits), Credits: f(t.Credits),
		DebitsPending: f(t.DebitsPending), CreditsPending: f(t.CreditsPending), Net: f(t.Net()), Entries: t.Entries}
}

func (n *Node) headGL(w http.ResponseWriter, r *http.Request) {
	window, ok := requiredWindow(w, r)
	if !ok {
		return
	}
	level, ok := head.LevelInstitution, true
	if l := r.URL.Query().Get("level"); l != "" {
		level, ok = parseLevel(l)
	}
	if !ok {
		http.Error(w, "level: want institution, region, merchant or account", http.StatusBadRequest)
		return
	}
	lines, err := n.head.h.GL(uint32(window), level)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	type lineView struct {
		Institution string `json:"institution"`
		Region      string `json:"region,omitempty"`
		Merchant    string `json:"merchant,omitempty"`
		Account     uint64 `json:"account,omitempty"`
		amountView
	}
	out := make([]lineView, 0, len(lines))
	for _, l := range lines {
		out = append(out, lineView{Institution: l.Institution, Region: l.Region, Merchant: l.Merchant, Account: l.Account, amountView: viewTotal(l.Total)})
	}
	writeJSON(w, struct {
		Window uint32     `json:"window"`
		Level  string     `json:"level"`
		Lines  []lineView `json:"lines"`
	}{uint32(window), level.String(), out})
}

func parseLevel(s string) (head.Level, bool) {
	for l := head.LevelInstitution; l <= head.LevelAccount; l++ {
		if l.String() == s {
			return l, true
		}
	}
	return 0, false
}

func (n *Node) headEntries(w http.ResponseWriter, r *http.Request) {
	q := head.Query{Region: r.URL.Query().Get("region"), Acquirer: r.URL.Query().Get("acquirer"), RRN: r.URL.Query().Get("rrn"), Limit: 100}
	var errs []error
	for key, dst := range map[string]*uint32{"window": &q.Window, "date": &q.Date} {
		v, err := queryUint(r, key)
		errs = append(errs, err)
		*dst = uint32(v)
	}
	if v, err := queryUint(r, "limit"); err != nil || v > 10000 {
		errs = append(errs, fmt.Errorf("limit: want 0..10000"))
	} else if v > 0 {
		q.Limit = int(v)
	}
	if err := errors.Join(errs...); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	entries, err := n.head.h.Entries(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	type entryView struct {
		Region     string `json:"region"`
		Seq        uint64 `json:"seq"`
		Kind       string `json:"kind"`
		Debit      uint64 `json:"debit"`
		Credit     uint64 `json:"credit"`
		Amount     string `json:"amount"`
		Currency   uint16 `json:"currency"`
		Time       string `json:"time"`
		Window     uint32 `json:"window"`
		SettleDate uint32 `json:"settle_date,omitempty"`
		Acquirer   string `json:"acquirer,omitempty"`
		Merchant   string `json:"merchant,omitempty"`
		Terminal   string `json:"terminal,omitempty"`
		STAN       string `json:"stan,omitempty"`
		RRN        string `json:"rrn,omitempty"`
		Original   uint64 `json:"original,omitempty"`
	}
	out := make([]entryView, 0, len(entries))
	for _, e := range entries {
		out = append(out, entryView{Region: e.Region, Seq: e.Seq, Kind: e.Kind.String(), Debit: e.Debit, Credit: e.Credit,
			Amount: ledger.FormatAmount(e.Amount, e.Currency), Currency: e.Currency, Time: stamp(e.Time), Window: e.Window,
			SettleDate: e.SettleDate, Acquirer: e.Acquirer, Merchant: e.Merchant, Terminal: e.Terminal, STAN: e.STAN,
			RRN: e.RRN, Original: e.Original})
	}
	writeJSON(w, out)
}

func (n *Node) headSettle(w http.ResponseWriter, r *http.Request) {
	window, ok := requiredWindow(w, r)
	if !ok {
		return
	}
	s, err := n.head.h.Settle(uint32(window), n.head.clearing)
	if err != nil {
		http.Error(w, err.Error(), headStatusOf(err))
		return
	}
	writeJSON(w, struct {
		head.Settlement
		Dir string
	}{s, n.head.clearing.Out})
}

func (n *Node) headFile(w http.ResponseWriter, r *http.Request, isRecon bool) {
	name := r.URL.Query().Get("name")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFileBody))
	if err != nil {
		status := http.StatusBadRequest
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, fmt.Sprintf("file body: %v", err), status)
		return
	}
	rep, err := n.head.ingest(r.Context(), name, body, isRecon)
	if err != nil {
		n.log.Warn("file refused", "file", name, "err", err)
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	// Replayed: the same file was ingested before; its stored report is
	// returned and nothing was applied again.
	writeJSON(w, map[string]any{"replayed": rep.Replayed, "report": rep})
}

// requiredWindow reads the window query parameter, which must be given; on
// error it answers 400 and reports false.
func requiredWindow(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	window, err := queryUint(r, "window")
	if err == nil && window == 0 {
		err = errors.New("window: required")
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return 0, false
	}
	return window, true
}

// queryUint reads an optional unsigned query parameter (0 when absent).
func queryUint(r *http.Request, key string) (uint64, error) {
	s := r.URL.Query().Get(key)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", key, s)
	}
	return v, nil
}
