package alerts

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// budgetFiring writes $6 of spend on a $10 daily budget (the 50 % tier).
func budgetFiring(f *fleet, now time.Time) {
	f.spend("alpha", now.Add(-time.Hour), now, 6, 1)
}

// The JSON webhook and three Shoutrrr services (ntfy, Gotify, Mattermost),
// each pointed at a loopback stand-in, get the alert with its figures.
func TestDeliveryPayloads(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook, ntfy, gotify, mm := newReceiver(t), newReceiver(t), newReceiver(t), newReceiver(t)
	host := func(r *receiver) string { return strings.TrimPrefix(r.url(), "http://") }
	e := f.engine(`
[[notifiers]]
name = "hook"
url = "json+HOOK/alerts?key=hooksecret"

[[notifiers]]
name = "ntfy"
url = "ntfy://`+host(ntfy)+`/fleet-alerts?scheme=http"

[[notifiers]]
name = "gotify"
url = "gotify://`+host(gotify)+`/AbCdEfGhIjKlMnO?disabletls=yes"

[[notifiers]]
name = "mattermost"
url = "mattermost://`+host(mm)+`/mmhooktoken123?disabletls=yes"

[[budgets]]
name = "alpha-day"
scope = "agent:alpha"
period = "day"
amount_usd = 10
tiers = [50]
notify = ["hook", "ntfy", "gotify", "mattermost"]
`, hook)
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	budgetFiring(f, now)
	step(t, e, now)
	const summary = "Agent alpha spent $6.00 of its $10.00 daily budget (2026-11-20): 60%."

	// The JSON webhook: the documented payload.
	reqs := hook.requests()
	if len(reqs) != 1 || reqs[0].Method != "POST" || reqs[0].Path != "/alerts" || reqs[0].Query != "key=hooksecret" ||
		reqs[0].Header.Get("Content-Type") != "application/json" {
		t.Fatalf("webhook requests %+v", reqs)
	}
	var payload map[string]any
	if err := json.Unmarshal([]byte(reqs[0].Body), &payload); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"version": 1.0, "event": "firing", "rule": "alpha-day", "type": "budget", "scope": "agent:alpha", "instance": "50%",
		"summary": summary, "amount_usd": 6.0, "budget_usd": 10.0, "percent_used": 60.0, "threshold": 5.0, "unit": "usd",
		"projected_total_usd": nil, "projected_at": nil, "period": "2026-11-20", "url": "http://127.0.0.1:8767/alerts",
		"host": "test-host", "since": "2026-11-20T12:00:00Z", "at": "2026-11-20T12:00:00Z", "severity": "warning",
	} {
		if got, ok := payload[key]; !ok || got != want {
			t.Errorf("payload %s = %v (present %v), want %v", key, got, ok, want)
		}
	}

	// ntfy: the text as the body of a POST to the topic.
	if r := ntfy.requests(); len(r) != 1 || r[0].Path != "/fleet-alerts" || !strings.Contains(r[0].Body, summary) ||
		!strings.HasPrefix(r[0].Body, "[FIRING] alpha-day\n") {
		t.Errorf("ntfy got %+v", r)
	}
	// Gotify: JSON to /message with the application token.
	if r := gotify.requests(); len(r) != 1 || r[0].Path != "/message" ||
		!strings.Contains(r[0].Query+r[0].Header.Get("X-Gotify-Key"), "AbCdEfGhIjKlMnO") {
		t.Errorf("gotify got %+v", r)
	} else {
		var m struct{ Message string }
		if err := json.Unmarshal([]byte(r[0].Body), &m); err != nil || !strings.Contains(m.Message, summary) {
			t.Errorf("gotify body %q (%v)", r[0].Body, err)
		}
	}
	// Mattermost: an incoming webhook, JSON text.
	if r := mm.requests(); len(r) != 1 || r[0].Path != "/hooks/mmhooktoken123" {
		t.Errorf("mattermost got %+v", r)
	} else {
		var m struct{ Text string }
		if err := json.Unmarshal([]byte(r[0].Body), &m); err != nil || !strings.Contains(m.Text, summary) {
			t.Errorf("mattermost body %q (%v)", r[0].Body, err)
		}
	}
	for _, n := range e.Snapshot().Notifiers {
		if n.Delivered != 1 || n.Pending != 0 {
			t.Errorf("notifier %s: %+v, want 1 delivered", n.Name, n.DeliveryStats)
		}
	}
}

