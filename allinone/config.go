package allinone

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/junction-switch/junction/ledger"
	"github.com/junction-switch/junction/routing"
	switching "github.com/junction-switch/junction/switch"
	"gopkg.in/yaml.v3"
)

// Config is the all-in-one deployment: channel listeners, regional ledger
// shards, routes, where files live. DefaultConfig is what `junction up`
// runs without -c; a file given with -c overrides the keys it names.
type Config struct {
	PKIDir   string         `yaml:"pki_dir"`  // dev CA, server and client certificates; created when missing
	DataDir  string         `yaml:"data_dir"` // one badger directory per region under ledger/
	HTTP     string         `yaml:"http"`     // /metrics, /healthz, /readyz
	Demo     bool           `yaml:"demo"`     // seed the demo accounts on start (idempotent)
	Limits   Limits         `yaml:"limits"`
	Dialects []DialectFile  `yaml:"dialects"` // dialects from spec files, besides the built-in ones
	MapFiles []string       `yaml:"maps"`     // conversion map files, besides the built-in ones
	Channels []Channel      `yaml:"channels"`
	Regions  []Region       `yaml:"regions"`
	Routes   []routing.Rule `yaml:"routes"`
	// RoutesFile holds the routing rules instead of routes: a file of its
	// own (see routing.File), reloaded on SIGHUP, on change and on POST
	// /admin/routes/reload.
	RoutesFile string         `yaml:"routes_file"`
	Ledger     LedgerSettings `yaml:"ledger"`
	Switch     SwitchSettings `yaml:"switch"`
	Head       HeadSettings   `yaml:"head"` // the head ledger; see head.go

	// Clock is the clock of the ledger shards and the head ledger; nil is time.Now. Not
	// configurable from a file: tests set it to book on another day.
	Clock func() time.Time `yaml:"-"`

	path string // the file LoadConfig read, if any: routes reload from it
}

// DialectFile is a dialect an operator adds from a moov-io spec file (JSON
// or YAML).
type DialectFile struct {
	Name    string `yaml:"name"`
	File    string `yaml:"file"`
	Version int    `yaml:"version"` // 1987 or 1993: the MTI version digit every message carries; 0 accepts any
}

// Limits apply to every channel listener.
type Limits struct {
	MaxFrame            int           `yaml:"max_frame"` // largest frame, fixed header included
	MaxInFlight         int           `yaml:"max_in_flight"`
	MaxConns            int           `yaml:"max_conns"`
	MaxConnsPerIdentity int           `yaml:"max_conns_per_identity"`
	HandshakeTimeout    time.Duration `yaml:"handshake_timeout"`
	FrameTimeout        time.Duration `yaml:"frame_timeout"` // a frame, once begun, must arrive within it
	TLSReload           time.Duration `yaml:"tls_reload"`    // how often certificate files are checked for changes
	IdleTimeout         time.Duration `yaml:"idle_timeout"`
	WriteTimeout        time.Duration `yaml:"write_timeout"`
}

// Channel is one mutual-TLS listener.
type Channel struct {
	Name        string     `yaml:"name"`
	Listen      string     `yaml:"listen"`
	Institution string     `yaml:"institution"` // acquiring institution id stamped into field 32
	AllowCN     []string   `yaml:"allow_cn"`    // client certificate names allowed; default: the channel name
	Identities  []Identity `yaml:"identities"`  // certificate subject → identity; see identity.go
	TLS         TLSConfig  `yaml:"tls"`         // the channel's own certificate files; default: the dev PKI
	SignOn      bool       `yaml:"sign_on"`     // requests only after 0800 sign-on (answered 91 before)
	Short       bool       `yaml:"short"`       // synchronous short connections: one request, one answer, close
	Dialect     string     `yaml:"dialect"`     // a built-in dialect or one from dialects; default iso87ascii
	Framing     Framing    `yaml:"framing"`
	// Plaintext serves the channel without TLS; see Plaintext. Never a
	// default: only a channel that sets it.
	Plaintext *Plaintext `yaml:"plaintext"`
	// Rate limits the channel's requests; IdentityRate each client
	// identity's on it. Over the limit a request is declined at once
	// (switch.overload_code). Reversals are never limited.
	Rate         *Rate `yaml:"rate"`
	IdentityRate *Rate `yaml:"identity_rate"`
	// Cutover lets the channel's peers cut the head ledger's settlement
	// window over with a network management request (0800 with 70=201;
	// 1804 with 24=821). Off by default: a cutover closes everyone's window.
	Cutover bool `yaml:"cutover"`
}

