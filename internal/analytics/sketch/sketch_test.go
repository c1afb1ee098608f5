package sketch

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestQuantileAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, gen := range []struct {
		name string
		f    func() float64
	}{
		{"uniform", func() float64 { return rng.Float64() * 100 }},
		{"lognormal", func() float64 { return math.Exp(rng.NormFloat64() * 3) }},
		{"mixed sign", func() float64 { return rng.NormFloat64() * 50 }},
		{"integers", func() float64 { return float64(rng.IntN(40)) }},
	} {
		t.Run(gen.name, func(t *testing.T) {
			var s, a, b Sketch
			vals := make([]float64, 10000)
			for i := range vals {
				vals[i] = gen.f()
				s.Add(vals[i])
				if i%2 == 0 {
					a.Add(vals[i])
				} else {
					b.Add(vals[i])
				}
			}
			a.Merge(&b)
			slices.Sort(vals)
			for _, q := range []float64{0, 0.5, 0.9, 0.95, 0.99, 1} {
				want := vals[int(q*float64(len(vals)-1))]
				for _, sk := range []*Sketch{&s, &a} {
					got := sk.Quantile(q)
					if math.Abs(got-want) > Alpha*math.Abs(want)+1e-9 {
						t.Errorf("q%v = %v, want %v ± 1%%", q, got, want)
					}
				}
			}
			enc := s.AppendBinary(nil)
			d, rest, err := Decode(enc)
			if err != nil || len(rest) != 0 || d.Count() != s.Count() || d.Quantile(0.95) != s.Quantile(0.95) {
				t.Fatalf("decode: %v %d %v", err, len(rest), d)
			}
		})
	}
}

func TestEmptyAndCollapse(t *testing.T) {
	var s Sketch
	if !math.IsNaN(s.Quantile(0.5)) {
		t.Fatal("empty sketch has a quantile")
	}
	for e := -300.0; e <= 300; e += 0.5 {
		s.Add(math.Pow(10, e))
	}
	if len(s.pos.counts) > MaxBuckets {
		t.Fatalf("%d buckets", len(s.pos.counts))
	}
	if got := s.Quantile(1); math.Abs(got-1e300)/1e300 > Alpha {
		t.Fatalf("max = %v", got)
	}
}
