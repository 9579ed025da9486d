package front

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// ErrIdentity is wrapped by the handshake error when a client certificate
// chains to the CA but its subject is not allowed on the listener.
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

// ServerTLS builds a listener's TLS configuration: TLS 1.2 at least, client
// certificate required and verified against f.CA, and, when allowCN is not
// empty, the certificate's common name must be one of allowCN. A client
// without a certificate, with one from another CA, or with a name not
// allowed fails the handshake.
func ServerTLS(f TLSFiles, allowCN []string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("front: server certificate %s / %s: %w", f.Cert, f.Key, err)
	}
	pool, err := loadPool(f.CA)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites(),
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	if len(allowCN) > 0 {
		allowed := slices.Clone(allowCN)
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			// Runs after chain verification: PeerCertificates[0] is verified.
			if len(cs.PeerCertificates) == 0 {
				return ErrIdentity
			}
			if cn := cs.PeerCertificates[0].Subject.CommonName; !slices.Contains(allowed, cn) {
				return fmt.Errorf("%w: CN %q", ErrIdentity, cn)
			}
			return nil
		}
	}
	return cfg, nil
}

// ClientTLS builds a channel client's TLS configuration: it presents f.Cert
// and accepts only a server certificate for serverName that chains to f.CA.
func ClientTLS(f TLSFiles, serverName string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("front: client certificate %s / %s: %w", f.Cert, f.Key, err)
	}
	pool, err := loadPool(f.CA)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites(),
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}

func loadPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("front: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("front: CA file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}