// Plaintext is a channel listener without TLS, for a port behind a
// TLS-terminating balancer or inside a trusted segment. With no client
// certificate to tell connections apart, every connection takes Identity.
type Plaintext struct {
	Identity string `yaml:"identity"` // required: who every connection speaks for (logs, per-identity limits)
	Engine   string `yaml:"engine"`   // std (default: a goroutine pair per connection) or gnet (event loops)
}

// Framing is how a channel cuts its stream into messages.
type Framing struct {
	Length string `yaml:"length"` // binary2 (default), ascii4 or bcd2
	Header int    `yaml:"header"` // fixed header bytes after the length, e.g. 5 for a TPDU
	Mirror string `yaml:"mirror"` // echo (default): the response repeats the request's header; tpdu: addresses swapped
	// TPDU is the header a client of this channel (junction send, the load
	// generator) puts on its requests, in hex; zeros when empty.
	TPDU string `yaml:"tpdu"`
}

// Region is one regional ledger shard. `junction up` runs it in process;
// with Remote, the switch reaches it over mutual-TLS links instead and
// `junction ledger --region NAME` runs it as its own process.
type Region struct {
	Name   string  `yaml:"name"`
	Remote *Remote `yaml:"remote"` // see remote.go
}

// LedgerSettings tune every shard.
type LedgerSettings struct {
	MaxBatch int `yaml:"max_batch"` // requests per durable commit
}

// SwitchSettings tune the pipeline.
type SwitchSettings struct {
	Timeout time.Duration `yaml:"timeout"` // one destination exchange, unless the route gives its own
	// Match lists the matching key's fields besides the response MTI:
	// default 11, 41, 32, 7. A key already in flight is answered 94.
	Match []int `yaml:"match"`
	// OverloadCode answers requests refused by a rate limit or a full
	// window: 91 by default.
	OverloadCode string `yaml:"overload_code"`
	// QueueBudget declines a request that waited longer than this between
	// its frame being read and the switch taking it up (0: no budget).
	QueueBudget time.Duration   `yaml:"queue_budget"`
	Balance     string          `yaml:"balance"` // p2c (default: least outstanding of two) or wrr
	Window      WindowSettings  `yaml:"window"`
	Breaker     BreakerSettings `yaml:"breaker"`
	SAF         SAFSettings     `yaml:"saf"`
	// StandIn, when set, lets routes name stand-in among their alternates:
	// purchases for a shard that cannot be reached are approved within
	// these limits and advised to the shard (0220) when it is back.
	StandIn *StandInSettings `yaml:"stand_in"`
	// RoutesCheck is how often the routing rules' file is checked for
	// changes (routes_file, or the configuration file holding routes).
	RoutesCheck time.Duration `yaml:"routes_check"`
}

// WindowSettings shape the adaptive in-flight window of every destination
// endpoint (AIMD on latency): it starts at Initial, grows by one per window
// of answers faster than Target, shrinks by a tenth when they are slower
// or fail, within Min..Max.
type WindowSettings struct {
	Initial int           `yaml:"initial"`
	Min     int           `yaml:"min"`
	Max     int           `yaml:"max"`
	Target  time.Duration `yaml:"target"`
}

// BreakerSettings: an endpoint is ejected after Failures consecutive
// failures, for Cooldown (doubling on each failed probe).
type BreakerSettings struct {
	Failures int           `yaml:"failures"`
	Cooldown time.Duration `yaml:"cooldown"`
}

// SAFSettings tune the store-and-forward queue of reversal advices and
// advices for destinations that are down. Attempts back off from
// BackoffMin to BackoffMax; an advice older than MaxAge goes to the dead
// letters (0: never).
type SAFSettings struct {
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	MaxAge     time.Duration `yaml:"max_age"`
}

// StandInSettings are stand-in's per-card limits, as decimal amounts of
// Currency: each purchase at most MaxAmount; per card and UTC day at most
// DailyAmount over at most DailyCount purchases.
type StandInSettings struct {
	Currency    uint16 `yaml:"currency"`
	MaxAmount   string `yaml:"max_amount"`
	DailyAmount string `yaml:"daily_amount"`
	DailyCount  int    `yaml:"daily_count"`
}

