package rollup

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// filterRecords: agents a, b (Claude Code) and c; users u1, u2 and none;
// models m1, m2; teams ops (a, c) and support (b). Input tokens are
// powers of two times ten, so every subset has its own sum.
func filterRecords(t *testing.T) []storage.Usage {
	b := usageAt(t, "2026-04-07", 1, "b", "u1", "m1", 40, 4)
	b.Source = storage.SourceClaude
	return []storage.Usage{
		usageAt(t, "2026-04-06", 1, "a", "u1", "m1", 10, 1),
		usageAt(t, "2026-04-06", 2, "a", "u2", "m2", 20, 2),
		b,
		usageAt(t, "2026-04-08", 1, "c", "", "m2", 80, 8),
	}
}

var filterTeams = map[string]string{"a": "ops", "c": "ops", "b": "support"}

// filterSources are the three places a filtered report is built from:
// an in-memory tally, the database, and the database recut in another
// zone (which reads the ledger).
func filterSources(t *testing.T) map[string]*LocalReader {
	us := filterRecords(t)
	db := openTestDB(t)
	if _, err := db.Apply(&storage.Batch{Records: append([]storage.Usage(nil), us...)}); err != nil {
		t.Fatal(err)
	}
	cfg := ReaderConfig{Teams: filterTeams}
	return map[string]*LocalReader{
		"tally":    NewReader(tallyOf(t, time.UTC, us...), cfg),
		"database": NewReader(db, cfg),
		"recut":    NewReader(db, cfg), // asked with TZ below
	}
}

// One test per filter: each keeps exactly the calls it names, in every
// kind of report, from every source.
func TestFilters(t *testing.T) {
	tests := []struct {
		name   string
		filter Filter
		input  int64 // the input tokens kept
		rows   map[string]int
	}{
		{"agent", Filter{Agent: "a"}, 30, map[string]int{"daily": 1, "agent": 1, "user": 2, "model": 2, "session": 1}},
		{"user", Filter{User: "u1"}, 50, map[string]int{"daily": 2, "agent": 2, "user": 1, "model": 1}},
		{"model", Filter{Model: "m1"}, 50, map[string]int{"daily": 2, "agent": 2, "user": 1, "model": 1, "session": 2}},
		{"provider/model", Filter{Model: "anthropic/m2"}, 100, map[string]int{"daily": 2, "agent": 2, "model": 1, "session": 2}},
		{"team", Filter{Team: "ops"}, 110, map[string]int{"daily": 2, "agent": 2, "user": 3, "session": 2}},
		{"source", Filter{Source: "claude"}, 40, map[string]int{"daily": 1, "agent": 1, "session": 1}},
		{"agent and model", Filter{Agent: "a", Model: "m2"}, 20, map[string]int{"daily": 1, "weekly": 1, "monthly": 1, "session": 1}},
		{"nothing matches", Filter{Agent: "zzz"}, 0, map[string]int{"daily": 0, "session": 0}},
	}
	for srcName, r := range filterSources(t) {
		for _, tc := range tests {
			for kind, rows := range tc.rows {
				q := Query{Kind: kind, Since: MinDay, Until: MaxDay, Filter: tc.filter}
				if srcName == "recut" {
					q.TZ = "Asia/Tokyo" // +9 h: every call stays on its day
				}
				rep, err := r.Report(context.Background(), q)
				if err != nil {
					t.Fatalf("%s %s %s: %v", srcName, tc.name, kind, err)
				}
				if rep.Totals.InputTokens != tc.input || rowCount(rep.Rows) != rows {
					t.Errorf("%s, %s, %s: input %d in %d rows, want %d in %d", srcName, tc.name, kind, rep.Totals.InputTokens, rowCount(rep.Rows), tc.input, rows)
				}
				if rows == 0 && (rep.Coverage == nil || rep.Coverage.FirstDay != "2026-04-06" || rep.Coverage.LastDay != "2026-04-08") {
					t.Errorf("%s, %s, %s: empty report without the data's coverage: %+v", srcName, tc.name, kind, rep.Coverage)
				}
			}
		}
	}
}

