package allinone

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/routing"
	switching "github.com/junction-switch/junction/switch"
)

// The admin endpoints sit on the HTTP port (loopback by default): POST
// /admin/routes/reload (routes.go), GET /admin/destinations, GET /admin/saf,
// POST /admin/accounts and GET /admin/ledger/verify.

// adminDestinations shows every destination's endpoints: health, breaker,
// requests in flight, window, consecutive failures. JSON.
func (n *Node) adminDestinations(w http.ResponseWriter, _ *http.Request) {
	type endpoint struct {
		Name        string    `json:"name"`
		Health      string    `json:"health"`
		Breaker     string    `json:"breaker"`
		Outstanding int       `json:"outstanding"`
		Window      int       `json:"window"`
		Failures    int       `json:"failures"`
		ProbeAt     time.Time `json:"probe_at,omitzero"`
	}
	out := map[string][]endpoint{}
	for _, p := range n.pools {
		for _, m := range p.Members() {
			out[p.Name()] = append(out[p.Name()], endpoint{Name: m.Name, Health: m.Health.String(), Breaker: m.Breaker.String(),
				Outstanding: m.Outstanding, Window: m.Window, Failures: m.Failures, ProbeAt: m.ProbeAt})
		}
	}
	writeJSON(w, out)
}

// adminListMax bounds the advices /admin/saf lists per destination and
// kind (the oldest first); depth says how many wait in all.
const adminListMax = 100

