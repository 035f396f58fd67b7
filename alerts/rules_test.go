package alerts

import (
	"math"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

func berlin(t testing.TB) *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// wantEvents compares the notifications received with want, in any
// order: receivers are sent to concurrently (one rule's messages keep
// their order; TestDeliveryOrder checks that).
func wantEvents(t *testing.T, hook *receiver, want ...string) {
	t.Helper()
	got := hook.events(t)
	if !equal(sorted(got), sorted(want)) {
		t.Fatalf("notifications:\n got %q\nwant %q", got, want)
	}
}

// Tiers fire once per period; the period is the configured zone's day:
// a call at 23:10 UTC is the next day in Berlin, which resets the tiers.
func TestBudgetTiersOncePerPeriodInZone(t *testing.T) {
	loc := berlin(t)
	f := newFleet(t, loc)
	hook := newReceiver(t)
	e := f.engine(hookNotifier+`
[[budgets]]
name = "alpha-day"
scope = "agent:alpha"
period = "day"
amount_usd = 10
notify = ["hook"]

[[budgets]]
name = "fleet-day"
period = "day"
amount_usd = 12
tiers = [50]
reset_notice = true
notify = ["hook"]
`, hook)
	evening := time.Date(2026, 11, 10, 20, 0, 0, 0, loc)
	f.spend("alpha", evening.Add(-time.Hour), evening, 6, 1) // $6
	f.spend("other", evening.Add(-time.Hour), evening, 1, 0.5)
	step(t, e, evening)
	wantEvents(t, hook, "firing alpha-day 50%", "firing fleet-day 50%")
	step(t, e, evening.Add(time.Minute))
	wantEvents(t, hook, "firing alpha-day 50%", "firing fleet-day 50%") // once per period
	f.spend("alpha", evening, evening.Add(10*time.Minute), 3, 1)        // $9: 80 %
	step(t, e, evening.Add(15*time.Minute))
	wantEvents(t, hook, "firing alpha-day 50%", "firing fleet-day 50%", "firing alpha-day 80%")

	// 23:10 UTC on the 10th is 00:10 on the 11th in Berlin.
	late := time.Date(2026, 11, 10, 23, 10, 0, 0, time.UTC)
	f.spend("alpha", late, late.Add(10*time.Minute), 11, 0.5) // $5.50 on the new day
	s := step(t, e, time.Date(2026, 11, 10, 23, 30, 0, 0, time.UTC))
	// The old day's tiers end silently; fleet-day tells its reset once;
	// the new day's 50 % fires anew. In UTC the day would total $14.50
	// and the 100 % tier would fire instead.
	wantEvents(t, hook, "firing alpha-day 50%", "firing fleet-day 50%", "firing alpha-day 80%",
		"resolved fleet-day 50%", "firing alpha-day 50%")
	var periods []string
	var last *Notification
	for _, n := range hook.notifications(t) {
		if n.Rule == "alpha-day" && n.Instance == "50%" {
			periods = append(periods, n.Period)
			last = &n
		}
	}
	if !equal(periods, []string{"2026-11-10", "2026-11-11"}) {
		t.Errorf("periods of the 50%% tier %q; want 2026-11-10, 2026-11-11", periods)
	}
	if last.AmountUSD == nil || math.Abs(*last.AmountUSD-5.5) > 1e-9 || *last.BudgetUSD != 10 || math.Abs(*last.PercentUsed-55) > 1e-9 {
		t.Errorf("payload figures %v %v %v; want 5.5 of 10, 55 %%", *last.AmountUSD, *last.BudgetUSD, *last.PercentUsed)
	}
	r := ruleOf(t, s, "alpha-day")
	if in := instance(r, "80%"); in == nil || in.State != StateResolved {
		t.Errorf("80%% tier after the reset: %+v, want resolved", in)
	}
	if in := instance(r, "50%"); in == nil || in.State != StateFiring || in.Period != "2026-11-11" {
		t.Errorf("50%% tier: %+v, want firing in 2026-11-11", in)
	}
}

// A projection says when the budget is crossed at the current burn rate.
func TestProjectionCrossingTime(t *testing.T) {
	loc := berlin(t)
	f := newFleet(t, loc)
	hook := newReceiver(t)
	e := f.engine(hookNotifier+`
[[budgets]]
name = "beta-day"
scope = "agent:beta"
period = "day"
amount_usd = 50
projection = true
notify = ["hook"]
`, hook)
	noon := time.Date(2026, 11, 10, 12, 0, 0, 0, loc)
	f.spend("beta", noon.Add(-6*time.Hour), noon, 24, 1) // $4 an hour since 06:00
	s := step(t, e, noon)
	wantEvents(t, hook, "firing beta-day/projection")
	n := hook.notifications(t)[0]
	want := time.Date(2026, 11, 10, 18, 30, 0, 0, loc) // 12:00 + (50 − 24) / 4 h
	if n.ProjectedAt == nil || !n.ProjectedAt.Equal(want) {
		t.Errorf("projected at %v, want %v", n.ProjectedAt, want)
	}
	if n.ProjectedTotalUSD == nil || math.Abs(*n.ProjectedTotalUSD-72) > 1e-6 { // 24 + 4 × 12 h
		t.Errorf("projected total %v, want 72", n.ProjectedTotalUSD)
	}
	if n.Type != TypeProjection || n.Scope != "agent:beta" || n.URL == "" {
		t.Errorf("payload %+v", n)
	}
	if r := ruleOf(t, s, "beta-day/projection"); r.State != StateFiring {
		t.Errorf("projection state %s", r.State)
	}
	// A slower day projects no crossing: the budget's own rule stays quiet too.
	s = step(t, e, time.Date(2026, 11, 11, 0, 30, 0, 0, loc))
	if r := ruleOf(t, s, "beta-day/projection"); r.State != StateOK || instance(r, "").State != StateResolved {
		t.Errorf("after the period: %+v, want resolved", r)
	}
	wantEvents(t, hook, "firing beta-day/projection") // the period's end is silent
}

// A runaway agent is measured against its own baseline: the agent that
// always spends a lot does not fire, the quiet one that starts looping does.
func TestRunawayBaseline(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	e := f.engine(hookNotifier+`
[[alerts]]
name = "runaway"
type = "runaway"
notify = ["hook"]
`, hook)
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	f.spend("steady", now.Add(-8*24*time.Hour), now, 8*24*2, 1)                // $2 every hour
	f.spend("quiet", now.Add(-8*24*time.Hour), now, 8*24, 0.1)                 // $0.10 every hour
	f.spend("quiet", now.Add(-50*time.Minute), now.Add(-20*time.Minute), 3, 1) // a loop: $3 more in the last hour
	s := step(t, e, now)
	wantEvents(t, hook, "firing runaway quiet")
	r := ruleOf(t, s, "runaway")
	if in := instance(r, "steady"); in != nil {
		t.Errorf("steady agent: %+v, want nothing (its normal spend is high)", in)
	}
	if q := instance(r, "quiet"); q == nil || q.Threshold != 1 || math.Abs(q.Value-3.1) > 1e-9 {
		t.Errorf("quiet agent %+v: want $3.10 against the $1 minimum (5 × p95 $0.10 = $0.50)", q)
	}
	// The next hour is normal again.
	f.spend("quiet", now, now.Add(time.Hour), 1, 0.1)
	f.spend("steady", now, now.Add(time.Hour), 2, 1)
	step(t, e, now.Add(70*time.Minute))
	wantEvents(t, hook, "firing runaway quiet", "resolved runaway quiet")
}

func TestSessionCostOncePerSession(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	e := f.engine(hookNotifier+`
[[alerts]]
name = "big-session"
type = "session_cost"
amount_usd = 10
notify = ["hook"]
`, hook)
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	f.spend("gamma", now.Add(-time.Hour), now, 12, 1)
	f.spend("delta", now.Add(-time.Hour), now, 3, 1)
	step(t, e, now)
	f.spend("gamma", now, now.Add(time.Minute), 2, 1)
	s := step(t, e, now.Add(2*time.Minute))
	wantEvents(t, hook, "firing big-session openclaw:s-gamma")
	if n := hook.notifications(t)[0]; *n.AmountUSD != 12 || n.Threshold != 10 {
		t.Errorf("payload %v of %v, want 12 of 10", *n.AmountUSD, n.Threshold)
	}
	if in := instance(ruleOf(t, s, "big-session"), "openclaw:s-gamma"); in == nil || in.Value != 14 {
		t.Errorf("instance %+v, want firing at $14", in)
	}
	s = step(t, e, now.Add(25*time.Hour)) // no call for a day: out of the window
	if in := instance(ruleOf(t, s, "big-session"), "openclaw:s-gamma"); in == nil || in.State != StateResolved {
		t.Errorf("after the window: %+v, want resolved", in)
	}
	wantEvents(t, hook, "firing big-session openclaw:s-gamma") // silently
}

func TestUnpricedOncePerModelAndDay(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	e := f.engine(hookNotifier+`
[[alerts]]
name = "unpriced"
type = "unpriced"
notify = ["hook"]
`, hook)
	day := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	unpriced := func(ts time.Time) storage.Usage {
		u := f.call(ts, "eps", 0)
		u.Provider, u.Model, u.CostSource, u.Cost = "mystery", "model-x", storage.CostUnpriced, storage.Cost{}
		return u
	}
	f.add(f.call(day, "eps", 1), unpriced(day))
	step(t, e, day.Add(time.Minute))
	f.add(unpriced(day.Add(2 * time.Minute)))
	step(t, e, day.Add(3*time.Minute))
	wantEvents(t, hook, "firing unpriced mystery/model-x@2026-11-20")
	next := day.Add(24 * time.Hour)
	f.add(unpriced(next))
	s := step(t, e, next.Add(time.Minute))
	wantEvents(t, hook, "firing unpriced mystery/model-x@2026-11-20", "firing unpriced mystery/model-x@2026-11-21")
	if in := instance(ruleOf(t, s, "unpriced"), "mystery/model-x@2026-11-20"); in == nil || in.State != StateResolved {
		t.Errorf("yesterday's instance %+v, want resolved", in)
	}
	if n := hook.notifications(t)[0]; n.Value != 1100 || n.Unit != "tokens" {
		t.Errorf("payload %v %s, want 1100 tokens", n.Value, n.Unit)
	}
}

// The active 5-hour block's projection crosses the limit: warn with the
// time it runs out; the block's end resolves it.
func TestQuotaBlock(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	e := f.engine(hookNotifier+`
[[alerts]]
name = "claude-quota"
type = "quota"
limit_tokens = 2000000
notify = ["hook"]
`, hook)
	start := time.Date(2026, 11, 20, 9, 10, 0, 0, time.UTC)
	var calls []storage.Usage
	for i := range 11 { // 09:10 … 10:50, 100k tokens each
		u := f.call(start.Add(time.Duration(i)*10*time.Minute), "proj", 0.5)
		u.Source, u.SessionID, u.Input, u.Output = storage.SourceClaude, "c1", 100_000, 0
		calls = append(calls, u)
	}
	f.add(calls...)
	s := step(t, e, time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC))
	wantEvents(t, hook, "firing claude-quota 2026-11-20T09:00:00.000Z")
	n := hook.notifications(t)[0]
	// 1.1M tokens in 100 minutes: 11k a minute; 0.9M left: 81.8 minutes.
	want := time.Date(2026, 11, 20, 12, 21, 0, 0, time.UTC)
	if n.ProjectedAt == nil || !n.ProjectedAt.Equal(want) {
		t.Errorf("exhausted at %v, want %v", n.ProjectedAt, want)
	}
	if r := ruleOf(t, s, "claude-quota"); math.Abs(r.Value-55) > 1e-9 {
		t.Errorf("used %v %%, want 55", r.Value)
	}
	step(t, e, time.Date(2026, 11, 20, 14, 30, 0, 0, time.UTC)) // the block ended at 14:00
	wantEvents(t, hook, "firing claude-quota 2026-11-20T09:00:00.000Z", "resolved claude-quota 2026-11-20T09:00:00.000Z")
}

