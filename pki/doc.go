// Package pki is a small certificate authority for development and tests.
//
// Junction's channels (pos, kiosk, web, bank, hotline) connect over mutual TLS, so even a laptop
// run needs a CA, a server certificate and one client certificate per channel. This package makes
// them: `junction up` calls EnsureDev on first start, tests call NewAuthority and Issue to build
// throwaway identities, and `junction pki` exposes the same calls to an operator.
//
// It is not for production. A production deployment brings certificates from its own CA, and the
// rest of junction only ever reads PEM files (a CA bundle, a certificate and its key); nothing
// outside this package signs anything. Accordingly this package does not do revocation (no CRL,
// no OCSP), renewal, key rotation, intermediate CAs, RSA or Ed25519 key generation, encrypted
// keys, or hardware keys. LoadAuthority does accept any signing key a PKCS#8 file holds, so a test
// CA made elsewhere can be used to issue.
//
// # What it writes
//
// EnsureDev keeps a directory (typically var/pki) in this shape:
//
//	ca.crt              the dev CA certificate; servers use it as ClientCAs, clients as RootCAs
//	ca.key              the CA's private key (PKCS#8)
//	server.crt          the switch's server certificate; SANs from DevOptions.Hosts
//	server.key
//	clients/<name>.crt  one client certificate per channel: CN = name, OU = "channel"
//	clients/<name>.key
//
// Directories are created 0700, keys are written 0600 and certificates 0644. Every file is
// written to a temporary file in the same directory, synced and renamed into place, so a crash
// never leaves a truncated PEM behind. Keys are ECDSA P-256, certificates carry random 128-bit
// serial numbers and subject/authority key identifiers.
//
// EnsureDev never replaces a file that exists: a certificate on disk may already have been copied
// to a terminal or a partner. When the directory is half-populated or holds something that does
// not verify against ca.crt, it returns an error naming each file, what is wrong and what the
// operator can do, and it writes nothing. Two processes must not run EnsureDev on the same
// directory at once.
//
// # Time
//
// Functions take the current time as a value (Request.Now, DevOptions.Now) so tests can pin it;
// a zero time means time.Now. Certificates are backdated by one hour to tolerate clock skew
// between hosts.
package pki