// adminSAF shows, per destination, how many advices wait in the
// store-and-forward queue, the oldest of them (PANs masked) and of the dead
// letters.
func (n *Node) adminSAF(w http.ResponseWriter, _ *http.Request) {
	type queue struct {
		Depth   int                  `json:"depth"`
		Pending []switching.SAFEntry `json:"pending"`
		Dead    []switching.SAFEntry `json:"dead_letters"`
	}
	out := map[string]queue{}
	for _, p := range n.pools {
		q := queue{Depth: n.saf.Depth(p.Name())}
		var err error
		if q.Pending, err = n.saf.PendingFirst(p.Name(), adminListMax); err == nil {
			q.Dead, err = n.saf.DeadLettersFirst(p.Name(), adminListMax)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		out[p.Name()] = q
	}
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// adminLedgerRoutes adds the ledger's admin endpoints: POST /admin/accounts
// opens a card for load tests, GET /admin/ledger/verify checks every
// in-process shard's books while the switch runs.
func (n *Node) adminLedgerRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /admin/accounts", n.adminOpenAccount)
	// A verify reads a whole shard: one at a time, and a second asked
	// meanwhile is told so rather than queued.
	var verifying sync.Mutex
	mux.HandleFunc("GET /admin/ledger/verify", func(w http.ResponseWriter, r *http.Request) {
		if !verifying.TryLock() {
			http.Error(w, "a ledger verify is running; ask again when it is done", http.StatusTooManyRequests)
			return
		}
		defer verifying.Unlock()
		n.adminVerify(w, r)
	})
}

// OpenAccountRequest is the body of POST /admin/accounts: a card to open
// (junction bench --accounts opens its test cards with it).
type OpenAccountRequest struct {
	PAN      string `json:"pan"`                // 13–19 digits, Luhn-valid
	Region   string `json:"region,omitempty"`   // default: where the routing rules in use send the PAN; given, they must send it there
	Type     string `json:"type,omitempty"`     // "card", the default and the only type for now
	Currency uint16 `json:"currency,omitempty"` // ISO 4217 numeric; default 156 (CNY), and the shard must book it
	Name     string `json:"name,omitempty"`     // up to 32 bytes
	Opening  string `json:"opening,omitempty"`  // opening deposit, a decimal in the currency ("1000.00"); "" or 0 books none
}

// OpenedAccount answers POST /admin/accounts.
type OpenedAccount struct {
	Region   string `json:"region"`
	PAN      string `json:"pan"` // masked
	Account  uint64 `json:"account"`
	Opened   bool   `json:"opened"` // false: the card was open already
	Currency uint16 `json:"currency"`
	Balance  string `json:"balance"`       // for people: "1000.00 CNY"
	Minor    int64  `json:"balance_minor"` // the same in minor units
}

// openingDepositID is the transaction id of a card's opening deposit, the
// same for the demo seed and POST /admin/accounts: asked again, with the
// same amount, the deposit is replayed, not booked twice.
func openingDepositID(pan string) ledger.TxID {
	return ledger.NewTxID([]byte("demo-opening-deposit"), []byte(pan))
}

// adminOpenAccount opens a card on its region's in-process shard and books
// its opening deposit, both idempotent: a card already open is kept (201
// when opened now, 200 when it was open), and the opening deposit carries
// the card's fixed transaction id, so the same call repeated changes
// nothing (with another amount it is refused, 409). Bad input is 400; a
// card the shard cannot hold here (a region that is not configured or
// whose shard runs in its own process, a PAN the rules route elsewhere, a
// currency the shard does not book) is 422. The answer masks the PAN.
func (n *Node) adminOpenAccount(w http.ResponseWriter, r *http.Request) {
	var req OpenAccountRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, fmt.Sprintf("body: want JSON {pan, region, type, currency, name, opening}: %v", err), http.StatusBadRequest)
		return
	}
	masked := codec.MaskPAN([]byte(req.PAN))
	req.Currency = cmp.Or(req.Currency, DemoCurrency)
	opening, bad := int64(0), []string{}
	if l := len(req.PAN); l < 13 || l > 19 || !routing.Luhn([]byte(req.PAN)) {
		bad = append(bad, fmt.Sprintf("pan %s: want 13–19 digits with a valid Luhn check digit", masked))
	}
	if req.Type != "" && req.Type != "card" {
		bad = append(bad, fmt.Sprintf("type %q: only card", req.Type))
	}
	if _, ok := ledger.CurrencyByCode(req.Currency); !ok {
		bad = append(bad, fmt.Sprintf("currency %d: not a currency the ledger books", req.Currency))
	} else if req.Opening != "" {
		var err error
		if opening, err = ledger.ParseAmount(req.Opening, req.Currency); err != nil {
			bad = append(bad, fmt.Sprintf("opening: %v", err))
		}
	}
	if len(req.Name) > 32 {
		bad = append(bad, fmt.Sprintf("name: %d bytes, at most 32", len(req.Name)))
	}
	if len(bad) > 0 {
		http.Error(w, strings.Join(bad, "\n"), http.StatusBadRequest)
		return
	}

	d := n.sw.Routes().Route([]byte(req.PAN))
	region := cmp.Or(req.Region, d.Destination)
	s := n.shards[region]
	switch {
	case s == nil && slices.ContainsFunc(n.remotes, func(r *remoteRegion) bool { return r.name == region }):
		http.Error(w, fmt.Sprintf("region %s: its shard runs in its own process; open the card there", region), http.StatusUnprocessableEntity)
		return
	case s == nil && req.Region != "":
		http.Error(w, fmt.Sprintf("region %q is not a region of this switch", region), http.StatusUnprocessableEntity)
		return
	case d.Destination == "":
		http.Error(w, fmt.Sprintf("the routing rules decline card %s (rule %q, code %s): no region would see it",
			masked, d.Rule, d.Decline), http.StatusUnprocessableEntity)
		return
	case s == nil:
		http.Error(w, fmt.Sprintf("card %s routes to %s (rule %q), which is not a region of this switch",
			masked, d.Destination, d.Rule), http.StatusUnprocessableEntity)
		return
	case d.Destination != region:
		http.Error(w, fmt.Sprintf("card %s routes to %s (rule %q), not to region %s: the switch would never reach it there",
			masked, d.Destination, d.Rule, region), http.StatusUnprocessableEntity)
		return
	}

	ctx := r.Context()
	out := OpenedAccount{Region: region, PAN: masked, Currency: req.Currency, Opened: true}
	_, err := s.OpenAccount(ctx, ledger.AccountSpec{Type: ledger.Card, Currency: req.Currency, Name: req.Name, PAN: req.PAN, NoOverdraft: true})
	switch {
	case errors.Is(err, ledger.ErrPANBound):
		out.Opened = false
	case errors.Is(err, ledger.ErrClosed), errors.Is(err, ledger.ErrCommit), ctx.Err() != nil:
		http.Error(w, fmt.Sprintf("open %s: %v", masked, err), http.StatusServiceUnavailable)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusUnprocessableEntity) // the ledger masks the PAN
		return
	}
	if opening > 0 {
		res, err := s.Do(ctx, &ledger.Request{
			Op: ledger.OpDeposit, ID: openingDepositID(req.PAN), PAN: req.PAN, Amount: opening, Currency: req.Currency,
		})
		switch {
		case err != nil:
			http.Error(w, fmt.Sprintf("opening deposit %s: %v", masked, err), http.StatusServiceUnavailable)
			return
		case res.Code == ledger.DuplicateDifferent:
			http.Error(w, fmt.Sprintf("opening deposit %s: the card's opening deposit was booked with another amount", masked), http.StatusConflict)
			return
		case res.Code != ledger.Approved:
			http.Error(w, fmt.Sprintf("opening deposit %s: declined %s", masked, res.Code), http.StatusUnprocessableEntity)
			return
		}
	}
	a, err := s.AccountByPAN(req.PAN)
	if err != nil {
		http.Error(w, fmt.Sprintf("card %s: %v", masked, err), http.StatusServiceUnavailable)
		return
	}
	if a.Currency != req.Currency {
		http.Error(w, fmt.Sprintf("card %s is open in currency %d, not %d", masked, a.Currency, req.Currency), http.StatusConflict)
		return
	}
	out.Account, out.Balance, out.Minor = a.ID, ledger.FormatAmount(a.Balance(), a.Currency), a.Balance()
	w.Header().Set("Content-Type", "application/json")
	if out.Opened {
		w.WriteHeader(http.StatusCreated)
	}
	writeJSON(w, out)
}