// limits reads the settings' amounts in the currency's minor units.
func (s *StandInSettings) limits() (switching.StandInLimits, error) {
	l := switching.StandInLimits{Currency: s.Currency, DailyCount: s.DailyCount}
	var err error
	if l.MaxAmount, err = ledger.ParseAmount(s.MaxAmount, s.Currency); err != nil {
		return l, fmt.Errorf("switch.stand_in.max_amount: %w", err)
	}
	if l.DailyAmount, err = ledger.ParseAmount(s.DailyAmount, s.Currency); err != nil {
		return l, fmt.Errorf("switch.stand_in.daily_amount: %w", err)
	}
	if l.MaxAmount <= 0 || l.DailyAmount < l.MaxAmount || l.DailyCount < 1 {
		return l, errors.New("switch.stand_in: want 0 < max_amount <= daily_amount and daily_count >= 1")
	}
	return l, nil
}

// Rate is a token-bucket limit: PerSecond requests on average, Burst at
// once.
type Rate struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// DemoBIN is the BIN of the demo cards; the two digits after it are the
// region code (GB/T 2260 province codes: 11 Beijing, 31 Shanghai).
const DemoBIN = "629990"

// DefaultConfig is the demo deployment: channels on 8583–8588 (a second
// bank speaks ISO 8583:1993 behind 4-digit ASCII lengths), two regions, the
// demo card range routed by region code.
func DefaultConfig() Config {
	return Config{
		PKIDir:  "var/pki",
		DataDir: "var/data",
		HTTP:    "127.0.0.1:9583",
		Demo:    true,
		Limits: Limits{
			MaxFrame:            8192,
			MaxInFlight:         64,
			MaxConns:            10000,
			MaxConnsPerIdentity: 1000,
			HandshakeTimeout:    10 * time.Second,
			FrameTimeout:        10 * time.Second,
			TLSReload:           30 * time.Second,
			IdleTimeout:         5 * time.Minute,
			WriteTimeout:        30 * time.Second,
		},
		Channels: []Channel{
			{Name: "pos", Listen: "127.0.0.1:8583", Institution: "10000001"},
			{Name: "kiosk", Listen: "127.0.0.1:8584", Institution: "10000002", Short: true},
			{Name: "web", Listen: "127.0.0.1:8585", Institution: "10000003"},
			{Name: "bank", Listen: "127.0.0.1:8586", Institution: "10000004", Dialect: "iso87binary",
				Framing: Framing{Length: "binary2", Header: 5, Mirror: "tpdu", TPDU: "6000010000"}, Cutover: true},
			{Name: "hotline", Listen: "127.0.0.1:8587", Institution: "10000005"},
			{Name: "bank93", Listen: "127.0.0.1:8588", Institution: "10000006", Dialect: "iso93ascii",
				Framing: Framing{Length: "ascii4"}},
		},
		Regions: []Region{{Name: "beijing"}, {Name: "shanghai"}},
		Routes: []routing.Rule{{
			Name: "demo-cards", BIN: routing.BINs{DemoBIN}, Luhn: true, MinLength: 16, MaxLength: 19,
			Region:     &routing.RegionCode{Offset: 6, Length: 2},
			Regions:    map[string]string{"11": "beijing", "31": "shanghai"},
			Alternates: []string{routing.StandIn},
		}, {
			// The hotline serves fixed-line telephone accounts without a
			// card: the area code picks the region.
			Name: "phone-accounts", Channels: []string{"hotline"},
			Region:  &routing.RegionCode{Source: "account"},
			Regions: map[string]string{"010": "beijing", "021": "shanghai"},
		}},
		Ledger: LedgerSettings{MaxBatch: 256},
		Switch: SwitchSettings{
			Timeout: 10 * time.Second, RoutesCheck: 10 * time.Second, QueueBudget: 5 * time.Second,
			Window:  WindowSettings{Initial: 256, Min: 8, Max: 4096, Target: 100 * time.Millisecond},
			Breaker: BreakerSettings{Failures: 5, Cooldown: 5 * time.Second},
			SAF:     SAFSettings{BackoffMin: time.Second, BackoffMax: 5 * time.Minute},
			StandIn: &StandInSettings{Currency: DemoCurrency, MaxAmount: "500.00", DailyAmount: "1000.00", DailyCount: 5},
		},
		Head: HeadSettings{
			Pull: 200 * time.Millisecond, Batch: 1024, Cutover: []string{"23:00"},
			Institutions: []InstitutionInfo{
				{ID: "10000001", Name: "POS acquirer", Account: "6222000010000001"},
				{ID: "10000002", Name: "Kiosk operator", Account: "6222000010000002"},
				{ID: "10000003", Name: "Web gateway", Account: "6222000010000003"},
				{ID: "10000004", Name: "Partner bank", Account: "6222000010000004"},
				{ID: "10000005", Name: "Telephone hotline", Account: "6222000010000005"},
				{ID: "10000006", Name: "Partner bank (ISO 8583:1993)", Account: "6222000010000006"},
			},
			Fees: FeeSettings{
				Default: FeeRule{Rate: "0.0038", Fixed: map[string]string{"payment": "0.50"}},
			},
			Recon: ReconSettings{Tolerance: "0.00", DateTolerance: 0, Partners: []PartnerConfig{{Org: "SDDL", Acquirer: "10000004"}}},
		},
	}
}

