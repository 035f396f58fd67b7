package sync

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/fleetmeter/fleetmeter/sync/pgtest"
)

// loopbackResolver fails every name lookup without leaving the machine:
// its DNS server is a closed port on 127.0.0.1 (tests send no traffic
// elsewhere, DNS included).
func loopbackResolver() *net.Dialer {
	return &net.Dialer{Resolver: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", "127.0.0.1:9")
	}}}
}

// Bad settings and bad upstreams give clear messages without secrets, in
// the status and the log, send nothing, and the local side keeps ingesting.
func TestBadInput(t *testing.T) {
	up := newUpstream(t, nil)
	c := up.c
	const wrongPassword = "S3cret-wrong-Pw"
	newer := newUpstream(t, nil)
	if _, err := newer.admin.Exec("insert into public.fleetmeter_schema_migrations (version, name) values (99, 'from_the_future')"); err != nil {
		t.Fatal(err)
	}
	unmigrated := c.NewDatabase(t)
	good := up.dsn()
	cases := []struct {
		name, dsn    string
		class, state string
		says         string
		secret       string
		dialer       *net.Dialer
	}{
		{"wrong password", strings.Replace(good, "password="+c.SyncPassword, "password="+wrongPassword, 1),
			ClassAuth, StateFailing, "password authentication failed", wrongPassword, nil},
		{"unknown host", "host=fleetmeter-nowhere.invalid port=5432 user=fleetmeter_sync password=" + wrongPassword + " dbname=x sslmode=disable binary_parameters=yes",
			ClassNetwork, StateFailing, "cannot reach fleetmeter-nowhere.invalid:5432", wrongPassword, loopbackResolver()},
		{"nothing listens", "host=127.0.0.1 port=9 user=u password=" + wrongPassword + " dbname=x sslmode=disable binary_parameters=yes connect_timeout=2",
			ClassNetwork, StateFailing, "connection refused", wrongPassword, nil},
		{"schema newer than known", newer.dsn(), ClassSchema, StateSchema, "version 99 is newer than this fleetmeter knows", c.SyncPassword, nil},
		{"schema not migrated", c.SyncDSN(unmigrated), ClassSchema, StateSchema, "fleetmeter migrate", c.SyncPassword, nil},
		{"role without grants", strings.Replace(good, "user="+pgtest.SyncRole, "user="+pgtest.NoGrantsRole, 1),
			ClassPermission, StateFailing, "lacks a grant", c.SyncPassword, nil},
		{"DSN without TLS settings", strings.Replace(good, "sslmode=disable", "", 1), ClassConfig, StateConfig, "sets no sslmode", c.SyncPassword, nil},
		{"DSN without binary_parameters", strings.Replace(good, "binary_parameters=yes", "", 1), ClassConfig, StateConfig, "binary_parameters=yes", c.SyncPassword, nil},
		{"URL DSN without TLS settings", "postgres://fleetmeter_sync:" + wrongPassword + "@127.0.0.1:9/x?binary_parameters=yes", ClassConfig, StateConfig, "sets no sslmode", wrongPassword, nil},
		{"unparseable DSN", "host=127.0.0.1 password=" + wrongPassword + " sslmode=sometimes", ClassConfig, StateConfig, "DSN", wrongPassword, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openLocal(t, time.UTC)
			now := time.Now()
			f := newFleet(30, "b", now, 3)
			apply(t, db, f.calls(200)...)
			w, logs := newWorker(t, tc.dsn, db, func(c *Config) { c.Dialer = tc.dialer })
			_, err := w.Step(context.Background(), now)
			if err == nil {
				t.Fatal("a round succeeded")
			}
			st := w.Status()
			if st.ErrorClass != tc.class || st.State != tc.state || !strings.Contains(st.LastError, tc.says) {
				t.Errorf("status %s / %s / %q; want %s / %s / saying %q", st.State, st.ErrorClass, st.LastError, tc.state, tc.class, tc.says)
			}
			for where, text := range map[string]string{"error": err.Error(), "status": st.LastError + st.Target, "log": logs.String()} {
				if strings.Contains(text, tc.secret) || strings.Contains(text, tc.dsn) {
					t.Errorf("the %s shows the password or the DSN: %s", where, text)
				}
			}
			if !strings.Contains(logs.String(), "sync failed") {
				t.Errorf("nothing logged:\n%s", logs)
			}
			// The local side keeps ingesting, and keeps the rows for later.
			apply(t, db, f.calls(50)...)
			rep, err := rollup.Build(db, rollup.Query{Kind: "daily", Since: rollup.MinDay, Until: rollup.MaxDay})
			if err != nil || rep.Totals.Messages != 250 {
				t.Errorf("local report %d calls, %v; want 250", rep.Totals.Messages, err)
			}
			if st := w.Status(); st.PendingRows == 0 {
				t.Error("the outbox was emptied by a failed round")
			}
		})
	}
	var sent int
	newer.admin.QueryRow("select count(*) from public.token_usage_daily").Scan(&sent)
	if sent != 0 {
		t.Errorf("%d rows written into a schema newer than known", sent)
	}
}

