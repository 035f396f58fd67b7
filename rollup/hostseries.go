package rollup

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// ErrNotFound marks a question about something that does not exist (a
// session id no ledger record carries). The API answers 404.
var ErrNotFound = errors.New("not found")

// HostSampleReader reads raw host samples; *storage.DB satisfies it.
type HostSampleReader interface {
	HostSamples(fromMillis, toMillis int64, fn func(*storage.HostSample) error) error
	LatestHostSample() (storage.HostSample, bool, error)
}

// Host ranges: rolling windows for the last hours, calendar days beyond.
var hostRanges = map[string]time.Duration{"6h": 6 * time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour, "90d": 90 * 24 * time.Hour}

// HostRangeNames lists the host page's ranges, shortest first.
func HostRangeNames() []string { return []string{"6h", "24h", "7d", "30d", "90d"} }

// Resolutions of host series, by the length of their range: about a
// thousand points at most, which a chart draws at one per pixel.
const (
	rawUpTo  = 6 * time.Hour
	fiveUpTo = 7 * 24 * time.Hour
)

// Series is a chart's values; NaN (no data) marshals as null.
type Series []float64

// MarshalJSON writes the values with at most 3 decimals, NaN as null.
func (s Series) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 8*len(s)+2)
	b = append(b, '[')
	for i, v := range s {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, math.Round(v*1000)/1000, 'f', -1, 64)
	}
	return append(b, ']'), nil
}

// HostSeries is the host's history over a range on one time axis, with the
// fleet's cost on its own axis of the same times.
type HostSeries struct {
	Range       HostRange `json:"range"`
	Resolution  string    `json:"resolution"` // raw, 5m or daily
	StepSeconds int64     `json:"step_seconds"`
	// T holds the points' times (unix seconds: a sample's time, or the
	// start of a 5-minute slot or day); every series has one value per T.
	T             []int64 `json:"t"`
	CPUPct        Series  `json:"cpu_pct"`     // busy, steal included (average of the point)
	CPUMaxPct     Series  `json:"cpu_max_pct"` // the highest sample of the point
	StealPct      Series  `json:"steal_pct"`
	IowaitPct     Series  `json:"iowait_pct"`
	MemUsedPct    Series  `json:"mem_used_pct"`
	SwapUsedPct   Series  `json:"swap_used_pct"`
	LoadPerCore   Series  `json:"load_per_core"`
	DiskDataPct   Series  `json:"disk_data_used_pct"`
	DiskRootPct   Series  `json:"disk_root_used_pct"`
	NetInBps      Series  `json:"net_in_bytes_per_s"`
	NetOutBps     Series  `json:"net_out_bytes_per_s"`
	Sessions      Series  `json:"active_sessions"`
	MemTotalBytes uint64  `json:"mem_total_bytes"`
	// Cost is the fleet's cost in USD per hour: by hour up to a week, by
	// day (the day's cost over its hours) beyond.
	Cost CostSeries `json:"cost"`
}

// CostSeries is cost per hour on its own times.
type CostSeries struct {
	StepSeconds int64   `json:"step_seconds"`
	T           []int64 `json:"t"`
	USDPerHour  Series  `json:"usd_per_hour"`
}

// HostRange is a host series' time span.
type HostRange struct {
	Name string `json:"name"`
	From int64  `json:"from"` // unix seconds
	To   int64  `json:"to"`
	TZ   string `json:"tz"`
}

// HostSeriesOf answers the host page for a named range ending now.
func (d *Dashboard) HostSeriesOf(ctx context.Context, name string) (HostSeries, error) {
	span, ok := hostRanges[name]
	if !ok {
		return HostSeries{}, badQuery("range %q: want one of %s", name, strings.Join(HostRangeNames(), ", "))
	}
	loc := d.src.Location()
	now := d.cfg.Now()
	to := now.UnixMilli()
	from := now.Add(-span).UnixMilli()
	if span > 24*time.Hour { // calendar days, as the usage ranges
		days := int32(span / (24 * time.Hour))
		today := storage.DayNumber(to, loc)
		from = storage.DayStartMillis(today-days+1, loc)
	}
	out := HostSeries{Range: HostRange{Name: name, From: from / 1000, To: to / 1000, TZ: loc.String()}}
	var err error
	switch {
	case span <= rawUpTo:
		out.Resolution, out.StepSeconds = "raw", 15
		err = d.src.HostSamples(from, to, func(s *storage.HostSample) error {
			out.add(samplePoint(s))
			return nil
		})
	case span <= fiveUpTo:
		out.Resolution, out.StepSeconds = "5m", 300
		var points []hostPoint
		if points, err = d.fiveMinute(from, to); err == nil {
			for _, p := range points {
				out.add(p)
			}
		}
	default:
		out.Resolution, out.StepSeconds = "daily", 86400
		var days []storage.HostRollup
		if days, err = d.src.HostRollupsDaily(storage.DayNumber(from, loc), storage.DayNumber(to, loc)); err == nil {
			for i := range days {
				out.point(storage.DayStartMillis(days[i].Day, loc), &days[i])
			}
		}
	}
	if err != nil {
		return HostSeries{}, err
	}
	out.gaps()
	out.Cost, err = d.costSeries(from, to, span)
	return out, err
}

