package alerts

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// Every bad setting is refused with its rule (or notifier) and field named.
func TestValidateNamesRuleAndField(t *testing.T) {
	const rcv = "\n[[notifiers]]\nname = \"ops\"\nurl = \"ntfy://ntfy.example.com/fleet\"\n"
	for _, c := range []struct{ name, cfg, want string }{
		{"unknown type", `[[alerts]]
name = "x"
type = "budgett"`, `alerts[0] "x": type "budgett" is not a rule type`},
		{"negative amount", `[[budgets]]
name = "day"
period = "day"
amount_usd = -5`, `budgets[0] "day": amount_usd -5: want an amount above 0`},
		{"bad URL", `[[notifiers]]
name = "slack"
url = "slack://not/a/valid/url/really"`, `notifiers[0] "slack": url slack://***/***: not a valid Shoutrrr service URL`},
		{"bad webhook", `[[notifiers]]
name = "hook"
url = "json+ftp://example.com/x"`, `notifiers[0] "hook": url json+ftp://example.com/***: want json+https://`},
		{"unparsable quiet hours", `[[budgets]]
name = "day"
period = "day"
amount_usd = 5
quiet_hours = "22-7"`, `budgets[0] "day": quiet_hours "22-7": "22" is not a time of day`},
		{"global quiet hours", `[alerting]
quiet_hours = "25:00-07:00"`, `alerting: quiet_hours "25:00-07:00"`},
		{"unknown notifier", `[[budgets]]
name = "day"
period = "day"
amount_usd = 5
notify = ["pager"]`, `budgets[0] "day": notify names "pager", which is no [[notifiers]] entry`},
		{"field of another type", `[[budgets]]
name = "day"
period = "day"
amount_usd = 5
metric = "cpu"`, `budgets[0] "day": metric does not apply to a budget rule`},
		{"bad period", `[[budgets]]
name = "day"
period = "fortnight"
amount_usd = 5`, `budgets[0] "day": period "fortnight": want day, week, month or rolling`},
		{"rolling without window", `[[budgets]]
name = "r"
period = "rolling"
amount_usd = 5`, `budgets[0] "r": window is needed for a rolling budget`},
		{"unknown team", `[[budgets]]
name = "t"
scope = "team:growth"
period = "day"
amount_usd = 5`, `budgets[0] "t": scope "team:growth": no agent of the registry ([[agents]]) is in team "growth"`},
		{"bad scope", `[[budgets]]
name = "t"
scope = "cluster:x"
period = "day"
amount_usd = 5`, `budgets[0] "t": scope "cluster:x": unknown kind "cluster"`},
		{"duplicate name", `[[budgets]]
name = "t"
period = "day"
amount_usd = 5
[[alerts]]
name = "t"
type = "unpriced"`, `alerts[0] "t": name is used by another rule`},
		{"host metric", `[[alerts]]
name = "h"
type = "host"
metric = "temperature"
threshold = 5`, `alerts[0] "h": metric "temperature": want one of cpu, steal`},
		{"percent over 100", `[[alerts]]
name = "h"
type = "host"
metric = "cpu"
threshold = 150`, `alerts[0] "h": threshold 150: want a percentage`},
		{"pipeline check", `[[alerts]]
name = "p"
type = "pipeline"
check = "vibes"`, `alerts[0] "p": check "vibes": want one of source_silent`},
		{"quota limit", `[[alerts]]
name = "q"
type = "quota"`, `alerts[0] "q": limit_tokens or limit_usd is needed`},
		{"runaway factor", `[[alerts]]
name = "r"
type = "runaway"
factor = 0.5`, `alerts[0] "r": factor 0.5: want more than 1`},
		{"digest day", `[alerting]
notify = ["ops"]
weekly_digest = "someday 08:00"`, `alerting: weekly_digest "someday 08:00": "someday" is not a weekday`},
		{"tier", `[[budgets]]
name = "d"
period = "day"
amount_usd = 5
tiers = [50, 0]`, `budgets[0] "d": tiers 0: want percentages above 0`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s Settings
			if _, err := toml.Decode(c.cfg+rcv, &s); err != nil {
				t.Fatal(err)
			}
			err := s.Validate(TeamMap{"alpha": "ops"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func TestValidateAcceptsAndDefaults(t *testing.T) {
	var s Settings
	_, err := toml.Decode(`
[alerting]
notify = ["ops"]
quiet_hours = "22:00-07:00"
daily_digest = "08:00"
[[notifiers]]
name = "ops"
url = "json+https://hooks.example.com/fleet"
[[budgets]]
name = "team-month"
scope = "team:ops"
period = "month"
amount_usd = 500
projection = true
[[alerts]]
name = "loop"
type = "runaway"
`, &s)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.compile(TeamMap{"alpha": "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.rules) != 3 || c.rules[1].id != "team-month/projection" || c.rules[1].Type != TypeProjection {
		t.Fatalf("rules %+v", c.rules)
	}
	b, r := c.rules[0], c.rules[2]
	if !slices.Equal(b.Tiers, []float64{50, 80, 100}) || b.FastWindow != time.Hour || b.SlowWindow != 6*time.Hour ||
		!equal(b.notify, []string{"ops"}) || b.quiet == nil {
		t.Errorf("budget defaults %+v", b)
	}
	if r.Factor != 5 || r.MinUSDPerHour != 1 || r.Baseline != 168*time.Hour {
		t.Errorf("runaway defaults %+v", r.Rule)
	}
	if q := c.quiet; !q.contains(time.Date(2026, 1, 1, 23, 0, 0, 0, time.UTC)) || q.contains(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)) ||
		!q.contains(time.Date(2026, 1, 1, 6, 59, 0, 0, time.UTC)) || q.contains(time.Date(2026, 1, 1, 7, 0, 0, 0, time.UTC)) {
		t.Errorf("quiet hours %+v", q)
	}
}

// Effective writes the defaults into the settings and names each key that
// took one; a key the file set is not called a default.
func TestEffectiveNamesDefaults(t *testing.T) {
	var s Settings
	_, err := toml.Decode(`
[alerting]
notify = ["ops"]
timeout = "30s"
[[notifiers]]
name = "ops"
url = "json+https://hooks.example.com/fleet"
[[budgets]]
name = "day"
period = "day"
amount_usd = 50
[[budgets]]
name = "month"
period = "month"
amount_usd = 500
projection = true
slow_window = "12h"
[[alerts]]
name = "loop"
type = "runaway"
factor = 8
[[alerts]]
name = "cpu"
type = "host"
metric = "cpu"
threshold = 90
`, &s)
	if err != nil {
		t.Fatal(err)
	}
	eff, keys, err := s.Effective(nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, k := range keys {
		got[k] = true
	}
	for _, k := range []string{"alerting.interval", "alerting.attempts", "alerting.reminder", "budgets[0].type", "budgets[0].scope", "budgets[0].tiers", "budgets[0].notify",
		"budgets[1].fast_window", "alerts[0].min_usd_per_hour", "alerts[0].baseline", "alerts[1].for", "alerts[1].scope"} {
		if !got[k] {
			t.Errorf("%s is not named a default: %q", k, keys)
		}
	}
	for _, k := range []string{"alerting.timeout", "alerting.notify", "budgets[0].amount_usd", "budgets[0].fast_window", "budgets[1].slow_window", "alerts[0].factor", "alerts[1].threshold"} {
		if got[k] {
			t.Errorf("%s, set in the file or not applying, is named a default", k)
		}
	}
	if o := eff.Alerting; o.Interval != time.Minute || o.Timeout != 30*time.Second || o.Attempts != 8 {
		t.Errorf("alerting %+v", o)
	}
	if b := eff.Budgets; len(b) != 2 || !slices.Equal(b[0].Tiers, []float64{50, 80, 100}) || b[0].FastWindow != 0 || b[1].FastWindow != time.Hour || b[1].SlowWindow != 12*time.Hour || b[0].Scope != "host" {
		t.Errorf("budgets %+v", b)
	}
	if a := eff.Alerts; len(a) != 2 || a[0].Factor != 8 || a[0].MinUSDPerHour != 1 || a[0].Baseline != 168*time.Hour || a[1].For != 5*time.Minute || !equal(a[1].Notify, []string{"ops"}) {
		t.Errorf("alerts %+v", a)
	}
	if len(s.Budgets[0].Tiers) != 0 || s.Alerts[0].MinUSDPerHour != 0 {
		t.Error("Effective changed the settings it was given")
	}
	if _, _, err := (Settings{Budgets: []Rule{{Name: "x", Period: "day", AmountUSD: -1}}}).Effective(nil); err == nil {
		t.Error("an invalid rule has effective settings")
	}
}
