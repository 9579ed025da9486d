// Package front is where channels meet the switch: one listener per channel
// (POS, kiosk, web, bank, hotline), the client side of the same protocol for
// tools and tests, and the switch's outbound links to hosts.
//
// # Listeners
//
// A listener accepts TCP connections and, on the std engine (EngineStd, the
// default and the only one with TLS), completes the TLS handshake: TLS 1.2
// at least and 1.3 preferred, forward-secret AEAD suites, session tickets on
// (a resumed handshake is counted), a client certificate verified against
// the channel's CA and matched against the channel's identity rules (CN, OU
// or a SAN → institution and terminal group; a valid certificate no rule
// admits is refused with a logged reason). Certificates reload from their
// files (TLSSource: on demand, e.g. SIGHUP, or by polling) without touching
// open connections. Each connection then runs two goroutines, as nats-server
// does: a reader that cuts frames by the channel's framing
// (codec.FrameReader: 2-byte binary, 4-digit ASCII or 2-byte BCD length,
// optional TPDU kept per request and mirrored on its response) and hands
// each decoded message to the Handler on its own goroutine; and a writer
// that writes answers as they complete, in whatever order, packing
// everything ready into one write.
//
// A plaintext listener (Channel.Plaintext, for a port behind a
// TLS-terminating balancer or in a trusted segment, never a default) may run
// on gnet's event loops instead (EngineGnet). Both engines feed one session
// core (session.go): decoding, network management answered at the edge
// (0800 echo, sign-on, sign-off; 1804 for 1993 dialects), the sign-on
// requirement, and the Handler.
//
// Limits, each with a metric and a log line when it bites: connections per
// listener and per identity, handshake timeout, idle timeout, a deadline
// for a frame once begun (slow-drip clients), frame size, and requests in
// flight per connection (when full, reading pauses and TCP pushes back).
// A short-connection channel (Channel.Short) serves one request per
// connection, then closes.
//
// Shutdown drains: listeners close, readers stop at the next frame
// boundary, every request in flight is answered and written, then the
// connections close.
//
// # Links
//
// A Link is one outbound endpoint: a pool of persistent connections (mutual
// TLS, or plaintext) with pipelining, matching of answers by the response
// MTI and configured fields (a duplicate key in flight is refused, a late
// answer is counted and dropped), echo heartbeats, sign-on on connect,
// reconnection with exponential backoff and full jitter, and a health state
// (up, degraded, down) for whoever balances across endpoints.
//
// Data enters as bytes and leaves through Handler.Serve / Reject as decoded
// messages; answers come back the same way. What a message means is the
// Handler's business (package switch), not this package's.
package front