// samplePoint is a raw sample's point: its fields as a one-sample rollup
// would give them (a field the sampler could not read is no data), without
// building one (its histograms cost more than the rest of the read).
func samplePoint(s *storage.HostSample) hostPoint {
	nan := math.NaN()
	p := hostPoint{start: s.TS, memTotal: s.MemTotal}
	for i := range p.v {
		p.v[i] = nan
	}
	pct := func(used, free uint64) float64 {
		if used+free == 0 {
			return nan
		}
		return 100 * float64(used) / float64(used+free)
	}
	if s.Has(storage.HostFieldCPU) {
		p.v[0], p.v[1], p.v[2], p.v[3] = s.CPUPct, s.CPUPct, s.CPUStealPct, s.CPUIowaitPct
	}
	if s.Has(storage.HostFieldMemory) && s.MemTotal > 0 {
		p.v[4] = 100 * float64(s.MemUsed) / float64(s.MemTotal)
		if s.Has(storage.HostFieldSwap) {
			p.v[5] = 100 * float64(s.SwapUsed) / float64(s.MemTotal)
		}
	}
	if s.Has(storage.HostFieldLoad) {
		p.v[6] = s.LoadPerCore
	}
	if s.Has(storage.HostFieldDiskData) {
		p.v[7] = pct(s.DataDisk.Used, s.DataDisk.Free)
	}
	if s.Has(storage.HostFieldDiskRoot) {
		p.v[8] = pct(s.RootDisk.Used, s.RootDisk.Free)
	}
	if s.Has(storage.HostFieldNet) {
		p.v[9], p.v[10] = s.NetInBps, s.NetOutBps
	}
	if s.Has(storage.HostFieldSessions) {
		p.v[11] = float64(s.ActiveSessions)
	}
	return p
}

// hostPoint is one point of the host series, decoded from a rollup.
type hostPoint struct {
	start    int64 // unix ms
	v        [12]float64
	memTotal uint64
}

// pointOf reads the chart's figures out of a rollup (a sample, a slot, a day).
func pointOf(startMillis int64, r *storage.HostRollup) hostPoint {
	pct := func(used, free storage.Stat) float64 {
		if u, f := used.Mean(), free.Mean(); u+f > 0 {
			return 100 * u / (u + f)
		}
		return math.NaN()
	}
	mean := func(s storage.Stat) float64 {
		if s.N == 0 {
			return math.NaN()
		}
		return s.Mean()
	}
	swap, cpuMax := math.NaN(), math.NaN()
	if total := r.MemTotal.Max; total > 0 && r.SwapUsed.N > 0 {
		swap = 100 * r.SwapUsed.Mean() / total // of RAM: how much was pushed out
	}
	if r.CPU.N > 0 {
		cpuMax = r.CPU.Max
	}
	return hostPoint{start: startMillis, memTotal: uint64(r.MemTotal.Max), v: [12]float64{
		mean(r.CPU), cpuMax, mean(r.CPUSteal), mean(r.CPUIowait), mean(r.MemUsedPct), swap, mean(r.LoadPerCore),
		pct(r.DataUsed, r.DataFree), pct(r.RootUsed, r.RootFree), mean(r.NetIn), mean(r.NetOut), mean(r.Sessions),
	}}
}

// series are the chart's columns, in hostPoint.v's order.
func (h *HostSeries) series() []*Series {
	return []*Series{&h.CPUPct, &h.CPUMaxPct, &h.StealPct, &h.IowaitPct, &h.MemUsedPct, &h.SwapUsedPct, &h.LoadPerCore,
		&h.DiskDataPct, &h.DiskRootPct, &h.NetInBps, &h.NetOutBps, &h.Sessions}
}

// add appends one point.
func (h *HostSeries) add(p hostPoint) {
	h.T = append(h.T, p.start/1000)
	for i, s := range h.series() {
		*s = append(*s, p.v[i])
	}
	h.MemTotalBytes = max(h.MemTotalBytes, p.memTotal)
}

