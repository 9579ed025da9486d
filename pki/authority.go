package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Errors a caller may test with errors.Is. Each returned error wraps one of them and adds the
// file it is about and what is wrong with it.
var (
	// ErrInconsistent means a dev PKI directory is half-populated: one file of a certificate/key
	// pair exists without the other, or the CA is gone while certificates it issued remain.
	ErrInconsistent = errors.New("pki: inconsistent files")

	// ErrMalformed means a file is not the PEM it should be: no PEM block of the expected type,
	// or a block whose contents do not parse.
	ErrMalformed = errors.New("pki: malformed file")

	// ErrKeyMismatch means a private key is not the key of the certificate beside it.
	ErrKeyMismatch = errors.New("pki: key does not match certificate")

	// ErrUnverified means a certificate does not verify against the CA for its purpose: another
	// CA signed it, it has expired, its extended key usage is wrong, or it does not name the host
	// or channel it is filed under.
	ErrUnverified = errors.New("pki: certificate does not verify")

	// ErrNotCA means a certificate given as a CA may not sign certificates.
	ErrNotCA = errors.New("pki: certificate is not a CA")

	// ErrInvalidChannel means a channel name cannot be used; names become file names, so only
	// a-z, 0-9 and '-' are allowed.
	ErrInvalidChannel = errors.New("pki: invalid channel name")

	// ErrInvalidRequest means a certificate request or DevOptions cannot be satisfied.
	ErrInvalidRequest = errors.New("pki: invalid request")
)

const (
	caValidityYears = 10

	// 825 days is the longest lifetime Apple's TLS clients accept for a server certificate, so
	// a dev server certificate also works from a browser or curl on a Mac.
	defaultLeafValidity = 825 * 24 * time.Hour

	// backdate lets a certificate verify on a host whose clock is a little behind the issuer's.
	backdate = time.Hour
)

// Authority is a certificate authority: its certificate and its private key. It is not changed
// after construction, so Issue may be called from several goroutines at once.
type Authority struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// NewAuthority creates a self-signed ECDSA P-256 CA valid from now-1h for 10 years. It may sign
// leaf certificates only (path length zero).
func NewAuthority(commonName string, now time.Time) (*Authority, error) {
	if commonName == "" {
		return nil, fmt.Errorf("%w: the CA needs a common name", ErrInvalidRequest)
	}
	now = orNow(now)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	skid, err := keyID(key.Public())
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(caValidityYears, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          skid,
		// A self-signed certificate takes AuthorityKeyId from the template, not the parent.
		AuthorityKeyId: skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse new CA certificate: %w", err)
	}
	return &Authority{Cert: cert, Key: key, CertPEM: encodeCert(der)}, nil
}

// LoadAuthority reads a CA certificate and key in PEM (key as PKCS#8 "PRIVATE KEY" or SEC1
// "EC PRIVATE KEY"). The certificate must be a CA allowed to sign certificates and the key must
// be its key.
func LoadAuthority(certFile, keyFile string) (*Authority, error) {
	cert, err := readCertificate(certFile)
	if err != nil {
		return nil, err
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("%w: %s: its basic constraints do not mark it as a CA", ErrNotCA, certFile)
	}
	// Old CAs sometimes omit KeyUsage altogether; only a KeyUsage that leaves out CertSign
	// rules the certificate out.
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: %s: its key usage does not allow signing certificates", ErrNotCA, certFile)
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, err
	}
	if err := matchKey(cert, key, certFile, keyFile); err != nil {
		return nil, err
	}
	return &Authority{Cert: cert, Key: key, CertPEM: encodeCert(cert.Raw)}, nil
}

// Request describes a leaf certificate to issue. It needs a name (CommonName, a DNS name or an IP
// address) and at least one of Server and Client.
type Request struct {
	CommonName   string
	Organization string // optional
	OrgUnit      string // optional (OU); channels use it for the terminal group later
	DNSNames     []string
	IPAddresses  []net.IP
	Server       bool          // ExtKeyUsageServerAuth
	Client       bool          // ExtKeyUsageClientAuth
	Validity     time.Duration // 825 days when zero
	Now          time.Time     // NotBefore = Now-1h; time.Now when zero
}

