// Package switching (folder switch/, since switch is a Go keyword; import it
// as switching) is the pipeline between the channels and the destinations.
//
// For every request a front listener decodes, Switch.Serve: checks that the
// message is one the switch answers and carries what routing and matching
// need (else 30, format error); stamps the channel's acquiring institution
// into field 32 when the terminal did not; routes the PAN with a
// routing.Table; and hands the request to the chosen Destination, which
// fills the response. A decline by routing (14, 15), a missing destination
// (92) or a destination error is answered by the switch itself: 91 for a
// destination that is unavailable or too slow, 94 for a request whose
// matching key is already in flight on an outbound link, 96 otherwise. Every answer carries the
// response MTI (0210 for 0200, 0110 for 0100) and the fields the request's
// dialect echoes. Network management (0800) is answered at the edge, by
// package front, before the switch.
//
// The switch works in ISO 8583:1987. A channel whose dialect has another
// layout (a 1993 bank) has an inbound codec.Map: its requests are converted
// in, served like any other, and their answers (the switch's own declines
// and format errors included) converted back into its codes. Channels of
// the same layout (1987 binary) need no conversion: content is canonical.
//
// Data enters from package front (Serve, Reject) and leaves to a
// Destination: a regional ledger shard's ISO host (ledger.Host) called
// in-process, or a region's shard in its own process reached over
// front.Link outbound links (matching, heartbeats, sign-on, reconnection).
//
// Not yet here: routing rules beyond the BIN table, flow control and
// load balancing across alternates, timeouts with reversals,
// store-and-forward, stand-in.
package switching
