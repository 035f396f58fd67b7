package rollup

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteHostTable renders the report as a table.
func WriteHostTable(w io.Writer, rep HostReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DATE\tSAMPLES\tCPU AVG\tCPU P95\tCPU MAX\tSTEAL P95\tLOAD/CORE P95\tMEM P95\tAVAIL MIN\tSWAPPING\tDATA DISK\tDATA FREE\tNET IN\tNET OUT\tSESS P95\tSESS MAX\tGATEWAY UP\t")
	line := func(label string, r HostDayRow) {
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

// WriteAdvice renders advice for a terminal.
func WriteAdvice(w io.Writer, a Advice) error {
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
