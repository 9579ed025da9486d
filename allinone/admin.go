package allinone

import (
	"encoding/json"
	"net/http"
	"time"

	switching "github.com/junction-switch/junction/switch"
)

// The admin endpoints sit on the HTTP port (loopback by default): POST
// /admin/routes/reload (routes.go), GET /admin/destinations, GET /admin/saf.

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
