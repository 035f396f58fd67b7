package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

const cpuRule = hookNotifier + `
[[alerts]]
name = "cpu-high"
type = "host"
metric = "cpu"
threshold = 90
for = "1m"
notify = ["hook"]
`

// A restart in the middle of a firing alert: no second firing message,
// and the resolve still arrives.
func TestRestartMidFiring(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	hot := func(s *storage.HostSample) { s.CPUPct = 99 }
	f.samples(t0.Add(-2*time.Minute), t0, 15*time.Second, hot)
	e := f.engine(cpuRule, hook)
	step(t, e, t0)
	wantEvents(t, hook, "firing cpu-high")

	e = f.engine(cpuRule, hook) // the daemon restarts on the same database
	f.samples(t0, t0.Add(2*time.Minute), 15*time.Second, hot)
	step(t, e, t0.Add(2*time.Minute))
	wantEvents(t, hook, "firing cpu-high")
	f.samples(t0.Add(2*time.Minute), t0.Add(3*time.Minute), 15*time.Second, nil)
	e = f.engine(cpuRule, hook) // and again, before the resolve is seen
	step(t, e, t0.Add(3*time.Minute))
	wantEvents(t, hook, "firing cpu-high", "resolved cpu-high")
}

// A message whose delivery had not succeeded when the daemon stopped is
// delivered after the restart, once, and no second firing is made.
func TestRestartBeforeDelivery(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	hook.failures = 1
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	f.samples(t0.Add(-2*time.Minute), t0.Add(5*time.Minute), 15*time.Second, func(s *storage.HostSample) { s.CPUPct = 99 })
	e := f.engine(cpuRule, hook)
	step(t, e, t0) // fires; the receiver fails
	e = f.engine(cpuRule, hook)
	step(t, e, t0.Add(time.Hour)) // still firing; the stored message goes out
	reqs := hook.requests()
	if len(reqs) != 2 || reqs[0].Body != reqs[1].Body {
		t.Fatalf("requests %d; want the failed message and the same message once more", len(reqs))
	}
	step(t, e, t0.Add(2*time.Hour))
	if n := len(hook.requests()); n != 2 {
		t.Errorf("%d requests after another round, want 2", n)
	}
}

// Quiet hours hold messages until they end; reminders repeat a firing
// alert until it is acknowledged; a snooze holds a rule's messages.
func TestQuietHoursRemindersAckSnooze(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	lag := 3 * time.Hour
	e := f.engine(hookNotifier+`
[alerting]
quiet_hours = "22:00-07:00"
reminder = "1h"

[[alerts]]
name = "sync"
type = "pipeline"
check = "sync_lag"
max_lag = "1h"
notify = ["hook"]
`, hook, func(d *Deps) { d.Pipeline.SyncLag = func() (time.Duration, bool) { return lag, true } })
	night := time.Date(2026, 11, 20, 23, 0, 0, 0, time.UTC)
	s := step(t, e, night)
	if r := ruleOf(t, s, "sync"); r.State != StateFiring {
		t.Fatalf("state %s, want firing (silently, in quiet hours)", r.State)
	}
	wantEvents(t, hook)
	morning := time.Date(2026, 11, 21, 7, 5, 0, 0, time.UTC)
	step(t, e, morning)
	wantEvents(t, hook, "firing sync")
	n := hook.notifications(t)[0]
	if !n.Since.Equal(night) {
		t.Errorf("since %v, want the firing time %v", n.Since, night)
	}
	step(t, e, morning.Add(30*time.Minute))
	step(t, e, morning.Add(61*time.Minute))
	wantEvents(t, hook, "firing sync", "reminder sync")
	if got, err := e.Ack("sync", morning.Add(62*time.Minute)); err != nil || got != 1 {
		t.Fatalf("ack: %d, %v", got, err)
	}
	step(t, e, morning.Add(3*time.Hour))
	wantEvents(t, hook, "firing sync", "reminder sync") // acknowledged: no reminder

	lag = 0
	step(t, e, morning.Add(3*time.Hour+time.Minute))
	wantEvents(t, hook, "firing sync", "reminder sync", "resolved sync")

	// Snoozed for an hour: it fires and resolves unseen... and a firing
	// that outlasts the snooze is told when it ends.
	noon := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	if err := e.Snooze("sync", noon.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	lag = 3 * time.Hour
	s = step(t, e, noon)
	if r := ruleOf(t, s, "sync"); r.SnoozedUntil == nil || r.State != StateFiring {
		t.Errorf("snoozed rule %+v", r)
	}
	wantEvents(t, hook, "firing sync", "reminder sync", "resolved sync")
	step(t, e, noon.Add(61*time.Minute))
	wantEvents(t, hook, "firing sync", "reminder sync", "resolved sync", "firing sync")
	if _, err := e.Ack("nope", noon); err == nil || !strings.Contains(err.Error(), "no such rule") {
		t.Errorf("ack of an unknown rule: %v", err)
	}
}

// Digests go out once a day (and week) at their hour, and not twice
// after a restart.
func TestDigests(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	cfg := hookNotifier + `
[alerting]
daily_digest = "08:00"
weekly_digest = "mon 08:30"
notify = ["hook"]
`
	mk := func() *Engine {
		return f.engine(cfg, hook, func(d *Deps) { d.Reports = reportsOf(f.db) })
	}
	monday := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	f.spend("alpha", monday.Add(-55*time.Hour), monday.Add(-49*time.Hour), 4, 1) // Saturday: $4
	f.spend("alpha", monday.Add(-20*time.Hour), monday.Add(-10*time.Hour), 5, 1) // Sunday: $5
	f.spend("beta", monday.Add(-20*time.Hour), monday.Add(-10*time.Hour), 2, 1)  // Sunday: $2
	e := mk()
	step(t, e, monday)
	wantEvents(t, hook)
	step(t, e, monday.Add(time.Hour))
	e = mk()
	step(t, e, monday.Add(time.Hour+time.Minute))
	wantEvents(t, hook, "digest daily_digest")
	text := hook.notifications(t)[0].Text
	for _, want := range []string{"2026-11-22: $7.00, +75% on the day before ($4.00).", "Top agents: alpha $5.00, beta $2.00", "Top users: telegram:alpha $5.00, telegram:beta $2.00", "Open alerts: 0"} {
		if !strings.Contains(text, want) {
			t.Errorf("daily digest lacks %q:\n%s", want, text)
		}
	}
	step(t, e, monday.Add(90*time.Minute))
	wantEvents(t, hook, "digest daily_digest", "digest weekly_digest")
	if text := hook.notifications(t)[1].Text; !strings.Contains(text, "Week of 2026-11-16: $11.00.") {
		t.Errorf("weekly digest:\n%s", text)
	}
}

// Tiers crossed together are told once (the highest), and a restart does
// not tell the others.
func TestTiersTogetherAcrossRestart(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	cfg := hookNotifier + `
[[budgets]]
name = "day"
period = "day"
amount_usd = 4
notify = ["hook"]
`
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	budgetFiring(f, now) // $6 of $4: 50, 80 and 100 % at once
	step(t, f.engine(cfg, hook), now)
	wantEvents(t, hook, "firing day 100%")
	if n := hook.notifications(t)[0]; n.Severity != "critical" {
		t.Errorf("severity %s, want critical for the crossed budget", n.Severity)
	}
	step(t, f.engine(cfg, hook), now.Add(time.Minute))
	wantEvents(t, hook, "firing day 100%")
}
