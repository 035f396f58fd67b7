package appliance

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	upstream "github.com/fleetmeter/fleetmeter/sync"
	"github.com/fleetmeter/fleetmeter/sync/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.CloseShared()
	os.Exit(code)
}

// migrated returns a fresh upstream database, migrated through the CLI.
func migrated(t *testing.T) (*pgtest.Cluster, string) {
	t.Helper()
	c := pgtest.Shared(t)
	name := c.NewDatabase(t)
	env := map[string]string{"FLEETMETER_MIGRATE_DSN": c.AdminDSN(name)}
	if code, out, stderr := cli(t, env, "migrate"); code != 0 || !strings.Contains(out, "upstream schema at version 1") {
		t.Fatalf("migrate: exit %d, %q %q", code, out, stderr)
	}
	return c, name
}

// upstreamDaily is token_usage_daily grouped by day: calls, tokens, cost.
func upstreamDaily(t *testing.T, db *sql.DB) map[string][3]string {
	t.Helper()
	rows, err := db.Query("select to_char(day, 'YYYY-MM-DD'), sum(messages)::text, sum(total_tokens)::text, sum(cost_usd)::float8::text from public.token_usage_daily group by 1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][3]string{}
	for rows.Next() {
		var day string
		var v [3]string
		if err := rows.Scan(&day, &v[0], &v[1], &v[2]); err != nil {
			t.Fatal(err)
		}
		out[day] = v
	}
	return out
}

func localDaily(t *testing.T, rep rollup.Report) map[string][3]string {
	t.Helper()
	out := map[string][3]string{}
	for _, r := range rep.Rows.([]rollup.DailyRow) {
		out[r.Date] = [3]string{fmt.Sprint(r.Messages), fmt.Sprint(r.TotalTokens), fmt.Sprint(r.CostUSD)}
	}
	return out
}

func sameDaily(t *testing.T, what string, got, want map[string][3]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d days upstream, %d locally", what, len(got), len(want))
	}
	for day, w := range want {
		if got[day] != w {
			t.Errorf("%s %s: upstream %v, local %v", what, day, got[day], w)
		}
	}
}

