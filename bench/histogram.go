package bench

import (
	"math"
	"math/bits"
	"time"
)

// histogram records latencies from 1 µs to about 100 days with a relative
// error under 1 %, in the manner of HdrHistogram: each power of two is split
// into subBuckets linear steps. Recording is an index computation and an
// increment; histograms of several goroutines are merged at the end.
type histogram struct {
	counts [octaves * subBuckets]int64
	total  int64
	max    int64 // µs
}

const (
	subBits    = 7
	subBuckets = 1 << subBits // 128 steps per power of two: < 0.8 % error
	octaves    = 37           // octave k holds values of k+6 bits: up to 2^43 µs
)

func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	h.counts[index(us)]++
	h.total++
	h.max = max(h.max, us)
}

// index is the bucket of a value in µs: values below subBuckets have a
// bucket each; above, the octave (position of the top bit) and the next
// subBits bits.
func index(us int64) int {
	if us < subBuckets {
		return int(us)
	}
	top := 63 - bits.LeadingZeros64(uint64(us)) // >= subBits
	octave := top - subBits + 1
	i := octave*subBuckets + int(us>>(top-subBits))&(subBuckets-1)
	return min(i, len(histogram{}.counts)-1)
}

// lowest is the smallest value (µs) of bucket i.
func lowest(i int) int64 {
	if i < subBuckets {
		return int64(i)
	}
	octave, sub := i/subBuckets, i%subBuckets
	top := octave + subBits - 1
	return int64(subBuckets+sub) << (top - subBits)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// quantile is the value (µs) at or below which q of the recordings fall,
// as the lowest value of its bucket (the maximum for q = 1).
func (h *histogram) quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := int64(math.Ceil(q * float64(h.total)))
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return lowest(i)
		}
	}
	return h.max
}