// point appends a rollup's point.
func (h *HostSeries) point(startMillis int64, r *storage.HostRollup) { h.add(pointOf(startMillis, r)) }

// slotPoints keeps the decoded points of the 5-minute slots of the last
// days: a slot is final once samples have moved on past it, and decoding
// a week of slots (histograms and all) costs ~10 ms a question.
type slotPoints struct {
	mu     sync.Mutex
	points map[int64]hostPoint
	oldest int64 // the points held cover [oldest, newest]
	newest int64 // start of the newest slot held
}

// slotKeep is how far back the slot points are kept.
const slotKeep = 8 * 24 * time.Hour

// fiveMinute returns the 5-minute points of [from, to), reading from the
// database only the slots after the newest ones held (the last two again:
// they may still be filling).
func (d *Dashboard) fiveMinute(from, to int64) ([]hostPoint, error) {
	c := &d.slots
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.points == nil {
		c.points = map[int64]hostPoint{}
	}
	read := from
	if c.newest > 0 && c.oldest <= from && c.newest-2*storage.HostSlot.Milliseconds() >= from {
		read = c.newest - storage.HostSlot.Milliseconds()
	}
	slots, err := d.src.HostRollups5m(read, to)
	if err != nil {
		return nil, err
	}
	for k := range c.points {
		if k >= read || k < to-slotKeep.Milliseconds() {
			delete(c.points, k)
		}
	}
	if read == from {
		c.oldest = from
	}
	c.oldest = max(c.oldest, to-slotKeep.Milliseconds())
	for i := range slots {
		c.points[slots[i].Start] = pointOf(slots[i].Start, &slots[i])
		c.newest = max(c.newest, slots[i].Start)
	}
	out := make([]hostPoint, 0, len(c.points))
	for k, p := range c.points {
		if k >= from && k < to {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b hostPoint) int { return int(a.start - b.start) })
	return out, nil
}

// gaps puts a point of no data where samples stop for more than two
// steps (the daemon was down), so charts break the line there. Raw
// samples come every sample_interval: their step is the usual spacing.
func (h *HostSeries) gaps() {
	if h.Resolution == "raw" && len(h.T) > 2 {
		d := make([]int64, len(h.T)-1)
		for i := range d {
			d[i] = h.T[i+1] - h.T[i]
		}
		slices.Sort(d)
		h.StepSeconds = max(d[len(d)/2], 1)
	}
	all := h.series()
	for i := len(h.T) - 1; i > 0; i-- {
		if h.T[i]-h.T[i-1] <= 2*h.StepSeconds {
			continue
		}
		h.T = slices.Insert(h.T, i, h.T[i-1]+h.StepSeconds)
		for _, s := range all {
			*s = slices.Insert(*s, i, math.NaN())
		}
	}
}

// costSeries is the fleet's cost per hour over [from, to): hourly from the
// hour index when the range is within its days, else by day.
func (d *Dashboard) costSeries(from, to int64, span time.Duration) (CostSeries, error) {
	loc := d.src.Location()
	first, last := storage.DayNumber(from, loc), storage.DayNumber(to, loc)
	if span <= fiveUpTo {
		out := CostSeries{StepSeconds: 3600}
		hour := time.Hour.Milliseconds()
		byHour := map[int64]int64{}
		err := d.hours.each(first, last, func(h int64, _ agentKey, t *storage.Totals) { byHour[h] += t.CostNanos })
		if err != nil {
			return out, err
		}
		start := storage.DayStartMillis(first, loc)
		for h := start; h < to; h += hour {
			if h+hour <= from {
				continue
			}
			out.T = append(out.T, h/1000)
			out.USDPerHour = append(out.USDPerHour, storage.USD(byHour[h]))
		}
		return out, nil
	}
	out := CostSeries{StepSeconds: 86400}
	byDay := map[int32]int64{}
	rows, err := d.src.DimRows(storage.DimModel, first, last)
	if err != nil {
		return out, err
	}
	for _, r := range rows {
		byDay[r.Period] += r.CostNanos
	}
	for day := first; day <= last; day++ {
		hours := float64(storage.DayStartMillis(day+1, loc)-storage.DayStartMillis(day, loc)) / float64(time.Hour.Milliseconds())
		out.T = append(out.T, storage.DayStartMillis(day, loc)/1000)
		out.USDPerHour = append(out.USDPerHour, storage.USD(byDay[day])/hours)
	}
	return out, nil
}