func (r Request) validate() error {
	var errs []error
	if r.CommonName == "" && len(r.DNSNames) == 0 && len(r.IPAddresses) == 0 {
		errs = append(errs, fmt.Errorf("%w: a certificate needs a common name, a DNS name or an IP address", ErrInvalidRequest))
	}
	for _, name := range r.DNSNames {
		if name == "" {
			errs = append(errs, fmt.Errorf("%w: empty DNS name", ErrInvalidRequest))
		}
	}
	for _, ip := range r.IPAddresses {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			errs = append(errs, fmt.Errorf("%w: invalid IP address %v", ErrInvalidRequest, ip))
		}
	}
	// Without an extended key usage Go would accept the certificate for any purpose; a dev
	// certificate should be good for exactly what it was made for.
	if !r.Server && !r.Client {
		errs = append(errs, fmt.Errorf("%w: %q is neither a server nor a client certificate", ErrInvalidRequest, r.CommonName))
	}
	if r.Validity < 0 {
		errs = append(errs, fmt.Errorf("%w: negative validity %v", ErrInvalidRequest, r.Validity))
	}
	return errors.Join(errs...)
}

// Issue signs a new ECDSA P-256 leaf certificate; it returns PEM-encoded certificate and PKCS#8
// key. The certificate never outlives the CA: NotAfter is cut to the CA's NotAfter, because
// verification would fail after that date anyway and an honest date is easier to debug.
func (a *Authority) Issue(r Request) (certPEM, keyPEM []byte, err error) {
	if a == nil || a.Cert == nil || a.Key == nil {
		return nil, nil, fmt.Errorf("%w: the authority has no certificate or no key", ErrInvalidRequest)
	}
	if err := r.validate(); err != nil {
		return nil, nil, err
	}
	now := orNow(r.Now)
	if !now.Before(a.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("%w: the CA %q expired on %s", ErrInvalidRequest, a.Cert.Subject.CommonName, a.Cert.NotAfter.Format(time.RFC3339))
	}
	validity := r.Validity
	if validity == 0 {
		validity = defaultLeafValidity
	}
	notAfter := now.Add(validity)
	if notAfter.After(a.Cert.NotAfter) {
		notAfter = a.Cert.NotAfter
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate key for %q: %w", r.CommonName, err)
	}
	skid, err := keyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	// CreateCertificate copies AuthorityKeyId from the parent's SubjectKeyId; a CA made
	// elsewhere may lack one, so derive it the same way we derive ours.
	akid := a.Cert.SubjectKeyId
	if len(akid) == 0 {
		if akid, err = keyID(a.Cert.PublicKey); err != nil {
			return nil, nil, err
		}
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	var usages []x509.ExtKeyUsage
	if r.Server {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	if r.Client {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	subject := pkix.Name{CommonName: r.CommonName}
	if r.Organization != "" {
		subject.Organization = []string{r.Organization}
	}
	if r.OrgUnit != "" {
		subject.OrganizationalUnit = []string{r.OrgUnit}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		DNSNames:              r.DNSNames,
		IPAddresses:           r.IPAddresses,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usages,
		SubjectKeyId:          skid,
		AuthorityKeyId:        akid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, key.Public(), a.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: sign certificate for %q: %w", r.CommonName, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// keyID derives a key identifier as RFC 7093 section 2 method 1 does: the leftmost 160 bits of
// the SHA-256 of the subjectPublicKey bit string. It is stable for a key, so a reissued
// certificate for the same key carries the same identifier.
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("pki: key identifier: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("pki: key identifier: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// newSerial returns a random positive 128-bit serial number; RFC 5280 asks for at least 64 bits
// of randomness, so serials do not repeat even across CAs recreated with the same name.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("pki: serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