func TestFilterBadValues(t *testing.T) {
	r := filterSources(t)["database"]
	for _, q := range []Query{
		{Kind: "daily", Filter: Filter{Team: "nobody"}},
		{Kind: "daily", Filter: Filter{Source: "cursor"}},
		{Kind: "session", Filter: Filter{User: "u1"}},
		{Kind: "daily", Order: "sideways"},
		{Kind: "daily", Top: -1},
	} {
		q.Since, q.Until = MinDay, MaxDay
		if _, err := r.Report(context.Background(), q); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%+v: %v, want a bad query", q, err)
		}
	}
}

// top has one rule for ?top= and --top: a whole number above 0, and 0 is
// an error, not "every row"; absent is every row.
func TestTopRule(t *testing.T) {
	for _, s := range []string{"0", "-1", "many", "1.5", " 3"} {
		if _, err := ParseQueryValues("agent", url.Values{"top": {s}}); !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), "want a whole number above 0") {
			t.Errorf("top %q: %v, want a bad query", s, err)
		}
	}
	for s, want := range map[string]int{"": 0, "1": 1, "25": 25} {
		if q, err := ParseQueryValues("agent", url.Values{"top": {s}}); err != nil || q.Top != want {
			t.Errorf("top %q: %d %v, want %d", s, q.Top, err, want)
		}
	}
}

// --top keeps the rows of highest cost, the totals keep every row;
// --order sorts by the kind's key.
func TestTopAndOrder(t *testing.T) {
	r := filterSources(t)["database"]
	ask := func(kind string, top int, order string) Report {
		rep, err := r.Report(context.Background(), Query{Kind: kind, Since: MinDay, Until: MaxDay, Top: top, Order: order})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	top := ask("agent", 1, "")
	if rows := top.Rows.([]AgentRow); len(rows) != 1 || rows[0].Agent != "c" || top.Totals.InputTokens != 150 || *top.Top != (Top{Rows: 1, Of: 3}) {
		t.Errorf("top 1 agent: %+v totals %d top %+v", rows, top.Totals.InputTokens, top.Top)
	}
	if rows := ask("agent", 0, "asc").Rows.([]AgentRow); rows[0].Agent != "a" || rows[2].Agent != "c" {
		t.Errorf("agents cheapest first: %+v", rows)
	}
	if rows := ask("daily", 0, "desc").Rows.([]DailyRow); rows[0].Date != "2026-04-08" || rows[2].Date != "2026-04-06" {
		t.Errorf("days newest first: %+v", rows)
	}
	// The two most expensive days, still in date order.
	if rows := ask("daily", 2, "").Rows.([]DailyRow); len(rows) != 2 || rows[0].Date != "2026-04-07" || rows[1].Date != "2026-04-08" {
		t.Errorf("top 2 days: %+v", rows)
	}
	// The cached whole report is not reordered by a shaped one.
	if rows := ask("daily", 0, "").Rows.([]DailyRow); rows[0].Date != "2026-04-06" || len(rows) != 3 {
		t.Errorf("plain daily after shaped ones: %+v", rows)
	}
}

func TestDatesAndZones(t *testing.T) {
	today := storage.DayOfDate(2026, 11, 30)
	for in, want := range map[string]string{"2026-11-01": "2026-11-01", "20261101": "2026-11-01", "today": "2026-11-30", "Yesterday": "2026-11-29", "7d": "2026-11-23", "0d": "2026-11-30"} {
		got, err := ParseDate(in, today, true)
		if err != nil || storage.DayString(got) != want {
			t.Errorf("ParseDate(%q) = %s, %v; want %s", in, storage.DayString(got), err, want)
		}
	}
	for _, bad := range []string{"2026-13-01", "202611", "7w", "-1d", "soon"} {
		if _, err := ParseDate(bad, today, true); err == nil {
			t.Errorf("ParseDate(%q) accepted", bad)
		}
	}
	if _, err := ParseDate("7d", today, false); err == nil {
		t.Error("a relative date where only dates are allowed")
	}
	for in, want := range map[string]string{"europe/berlin": "Europe/Berlin", "UTC": "UTC", "utc": "UTC", "america/new_york": "America/New_York", "us/pacific": "US/Pacific", "etc/utc": "Etc/UTC"} {
		if got, err := ZoneName(in); err != nil || got != want {
			t.Errorf("ZoneName(%q) = %q, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ZoneName("mars/olympus"); err == nil {
		t.Error("an unknown zone accepted")
	}
}
