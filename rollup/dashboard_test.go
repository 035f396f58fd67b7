package rollup

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// dashCall is a call of agent at ts costing usd, in session sid.
func dashCall(key string, ts time.Time, agent, user, sid string, usd float64) storage.Usage {
	return storage.Usage{TS: ts.UnixMilli(), Source: storage.SourceOpenClaw, Agent: agent, SessionID: sid, User: user,
		Provider: "anthropic", Model: "claude-x", Input: 100, Output: 10, Cost: storage.Cost{Total: usd, Input: usd},
		CostSource: storage.CostTranscript, DedupeKey: key}
}

func dashDB(t *testing.T, loc *time.Location) (*storage.DB, func(...storage.Usage)) {
	t.Helper()
	db, err := storage.Open(t.TempDir()+"/f.db", storage.Options{Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, func(us ...storage.Usage) {
		t.Helper()
		if _, err := db.Apply(&storage.Batch{Records: us}); err != nil {
			t.Fatal(err)
		}
	}
}

func usageOf(t *testing.T, d *Dashboard, rangeName, groupBy string, f Filters) Usage {
	t.Helper()
	q, err := ParseUsageQuery(rangeName, "", "", groupBy, "day", f, d.Today())
	if err != nil {
		t.Fatal(err)
	}
	u, err := d.Usage(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// The in-memory indexes follow the database: a call added today, a late
// call on a past day, and a new session show at the next question, and
// the cube reads again only the days that changed (and the last two).
func TestDashboardFollowsTheLedger(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Berlin")
	db, apply := dashDB(t, loc)
	now := time.Date(2026, 11, 18, 12, 30, 0, 0, loc)
	var calls []storage.Usage
	for day := range 30 {
		at := now.AddDate(0, 0, -day).Add(-2 * time.Hour)
		calls = append(calls, dashCall(fmt.Sprintf("c%d", day), at, "alpha", "telegram:1", fmt.Sprintf("s%d", day), 1))
	}
	apply(calls...)
	d := NewDashboard(db, DashboardConfig{Now: func() time.Time { return now }})
	u := usageOf(t, d, "30d", "day", Filters{})
	if u.Totals.Messages != 30 || u.Totals.CostUSD != 30 || len(u.Rows) != 30 || u.Range.TZ != "Europe/Berlin" {
		t.Fatalf("30d: %+v, %d rows", u.Totals, len(u.Rows))
	}
	reads := d.cube.reads
	// Nothing new: nothing read.
	usageOf(t, d, "30d", "agent", Filters{})
	if d.cube.reads != reads {
		t.Errorf("a second question read %d days again", d.cube.reads-reads)
	}
	// Today's call, and a late call twenty days back.
	apply(dashCall("new", now.Add(-time.Minute), "beta", "telegram:2", "s-new", 2),
		dashCall("late", now.AddDate(0, 0, -20), "alpha", "telegram:1", "s20", 4))
	u = usageOf(t, d, "30d", "agent", Filters{})
	if u.Totals.CostUSD != 36 || len(u.Rows) != 2 || u.Rows[0].Key != "alpha" || u.Rows[0].CostUSD != 34 {
		t.Errorf("after new calls: %+v %+v", u.Totals, u.Rows)
	}
	if n := d.cube.reads - reads; n != 3 {
		t.Errorf("the cube read %d days again, want 3 (the late day, yesterday, today)", n)
	}
	// Hours: today's calls land in their local hours and add up to the day.
	h := usageOf(t, d, "today", "hour", Filters{})
	if len(h.Rows) != 24 || h.Totals.CostUSD != 3 || h.Rows[10].CostUSD != 1 || h.Rows[12].CostUSD != 2 || h.Rows[10].Key != "2026-11-18T10:00:00+01:00" {
		t.Errorf("today by hour: %+v; rows 10 and 12: %+v %+v", h.Totals, h.Rows[10], h.Rows[12])
	}
	hb := usageOf(t, d, "today", "hour", Filters{Agent: "beta"})
	hu := usageOf(t, d, "today", "hour", Filters{User: "telegram:2"})
	if hb.Totals.CostUSD != 2 || hu.Totals.CostUSD != 2 {
		t.Errorf("today by hour for beta %v, for its user %v", hb.Totals.CostUSD, hu.Totals.CostUSD)
	}
	// Sessions: the new one first, a session extended by a late call.
	q, _ := ParseUsageQuery("30d", "", "", "day", "day", Filters{}, d.Today())
	sl, err := d.Sessions(context.Background(), SessionQuery{UsageQuery: q, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if sl.Page.Total != 31 || sl.Sessions[0].SessionID != "s-new" || sl.Sessions[0].CostUSD != 2 {
		t.Errorf("sessions: %d, first %+v", sl.Page.Total, sl.Sessions[0])
	}
	apply(dashCall("more", now, "alpha", "telegram:1", "s20", 0.5))
	sl, _ = d.Sessions(context.Background(), SessionQuery{UsageQuery: q, Limit: 1})
	if sl.Sessions[0].SessionID != "s20" || sl.Sessions[0].CostUSD != 5.5 {
		t.Errorf("a session extended today: %+v", sl.Sessions[0])
	}
	// Left alone, the cube lets go of its rows; the next question reads again.
	d.cube.mu.Lock()
	d.cube.lastUse = time.Now().Add(-2 * cubeIdle)
	d.cube.mu.Unlock()
	d.cube.drop()
	if d.cube.days != nil {
		t.Error("the idle cube kept its rows")
	}
	if u := usageOf(t, d, "30d", "day", Filters{}); u.Totals.CostUSD != 36.5 {
		t.Errorf("after the drop: %v", u.Totals.CostUSD)
	}
}

// The overview compares each period so far with the same stretch of the
// one before.
func TestOverviewPeriods(t *testing.T) {
	db, apply := dashDB(t, time.UTC)
	now := time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC) // a Wednesday
	at := func(day, hour int) time.Time { return time.Date(2026, 11, day, hour, 0, 0, 0, time.UTC) }
	apply(
		dashCall("t", at(18, 10), "a", "", "s1", 3),                                      // today
		dashCall("y1", at(17, 10), "a", "", "s1", 2),                                     // yesterday, before noon
		dashCall("y2", at(17, 14), "a", "", "s1", 5),                                     // yesterday, after
		dashCall("m", at(16, 9), "a", "", "s1", 1),                                       // Monday
		dashCall("w1", at(11, 11), "a", "", "s1", 4),                                     // last Wednesday before noon
		dashCall("w2", at(11, 13), "a", "", "s1", 10),                                    // and after
		dashCall("w3", at(9, 8), "a", "", "s1", 6),                                       // last Monday
		dashCall("o1", at(17, 9), "a", "", "s1", 0),                                      // nothing
		dashCall("lm", at(5, 9), "a", "", "s1", 7),                                       // earlier this month
		dashCall("p1", time.Date(2026, 10, 10, 9, 0, 0, 0, time.UTC), "a", "", "s1", 8),  // last month, before day 18
		dashCall("p2", time.Date(2026, 10, 18, 6, 0, 0, 0, time.UTC), "a", "", "s1", 12), // its day 18, pro-rated by half
		dashCall("p3", time.Date(2026, 10, 25, 9, 0, 0, 0, time.UTC), "a", "", "s1", 9),  // after
	)
	d := NewDashboard(db, DashboardConfig{Now: func() time.Time { return now }})
	ov, err := d.Overview(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, p PeriodCost, cost, prev float64) {
		t.Helper()
		if math.Abs(p.CostUSD-cost) > 1e-9 || math.Abs(p.PreviousCostUSD-prev) > 1e-9 || p.ChangePct == nil ||
			math.Abs(*p.ChangePct-(cost-prev)/prev*100) > 1e-9 {
			t.Errorf("%s: %+v, want %v against %v", what, p, cost, prev)
		}
	}
	check("today", ov.Today, 3, 2)
	check("week", ov.Week, 1+2+5+3, 6+4)
	check("month", ov.Month, 7+6+4+10+1+2+5+3, 8+12.0/2) // last month's day 18 by noon: half of it

	if len(ov.TodayByHour) != 13 || ov.TodayByHour[10] != 3 {
		t.Errorf("today by hour: %v", ov.TodayByHour)
	}
	// The last 7 whole days: Nov 11 to 17: 4+10+1+2+5 = 22.
	if math.Abs(ov.DailyRateUSD-22.0/7) > 1e-9 || math.Abs(ov.ProjectedMonthUSD-(38+22.0/7*12.5)) > 1e-9 {
		t.Errorf("rate %v, projected %v", ov.DailyRateUSD, ov.ProjectedMonthUSD)
	}
}

// Host series come at the resolution of their range, with a gap where the
// daemon was down, and the fleet's cost per hour beside them.
func TestHostSeriesResolution(t *testing.T) {
	db, apply := dashDB(t, time.UTC)
	now := time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC)
	var samples []storage.HostSample
	for at := now.Add(-10 * 24 * time.Hour); at.Before(now); at = at.Add(time.Minute) {
		if at.After(now.Add(-3*time.Hour)) && at.Before(now.Add(-2*time.Hour)) {
			continue // down for an hour
		}
		samples = append(samples, storage.HostSample{TS: at.UnixMilli(), CPUPct: 50, CPUCount: 2, MemTotal: 100, MemUsed: 40, ActiveSessions: 3})
	}
	if err := db.PutHostSamples(samples); err != nil {
		t.Fatal(err)
	}
	apply(dashCall("c", now.Add(-90*time.Minute), "a", "", "s", 6))
	d := NewDashboard(db, DashboardConfig{Now: func() time.Time { return now }})
	for _, c := range []struct {
		name, res string
		points    int
	}{{"6h", "raw", 6*60 - 59 + 1}, {"24h", "5m", 24*12 - 11 + 1}, {"30d", "daily", 11}} {
		h, err := d.HostSeriesOf(context.Background(), c.name)
		if err != nil {
			t.Fatal(err)
		}
		if h.Resolution != c.res || len(h.T) != c.points || len(h.CPUPct) != len(h.T) || h.CPUPct[len(h.CPUPct)-1] != 50 || h.MemUsedPct[0] != 40 {
			t.Errorf("%s: %s, %d points (want %s, %d)", c.name, h.Resolution, len(h.T), c.res, c.points)
		}
		var cost float64
		for _, v := range h.Cost.USDPerHour {
			cost += v * float64(h.Cost.StepSeconds) / 3600
		}
		if math.Abs(cost-6) > 1e-9 {
			t.Errorf("%s: cost over the range %v, want 6", c.name, cost)
		}
	}
	h, _ := d.HostSeriesOf(context.Background(), "6h")
	gaps := 0
	for _, v := range h.CPUPct {
		if math.IsNaN(v) {
			gaps++
		}
	}
	if gaps != 1 {
		t.Errorf("%d gaps in the raw series, want the one hour down", gaps)
	}
	if b, _ := (Series{1.23456, math.NaN(), 2}).MarshalJSON(); string(b) != "[1.235,null,2]" {
		t.Errorf("series JSON %s", b)
	}
}

// The Agents page lists found and configured agents with their status.
func TestFleetStatus(t *testing.T) {
	db, apply := dashDB(t, time.UTC)
	now := time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC)
	apply(dashCall("a", now.Add(-5*time.Minute), "busy", "", "s1", 1), dashCall("b", now.Add(-5*time.Hour), "quiet", "", "s2", 2))
	reg := []storage.AgentInfo{{ID: "busy", Name: "Busy bot", Team: "Sales"}, {ID: "later", Team: "Legal"}}
	d := NewDashboard(db, DashboardConfig{Now: func() time.Time { return now }, Registry: func() []storage.AgentInfo { return reg }})
	q, _ := ParseUsageQuery("7d", "", "", "agent", "day", Filters{}, d.Today())
	f, err := d.Fleet(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]FleetAgent{}
	for _, a := range f.Agents {
		got[a.ID] = a
	}
	if a := got["busy"]; a.Status != AgentActive || a.Name != "Busy bot" || !a.Configured || a.Sessions != 1 || a.CostUSD != 1 {
		t.Errorf("busy: %+v", a)
	}
	if a := got["quiet"]; a.Status != AgentIdle || a.Configured || a.LastDay != "2026-11-18" {
		t.Errorf("quiet: %+v", a)
	}
	if a := got["later"]; a.Status != AgentPlanned || a.LastCall != nil {
		t.Errorf("later: %+v", a)
	}
	if len(f.Teams) != 2 || f.Teams[0].Key != "" || f.Teams[0].CostUSD != 2 || f.Teams[1].Key != "Sales" {
		t.Errorf("teams: %+v", f.Teams)
	}
	if _, err := d.Usage(context.Background(), UsageQuery{From: q.From, To: q.To, GroupBy: "day", Filters: Filters{Team: "Nope"}}); err == nil {
		t.Error("an unknown team passed")
	}
}

// The 5-minute points are kept between questions and stay equal to the
// database's: a longer range after a shorter one, and new samples.
func TestFiveMinutePointsFollowSamples(t *testing.T) {
	db, _ := dashDB(t, time.UTC)
	now := time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC)
	put := func(from, to time.Time, cpu float64) {
		var ss []storage.HostSample
		for at := from; at.Before(to); at = at.Add(time.Minute) {
			ss = append(ss, storage.HostSample{TS: at.UnixMilli(), CPUPct: cpu, CPUCount: 2, MemTotal: 100, MemUsed: 40})
		}
		if err := db.PutHostSamples(ss); err != nil {
			t.Fatal(err)
		}
	}
	put(now.Add(-7*24*time.Hour), now.Add(-time.Hour), 30)
	clock := now
	d := NewDashboard(db, DashboardConfig{Now: func() time.Time { return clock }})
	fresh := func(name string) HostSeries {
		t.Helper()
		h, err := d.HostSeriesOf(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	day := fresh("24h")
	week := fresh("7d")
	if len(week.T) <= len(day.T) || week.T[0] > now.Add(-6*24*time.Hour).Unix() {
		t.Errorf("7d after 24h: %d points from %d", len(week.T), week.T[0])
	}
	put(now.Add(-time.Hour), now, 80) // the last hour, busier
	clock = now.Add(time.Minute)
	again := fresh("7d")
	other := NewDashboard(db, DashboardConfig{Now: func() time.Time { return clock }})
	want, _ := other.HostSeriesOf(context.Background(), "7d")
	if len(again.T) != len(want.T) || again.CPUPct[len(again.CPUPct)-1] != 80 {
		t.Fatalf("kept points: %d, read whole: %d; last %v", len(again.T), len(want.T), again.CPUPct[len(again.CPUPct)-1])
	}
	for i := range want.T {
		if again.T[i] != want.T[i] || again.CPUPct[i] != want.CPUPct[i] {
			t.Fatalf("point %d: %d %v, read whole %d %v", i, again.T[i], again.CPUPct[i], want.T[i], want.CPUPct[i])
		}
	}
}

// A raw sample's point is what a one-sample rollup would give.
func TestSamplePointMatchesRollup(t *testing.T) {
	s := storage.HostSample{TS: 1, CPUPct: 42.5, CPUStealPct: 3.25, CPUIowaitPct: 1.5, MemTotal: 8 << 30, MemUsed: 3 << 30, SwapUsed: 1 << 30,
		LoadPerCore: 0.75, DataDisk: storage.DiskStat{Used: 40 << 30, Free: 60 << 30}, RootDisk: storage.DiskStat{Used: 1 << 30, Free: 3 << 30},
		NetInBps: 1000, NetOutBps: 250, ActiveSessions: 7, Errors: map[string]string{storage.HostFieldGateway: "no gateway"}}
	r := storage.NewHostRollup()
	r.Add(&s)
	got, want := samplePoint(&s), pointOf(1, &r)
	for i := range got.v {
		if math.Abs(got.v[i]-want.v[i]) > 0.01*math.Max(1, math.Abs(want.v[i])) {
			t.Errorf("field %d: %v, the rollup's %v", i, got.v[i], want.v[i])
		}
	}
	s.Errors[storage.HostFieldCPU] = "cannot read"
	if p := samplePoint(&s); !math.IsNaN(p.v[0]) || math.IsNaN(p.v[4]) {
		t.Errorf("a sample without CPU: %v", p.v)
	}
}