// sample is a healthy host reading.
func sample(ts time.Time) storage.HostSample {
	return storage.HostSample{TS: ts.UnixMilli(), CPUPct: 20, CPUCount: 2, MemTotal: 8 << 30, MemUsed: 2 << 30, Load1: 0.5, LoadPerCore: 0.25,
		DataDisk: storage.DiskStat{Total: 100 << 30, Used: 50 << 30, Free: 50 << 30}, RootDisk: storage.DiskStat{Total: 100 << 30, Used: 50 << 30, Free: 50 << 30},
		GatewayProcs: 1, GatewayCPUPct: 1}
}

func (f *fleet) samples(from, to time.Time, every time.Duration, change func(*storage.HostSample)) {
	f.t.Helper()
	for ts := from; ts.Before(to); ts = ts.Add(every) {
		s := sample(ts)
		if change != nil {
			change(&s)
		}
		if err := f.db.PutHostSample(s); err != nil {
			f.t.Fatal(err)
		}
	}
}

func TestHostMetricForMinutes(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	e := f.engine(hookNotifier+`
[[alerts]]
name = "cpu-high"
type = "host"
metric = "cpu"
threshold = 90
for = "5m"
notify = ["hook"]

[[alerts]]
name = "gateway"
type = "host"
metric = "gateway_down"
for = "3m"
notify = ["hook"]
`, hook)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	cpu := func(v float64) func(*storage.HostSample) { return func(s *storage.HostSample) { s.CPUPct = v } }
	f.samples(t0.Add(-10*time.Minute), t0, 15*time.Second, nil)
	f.samples(t0, t0.Add(2*time.Minute), 15*time.Second, cpu(95))
	s := step(t, e, t0.Add(2*time.Minute))
	if r := ruleOf(t, s, "cpu-high"); r.State != StatePending {
		t.Fatalf("after 2 minutes over: %s, want pending", r.State)
	}
	f.samples(t0.Add(2*time.Minute), t0.Add(6*time.Minute), 15*time.Second, cpu(95))
	step(t, e, t0.Add(6*time.Minute))
	f.samples(t0.Add(6*time.Minute), t0.Add(8*time.Minute), 15*time.Second, cpu(88)) // under, within the hysteresis
	step(t, e, t0.Add(8*time.Minute))
	wantEvents(t, hook, "firing cpu-high")
	f.samples(t0.Add(8*time.Minute), t0.Add(9*time.Minute), 15*time.Second, cpu(40))
	step(t, e, t0.Add(9*time.Minute))
	wantEvents(t, hook, "firing cpu-high", "resolved cpu-high")

	// The gateway stops, then comes back.
	gone := func(s *storage.HostSample) { s.GatewayProcs, s.GatewayCPUPct = 0, 0 }
	f.samples(t0.Add(9*time.Minute), t0.Add(13*time.Minute), 15*time.Second, gone)
	step(t, e, t0.Add(13*time.Minute))
	f.samples(t0.Add(13*time.Minute), t0.Add(14*time.Minute), 15*time.Second, nil)
	step(t, e, t0.Add(14*time.Minute))
	wantEvents(t, hook, "firing cpu-high", "resolved cpu-high", "firing gateway", "resolved gateway")
}

