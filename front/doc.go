// Package front is where channels meet the switch: one mutual-TLS listener
// per channel (POS, kiosk, web, bank, hotline), and the client side of the
// same protocol for tools and tests.
//
// A listener accepts TCP connections, completes the TLS handshake (TLS 1.2
// at least, forward-secret AEAD suites, a client certificate verified
// against the channel's CA and, optionally, an allowed common name), then
// runs two goroutines per connection, as nats-server does: a reader that
// cuts frames by the channel's framing (codec.FrameReader: 2-byte binary,
// 4-digit ASCII or 2-byte BCD length, optional TPDU kept per request and
// mirrored on its response), decodes each into a pooled codec.Message of
// the channel's dialect and hands it to the Handler on its own goroutine; and a
// writer that writes responses as they complete, in whatever order, packing
// everything ready into one write. Requests in flight per connection are
// bounded (MaxInFlight): when full, the reader stops reading and TCP pushes
// back on the peer. Frames above Framing.Max, idle connections, peers that do
// not read and streams without a readable MTI are closed with a logged
// reason and a metric.
//
// Shutdown drains: listeners close, readers stop at the next frame
// boundary, every request in flight is answered and written, then the
// connections close.
//
// Data enters as TLS bytes and leaves through Handler.Serve / Reject as
// decoded messages; responses come back the same way. What a message means
// is the Handler's business (package switch), not this package's.
//
// Not yet here: short-connection mode, identity policies beyond the common
// name, limits per identity, certificate reload, network management at the
// edge, outbound links, the plaintext gnet engine.
package front
