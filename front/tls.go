package front

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// ErrIdentity is wrapped by the handshake error when a client certificate
// chains to the CA but no identity rule of the listener admits it.
var ErrIdentity = errors.New("front: client certificate not allowed on this channel")

// TLSFiles names the PEM files of one side of a mutual-TLS connection.
type TLSFiles struct {
	Cert, Key string // this side's certificate chain and private key
	CA        string // the CA the other side's certificate must chain to
}

// cipherSuites are the TLS 1.2 suites a channel accepts: forward-secret
// AEAD only. TLS 1.3 suites are not configurable in crypto/tls and are all
// AEAD.
func cipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// IdentityRule admits client certificates to a listener and says who they
// are. CN, OU and SAN are patterns: exact, or a prefix ending in '*'; an
// empty pattern matches anything, and a rule needs at least one. SAN
// matches any DNS name, URI or e-mail address of the certificate.
type IdentityRule struct {
	CN, OU, SAN string
	Institution string // acquiring institution id (field 32); empty: the channel's
	Group       string // terminal group, for limits and routing
}

// Identity is who a connection speaks for, from the rule that admitted its
// certificate.
type Identity struct {
	Name        string // the certificate's common name
	Institution string
	Group       string
}

func matchPattern(p, v string) bool {
	if p == "" {
		return true
	}
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return strings.HasPrefix(v, prefix)
	}
	return p == v
}

// Match reports whether the rule admits cert.
func (r *IdentityRule) Match(cert *x509.Certificate) bool {
	if !matchPattern(r.CN, cert.Subject.CommonName) {
		return false
	}
	if r.OU != "" {
		ok := false
		for _, ou := range cert.Subject.OrganizationalUnit {
			ok = ok || matchPattern(r.OU, ou)
		}
		if !ok {
			return false
		}
	}
	if r.SAN != "" {
		var sans []string
		sans = append(sans, cert.DNSNames...)
		sans = append(sans, cert.EmailAddresses...)
		for _, u := range cert.URIs {
			sans = append(sans, u.String())
		}
		ok := false
		for _, s := range sans {
			ok = ok || matchPattern(r.SAN, s)
		}
		if !ok {
			return false
		}
	}
	return true
}

// identify returns the identity of the first rule admitting cert.
func identify(rules []IdentityRule, cert *x509.Certificate, channelInstitution string) (Identity, bool) {
	for i := range rules {
		if rules[i].Match(cert) {
			id := Identity{Name: cert.Subject.CommonName, Institution: rules[i].Institution, Group: rules[i].Group}
			if id.Institution == "" {
				id.Institution = channelInstitution
			}
			return id, true
		}
	}
	return Identity{}, false
}

// TLSSource serves a listener's TLS configuration from PEM files and
// reloads them on demand (Reload, on SIGHUP) or when they change on disk
// (Watch), without touching open connections: handshakes after the swap
// use the new certificate and CA, connections already open carry on. A
// reload that fails keeps the configuration in use and says why. Session
// tickets stay on, with keys that survive reloads, so a short-connection
// terminal resumes instead of paying a full handshake.
type TLSSource struct {
	files   TLSFiles
	log     *slog.Logger
	base    *tls.Config // what clients see; its GetConfigForClient hands out cur
	cur     atomic.Pointer[tls.Config]
	digest  [32]byte // of the files last loaded
	reloads atomic.Uint64
}

// NewTLSSource loads the files; the source's configuration requires and
// verifies client certificates.
func NewTLSSource(f TLSFiles, log *slog.Logger) (*TLSSource, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &TLSSource{files: f, log: log}
	if _, err := s.load(); err != nil {
		return nil, err
	}
	s.base = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		// The handshake uses the configuration current when it starts. The
		// base's own session ticket keys are used for every handshake, so
		// tickets issued before a reload still resume after it.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return s.cur.Load(), nil },
	}
	return s, nil
}

