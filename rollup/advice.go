package rollup

import (
	"fmt"
	"math"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Verdict is what the advice says to do with the instance.
type Verdict string

// The verdicts, strongest first: when several rules fire, the first verdict
// in this order wins (a filling disk is not cured by more CPU).
const (
	Investigate Verdict = "investigate"
	ScaleUp     Verdict = "scale_up"
	ScaleDown   Verdict = "scale_down"
	Hold        Verdict = "hold"
)

var verdictRank = map[Verdict]int{Investigate: 0, ScaleUp: 1, ScaleDown: 2, Hold: 3}

// Thresholds are the limits of the advice rules, all in one table.
type Thresholds struct {
	Window            time.Duration // history the advice looks at
	MinHours          float64       // less sampled time than this: hold, not enough data
	MinHoursScaleDown float64       // scale_down needs at least this much history

	CPUHighP95         float64 // % busy at p95 above which the box is short of CPU
	LoadPerCoreHighP95 float64 // runnable tasks per core at p95 above which it is short of CPU
	StealHighP95       float64 // % steal at p95: credits exhausted (burstable) or a noisy host
	IowaitHighP95      float64 // % iowait at p95: storage is the bottleneck, not CPU
	MemUsedHighP95     float64 // % of memory used (total − available) at p95
	SwapActiveHighPct  float64 // % of samples that swapped in or out
	DiskDaysToFullMin  float64 // data disk full sooner than this at the current growth rate
	DiskUsedHighPct    float64 // data disk fuller than this

	// scale_down only when the next size down would still run below these
	// (figures projected by the vCPU and memory ratios; halved when the
	// instance type is unknown), and a burstable one below 80 % of its
	// baseline on average.
	DownCPUP95         float64
	DownMemUsedP95     float64
	DownLoadPerCoreP95 float64
	DownBaselineShare  float64
}

// DefaultThresholds returns the table the README quotes:
//
//	Window              7 days   history looked at
//	MinHours            24 h     less data: hold
//	MinHoursScaleDown   72 h     less data: never scale_down
//	CPUHighP95          85 %     CPU busy p95 above: scale_up
//	LoadPerCoreHighP95  1.5      load1 per core p95 above: scale_up
//	StealHighP95        10 %     steal p95 above: scale_up (burstable) / investigate (fixed)
//	IowaitHighP95       20 %     iowait p95 above: investigate
//	MemUsedHighP95      90 %     memory used p95 above: scale_up
//	SwapActiveHighPct   5 %      samples swapping above: scale_up
//	DiskDaysToFullMin   14 days  data disk full sooner: investigate
//	DiskUsedHighPct     90 %     data disk fuller: investigate
//	DownCPUP95          50 %     projected CPU p95 on the smaller size below …
//	DownMemUsedP95      60 %     … and projected memory p95 below …
//	DownLoadPerCoreP95  0.7      … and projected load per core p95 below: scale_down
//	DownBaselineShare   0.8      burstable: average CPU below 80 % of the smaller size's baseline
func DefaultThresholds() Thresholds {
	return Thresholds{
		Window:             7 * 24 * time.Hour,
		MinHours:           24,
		MinHoursScaleDown:  72,
		CPUHighP95:         85,
		LoadPerCoreHighP95: 1.5,
		StealHighP95:       10,
		IowaitHighP95:      20,
		MemUsedHighP95:     90,
		SwapActiveHighPct:  5,
		DiskDaysToFullMin:  14,
		DiskUsedHighPct:    90,
		DownCPUP95:         50,
		DownMemUsedP95:     60,
		DownLoadPerCoreP95: 0.7,
		DownBaselineShare:  0.8,
	}
}

// Advice is the outcome of the rules over a window of host history.
type Advice struct {
	Verdict      Verdict       `json:"verdict"`
	Reason       string        `json:"reason"` // one sentence
	InstanceType string        `json:"instance_type,omitempty"`
	Current      *InstanceSize `json:"current,omitempty"`
	Suggested    *InstanceSize `json:"suggested,omitempty"`
	From         time.Time     `json:"from"`
	To           time.Time     `json:"to"`
	Evidence     Evidence      `json:"evidence"`
	Findings     []Finding     `json:"findings"` // every rule that fired, strongest first
	Thresholds   Thresholds    `json:"-"`
}

// Finding is one rule that fired.
type Finding struct {
	Verdict   Verdict `json:"verdict"`
	Reason    string  `json:"reason"`
	Suggested string  `json:"suggested,omitempty"`
}

// Evidence are the figures the rules looked at. Pointers are null when the
// figure cannot be estimated from the data.
type Evidence struct {
	Samples              int64    `json:"samples"`
	Hours                float64  `json:"hours"` // sampled time: 5-minute slots with data
	CPUAvgPct            float64  `json:"cpu_avg_pct"`
	CPUP95Pct            float64  `json:"cpu_p95_pct"`
	StealP95Pct          float64  `json:"steal_p95_pct"`
	IowaitP95Pct         float64  `json:"iowait_p95_pct"`
	LoadPerCoreP95       float64  `json:"load_per_core_p95"`
	MemTotalBytes        uint64   `json:"mem_total_bytes"`
	MemUsedP95Pct        float64  `json:"mem_used_p95_pct"`
	MemHeadroomPct       float64  `json:"mem_headroom_pct"` // 100 − MemUsedP95Pct
	MemAvailableMinBytes uint64   `json:"mem_available_min_bytes"`
	SwapActivePct        float64  `json:"swap_active_pct"` // share of samples that swapped in or out
	SwapInAvgBps         float64  `json:"swap_in_avg_bytes_per_s"`
	SwapOutAvgBps        float64  `json:"swap_out_avg_bytes_per_s"`
	DiskUsedPct          float64  `json:"disk_data_used_pct"`
	DiskFreeBytes        uint64   `json:"disk_data_free_bytes"`
	DiskGrowthPerDay     *float64 `json:"disk_data_growth_bytes_per_day"`
	DiskDaysToFull       *float64 `json:"disk_data_days_to_full"` // null when not growing
	PeakSessions         int      `json:"peak_sessions"`
	MemPerSessionBytes   *float64 `json:"mem_per_session_bytes"` // slope of used memory on active sessions, at least 0
	MemPerSessionR2      *float64 `json:"mem_per_session_r2"`
	// MemPerSessionNote says why MemPerSessionBytes is 0 when the fit fell
	// (used memory went down as sessions went up: other memory use, such
	// as caches given back, drowned what a session costs).
	MemPerSessionNote string `json:"mem_per_session_note,omitempty"`
	SessionHeadroom   *int   `json:"session_headroom"` // extra sessions before memory reaches MemUsedHighP95
}

// Advise applies the rules in th to 5-minute host rollups (oldest first)
// covering the window. instanceType may be empty; when it is in the EC2
// table the advice names the next size.
func Advise(rollups []storage.HostRollup, instanceType string, th Thresholds) Advice {
	table := NewEC2Table()
	a := Advice{InstanceType: instanceType, Thresholds: th, Findings: []Finding{}}
	cur, known := table.Lookup(instanceType)
	if known {
		a.Current = &cur
	}
	total := storage.NewHostRollup()
	slots := 0
	for i := range rollups {
		if rollups[i].Samples == 0 {
			continue
		}
		if err := total.Merge(&rollups[i]); err != nil {
			continue // a row of foreign histogram layout; storage never writes one
		}
		slots++
	}
	if len(rollups) > 0 {
		a.From = time.UnixMilli(rollups[0].Start).UTC()
		a.To = time.UnixMilli(rollups[len(rollups)-1].Start + storage.HostSlot.Milliseconds()).UTC()
	}
	ev := evidence(&total, rollups, slots, th)
	a.Evidence = ev

	if ev.Hours < th.MinHours {
		a.Verdict = Hold
		a.Reason = fmt.Sprintf("Only %.1f hours of host samples in the window; advice needs at least %.0f.", ev.Hours, th.MinHours)
		a.Findings = append(a.Findings, Finding{Verdict: Hold, Reason: a.Reason})
		return a
	}
	var f []Finding
	add := func(v Verdict, suggested InstanceSize, ok bool, format string, args ...any) {
		fd := Finding{Verdict: v, Reason: fmt.Sprintf(format, args...)}
		if ok {
			fd.Suggested = suggested.Type
		}
		f = append(f, fd)
	}
	up, upOK := table.Step(instanceType, +1)
	name := "this instance"
	if known {
		name = cur.Type
	}

	// investigate: problems a bigger or smaller box does not fix.
	if ev.DiskDaysToFull != nil && *ev.DiskDaysToFull < th.DiskDaysToFullMin {
		add(Investigate, InstanceSize{}, false, "The data disk fills in about %.0f days at its current growth of %s a day.", *ev.DiskDaysToFull, humanBytes(*ev.DiskGrowthPerDay))
	}
	if ev.DiskUsedPct > th.DiskUsedHighPct {
		add(Investigate, InstanceSize{}, false, "The data disk is %.0f%% full.", ev.DiskUsedPct)
	}
	if ev.IowaitP95Pct > th.IowaitHighP95 {
		add(Investigate, InstanceSize{}, false, "CPUs wait on storage %.0f%% of the time at p95: the disk, not the CPU, is the bottleneck.", ev.IowaitP95Pct)
	}
	steal := ev.StealP95Pct > th.StealHighP95
	if steal && known && !cur.Burstable() {
		add(Investigate, InstanceSize{}, false, "Steal is %.0f%% at p95 on fixed-performance %s: the hypervisor withholds CPU.", ev.StealP95Pct, name)
	}

	// scale_up
	if steal && (!known || cur.Burstable()) {
		fixed, ok := table.Fixed(instanceType)
		if known {
			add(ScaleUp, fixed, ok, "Steal is %.0f%% at p95 on burstable %s: its CPU credits run out.", ev.StealP95Pct, name)
		} else {
			add(ScaleUp, fixed, ok, "Steal is %.0f%% at p95: the hypervisor withholds CPU, as when a burstable instance runs out of credits.", ev.StealP95Pct)
		}
	}
	if ev.CPUP95Pct > th.CPUHighP95 {
		add(ScaleUp, up, upOK, "CPU is %.0f%% busy at p95, above the %.0f%% limit.", ev.CPUP95Pct, th.CPUHighP95)
	}
	if ev.LoadPerCoreP95 > th.LoadPerCoreHighP95 {
		add(ScaleUp, up, upOK, "Load is %.2f runnable tasks per core at p95, above %.2f.", ev.LoadPerCoreP95, th.LoadPerCoreHighP95)
	}
	if known && cur.Burstable() && !steal && ev.CPUAvgPct > cur.BaselinePct {
		fixed, ok := table.Fixed(instanceType)
		add(ScaleUp, fixed, ok, "Average CPU of %.0f%% is above the %.0f%% baseline of %s: credits drain.", ev.CPUAvgPct, cur.BaselinePct, name)
	}
	memHigh := ev.MemUsedP95Pct > th.MemUsedHighP95
	swapping := ev.SwapActivePct > th.SwapActiveHighPct
	if memHigh || swapping {
		s, ok := up, upOK
		if ev.CPUP95Pct < th.CPUHighP95/2 {
			if m, mok := table.MoreMemory(instanceType); mok {
				s, ok = m, true
			}
		}
		add(ScaleUp, s, ok, "Memory is %.0f%% used at p95 and the host swapped in %.1f%% of samples.", ev.MemUsedP95Pct, ev.SwapActivePct)
	}

	// scale_down, only on a quiet box with enough history.
	if len(f) == 0 && ev.Hours >= th.MinHoursScaleDown && ev.SwapActivePct == 0 {
		down, downOK := table.Step(instanceType, -1)
		fCPU, fMem := 2.0, 2.0
		if downOK {
			fCPU = float64(cur.VCPU) / float64(down.VCPU)
			fMem = cur.MemGiB / down.MemGiB
		}
		cpu, memPct, lpc := ev.CPUP95Pct*fCPU, ev.MemUsedP95Pct*fMem, ev.LoadPerCoreP95*fCPU
		fits := cpu < th.DownCPUP95 && memPct < th.DownMemUsedP95 && lpc < th.DownLoadPerCoreP95
		if fits && downOK && down.Burstable() {
			fits = ev.CPUAvgPct*fCPU < th.DownBaselineShare*down.BaselinePct
		}
		switch {
		case fits && (downOK || !known):
			target := "the next size down"
			if downOK {
				target = down.Type
			}
			add(ScaleDown, down, downOK, "CPU p95 is %.0f%% and memory p95 %.0f%%: %s would run at about %.0f%% CPU and %.0f%% memory.", ev.CPUP95Pct, ev.MemUsedP95Pct, target, cpu, memPct)
		case fits:
			add(Hold, InstanceSize{}, false, "The box is quiet (CPU p95 %.0f%%, memory p95 %.0f%%) but %s is the smallest size of its family.", ev.CPUP95Pct, ev.MemUsedP95Pct, name)
		}
	}
	if len(f) == 0 {
		add(Hold, InstanceSize{}, false, "CPU p95 %.0f%%, memory p95 %.0f%% and load per core p95 %.2f are within limits.", ev.CPUP95Pct, ev.MemUsedP95Pct, ev.LoadPerCoreP95)
	}

	// Strongest verdict first; a stable sort keeps rule order within one.
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && verdictRank[f[j].Verdict] < verdictRank[f[j-1].Verdict]; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
	a.Findings = f
	a.Verdict, a.Reason = f[0].Verdict, f[0].Reason
	if s, ok := table.Lookup(f[0].Suggested); ok {
		a.Suggested = &s
	}
	return a
}

// evidence computes the figures from the merged window and its slots.
func evidence(t *storage.HostRollup, slots []storage.HostRollup, nslots int, th Thresholds) Evidence {
	ev := Evidence{
		Samples:              t.Samples,
		Hours:                float64(nslots) * storage.HostSlot.Hours(),
		CPUAvgPct:            t.CPU.Mean(),
		CPUP95Pct:            p95(&t.CPUHist, t.CPU),
		StealP95Pct:          p95(&t.StealHist, t.CPUSteal),
		IowaitP95Pct:         p95(&t.IowaitHist, t.CPUIowait),
		LoadPerCoreP95:       p95(&t.LoadPerCoreHist, t.LoadPerCore),
		MemTotalBytes:        uint64(t.MemTotal.Max),
		MemUsedP95Pct:        p95(&t.MemUsedPctHist, t.MemUsedPct),
		MemAvailableMinBytes: uint64(t.MemAvailable.Min),
		SwapActivePct:        100 * t.SwapActive.Mean(),
		SwapInAvgBps:         t.SwapIn.Mean(),
		SwapOutAvgBps:        t.SwapOut.Mean(),
		PeakSessions:         int(t.Sessions.Max),
	}
	ev.MemHeadroomPct = 100 - ev.MemUsedP95Pct

	// Disk: the latest slot's figures, and a least-squares line through the
	// slots' mean used bytes over time.
	var reg storage.Regression
	var first, last int64 = math.MaxInt64, math.MinInt64
	for i := range slots {
		s := &slots[i]
		if s.DataUsed.N == 0 {
			continue
		}
		first, last = min(first, s.Start), max(last, s.Start)
	}
	for i := range slots {
		s := &slots[i]
		if s.DataUsed.N == 0 {
			continue
		}
		days := float64(s.Start-first) / float64((24 * time.Hour).Milliseconds())
		reg.Add(days, math.Round(s.DataUsed.Mean()/(1<<20))) // MiB: sums stay exact
		if s.Start == last {
			used, free := s.DataUsed.Mean(), s.DataFree.Mean()
			ev.DiskFreeBytes = uint64(free)
			if used+free > 0 {
				ev.DiskUsedPct = 100 * used / (used + free)
			}
		}
	}
	if slope, _, _, ok := reg.Fit(); ok && time.Duration(last-first)*time.Millisecond >= 12*time.Hour {
		growth := slope * (1 << 20)
		ev.DiskGrowthPerDay = &growth
		if growth > 0 {
			days := float64(ev.DiskFreeBytes) / growth
			ev.DiskDaysToFull = &days
		}
	}

	// What one more session costs: the slope of used memory on sessions.
	if slope, _, r2, ok := t.MemSessions.Fit(); ok {
		perSession := slope * (1 << 20)
		if perSession < 0 {
			// A session never frees memory: a falling fit is other memory
			// use moving against the sessions, not a negative cost.
			ev.MemPerSessionNote = fmt.Sprintf("used memory fell as sessions rose (fit %s/session, r² %.2f): other memory use hides what a session costs",
				signedBytes(perSession), r2)
			perSession = 0
		}
		ev.MemPerSessionBytes, ev.MemPerSessionR2 = &perSession, &r2
		if perSession > 0 && ev.MemTotalBytes > 0 {
			room := th.MemUsedHighP95/100*float64(ev.MemTotalBytes) - ev.MemUsedP95Pct/100*float64(ev.MemTotalBytes)
			n := max(int(room/perSession), 0)
			ev.SessionHeadroom = &n
		}
	}
	return ev
}

// p95 of a histogram, kept within the exact min and max.
func p95(h *storage.Histogram, s storage.Stat) float64 {
	if s.N == 0 {
		return 0
	}
	return min(max(h.Quantile(0.95), s.Min), s.Max)
}

// HostSlotReader reads 5-minute host rollups; *storage.DB satisfies it.
type HostSlotReader interface {
	HostRollups5m(fromMillis, toMillis int64) ([]storage.HostRollup, error)
}

// AdviseFrom reads the window ending at now and advises on it.
func AdviseFrom(r HostSlotReader, now time.Time, instanceType string, th Thresholds) (Advice, error) {
	if th.Window <= 0 {
		th.Window = DefaultThresholds().Window
	}
	rows, err := r.HostRollups5m(now.Add(-th.Window).UnixMilli(), now.UnixMilli()+1)
	if err != nil {
		return Advice{}, fmt.Errorf("advise: %w", err)
	}
	a := Advise(rows, instanceType, th)
	if a.From.IsZero() {
		a.From, a.To = now.Add(-th.Window).UTC(), now.UTC()
	}
	return a, nil
}