// LedgerVerify answers GET /admin/ledger/verify.
type LedgerVerify struct {
	OK      bool           `json:"ok"` // no in-process shard has a break (regions in their own process are not verified here)
	Regions []RegionVerify `json:"regions"`
}

// RegionVerify is one region's part of LedgerVerify: ledger.VerifyReport's
// counts, breaks and totals.
type RegionVerify struct {
	Region    string        `json:"region"`
	OK        bool          `json:"ok"`
	Remote    bool          `json:"remote,omitempty"` // the shard runs in its own process: not verified
	Error     string        `json:"error,omitempty"`  // the verify failed, or why it did not run
	Seconds   float64       `json:"seconds"`
	LastSeq   uint64        `json:"last_seq"`
	Accounts  int           `json:"accounts"`
	Cards     int           `json:"cards"`
	Transfers int           `json:"journal_entries"`
	TxRecords int           `json:"tx_records"`
	Breaks    []string      `json:"breaks,omitempty"`
	Dropped   int           `json:"breaks_dropped,omitempty"` // beyond the 100 listed
	Totals    []VerifyTotal `json:"totals,omitempty"`
}

// VerifyTotal is Σ posted and pending debits and credits in one currency,
// in minor units.
type VerifyTotal struct {
	Currency       uint16 `json:"currency"`
	Debits         int64  `json:"debits"`
	Credits        int64  `json:"credits"`
	DebitsPending  int64  `json:"debits_pending"`
	CreditsPending int64  `json:"credits_pending"`
}

// adminVerify runs ledger.Shard.Verify on every in-process shard, in
// configuration order, while they take traffic: Verify reads one badger
// snapshot, and every batch the writer commits is one badger transaction,
// so it sees whole batches only. A shard's Close waits for a verify
// running on it. Always 200: "ok" says whether the books hold.
func (n *Node) adminVerify(w http.ResponseWriter, _ *http.Request) {
	out := LedgerVerify{OK: true, Regions: []RegionVerify{}}
	for _, r := range n.cfg.Regions {
		s := n.shards[r.Name]
		if s == nil {
			out.Regions = append(out.Regions, RegionVerify{Region: r.Name, Remote: true,
				Error: "the shard runs in its own process: verify it there (junction ledger verify, once it stops)"})
			continue
		}
		start := time.Now()
		rep, err := s.Verify()
		v := RegionVerify{Region: r.Name, OK: err == nil, Seconds: time.Since(start).Seconds(), LastSeq: rep.LastSeq,
			Accounts: rep.Accounts, Cards: rep.Cards, Transfers: rep.Transfers, TxRecords: rep.TxRecords,
			Breaks: rep.Breaks, Dropped: rep.Dropped}
		if err != nil && len(rep.Breaks) == 0 {
			v.Error = err.Error()
		}
		for _, t := range rep.Totals {
			v.Totals = append(v.Totals, VerifyTotal{Currency: t.Currency, Debits: t.Debits, Credits: t.Credits,
				DebitsPending: t.DebitsPending, CreditsPending: t.CreditsPending})
		}
		if !v.OK {
			out.OK = false
			n.log.Warn("ledger verify found breaks", "region", r.Name, "breaks", len(rep.Breaks)+rep.Dropped, "err", err)
		}
		out.Regions = append(out.Regions, v)
	}
	writeJSON(w, out)
}
