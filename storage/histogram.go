package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Histogram counts values in fixed-width bins: bin i holds
// [i*Width, (i+1)*Width). Values below zero land in bin 0 and values past the
// top in the last bin (Top-1), so the layout never grows. Two histograms with
// the same layout merge by adding counts, which is what makes percentiles of
// a day (or a week) exact up to one bin while the rows only store additive
// facts.
//
// Only non-empty bins are kept, sorted by index: a 5-minute row of 20 samples
// touches a handful of bins, so rows stay small on disk.
type Histogram struct {
	Width float64   `json:"width"`
	Top   uint32    `json:"top"` // number of bins
	Bins  []HistBin `json:"bins"`
}

// HistBin is one non-empty bin.
type HistBin struct {
	Index uint32 `json:"i"`
	Count uint64 `json:"n"`
}

// HistLayout fixes a histogram's bins. Rows must keep a metric's layout
// forever (a layout change is a schema change), or they stop merging.
type HistLayout struct {
	Width float64
	Top   uint32
}

// The layouts of the host rollups' histograms. Never changed in place.
var (
	// layoutPercent: 0.5-point bins over 0–100 %; the last bin [100, 100.5)
	// also holds anything above.
	layoutPercent = HistLayout{Width: 0.5, Top: 201}
	// layoutLoadPerCore: 0.05 bins over 0–20 runnable tasks per core.
	layoutLoadPerCore = HistLayout{Width: 0.05, Top: 400}
	// layoutCount: unit bins for small counts (active sessions) up to 1023.
	layoutCount = HistLayout{Width: 1, Top: 1024}
)

// ErrLayoutMismatch means two histograms with different bins were merged.
var ErrLayoutMismatch = errors.New("storage: histogram layouts differ")

// NewHistogram returns an empty histogram with layout l.
func NewHistogram(l HistLayout) Histogram {
	return Histogram{Width: l.Width, Top: l.Top}
}

// Layout is the histogram's bin layout.
func (h *Histogram) Layout() HistLayout { return HistLayout{Width: h.Width, Top: h.Top} }

// Count is the number of values added.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, b := range h.Bins {
		n += b.Count
	}
	return n
}

// bin is the index v falls in.
func (h *Histogram) bin(v float64) uint32 {
	if h.Top == 0 || h.Width <= 0 {
		return 0
	}
	if !(v > 0) { // also NaN
		return 0
	}
	f := math.Floor(v / h.Width)
	if f >= float64(h.Top-1) {
		return h.Top - 1
	}
	return uint32(f)
}

// Add counts one value.
func (h *Histogram) Add(v float64) { h.addBin(h.bin(v), 1) }

