// Package baseline is the switch most Go teams would write first, kept to
// measure Junction against: the same ISO 8583 on the same mutual-TLS
// sockets, the same demo cards, the same durability promise (an approval is
// sent only after its booking is synced to disk), built the obvious way.
//
//   - std net + crypto/tls, one goroutine per connection, requests served
//     one after another in the order they arrive;
//   - moov-io/iso8583 NewMessage + Unpack for every request, a new message
//     and Pack for every response;
//   - one badger Update per transaction with SyncWrites on: read the card's
//     balance and the transaction's idempotency key, write both, commit
//     (retried on badger's conflict error, as its documentation advises);
//   - routing by BIN prefix and PAN length, a Luhn check, in plain Go.
//
// It is not crippled: no sleeps, no extra copies, no logging per request,
// retransmissions answered from the idempotency record like Junction's.
// What it lacks is what Junction is built on: a zero-allocation codec,
// pipelined answers, and group commit.
package baseline

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/junction-switch/junction/codec"
	"github.com/junction-switch/junction/routing"
	"github.com/moov-io/iso8583"
)

// Card is an account the baseline opens: a PAN and its opening balance.
type Card struct {
	PAN     string
	Opening int64
}

// Options configure a Server.
type Options struct {
	Addr     string      // host:port
	TLS      *tls.Config // server side, client certificates required
	Dir      string      // badger directory
	BIN      string      // the PANs it issues; others get 15
	Currency uint16
	Cards    []Card
	Logger   *slog.Logger
}

// Server is a running baseline switch with its ledger.
type Server struct {
	o    Options
	db   *badger.DB
	ln   net.Listener
	spec *iso8583.MessageSpec
	log  *slog.Logger
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn map[net.Conn]struct{}
	seq  uint64 // approval codes, under mu
}

// Start opens the ledger, seeds the cards (once) and listens.
func Start(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	db, err := badger.Open(badger.DefaultOptions(o.Dir).WithSyncWrites(true).WithLogger(nil))
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	s := &Server{o: o, db: db, spec: codec.ISO87ASCII().Spec(), log: o.Logger, conn: map[net.Conn]struct{}{}}
	if err := s.seed(); err != nil {
		db.Close()
		return nil, err
	}
	ln, err := tls.Listen("tcp", o.Addr, o.TLS)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("baseline: %w", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *Server) seed() error {
	return s.db.Update(func(txn *badger.Txn) error {
		for _, c := range s.o.Cards {
			key := []byte("acct/" + c.PAN)
			if _, err := txn.Get(key); err == nil {
				continue
			}
			if err := txn.Set(key, binary.BigEndian.AppendUint64(nil, uint64(c.Opening))); err != nil {
				return err
			}
		}
		return nil
	})
}

// Addr is where it listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops listening, closes the connections and the ledger.
func (s *Server) Close() error {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conn {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return s.db.Close()
}

// Balance is a card's balance in minor units.
func (s *Server) Balance(pan string) (int64, error) {
	var b int64
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("acct/" + pan))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { b = int64(binary.BigEndian.Uint64(v)); return nil })
	})
	return b, err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conn[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

// serve reads a frame (2-byte length), answers it, and reads the next.
func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conn, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReader(c)
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if len(body) == 0 {
			continue
		}
		out, err := s.handle(body)
		if err != nil {
			s.log.Warn("baseline: request dropped", "err", err)
			continue
		}
		frame := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(out)), uint16(len(out)))
		if _, err := c.Write(append(frame, out...)); err != nil {
			return
		}
	}
}

// echoed are the request fields a response repeats.
var echoed = []int{2, 3, 4, 7, 11, 12, 13, 25, 32, 37, 41, 42, 49}

