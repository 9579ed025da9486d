package allinone

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/pki"
	switching "github.com/junction-switch/junction/switch"
)

// Remote is how the switch reaches a region's shard running as its own
// process (`junction ledger --region NAME`), and where that process
// listens. Both sides read the same settings: the dialect and framing are
// the link's, the rest tune the switch's side.
type Remote struct {
	Listen    string   `yaml:"listen"`    // where the shard process accepts the switch's links
	Endpoints []string `yaml:"endpoints"` // where the switch connects, one link each; default: listen
	Dialect   string   `yaml:"dialect"`   // default iso87binary; must share the switch's layout
	Framing   Framing  `yaml:"framing"`   // default binary2, no header
	// Conns is the persistent connections per endpoint (default 2),
	// MaxInFlight the requests in flight per connection (default 256).
	Conns       int           `yaml:"conns"`
	MaxInFlight int           `yaml:"max_in_flight"`
	Echo        time.Duration `yaml:"echo"`    // heartbeat after this long without traffic; default 10s
	SignOn      *bool         `yaml:"sign_on"` // sign on before traffic; default true (the shard requires it)
	Timeout     time.Duration `yaml:"timeout"` // one exchange or heartbeat; default switch.timeout
	// Journal is where the shard process serves its journal, cutovers and
	// reconciliation adjustments to the head ledger (HTTPS, mutual TLS,
	// only the switch's certificate), and where the head connects. Without
	// it the head cannot merge the region: it is left out of the general
	// ledger and of what a window waits for before it closes.
	Journal string `yaml:"journal"`
}

// SwitchIdentity is the common name of the client certificate the switch
// presents on its links to remote shards, and the only one a shard process
// admits. The dev PKI issues it when a region is remote.
const SwitchIdentity = "switch"

// RemoteDialect is the default dialect of the links to remote shards:
// 1987 binary, the 1987 layout in half the bytes.
const RemoteDialect = "iso87binary"

// remoteMatch is the matching key of a remote shard's link: besides the
// response MTI, the fields of the shard's idempotency key (ledger.TxIDOf).
// The link to a shard does not re-stamp the STAN (a retransmission must
// reach the shard with the fields it was first booked under), so only
// these make a key unique; two requests in flight with the same key are
// the same transaction, and the second is refused.
var remoteMatch = []int{7, 11, 32, 41}

// remoteWire is a region's remote settings resolved, defaults applied.
type remoteWire struct {
	Wire
	listen      string
	endpoints   []string
	conns       int
	maxInFlight int
	echo        time.Duration
	timeout     time.Duration
	signOn      bool
}

// remoteWire resolves r against the dialects of set. Errors name their key
// under prefix (regions[i].remote).
func (c Config) remoteWire(r *Remote, set map[string]*codec.Dialect, prefix string) (remoteWire, []error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", prefix, key, fmt.Sprintf(format, args...)))
	}
	rw := remoteWire{listen: r.Listen, endpoints: r.Endpoints, conns: r.Conns, maxInFlight: r.MaxInFlight,
		echo: r.Echo, timeout: r.Timeout, signOn: r.SignOn == nil || *r.SignOn}
	if r.Listen == "" {
		bad("listen", "is empty: the shard process needs an address to listen on")
	} else if _, _, err := net.SplitHostPort(r.Listen); err != nil {
		bad("listen", "%v", err)
	}
	if len(rw.endpoints) == 0 && r.Listen != "" {
		if strings.HasSuffix(r.Listen, ":0") {
			bad("endpoints", "listen %s picks a free port, so the switch cannot find it: name the endpoints", r.Listen)
		}
		rw.endpoints = []string{r.Listen}
	} else {
		for j, ep := range r.Endpoints {
			if _, port, err := net.SplitHostPort(ep); err != nil {
				bad(fmt.Sprintf("endpoints[%d]", j), "%v", err)
			} else if port == "0" || port == "" {
				bad(fmt.Sprintf("endpoints[%d]", j), "%s names no port", ep)
			}
		}
	}
	if r.Journal != "" {
		if _, port, err := net.SplitHostPort(r.Journal); err != nil {
			bad("journal", "%v", err)
		} else if port == "0" || port == "" {
			bad("journal", "%s names no port: the head could not find it", r.Journal)
		}
	}
	switch {
	case r.Conns < 0:
		bad("conns", "%d must not be negative (0 takes the default)", r.Conns)
	case r.Conns > 64:
		bad("conns", "%d connections per endpoint is more than 64", r.Conns)
	}
	switch {
	case r.MaxInFlight < 0:
		bad("max_in_flight", "%d must not be negative (0 takes the default)", r.MaxInFlight)
	case r.MaxInFlight > 65535:
		bad("max_in_flight", "%d is more than 65535", r.MaxInFlight)
	}
	if r.Echo < 0 {
		bad("echo", "%v must not be negative (0 takes the default)", r.Echo)
	}
	if r.Timeout < 0 {
		bad("timeout", "%v must not be negative (0 takes the default)", r.Timeout)
	}
	if rw.conns == 0 {
		rw.conns = 2
	}
	if rw.maxInFlight == 0 {
		rw.maxInFlight = 256
	}
	if rw.echo == 0 {
		rw.echo = 10 * time.Second
	}
	if rw.timeout == 0 {
		rw.timeout = c.Switch.Timeout
	}

	dialect := r.Dialect
	if dialect == "" {
		dialect = RemoteDialect
	}
	w, err := Channel{Dialect: dialect, Framing: r.Framing}.wire(set, c.Limits.MaxFrame)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s.%w", prefix, err)) // wire names the key
		return rw, errs
	}
	if internal := set[SwitchDialect]; internal != nil && !w.Dialect.SameLayout(internal) {
		// A conversion to another layout re-stamps or derives fields 7 and
		// 11, which make the shard's idempotency key: a retransmission
		// would be booked twice.
		bad("dialect", "%s differs in layout from the switch's %s; a shard link carries the 1987 layout unconverted, so that retransmissions keep their idempotency key",
			dialect, SwitchDialect)
	}
	rw.Wire = w
	return rw, errs
}