func (h *Histogram) addBin(i uint32, n uint64) {
	// Binary search: bins are sorted and few.
	lo, hi := 0, len(h.Bins)
	for lo < hi {
		m := (lo + hi) / 2
		if h.Bins[m].Index < i {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(h.Bins) && h.Bins[lo].Index == i {
		h.Bins[lo].Count += n
		return
	}
	h.Bins = append(h.Bins, HistBin{})
	copy(h.Bins[lo+1:], h.Bins[lo:])
	h.Bins[lo] = HistBin{Index: i, Count: n}
}

// Merge adds o's counts. An empty o merges into anything; an empty h takes
// o's layout.
func (h *Histogram) Merge(o *Histogram) error {
	if len(o.Bins) == 0 {
		return nil
	}
	if h.Top == 0 && len(h.Bins) == 0 {
		h.Width, h.Top = o.Width, o.Top
	}
	if h.Layout() != o.Layout() {
		return fmt.Errorf("%w: %v vs %v", ErrLayoutMismatch, h.Layout(), o.Layout())
	}
	out := make([]HistBin, 0, len(h.Bins)+len(o.Bins))
	i, j := 0, 0
	for i < len(h.Bins) || j < len(o.Bins) {
		switch {
		case j == len(o.Bins) || (i < len(h.Bins) && h.Bins[i].Index < o.Bins[j].Index):
			out = append(out, h.Bins[i])
			i++
		case i == len(h.Bins) || o.Bins[j].Index < h.Bins[i].Index:
			out = append(out, o.Bins[j])
			j++
		default:
			out = append(out, HistBin{Index: h.Bins[i].Index, Count: h.Bins[i].Count + o.Bins[j].Count})
			i++
			j++
		}
	}
	h.Bins = out
	return nil
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) by the nearest-rank method:
// the midpoint of the bin holding the ceil(q·n)-th smallest value. The exact
// value lies in that bin, so the estimate is off by at most half a bin (more
// only for values clamped into the last bin). An empty histogram gives 0.
func (h *Histogram) Quantile(q float64) float64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	rank = min(rank, n)
	var cum uint64
	for _, b := range h.Bins {
		cum += b.Count
		if cum >= rank {
			return (float64(b.Index) + 0.5) * h.Width
		}
	}
	return (float64(h.Bins[len(h.Bins)-1].Index) + 0.5) * h.Width
}

// FractionAbove is the share (0–1) of values in bins that start at or above
// v. Used for "how often was the box over the line", at bin resolution.
func (h *Histogram) FractionAbove(v float64) float64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	edge := h.bin(v)
	var above uint64
	for _, b := range h.Bins {
		if b.Index >= edge {
			above += b.Count
		}
	}
	return float64(above) / float64(n)
}

// appendHistogram encodes h: width, top, bin count, then (index delta, count)
// pairs as uvarints.
func appendHistogram(b []byte, h *Histogram) []byte {
	b = appendFloat(b, h.Width)
	b = binary.AppendUvarint(b, uint64(h.Top))
	b = binary.AppendUvarint(b, uint64(len(h.Bins)))
	var prev uint32
	for _, bin := range h.Bins {
		b = binary.AppendUvarint(b, uint64(bin.Index-prev))
		b = binary.AppendUvarint(b, bin.Count)
		prev = bin.Index
	}
	return b
}

func (d *decoder) histogram() Histogram {
	h := Histogram{Width: d.float(), Top: uint32(d.uvarint())}
	n := d.uvarint()
	if d.err != nil || n > uint64(h.Top) {
		d.fail()
		return Histogram{}
	}
	if n > 0 {
		h.Bins = make([]HistBin, 0, n)
	}
	var idx uint64
	for k := uint64(0); k < n; k++ {
		idx += d.uvarint()
		c := d.uvarint()
		if idx >= uint64(h.Top) || (k > 0 && idx == uint64(h.Bins[k-1].Index)) {
			d.fail()
			return Histogram{}
		}
		h.Bins = append(h.Bins, HistBin{Index: uint32(idx), Count: c})
	}
	return h
}

// Quantize rounds v to a multiple of 1/1024. Host metrics are quantized
// before they are stored or summed: sums of such values (and of whole byte
// counts) are exact in float64 below 2^53 units, so a rollup is the same
// whatever order its samples were folded in, and the encoding is compact.
func Quantize(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1024) / 1024
}

// appendFloat writes v as a zigzag uvarint of v·1024 shifted left one bit
// when that is an integer below 2^53 (every quantized value), else a 1 tag
// and the 8 bytes of the IEEE bits.
func appendFloat(b []byte, v float64) []byte {
	k := v * 1024
	if k == math.Trunc(k) && math.Abs(k) < 1<<53 {
		i := int64(k)
		zz := uint64(i<<1) ^ uint64(i>>63)
		return binary.AppendUvarint(b, zz<<1)
	}
	b = binary.AppendUvarint(b, 1)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(v))
}

// decoder reads what the append* helpers wrote; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

