package alerts

import (
	"fmt"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// maxSampleWindow bounds the raw host samples a round reads.
const maxSampleWindow = 24 * time.Hour

// hostSamples are the raw samples of the last window (read once a round,
// for the longest window any rule asks).
func (r *round) hostSamples(window time.Duration) ([]storage.HostSample, error) {
	if !r.sampled {
		longest := time.Duration(0)
		for _, ru := range r.e.c.rules {
			if ru.Type == TypeHost || ru.Type == TypePipeline {
				longest = max(longest, ru.For, ru.Window)
			}
		}
		longest = min(longest+time.Minute, maxSampleWindow)
		err := r.e.d.Data.HostSamples(r.nowMs-longest.Milliseconds(), r.nowMs+1, func(s *storage.HostSample) error {
			r.samples = append(r.samples, *s)
			return nil
		})
		if err != nil {
			return nil, err
		}
		r.sampled = true
	}
	from := r.nowMs - window.Milliseconds()
	for i := range r.samples {
		if r.samples[i].TS >= from {
			return r.samples[i:], nil
		}
	}
	return nil, nil
}

// metricOf reads a host metric from a sample; ok is false when the
// sample could not read it.
func metricOf(metric string, s *storage.HostSample) (float64, bool) {
	pct := func(a, b uint64) float64 {
		if b == 0 {
			return 0
		}
		return 100 * float64(a) / float64(b)
	}
	switch metric {
	case "cpu":
		return s.CPUPct, s.Has(storage.HostFieldCPU)
	case "steal":
		return s.CPUStealPct, s.Has(storage.HostFieldCPU)
	case "iowait":
		return s.CPUIowaitPct, s.Has(storage.HostFieldCPU)
	case "memory":
		return pct(s.MemUsed, s.MemTotal), s.Has(storage.HostFieldMemory)
	case "swap":
		return pct(s.SwapUsed, s.SwapTotal), s.Has(storage.HostFieldSwap)
	case "disk":
		return pct(s.DataDisk.Used, s.DataDisk.Used+s.DataDisk.Free), s.Has(storage.HostFieldDiskData)
	case "disk_root":
		return pct(s.RootDisk.Used, s.RootDisk.Used+s.RootDisk.Free), s.Has(storage.HostFieldDiskRoot)
	case "load":
		return s.LoadPerCore, s.Has(storage.HostFieldLoad)
	case "gateway_down":
		return float64(s.GatewayProcs), s.Has(storage.HostFieldGateway)
	}
	return 0, false
}

var metricNames = map[string]string{
	"cpu": "CPU busy", "steal": "CPU steal", "iowait": "CPU iowait", "memory": "Memory used", "swap": "Swap used",
	"disk": "The data disk", "disk_root": "The root disk", "load": "Load per core",
}

// host: a metric over its threshold in every sample of the last For
// (pending while the latest is over and the window is not yet), the
// gateway gone for For, or the data disk full within Threshold days.
func (r *round) host(ru *rule) ([]Observation, Figures, error) {
	switch ru.Metric {
	case "disk_full":
		return r.diskFull(ru)
	case "gateway_down":
		return r.gatewayDown(ru)
	}
	samples, err := r.hostSamples(ru.For)
	if err != nil {
		return nil, Figures{}, err
	}
	unit := "percent"
	if ru.Metric == "load" {
		unit = "load_per_core"
	}
	head := Figures{Threshold: ru.Threshold, Unit: unit, Summary: "No host sample in the window."}
	var latest float64
	have, allOver, oldest := false, true, int64(0)
	for i := range samples {
		v, ok := metricOf(ru.Metric, &samples[i])
		if !ok {
			continue
		}
		if !have {
			oldest = samples[i].TS
		}
		have, latest = true, v
		allOver = allOver && v > ru.Threshold
	}
	if !have {
		// No sample: the sampler stopped. Unknown is not clear: a firing
		// alert stays as it is.
		return []Observation{{Figures: head}}, head, nil
	}
	// The window counts as covered when its samples reach back to within
	// a fifth of it (samples come every 15 s; a restart leaves a hole).
	covered := r.nowMs-oldest >= ru.For.Milliseconds()*4/5
	firing := allOver && covered
	f := Figures{Value: latest, Threshold: ru.Threshold, Unit: unit,
		Summary: fmt.Sprintf("%s is %.1f%s (threshold %.1f%s for %s).", metricNames[ru.Metric], latest, unitSuffix(unit), ru.Threshold, unitSuffix(unit), rollup.Duration(ru.For))}
	if firing {
		f.Summary = fmt.Sprintf("%s has been above %.1f%s for %s: now %.1f%s.", metricNames[ru.Metric], ru.Threshold, unitSuffix(unit), rollup.Duration(ru.For), latest, unitSuffix(unit))
	}
	hyst := ru.Threshold * 0.95
	return []Observation{{Firing: firing, Pending: latest > ru.Threshold && !firing, Clear: latest < hyst, Figures: f}}, f, nil
}

func unitSuffix(unit string) string {
	if unit == "percent" {
		return "%"
	}
	return ""
}

// gatewayDown: no OpenClaw gateway process in any sample of the last For,
// on a host whose gateway ran at some point since yesterday.
func (r *round) gatewayDown(ru *rule) ([]Observation, Figures, error) {
	samples, err := r.hostSamples(ru.For)
	if err != nil {
		return nil, Figures{}, err
	}
	days, err := r.e.d.Data.HostRollupsDaily(r.today-1, r.today)
	if err != nil {
		return nil, Figures{}, err
	}
	ranBefore := false
	for _, d := range days {
		ranBefore = ranBefore || d.GatewayUp.Max > 0
	}
	procs, have, allDown, oldest := 0.0, false, true, int64(0)
	for i := range samples {
		v, ok := metricOf("gateway_down", &samples[i])
		if !ok {
			continue
		}
		if !have {
			oldest = samples[i].TS
		}
		have, procs = true, v
		allDown = allDown && v == 0
	}
	f := Figures{Value: procs, Unit: "count", Summary: fmt.Sprintf("%.0f OpenClaw gateway processes run.", procs)}
	if !ranBefore {
		f.Summary = "No OpenClaw gateway seen on this host since yesterday."
		return nil, f, nil
	}
	if !have {
		f.Summary = "No host sample in the window."
		return []Observation{{Figures: f}}, f, nil
	}
	firing := allDown && r.nowMs-oldest >= ru.For.Milliseconds()*4/5
	if firing {
		f.Summary = fmt.Sprintf("The OpenClaw gateway has not run for %s: agents on this host get no answers.", rollup.Duration(ru.For))
	}
	return []Observation{{Firing: firing, Pending: procs == 0 && !firing, Clear: procs > 0, Figures: f}}, f, nil
}

// diskFull: days until the data disk is full at its growth over the last
// week (the advice's trend), refreshed every 15 minutes.
func (r *round) diskFull(ru *rule) ([]Observation, Figures, error) {
	e := r.e
	if e.diskAt.IsZero() || r.now.Sub(e.diskAt) >= 15*time.Minute || r.now.Before(e.diskAt) {
		a, err := rollup.AdviseFrom(e.d.Data, r.now, "", rollup.DefaultThresholds())
		if err != nil {
			return nil, Figures{}, err
		}
		e.diskAt, e.diskDays = r.now, a.Evidence.DiskDaysToFull
	}
	f := Figures{Threshold: ru.Threshold, Unit: "days", Summary: "The data disk is not filling up."}
	if e.diskDays == nil {
		return []Observation{{Clear: true, Figures: f}}, f, nil
	}
	days := *e.diskDays
	f.Value = days
	f.Summary = fmt.Sprintf("The data disk is full in about %.1f days at its growth over the last week (threshold %.0f days).", days, ru.Threshold)
	return []Observation{{Firing: days < ru.Threshold, Clear: days >= ru.Threshold*1.1, Figures: f}}, f, nil
}

// pipeline checks fleetmeter's own intake.
func (r *round) pipeline(ru *rule) ([]Observation, Figures, error) {
	p := r.e.d.Pipeline
	switch ru.Check {
	case "source_silent":
		return r.sourceSilent(ru)
	case "ingest_failing":
		if p.IngestError == nil {
			return nil, Figures{Summary: "Ingest status unknown."}, nil
		}
		msg := p.IngestError()
		f := Figures{Unit: "count", Summary: "Ingest works."}
		if msg != "" {
			f.Value = 1
			f.Summary = fmt.Sprintf("Ingest is failing: %s", rollup.Clean(msg))
		}
		return []Observation{{Firing: msg != "", Clear: msg == "", Figures: f}}, f, nil
	case "sync_lag":
		if p.SyncLag == nil {
			return nil, Figures{Unit: "minutes", Summary: "Upstream sync is not configured."}, nil
		}
		lag, ok := p.SyncLag()
		if !ok {
			return nil, Figures{Unit: "minutes", Summary: "Upstream sync is not configured."}, nil
		}
		f := Figures{Value: lag.Minutes(), Threshold: ru.MaxLag.Minutes(), Unit: "minutes",
			Summary: fmt.Sprintf("Upstream sync is %s behind (limit %s).", rollup.Duration(lag.Round(time.Minute)), rollup.Duration(ru.MaxLag))}
		return []Observation{{Firing: lag > ru.MaxLag, Clear: lag < ru.MaxLag*9/10, Figures: f}}, f, nil
	case "db_size":
		return r.dbSize(ru)
	case "format_drift":
		skips, err := r.e.d.Data.Skips()
		if err != nil {
			return nil, Figures{}, err
		}
		grew := r.e.drift.observe(skips.Unsupported+skips.UnrecognizedUsage, r.now, ru.Window)
		f := Figures{Value: float64(grew), Unit: "count",
			Summary: fmt.Sprintf("%d records of an unknown format or with unknown usage fields in the last %s: an agent platform upgrade may have changed its transcripts (see fleetmeter health).", grew, rollup.Duration(ru.Window))}
		if grew == 0 {
			f.Summary = fmt.Sprintf("No unknown format or usage field in the last %s.", rollup.Duration(ru.Window))
		}
		return []Observation{{Firing: grew > 0, Clear: grew == 0, Figures: f}}, f, nil
	}
	return nil, Figures{}, fmt.Errorf("unknown check %q", ru.Check)
}

// sourceSilent: no call from the source for Window while the OpenClaw
// gateway was running and busy (its CPU above GatewayCPU on average):
// agents work, but their usage does not reach the ledger (the classic
// failure after an agent platform upgrade).
func (r *round) sourceSilent(ru *rule) ([]Observation, Figures, error) {
	samples, err := r.hostSamples(ru.Window)
	if err != nil {
		return nil, Figures{}, err
	}
	var cpu float64
	var n, up int
	for i := range samples {
		s := &samples[i]
		if !s.Has(storage.HostFieldGateway) {
			continue
		}
		n++
		if s.GatewayProcs > 0 {
			up++
			cpu += s.GatewayCPUPct
		}
	}
	busy := n > 0 && up == n && cpu/float64(n) >= ru.GatewayCPU
	last, ok := r.e.index.LastCall(ru.Source)
	silent := r.now.Sub(time.UnixMilli(r.e.index.Start()))
	if ok {
		silent = r.now.Sub(time.UnixMilli(last))
	}
	avg := 0.0
	if n > 0 {
		avg = cpu / float64(n)
	}
	f := Figures{Value: silent.Minutes(), Threshold: ru.Window.Minutes(), Unit: "minutes",
		Summary: fmt.Sprintf("The last %s call was %s ago; the gateway averaged %.1f%% CPU over the last %s.", ru.Source, rollup.Duration(silent.Round(time.Minute)), avg, rollup.Duration(ru.Window))}
	firing := silent >= ru.Window && busy
	if firing {
		f.Summary = fmt.Sprintf("No %s usage for %s while its gateway was busy (%.1f%% CPU on average): transcripts are not being read. Check fleetmeter health and the agent platform's version.",
			ru.Source, rollup.Duration(silent.Round(time.Minute)), avg)
	}
	return []Observation{{Firing: firing, Clear: !firing, Figures: f}}, f, nil
}

// driftWatch remembers when a counter last grew (in memory: after a
// restart the first value is the baseline).
type driftWatch struct {
	seen    bool
	count   int64
	history []driftPoint
}

type driftPoint struct {
	at   time.Time
	grew int64
}

// observe records the counter at now and returns its growth within window.
func (d *driftWatch) observe(count int64, now time.Time, window time.Duration) int64 {
	if d.seen && count > d.count {
		d.history = append(d.history, driftPoint{now, count - d.count})
	}
	if count != d.count || !d.seen {
		d.count, d.seen = count, true
	}
	var grew int64
	kept := d.history[:0]
	for _, p := range d.history {
		if now.Sub(p.at) < window {
			kept = append(kept, p)
			grew += p.grew
		}
	}
	d.history = kept
	return grew
}
