package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	devCAName     = "junction dev CA"
	devServerName = "junction dev server"
	devOrg        = "junction dev"
	channelOU     = "channel"
	clientsDir    = "clients"

	// The channel name is the client certificate's CN, and RFC 5280 caps a CN at 64 characters.
	maxChannelLen = 64
)

// DevOptions says what EnsureDev creates.
type DevOptions struct {
	Channels []string  // one client certificate per name, CN = name, OU = "channel"
	Hosts    []string  // server certificate SANs: DNS names and IP literals; localhost, 127.0.0.1 and ::1 when empty
	Now      time.Time // time.Now when zero
}

// CAFile returns the path of the CA certificate in a dev PKI directory: dir/ca.crt.
func CAFile(dir string) string { return filepath.Join(dir, "ca.crt") }

func caKeyFile(dir string) string { return filepath.Join(dir, "ca.key") }

// ServerFiles returns the paths of the server certificate and key in a dev PKI directory.
func ServerFiles(dir string) (cert, key string) {
	return filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
}

// ClientFiles returns the paths of a channel's client certificate and key in a dev PKI
// directory: dir/clients/<channel>.crt and .key.
func ClientFiles(dir, channel string) (cert, key string) {
	base := filepath.Join(dir, clientsDir, channel)
	return base + ".crt", base + ".key"
}

// EnsureDev makes sure dir holds a dev PKI:
//
//	dir/ca.crt, dir/ca.key, dir/server.crt, dir/server.key,
//	dir/clients/<channel>.crt and dir/clients/<channel>.key for each channel.
//
// Missing files are created; existing ones are kept and checked: each existing pair must parse,
// its key must match its certificate, and the certificate must verify against ca.crt at o.Now
// for its purpose (and cover every host, or name its channel). A pair is missing only when both
// of its files are; a lone half, or leaves without their CA, is an ErrInconsistent error. All
// problems are reported together, and nothing is written unless there are none.
//
// It returns the paths of the files it created (empty when nothing was missing). If writing
// fails part way, it returns the files written so far along with the error.
func EnsureDev(dir string, o DevOptions) (created []string, err error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	now := orNow(o.Now)
	leaves := o.leaves(dir, now)
	caCert, caKey := CAFile(dir), caKeyFile(dir)

	haveCA, err := survey(dir, leaves)
	if err != nil {
		return nil, err
	}

	var a *Authority
	if haveCA {
		a, err = LoadAuthority(caCert, caKey)
		if err != nil {
			if errors.Is(err, ErrMalformed) || errors.Is(err, ErrKeyMismatch) || errors.Is(err, ErrNotCA) {
				err = fmt.Errorf("%w; restore the CA files or remove the directory %s to start a new dev CA", err, dir)
			}
			return nil, err
		}
		var errs []error
		for _, l := range leaves {
			if l.present {
				errs = append(errs, l.check(a, caCert, now))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	} else {
		if a, err = NewAuthority(devCAName, now); err != nil {
			return nil, err
		}
		keyPEM, err := encodeKey(a.Key)
		if err != nil {
			return nil, err
		}
		if err := writePair(caCert, caKey, a.CertPEM, keyPEM); err != nil {
			return nil, err
		}
		created = append(created, caCert, caKey)
	}

	for _, l := range leaves {
		if l.present {
			continue
		}
		certPEM, keyPEM, err := a.Issue(l.req)
		if err != nil {
			return created, err
		}
		if err := writePair(l.cert, l.key, certPEM, keyPEM); err != nil {
			return created, err
		}
		created = append(created, l.cert, l.key)
	}
	return created, nil
}

// leaf is one certificate/key pair that EnsureDev looks after.
type leaf struct {
	cert, key string
	req       Request          // what to issue when the pair is missing
	usage     x509.ExtKeyUsage // what an existing certificate must verify for
	hosts     []string         // a server certificate must cover each of these
	channel   string           // a client certificate's CN must be this
	present   bool             // both files exist; set by survey
}

func (o DevOptions) validate() error {
	var errs []error
	seen := make(map[string]bool, len(o.Channels))
	for _, ch := range o.Channels {
		if err := checkChannel(ch); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[ch] {
			errs = append(errs, fmt.Errorf("%w: %q is listed twice", ErrInvalidChannel, ch))
		}
		seen[ch] = true
	}
	for _, h := range o.Hosts {
		if net.ParseIP(h) == nil && !isHostName(h) {
			errs = append(errs, fmt.Errorf("%w: host %q is neither an IP address nor a DNS name", ErrInvalidRequest, h))
		}
	}
	return errors.Join(errs...)
}

func checkChannel(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidChannel)
	}
	if len(name) > maxChannelLen {
		return fmt.Errorf("%w: %q is longer than %d characters", ErrInvalidChannel, name, maxChannelLen)
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%w: %q: only a-z, 0-9 and '-' may be used, because the name becomes a file name", ErrInvalidChannel, name)
		}
	}
	return nil
}

// isHostName accepts what may sit in a DNS SAN, wildcards included; it is a guard against
// typos such as "[::1]" or "localhost:8583", not a full RFC 1123 check.
func isHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '*') {
			return false
		}
	}
	return true
}