// remote reports whether any region's shard runs as its own process.
func (c Config) remote() bool {
	for _, r := range c.Regions {
		if r.Remote != nil {
			return true
		}
	}
	return false
}

// validateRemotes checks the remote settings of every region, reporting
// every problem with its key.
func (c Config) validateRemotes() []error {
	if !c.remote() {
		return nil
	}
	set, _ := c.DialectSet() // its errors are Validate's to report
	var errs []error
	listens := map[string]string{}
	for i, r := range c.Regions {
		if r.Remote == nil {
			continue
		}
		prefix := fmt.Sprintf("regions[%d].remote", i)
		_, e := c.remoteWire(r.Remote, set, prefix)
		errs = append(errs, e...)
		if l := r.Remote.Listen; l != "" && !strings.HasSuffix(l, ":0") {
			if other, dup := listens[l]; dup {
				errs = append(errs, fmt.Errorf("%s.listen: %s is also where region %s listens", prefix, l, other))
			}
			listens[l] = r.Name
		}
	}
	for i, ch := range c.Channels {
		if ch.Name == SwitchIdentity {
			errs = append(errs, fmt.Errorf("channels[%d].name: %q is the identity the switch presents to remote shards; a channel of that name would share its certificate", i, ch.Name))
		}
	}
	return errs
}

// remoteRegion is a region reached over links: one Link per endpoint,
// balanced by a switching.Pool (breaker, window, least outstanding).
type remoteRegion struct {
	name  string
	links []*front.Link
	pool  *switching.Pool
}

// remoteDestination is the destination of a region reached over links:
// mutual TLS with the dev PKI's "switch" client certificate, the remote
// dialect and framing, sign-on, heartbeats and reconnection by the links.
func (n *Node) remoteDestination(r Region) (*remoteRegion, error) {
	set, err := n.cfg.DialectSet()
	if err != nil {
		return nil, err
	}
	rw, errs := n.cfg.remoteWire(r.Remote, set, "remote")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m, err := codec.CopyMap(set[SwitchDialect], rw.Dialect)
	if err != nil {
		return nil, err
	}
	cert, key := pki.ClientFiles(n.cfg.PKIDir, SwitchIdentity)
	tlsCfg, err := front.ClientTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(n.cfg.PKIDir)}, "localhost")
	if err != nil {
		return nil, err
	}
	d := &remoteRegion{name: r.Name}
	var members []switching.Member
	for i, ep := range rw.endpoints {
		l, err := front.NewLink(front.LinkOptions{
			Name: fmt.Sprintf("%s-%d", r.Name, i+1), Addr: ep, TLS: tlsCfg, Map: m,
			Framing: rw.Framing, Header: rw.Header,
			Conns: rw.conns, MaxInFlight: rw.maxInFlight, Match: remoteMatch,
			Timeout: rw.timeout, Echo: rw.echo, SignOn: rw.signOn,
			Logger: n.log.With("region", r.Name), Registerer: n.registry,
		})
		if err != nil {
			d.Close()
			return nil, err
		}
		d.links = append(d.links, l)
		members = append(members, switching.Member{Name: l.Name(), Dest: l})
	}
	if d.pool, err = n.pool(r.Name, members); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Close closes the links, answering what is in flight first.
func (d *remoteRegion) Close() error {
	var errs []error
	for _, l := range d.links {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// endpoints lists the addresses of the region's links.
func (d *remoteRegion) endpoints() []string {
	eps := make([]string, len(d.links))
	for i, l := range d.links {
		eps[i] = l.Addr()
	}
	return eps
}