// load reads the files and swaps them in when they differ from the last
// load; it reports whether they did.
func (s *TLSSource) load() (bool, error) {
	var raw [3][]byte
	for i, name := range []string{s.files.Cert, s.files.Key, s.files.CA} {
		b, err := os.ReadFile(name)
		if err != nil {
			return false, fmt.Errorf("front: TLS files: %w", err)
		}
		raw[i] = b
	}
	digest := sha256.Sum256(bytes.Join(raw[:], []byte{0}))
	if digest == s.digest && s.cur.Load() != nil {
		return false, nil
	}
	cert, err := tls.X509KeyPair(raw[0], raw[1])
	if err != nil {
		return false, fmt.Errorf("front: server certificate %s / %s: %w", s.files.Cert, s.files.Key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw[2]) {
		return false, fmt.Errorf("front: CA file %s holds no PEM certificate", s.files.CA)
	}
	s.cur.Store(&tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites(),
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	s.digest = digest
	return true, nil
}

// Reload reads the files again and swaps in what changed. On error the
// configuration in use stays.
func (s *TLSSource) Reload() error {
	changed, err := s.load()
	switch {
	case err != nil:
		s.log.Error("TLS reload failed; keeping the certificates in use", "cert", s.files.Cert, "err", err)
	case changed:
		s.reloads.Add(1)
		s.log.Info("TLS certificates reloaded", "cert", s.files.Cert, "ca", s.files.CA)
	}
	return err
}

// Reloads counts the reloads that changed something.
func (s *TLSSource) Reloads() uint64 { return s.reloads.Load() }

// Watch reloads every interval until ctx ends; unchanged files cost a read
// and a hash.
func (s *TLSSource) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Reload()
		}
	}
}

// Config is the listener configuration to give front.Channel.TLS.
func (s *TLSSource) Config() *tls.Config { return s.base }

// ServerTLS is a fixed (not reloading) listener configuration from files,
// for tests and tools. When allowCN is not empty, only client certificates
// with one of those common names are admitted.
func ServerTLS(f TLSFiles, allowCN []string) (*tls.Config, error) {
	s, err := NewTLSSource(f, nil)
	if err != nil {
		return nil, err
	}
	if len(allowCN) == 0 {
		return s.Config(), nil
	}
	rules := make([]IdentityRule, len(allowCN))
	for i, cn := range allowCN {
		rules[i] = IdentityRule{CN: cn}
	}
	return withIdentities(s.Config(), rules), nil
}

// withIdentities wraps a server configuration so that every handshake,
// resumptions included, also checks the client certificate against rules.
// With GetConfigForClient only the configuration it returns is consulted,
// so the check is added to that one, per handshake.
func withIdentities(base *tls.Config, rules []IdentityRule) *tls.Config {
	verify := func(cs tls.ConnectionState) error {
		// Runs after chain verification: PeerCertificates[0] is verified.
		if len(cs.PeerCertificates) == 0 {
			return ErrIdentity
		}
		cert := cs.PeerCertificates[0]
		if _, ok := identify(rules, cert, ""); !ok {
			return fmt.Errorf("%w: CN %q OU %q", ErrIdentity, cert.Subject.CommonName, cert.Subject.OrganizationalUnit)
		}
		return nil
	}
	cfg := base.Clone()
	inner := base.GetConfigForClient
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := base
		if inner != nil {
			got, err := inner(hello)
			if err != nil {
				return nil, err
			}
			if got != nil {
				c = got
			}
		}
		c = c.Clone()
		if prev := c.VerifyConnection; prev != nil {
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				if err := prev(cs); err != nil {
					return err
				}
				return verify(cs)
			}
		} else {
			c.VerifyConnection = verify
		}
		return c, nil
	}
	return cfg
}

// ClientTLS builds a channel client's TLS configuration: it presents f.Cert,
// accepts only a server certificate for serverName that chains to f.CA, and
// keeps session tickets to resume later connections.
func ClientTLS(f TLSFiles, serverName string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("front: client certificate %s / %s: %w", f.Cert, f.Key, err)
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("front: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("front: CA file %s holds no PEM certificate", f.CA)
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		CipherSuites:       cipherSuites(),
		Certificates:       []tls.Certificate{cert},
		RootCAs:            pool,
		ServerName:         serverName,
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}, nil
}
