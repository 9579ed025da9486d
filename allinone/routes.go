package allinone

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/junction-switch/junction/routing"
	"gopkg.in/yaml.v3"
)

// ErrNoRoutesFile is ReloadRoutes' answer when the rules come from the
// built-in configuration: there is nothing to read again.
var ErrNoRoutesFile = errors.New("routes: the built-in configuration has no file to reload the rules from")

// routesPath is the file the routing rules come from: routes_file, or the
// configuration file when the rules sit in its routes; "" when they come
// from the built-in configuration and cannot change.
func (c Config) routesPath() string {
	if c.RoutesFile != "" {
		return c.RoutesFile
	}
	return c.path
}

// ReloadRoutes reads the routing rules again and swaps them in at once:
// requests from now on are routed by the new rules, requests in flight
// finish with the old ones. The whole file is checked first; a file with
// any problem is refused with every problem named, and the rules in use
// keep serving. Rules held in the configuration file are re-read from it;
// nothing else in that file is.
func (n *Node) ReloadRoutes() error {
	n.routesMu.Lock()
	defer n.routesMu.Unlock()
	path := n.cfg.routesPath()
	if path == "" {
		return ErrNoRoutesFile
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		err = fmt.Errorf("routes: %w", err)
	} else {
		// Whatever the outcome, this content has been judged: the watcher
		// waits for the next change rather than retrying a refused file.
		n.routesDigest = sha256.Sum256(raw)
		var t *routing.Table
		if t, err = n.parseRoutes(path, raw); err == nil {
			err = n.sw.SetRoutes(t)
		}
		if err == nil {
			n.log.Info("routing rules reloaded", "file", path, "rules", len(t.Rules()))
			return nil
		}
	}
	n.log.Error("routing rules refused; the rules in use stay", "file", path, "err", err)
	return err
}

func (n *Node) parseRoutes(path string, raw []byte) (*routing.Table, error) {
	var rules []routing.Rule
	if n.cfg.RoutesFile != "" {
		var err error
		if rules, err = routing.ParseRules(raw); err != nil {
			return nil, fmt.Errorf("routes: %s: %w", path, err)
		}
	} else {
		// Only the routes key: a configuration file's other keys need a
		// restart, and reading them here would half-apply a change.
		var only struct {
			Routes []routing.Rule `yaml:"routes"`
		}
		if err := yaml.NewDecoder(bytes.NewReader(raw)).Decode(&only); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("routes: %s: %w", path, err)
		}
		rules = only.Routes
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("routes: %s has no rules: every transaction would be declined", path)
	}
	t, err := routing.NewTable(rules, n.cfg.Destinations())
	if err != nil {
		return nil, fmt.Errorf("%s:\n%w", path, err)
	}
	return t, nil
}

// watchRoutes reloads the rules when their file's content differs from
// the content last judged, checked every switch.routes_check, until ctx
// ends.
func (n *Node) watchRoutes(ctx context.Context) {
	path := n.cfg.routesPath()
	if path == "" {
		return
	}
	n.routesMu.Lock()
	n.routesDigest = fileDigest(path) // what Start loaded
	n.routesMu.Unlock()
	tick := time.NewTicker(n.cfg.Switch.RoutesCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n.routesMu.Lock()
		changed := fileDigest(path) != n.routesDigest
		n.routesMu.Unlock()
		if changed {
			n.ReloadRoutes() // logs its outcome
		}
	}
}

// fileDigest identifies a file's content; the zero value when it cannot be
// read (a reload then reports why).
func fileDigest(path string) [32]byte {
	raw, err := os.ReadFile(path)
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(raw)
}
