package sync

import (
	"context"
	"fmt"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// Three hosts (three data dirs) sync into one database at the same time
// through PgBouncer in transaction mode, with fewer server connections than
// clients: the fleet views show the exact sum of the three local reports,
// each host's rows equal its own report, and no statement meets another
// client's (no "prepared statement does not exist", no wrong results).
func TestThreeHostsThroughPgBouncer(t *testing.T) {
	up := newUpstream(t, nil)
	dsn := up.c.BouncerDSN(up.name)
	now := time.Now()
	var dbs []*storage.DB
	var workers []*Worker
	var fleets []*fleet
	for i := range 3 {
		db := openLocal(t, time.UTC)
		f := newFleet(uint64(10+i), fmt.Sprint("h", i), now, 14) // the same agent and user names on every host
		apply(t, db, f.calls(2500)...)
		w, _ := newWorker(t, dsn, db, func(c *Config) { c.BatchRows = 200 })
		dbs, workers, fleets = append(dbs, db), append(workers, w), append(fleets, f)
	}
	var wg gosync.WaitGroup
	errs := make(chan error, 30)
	for i := range 3 {
		wg.Go(func() {
			for range 4 {
				if _, err := dbs[i].Apply(&storage.Batch{Records: fleets[i].calls(150)}); err != nil {
					errs <- err
					return
				}
				if _, err := workers[i].Step(context.Background(), now); err != nil {
					errs <- fmt.Errorf("host %d: %w", i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if strings.Contains(err.Error(), "prepared statement") {
			t.Errorf("the pooler mixed statements: %v", err)
		} else {
			t.Error(err)
		}
	}
	for _, w := range workers {
		drain(t, w, now)
	}
	since := storage.DayNumber(now.UnixMilli(), time.UTC) - 6
	sameFigures(t, "fleet 7d by agent", up.groups(t, up.admin, "select source || '/' || agent, "+sumCols+" from public.token_usage_7d_by_agent group by 1"),
		localReport(t, dbs, "agent", since), false)
	sameFigures(t, "fleet 7d by user", up.groups(t, up.admin, "select user_id, "+sumCols+" from public.token_usage_7d_by_user group by 1"),
		localReport(t, dbs, "user", since), false)
	sameFigures(t, "fleet by day", up.report(t, "daily", "1970-01-01"), localReport(t, dbs, "daily", rollup.MinDay), false)
	var hosts int
	up.admin.QueryRow("select max(hosts) from public.token_usage_7d_by_agent").Scan(&hosts)
	if hosts != 3 {
		t.Errorf("the fleet view counts %d hosts per agent, want 3", hosts)
	}
	for _, db := range dbs {
		mine := up.groups(t, up.admin, "select to_char(day, 'YYYY-MM-DD'), "+sumCols+" from public.token_usage_daily where host_id = $1 group by 1", db.InstanceID())
		sameFigures(t, "host "+db.InstanceID()[:6], mine, localReport(t, []*storage.DB{db}, "daily", rollup.MinDay), true)
	}
}
