// Package switching (folder switch/, since switch is a Go keyword; import it
// as switching) is the pipeline between the channels and the destinations.
//
// For every request a front listener decodes, Switch.Serve:
//
//  1. checks that it is a request the switch serves (authorisation,
//     financial, reversal; network management is answered at the edge by
//     package front) and carries what routing and matching need (else 12 or
//     30), and stamps the channel's acquiring institution into field 32;
//  2. admits it: a token bucket per channel and per client identity
//     (reversals are never limited), then its matching key (response MTI
//     class and fields 11, 41, 32, 7 by default): a key already in flight
//     is answered 94 at once and never takes the original's place;
//  3. routes it with the routing.Table in use (swapped atomically by
//     SetRoutes; decisions counted per rule);
//  4. sends it to the destination, a Pool of endpoints (power of two
//     choices on least outstanding, or weighted round robin; a circuit
//     breaker per endpoint with half-open probes; an adaptive in-flight
//     window per endpoint, AIMD on latency, whose reserve only reversals
//     and network management may use). A full window is declined at once
//     (91 by default), never queued. A destination that could not even be
//     sent the request (front.ErrNotSent: down, ejected) is skipped for the
//     route's next alternate;
//  5. when a destination may have acted without answering (the route's
//     timeout, a connection lost under the request, an answer that does not
//     decode), answers the channel 91 (or the route's 68) and queues a
//     reversal advice (0420, repeats 0421) for the destination in the SAF,
//     a durable store-and-forward queue on badger that retries with backoff
//     until the destination acknowledges it, across restarts. An advice
//     from a channel (0220, 0420) that its destination cannot take now is
//     queued the same way and accepted (00).
//
// Every answer carries the response MTI and the fields the request's
// dialect echoes. A channel whose dialect has another layout (a 1993 bank)
// has an inbound codec.Map: its requests are converted in, served like any
// other, and their answers converted back into its codes.
//
// Metrics: requests by channel, route, MTI and response code; latency per
// channel and per stage (front, queue, destination, total); declines by
// reason; routing decisions per rule; in-flight, breaker state and
// ejections per endpoint; reversals queued; SAF depth, oldest age,
// attempts and dead letters.
//
// Not yet here: stand-in processing (the routing outcome StandIn is
// accepted and skipped like a destination that is down), STAN/RRN
// re-stamping for bank hosts (links re-stamp through their maps; links to
// ledger shards keep the STAN, which is part of the shard's idempotency
// key), a queue-time budget (nothing queues: admission refuses instead).
package switching
