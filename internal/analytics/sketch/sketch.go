// Package sketch is a DDSketch (Masson, Rim and Lee, VLDB 2019): a
// quantile summary with a relative-error guarantee, mergeable, in memory
// logarithmic in the range of the values.
//
// # Basics
//
// A value x > 0 goes into bucket ceil(log_γ x) with γ = (1+α)/(1-α); a
// quantile is read back as the bucket's midpoint 2γ^i/(γ+1), which is
// within α (1%) of every value in the bucket. Negative values use a
// mirrored set of buckets, zero (and values below 1e-9 in magnitude) its
// own counter.
//
// # Caveats
//
// A sketch keeps at most MaxBuckets buckets per sign; past that the lowest
// buckets are merged into one, which loses accuracy only for the smallest
// values (the collapsing-lowest variant of the paper). With α = 1%, 2048
// buckets cover 18 orders of magnitude.
package sketch

import (
	"encoding/binary"
	"errors"
	"math"
)

// Alpha is the relative accuracy.
const Alpha = 0.01

// MaxBuckets bounds the buckets of each sign.
const MaxBuckets = 2048

// minValue is the smallest magnitude with a bucket of its own.
const minValue = 1e-9

var (
	gamma    = (1 + Alpha) / (1 - Alpha)
	logGamma = math.Log(gamma)
)

// Sketch summarises a multiset of float64 values. The zero value is empty
// and ready to use. It is not safe for concurrent use.
type Sketch struct {
	pos, neg buckets
	zero     uint64
	count    uint64
}

// buckets are contiguous counters, counts[i] for index offset+i.
type buckets struct {
	offset int32
	counts []uint32
}

// index returns the bucket of x > 0.
func index(x float64) int32 {
	return int32(math.Ceil(math.Log(x) / logGamma))
}

// value returns the representative value of bucket i.
func value(i int32) float64 {
	return 2 * math.Pow(gamma, float64(i)) / (gamma + 1)
}

// Add adds x; NaN and infinities are ignored.
func (s *Sketch) Add(x float64) {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return
	case x > minValue:
		s.pos.add(index(x), 1)
	case x < -minValue:
		s.neg.add(index(-x), 1)
	default:
		s.zero++
	}
	s.count++
}

func (b *buckets) add(i int32, n uint32) {
	if len(b.counts) == 0 {
		b.offset = i
		b.counts = append(b.counts[:0], n)
		return
	}
	switch {
	case i < b.offset:
		grow := int(b.offset - i)
		if len(b.counts)+grow > MaxBuckets {
			// Collapse: the lowest bucket absorbs values below it.
			b.counts[0] += n
			return
		}
		b.counts = append(make([]uint32, grow, grow+len(b.counts)), b.counts...)
		b.offset = i
	case int(i-b.offset) >= len(b.counts):
		need := int(i-b.offset) + 1
		if need > MaxBuckets {
			b.collapse(need - MaxBuckets)
			need = MaxBuckets
		}
		for len(b.counts) < need {
			b.counts = append(b.counts, 0)
		}
	}
	b.counts[i-b.offset] += n
}

// collapse merges the k+1 lowest buckets into one.
func (b *buckets) collapse(k int) {
	if k >= len(b.counts) {
		k = len(b.counts) - 1
	}
	var sum uint32
	for _, c := range b.counts[:k+1] {
		sum += c
	}
	b.counts = append(b.counts[:0], b.counts[k:]...)
	b.counts[0] = sum
	b.offset += int32(k)
}

// Count is the number of values added.
func (s *Sketch) Count() uint64 { return s.count }

// Quantile returns the q-quantile (0 <= q <= 1): within Alpha of the
// value of rank floor(q*(n-1)) in the sorted values. NaN when empty.
func (s *Sketch) Quantile(q float64) float64 {
	if s.count == 0 || q < 0 || q > 1 {
		return math.NaN()
	}
	rank := uint64(q * float64(s.count-1))
	var seen uint64
	// Negative values, most negative first: highest index first.
	for i := len(s.neg.counts) - 1; i >= 0; i-- {
		seen += uint64(s.neg.counts[i])
		if seen > rank {
			return -value(s.neg.offset + int32(i))
		}
	}
	seen += s.zero
	if seen > rank {
		return 0
	}
	for i, c := range s.pos.counts {
		seen += uint64(c)
		if seen > rank {
			return value(s.pos.offset + int32(i))
		}
	}
	return value(s.pos.offset + int32(len(s.pos.counts)-1))
}

// Merge adds o's values to s.
func (s *Sketch) Merge(o *Sketch) {
	for i, c := range o.pos.counts {
		if c > 0 {
			s.pos.add(o.pos.offset+int32(i), c)
		}
	}
	for i, c := range o.neg.counts {
		if c > 0 {
			s.neg.add(o.neg.offset+int32(i), c)
		}
	}
	s.zero += o.zero
	s.count += o.count
}

// Bytes approximates the memory s holds.
func (s *Sketch) Bytes() int { return 64 + 4*(cap(s.pos.counts)+cap(s.neg.counts)) }

// AppendBinary appends s's encoding to b.
func (s *Sketch) AppendBinary(b []byte) []byte {
	b = binary.AppendUvarint(b, s.zero)
	for _, bk := range []*buckets{&s.pos, &s.neg} {
		b = binary.AppendVarint(b, int64(bk.offset))
		b = binary.AppendUvarint(b, uint64(len(bk.counts)))
		for _, c := range bk.counts {
			b = binary.AppendUvarint(b, uint64(c))
		}
	}
	return b
}

// ErrCorrupt is an encoding that does not decode.
var ErrCorrupt = errors.New("sketch: corrupt encoding")

// Decode reads a sketch AppendBinary wrote from b and returns the rest.
func Decode(b []byte) (*Sketch, []byte, error) {
	s := &Sketch{}
	var n int
	if s.zero, n = binary.Uvarint(b); n <= 0 {
		return nil, nil, ErrCorrupt
	}
	b = b[n:]
	s.count = s.zero
	for _, bk := range []*buckets{&s.pos, &s.neg} {
		off, n := binary.Varint(b)
		if n <= 0 || off < math.MinInt32 || off > math.MaxInt32 {
			return nil, nil, ErrCorrupt
		}
		b = b[n:]
		l, n := binary.Uvarint(b)
		if n <= 0 || l > MaxBuckets {
			return nil, nil, ErrCorrupt
		}
		b = b[n:]
		bk.offset = int32(off)
		bk.counts = make([]uint32, l)
		for i := range bk.counts {
			c, n := binary.Uvarint(b)
			if n <= 0 || c > math.MaxUint32 {
				return nil, nil, ErrCorrupt
			}
			b = b[n:]
			bk.counts[i] = uint32(c)
			s.count += c
		}
	}
	return s, b, nil
}