// The CLI: migrate (again: nothing to do), sync --once into the migrated
// database (exit 0, upstream equals the local report), sync status, and
// the errors: no DSN, no admin DSN, a wrong password (exit 1, one line,
// no secret), the DSN masked in `config`.
func TestSyncCommands(t *testing.T) {
	c, name := migrated(t)
	dataDir := t.TempDir()
	env := map[string]string{"FLEETMETER_DATA_DIR": dataDir, "FLEETMETER_LOG_LEVEL": "error"}
	if code, _, stderr := cli(t, env, "ingest", "--once", "--openclaw-dir", "../ingest/testdata/openclaw/traps"); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	if code, out, _ := cli(t, map[string]string{"FLEETMETER_MIGRATE_DSN": c.AdminDSN(name)}, "migrate"); code != 0 || !strings.Contains(out, "already at version 1") {
		t.Errorf("second migrate: exit %d %q", code, out)
	}
	if code, _, stderr := cli(t, env, "sync", "--once"); code != 1 || !strings.Contains(stderr, "no upstream configured") {
		t.Errorf("sync without a DSN: exit %d %q", code, stderr)
	}
	if code, _, stderr := cli(t, nil, "migrate"); code != 2 || !strings.Contains(stderr, "want --dsn") {
		t.Errorf("migrate without a DSN: exit %d %q", code, stderr)
	}

	// A wrong password: exit 1, one line, the password nowhere.
	const wrong = "Wr0ng-Passw0rd-42"
	bad := maps(env, "FLEETMETER_SUPABASE_DSN", strings.Replace(c.SyncDSN(name), "password="+c.SyncPassword, "password="+wrong, 1))
	code, out, stderr := cli(t, bad, "sync", "--once")
	if code != 1 || !strings.Contains(stderr, "password authentication failed") || strings.Contains(stderr+out, wrong) || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
		t.Errorf("wrong password: exit %d, stdout %q, stderr %q", code, out, stderr)
	}

	// The DSN from a file, like the auth token.
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	os.WriteFile(dsnFile, []byte(c.SyncDSN(name)+"\n"), 0o600)
	good := maps(env, "FLEETMETER_SUPABASE_DSN_FILE", dsnFile)
	code, out, stderr = cli(t, good, "sync", "--once")
	if code != 0 || !strings.Contains(out, "0 pending, 0 quarantined") {
		t.Fatalf("sync --once: exit %d, %q %q", code, out, stderr)
	}
	rep := dbReport(t, dataDir)
	sameDaily(t, "after sync --once", upstreamDaily(t, c.Open(t, c.AdminDSN(name))), localDaily(t, rep))

	code, out, _ = cli(t, good, "sync", "status", "--json")
	var st syncReport
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.State != upstream.StateOK || st.PendingRows != 0 || st.RowsSent == 0 {
		t.Errorf("sync status --json: exit %d %v %+v", code, err, st)
	}
	if code, out, _ := cli(t, good, "sync", "status"); code != 0 || !strings.Contains(out, "sync:            ok") || strings.Contains(out, c.SyncPassword) {
		t.Errorf("sync status: exit %d\n%s", code, out)
	}
	if code, out, _ := cli(t, good, "config"); code != 0 || strings.Contains(out, c.SyncPassword) || !strings.Contains(out, `supabase_dsn = "********"`) {
		t.Errorf("config shows the DSN:\n%s", out)
	}

	// A call upstream cannot store (a token total beyond PostgreSQL's
	// bigint): quarantined, shown, and the exit code says rows are left.
	db, err := storage.Open(filepath.Join(dataDir, storage.FileName), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Apply(&storage.Batch{Records: []storage.Usage{{TS: time.Now().UnixMilli(), Source: storage.SourceOpenClaw, Agent: "huge\x1b[31magent",
		SessionID: "s", Provider: "p", Model: "m", Input: math.MaxInt64 / 2, Output: math.MaxInt64 / 2, CacheRead: 10, CostSource: storage.CostUnpriced, DedupeKey: "huge"}}})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr = cli(t, good, "sync", "--once")
	if code != 3 || !strings.Contains(stderr, "rows are left: 0 pending, 2 quarantined") {
		t.Errorf("sync --once with a rejected row: exit %d, %q %q", code, out, stderr)
	}
	if code, out, _ := cli(t, good, "sync", "status"); !strings.Contains(out, `quarantined daily`) || !strings.Contains(out, `agent="huge\x1b[31magent"`) || !strings.Contains(out, "out of range") {
		t.Errorf("sync status does not show the quarantined row: exit %d\n%s", code, out)
	}
	if code, out, _ := cli(t, good, "sync", "--once", "--retry-quarantined"); code != 3 || !strings.Contains(out, "requeued 2 quarantined rows") {
		t.Errorf("--retry-quarantined: exit %d %q", code, out)
	}
}