// LocalConfig is the demo deployment on free loopback ports (port 0), with
// its certificates and data under dir and no HTTP endpoint: what tests and
// benchmarks run, several side by side.
func LocalConfig(dir string) Config {
	c := DefaultConfig()
	c.PKIDir = filepath.Join(dir, "pki")
	c.DataDir = filepath.Join(dir, "data")
	c.HTTP = ""
	for i := range c.Channels {
		c.Channels[i].Listen = "127.0.0.1:0"
	}
	return c
}

// LoadConfig reads a YAML file over DefaultConfig; an empty path means
// DefaultConfig alone, validated. Unknown keys are errors,
// reported with their line; then the whole configuration is validated.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		return cfg, cfg.Validate()
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	// A list in the file replaces the default list as a whole: a file that
	// names two channels runs two channels.
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // an empty file means all defaults
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.path = path
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %s:\n%w", path, err)
	}
	return cfg, nil
}

var channelName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Validate checks the whole configuration and returns every problem, each
// naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.PKIDir == "" {
		bad("pki_dir", "is empty")
	}
	if c.DataDir == "" {
		bad("data_dir", "is empty")
	}
	if c.HTTP != "" {
		if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
			bad("http", "%v", err)
		}
	}
	l := c.Limits
	if l.MaxFrame < 64 || l.MaxFrame > 65535 {
		bad("limits.max_frame", "%d must be 64–65535 (2-byte length header)", l.MaxFrame)
	}
	if l.MaxInFlight < 1 {
		bad("limits.max_in_flight", "%d must be at least 1", l.MaxInFlight)
	}
	if l.MaxConns < 1 {
		bad("limits.max_conns", "%d must be at least 1", l.MaxConns)
	}
	if l.MaxConnsPerIdentity < 1 {
		bad("limits.max_conns_per_identity", "%d must be at least 1", l.MaxConnsPerIdentity)
	}
	for key, d := range map[string]time.Duration{
		"limits.handshake_timeout": l.HandshakeTimeout, "limits.idle_timeout": l.IdleTimeout,
		"limits.frame_timeout": l.FrameTimeout, "limits.tls_reload": l.TLSReload,
		"limits.write_timeout": l.WriteTimeout, "switch.timeout": c.Switch.Timeout,
		"switch.routes_check": c.Switch.RoutesCheck,
	} {
		if d <= 0 {
			bad(key, "%v must be positive", d)
		}
	}
	if c.Ledger.MaxBatch < 1 || c.Ledger.MaxBatch > 8192 {
		bad("ledger.max_batch", "%d must be 1–8192", c.Ledger.MaxBatch)
	}

	if len(c.Channels) == 0 {
		bad("channels", "no channel to listen on")
	}
	names, addrs := map[string]bool{}, map[string]string{}
	for i, ch := range c.Channels {
		key := fmt.Sprintf("channels[%d]", i)
		if !channelName.MatchString(ch.Name) {
			bad(key+".name", "%q must be lowercase letters, digits and dashes", ch.Name)
		} else if names[ch.Name] {
			bad(key+".name", "%q is used twice", ch.Name)
		}
		names[ch.Name] = true
		if _, _, err := net.SplitHostPort(ch.Listen); err != nil {
			bad(key+".listen", "%v", err)
		} else if other, dup := addrs[ch.Listen]; dup && !strings.HasSuffix(ch.Listen, ":0") {
			bad(key+".listen", "%s is also the address of channel %s", ch.Listen, other)
		}
		addrs[ch.Listen] = ch.Name
		if ch.Institution == "" || len(ch.Institution) > 11 || !allDigits(ch.Institution) {
			bad(key+".institution", "%q must be 1–11 digits (field 32)", ch.Institution)
		}
	}
	if set, err := c.DialectSet(); err != nil {
		errs = append(errs, err)
	} else if _, err := c.Wires(set); err != nil {
		errs = append(errs, err)
	}

	if len(c.Regions) == 0 {
		bad("regions", "no regional ledger shard")
	}
	dests := map[string]bool{}
	for i, r := range c.Regions {
		key := fmt.Sprintf("regions[%d].name", i)
		if !channelName.MatchString(r.Name) {
			bad(key, "%q must be lowercase letters, digits and dashes (it names a directory)", r.Name)
		} else if dests[r.Name] {
			bad(key, "%q is used twice", r.Name)
		}
		dests[r.Name] = true
	}
	errs = append(errs, c.validateRemotes()...)
	errs = append(errs, c.validateIdentities()...)
	if _, err := c.RoutingTable(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateFlow()...)
	errs = append(errs, c.validateHead()...)
	return errors.Join(errs...)
}

