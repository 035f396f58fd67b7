package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Mergeable summaries: Histogram, Stat and Regression, and HostRollup, the
// row of host_5m and host_daily built from them. Every one merges by
// addition. The value encoding they share is in host.go.

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

// HostRollup is the additive summary of the samples of one 5-minute slot or
// one day: counts, sums, min/max, histograms for percentiles and the sums of
// a memory-on-sessions regression. Rows merge by addition (Merge), so a week
// is the merge of its days and a day the merge of its slots.
type HostRollup struct {
	Start   int64 `json:"start"` // first ms of the slot or day (from the key)
	Day     int32 `json:"day"`   // civil day of Start in the DB's Location
	Samples int64 `json:"samples"`

	CPU       Stat `json:"cpu_pct"`
	CPUUser   Stat `json:"cpu_user_pct"`
	CPUSystem Stat `json:"cpu_system_pct"`
	CPUIowait Stat `json:"cpu_iowait_pct"`
	CPUSteal  Stat `json:"cpu_steal_pct"`

	MemTotal     Stat `json:"mem_total_bytes"`
	MemUsed      Stat `json:"mem_used_bytes"`
	MemAvailable Stat `json:"mem_available_bytes"`
	MemUsedPct   Stat `json:"mem_used_pct"`
	SwapUsed     Stat `json:"swap_used_bytes"`
	SwapIn       Stat `json:"swap_in_bytes_per_s"`
	SwapOut      Stat `json:"swap_out_bytes_per_s"`
	SwapActive   Stat `json:"swap_active"` // 1 when the sample saw swap-in or swap-out, else 0

	Load1       Stat `json:"load1"`
	Load5       Stat `json:"load5"`
	Load15      Stat `json:"load15"`
	LoadPerCore Stat `json:"load_per_core"`

	DataUsed  Stat `json:"disk_data_used_bytes"`
	DataFree  Stat `json:"disk_data_free_bytes"`
	DataTotal Stat `json:"disk_data_total_bytes"`
	RootUsed  Stat `json:"disk_root_used_bytes"`
	RootFree  Stat `json:"disk_root_free_bytes"`
	RootTotal Stat `json:"disk_root_total_bytes"`

	NetIn  Stat `json:"net_in_bytes_per_s"`
	NetOut Stat `json:"net_out_bytes_per_s"`
	Procs  Stat `json:"processes"`

	GatewayProcs Stat `json:"gateway_processes"`
	GatewayUp    Stat `json:"gateway_up"` // 1 when at least one gateway process ran
	GatewayCPU   Stat `json:"gateway_cpu_pct"`
	GatewayRSS   Stat `json:"gateway_rss_bytes"`

	Sessions Stat `json:"active_sessions"`

	CPUHist         Histogram `json:"cpu_pct_hist"`
	StealHist       Histogram `json:"cpu_steal_pct_hist"`
	IowaitHist      Histogram `json:"cpu_iowait_pct_hist"`
	MemUsedPctHist  Histogram `json:"mem_used_pct_hist"`
	LoadPerCoreHist Histogram `json:"load_per_core_hist"`
	SessionsHist    Histogram `json:"active_sessions_hist"`

	// MemSessions fits used memory (whole MiB) on active sessions: its slope
	// is what one more session costs.
	MemSessions Regression `json:"mem_mib_on_sessions"`
}

// NewHostRollup is an empty row with its histogram layouts set.
func NewHostRollup() HostRollup {
	return HostRollup{
		CPUHist:         NewHistogram(layoutPercent),
		StealHist:       NewHistogram(layoutPercent),
		IowaitHist:      NewHistogram(layoutPercent),
		MemUsedPctHist:  NewHistogram(layoutPercent),
		LoadPerCoreHist: NewHistogram(layoutLoadPerCore),
		SessionsHist:    NewHistogram(layoutCount),
	}
}

func (r *HostRollup) stats() []*Stat {
	return []*Stat{
		&r.CPU, &r.CPUUser, &r.CPUSystem, &r.CPUIowait, &r.CPUSteal,
		&r.MemTotal, &r.MemUsed, &r.MemAvailable, &r.MemUsedPct, &r.SwapUsed, &r.SwapIn, &r.SwapOut, &r.SwapActive,
		&r.Load1, &r.Load5, &r.Load15, &r.LoadPerCore,
		&r.DataUsed, &r.DataFree, &r.DataTotal, &r.RootUsed, &r.RootFree, &r.RootTotal,
		&r.NetIn, &r.NetOut, &r.Procs,
		&r.GatewayProcs, &r.GatewayUp, &r.GatewayCPU, &r.GatewayRSS,
		&r.Sessions,
	}
}

func (r *HostRollup) hists() []*Histogram {
	return []*Histogram{&r.CPUHist, &r.StealHist, &r.IowaitHist, &r.MemUsedPctHist, &r.LoadPerCoreHist, &r.SessionsHist}
}

const mib = 1 << 20