func TestHostDiskFull(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	e := f.engine(hookNotifier+`
[[alerts]]
name = "disk-filling"
type = "host"
metric = "disk_full"
threshold = 7
notify = ["hook"]
`, hook)
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	start := t0.Add(-24 * time.Hour)
	// 10 GiB a day with 40 GiB left at the end: 4 days.
	f.samples(start, t0, 5*time.Minute, func(s *storage.HostSample) {
		used := uint64(50<<30) + uint64(float64(10<<30)*time.UnixMilli(s.TS).Sub(start).Hours()/24)
		s.DataDisk = storage.DiskStat{Total: 100 << 30, Used: used, Free: 100<<30 - used}
	})
	s := step(t, e, t0)
	wantEvents(t, hook, "firing disk-filling")
	if r := ruleOf(t, s, "disk-filling"); math.Abs(r.Value-4) > 0.1 {
		t.Errorf("days to full %v, want about 4", r.Value)
	}
}

func TestPipelineChecks(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	ingestErr, lag := "", 3*time.Hour
	e := f.engine(hookNotifier+`
[alerting]
notify = ["hook"]

[[alerts]]
name = "silent"
type = "pipeline"
check = "source_silent"
window = "30m"

[[alerts]]
name = "ingest"
type = "pipeline"
check = "ingest_failing"
for = "10m"

[[alerts]]
name = "sync"
type = "pipeline"
check = "sync_lag"
max_lag = "2h"

[[alerts]]
name = "drift"
type = "pipeline"
check = "format_drift"
window = "24h"
`, hook, func(d *Deps) {
		d.Pipeline = Pipeline{IngestError: func() string { return ingestErr }, SyncLag: func() (time.Duration, bool) { return lag, true }}
	})
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	f.spend("zeta", t0.Add(-time.Hour), t0, 10, 0.1)
	busy := func(s *storage.HostSample) { s.GatewayCPUPct = 20 }
	f.samples(t0.Add(-time.Hour), t0.Add(40*time.Minute), 15*time.Second, busy)
	ingestErr = "open /x: permission denied"
	step(t, e, t0.Add(40*time.Minute)) // silent 46 min while busy; ingest failing: pending; sync 3 h behind
	wantEvents(t, hook, "firing silent", "firing sync")
	f.add(f.call(t0.Add(41*time.Minute), "zeta", 0.1))
	f.samples(t0.Add(40*time.Minute), t0.Add(52*time.Minute), 15*time.Second, busy)
	lag = 10 * time.Minute
	if _, err := f.db.Apply(&storage.Batch{Skips: storage.Skips{Unsupported: 2}}); err != nil {
		t.Fatal(err)
	}
	step(t, e, t0.Add(52*time.Minute)) // the drift counter's baseline was the round before
	wantEvents(t, hook, "firing silent", "firing sync", "resolved silent", "firing ingest", "resolved sync", "firing drift")
	if _, err := f.db.Apply(&storage.Batch{Skips: storage.Skips{UnrecognizedUsage: 1}}); err != nil {
		t.Fatal(err)
	}
	ingestErr = ""
	s := step(t, e, t0.Add(53*time.Minute))
	wantEvents(t, hook, "firing silent", "firing sync", "resolved silent", "firing ingest", "resolved sync", "firing drift", "resolved ingest")
	if r := ruleOf(t, s, "drift"); r.Value != 3 {
		t.Errorf("drift counted %v, want 3", r.Value)
	}
	step(t, e, t0.Add(25*time.Hour))
	got := hook.events(t)
	if got[len(got)-1] != "resolved drift" {
		t.Errorf("a day later: %q, want the drift resolved", got)
	}
}

