package head

import "github.com/junction-switch/junction/ledger"

// Query selects detail entries (Head.Entries). Zero fields select everything.
type Query struct {
	Region   string
	Window   uint32
	Date     uint32 // the UTC date of the entry's Time, YYYYMMDD
	Acquirer string
	RRN      string
	Limit    int // at most this many; ≤ 0 for all
}

// Entry is one merged journal entry with the region whose shard booked it.
type Entry struct {
	Region string
	ledger.Transfer
}