func (o DevOptions) leaves(dir string, now time.Time) []leaf {
	hosts := o.Hosts
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	var dns []string
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	serverCert, serverKey := ServerFiles(dir)
	leaves := []leaf{{
		cert:  serverCert,
		key:   serverKey,
		usage: x509.ExtKeyUsageServerAuth,
		hosts: hosts,
		req: Request{
			CommonName:   devServerName,
			Organization: devOrg,
			DNSNames:     dns,
			IPAddresses:  ips,
			Server:       true,
			Now:          now,
		},
	}}
	for _, ch := range o.Channels {
		cert, key := ClientFiles(dir, ch)
		leaves = append(leaves, leaf{
			cert:    cert,
			key:     key,
			usage:   x509.ExtKeyUsageClientAuth,
			channel: ch,
			req: Request{
				CommonName:   ch,
				Organization: devOrg,
				OrgUnit:      channelOU,
				Client:       true,
				Now:          now,
			},
		})
	}
	return leaves
}

// survey finds out which files exist. It marks the leaves whose pair is complete and reports
// whether the CA pair is. Every half pair, and any certificate left behind by a CA that is gone,
// is an ErrInconsistent error; they are all returned together.
func survey(dir string, leaves []leaf) (haveCA bool, err error) {
	caCert, caKey := CAFile(dir), caKeyFile(dir)
	certOK, keyOK, err := pairExists(caCert, caKey)
	if err != nil {
		return false, err
	}
	var errs []error
	// Losing one CA file strands every certificate it issued, so the only fresh start is a
	// fresh directory.
	caAdvice := fmt.Sprintf("restore it or remove the directory %s to start a new dev CA", dir)
	switch {
	case certOK && !keyOK:
		errs = append(errs, fmt.Errorf("%w: %s is missing but %s exists; %s", ErrInconsistent, caKey, caCert, caAdvice))
	case keyOK && !certOK:
		errs = append(errs, fmt.Errorf("%w: %s is missing but %s exists; %s", ErrInconsistent, caCert, caKey, caAdvice))
	}

	var found []string
	for i := range leaves {
		l := &leaves[i]
		certOK, keyOK, err := pairExists(l.cert, l.key)
		if err != nil {
			return false, err
		}
		switch {
		case certOK && keyOK:
			l.present = true
			found = append(found, l.cert, l.key)
		case certOK:
			errs = append(errs, halfPair(l.key, l.cert))
			found = append(found, l.cert)
		case keyOK:
			errs = append(errs, halfPair(l.cert, l.key))
			found = append(found, l.key)
		}
	}

	if !certOK && !keyOK {
		// Certificates of channels no longer listed were issued by the same CA, so they count.
		others, err := otherClientFiles(dir, found)
		if err != nil {
			return false, err
		}
		found = append(found, others...)
		if len(found) > 0 {
			errs = append(errs, fmt.Errorf("%w: %s and %s are missing but files issued by that CA remain (%s); restore the CA files or remove the directory %s to start a new dev CA",
				ErrInconsistent, caCert, caKey, strings.Join(found, ", "), dir))
		}
	}
	return certOK && keyOK, errors.Join(errs...)
}

func halfPair(missing, present string) error {
	return fmt.Errorf("%w: %s is missing but %s exists; restore it, or remove %s as well to have a new pair issued",
		ErrInconsistent, missing, present, present)
}

func pairExists(cert, key string) (certOK, keyOK bool, err error) {
	if certOK, err = exists(cert); err != nil {
		return false, false, err
	}
	if keyOK, err = exists(key); err != nil {
		return false, false, err
	}
	return certOK, keyOK, nil
}

// otherClientFiles lists the .crt and .key files in dir/clients that are not in known.
func otherClientFiles(dir string, known []string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, clientsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	var others []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".crt") || strings.HasSuffix(name, ".key")) {
			continue
		}
		path := filepath.Join(dir, clientsDir, name)
		if !slices.Contains(known, path) {
			others = append(others, path)
		}
	}
	return others, nil
}

// check verifies an existing pair: it parses, the key is the certificate's, and the
// certificate verifies against the CA for its purpose and identity.
func (l leaf) check(a *Authority, caFile string, now time.Time) error {
	cert, err := readCertificate(l.cert)
	if err != nil {
		return l.advise(err)
	}
	key, err := readKey(l.key)
	if err != nil {
		return l.advise(err)
	}
	if err := matchKey(cert, key, l.cert, l.key); err != nil {
		return l.advise(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(a.Cert)
	opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{l.usage}}
	if _, err := cert.Verify(opts); err != nil {
		return l.advise(fmt.Errorf("%w: %s against %s: %v", ErrUnverified, l.cert, caFile, err))
	}
	var uncovered []string
	for _, h := range l.hosts {
		if cert.VerifyHostname(h) != nil {
			uncovered = append(uncovered, h)
		}
	}
	if len(uncovered) > 0 {
		return l.advise(fmt.Errorf("%w: %s does not cover host %s", ErrUnverified, l.cert, strings.Join(uncovered, ", ")))
	}
	if l.channel != "" && cert.Subject.CommonName != l.channel {
		return l.advise(fmt.Errorf("%w: %s is issued to %q, not to channel %q", ErrUnverified, l.cert, cert.Subject.CommonName, l.channel))
	}
	return nil
}

// advise tells the operator how to get past a pair that can never work. Other errors (a file
// that cannot be read, say) are returned as they are, since removing the pair may not be the fix.
func (l leaf) advise(err error) error {
	if errors.Is(err, ErrMalformed) || errors.Is(err, ErrKeyMismatch) || errors.Is(err, ErrUnverified) {
		return fmt.Errorf("%w; remove %s and %s to have a new pair issued", err, l.cert, l.key)
	}
	return err
}