func maps(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// runDaemon runs an App on cfg until the end of the test.
func runDaemon(t *testing.T, cfg Config) *App {
	t.Helper()
	return runDaemonLogging(t, cfg, newLogger(Config{LogLevel: "error", LogFormat: "text"}, io.Discard))
}

// runDaemonLogging is runDaemon with the daemon's log going to log.
func runDaemonLogging(t *testing.T, cfg Config, log *slog.Logger) *App {
	t.Helper()
	if cfg.RuntimeDir == "" || cfg.RuntimeDir == defaultRuntimeDir() {
		cfg.RuntimeDir = shortTempDir(t) // never the machine's own runtime dir (/run/fleetmeter as root)
	}
	app, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	return runApp(t, app)
}

// The daemon syncs by itself and shows how in /api/status (so in
// `fleetmeter health`), /api/sync and /metrics.
func TestDaemonSyncStatus(t *testing.T) {
	c, name := migrated(t)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.OpenClawDirs = []string{"../ingest/testdata/openclaw/traps"}
	cfg.PollInterval = 10 * time.Millisecond
	cfg.Listen = "127.0.0.1:0"
	cfg.SupabaseDSN = c.SyncDSN(name)
	cfg.SyncInterval = time.Second
	cfg.Agents = []Agent{{ID: "main", Name: "Main agent", Team: "ops"}}
	cfg.BrowserLogin = false // plain loopback HTTP below
	cfg.RuntimeDir = shortTempDir(t)
	app := runDaemon(t, cfg)
	base := "http://" + app.Addr().String()
	get := func(path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s %s", path, resp.Status, b)
		}
		return string(b)
	}
	var st struct {
		Sync upstream.Status `json:"sync"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		json.Unmarshal([]byte(get("/api/status")), &st)
		if st.Sync.State == upstream.StateOK && st.Sync.PendingRows == 0 && st.Sync.RowsSent > 0 && app.ingest.Status().Added == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not sync within 20s: %+v", st.Sync)
		}
		time.Sleep(50 * time.Millisecond)
	}
	admin := c.Open(t, c.AdminDSN(name))
	var teams int
	admin.QueryRow("select count(*) from public.fleet_agents where team = 'ops'").Scan(&teams)
	if teams != 1 {
		t.Errorf("%d registry rows upstream", teams)
	}
	var rep syncReport
	if err := json.Unmarshal([]byte(get("/api/sync")), &rep); err != nil || rep.State != upstream.StateOK || rep.Quarantine == nil {
		t.Errorf("/api/sync: %+v %v", rep, err)
	}
	m := get("/metrics")
	for _, want := range []string{"fleetmeter_sync_enabled 1", "fleetmeter_sync_pending_rows 0", "fleetmeter_sync_quarantined_rows 0",
		"fleetmeter_sync_lag_seconds 0", `fleetmeter_sync_last_error{class="network"} 0`, "fleetmeter_sync_last_success_timestamp_seconds 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	env := map[string]string{"FLEETMETER_DATA_DIR": cfg.DataDir, "FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}
	if code, out, _ := cli(t, env, "health", "--json"); code != 0 || !strings.Contains(out, `"state": "ok"`) || strings.Contains(out, c.SyncPassword) {
		t.Errorf("health: exit %d\n%s", code, out)
	}
	if code, out, _ := cli(t, env, "sync", "status"); code != 0 || !strings.Contains(out, "sync:            ok") {
		t.Errorf("sync status through the daemon: exit %d\n%s", code, out)
	}
	if code, _, stderr := cli(t, maps(env, "FLEETMETER_SUPABASE_DSN", cfg.SupabaseDSN), "sync", "--once"); code != 1 || !strings.Contains(stderr, "the daemon syncs by itself") {
		t.Errorf("sync --once while the daemon runs: exit %d %q", code, stderr)
	}
}

// A daemon whose DSN cannot work (no TLS setting) says so in its status
// and metrics, and ingests all the same.
func TestDaemonBadDSNKeepsIngesting(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.OpenClawDirs = []string{"../ingest/testdata/openclaw/traps"}
	cfg.PollInterval = 10 * time.Millisecond
	cfg.Listen = "127.0.0.1:0"
	cfg.SupabaseDSN = "host=127.0.0.1 port=9 user=u password=Sekr1t-pw dbname=d binary_parameters=yes"
	app := runDaemon(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for app.ingest.Status().Added < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := app.syncStatus()
	if app.ingest.Status().Added != 10 || st.State != upstream.StateConfig || !strings.Contains(st.LastError, "sslmode") || strings.Contains(st.LastError, "Sekr1t") {
		t.Errorf("ingested %d; sync status %+v", app.ingest.Status().Added, st)
	}
	var b strings.Builder
	app.writeSyncMetrics(&b)
	if !strings.Contains(b.String(), `fleetmeter_sync_last_error{class="config"} 1`) || !strings.Contains(b.String(), "fleetmeter_sync_failing 1") {
		t.Errorf("metrics:\n%s", b.String())
	}
	// Health is not OK while sync cannot work, and says why without the DSN.
	problems := strings.Join(app.problems(), "; ")
	if !strings.Contains(problems, "upstream sync cannot work (config_error)") || strings.Contains(problems, "Sekr1t") {
		t.Errorf("problems = %q", problems)
	}
}

// Sync failing for a while is a health problem; a blip is not.
func TestSyncProblem(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		st   upstream.Status
		want string // "" for no problem
	}{
		{"disabled", upstream.Status{State: upstream.StateDisabled}, ""},
		{"ok", upstream.Status{State: upstream.StateOK, LastSuccess: now}, ""},
		{"schema", upstream.Status{State: upstream.StateSchema, LastError: "upstream schema 3 is newer than 2"}, "cannot work (schema_mismatch): upstream schema 3"},
		{"blip", upstream.Status{State: upstream.StateFailing, LastSuccess: now.Add(-10 * time.Minute), ConsecutiveFailures: 2}, ""},
		{"an afternoon", upstream.Status{State: upstream.StateFailing, LastSuccess: now.Add(-3 * time.Hour), ConsecutiveFailures: 20, ErrorClass: "network", PendingRows: 7, LastError: "dial tcp: refused"},
			"failing (network error, 20 rounds in a row, 7 rows waiting): dial tcp: refused"},
		{"never worked, few tries", upstream.Status{State: upstream.StateFailing, ConsecutiveFailures: 3}, ""},
		{"never worked", upstream.Status{State: upstream.StateFailing, ConsecutiveFailures: 12, ErrorClass: "auth"}, "failing (auth error, 12 rounds"},
	} {
		got := syncProblem(c.st, now)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// A real `fleetmeter sync --once` is SIGKILLed at many points of its
// round while calls keep arriving between runs: a final run converges,
// upstream equal to the local report, nothing lost, nothing doubled.
func TestSyncKilledMidRound(t *testing.T) {
	bin := binary(t)
	c, name := migrated(t)
	dataDir := t.TempDir()
	path := filepath.Join(dataDir, storage.FileName)
	rng := rand.New(rand.NewPCG(9, uint64(time.Now().UnixNano())))
	seq := 0
	// addCalls adds n calls and, like `rollup rebuild`, marks every row
	// for upstream again: each round then resends everything and lasts
	// long enough for the kills to land all along it.
	addCalls := func(n int) {
		db, err := storage.Open(path, storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		end := time.Now()
		var b storage.Batch
		for range n {
			seq++
			agent := rng.IntN(20)
			b.Records = append(b.Records, storage.Usage{
				TS: end.Add(-time.Duration(rng.Int64N(int64(60 * 24 * time.Hour)))).UnixMilli(), Source: storage.SourceOpenClaw,
				Agent: fmt.Sprintf("agent-%02d", agent), User: fmt.Sprintf("telegram:%d", agent*4+rng.IntN(4)),
				SessionID: fmt.Sprintf("s-%d-%d", agent, rng.IntN(20)), Provider: "anthropic", Model: fmt.Sprintf("model-%d", rng.IntN(5)),
				Input: rng.Int64N(5000), Output: 1 + rng.Int64N(2000), Cost: storage.Cost{Total: float64(rng.IntN(1e6)) / 1e7},
				CostSource: storage.CostTranscript, DedupeKey: fmt.Sprint("k", seq),
			})
		}
		if _, err := db.Apply(&b); err != nil {
			t.Fatal(err)
		}
		if err := db.RequeueAll(0); err != nil {
			t.Fatal(err)
		}
	}
	addCalls(12000)
	syncCmd := func() *exec.Cmd {
		cmd := exec.Command(bin, "sync", "--once", "--data-dir", dataDir, "--log-level", "error")
		cmd.Env = append(os.Environ(), "FLEETMETER_SUPABASE_DSN="+c.SyncDSN(name))
		return cmd
	}
	start := time.Now()
	if out, err := syncCmd().CombinedOutput(); err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	round := time.Since(start)
	t.Logf("a whole round: %s", round)
	kills := 0
	for i := 0; i < 16 && kills < 10; i++ {
		addCalls(300)
		cmd := syncCmd()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(round))))
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			if err := cmd.Wait(); err != nil {
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					kills++
				}
			}
		} else {
			cmd.Wait()
		}
	}
	if kills < 8 {
		t.Fatalf("only %d runs were killed mid-round", kills)
	}
	if out, err := syncCmd().CombinedOutput(); err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	sameDaily(t, fmt.Sprintf("after %d kills", kills), upstreamDaily(t, c.Open(t, c.AdminDSN(name))), localDaily(t, dbReport(t, dataDir)))
}

// The DSN's password is in no sync output, whatever fails: the CLI's
// (sync --once, sync status, --json, doctor, config, health) and the
// daemon's (/api/sync, /api/status, /metrics, the Sync and Overview pages,
// its log), for a key=value DSN and a URL whose password needs escaping,
// each with a wrong password against the real server (the error path
// holds the password).
func TestSyncSecretsNeverShown(t *testing.T) {
	c, name := migrated(t)
	const pw = "Sekr1t/p@ss:w0rd?x=1&y"
	u := url.URL{Scheme: "postgres", User: url.UserPassword(pgtest.SyncRole, pw), Host: fmt.Sprintf("127.0.0.1:%d", c.Port), Path: "/" + name,
		RawQuery: "sslmode=disable&binary_parameters=yes&connect_timeout=5"}
	escaped := strings.TrimPrefix(u.User.String(), pgtest.SyncRole+":")
	secrets := []string{pw, escaped, url.QueryEscape(pw), url.PathEscape(pw), "Sekr1t"}
	for _, dsn := range []string{
		fmt.Sprintf("host=127.0.0.1 port=%d user=%s password='%s' dbname=%s sslmode=disable binary_parameters=yes connect_timeout=5", c.Port, pgtest.SyncRole, pw, name),
		u.String(),
	} {
		t.Run(dsn[:8], func(t *testing.T) {
			dataDir, runtimeDir := t.TempDir(), shortTempDir(t)
			env := map[string]string{"FLEETMETER_DATA_DIR": dataDir, "FLEETMETER_RUNTIME_DIR": runtimeDir, "FLEETMETER_SUPABASE_DSN": dsn, "FLEETMETER_NO_DISCOVER": "true"}
			if code, _, stderr := cli(t, env, "ingest", "--once", "--openclaw-dir", "../ingest/testdata/openclaw/traps"); code != 0 {
				t.Fatalf("ingest: %s", stderr)
			}
			seen := map[string]string{}
			run := func(args ...string) {
				code, out, stderr := cli(t, env, args...)
				seen[strings.Join(args, " ")] = fmt.Sprintf("exit %d\n%s\n%s", code, out, stderr)
			}
			run("sync", "--once")
			if !strings.Contains(seen["sync --once"], "password authentication failed") {
				t.Fatalf("sync --once did not fail on the password: %s", seen["sync --once"])
			}
			run("sync", "status")
			run("sync", "status", "--json")
			run("doctor")
			run("config")
			if !strings.Contains(seen["doctor"], "password authentication failed") {
				t.Errorf("doctor did not reach the server: %s", seen["doctor"])
			}

			cfg := DefaultConfig()
			cfg.DataDir, cfg.RuntimeDir, cfg.NoDiscover = dataDir, runtimeDir, true
			cfg.OpenClawDirs = []string{"../ingest/testdata/openclaw/traps"}
			cfg.Listen, cfg.BrowserLogin = "127.0.0.1:0", false
			cfg.SupabaseDSN, cfg.SyncInterval = dsn, time.Second
			var logs syncBuffer
			app := runDaemonLogging(t, cfg, newLogger(Config{LogLevel: "debug", LogFormat: "text"}, &logs))
			deadline := time.Now().Add(20 * time.Second)
			for (app.syncStatus().LastAttempt.IsZero() || !strings.Contains(logs.String(), "sync failed")) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if st := app.syncStatus(); st.State != upstream.StateFailing || !strings.Contains(st.LastError, "password authentication failed") {
				t.Fatalf("daemon sync status %+v", st)
			}
			base := "http://" + app.Addr().String()
			for _, p := range []string{"/api/sync", "/api/status", "/metrics", "/sync", "/"} {
				resp, err := http.Get(base + p)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				seen[p] = resp.Status + "\n" + string(b)
			}
			run("health", "--json")
			run("doctor")
			run("sync", "status")
			seen["daemon log"] = logs.String()
			if !strings.Contains(seen["/api/sync"], "password authentication failed") || !strings.Contains(seen["daemon log"], "sync failed") {
				t.Errorf("the failure is not shown: %s\n%s", seen["/api/sync"], seen["daemon log"])
			}
			for where, text := range seen {
				for _, sec := range secrets {
					if strings.Contains(text, sec) {
						t.Errorf("%s shows the password (%q):\n%s", where, sec, text)
					}
				}
			}
		})
	}
}

// With no upstream configured, sync status says sync is off and how many
// rows wait, and nothing about an upstream it never heard from; the
// daemon's /api/sync and Sync page say the same.
func TestSyncStatusWhenOff(t *testing.T) {
	dataDir, runtimeDir := t.TempDir(), shortTempDir(t)
	env := map[string]string{"FLEETMETER_DATA_DIR": dataDir, "FLEETMETER_RUNTIME_DIR": runtimeDir}
	if code, _, stderr := cli(t, env, "ingest", "--once", "--openclaw-dir", "../ingest/testdata/openclaw/traps"); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	code, out, _ := cli(t, env, "sync", "status")
	if code != 0 || !strings.HasPrefix(out, "sync:            off: no upstream configured") || !strings.Contains(out, "rows, sent once sync is on") {
		t.Errorf("sync status: exit %d\n%s", code, out)
	}
	for _, nonsense := range []string{"schema", "never", "lag", "quarantined"} {
		if strings.Contains(out, nonsense) {
			t.Errorf("sync status with sync off says %q:\n%s", nonsense, out)
		}
	}
	var st syncReport
	_, out, _ = cli(t, env, "sync", "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Enabled || st.State != upstream.StateDisabled || st.PendingRows == 0 || st.Quarantine == nil || st.UpstreamSchema != 0 {
		t.Errorf("sync status --json: %v %+v", err, st)
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.RuntimeDir, cfg.NoDiscover = dataDir, runtimeDir, true
	cfg.Listen, cfg.BrowserLogin = "127.0.0.1:0", false
	app := runDaemon(t, cfg)
	var viaDaemon syncReport
	resp, err := http.Get("http://" + app.Addr().String() + "/api/sync")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&viaDaemon)
	resp.Body.Close()
	if viaDaemon.Enabled || viaDaemon.State != upstream.StateDisabled || viaDaemon.PendingRows < st.PendingRows {
		t.Errorf("/api/sync %+v, want off with at least %d rows waiting", viaDaemon.Status, st.PendingRows)
	}
	if _, out, _ := cli(t, env, "sync", "status"); !strings.Contains(out, "sync:            off") || strings.Contains(out, "schema") {
		t.Errorf("sync status through the daemon:\n%s", out)
	}
}

// The status of sync while it is off is read again only when its count
// is old: every Overview poll and health check asks for it.
func TestOffSyncStatusIsKept(t *testing.T) {
	var c offSyncCache
	reads := 0
	read := func() upstream.Status { reads++; return upstream.Status{PendingRows: reads} }
	for range 3 {
		if st := c.get(read); st.PendingRows != 1 {
			t.Fatalf("pending %d, want the first count", st.PendingRows)
		}
	}
	c.at = time.Now().Add(-offSyncTTL - time.Second) // the count is old now
	if st := c.get(read); st.PendingRows != 2 || reads != 2 {
		t.Fatalf("pending %d after %d reads, want a second count", st.PendingRows, reads)
	}
	c.at, c.took = time.Now().Add(-offSyncTTL-time.Second), time.Second // a slow count is kept longer
	if c.get(read); reads != 2 {
		t.Fatalf("%d reads: a count that took 1 s was made again after 31 s", reads)
	}
}
