package host

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Report is `fleetmeter report host`: one row per day and the whole range.
type Report struct {
	Host   []DayRow `json:"host"`
	Totals DayRow   `json:"totals"`
}

// DayRow is one day of host figures, from a daily rollup. Averages are
// sums over counts, percentiles come from the merged histograms.
type DayRow struct {
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

// NewDayRow derives a row from a rollup (a day, or any merge of rows).
func NewDayRow(r *storage.HostRollup) DayRow {
	usedPct := func(used, free storage.Stat) float64 {
		u, f := used.Mean(), free.Mean()
		if u+f <= 0 {
			return 0
		}
		return 100 * u / (u + f) // as df shows it: of what users can have
	}
	return DayRow{
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

// BuildReport makes the report of daily rollups (oldest first).
func BuildReport(days []storage.HostRollup) Report {
	rep := Report{Host: make([]DayRow, 0, len(days))}
	total := storage.NewHostRollup()
	for i := range days {
		row := NewDayRow(&days[i])
		row.Date = storage.DayString(days[i].Day)
		rep.Host = append(rep.Host, row)
		if err := total.Merge(&days[i]); err != nil {
			continue // foreign histogram layout: storage never writes one
		}
	}
	rep.Totals = NewDayRow(&total)
	return rep
}

// DailyReader reads daily host rollups; *storage.DB satisfies it.
type DailyReader interface {
	HostRollupsDaily(from, to int32) ([]storage.HostRollup, error)
}

// LoadReport reads days from..to (day numbers, inclusive) and builds the report.
func LoadReport(r DailyReader, from, to int32) (Report, error) {
	days, err := r.HostRollupsDaily(from, to)
	if err != nil {
		return Report{}, fmt.Errorf("host report: %w", err)
	}
	return BuildReport(days), nil
}

// WriteReportText renders the report as a table.
func WriteReportText(w io.Writer, rep Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DATE\tSAMPLES\tCPU AVG\tCPU P95\tCPU MAX\tSTEAL P95\tLOAD/CORE P95\tMEM P95\tAVAIL MIN\tSWAPPING\tDATA DISK\tDATA FREE\tNET IN\tNET OUT\tSESS P95\tSESS MAX\tGATEWAY UP\t")
	line := func(label string, r DayRow) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s/s\t%s/s\t%.0f\t%d\t%s\t\n",
			label, r.Samples, pct(r.CPUAvgPct), pct(r.CPUP95Pct), pct(r.CPUMaxPct), pct(r.StealP95Pct),
			r.LoadPerCoreP95, pct(r.MemUsedP95Pct), humanBytes(float64(r.MemAvailableMinBytes)), pct(r.SwapActivePct),
			pct(r.DiskDataUsedPct), humanBytes(float64(r.DiskDataFreeBytes)),
			humanBytes(r.NetInAvgBps), humanBytes(r.NetOutAvgBps),
			r.SessionsP95, r.SessionsMax, pct(r.GatewayUpPct))
	}
	for _, r := range rep.Host {
		line(r.Date, r)
	}
	if len(rep.Host) == 0 {
		fmt.Fprintln(tw, "(no host samples in range)\t")
	} else {
		line("TOTAL", rep.Totals)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write host report: %w", err)
	}
	return nil
}

// WriteAdviceText renders advice for a terminal.
func WriteAdviceText(w io.Writer, a Advice) error {
	var b strings.Builder
	fmt.Fprintf(&b, "verdict:  %s\n", a.Verdict)
	fmt.Fprintf(&b, "reason:   %s\n", a.Reason)
	switch {
	case a.Current != nil && a.Suggested != nil:
		fmt.Fprintf(&b, "instance: %s → suggested %s\n", a.Current, a.Suggested)
	case a.Current != nil:
		fmt.Fprintf(&b, "instance: %s\n", a.Current)
	case a.InstanceType != "":
		fmt.Fprintf(&b, "instance: %s (not in the size table)\n", a.InstanceType)
	default:
		b.WriteString("instance: unknown (set instance_type, or enable the EC2 metadata lookup, to name a size)\n")
	}
	if !a.From.IsZero() {
		fmt.Fprintf(&b, "window:   %s to %s\n", a.From.Format("2006-01-02 15:04"), a.To.Format("2006-01-02 15:04 MST"))
	}
	e := a.Evidence
	b.WriteString("evidence:\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	row("sampled", fmt.Sprintf("%.1f h (%d samples)", e.Hours, e.Samples))
	row("cpu busy", fmt.Sprintf("avg %s, p95 %s", pct(e.CPUAvgPct), pct(e.CPUP95Pct)))
	row("steal p95", pct(e.StealP95Pct))
	row("iowait p95", pct(e.IowaitP95Pct))
	row("load per core p95", fmt.Sprintf("%.2f", e.LoadPerCoreP95))
	row("memory used p95", fmt.Sprintf("%s of %s (headroom %s, min available %s)", pct(e.MemUsedP95Pct), humanBytes(float64(e.MemTotalBytes)), pct(e.MemHeadroomPct), humanBytes(float64(e.MemAvailableMinBytes))))
	row("swap", fmt.Sprintf("active in %s of samples, in %s/s, out %s/s", pct(e.SwapActivePct), humanBytes(e.SwapInAvgBps), humanBytes(e.SwapOutAvgBps)))
	disk := fmt.Sprintf("%s used, %s free", pct(e.DiskUsedPct), humanBytes(float64(e.DiskFreeBytes)))
	if e.DiskGrowthPerDay != nil {
		disk += fmt.Sprintf(", %s/day", signedBytes(*e.DiskGrowthPerDay))
	}
	if e.DiskDaysToFull != nil {
		disk += fmt.Sprintf(", full in %.1f days", *e.DiskDaysToFull)
	}
	row("data disk", disk)
	row("peak sessions", fmt.Sprintf("%d", e.PeakSessions))
	if e.MemPerSessionBytes != nil {
		s := fmt.Sprintf("%s/session (r² %.2f)", signedBytes(*e.MemPerSessionBytes), *e.MemPerSessionR2)
		if e.SessionHeadroom != nil {
			s += fmt.Sprintf(", room for ~%d more", *e.SessionHeadroom)
		}
		row("memory per session", s)
	} else {
		row("memory per session", "not estimable (sessions did not vary)")
	}
	tw.Flush()
	if len(a.Findings) > 1 {
		b.WriteString("findings:\n")
		for _, f := range a.Findings {
			fmt.Fprintf(&b, "  - [%s] %s", f.Verdict, f.Reason)
			if f.Suggested != "" {
				fmt.Fprintf(&b, " (suggest %s)", f.Suggested)
			}
			b.WriteString("\n")
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write advice: %w", err)
	}
	return nil
}

func pct(v float64) string { return fmt.Sprintf("%.1f%%", v) }

// humanBytes formats a byte count (or rate) in binary units.
func humanBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", v)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

func signedBytes(v float64) string {
	if v < 0 {
		return "-" + humanBytes(-v)
	}
	return "+" + humanBytes(v)
}
