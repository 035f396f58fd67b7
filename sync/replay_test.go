package sync

import (
	"context"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// snapshot is every synced row with its tuple version (xmin): an update
// that the guard lets through shows as a new xmin even with equal values.
func (e *upstreamEnv) snapshot(t testing.TB) string {
	t.Helper()
	var s string
	err := e.admin.QueryRow(`select concat_ws(E'\n',
	  (select string_agg(x.xmin::text || ' ' || x::text, E'\n' order by x::text) from public.token_usage_daily x),
	  (select string_agg(x.xmin::text || ' ' || x::text, E'\n' order by x::text) from public.token_usage x),
	  (select string_agg(x.xmin::text || ' ' || x::text, E'\n' order by x::text) from public.host_metrics_daily x),
	  (select string_agg(x.xmin::text || ' ' || x::text, E'\n' order by x::text) from public.fleet_agents x))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func allPending(t testing.TB, db *storage.DB) []storage.Change {
	t.Helper()
	chs, err := db.PendingChanges(nil, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return chs
}

// The same batch twice changes nothing: not a value, not a tuple.
func TestReplayChangesNothing(t *testing.T) {
	up := newUpstream(t, nil)
	db := openLocal(t, time.UTC)
	now := time.Now()
	apply(t, db, newFleet(2, "r", now, 10).calls(600)...)
	db.PutHostSample(storage.HostSample{TS: now.UnixMilli(), CPUPct: 10, CPUCount: 1})
	w, _ := newWorker(t, up.dsn(), db, func(c *Config) { c.Agents = []storage.AgentInfo{{ID: "agent-01", Team: "x"}} })
	db.QueueHostDays()
	db.QueueAgents(w.cfg.Agents)
	chs := allPending(t, db)
	ctx := context.Background()
	if _, err := w.send(ctx, now, chs, true, 0); err != nil {
		t.Fatal(err)
	}
	before := up.snapshot(t)
	if len(before) < 1000 {
		t.Fatalf("snapshot too small to mean anything: %q", before)
	}
	if _, err := w.send(ctx, now, chs, true, 0); err != nil {
		t.Fatal(err)
	}
	// The entries were never acknowledged (a crash after commit): the next
	// round sends them all again.
	if res, err := w.Step(ctx, now); err != nil || res.Sent == 0 {
		t.Fatalf("round after the replays: %+v %v", res, err)
	}
	if after := up.snapshot(t); after != before {
		t.Errorf("a replay changed upstream rows")
	}
}

// An older row never overwrites a newer one: a batch read before a change
// and delivered after it (a late retry) leaves the newer values.
func TestOlderRowNeverOverwritesNewer(t *testing.T) {
	up := newUpstream(t, nil)
	db := openLocal(t, time.UTC)
	now := time.Now()
	ts := now.Add(-48 * time.Hour)
	apply(t, db, oneCall("a", "1", ts, 100))
	older := allPending(t, db)
	apply(t, db, oneCall("b", "1", ts, 50))
	newer := allPending(t, db)
	w, _ := newWorker(t, up.dsn(), db, nil)
	ctx := context.Background()
	if _, err := w.send(ctx, now, newer, true, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.send(ctx, now, older, true, 0); err != nil {
		t.Fatal(err)
	}
	var msgs, input, sessMsgs int64
	up.admin.QueryRow("select messages, input_tokens from public.token_usage_daily").Scan(&msgs, &input)
	up.admin.QueryRow("select messages from public.token_usage").Scan(&sessMsgs)
	if msgs != 2 || input != 150 || sessMsgs != 2 {
		t.Errorf("upstream daily %d calls %d input, session %d calls; want the newer 2, 150, 2", msgs, input, sessMsgs)
	}
	var wk int64
	up.admin.QueryRow("select messages from public.token_usage_weekly").Scan(&wk)
	if wk != 2 {
		t.Errorf("weekly view %d calls, want 2", wk)
	}
}

// A late file restates a closed day: the day's row, its week (a view over
// the days) and restated_at change; today's row, still open, is updated
// without being called restated.
func TestRestatedClosedDay(t *testing.T) {
	up := newUpstream(t, nil)
	db := openLocal(t, time.UTC)
	now := time.Now()
	closed := now.Add(-10 * 24 * time.Hour)
	apply(t, db, oneCall("a", "a", closed, 100), oneCall("b", "b", now, 10))
	w, _ := newWorker(t, up.dsn(), db, nil)
	drain(t, w, now)
	closedDay := storage.DayString(storage.DayNumber(closed.UnixMilli(), time.UTC))
	var restated *time.Time
	var final bool
	up.admin.QueryRow("select restated_at, final from public.token_usage_daily where day = $1", closedDay).Scan(&restated, &final)
	if restated != nil || !final {
		t.Fatalf("first send of a closed day: restated %v, final %v", restated, final)
	}

	apply(t, db, oneCall("late", "late", closed.Add(time.Minute), 7), oneCall("c", "c", now, 1))
	drain(t, w, now)
	var msgs, input int64
	up.admin.QueryRow("select messages, input_tokens, restated_at from public.token_usage_daily where day = $1", closedDay).Scan(&msgs, &input, &restated)
	if msgs != 2 || input != 107 || restated == nil {
		t.Errorf("restated day: %d calls, %d input, restated_at %v; want 2, 107, set", msgs, input, restated)
	}
	var wkMsgs, wkInput int64
	var wkRestated *time.Time
	up.admin.QueryRow("select messages, input_tokens, restated_at from public.token_usage_weekly where week_start = date_trunc('week', $1::date)", closedDay).
		Scan(&wkMsgs, &wkInput, &wkRestated)
	if wkMsgs != 2 || wkInput != 107 || wkRestated == nil {
		t.Errorf("its week: %d calls, %d input, restated_at %v; want 2, 107, set", wkMsgs, wkInput, wkRestated)
	}
	var todayMsgs int64
	var todayRestated *time.Time
	up.admin.QueryRow("select messages, restated_at from public.token_usage_today").Scan(&todayMsgs, &todayRestated)
	if todayMsgs != 2 || todayRestated != nil {
		t.Errorf("today: %d calls, restated_at %v; want 2 and not restated", todayMsgs, todayRestated)
	}
}