// Destinations are the names routing rules may use: the regions, and
// stand-in when it is configured.
func (c Config) Destinations() map[string]bool {
	dests := map[string]bool{}
	for _, r := range c.Regions {
		dests[r.Name] = true
	}
	if c.Switch.StandIn != nil {
		dests[routing.StandIn] = true
	}
	return dests
}

// RoutingTable reads and checks the routing rules: routes_file when it is
// set, routes otherwise.
func (c Config) RoutingTable() (*routing.Table, error) {
	if c.RoutesFile != "" {
		if len(c.Routes) > 0 {
			return nil, errors.New("routes_file: give the rules in routes or in routes_file, not both")
		}
		return routing.LoadFile(c.RoutesFile, c.Destinations())
	}
	if len(c.Routes) == 0 {
		return nil, errors.New("routes: no route: every transaction would be declined")
	}
	return routing.NewTable(c.Routes, c.Destinations())
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validateFlow checks the switch's flow control settings and the channels'
// rate limits.
func (c Config) validateFlow() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	sw := c.Switch
	if sw.QueueBudget < 0 {
		bad("switch.queue_budget", "%v must not be negative (0: no budget)", sw.QueueBudget)
	}
	if sw.OverloadCode != "" && len(sw.OverloadCode) != 2 {
		bad("switch.overload_code", "%q must be a two-character response code", sw.OverloadCode)
	}
	if _, err := switching.ParseStrategy(sw.Balance); err != nil {
		bad("switch.balance", "%q: want p2c or wrr", sw.Balance)
	}
	w := sw.Window
	if w.Min < 1 || w.Max < w.Min || w.Initial < w.Min || w.Initial > w.Max || w.Target <= 0 {
		bad("switch.window", "want 1 <= min <= initial <= max and a positive target (got %d, %d, %d, %v)", w.Min, w.Initial, w.Max, w.Target)
	}
	if sw.StandIn != nil {
		if _, err := sw.StandIn.limits(); err != nil {
			errs = append(errs, err)
		}
	}
	if sw.Breaker.Failures < 1 || sw.Breaker.Cooldown <= 0 {
		bad("switch.breaker", "failures must be at least 1 and cooldown positive")
	}
	if sw.SAF.BackoffMin <= 0 || sw.SAF.BackoffMax < sw.SAF.BackoffMin || sw.SAF.MaxAge < 0 {
		bad("switch.saf", "want 0 < backoff_min <= backoff_max and max_age >= 0")
	}
	for i, ch := range c.Channels {
		for _, r := range []struct {
			key  string
			rate *Rate
		}{{"rate", ch.Rate}, {"identity_rate", ch.IdentityRate}} {
			if r.rate != nil && (r.rate.PerSecond <= 0 || r.rate.Burst < 1) {
				bad(fmt.Sprintf("channels[%d].%s", i, r.key), "per_second must be positive and burst at least 1")
			}
		}
	}
	return errs
}