// A row upstream rejects for good (here a token total beyond PostgreSQL's
// bigint) is quarantined with its error and shown; every other row goes
// through, and the next rounds are clean.
func TestQuarantineDoesNotBlock(t *testing.T) {
	up := newUpstream(t, nil)
	db := openLocal(t, time.UTC)
	now := time.Now()
	calls := newFleet(31, "q", now, 10).calls(1500)
	calls[700].Agent, calls[700].SessionID = "huge-agent", "huge-session"
	calls[700].Input, calls[700].Output = math.MaxInt64/2, math.MaxInt64/2
	apply(t, db, calls...)
	w, logs := newWorker(t, up.dsn(), db, func(c *Config) { c.BatchRows = 400 })
	res, err := w.Step(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	// The bad call's daily row and its session row.
	if res.Quarantined != 2 || res.Pending != 0 {
		t.Errorf("round %+v, want 2 quarantined and nothing pending", res)
	}
	q, err := db.Quarantined()
	if err != nil || len(q) != 2 || !strings.Contains(q[0].Error, "out of range") {
		t.Fatalf("quarantine %+v %v", q, err)
	}
	st := w.Status()
	if st.State != StateOK || st.QuarantinedRows != 2 {
		t.Errorf("status %+v", st)
	}
	if !strings.Contains(logs.String(), "quarantined") {
		t.Errorf("no quarantine in the log:\n%s", logs)
	}
	var quarantinedUpstream int
	up.admin.QueryRow("select quarantined_rows from public.fleet_instances").Scan(&quarantinedUpstream)
	if quarantinedUpstream != 2 {
		t.Errorf("fleet_instances says %d quarantined, want 2", quarantinedUpstream)
	}
	// Everything else arrived: upstream equals local without the bad call.
	var want, got int64
	for i, c := range calls {
		if i != 700 {
			want += c.TotalTokens()
		}
	}
	up.admin.QueryRow("select sum(total_tokens) from public.token_usage_daily").Scan(&got)
	if got != want {
		t.Errorf("upstream %d tokens, want %d (all but the quarantined call)", got, want)
	}
	if res, err := w.Step(context.Background(), now); err != nil || res.Sent != 0 || res.Quarantined != 0 {
		t.Errorf("next round %+v %v, want nothing to do", res, err)
	}
}

// Names are untrusted text: a NUL byte or invalid UTF-8 (a directory name
// can hold any byte), which PostgreSQL text cannot hold, becomes U+FFFD in
// what sync sends, so every row arrives, none is quarantined or stalls
// the rest, through PgBouncer as directly.
func TestNULInNamesGoesUpstream(t *testing.T) {
	for _, via := range []string{"direct", "pgbouncer"} {
		t.Run(via, func(t *testing.T) {
			up := newUpstream(t, nil)
			dsn := up.dsn()
			if via == "pgbouncer" {
				dsn = up.c.BouncerDSN(up.name)
			}
			db := openLocal(t, time.UTC)
			now := time.Now()
			calls := newFleet(33, "n", now, 3).calls(300)
			calls[10].Agent, calls[10].SessionID, calls[10].Model = "bad\x00agent", "sess\x00ion", "m\x00"
			calls[11].User, calls[11].UserLabel, calls[11].Channel = "telegram:\x001", "Eve\x00", "tele\x00gram"
			calls[12].Agent, calls[12].Provider = "dir-\xff\xfe", "prov\x00" // one run of bad bytes: one U+FFFD
			apply(t, db, calls...)
			w, _ := newWorker(t, dsn, db, func(c *Config) {
				c.Agents = []storage.AgentInfo{{ID: "reg\x00istered", Name: "n\x00", Team: "t\x00", Owner: "o\x00"}}
			})
			drain(t, w, now)
			if q, err := db.Quarantined(); err != nil || len(q) != 0 {
				t.Fatalf("quarantined: %+v %v", q, err)
			}
			var want, got int64
			for _, c := range calls {
				want += c.TotalTokens()
			}
			up.admin.QueryRow("select sum(total_tokens) from public.token_usage_daily").Scan(&got)
			if got != want {
				t.Errorf("upstream %d tokens, want %d", got, want)
			}
			for _, q := range []struct{ query, want string }{
				{"select count(*) from public.token_usage_daily where agent = 'bad\uFFFDagent' and model = 'm\uFFFD'", "1"},
				{"select count(*) from public.token_usage where session_id = 'sess\uFFFDion'", "1"},
				{"select count(*) from public.token_usage_daily where user_id = 'telegram:\uFFFD1' and user_label = 'Eve\uFFFD'", "1"},
				{"select count(*) from public.token_usage_daily where agent = 'dir-\uFFFD' and provider = 'prov\uFFFD'", "1"},
				{"select display_name || team || owner from public.fleet_agents where agent_id = 'reg\uFFFDistered'", "n\uFFFDt\uFFFDo\uFFFD"},
			} {
				var s string
				if err := up.admin.QueryRow(q.query).Scan(&s); err != nil || s != q.want {
					t.Errorf("%s: %q %v, want %q", q.query, s, err, q.want)
				}
			}
			// Locally the names stay as the transcripts wrote them.
			rep, err := rollup.Build(db, rollup.Query{Kind: "agent", Since: rollup.MinDay, Until: rollup.MaxDay})
			if err != nil || !strings.Contains(fmt.Sprint(rep.Rows), "bad\x00agent") {
				t.Errorf("local agents %v %v", rep.Rows, err)
			}
		})
	}
}

// A database restored from a backup has lower change counters than what
// upstream saw: its changes would lose against the newer rows upstream.
// The worker notices and sends everything again above them.
func TestRestoredFromBackup(t *testing.T) {
	up := newUpstream(t, nil)
	dir := t.TempDir()
	path := dir + "/" + storage.FileName
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ts := now.Add(-time.Hour)
	apply(t, db, oneCall("a", "1", ts, 100))
	w, _ := newWorker(t, up.dsn(), db, nil)
	drain(t, w, now)
	if err := db.Backup(dir + "/backup.db"); err != nil {
		t.Fatal(err)
	}
	apply(t, db, oneCall("b", "1", ts, 10))
	drain(t, w, now)
	w.Close()
	db.Close()

	restored, err := storage.Open(dir+"/backup.db", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	apply(t, restored, oneCall("c", "1", ts, 1)) // the same rows as b changed, with the counter b had
	w2, logs := newWorker(t, up.dsn(), restored, nil)
	drain(t, w2, now)
	var input int64
	up.admin.QueryRow("select input_tokens from public.token_usage_daily").Scan(&input)
	if input != 101 {
		t.Errorf("upstream input %d, want the restored database's 101", input)
	}
	if !strings.Contains(logs.String(), "restored from a backup") {
		t.Errorf("the restore was not noticed:\n%s", logs)
	}
}

// A change of the rollup zone recuts every day: the host's rows upstream
// are replaced, not doubled under both zones' days.
func TestZoneChangeReplacesDays(t *testing.T) {
	up := newUpstream(t, nil)
	path := t.TempDir() + "/" + storage.FileName
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f := newFleet(32, "z", now, 10)
	apply(t, db, f.calls(800)...)
	db.PutHostSample(storage.HostSample{TS: now.UnixMilli(), CPUCount: 1})
	w, _ := newWorker(t, up.dsn(), db, nil)
	drain(t, w, now)
	w.Close()
	db.Close()

	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	db, err = storage.Open(path, storage.Options{Location: tokyo})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, _ = newWorker(t, up.dsn(), db, nil)
	drain(t, w, now)
	for _, kind := range []string{"daily", "agent"} {
		sameFigures(t, kind, up.report(t, kind, "1970-01-01"), localReport(t, []*storage.DB{db}, kind, rollup.MinDay), true)
	}
	var tz string
	up.admin.QueryRow("select tz from public.fleet_instances").Scan(&tz)
	if tz != "Asia/Tokyo" {
		t.Errorf("fleet_instances.tz %q", tz)
	}
}
