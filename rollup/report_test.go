package rollup

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

func usageAt(t *testing.T, day string, hour int, agent, user, model string, in int64, cost float64) storage.Usage {
	t.Helper()
	d, err := time.Parse(time.DateOnly, day)
	if err != nil {
		t.Fatal(err)
	}
	ts := d.Add(time.Duration(hour) * time.Hour).UnixMilli()
	return storage.Usage{
		TS: ts, Source: storage.SourceOpenClaw, Agent: agent, User: user, SessionID: agent + "-" + day,
		Provider: "anthropic", Model: model, Input: in, Cost: storage.Cost{Total: cost},
		CostSource: storage.CostTranscript, DedupeKey: day + agent + user + model + string(rune(hour)),
	}
}

func tallyOf(t *testing.T, loc *time.Location, us ...storage.Usage) *Tally {
	tally := NewTally(loc)
	if _, err := tally.Apply(&storage.Batch{Records: us}); err != nil {
		t.Fatal(err)
	}
	return tally
}

func build(t *testing.T, src Source, kind, since, until string) Report {
	t.Helper()
	q := Query{Kind: kind, Since: MinDay, Until: MaxDay}
	if since != "" {
		q.Since, _ = storage.ParseDay(since)
	}
	if until != "" {
		q.Until, _ = storage.ParseDay(until)
	}
	rep, err := Build(src, q)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestWeeklyTrend(t *testing.T) {
	tally := tallyOf(t, time.UTC,
		usageAt(t, "2026-04-06", 1, "a", "", "m", 10, 1.00), // Monday, week 2026-04-06
		usageAt(t, "2026-04-12", 1, "a", "", "m", 10, 1.00), // Sunday, same week
		usageAt(t, "2026-04-13", 1, "a", "", "m", 10, 3.00), // next Monday
		usageAt(t, "2026-04-27", 1, "a", "", "m", 10, 0.50), // a week with nothing before it
	)
	rows := build(t, tally, "weekly", "", "").Rows.([]WeeklyRow)
	if len(rows) != 3 {
		t.Fatalf("weeks = %+v", rows)
	}
	check := func(i int, week string, cost, prev, change float64, pct *float64) {
		t.Helper()
		r := rows[i]
		if r.WeekStart != week || r.CostUSD != cost || r.PreviousWeekCostUSD != prev || r.CostChangeUSD != change {
			t.Errorf("row %d = %s cost %v prev %v change %v; want %s %v %v %v", i, r.WeekStart, r.CostUSD, r.PreviousWeekCostUSD, r.CostChangeUSD, week, cost, prev, change)
		}
		if (r.CostChangePct == nil) != (pct == nil) || (pct != nil && *r.CostChangePct != *pct) {
			t.Errorf("row %d pct = %v, want %v", i, r.CostChangePct, pct)
		}
	}
	fifty := 50.0
	check(0, "2026-04-06", 2, 0, 2, nil)
	check(1, "2026-04-13", 3, 2, 1, &fifty)
	check(2, "2026-04-27", 0.5, 0, 0.5, nil)

	// --since in the middle of history still compares with the week before.
	rows = build(t, tally, "weekly", "2026-04-13", "").Rows.([]WeeklyRow)
	if len(rows) != 2 || rows[0].PreviousWeekCostUSD != 2 {
		t.Errorf("since 2026-04-13: %+v", rows)
	}
	// A range that cuts weeks covers them whole: the Sunday before --since
	// (04-12) counts in the first week, like the week it is compared with.
	rows = build(t, tally, "weekly", "2026-04-08", "2026-04-13").Rows.([]WeeklyRow)
	if len(rows) != 2 || rows[0].CostUSD != 2 || rows[1].CostUSD != 3 || rows[1].CostChangeUSD != 1 {
		t.Errorf("2026-04-08..13: %+v", rows)
	}
}

func TestPeriodsAndLeaderboards(t *testing.T) {
	tally := tallyOf(t, time.UTC,
		usageAt(t, "2026-03-31", 23, "ops", "telegram:1", "opus", 100, 5),
		usageAt(t, "2026-04-01", 0, "main", "telegram:1", "sonnet", 10, 1),
		usageAt(t, "2026-04-01", 5, "main", "", "sonnet", 20, 2),
		usageAt(t, "2026-04-02", 5, "main", "discord:9", "haiku", 30, 0.5),
	)
	if m := build(t, tally, "monthly", "", "").Rows.([]MonthlyRow); len(m) != 2 || m[0].Month != "2026-03" || m[1].Messages != 3 || m[1].CostUSD != 3.5 {
		t.Errorf("monthly = %+v", m)
	}
	d := build(t, tally, "daily", "2026-04-01", "2026-04-01")
	if rows := d.Rows.([]DailyRow); len(rows) != 1 || rows[0].InputTokens != 30 || d.Totals.CostUSD != 3 {
		t.Errorf("daily 04-01 = %+v totals %+v", rows, d.Totals)
	}
	if a := build(t, tally, "agent", "", "").Rows.([]AgentRow); len(a) != 2 || a[0].Agent != "ops" || a[1].Messages != 3 {
		t.Errorf("agents = %+v", a)
	}
	u := build(t, tally, "user", "2026-04-01", "").Rows.([]UserRow)
	if len(u) != 3 || u[0].User != "" || u[0].CostUSD != 2 || u[1].User != "telegram:1" {
		t.Errorf("users = %+v", u)
	}
	if m := build(t, tally, "model", "", "").Rows.([]ModelRow); len(m) != 3 || m[0].Model != "opus" {
		t.Errorf("models = %+v", m)
	}
	if s := build(t, tally, "session", "2026-04-02", "").Rows.([]SessionRow); len(s) != 1 || s[0].SessionID != "main-2026-04-02" {
		t.Errorf("sessions = %+v", s)
	}
}

func TestZoneCutsDays(t *testing.T) {
	la, _ := time.LoadLocation("America/Los_Angeles")
	u := usageAt(t, "2026-04-10", 3, "a", "", "m", 1, 1) // 03:00 UTC is the evening before in LA
	if d := build(t, tallyOf(t, la, u), "daily", "", "").Rows.([]DailyRow); d[0].Date != "2026-04-09" {
		t.Errorf("LA day = %s", d[0].Date)
	}
	if d := build(t, tallyOf(t, time.UTC, u), "daily", "", "").Rows.([]DailyRow); d[0].Date != "2026-04-10" {
		t.Errorf("UTC day = %s", d[0].Date)
	}
}

func TestReportJSONShape(t *testing.T) {
	tally := tallyOf(t, time.UTC, usageAt(t, "2026-04-10", 1, "main", "", "m", 5, 0.25))
	b, err := json.Marshal(build(t, tally, "agent", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]json.RawMessage
	json.Unmarshal(b, &v)
	for _, k := range []string{"agents", "totals", "skipped"} {
		if _, ok := v[k]; !ok {
			t.Errorf("no %q key in %s", k, b)
		}
	}
	for _, k := range []string{`"agent":"main"`, `"input_tokens":5`, `"cost_usd":0.25`, `"total_tokens":5`, `"cache_read_tokens":0`, `"messages":1`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
	// An empty report still has its (empty) rows array.
	b, _ = json.Marshal(build(t, NewTally(time.UTC), "daily", "", ""))
	if !strings.HasPrefix(string(b), `{"daily":[]`) {
		t.Errorf("empty report = %s", b)
	}
}

func TestCleanEscapesTerminalControls(t *testing.T) {
	for in, want := range map[string]string{
		"plain name":         "plain name",
		"Carol \x1b[31mRED":  `Carol \x1b[31mRED`,
		"evil\u202ertl":      `evil\u202ertl`,
		"tab\tnewline\n":     `tab\tnewline\n`,
		"emoji 🚀 and ümlaut": "emoji 🚀 and ümlaut",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}