// Codex's own rate-limit windows: the weekly window at 92 % fires a quota
// rule with source codex (threshold 90 by default), once for that window's
// period; the 5-hour window at 40 % does not; when the window resets the
// instance resolves.
func TestCodexQuotaWindows(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	weekReset := now.Add(36 * time.Hour)
	limits := []RateLimit{
		{Source: "codex", Window: "primary", UsedPercent: 40, WindowMinutes: 300, ResetsAt: now.Add(2 * time.Hour)},
		{Source: "codex", Window: "secondary", UsedPercent: 92, WindowMinutes: 10080, ResetsAt: weekReset},
	}
	e := f.engine(hookNotifier+`
[[alerts]]
name = "codex-limits"
type = "quota"
source = "codex"
notify = ["hook"]
`, hook, func(d *Deps) { d.RateLimits = func() []RateLimit { return limits } })
	s := step(t, e, now)
	wantEvents(t, hook, "firing codex-limits secondary")
	if r := ruleOf(t, s, "codex-limits"); r.Value != 92 {
		t.Errorf("value %v, want the fullest window's 92 %%", r.Value)
	}
	step(t, e, now.Add(time.Hour)) // still full: no second message
	wantEvents(t, hook, "firing codex-limits secondary")
	step(t, e, weekReset.Add(time.Minute)) // the window reset: nothing known of the new one
	wantEvents(t, hook, "firing codex-limits secondary", "resolved codex-limits secondary")
}