// Add folds one sample in. Fields the sample could not read are skipped, so
// each Stat's N counts the samples that had it.
func (r *HostRollup) Add(s *HostSample) {
	r.Samples++
	if s.Has(HostFieldCPU) {
		r.CPU.Add(s.CPUPct)
		r.CPUUser.Add(s.CPUUserPct)
		r.CPUSystem.Add(s.CPUSystemPct)
		r.CPUIowait.Add(s.CPUIowaitPct)
		r.CPUSteal.Add(s.CPUStealPct)
		r.CPUHist.Add(Quantize(s.CPUPct))
		r.StealHist.Add(Quantize(s.CPUStealPct))
		r.IowaitHist.Add(Quantize(s.CPUIowaitPct))
	}
	memOK := s.Has(HostFieldMemory) && s.MemTotal > 0
	if memOK {
		pct := Quantize(100 * float64(s.MemUsed) / float64(s.MemTotal))
		r.MemTotal.Add(float64(s.MemTotal))
		r.MemUsed.Add(float64(s.MemUsed))
		r.MemAvailable.Add(float64(s.MemAvailable))
		r.MemUsedPct.Add(pct)
		r.MemUsedPctHist.Add(pct)
	}
	if s.Has(HostFieldSwap) {
		r.SwapUsed.Add(float64(s.SwapUsed))
		r.SwapIn.Add(s.SwapInBps)
		r.SwapOut.Add(s.SwapOutBps)
		r.SwapActive.Add(b2f(s.SwapInBps > 0 || s.SwapOutBps > 0))
	}
	if s.Has(HostFieldLoad) {
		r.Load1.Add(s.Load1)
		r.Load5.Add(s.Load5)
		r.Load15.Add(s.Load15)
		r.LoadPerCore.Add(s.LoadPerCore)
		r.LoadPerCoreHist.Add(Quantize(s.LoadPerCore))
	}
	if s.Has(HostFieldDiskData) {
		r.DataUsed.Add(float64(s.DataDisk.Used))
		r.DataFree.Add(float64(s.DataDisk.Free))
		r.DataTotal.Add(float64(s.DataDisk.Total))
	}
	if s.Has(HostFieldDiskRoot) {
		r.RootUsed.Add(float64(s.RootDisk.Used))
		r.RootFree.Add(float64(s.RootDisk.Free))
		r.RootTotal.Add(float64(s.RootDisk.Total))
	}
	if s.Has(HostFieldNet) {
		r.NetIn.Add(s.NetInBps)
		r.NetOut.Add(s.NetOutBps)
	}
	if s.Has(HostFieldProcs) {
		r.Procs.Add(float64(s.Procs))
	}
	if s.Has(HostFieldGateway) {
		r.GatewayProcs.Add(float64(s.GatewayProcs))
		r.GatewayUp.Add(b2f(s.GatewayProcs > 0))
		r.GatewayCPU.Add(s.GatewayCPUPct)
		r.GatewayRSS.Add(float64(s.GatewayRSS))
	}
	if s.Has(HostFieldSessions) {
		r.Sessions.Add(float64(s.ActiveSessions))
		r.SessionsHist.Add(float64(s.ActiveSessions))
		if memOK {
			r.MemSessions.Add(float64(s.ActiveSessions), float64((s.MemUsed+mib/2)/mib))
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Merge adds o's facts; Start and Day stay those of r (or o's when r is
// empty).
func (r *HostRollup) Merge(o *HostRollup) error {
	if r.Samples == 0 && r.Start == 0 {
		r.Start, r.Day = o.Start, o.Day
	}
	r.Samples += o.Samples
	os := o.stats()
	for i, s := range r.stats() {
		s.Merge(*os[i])
	}
	oh := o.hists()
	for i, h := range r.hists() {
		if err := h.Merge(oh[i]); err != nil {
			return fmt.Errorf("merge host rollup: %w", err)
		}
	}
	r.MemSessions.Merge(o.MemSessions)
	return nil
}

const hostRollupVersion = 1

// appendHostRollup encodes v1: version, samples, the stats, histograms and
// regression in the order of stats() and hists(). A later version appends.
func appendHostRollup(b []byte, r *HostRollup) []byte {
	b = append(b, hostRollupVersion)
	b = binary.AppendUvarint(b, uint64(r.Samples))
	for _, s := range r.stats() {
		b = appendStat(b, s)
	}
	for _, h := range r.hists() {
		b = appendHistogram(b, h)
	}
	return appendRegression(b, &r.MemSessions)
}

func decodeHostRollup(v []byte) (HostRollup, error) {
	if len(v) == 0 || v[0] != hostRollupVersion {
		return HostRollup{}, fmt.Errorf("host rollup: unknown encoding %x", v[:min(len(v), 1)])
	}
	var r HostRollup
	d := &decoder{b: v[1:]}
	r.Samples = int64(d.uvarint())
	for _, s := range r.stats() {
		*s = d.stat()
	}
	for _, h := range r.hists() {
		*h = d.histogram()
	}
	r.MemSessions = d.regression()
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return HostRollup{}, fmt.Errorf("host rollup: %w", d.err)
	}
	return r, nil
}
