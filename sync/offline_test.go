package sync

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/fleetmeter/fleetmeter/sync/pgtest"
)

// Upstream is down for a simulated week while ingest goes on: every round
// fails, the local side keeps every call, and the first round after the
// server is back converges.
func TestOfflineWeekConverges(t *testing.T) {
	c := pgtest.Start(t)
	up := newUpstream(t, c)
	db := openLocal(t, time.UTC)
	start := time.Now().Add(-8 * 24 * time.Hour)
	f := newFleet(3, "o", start, 20)
	apply(t, db, f.calls(1000)...)
	w, logs := newWorker(t, up.dsn(), db, nil)
	drain(t, w, start)

	c.Stop()
	ctx := context.Background()
	for day := 1; day <= 7; day++ {
		sim := start.Add(time.Duration(day) * 24 * time.Hour)
		f.end, f.days = sim, 1
		apply(t, db, f.calls(300)...) // ingest goes on
		if err := db.PutHostSample(storage.HostSample{TS: sim.UnixMilli(), CPUPct: float64(day), CPUCount: 1}); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := w.Step(ctx, sim); err == nil {
				t.Fatalf("day %d: a round succeeded with upstream down", day)
			}
			sim = sim.Add(time.Second)
		}
		st := w.Status()
		if st.State != StateFailing || st.ErrorClass != ClassNetwork || st.PendingRows == 0 || st.LagSeconds <= 0 {
			t.Errorf("day %d: status %+v", day, st)
		}
	}
	// Three failures a simulated day, seven days: one log line a day, the
	// repeats within 30 s not logged.
	if n := countLines(logs.String(), "sync failed"); n != 7 {
		t.Errorf("%d failure log lines, want 7 (repeats within 30 s suppressed):\n%s", n, logs)
	}
	if err := c.StartPostgres(); err != nil {
		t.Fatal(err)
	}
	res, err := w.Step(ctx, start.Add(8*24*time.Hour))
	if err != nil || res.Pending != 0 {
		t.Fatalf("first round after the outage: %+v %v", res, err)
	}
	sameAsLocal(t, up, db)
	var hostDays int
	up.admin.QueryRow("select count(*) from public.host_metrics_daily").Scan(&hostDays)
	if hostDays != 7 {
		t.Errorf("%d host days upstream, want the 7 of the outage", hostDays)
	}
}

// PostgreSQL is SIGKILLed in the middle of rounds, at many points, while
// ingest goes on between them: in the end upstream equals local, nothing
// lost, nothing doubled. Each round resends every row (as after a rollup
// rebuild), so it lasts long enough for the kills to land all along it.
func TestPostgresKilledMidBatch(t *testing.T) {
	c := pgtest.Start(t)
	up := newUpstream(t, c)
	db := openLocal(t, time.UTC)
	now := time.Now()
	f := newFleet(4, "k", now, 60)
	apply(t, db, f.calls(10000)...)
	w, _ := newWorker(t, up.dsn(), db, func(c *Config) { c.BatchRows = 250 })
	ctx := context.Background()
	start := time.Now()
	drain(t, w, now)
	round := time.Since(start)
	rng := rand.New(rand.NewPCG(5, uint64(now.UnixNano())))
	interrupted := 0
	for i := range 10 {
		apply(t, db, f.calls(500)...)
		if err := db.RequeueAll(0); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := w.Step(ctx, now)
			done <- err
		}()
		time.Sleep(time.Duration(rng.Int64N(int64(round))))
		c.Kill()
		if err := <-done; err != nil {
			interrupted++
		}
		if err := c.StartPostgres(); err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
	}
	t.Logf("%d of 10 rounds cut (a round takes %s)", interrupted, round)
	if interrupted < 6 {
		t.Fatalf("only %d of 10 rounds were cut by the kill (a round takes %s)", interrupted, round)
	}
	drain(t, w, now)
	sameAsLocal(t, up, db)
}

func countLines(s, sub string) int {
	n := 0
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}
