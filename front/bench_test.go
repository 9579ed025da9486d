package front_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/front"
	"github.com/junction-switch/junction/pki"
)

// BenchmarkEcho measures echo round trips per second: an 0800 with 70=301,
// answered at the edge by the session (no handler), over mutual TLS on the
// std engine, and over plaintext on the std and the gnet engines; with 1, 64
// and 1 000 connections, and w requests in flight on each (w=1 is
// ping-pong, w=16 pipelined). Server and clients share the process and its
// cores. b.N is the total of round trips, spread over the connections;
// dialling (and the TLS handshakes) is set-up, not timed. ns/op is the
// wall time per round trip of the whole run, that is 1e9 / rt/s.
//
//	go test -run '^$' -bench Echo -benchtime 2s ./front
func BenchmarkEcho(b *testing.B) {
	dir := b.TempDir()
	if _, err := pki.EnsureDev(dir, pki.DevOptions{Channels: []string{"pos"}, Hosts: []string{"localhost"}}); err != nil {
		b.Fatal(err)
	}
	cert, key := pki.ServerFiles(dir)
	srvTLS, err := front.ServerTLS(front.TLSFiles{Cert: cert, Key: key, CA: pki.CAFile(dir)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ccert, ckey := pki.ClientFiles(dir, "pos")
	cliTLS, err := front.ClientTLS(front.TLSFiles{Cert: ccert, Key: ckey, CA: pki.CAFile(dir)}, "localhost")
	if err != nil {
		b.Fatal(err)
	}
	for _, tr := range []struct {
		name   string
		tls    bool
		engine front.Engine
	}{
		{"mtls-std", true, front.EngineStd},
		{"plain-std", false, front.EngineStd},
		{"plain-gnet", false, front.EngineGnet},
	} {
		b.Run(tr.name, func(b *testing.B) {
			for _, conns := range []int{1, 64, 1000} {
				b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
					ch := front.Channel{Engine: tr.engine, MaxConnsPerIdentity: 2 * conns}
					var cfg *tls.Config
					if tr.tls {
						ch.TLS, cfg = srvTLS, cliTLS
					} else {
						ch.Plaintext, ch.PlainIdentity = true, "bench"
					}
					e := newEchoBench(b, ch, cfg, conns)
					for _, w := range []int{1, 16} {
						b.Run(fmt.Sprintf("w=%d", w), func(b *testing.B) { e.run(b, w) })
					}
				})
			}
		})
	}
}

// echoBench is a listener and its client connections, dialled once for
// every run of a connection count.
type echoBench struct {
	conns []*echoConn
}

// echoConn is a lean client: it writes a prepared echo frame and counts
// the frames that come back, without decoding them, so that the
// measurement is mostly the server's.
type echoConn struct {
	nc    net.Conn
	fr    *codec.FrameReader
	frame []byte
	wbuf  []byte
}

func newEchoBench(b *testing.B, ch front.Channel, cfg *tls.Config, n int) *echoBench {
	b.Helper()
	d := codec.ISO87ASCII()
	srv := front.NewServer(front.Options{Handler: &holdHandler{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ch.Name, ch.Addr, ch.Dialect = "pos", "127.0.0.1:0", d
	addr, err := srv.Listen(ch)
	if err != nil {
		b.Fatal(err)
	}
	echo := codec.NewMessage(d)
	echo.SetMTI([4]byte{'0', '8', '0', '0'})
	echo.SetString(7, time.Now().UTC().Format("0102150405"))
	echo.SetString(11, "000001")
	echo.SetString(70, "301")
	frame, err := codec.AppendFrame(nil, &ch.Framing, nil, echo)
	if err != nil {
		b.Fatal(err)
	}

	e := &echoBench{conns: make([]*echoConn, n)}
	b.Cleanup(func() {
		for _, c := range e.conns {
			if c != nil {
				c.nc.Close()
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
	})
	// Dial a few at a time: the handshakes are the set-up's cost.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range e.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := dialEcho(addr.String(), cfg, ch.Framing, frame)
			if err != nil {
				errs <- err
				return
			}
			e.conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return e
}

func dialEcho(addr string, cfg *tls.Config, f codec.Framing, frame []byte) (*echoConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nc net.Conn
	var err error
	if cfg == nil {
		nc, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	} else {
		nc, err = (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr) // handshakes here
	}
	if err != nil {
		return nil, err
	}
	fr, err := codec.NewFrameReader(nc, f, 4096)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &echoConn{nc: nc, fr: fr, frame: frame}, nil
}

// run spreads b.N round trips over the connections, w in flight on each.
func (e *echoBench) run(b *testing.B, w int) {
	b.ReportAllocs()
	var wg sync.WaitGroup
	b.ResetTimer()
	for i, c := range e.conns {
		n := b.N / len(e.conns)
		if i < b.N%len(e.conns) {
			n++
		}
		if n == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.roundTrips(n, w); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
}

// roundTrips sends n echoes and reads their answers, keeping up to w in
// flight: it refills the window in one write, then reads every answer that
// has arrived (at least one).
func (c *echoConn) roundTrips(n, w int) error {
	c.nc.SetDeadline(time.Now().Add(2 * time.Minute)) // a stuck server fails the run instead of hanging it
	sent, got := 0, 0
	for got < n {
		if k := min(w-(sent-got), n-sent); k > 0 {
			c.wbuf = c.wbuf[:0]
			for range k {
				c.wbuf = append(c.wbuf, c.frame...)
			}
			if _, err := c.nc.Write(c.wbuf); err != nil {
				return err
			}
			sent += k
		}
		for {
			if _, _, err := c.fr.Next(); err != nil {
				return fmt.Errorf("after %d of %d answers: %w", got, n, err)
			}
			got++
			if got == sent || c.fr.Buffered() == 0 {
				break
			}
		}
	}
	return nil
}
