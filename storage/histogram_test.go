package storage

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// exactQuantile is the nearest-rank q-quantile of sorted values.
func exactQuantile(sorted []float64, q float64) float64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func TestHistogramQuantileWithinOneBin(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name   string
		layout HistLayout
		gen    func() float64
	}{
		{"uniform percent", layoutPercent, func() float64 { return rng.Float64() * 100 }},
		{"skewed percent", layoutPercent, func() float64 { return 100 * math.Pow(rng.Float64(), 4) }},
		{"bimodal percent", layoutPercent, func() float64 {
			if rng.IntN(10) == 0 {
				return 90 + rng.Float64()*10
			}
			return rng.Float64() * 15
		}},
		{"load per core", layoutLoadPerCore, func() float64 { return rng.ExpFloat64() * 0.7 }},
		{"sessions", layoutCount, func() float64 { return float64(rng.IntN(40)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHistogram(tc.layout)
			var vals []float64
			for range 5000 {
				v := tc.gen()
				vals = append(vals, v)
				h.Add(v)
			}
			slices.Sort(vals)
			if got := h.Count(); got != uint64(len(vals)) {
				t.Fatalf("count %d, want %d", got, len(vals))
			}
			for _, q := range []float64{0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1} {
				exact := exactQuantile(vals, q)
				got := h.Quantile(q)
				if math.Abs(got-exact) > tc.layout.Width {
					t.Errorf("q%.2f = %.4f, exact %.4f: more than one bin (%.2f) apart", q, got, exact, tc.layout.Width)
				}
			}
		})
	}
}

func TestHistogramQuantileKnownValues(t *testing.T) {
	h := NewHistogram(layoutPercent)
	for v := 1; v <= 100; v++ {
		h.Add(float64(v))
	}
	// Nearest rank: p95 of 1..100 is 95, in bin [95, 95.5).
	if got := h.Quantile(0.95); got != 95.25 {
		t.Errorf("p95 = %v, want 95.25", got)
	}
	if got := h.Quantile(0.5); got != 50.25 {
		t.Errorf("p50 = %v, want 50.25", got)
	}
	if got := h.FractionAbove(90); got != 0.11 {
		t.Errorf("fraction at or above 90 = %v, want 0.11", got)
	}
	var empty Histogram
	if got := empty.Quantile(0.95); got != 0 {
		t.Errorf("empty p95 = %v, want 0", got)
	}
}

func TestHistogramClamps(t *testing.T) {
	h := NewHistogram(layoutPercent)
	h.Add(-3)
	h.Add(math.NaN())
	h.Add(250)
	want := []HistBin{{Index: 0, Count: 2}, {Index: 200, Count: 1}}
	if !reflect.DeepEqual(h.Bins, want) {
		t.Fatalf("bins %v, want %v", h.Bins, want)
	}
}

func TestHistogramMergeEqualsWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	whole := NewHistogram(layoutPercent)
	parts := []Histogram{NewHistogram(layoutPercent), NewHistogram(layoutPercent), NewHistogram(layoutPercent)}
	for i := range 3000 {
		v := rng.NormFloat64()*15 + 40
		whole.Add(v)
		parts[i%3].Add(v)
	}
	var merged Histogram // zero value takes the first part's layout
	for i := range parts {
		if err := merged.Merge(&parts[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(merged, whole) {
		t.Fatal("merged histogram differs from the histogram of all values")
	}
	other := NewHistogram(layoutLoadPerCore)
	other.Add(1)
	if err := merged.Merge(&other); !errors.Is(err, ErrLayoutMismatch) {
		t.Fatalf("merge across layouts: err %v, want ErrLayoutMismatch", err)
	}
}

func TestHistogramEncoding(t *testing.T) {
	h := NewHistogram(layoutLoadPerCore)
	for _, v := range []float64{0, 0.01, 0.3, 0.3, 2, 19.99, 40} {
		h.Add(v)
	}
	b := appendHistogram(nil, &h)
	d := &decoder{b: b}
	got := d.histogram()
	if d.err != nil || len(d.b) != 0 {
		t.Fatalf("decode: err %v, %d bytes left", d.err, len(d.b))
	}
	if !reflect.DeepEqual(got, h) {
		t.Fatalf("round trip: got %+v, want %+v", got, h)
	}
	for n := range len(b) {
		d := &decoder{b: b[:n]}
		d.histogram()
		if d.err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
}

func TestFloatEncoding(t *testing.T) {
	for _, v := range []float64{0, 1, -1, 0.5, 1.0 / 1024, -7.25, 99.9990234375, 1e12, 3e17, 0.1, math.Inf(1), math.MaxFloat64} {
		d := &decoder{b: appendFloat(nil, v)}
		if got := d.float(); got != v || d.err != nil {
			t.Errorf("%v: got %v, err %v", v, got, d.err)
		}
	}
	if n := len(appendFloat(nil, Quantize(42.123456))); n > 4 {
		t.Errorf("a quantized percentage takes %d bytes, want ≤ 4", n)
	}
}

func TestStatAndRegression(t *testing.T) {
	var s Stat
	for _, v := range []float64{3, 1, 2} {
		s.Add(v)
	}
	if s != (Stat{N: 3, Sum: 6, Min: 1, Max: 3}) || s.Mean() != 2 {
		t.Fatalf("stat %+v mean %v", s, s.Mean())
	}
	var a, b, all Regression
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 200 {
		x := float64(rng.IntN(30))
		y := math.Round(1500 + 220*x + rng.NormFloat64()*20)
		all.Add(x, y)
		if i%2 == 0 {
			a.Add(x, y)
		} else {
			b.Add(x, y)
		}
	}
	a.Merge(b)
	if a != all {
		t.Fatalf("merged sums %+v differ from whole %+v", a, all)
	}
	slope, icpt, r2, ok := all.Fit()
	if !ok || math.Abs(slope-220) > 3 || math.Abs(icpt-1500) > 40 || r2 < 0.99 {
		t.Fatalf("fit slope %.2f intercept %.2f r2 %.3f ok %v", slope, icpt, r2, ok)
	}
	var flat Regression
	for range 10 {
		flat.Add(4, 1000)
	}
	if _, _, _, ok := flat.Fit(); ok {
		t.Fatal("fit with x never varying: ok, want not ok")
	}
}
