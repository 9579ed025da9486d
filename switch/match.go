package switching

import (
	"fmt"
	"sync"

	"github.com/junction-switch/junction/codec"
)

// DefaultMatch is the matching key's fields besides the response MTI:
// STAN, terminal, acquiring institution, transmission time. Field 11 alone
// repeats within a day across terminals, and 11 with 41 across acquirers
// that reuse terminal ids; 7 tells apart a STAN that wrapped.
var DefaultMatch = []int{11, 41, 32, 7}

// maxKey bounds a matching key: the response MTI's three digits and each
// field with a length byte. The default fields take 3+4+6+8+11+10 = 42.
const maxKey = 96

// matchKey identifies a request in flight: fixed size, so that the set of
// keys in flight is a map that does not allocate per request.
type matchKey struct {
	n int
	b [maxKey]byte
}

// inFlight is the set of matching keys of the requests the switch is
// serving, in shards so that connections rarely wait for each other.
type inFlight struct {
	fields []int
	shards [16]struct {
		mu   sync.Mutex
		keys map[matchKey]struct{}
	}
}

// newInFlight checks that the fields' keys fit maxKey in dialect d (the
// switch's) and returns the empty set.
func newInFlight(d *codec.Dialect, fields []int) (*inFlight, error) {
	size := 3
	for _, id := range fields {
		f, ok := d.Field(id)
		if !ok {
			return nil, fmt.Errorf("switch: matching field %d: %s does not define it", id, d.Name())
		}
		size += 1 + f.Length
	}
	if size > maxKey {
		return nil, fmt.Errorf("switch: matching fields %v make keys of up to %d bytes; at most %d", fields, size, maxKey)
	}
	s := &inFlight{fields: fields}
	for i := range s.shards {
		s.shards[i].keys = map[matchKey]struct{}{}
	}
	return s, nil
}

// key builds the matching key of req: its response MTI class (0200 and
// 0201 both answer 0210) and the match fields, each length-prefixed so that
// field boundaries cannot shift.
func (s *inFlight) key(k *matchKey, mti [4]byte, req *codec.Message) {
	k.b[0], k.b[1], k.b[2] = mti[0], mti[1], (mti[2]-'0')|1+'0'
	k.n = 3
	for _, id := range s.fields {
		v := req.Get(id)
		k.b[k.n] = byte(len(v))
		k.n++
		k.n += copy(k.b[k.n:], v)
	}
	clear(k.b[k.n:])
}

func (s *inFlight) shard(k *matchKey) int {
	h := uint32(2166136261) // FNV-1a
	for _, c := range k.b[:k.n] {
		h = (h ^ uint32(c)) * 16777619
	}
	return int(h % uint32(len(s.shards)))
}

// add records k as in flight; false when it already is: a duplicate, which
// must not take the original's place.
func (s *inFlight) add(k *matchKey) bool {
	sh := &s.shards[s.shard(k)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, dup := sh.keys[*k]; dup {
		return false
	}
	sh.keys[*k] = struct{}{}
	return true
}

// done removes k, once its request is answered.
func (s *inFlight) done(k *matchKey) {
	sh := &s.shards[s.shard(k)]
	sh.mu.Lock()
	delete(sh.keys, *k)
	sh.mu.Unlock()
}
