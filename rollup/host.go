package rollup

import (
	"fmt"

	"github.com/fleetmeter/fleetmeter/storage"
)

// HostReport is `fleetmeter report host`: one row per day and the whole range.
type HostReport struct {
	Host   []HostDayRow `json:"host"`
	Totals HostDayRow   `json:"totals"`
	// TZ is the zone the days were cut in ("" when not known).
	TZ string `json:"tz,omitempty"`
}

// HostDayRow is one day of host figures, from a daily rollup. Averages are
// sums over counts, percentiles come from the merged histograms.
type HostDayRow struct {
	Date    string `json:"date,omitempty"` // YYYY-MM-DD; empty in totals
	Samples int64  `json:"samples"`

	CPUAvgPct    float64 `json:"cpu_avg_pct"`
	CPUP95Pct    float64 `json:"cpu_p95_pct"`
	CPUMaxPct    float64 `json:"cpu_max_pct"`
	StealP95Pct  float64 `json:"steal_p95_pct"`
	IowaitP95Pct float64 `json:"iowait_p95_pct"`

	MemTotalBytes        uint64  `json:"mem_total_bytes"`
	MemUsedAvgBytes      uint64  `json:"mem_used_avg_bytes"`
	MemUsedMaxBytes      uint64  `json:"mem_used_max_bytes"`
	MemUsedP95Pct        float64 `json:"mem_used_p95_pct"`
	MemAvailableMinBytes uint64  `json:"mem_available_min_bytes"`
	SwapUsedMaxBytes     uint64  `json:"swap_used_max_bytes"`
	SwapActivePct        float64 `json:"swap_active_pct"`

	Load1Avg       float64 `json:"load1_avg"`
	Load1Max       float64 `json:"load1_max"`
	LoadPerCoreP95 float64 `json:"load_per_core_p95"`

	DiskDataUsedPct   float64 `json:"disk_data_used_pct"`
	DiskDataFreeBytes uint64  `json:"disk_data_free_min_bytes"`
	DiskRootUsedPct   float64 `json:"disk_root_used_pct"`
	DiskRootFreeBytes uint64  `json:"disk_root_free_min_bytes"`

	NetInAvgBps  float64 `json:"net_in_avg_bytes_per_s"`
	NetOutAvgBps float64 `json:"net_out_avg_bytes_per_s"`
	ProcsMax     int     `json:"processes_max"`

	GatewayUpPct     float64 `json:"gateway_up_pct"`
	GatewayCPUAvgPct float64 `json:"gateway_cpu_avg_pct"`
	GatewayRSSMax    uint64  `json:"gateway_rss_max_bytes"`

	SessionsAvg float64 `json:"sessions_avg"`
	SessionsP95 float64 `json:"sessions_p95"`
	SessionsMax int     `json:"sessions_max"`
}

// NewHostDayRow derives a row from a rollup (a day, or any merge of rows).
func NewHostDayRow(r *storage.HostRollup) HostDayRow {
	usedPct := func(used, free storage.Stat) float64 {
		u, f := used.Mean(), free.Mean()
		if u+f <= 0 {
			return 0
		}
		return 100 * u / (u + f) // as df shows it: of what users can have
	}
	return HostDayRow{
		Samples:              r.Samples,
		CPUAvgPct:            r.CPU.Mean(),
		CPUP95Pct:            p95(&r.CPUHist, r.CPU),
		CPUMaxPct:            r.CPU.Max,
		StealP95Pct:          p95(&r.StealHist, r.CPUSteal),
		IowaitP95Pct:         p95(&r.IowaitHist, r.CPUIowait),
		MemTotalBytes:        uint64(r.MemTotal.Max),
		MemUsedAvgBytes:      uint64(r.MemUsed.Mean()),
		MemUsedMaxBytes:      uint64(r.MemUsed.Max),
		MemUsedP95Pct:        p95(&r.MemUsedPctHist, r.MemUsedPct),
		MemAvailableMinBytes: uint64(r.MemAvailable.Min),
		SwapUsedMaxBytes:     uint64(r.SwapUsed.Max),
		SwapActivePct:        100 * r.SwapActive.Mean(),
		Load1Avg:             r.Load1.Mean(),
		Load1Max:             r.Load1.Max,
		LoadPerCoreP95:       p95(&r.LoadPerCoreHist, r.LoadPerCore),
		DiskDataUsedPct:      usedPct(r.DataUsed, r.DataFree),
		DiskDataFreeBytes:    uint64(r.DataFree.Min),
		DiskRootUsedPct:      usedPct(r.RootUsed, r.RootFree),
		DiskRootFreeBytes:    uint64(r.RootFree.Min),
		NetInAvgBps:          r.NetIn.Mean(),
		NetOutAvgBps:         r.NetOut.Mean(),
		ProcsMax:             int(r.Procs.Max),
		GatewayUpPct:         100 * r.GatewayUp.Mean(),
		GatewayCPUAvgPct:     r.GatewayCPU.Mean(),
		GatewayRSSMax:        uint64(r.GatewayRSS.Max),
		SessionsAvg:          r.Sessions.Mean(),
		SessionsP95:          p95(&r.SessionsHist, r.Sessions),
		SessionsMax:          int(r.Sessions.Max),
	}
}

// BuildHostReport makes the report of daily rollups (oldest first).
func BuildHostReport(days []storage.HostRollup) HostReport {
	rep := HostReport{Host: make([]HostDayRow, 0, len(days))}
	total := storage.NewHostRollup()
	for i := range days {
		row := NewHostDayRow(&days[i])
		row.Date = storage.DayString(days[i].Day)
		rep.Host = append(rep.Host, row)
		if err := total.Merge(&days[i]); err != nil {
			continue // foreign histogram layout: storage never writes one
		}
	}
	rep.Totals = NewHostDayRow(&total)
	return rep
}

// HostDailyReader reads daily host rollups; *storage.DB satisfies it.
type HostDailyReader interface {
	HostRollupsDaily(from, to int32) ([]storage.HostRollup, error)
}

// LoadHostReport reads days from..to (day numbers, inclusive) and builds the report.
func LoadHostReport(r HostDailyReader, from, to int32) (HostReport, error) {
	days, err := r.HostRollupsDaily(from, to)
	if err != nil {
		return HostReport{}, fmt.Errorf("host report: %w", err)
	}
	return BuildHostReport(days), nil
}
