package rollup

import (
	"fmt"
	"io"
	"strings"
)

// HostOnlyServe says where host figures come from, for an empty report.
const HostOnlyServe = "only `fleetmeter serve` samples the host (every sample_interval, 15 s by default)"

// WriteHostTable renders the host report as a table, iowait beside steal
// as the JSON has it; an empty report says that only serve samples.
func WriteHostTable(w io.Writer, rep HostReport, o TextOptions) error {
	title := Title(HostKind, o.Query, rep.TZ)
	if len(rep.Host) == 0 {
		_, err := fmt.Fprintf(w, "%s\n\nNo host samples in this range: %s.\n", title, HostOnlyServe)
		return err
	}
	t := Table{Title: title, Columns: []Column{
		{Head: "Date"}, {Head: "Samples", Right: true, Hide: 6},
		{Head: "CPU avg", Right: true, Hide: 4}, {Head: "CPU p95", Right: true}, {Head: "CPU max", Right: true, Hide: 5},
		{Head: "Steal p95", Right: true, Hide: 3}, {Head: "Iowait p95", Right: true, Hide: 3},
		{Head: "Load/core p95", Right: true}, {Head: "Mem p95", Right: true}, {Head: "Avail min", Right: true, Hide: 4},
		{Head: "Swapping", Right: true, Hide: 3}, {Head: "Data disk", Right: true}, {Head: "Data free", Right: true, Hide: 5},
		{Head: "Net in", Right: true, Hide: 6}, {Head: "Net out", Right: true, Hide: 6},
		{Head: "Sessions p95", Right: true, Hide: 5}, {Head: "Sessions max", Right: true}, {Head: "Gateway up", Right: true, Hide: 4},
	}}
	cells := func(label string, r HostDayRow) []string {
		return []string{label, count(r.Samples), pct(r.CPUAvgPct), pct(r.CPUP95Pct), pct(r.CPUMaxPct),
			pct(r.StealP95Pct), pct(r.IowaitP95Pct), fmt.Sprintf("%.2f", r.LoadPerCoreP95), pct(r.MemUsedP95Pct),
			humanBytes(float64(r.MemAvailableMinBytes)), pct(r.SwapActivePct), pct(r.DiskDataUsedPct),
			humanBytes(float64(r.DiskDataFreeBytes)), humanBytes(r.NetInAvgBps) + "/s", humanBytes(r.NetOutAvgBps) + "/s",
			fmt.Sprintf("%.0f", r.SessionsP95), count(int64(r.SessionsMax)), pct(r.GatewayUpPct)}
	}
	for _, r := range rep.Host {
		t.Rows = append(t.Rows, cells(r.Date, r))
	}
	t.Total = cells("Total", rep.Totals)
	if err := t.Render(w, o.Width); err != nil {
		return fmt.Errorf("write host report: %w", err)
	}
	return nil
}

// WriteAdvice renders advice for a terminal. With no host samples it
// says that only serve samples the host, rather than print zeros that
// would read as measurements.
func WriteAdvice(w io.Writer, a Advice, width int) error {
	var b strings.Builder
	if a.Evidence.Samples == 0 {
		fmt.Fprintf(&b, "No host samples yet: %s, and advice needs %s of them.\nverdict:  %s\n", HostOnlyServe, "24 hours", a.Verdict)
		_, err := io.WriteString(w, b.String())
		return err
	}
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
	b.WriteString("\n")
	t := Table{Columns: []Column{{Head: "Evidence"}, {Head: "Over the window", Shrink: true}}}
	row := func(k, v string) { t.Rows = append(t.Rows, []string{k, v}) }
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
	switch {
	case e.MemPerSessionNote != "":
		row("memory per session", "not estimable: "+e.MemPerSessionNote)
	case e.MemPerSessionBytes != nil:
		s := fmt.Sprintf("%s/session (r² %.2f)", signedBytes(*e.MemPerSessionBytes), *e.MemPerSessionR2)
		if e.SessionHeadroom != nil {
			s += fmt.Sprintf(", room for ~%d more", *e.SessionHeadroom)
		}
		row("memory per session", s)
	default:
		row("memory per session", "not estimable (sessions did not vary)")
	}
	if err := t.Render(&b, width); err != nil {
		return err
	}
	if len(a.Findings) > 1 {
		b.WriteString("\nfindings:\n")
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
