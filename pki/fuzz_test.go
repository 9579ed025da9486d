package pki

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"
)

// FuzzParsePEM feeds arbitrary bytes to the file decoders: whatever a file holds, they must
// return a value or an ErrMalformed, never panic.
func FuzzParsePEM(f *testing.F) {
	a, err := NewAuthority("fuzz CA", time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC))
	if err != nil {
		f.Fatal(err)
	}
	keyPEM, err := encodeKey(a.Key)
	if err != nil {
		f.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(a.Key.(*ecdsa.PrivateKey))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(a.CertPEM)
	f.Add(keyPEM)
	f.Add(append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")}))
	f.Add([]byte("not PEM at all"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		if cert, err := parseCertificate("fuzz.crt", data); err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("parseCertificate: %v is not ErrMalformed", err)
		} else if err == nil && cert == nil {
			t.Error("parseCertificate: no certificate and no error")
		}
		if key, err := parseKey("fuzz.key", data); err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("parseKey: %v is not ErrMalformed", err)
		} else if err == nil && key == nil {
			t.Error("parseKey: no key and no error")
		}
	})
}
