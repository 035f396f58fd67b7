package sync

import (
	"context"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// After a sync, upstream's sums per day, agent, user and model equal the
// local reports exactly; the weekly view equals the weekly report; the
// three seed views answer and match the last 7 days of the local reports.
func TestRoundTrip(t *testing.T) {
	up := newUpstream(t, nil)
	db := openLocal(t, time.UTC)
	now := time.Now()
	f := newFleet(1, "a", now, 30)
	apply(t, db, f.calls(4000)...)
	for i := range 3 { // a host sample today and two days back
		if err := db.PutHostSample(storage.HostSample{TS: now.Add(-time.Duration(i) * 24 * time.Hour).UnixMilli(), CPUPct: 40, CPUStealPct: 5, CPUCount: 2, MemTotal: 4 << 30, MemUsed: 1 << 30, Load1: 1, LoadPerCore: 0.5, ActiveSessions: 3}); err != nil {
			t.Fatal(err)
		}
	}
	w, _ := newWorker(t, up.dsn(), db, func(c *Config) {
		c.BatchRows = 700 // several batches
		c.Agents = []storage.AgentInfo{{ID: "agent-00", Name: "Support bot", Team: "support", Owner: "ana"}}
	})
	res := drain(t, w, now)
	if res.Batches < 3 || res.Bytes == 0 {
		t.Errorf("result %+v, want several batches and bytes counted", res)
	}
	sameAsLocal(t, up, db) // days, agents, users, models, sessions
	// Weeks come from the days upstream.
	weekly := up.groups(t, up.admin, "select to_char(week_start, 'YYYY-MM-DD'), "+sumCols+" from public.token_usage_weekly group by 1")
	sameFigures(t, "weekly", weekly, localReport(t, []*storage.DB{db}, "weekly", rollup.MinDay), true)

	// The seed views, against the local reports of the last 7 days.
	since := storage.DayNumber(now.UnixMilli(), time.UTC) - 6
	sameFigures(t, "token_usage_7d_by_agent", up.groups(t, up.admin, "select source || '/' || agent, "+sumCols+" from public.token_usage_7d_by_agent group by 1"),
		localReport(t, []*storage.DB{db}, "agent", since), true)
	sameFigures(t, "token_usage_7d_by_user", up.groups(t, up.admin, "select user_id, "+sumCols+" from public.token_usage_7d_by_user group by 1"),
		localReport(t, []*storage.DB{db}, "user", since), true)
	today := storage.DayString(since + 6)
	gotToday := up.groups(t, up.admin, "select to_char(day, 'YYYY-MM-DD'), "+sumCols+" from public.token_usage_today group by 1")
	wantToday := localReport(t, []*storage.DB{db}, "daily", since+6)
	sameFigures(t, "token_usage_today", gotToday, wantToday, true)
	if _, ok := gotToday[today]; !ok || len(wantToday) != 1 {
		t.Errorf("today %s: upstream %v, local %v", today, gotToday, wantToday)
	}

	var hostDays, agents, pending int
	var lastSync *time.Time
	var hostname, tz string
	up.admin.QueryRow("select count(*) from public.host_metrics_daily where samples = 1 and cpu_p95_pct between 39 and 41").Scan(&hostDays)
	up.admin.QueryRow("select count(*) from public.fleet_agents where team = 'support' and display_name = 'Support bot'").Scan(&agents)
	up.admin.QueryRow("select pending_rows, last_sync, hostname, tz from public.fleet_instances").Scan(&pending, &lastSync, &hostname, &tz)
	if hostDays != 3 || agents != 1 || pending != 0 || lastSync == nil || hostname == "" || tz != "UTC" {
		t.Errorf("host days %d, agents %d, instance pending %d last_sync %v hostname %q tz %q", hostDays, agents, pending, lastSync, hostname, tz)
	}
	st := w.Status()
	if st.State != StateOK || st.PendingRows != 0 || st.LagSeconds != 0 || st.RowsSent != int64(res.Sent) || st.UpstreamSchema != SchemaVersion() {
		t.Errorf("status %+v", st)
	}

	// A round with nothing to send still says the host is alive.
	var seen1, seen2 time.Time
	up.admin.QueryRow("select last_seen from public.fleet_instances").Scan(&seen1)
	if res, err := w.Step(context.Background(), now); err != nil || res.Sent != 0 {
		t.Fatalf("idle round: %+v %v", res, err)
	}
	up.admin.QueryRow("select last_seen from public.fleet_instances").Scan(&seen2)
	if !seen2.After(seen1) {
		t.Errorf("last_seen %v did not advance past %v", seen2, seen1)
	}
}
