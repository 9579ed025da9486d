package pki_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/junction-switch/junction/pki"
)

// fixedNow pins the clock for tests that do not open sockets; crypto/tls checks validity against
// the real clock, so the TLS test uses time.Now instead.
func fixedNow() time.Time { return time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC) }

func devOptions(now time.Time) pki.DevOptions {
	return pki.DevOptions{
		Channels: []string{"pos", "kiosk", "web", "bank", "hotline"},
		Hosts:    []string{"localhost", "127.0.0.1", "::1"},
		Now:      now,
	}
}

// newDev creates a dev PKI in a fresh directory that does not exist yet, so EnsureDev makes it.
func newDev(t *testing.T, o pki.DevOptions) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "var", "pki")
	if _, err := pki.EnsureDev(dir, o); err != nil {
		t.Fatalf("EnsureDev on an empty directory: %v", err)
	}
	return dir
}

// snapshot returns every file under dir with its contents, keyed by path.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		files[path] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sameFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for path, data := range a {
		if other, ok := b[path]; !ok || !bytes.Equal(data, other) {
			return false
		}
	}
	return true
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cert
}

func caPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(pki.CAFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("%s: no certificate", pki.CAFile(dir))
	}
	return pool
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEnsureDev(t *testing.T) {
	now := fixedNow()

	t.Run("an empty directory gets a CA, a server pair and a pair per channel with private modes", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "var", "pki")
		o := devOptions(now)
		created, err := pki.EnsureDev(dir, o)
		if err != nil {
			t.Fatal(err)
		}

		serverCert, serverKey := pki.ServerFiles(dir)
		want := map[string]fs.FileMode{
			pki.CAFile(dir):               0o644,
			filepath.Join(dir, "ca.key"):  0o600,
			serverCert:                    0o644,
			serverKey:                     0o600,
			dir:                           0o700 | fs.ModeDir,
			filepath.Join(dir, "clients"): 0o700 | fs.ModeDir,
		}
		for _, ch := range o.Channels {
			cert, key := pki.ClientFiles(dir, ch)
			want[cert], want[key] = 0o644, 0o600
		}
		for path, mode := range want {
			fi, err := os.Stat(path)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			if fi.Mode() != mode {
				t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
			}
		}
		if got := len(snapshot(t, dir)); got != len(want)-2 {
			t.Errorf("directory holds %d files, want %d (no temporary files left behind)", got, len(want)-2)
		}
		if len(created) != len(want)-2 {
			t.Errorf("created %d paths, want %d: %v", len(created), len(want)-2, created)
		}
		for _, path := range created {
			if _, ok := want[path]; !ok {
				t.Errorf("created unexpected path %s", path)
			}
		}
	})

	t.Run("a second call creates nothing and changes nothing", func(t *testing.T) {
		dir := newDev(t, devOptions(now))
		before := snapshot(t, dir)
		created, err := pki.EnsureDev(dir, devOptions(now.Add(24*time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		if len(created) != 0 {
			t.Errorf("created %v, want nothing", created)
		}
		if !sameFiles(before, snapshot(t, dir)) {
			t.Error("files changed")
		}
	})

	t.Run("the certificates carry the names, usages and key identifiers a switch relies on", func(t *testing.T) {
		dir := newDev(t, devOptions(now))
		ca := readCert(t, pki.CAFile(dir))
		serverCert, _ := pki.ServerFiles(dir)
		server := readCert(t, serverCert)
		if server.Subject.CommonName != "junction dev server" {
			t.Errorf("server CN %q", server.Subject.CommonName)
		}
		if !slices.Equal(server.DNSNames, []string{"localhost"}) {
			t.Errorf("server DNS names %v, want [localhost]", server.DNSNames)
		}
		if len(server.IPAddresses) != 2 || !server.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !server.IPAddresses[1].Equal(net.IPv6loopback) {
			t.Errorf("server IP addresses %v, want [127.0.0.1 ::1]", server.IPAddresses)
		}
		if !slices.Equal(server.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
			t.Errorf("server extended key usage %v", server.ExtKeyUsage)
		}

		posCert, _ := pki.ClientFiles(dir, "pos")
		pos := readCert(t, posCert)
		if pos.Subject.CommonName != "pos" || !slices.Equal(pos.Subject.OrganizationalUnit, []string{"channel"}) {
			t.Errorf("client subject %v, want CN=pos, OU=channel", pos.Subject)
		}
		if !slices.Equal(pos.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
			t.Errorf("client extended key usage %v", pos.ExtKeyUsage)
		}

		for _, leaf := range []*x509.Certificate{server, pos} {
			if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("%s: IsCA %v, key usage %v", leaf.Subject.CommonName, leaf.IsCA, leaf.KeyUsage)
			}
			if len(leaf.SubjectKeyId) == 0 || !bytes.Equal(leaf.AuthorityKeyId, ca.SubjectKeyId) {
				t.Errorf("%s: subject key id %x, authority key id %x, CA key id %x", leaf.Subject.CommonName, leaf.SubjectKeyId, leaf.AuthorityKeyId, ca.SubjectKeyId)
			}
			if !leaf.NotBefore.Equal(now.Add(-time.Hour)) || !leaf.NotAfter.Equal(now.Add(825*24*time.Hour)) {
				t.Errorf("%s: valid %v to %v", leaf.Subject.CommonName, leaf.NotBefore, leaf.NotAfter)
			}
		}
	})

	t.Run("a removed client pair is issued again by the same CA and nothing else changes", func(t *testing.T) {
		dir := newDev(t, devOptions(now))
		before := snapshot(t, dir)
		posCert, posKey := pki.ClientFiles(dir, "pos")
		remove(t, posCert, posKey)

		created, err := pki.EnsureDev(dir, devOptions(now))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(created, []string{posCert, posKey}) {
			t.Errorf("created %v, want [%s %s]", created, posCert, posKey)
		}
		after := snapshot(t, dir)
		for path, data := range before {
			if path == posCert || path == posKey {
				if bytes.Equal(data, after[path]) {
					t.Errorf("%s was not reissued", path)
				}
				continue
			}
			if !bytes.Equal(data, after[path]) {
				t.Errorf("%s changed", path)
			}
		}
		opts := x509.VerifyOptions{Roots: caPool(t, dir), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if _, err := readCert(t, posCert).Verify(opts); err != nil {
			t.Errorf("reissued %s does not verify against the old CA: %v", posCert, err)
		}
	})

	t.Run("a new channel gets its pair from the existing CA", func(t *testing.T) {
		dir := newDev(t, devOptions(now))
		o := devOptions(now)
		o.Channels = append(o.Channels, "atm-2")
		created, err := pki.EnsureDev(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		cert, key := pki.ClientFiles(dir, "atm-2")
		if !slices.Equal(created, []string{cert, key}) {
			t.Errorf("created %v, want [%s %s]", created, cert, key)
		}
	})

	t.Run("no hosts means a server certificate for the loopback names", func(t *testing.T) {
		dir := newDev(t, pki.DevOptions{Now: now})
		serverCert, _ := pki.ServerFiles(dir)
		server := readCert(t, serverCert)
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			if err := server.VerifyHostname(h); err != nil {
				t.Errorf("%s: %v", h, err)
			}
		}
	})
}

// tlsServer is a real mTLS listener configured the way front/ will configure a channel listener.
type tlsServer struct {
	addr string
	// results carries, per accepted connection, the server's view: nil after a good exchange,
	// or the handshake error.
	results chan error
}

func startServer(t *testing.T, dir string) *tlsServer {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(pki.ServerFiles(dir))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    caPool(t, dir),
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{addr: ln.Addr().String(), results: make(chan error, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.handle(c.(*tls.Conn))
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return s
}

// handle answers one line with the line and the client's CN, the identity front/ will use.
func (s *tlsServer) handle(c *tls.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		s.results <- err
		return
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil {
		cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName
		_, err = io.WriteString(c, strings.TrimSuffix(line, "\n")+" from "+cn+"\n")
	}
	s.results <- err
}

func (s *tlsServer) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.results:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the server reported nothing")
		return nil
	}
}

// exchange dials the server, sends a line and returns the reply.
func exchange(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestMutualTLS(t *testing.T) {
	now := time.Now()
	dir := newDev(t, devOptions(now))
	srv := startServer(t, dir)
	roots := caPool(t, dir)
	pos, err := tls.LoadX509KeyPair(pki.ClientFiles(dir, "pos"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a channel certificate from the dev CA completes the handshake and names the channel", func(t *testing.T) {
		reply, err := exchange(srv.addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pos}, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		if reply != "ping from pos\n" {
			t.Errorf("reply %q, want %q", reply, "ping from pos\n")
		}
		if err := srv.result(t); err != nil {
			t.Errorf("server: %v", err)
		}
	})

	t.Run("a TLS 1.2 client with the server reached as localhost works too", func(t *testing.T) {
		cfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pos}, ServerName: "localhost", MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}
		if _, err := exchange(srv.addr, cfg); err != nil {
			t.Fatal(err)
		}
		if err := srv.result(t); err != nil {
			t.Errorf("server: %v", err)
		}
	})

	t.Run("a client certificate from another CA is refused at the handshake", func(t *testing.T) {
		other, err := pki.NewAuthority("someone else's CA", now)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, keyPEM, err := other.Issue(pki.Request{CommonName: "pos", OrgUnit: "channel", Client: true, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		impostor, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		// crypto/tls only offers a certificate whose issuer the server asks for, so an impostor
		// has to push it with GetClientCertificate, as an attacker's client would.
		cfg := &tls.Config{
			RootCAs:    roots,
			MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return &impostor, nil
			},
		}
		if reply, err := exchange(srv.addr, cfg); err == nil {
			t.Errorf("client got %q, want an error", reply)
		}
		var verr *tls.CertificateVerificationError
		if err := srv.result(t); !errors.As(err, &verr) {
			t.Errorf("server: %v, want a certificate verification error", err)
		}
	})

	t.Run("a client without a certificate is refused at the handshake", func(t *testing.T) {
		if reply, err := exchange(srv.addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}); err == nil {
			t.Errorf("client got %q, want an error", reply)
		}
		if err := srv.result(t); err == nil {
			t.Error("server accepted a client without a certificate")
		}
	})
}

func TestEnsureDevRefusesInconsistentDirectories(t *testing.T) {
	now := fixedNow()
	caKey := func(dir string) string { return filepath.Join(dir, "ca.key") }
	client := func(dir, ch string) string { cert, _ := pki.ClientFiles(dir, ch); return cert }
	clientKey := func(dir, ch string) string { _, key := pki.ClientFiles(dir, ch); return key }
	server := func(dir string) string { cert, _ := pki.ServerFiles(dir); return cert }

	tests := []struct {
		name string
		// break damages a complete dev PKI and may change the options of the next call.
		breakIt func(t *testing.T, dir string, o *pki.DevOptions)
		want    error
		// names returns the paths the error must mention.
		names func(dir string) []string
	}{
		{
			name:    "a missing ca.key is named, with what to do",
			breakIt: func(t *testing.T, dir string, _ *pki.DevOptions) { remove(t, caKey(dir)) },
			want:    pki.ErrInconsistent,
			names:   func(dir string) []string { return []string{caKey(dir), pki.CAFile(dir), "remove the directory " + dir} },
		},
		{
			name:    "a missing ca.crt is named",
			breakIt: func(t *testing.T, dir string, _ *pki.DevOptions) { remove(t, pki.CAFile(dir)) },
			want:    pki.ErrInconsistent,
			names:   func(dir string) []string { return []string{pki.CAFile(dir), caKey(dir)} },
		},
		{
			name: "a CA that is gone while its certificates remain is not silently replaced",
			breakIt: func(t *testing.T, dir string, _ *pki.DevOptions) {
				remove(t, pki.CAFile(dir), caKey(dir))
			},
			want:  pki.ErrInconsistent,
			names: func(dir string) []string { return []string{pki.CAFile(dir), server(dir), client(dir, "pos")} },
		},
		{
			name: "certificates of channels no longer listed count as issued by a missing CA",
			breakIt: func(t *testing.T, dir string, o *pki.DevOptions) {
				remove(t, pki.CAFile(dir), caKey(dir))
				for _, f := range []string{server(dir), filepath.Join(dir, "server.key")} {
					remove(t, f)
				}
				for _, ch := range o.Channels {
					if ch != "bank" {
						remove(t, client(dir, ch), clientKey(dir, ch))
					}
				}
				o.Channels = []string{"pos"}
			},
			want:  pki.ErrInconsistent,
			names: func(dir string) []string { return []string{client(dir, "bank"), clientKey(dir, "bank")} },
		},
		{
			name:    "a client key that is missing is named",
			breakIt: func(t *testing.T, dir string, _ *pki.DevOptions) { remove(t, clientKey(dir, "kiosk")) },
			want:    pki.ErrInconsistent,
			names:   func(dir string) []string { return []string{clientKey(dir, "kiosk"), client(dir, "kiosk")} },
		},
		{
			name: "every half pair is reported at once",
			breakIt: func(t *testing.T, dir string, _ *pki.DevOptions) {
				remove(t, clientKey(dir, "kiosk"), client(dir, "web"))
			},
			want:  pki.ErrInconsistent,
			names: func(dir string) []string { return []string{clientKey(dir, "kiosk"), client(dir, "web")} },
		},
		{
			name: "a client certificate signed by another CA is named",
			breakIt: func(t *testing.T, dir string, _ *pki.DevOptions) {
				other, err := pki.NewAuthority("someone else's CA", now)
				if err != nil {
					t.Fatal(err)
				}
				certPEM, keyPEM, err := other.Issue(pki.Request{CommonName: "pos", OrgUnit: "channel", Client: true, Now: now})
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(client(dir, "pos"), certPEM, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(clientKey(dir, "pos"), keyPEM, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want:  pki.ErrUnverified,
			names: func(dir string) []string { return []string{client(dir, "pos"), pki.CAFile(dir)} },
		},
		{
			name: "a corrupt certificate PEM is named",
			breakIt: func(t *testing.T, dir string, _ *pki.DevOptions) {
				if err := os.WriteFile(server(dir), []byte("not a certificate\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want:  pki.ErrMalformed,
			names: func(dir string) []string { return []string{server(dir)} },
		},
		{
			name: "a CA key whose PEM holds garbage is named",
			breakIt: func(t *testing.T, dir string, _ *pki.DevOptions) {
				garbage := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")})
				if err := os.WriteFile(caKey(dir), garbage, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want:  pki.ErrMalformed,
			names: func(dir string) []string { return []string{caKey(dir)} },
		},
		{
			name: "a key that belongs to another certificate is named",
			breakIt: func(t *testing.T, dir string, _ *pki.DevOptions) {
				copyFile(t, clientKey(dir, "kiosk"), clientKey(dir, "pos"))
			},
			want:  pki.ErrKeyMismatch,
			names: func(dir string) []string { return []string{clientKey(dir, "pos"), client(dir, "pos")} },
		},
		{
			name: "a server certificate filed as a client certificate fails its key usage",
			breakIt: func(t *testing.T, dir string, _ *pki.DevOptions) {
				copyFile(t, server(dir), client(dir, "pos"))
				copyFile(t, filepath.Join(dir, "server.key"), clientKey(dir, "pos"))
			},
			want:  pki.ErrUnverified,
			names: func(dir string) []string { return []string{client(dir, "pos")} },
		},
		{
			name: "a client certificate filed under another channel is named",
			breakIt: func(t *testing.T, dir string, _ *pki.DevOptions) {
				copyFile(t, client(dir, "kiosk"), client(dir, "pos"))
				copyFile(t, clientKey(dir, "kiosk"), clientKey(dir, "pos"))
			},
			want:  pki.ErrUnverified,
			names: func(dir string) []string { return []string{client(dir, "pos"), `"kiosk"`} },
		},
		{
			name:    "a server certificate that lacks a newly requested host is named, not replaced",
			breakIt: func(_ *testing.T, _ string, o *pki.DevOptions) { o.Hosts = append(o.Hosts, "switch.example") },
			want:    pki.ErrUnverified,
			names:   func(dir string) []string { return []string{server(dir), "switch.example"} },
		},
		{
			name:    "expired certificates are reported, not replaced",
			breakIt: func(_ *testing.T, _ string, o *pki.DevOptions) { o.Now = o.Now.AddDate(3, 0, 0) },
			want:    pki.ErrUnverified,
			names:   func(dir string) []string { return []string{server(dir), client(dir, "hotline"), "expired"} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := devOptions(now)
			dir := newDev(t, o)
			tt.breakIt(t, dir, &o)
			before := snapshot(t, dir)

			created, err := pki.EnsureDev(dir, o)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			for _, name := range tt.names(dir) {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error does not mention %s:\n%v", name, err)
				}
			}
			if len(created) != 0 {
				t.Errorf("created %v despite the error", created)
			}
			if !sameFiles(before, snapshot(t, dir)) {
				t.Error("files changed despite the error")
			}
		})
	}
}

func TestEnsureDevRefusesBadOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    pki.DevOptions
		want error
	}{
		{"an empty channel name is refused", pki.DevOptions{Channels: []string{""}}, pki.ErrInvalidChannel},
		{"upper case is refused", pki.DevOptions{Channels: []string{"POS"}}, pki.ErrInvalidChannel},
		{"a path is refused", pki.DevOptions{Channels: []string{"../ca"}}, pki.ErrInvalidChannel},
		{"a dot is refused", pki.DevOptions{Channels: []string{"pos.crt"}}, pki.ErrInvalidChannel},
		{"a space is refused", pki.DevOptions{Channels: []string{"pos 1"}}, pki.ErrInvalidChannel},
		{"a name longer than a CN may be is refused", pki.DevOptions{Channels: []string{strings.Repeat("a", 65)}}, pki.ErrInvalidChannel},
		{"a channel listed twice is refused", pki.DevOptions{Channels: []string{"pos", "pos"}}, pki.ErrInvalidChannel},
		{"a host with a port is refused", pki.DevOptions{Hosts: []string{"localhost:8583"}}, pki.ErrInvalidRequest},
		{"a bracketed IPv6 host is refused", pki.DevOptions{Hosts: []string{"[::1]"}}, pki.ErrInvalidRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pki")
			tt.o.Now = fixedNow()
			if _, err := pki.EnsureDev(dir, tt.o); !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s was created despite the error (stat: %v)", dir, err)
			}
		})
	}

	t.Run("every bad name is reported at once", func(t *testing.T) {
		_, err := pki.EnsureDev(t.TempDir(), pki.DevOptions{Channels: []string{"POS", "pos", "web_1"}})
		if err == nil || !strings.Contains(err.Error(), `"POS"`) || !strings.Contains(err.Error(), `"web_1"`) {
			t.Errorf("error %v, want both POS and web_1 named", err)
		}
	})

	t.Run("digits and dashes are fine", func(t *testing.T) {
		dir := newDev(t, pki.DevOptions{Channels: []string{"bank-2", "9"}, Now: fixedNow()})
		if _, err := os.Stat(filepath.Join(dir, "clients", "bank-2.crt")); err != nil {
			t.Error(err)
		}
	})
}

func TestAuthority(t *testing.T) {
	now := fixedNow()

	t.Run("a new CA is a self-signed P-256 CA that may sign only leaves, for ten years", func(t *testing.T) {
		a, err := pki.NewAuthority("test CA", now)
		if err != nil {
			t.Fatal(err)
		}
		c := a.Cert
		if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
			t.Errorf("IsCA %v, BasicConstraintsValid %v, MaxPathLen %d, MaxPathLenZero %v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
		}
		if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
			t.Errorf("key usage %v", c.KeyUsage)
		}
		if len(c.SubjectKeyId) == 0 || !bytes.Equal(c.SubjectKeyId, c.AuthorityKeyId) {
			t.Errorf("subject key id %x, authority key id %x", c.SubjectKeyId, c.AuthorityKeyId)
		}
		if !c.NotBefore.Equal(now.Add(-time.Hour)) || !c.NotAfter.Equal(now.AddDate(10, 0, 0)) {
			t.Errorf("valid %v to %v", c.NotBefore, c.NotAfter)
		}
		if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
			t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
		}
		if c.SerialNumber.BitLen() <= 64 {
			t.Errorf("serial number %x has %d bits", c.SerialNumber, c.SerialNumber.BitLen())
		}
		if err := c.CheckSignatureFrom(c); err != nil {
			t.Errorf("not self-signed: %v", err)
		}
		if !bytes.Equal(readPEM(t, a.CertPEM), c.Raw) {
			t.Error("CertPEM does not hold Cert")
		}
	})

	t.Run("the dev CA loads back, also with a SEC1 key, and issues certificates that verify", func(t *testing.T) {
		dir := newDev(t, devOptions(now))
		a, err := pki.LoadAuthority(pki.CAFile(dir), filepath.Join(dir, "ca.key"))
		if err != nil {
			t.Fatal(err)
		}
		ecKey, ok := a.Key.(*ecdsa.PrivateKey)
		if !ok {
			t.Fatalf("key %T, want *ecdsa.PrivateKey", a.Key)
		}
		der, err := x509.MarshalECPrivateKey(ecKey)
		if err != nil {
			t.Fatal(err)
		}
		sec1 := filepath.Join(t.TempDir(), "ca-sec1.key")
		if err := os.WriteFile(sec1, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		a, err = pki.LoadAuthority(pki.CAFile(dir), sec1)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, _, err := a.Issue(pki.Request{CommonName: "bank-7", OrgUnit: "channel", Client: true, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(readPEM(t, certPEM))
		if err != nil {
			t.Fatal(err)
		}
		opts := x509.VerifyOptions{Roots: caPool(t, dir), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if _, err := leaf.Verify(opts); err != nil {
			t.Error(err)
		}
	})

	t.Run("a leaf certificate is not accepted as a CA", func(t *testing.T) {
		dir := newDev(t, devOptions(now))
		cert, key := pki.ServerFiles(dir)
		if _, err := pki.LoadAuthority(cert, key); !errors.Is(err, pki.ErrNotCA) || !strings.Contains(err.Error(), cert) {
			t.Errorf("error %v, want ErrNotCA naming %s", err, cert)
		}
	})

	t.Run("a CA with another CA's key is refused", func(t *testing.T) {
		dir1, dir2 := newDev(t, devOptions(now)), newDev(t, devOptions(now))
		key2 := filepath.Join(dir2, "ca.key")
		if _, err := pki.LoadAuthority(pki.CAFile(dir1), key2); !errors.Is(err, pki.ErrKeyMismatch) || !strings.Contains(err.Error(), key2) {
			t.Errorf("error %v, want ErrKeyMismatch naming %s", err, key2)
		}
	})

	t.Run("a missing file is reported as not existing", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "ca.crt")
		if _, err := pki.LoadAuthority(missing, missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Errorf("error %v, want fs.ErrNotExist naming %s", err, missing)
		}
	})
}

func TestIssue(t *testing.T) {
	now := fixedNow()
	a, err := pki.NewAuthority("test CA", now)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a request that is neither for a server nor for a client is refused", func(t *testing.T) {
		if _, _, err := a.Issue(pki.Request{CommonName: "x", Now: now}); !errors.Is(err, pki.ErrInvalidRequest) {
			t.Errorf("error %v, want ErrInvalidRequest", err)
		}
	})

	t.Run("a request without any name is refused", func(t *testing.T) {
		if _, _, err := a.Issue(pki.Request{Server: true, Now: now}); !errors.Is(err, pki.ErrInvalidRequest) {
			t.Errorf("error %v, want ErrInvalidRequest", err)
		}
	})

	t.Run("a certificate never outlives its CA", func(t *testing.T) {
		certPEM, _, err := a.Issue(pki.Request{CommonName: "long", Server: true, Validity: 20 * 365 * 24 * time.Hour, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(readPEM(t, certPEM))
		if err != nil {
			t.Fatal(err)
		}
		if !leaf.NotAfter.Equal(a.Cert.NotAfter) {
			t.Errorf("NotAfter %v, want the CA's %v", leaf.NotAfter, a.Cert.NotAfter)
		}
	})

	t.Run("a certificate for both purposes with an organization carries them", func(t *testing.T) {
		certPEM, keyPEM, err := a.Issue(pki.Request{CommonName: "gw", Organization: "Bank", OrgUnit: "web", Server: true, Client: true, Validity: time.Hour, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			t.Errorf("crypto/tls does not take the pair: %v", err)
		}
		leaf, err := x509.ParseCertificate(readPEM(t, certPEM))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(leaf.Subject.Organization, []string{"Bank"}) || !slices.Equal(leaf.Subject.OrganizationalUnit, []string{"web"}) {
			t.Errorf("subject %v", leaf.Subject)
		}
		if len(leaf.ExtKeyUsage) != 2 || !leaf.NotAfter.Equal(now.Add(time.Hour)) {
			t.Errorf("extended key usage %v, NotAfter %v", leaf.ExtKeyUsage, leaf.NotAfter)
		}
	})

	t.Run("serial numbers are random", func(t *testing.T) {
		p1, _, err1 := a.Issue(pki.Request{CommonName: "a", Client: true, Now: now})
		p2, _, err2 := a.Issue(pki.Request{CommonName: "a", Client: true, Now: now})
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		c1, _ := x509.ParseCertificate(readPEM(t, p1))
		c2, _ := x509.ParseCertificate(readPEM(t, p2))
		if c1.SerialNumber.Cmp(c2.SerialNumber) == 0 {
			t.Errorf("two certificates share serial %x", c1.SerialNumber)
		}
	})
}

func readPEM(t *testing.T, data []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	return block.Bytes
}