// A receiver that fails gets retries with backoff; one that hangs holds
// neither the round nor the other receivers, nor other rules on the
// receiver that fails for one rule's messages only.
func TestDeliveryRetriesAndIsolation(t *testing.T) {
	f := newFleet(t, time.UTC)
	flaky, hang, good, picky := newReceiver(t), newReceiver(t), newReceiver(t), newReceiver(t)
	flaky.failures = 2
	hang.hang = make(chan struct{})
	picky.failIf = func(body string) bool { return strings.Contains(body, `"rule":"r-bad"`) }
	cfg := `
[alerting]
timeout = "300ms"
attempts = 5
`
	for _, n := range []struct {
		name string
		r    *receiver
	}{{"flaky", flaky}, {"hang", hang}, {"good", good}, {"picky", picky}} {
		cfg += "[[notifiers]]\nname = \"" + n.name + "\"\nurl = \"json+" + n.r.url() + "/\"\n"
	}
	for _, r := range []struct{ name, notify string }{
		{"r-flaky", `"flaky"`}, {"r-hang", `"hang", "good"`}, {"r-good", `"good"`}, {"r-bad", `"picky"`}, {"r-fine", `"picky"`},
	} {
		cfg += "[[budgets]]\nname = \"" + r.name + "\"\nperiod = \"day\"\namount_usd = 10\ntiers = [50]\nnotify = [" + r.notify + "]\n"
	}
	e := f.engine(cfg, nil)
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	budgetFiring(f, now)

	if err := e.Step(t.Context(), now); err != nil { // returns with the hung request still open
		t.Fatal(err)
	}
	select {
	case <-hang.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the hanging receiver was never asked")
	}
	for len(good.requests()) < 2 {
		select { // the good receiver is served while the other one hangs
		case <-good.arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("good receiver got %d of 2 while the other hung", len(good.requests()))
		}
	}
	e.WaitDeliveries() // the hung attempt times out
	if n := len(picky.requests()); n != 2 {
		t.Errorf("picky receiver: %d requests, want r-bad and r-fine", n)
	}
	close(hang.hang)
	hang.mu.Lock()
	hang.hang = nil
	hang.mu.Unlock()

	// Retries come with the clock: a minute is too soon, an hour is not.
	step(t, e, now.Add(time.Second))
	if n := len(flaky.requests()); n != 1 {
		t.Fatalf("flaky receiver retried before its backoff: %d requests", n)
	}
	step(t, e, now.Add(time.Hour))
	step(t, e, now.Add(2*time.Hour))
	step(t, e, now.Add(3*time.Hour))
	step(t, e, now.Add(4*time.Hour))
	if n := len(flaky.requests()); n != 3 {
		t.Errorf("flaky receiver: %d requests, want 2 failures and a success", n)
	}
	if n := len(hang.requests()); n != 2 {
		t.Errorf("hanging receiver: %d requests, want a timeout and a success", n)
	}
	if n := len(good.requests()); n != 2 {
		t.Errorf("good receiver: %d requests, want 2 (no duplicates from the retries elsewhere)", n)
	}
	stats := map[string]DeliveryStats{}
	for _, n := range e.Snapshot().Notifiers {
		stats[n.Name] = n.DeliveryStats
	}
	if s := stats["flaky"]; s.Delivered != 1 || s.Failed != 2 || s.Pending != 0 {
		t.Errorf("flaky stats %+v", s)
	}
	if s := stats["picky"]; s.Delivered != 1 || s.Failed != 5 || s.GaveUp != 1 || s.Pending != 0 {
		t.Errorf("picky stats %+v: want r-fine delivered, r-bad given up after its 5th failure", s)
	}
	// Every attempt carried the same message: its first firing time.
	var at []string
	for _, n := range flaky.notifications(t) {
		at = append(at, n.At.String())
	}
	if at[0] != at[1] || at[1] != at[2] {
		t.Errorf("retries differ: %q", at)
	}
}

// A resolve never overtakes its firing when the firing is still retried.
func TestDeliveryOrder(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	hook.failures = 1
	lag := 3 * time.Hour
	e := f.engine(hookNotifier+`
[[alerts]]
name = "sync"
type = "pipeline"
check = "sync_lag"
max_lag = "1h"
notify = ["hook"]
`, hook, func(d *Deps) { d.Pipeline.SyncLag = func() (time.Duration, bool) { return lag, true } })
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	step(t, e, now) // the firing fails
	lag = 0
	step(t, e, now.Add(10*time.Second)) // resolved, queued behind the firing (whose retry is not due)
	if n := len(hook.requests()); n != 1 {
		t.Fatalf("%d requests; the resolve went out before the firing's retry", n)
	}
	step(t, e, now.Add(time.Hour)) // the firing goes
	step(t, e, now.Add(time.Hour+time.Minute))
	var got []string
	for _, n := range hook.notifications(t) {
		got = append(got, n.Event)
	}
	if !equal(got, []string{"firing", "firing", "resolved"}) {
		t.Errorf("order %q, want the failed firing, its retry, then the resolve", got)
	}
}

// Receiver URLs are secrets: not in logs, the snapshot, or errors.
func TestReceiverSecretsStayHidden(t *testing.T) {
	f := newFleet(t, time.UTC)
	bad := newReceiver(t)
	bad.failures = 100
	var logs logBuffer
	const secret = "s3cr3t-t0ken-v4lue"
	e := f.engine(`
[alerting]
attempts = 2
[[notifiers]]
name = "hook"
url = "json+HOOK/hooks/`+secret+`?token=`+secret+`"
[[notifiers]]
name = "ntfy"
url = "ntfy://`+secret+`:`+secret+`@127.0.0.1:1/`+secret+`?scheme=http"
[[budgets]]
name = "b"
period = "day"
amount_usd = 10
notify = ["hook", "ntfy"]
`, bad, func(d *Deps) { d.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	budgetFiring(f, now)
	step(t, e, now)
	step(t, e, now.Add(time.Hour))
	snap, _ := json.Marshal(e.Snapshot())
	out := logs.String()
	if !strings.Contains(out, "giving up") || !strings.Contains(out, "receiver=") {
		t.Fatalf("expected failure logs, got:\n%s", out)
	}
	for what, s := range map[string]string{"log": out, "snapshot": string(snap)} {
		if strings.Contains(s, secret) {
			t.Errorf("%s shows the secret:\n%s", what, s)
		}
	}
	if !strings.Contains(string(snap), `"receiver":"ntfy://***@127.0.0.1:1/***?***"`) || MaskURL("slack://"+secret+"/x") != "slack://***/***" {
		t.Errorf("snapshot: %s", snap)
	}
	for _, raw := range []string{"ntfy://" + secret + "@host/%zz", "slack://" + secret + "/x", "json+ftp://h/" + secret, "nope" + secret} {
		err := checkNotifierURL(raw)
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("checkNotifierURL(%q) = %v: want an error without the secret", raw, err)
		}
	}
}