var errBadValue = errors.New("storage: malformed value")

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errBadValue
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) float() float64 {
	u := d.uvarint()
	if d.err != nil {
		return 0
	}
	if u&1 == 0 {
		zz := u >> 1
		i := int64(zz>>1) ^ -int64(zz&1)
		return float64(i) / 1024
	}
	if u != 1 || len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Stat is the additive summary of one metric over a rollup: how many
// samples had it, their sum, min and max. Means are Sum/N at read time, so
// merging rows never averages averages.
type Stat struct {
	N   int64   `json:"n"`
	Sum float64 `json:"sum"`
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// Add counts one value (quantized, see Quantize).
func (s *Stat) Add(v float64) {
	v = Quantize(v)
	if s.N == 0 || v < s.Min {
		s.Min = v
	}
	if s.N == 0 || v > s.Max {
		s.Max = v
	}
	s.N++
	s.Sum += v
}

// Merge adds o.
func (s *Stat) Merge(o Stat) {
	if o.N == 0 {
		return
	}
	if s.N == 0 || o.Min < s.Min {
		s.Min = o.Min
	}
	if s.N == 0 || o.Max > s.Max {
		s.Max = o.Max
	}
	s.N += o.N
	s.Sum += o.Sum
}

// Mean is Sum/N, 0 when empty.
func (s Stat) Mean() float64 {
	if s.N == 0 {
		return 0
	}
	return s.Sum / float64(s.N)
}

func appendStat(b []byte, s *Stat) []byte {
	b = binary.AppendUvarint(b, uint64(s.N))
	if s.N == 0 {
		return b
	}
	return appendFloat(appendFloat(appendFloat(b, s.Sum), s.Min), s.Max)
}

func (d *decoder) stat() Stat {
	s := Stat{N: int64(d.uvarint())}
	if s.N > 0 {
		s.Sum, s.Min, s.Max = d.float(), d.float(), d.float()
	}
	return s
}

// Regression holds the sums of an ordinary least-squares fit of y on x.
// Every field is a sum, so fits over merged rows are exact fits over all
// their points.
type Regression struct {
	N   int64   `json:"n"`
	SX  float64 `json:"sx"`
	SY  float64 `json:"sy"`
	SXX float64 `json:"sxx"`
	SXY float64 `json:"sxy"`
	SYY float64 `json:"syy"`
}

// Add counts one point (quantized).
func (r *Regression) Add(x, y float64) {
	x, y = Quantize(x), Quantize(y)
	r.N++
	r.SX += x
	r.SY += y
	r.SXX += x * x
	r.SXY += x * y
	r.SYY += y * y
}

// Merge adds o.
func (r *Regression) Merge(o Regression) {
	r.N += o.N
	r.SX += o.SX
	r.SY += o.SY
	r.SXX += o.SXX
	r.SXY += o.SXY
	r.SYY += o.SYY
}

// Fit returns y ≈ intercept + slope·x and the coefficient of determination.
// ok is false with fewer than three points or when x never varied.
func (r Regression) Fit() (slope, intercept, r2 float64, ok bool) {
	if r.N < 3 {
		return 0, 0, 0, false
	}
	n := float64(r.N)
	sxx := r.SXX - r.SX*r.SX/n
	sxy := r.SXY - r.SX*r.SY/n
	syy := r.SYY - r.SY*r.SY/n
	if sxx <= 1e-9 {
		return 0, 0, 0, false
	}
	slope = sxy / sxx
	intercept = (r.SY - slope*r.SX) / n
	if syy > 0 {
		r2 = sxy * sxy / (sxx * syy)
	}
	return slope, intercept, r2, true
}

func appendRegression(b []byte, r *Regression) []byte {
	b = binary.AppendUvarint(b, uint64(r.N))
	for _, f := range []float64{r.SX, r.SY, r.SXX, r.SXY, r.SYY} {
		b = appendFloat(b, f)
	}
	return b
}

func (d *decoder) regression() Regression {
	return Regression{N: int64(d.uvarint()), SX: d.float(), SY: d.float(), SXX: d.float(), SXY: d.float(), SYY: d.float()}
}
