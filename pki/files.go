package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

const (
	pemCertificate = "CERTIFICATE"
	pemPKCS8       = "PRIVATE KEY"
	pemSEC1        = "EC PRIVATE KEY"

	dirMode  fs.FileMode = 0o700
	keyMode  fs.FileMode = 0o600
	certMode fs.FileMode = 0o644
)

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPKCS8, Bytes: der}), nil
}

func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return parseCertificate(path, data)
}

// parseCertificate returns the first certificate in data. Later blocks are ignored so that a
// file holding a chain (leaf first, as TLS servers expect) is accepted too.
func parseCertificate(path string, data []byte) (*x509.Certificate, error) {
	block, err := findBlock(path, data, pemCertificate)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, path, err)
	}
	return cert, nil
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return parseKey(path, data)
}

// parseKey returns the first PKCS#8 or SEC1 private key in data. Other blocks are skipped
// because `openssl ecparam -genkey` writes an "EC PARAMETERS" block before the key.
func parseKey(path string, data []byte) (crypto.Signer, error) {
	block, err := findBlock(path, data, pemPKCS8, pemSEC1)
	if err != nil {
		return nil, err
	}
	var key any
	if block.Type == pemSEC1 {
		key, err = x509.ParseECPrivateKey(block.Bytes)
	} else {
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, path, err)
	}
	// PKCS#8 may also hold an X25519 key, which can agree on secrets but cannot sign.
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %s: a %T cannot sign", ErrMalformed, path, key)
	}
	return signer, nil
}

func findBlock(path string, data []byte, types ...string) (*pem.Block, error) {
	var seen []string
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if slices.Contains(types, block.Type) {
			return block, nil
		}
		seen = append(seen, fmt.Sprintf("%q", block.Type))
	}
	want := `"` + strings.Join(types, `" or "`) + `"`
	if len(seen) == 0 {
		return nil, fmt.Errorf("%w: %s: no PEM data, want a %s block", ErrMalformed, path, want)
	}
	return nil, fmt.Errorf("%w: %s: want a %s block, found %s", ErrMalformed, path, want, strings.Join(seen, ", "))
}

func matchKey(cert *x509.Certificate, key crypto.Signer, certFile, keyFile string) error {
	// Every public key type in the standard library has Equal.
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("%w: %s is not the key of %s", ErrKeyMismatch, keyFile, certFile)
	}
	return nil
}

// exists reports whether path exists. Any error other than "does not exist" (a permission
// problem, say) is returned, because guessing would risk creating a second CA beside the first.
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("pki: %w", err)
}

// writePair writes a key and its certificate, key first: whoever sees a certificate on disk can
// rely on its key being there too.
func writePair(certFile, keyFile string, certPEM, keyPEM []byte) error {
	if err := writeAtomic(keyFile, keyPEM, keyMode); err != nil {
		return err
	}
	return writeAtomic(certFile, certPEM, certMode)
}

// writeAtomic replaces path with data in one step: a temporary file in the same directory (so
// the rename cannot cross file systems) is written, synced and renamed over path, and the
// directory is synced so the rename itself survives a crash. Readers see the old file or the
// whole new one, never a truncated PEM.
func writeAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Chmod rather than rely on the umask: the mode is part of the contract (keys 0600).
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	// Windows cannot open a directory for syncing; there the rename is as durable as it gets.
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("pki: sync %s: %w", dir, err)
	}
	return nil
}
