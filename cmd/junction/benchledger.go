package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/junction-switch/junction/allinone"
	"github.com/junction-switch/junction/bench"
	"github.com/junction-switch/junction/routing"
)

// What `junction bench --accounts N` asks of the switch's HTTP port, and
// the online ledger verify after its audit.

// benchSerial is the first serial number of the cards --accounts creates:
// far from the demo cards' (0000001, 0000002), and the same on every run,
// so that a second run reuses the cards of the first.
const benchSerial = 9_000_000

// benchOpening is what each of those cards opens with, 100 000 000.00 in
// the demo currency: a run of a million 0.01 purchases a second on one card
// would take 10 days to spend it. Fixed, so that the opening deposit of a
// card opened by an earlier run is replayed, not refused as different.
const benchOpening = "100000000.00"

// benchCards makes n card numbers in the demo BIN that the configuration's
// routing rules send to its in-process regions, in turn: the BIN, the
// first region code (two digits) the rules map to each region, a serial
// from benchSerial, the Luhn digit. They are 16 digits, like the demo
// cards. It returns the PANs and how many go to each region.
func benchCards(cfg allinone.Config, n int) ([]string, map[string]int, error) {
	if n > 999_999 {
		return nil, nil, fmt.Errorf("--accounts %d: at most 999999", n)
	}
	routes, err := cfg.RoutingTable()
	if err != nil {
		return nil, nil, err
	}
	local := map[string]bool{}
	for _, r := range cfg.Regions {
		local[r.Name] = r.Remote == nil // a remote shard opens its own cards
	}
	var codes, regions []string
	taken := map[string]bool{}
	for c := range 100 {
		code := fmt.Sprintf("%02d", c)
		d := routes.Route([]byte(benchPAN(code, benchSerial)))
		if local[d.Destination] && !taken[d.Destination] {
			taken[d.Destination] = true
			codes, regions = append(codes, code), append(regions, d.Destination)
		}
	}
	if len(codes) == 0 {
		return nil, nil, fmt.Errorf("--accounts: no card in BIN %s routes to a region whose shard runs in `junction up`", allinone.DemoBIN)
	}
	pans, spread := make([]string, n), map[string]int{}
	for i := range pans {
		k := i % len(codes)
		pans[i] = benchPAN(codes[k], benchSerial+i)
		if d := routes.Route([]byte(pans[i])); d.Destination != regions[k] {
			return nil, nil, fmt.Errorf("--accounts: card %d routes to %q, not %s (rule %q)", i+1, d.Destination, regions[k], d.Rule)
		}
		spread[regions[k]]++
	}
	return pans, spread, nil
}

func benchPAN(code string, serial int) string {
	p := fmt.Sprintf("%s%s%07d", allinone.DemoBIN, code, serial)
	return p + string(routing.LuhnDigit(p))
}

// openCards opens the cards on the switch at addr (POST /admin/accounts),
// each with benchOpening, a few at a time. It returns how many it opened
// now (the others were open already) and the lowest balance among them,
// in minor units.
func openCards(ctx context.Context, addr string, pans []string) (opened int, lowest int64, err error) {
	if addr == "" {
		return 0, 0, errors.New("--accounts: the switch has no HTTP port (http in the configuration) to open cards on")
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
		seen bool
	)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				a, err := openCard(ctx, addr, allinone.OpenAccountRequest{PAN: pans[i], Type: "card", Currency: allinone.DemoCurrency,
					Name: fmt.Sprintf("bench card %d", i+1), Opening: benchOpening})
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("card %d (%s): %w", i+1, a.PAN, err))
				default:
					if a.Opened {
						opened++
					}
					if !seen || a.Minor < lowest {
						lowest, seen = a.Minor, true
					}
				}
				mu.Unlock()
			}
		})
	}
	for i := range pans {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return opened, lowest, fmt.Errorf("--accounts: %w", errors.Join(errs[:min(len(errs), 5)]...))
	}
	return opened, lowest, ctx.Err()
}

func openCard(ctx context.Context, addr string, r allinone.OpenAccountRequest) (allinone.OpenedAccount, error) {
	out := allinone.OpenedAccount{PAN: "card"}
	body, _ := json.Marshal(r)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/admin/accounts", bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		// The switch masks the PAN in what it answers.
		return out, fmt.Errorf("/admin/accounts answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("/admin/accounts: %w", err)
	}
	return out, nil
}

// switchVerify asks the switch at addr to verify its in-process shards
// (GET /admin/ledger/verify). A verify that could not be asked comes back
// with Error set: it did not run.
func switchVerify(ctx context.Context, addr string) *bench.Verify {
	if addr == "" {
		return &bench.Verify{Error: "the switch has no HTTP port (http in the configuration) to ask"}
	}
	// A shard with millions of entries takes a while.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var ans allinone.LedgerVerify
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/admin/ledger/verify", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("/admin/ledger/verify answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		return json.NewDecoder(resp.Body).Decode(&ans)
	}()
	if err != nil {
		return &bench.Verify{Error: err.Error()}
	}
	v := &bench.Verify{Passed: ans.OK}
	for _, r := range ans.Regions {
		if r.Remote {
			v.Remote = append(v.Remote, r.Region)
			continue
		}
		breaks := r.Breaks
		if r.Error != "" {
			breaks = append(breaks, r.Error)
		}
		if r.Dropped > 0 {
			breaks = append(breaks, fmt.Sprintf("and %d more", r.Dropped))
		}
		v.Shards = append(v.Shards, bench.VerifiedShard{Region: r.Region, OK: r.OK, Entries: r.Transfers, Breaks: breaks})
	}
	return v
}
