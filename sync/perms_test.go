package sync

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/fleetmeter/fleetmeter/sync/pgtest"
	"github.com/lib/pq"
)

var (
	syncedTables = []string{"fleet_instances", "token_usage_daily", "token_usage", "host_metrics_daily", "fleet_agents"}
	seedViews    = []string{"token_usage_weekly", "token_usage_today", "token_usage_7d_by_agent", "token_usage_7d_by_user"}
)

// asRole runs fn in a transaction as role (set local role), so that its
// privileges and RLS policies apply, and rolls back.
func asRole(t *testing.T, db *sql.DB, role string, fn func(tx *sql.Tx)) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("set local role " + role); err != nil {
		t.Fatal(err)
	}
	fn(tx)
}

func wantDenied(t *testing.T, db interface {
	Exec(string, ...any) (sql.Result, error)
}, what, q string) {
	t.Helper()
	_, err := db.Exec(q)
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) || pqErr.Code != "42501" {
		t.Errorf("%s: %v, want permission denied (42501)", what, err)
	}
}

// The dashboard role reads every table and view and writes nothing; the
// sync role writes its tables and reads nothing else (not auth, not other
// schemas, not other public tables); anon reads nothing; a view does not
// show rows that RLS hides from its reader.
func TestPermissions(t *testing.T) {
	up := newUpstream(t, nil)
	db := openLocal(t, time.UTC)
	now := time.Now()
	apply(t, db, newFleet(20, "p", now, 5).calls(300)...)
	db.PutHostSample(storage.HostSample{TS: now.UnixMilli(), CPUCount: 1})
	w, _ := newWorker(t, up.dsn(), db, func(c *Config) { c.Agents = []storage.AgentInfo{{ID: "agent-01"}} })
	drain(t, w, now) // the sync role could write every table

	for _, rel := range append(append([]string{}, syncedTables...), seedViews...) {
		asRole(t, up.admin, "authenticated", func(tx *sql.Tx) {
			var n int
			if err := tx.QueryRow("select count(*) from public." + rel).Scan(&n); err != nil || n == 0 {
				t.Errorf("authenticated reads %s: %d rows, %v", rel, n, err)
			}
		})
		asRole(t, up.admin, "anon", func(tx *sql.Tx) { wantDenied(t, tx, "anon reads "+rel, "select 1 from public."+rel) })
	}
	for _, table := range syncedTables {
		asRole(t, up.admin, "authenticated", func(tx *sql.Tx) {
			wantDenied(t, tx, "authenticated deletes from "+table, "delete from public."+table)
		})
		asRole(t, up.admin, "authenticated", func(tx *sql.Tx) {
			wantDenied(t, tx, "authenticated updates "+table, "update public."+table+" set host_id = 'x'")
		})
	}
	asRole(t, up.admin, "authenticated", func(tx *sql.Tx) {
		wantDenied(t, tx, "authenticated inserts", "insert into public.fleet_agents (host_id, agent_id, generation, rev) values ('x', 'y', 'g', 1)")
	})

	// The sync role, logged in as hosts log in.
	hostDB := up.c.Open(t, up.dsn())
	for what, q := range map[string]string{
		"auth.users":             "select * from auth.users",
		"another schema":         "select * from private.secrets",
		"another public table":   "select * from public.customers",
		"DDL":                    "create table public.evil (x int)",
		"dropping a table":       "drop table public.token_usage",
		"the migrations' writes": "insert into public.fleetmeter_schema_migrations (version, name) values (99, 'x')",
		"truncate":               "truncate public.token_usage_daily",
	} {
		wantDenied(t, hostDB, "sync role: "+what, q)
	}
	var rolbypass, super bool
	up.admin.QueryRow("select rolbypassrls, rolsuper from pg_roles where rolname = $1", pgtest.SyncRole).Scan(&rolbypass, &super)
	if rolbypass || super {
		t.Errorf("the sync role bypasses RLS (%v) or is superuser (%v)", rolbypass, super)
	}

	// Every table has RLS; every view runs as its reader.
	var noRLS, definerViews int
	up.admin.QueryRow(`select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
	  where n.nspname = 'public' and c.relkind = 'r' and c.relname <> 'customers' and not c.relrowsecurity`).Scan(&noRLS)
	up.admin.QueryRow(`select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
	  where n.nspname = 'public' and c.relkind = 'v' and not coalesce(c.reloptions @> array['security_invoker=true'], false)`).Scan(&definerViews)
	if noRLS != 0 || definerViews != 0 {
		t.Errorf("%d tables without RLS, %d views without security_invoker", noRLS, definerViews)
	}

	// A policy that hides one agent from the dashboard: the views hide it
	// too. A view made without security_invoker (the control) leaks it,
	// which shows that this check can fail.
	var hidden string
	up.admin.QueryRow("select agent from public.token_usage_daily limit 1").Scan(&hidden)
	for _, q := range []string{
		"drop policy dashboard_read on public.token_usage_daily",
		"create policy dashboard_read on public.token_usage_daily for select to authenticated using (agent <> '" + hidden + "')",
		"create view public.leaky_by_agent as select agent, sum(messages) as messages from public.token_usage_daily group by agent",
		"grant select on public.leaky_by_agent to authenticated",
	} {
		if _, err := up.admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	count := func(tx *sql.Tx, q string) int {
		var n int
		if err := tx.QueryRow(q, hidden).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	asRole(t, up.admin, "authenticated", func(tx *sql.Tx) {
		if n := count(tx, "select count(*) from public.token_usage_7d_by_agent where agent = $1"); n != 0 {
			t.Errorf("token_usage_7d_by_agent shows the hidden agent (%d rows)", n)
		}
		if n := count(tx, "select count(*) from public.token_usage_weekly where agent = $1"); n != 0 {
			t.Errorf("token_usage_weekly shows the hidden agent (%d rows)", n)
		}
		if n := count(tx, "select count(*) from public.leaky_by_agent where agent = $1"); n != 1 {
			t.Errorf("control: a definer view shows the hidden agent %d times, want 1 (the leak this guards against)", n)
		}
	})
}

// Two migrate runs at once apply each migration once.
func TestMigrateConcurrentlyAndAgain(t *testing.T) {
	c := pgtest.Shared(t)
	name := c.NewDatabase(t)
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, _, err := Migrate(context.Background(), c.AdminDSN(name)); errs <- err }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	applied, v, err := Migrate(context.Background(), c.AdminDSN(name))
	if err != nil || len(applied) != 0 || v != SchemaVersion() {
		t.Errorf("third run applied %v, version %d, %v", applied, v, err)
	}
	var rows int
	c.Open(t, c.AdminDSN(name)).QueryRow("select count(*) from public.fleetmeter_schema_migrations").Scan(&rows)
	if rows != SchemaVersion() {
		t.Errorf("%d version rows, want %d", rows, SchemaVersion())
	}
}