func (s *Server) handle(body []byte) ([]byte, error) {
	req := iso8583.NewMessage(s.spec)
	if err := req.Unpack(body); err != nil {
		return nil, err
	}
	mti, err := req.GetMTI()
	if err != nil || len(mti) != 4 {
		return nil, fmt.Errorf("no MTI")
	}
	resp := iso8583.NewMessage(s.spec)
	resp.MTI(mti[:2] + string(mti[2]+1) + mti[3:])
	for _, id := range echoed {
		if v, err := req.GetString(id); err == nil && v != "" {
			if err := resp.Field(id, v); err != nil {
				return nil, err
			}
		}
	}
	rc, auth, bal := s.authorize(req, mti)
	if err := resp.Field(39, rc); err != nil {
		return nil, err
	}
	if auth != "" {
		resp.Field(38, auth)
	}
	if bal != nil {
		b := codec.AppendAdditionalAmount(nil, codec.AdditionalAmount{AccountType: "00", AmountType: codec.AmountLedger, Currency: s.o.Currency, Amount: *bal})
		b = codec.AppendAdditionalAmount(b, codec.AdditionalAmount{AccountType: "00", AmountType: codec.AmountAvailable, Currency: s.o.Currency, Amount: *bal})
		if err := resp.Field(54, string(b)); err != nil {
			return nil, err
		}
	}
	return resp.Pack()
}

// authorize books a purchase or reads a balance. It returns the response
// code, the approval code and, when the card was found, its balance.
func (s *Server) authorize(req *iso8583.Message, mti string) (rc, auth string, bal *int64) {
	if mti == "0800" {
		return "00", "", nil
	}
	pan, _ := req.GetString(2)
	pcode, _ := req.GetString(3)
	switch {
	case mti != "0200" || len(pcode) != 6:
		return "12", "", nil
	case len(pan) < 12 || len(pan) > 19 || pan[:len(s.o.BIN)] != s.o.BIN:
		return "15", "", nil
	case !routing.Luhn([]byte(pan)):
		return "14", "", nil
	}
	if pcode[:2] == codec.TxBalance {
		b, err := s.Balance(pan)
		if err != nil {
			return "14", "", nil
		}
		return "00", "", &b
	}
	if pcode[:2] != codec.TxPurchase {
		return "12", "", nil
	}
	amountText, _ := req.GetString(4)
	amount, err := strconv.ParseInt(amountText, 10, 64)
	if err != nil || amount <= 0 {
		return "13", "", nil
	}
	var id []byte
	for _, f := range []int{32, 41, 11, 7} {
		v, _ := req.GetString(f)
		id = append(append(id, v...), '|')
	}
	key := append([]byte("tx/"), id...)
	for {
		var after int64
		replay := false
		err = s.db.Update(func(txn *badger.Txn) error {
			if item, err := txn.Get(key); err == nil {
				// A retransmission: the first outcome again.
				replay = true
				return item.Value(func(v []byte) error { rc, auth = string(v[:2]), string(v[2:]); return nil })
			}
			acct := []byte("acct/" + pan)
			item, err := txn.Get(acct)
			if err != nil {
				rc = "14"
				return txn.Set(key, []byte(rc))
			}
			var balance int64
			item.Value(func(v []byte) error { balance = int64(binary.BigEndian.Uint64(v)); return nil })
			if balance < amount {
				rc, after = "51", balance
				return txn.Set(key, []byte(rc))
			}
			after = balance - amount
			s.mu.Lock()
			s.seq++
			auth = fmt.Sprintf("%06d", s.seq%1000000)
			s.mu.Unlock()
			rc = "00"
			if err := txn.Set(acct, binary.BigEndian.AppendUint64(nil, uint64(after))); err != nil {
				return err
			}
			return txn.Set(key, []byte(rc+auth))
		})
		if errors.Is(err, badger.ErrConflict) {
			continue // another connection booked on the same card: retry
		}
		if err != nil {
			return "96", "", nil
		}
		if !replay && (rc == "00" || rc == "51") {
			return rc, auth, &after
		}
		return rc, auth, nil
	}
}
