package appliance

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// One rule for every bad value, wherever it comes from (a flag, an
// argument, the environment, the config file): exit 2 and a one-line
// reason that names the value.
func TestEveryBadValueExits2(t *testing.T) {
	dir := t.TempDir()
	file := func(body string) string {
		p := filepath.Join(t.TempDir(), "fleetmeter.toml")
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		msg  string
	}{
		{"date", nil, []string{"report", "daily", "--since", "2026-13-01", "--openclaw-dir", traps}, `since: date "2026-13-01": want YYYY-MM-DD`},
		{"relative date", nil, []string{"report", "daily", "--until", "7w", "--openclaw-dir", traps}, `until: date "7w"`},
		{"range backwards", nil, []string{"report", "daily", "--since", "20260201", "--until", "20260101", "--openclaw-dir", traps}, "since 2026-02-01 is after until 2026-01-01"},
		{"zone", nil, []string{"report", "daily", "--tz", "Mars/Olympus", "--openclaw-dir", traps}, `tz "Mars/Olympus" is not an IANA zone`},
		{"zone in the environment", map[string]string{"FLEETMETER_TZ": "Mars/Olympus"}, []string{"report", "daily", "--openclaw-dir", traps}, `FLEETMETER_TZ "Mars/Olympus"`},
		{"top not a number", nil, []string{"report", "agent", "--top", "many", "--openclaw-dir", traps}, `top "many": want a whole number above 0`},
		{"top negative", nil, []string{"report", "agent", "--top", "-3", "--openclaw-dir", traps}, `top "-3": want a whole number above 0`},
		{"top zero", nil, []string{"report", "agent", "--top", "0", "--openclaw-dir", traps}, `top "0": want a whole number above 0`},
		{"top minus one", nil, []string{"report", "agent", "--top", "-1", "--openclaw-dir", traps}, `top "-1": want a whole number above 0`},
		{"order", nil, []string{"report", "agent", "--order", "sideways", "--openclaw-dir", traps}, `order "sideways": want asc or desc`},
		{"source", nil, []string{"report", "agent", "--source", "cursor", "--openclaw-dir", traps}, `source "cursor": want one of openclaw, claude, codex`},
		{"team", nil, []string{"report", "agent", "--team", "nobody", "--openclaw-dir", traps}, `team "nobody"`},
		{"user on sessions", nil, []string{"report", "session", "--user", "telegram:1", "--openclaw-dir", traps}, "the session report cannot keep one user"},
		{"filter on host", nil, []string{"report", "host", "--agent", "main"}, "report host takes no --agent"},
		{"json and csv", nil, []string{"report", "daily", "--json", "--csv", "--openclaw-dir", traps}, "--json and --csv: choose one"},
		{"report kind", nil, []string{"report", "hourly"}, `unknown report "hourly"`},
		{"no report kind", nil, []string{"report", "--json"}, "missing report kind"},
		{"audit profile", nil, []string{"audit", "--profile", "paranoid", "--data-dir", dir}, `"paranoid"`},
		{"duration flag without a unit", nil, []string{"serve", "--poll-interval", "10", "--data-dir", dir}, `invalid value "10" for flag -poll-interval: want a number with a unit, such as 500ms`},
		{"duration flag in days", nil, []string{"serve", "--sample-interval", "1d", "--data-dir", dir}, `invalid value "1d" for flag -sample-interval: want a number with a unit`},
		{"duration in the environment", map[string]string{"FLEETMETER_POLL_INTERVAL": "10"}, []string{"config"}, `FLEETMETER_POLL_INTERVAL: "10" is not a duration: want a number with a unit`},
		{"duration string in the file", map[string]string{"FLEETMETER_CONFIG": file("poll_interval = \"10 seconds\"\n")}, []string{"config"}, `poll_interval: "10 seconds" is not a duration: want a number with a unit`},
		{"duration in the file without a unit", map[string]string{"FLEETMETER_CONFIG": file("poll_interval = 10\n")}, []string{"config"}, `poll_interval = 10 has no unit: write a duration such as "10s"`},
		{"nested duration without a unit", map[string]string{"FLEETMETER_CONFIG": file("[alerting]\nreminder = 4\n")}, []string{"config"}, `alerting.reminder = 4 has no unit`},
		{"duration in a rule without a unit", map[string]string{"FLEETMETER_CONFIG": file("[[budgets]]\nname = \"d\"\nperiod = \"rolling\"\nwindow = 3600\namount_usd = 5\n")}, []string{"config"}, `budgets[0].window = 3600 has no unit`},
		{"unknown key", map[string]string{"FLEETMETER_CONFIG": file("poll_intervall = \"3s\"\n")}, []string{"config"}, "unknown key poll_intervall (did you mean poll_interval?)"},
		{"number in the environment", map[string]string{"FLEETMETER_DB_MAX_MB": "lots"}, []string{"config"}, "want a whole number"},
		{"negative cap", map[string]string{"FLEETMETER_DB_MAX_MB": "-1"}, []string{"config"}, "FLEETMETER_DB_MAX_MB -1 is negative"},
		{"log level", map[string]string{"FLEETMETER_LOG_LEVEL": "loud"}, []string{"config"}, `FLEETMETER_LOG_LEVEL "loud"`},
		{"exposed without a token", nil, []string{"serve", "--listen", "0.0.0.0:8767", "--data-dir", dir}, "set an auth token"},
		{"listen not an address", nil, []string{"serve", "--listen", "8767", "--data-dir", dir}, `listen "8767": want host:port`},
		{"stray argument", nil, []string{"budget", "check", "extra"}, `unexpected argument "extra"`},
		{"unknown flag", nil, []string{"health", "--tz", "UTC"}, "flag provided but not defined: -tz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := cli(t, tc.env, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d, want %d, with %q in: %s", code, exitUsage, tc.msg, stderr)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
				t.Errorf("the reason is %d lines, want one", n+1)
			}
		})
	}
}

// A FLEETMETER_* variable fleetmeter does not read (a typo) gets one
// warning naming it and the nearest known one; the command still runs,
// and the value (perhaps a secret) is not printed.
func TestUnknownEnvironmentVariableWarns(t *testing.T) {
	env := map[string]string{"FLEETMETER_POLL_INTERVALL": "3s", "FLEETMETER_SUPABASE_DNS": "postgres://u:hunter2@h/db", "FLEETMETER_TZ": "UTC", "FLEETMETER_TEST_REQUIRE_POSTGRES": "1"}
	code, out, stderr := cli(t, env, "config", "--data-dir", t.TempDir())
	if code != 0 || !strings.Contains(out, "poll_interval = \"10s\"") {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	for _, want := range []string{
		"FLEETMETER_POLL_INTERVALL is not a fleetmeter variable and is ignored (nearest known: FLEETMETER_POLL_INTERVAL)",
		"FLEETMETER_SUPABASE_DNS is not a fleetmeter variable and is ignored (nearest known: FLEETMETER_SUPABASE_DSN)",
	} {
		if strings.Count(stderr, want) != 1 {
			t.Errorf("want once %q in:\n%s", want, stderr)
		}
	}
	if n := strings.Count(stderr, "\n"); n != 2 || strings.Contains(stderr, "hunter2") || strings.Contains(stderr, "FLEETMETER_TZ") || strings.Contains(stderr, "FLEETMETER_TEST_") {
		t.Errorf("want exactly the two warnings, no value, no known or test variable:\n%s", stderr)
	}
	// Every variable the README documents is known, but for those only
	// the tests read (set for `go test`, not for fleetmeter) and the typo
	// it shows as an example.
	testOnly := map[string]bool{"FLEETMETER_LOAD": true, "FLEETMETER_CRASH_KILLS": true, "FLEETMETER_BENCH_FLEET": true, "FLEETMETER_POLL_INTERVALL": true}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, w := range strings.FieldsFunc(string(readme), func(r rune) bool { return !(r == '_' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') }) {
		if strings.HasPrefix(w, "FLEETMETER_") && !strings.HasSuffix(w, "_") && !testOnly[w] {
			documented = append(documented, w+"=x")
		}
	}
	if len(documented) < 10 {
		t.Fatalf("found %d variables in the README", len(documented))
	}
	if w := unknownEnv(documented); len(w) > 0 {
		t.Errorf("documented variables called unknown: %q", w)
	}
}

// Every command has --help: a sentence, its usage line, only its own
// flags, and an example; `help CMD` says the same.
func TestHelpPerCommand(t *testing.T) {
	for _, c := range commands() {
		code, out, stderr := cli(t, nil, c.name, "--help")
		if code != 0 || stderr != "" {
			t.Errorf("%s --help: exit %d %q", c.name, code, stderr)
		}
		for _, want := range []string{"Usage: fleetmeter " + c.name, "Example:\n  ", "fleetmeter "} {
			if !strings.Contains(out, want) {
				t.Errorf("%s --help lacks %q:\n%s", c.name, want, out)
			}
		}
		if h, ok := helps[c.name]; ok && !strings.HasPrefix(out, h.sentence) {
			t.Errorf("%s --help does not start with its sentence:\n%s", c.name, out)
		}
		if _, again, _ := cli(t, nil, "help", c.name); again != out {
			t.Errorf("help %s differs from %s --help", c.name, c.name)
		}
	}
	// Only the flags a command uses.
	for cmd, absent := range map[string][]string{
		"report": {"-poll-interval", "-listen", "-sample-interval", "-ec2-metadata"},
		"health": {"-tz", "-openclaw-dir", "-listen"},
		"backup": {"-tz", "-listen"},
		"advise": {"-listen", "-openclaw-dir"},
	} {
		_, out, _ := cli(t, nil, cmd, "--help")
		for _, flag := range absent {
			if strings.Contains(out, flag+" ") || strings.Contains(out, flag+"\n") {
				t.Errorf("%s --help lists %s, which it does not use", cmd, flag)
			}
		}
	}
	_, out, _ := cli(t, nil, "report", "--help")
	for _, want := range []string{"-agent", "-team", "-top", "-order", "-csv", "today, yesterday or Nd"} {
		if !strings.Contains(out, want) {
			t.Errorf("report --help lacks %s", want)
		}
	}
}

func TestVersionAndFlagsBeforeArguments(t *testing.T) {
	code, out, _ := cli(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(out, "fleetmeter ") || !strings.Contains(out, "price table:") {
		t.Errorf("--version: exit %d %q", code, out)
	}
	// Flags before the kind, as after it.
	code, before, stderr := cli(t, nil, "report", "--json", "--openclaw-dir", traps, "daily")
	_, after, _ := cli(t, nil, "report", "daily", "--json", "--openclaw-dir", traps)
	if code != 0 || before != after || !strings.HasPrefix(before, "{\n  \"daily\"") {
		t.Errorf("report --json daily: exit %d %q %q", code, before, stderr)
	}
	if sub, rest := splitSub([]string{"--data-dir", "status", "--json", "status"}, "status"); sub != "status" || strings.Join(rest, " ") != "--data-dir status --json" {
		t.Errorf("splitSub: %q %q", sub, rest)
	}
}

// --csv: the JSON names as the header, one line per row, names that a
// spreadsheet would run as a formula defused.
func TestCSV(t *testing.T) {
	code, out, stderr := cli(t, nil, "report", "user", "--csv", "--openclaw-dir", traps)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 6 {
		t.Fatalf("%d records, %v:\n%s", len(recs), err, out)
	}
	if strings.Join(recs[0][:4], ",") != "user,user_label,messages,input_tokens" || recs[0][len(recs[0])-1] != "agents" {
		t.Errorf("header %q", recs[0])
	}
	var b bytes.Buffer
	writeCSV(&b, []rollup.AgentRow{{Agent: "=cmd|' /C calc'!A0", Source: "openclaw"}})
	if !strings.Contains(b.String(), "'=cmd") {
		t.Errorf("a formula-looking name went out as is: %s", b.String())
	}
}

// Through the daemon: the team filter is resolved with the daemon's agent
// registry, relative dates count in the daemon's zone, and health says in
// one line how it is doing, naming the files with malformed lines.
func TestReportFiltersThroughTheDaemon(t *testing.T) {
	cfg := testConfig(t)
	cfg.OpenClawDirs = []string{traps}
	cfg.PollInterval = 100 * time.Millisecond
	cfg.Agents = []Agent{{ID: "main", Team: "ops"}}
	cfg.TZ = "Asia/Tokyo"
	app := startApp(t, cfg)
	env := map[string]string{"FLEETMETER_DATA_DIR": cfg.DataDir, "FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}
	for deadline := time.Now().Add(20 * time.Second); app.ingest.Status().Added < 10 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	code, out, stderr := cli(t, env, "report", "agent", "--team", "ops")
	if code != 0 || !strings.Contains(out, "Usage by agent · all days · Asia/Tokyo · team ops") || !strings.Contains(out, "main ") {
		t.Errorf("team ops: exit %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr := cli(t, env, "report", "agent", "--team", "nobody"); code != exitUsage || !strings.Contains(stderr, `team "nobody": no agent of the registry has it (teams: ops)`) {
		t.Errorf("unknown team: exit %d %s", code, stderr)
	}
	code, out, _ = cli(t, env, "report", "model", "--json", "--model", "claude-sonnet-4-6", "--since", "3650d")
	rep, err := rollup.DecodeReport("model", []byte(out))
	if code != 0 || err != nil || rep.Totals.Messages != 6 || rep.TZ != "Asia/Tokyo" {
		t.Errorf("model filter with a relative date: exit %d %v %+v", code, err, rep.Totals)
	}
	// Health, once the background count has caught up.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, out, _ = cli(t, env, "health")
		if strings.Contains(out, "10 calls") || time.Now().After(deadline) {
			break
		}
	}
	first, _, _ := strings.Cut(out, "\n")
	if code != 0 || !strings.HasPrefix(first, "ok: 9 files, 10 calls, last step ") || !strings.HasSuffix(first, "s ago") {
		t.Errorf("health: exit %d %q", code, out)
	}
	if !strings.Contains(out, "malformed lines: 5 in "+filepath.Join(traps, "agents/main/sessions/s-bad.jsonl")) {
		t.Errorf("health does not name the file with malformed lines:\n%s", out)
	}
	if code, out, _ = cli(t, env, "health", "--json"); code != 0 || !strings.Contains(out, `"malformed_files": [`) {
		t.Errorf("health --json: exit %d", code)
	}
}

// A change of zone recuts the rollups at start, and says so.
func TestZoneChangeRecutIsLogged(t *testing.T) {
	cfg := testConfig(t)
	app, err := New(cfg, newLogger(Config{LogLevel: "error", LogFormat: "text"}, os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	app.Close()
	cfg.TZ = "Europe/Berlin"
	var log bytes.Buffer
	app, err = New(cfg, newLogger(Config{LogLevel: "info", LogFormat: "text"}, &log))
	if err != nil {
		t.Fatal(err)
	}
	app.Close()
	if !strings.Contains(log.String(), `msg="rollups recut for a zone change" from=UTC to=Europe/Berlin took=`) {
		t.Errorf("log:\n%s", log.String())
	}
}

// `fleetmeter config` shows the alerting defaults in force, each marked,
// and what it prints, saved as the config file, gives the same settings.
func TestConfigShowsAlertingDefaults(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "fleetmeter.toml")
	os.WriteFile(file, []byte(`poll_interval = "3s"
[alerting]
notify = ["ops"]
[[notifiers]]
name = "ops"
url = "json+http://127.0.0.1:9/hook?token=s3cr3t"
[[budgets]]
name = "day"
period = "day"
amount_usd = 50
[[alerts]]
name = "loop"
type = "runaway"
[[alerts]]
name = "cpu"
type = "host"
metric = "cpu"
threshold = 90
`), 0o600)
	env := map[string]string{"FLEETMETER_CONFIG": file, "FLEETMETER_RUNTIME_DIR": shortTempDir(t)}
	code, out, stderr := cli(t, env, "config", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	marked := func(key string) bool {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), key+" = ") {
				return strings.HasSuffix(l, "  # default")
			}
		}
		t.Errorf("no %s in:\n%s", key, out)
		return false
	}
	for _, k := range []string{"interval", "attempts", "tiers", "factor", "min_usd_per_hour", "baseline", "for", "scope", "sample_interval", "ledger_days"} {
		if !marked(k) {
			t.Errorf("%s is not marked a default:\n%s", k, out)
		}
	}
	for _, k := range []string{"poll_interval", "data_dir", "amount_usd", "threshold", "metric"} {
		if marked(k) {
			t.Errorf("%s, set, is marked a default", k)
		}
	}
	for _, want := range []string{"factor = 5.0", "min_usd_per_hour = 1.0", "tiers = [50.0, 80.0, 100.0]", `ui_url = "http://127.0.0.1:8767/alerts"`} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cr3t") || strings.Contains(out, "gateway_cpu") || strings.Contains(out, "opt-in") {
		t.Errorf("a secret, a key of another rule type or the no-rules line:\n%s", out)
	}
	// Saved as the config file (receiver URL unmasked), it means the same.
	saved := strings.Replace(out, `url = "json+http://127.0.0.1:9/***"`, `url = "json+http://127.0.0.1:9/hook?token=s3cr3t"`, 1)
	os.WriteFile(file, []byte(saved), 0o600)
	code, again, stderr := cli(t, env, "config", "--data-dir", dir)
	unmark := func(s string) string { return strings.ReplaceAll(s, "  # default", "") }
	if code != 0 || unmark(again) != unmark(out) {
		t.Errorf("round trip: exit %d %s\n%s\nwant\n%s", code, stderr, again, out)
	}
	// No rule: nothing defaults to a threshold, and it says so.
	if code, out, stderr := cli(t, nil, "config", "--data-dir", dir); !strings.Contains(out, "alerting is opt-in") || strings.Contains(out, "\n[[alerts]]") {
		t.Errorf("without rules: exit %d %s\n%s", code, stderr, out)
	}
}

// A command that writes the database while the daemon holds it says that
// a daemon runs (its version), what to use instead and how to stop it,
// in one line, exit 1; the advice to stop it is given once (before,
// compact and rollup rebuild gave it twice).
func TestWritersWhileTheDaemonRuns(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.RuntimeDir = t.TempDir(), shortTempDir(t)
	cfg.OpenClawDirs = []string{traps}
	cfg.Listen = "127.0.0.1:0"
	runDaemon(t, cfg)
	env := map[string]string{"FLEETMETER_DATA_DIR": cfg.DataDir, "FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}
	for _, tc := range []struct {
		args    []string
		instead string
	}{
		{[]string{"ingest", "--once", "--openclaw-dir", traps}, "its reports are current (fleetmeter report daily"},
		{[]string{"rollup", "rebuild"}, "its own rollups are kept up to date as it ingests; or stop the daemon"},
		{[]string{"compact"}, "holds " + cfg.DBPath() + ": stop the daemon"},
	} {
		code, _, stderr := cli(t, env, tc.args...)
		if code != 1 || !strings.Contains(stderr, "a fleetmeter daemon is running (fleetmeter "+version()) || !strings.Contains(stderr, tc.instead) ||
			strings.Count(stderr, "stop the daemon") != 1 || strings.Count(stderr, "systemctl stop") != 1 || !strings.Contains(stderr, "stop the daemon (sudo systemctl stop fleetmeter, or end its fleetmeter serve), run this again, then start it again") ||
			strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d %q", tc.args, code, stderr)
		}
	}
}

// backup keeps an existing file unless --force, writes a dated file into a
// directory, and never overwrites the database itself.
func TestBackupTargets(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{"FLEETMETER_DATA_DIR": dataDir}
	if code, _, stderr := cli(t, env, "ingest", "--once", "--openclaw-dir", traps); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	records := func(path string) int {
		t.Helper()
		db, err := storage.Open(path, storage.Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("%s does not open: %v", path, err)
		}
		defer db.Close()
		st, _ := db.Stats()
		return st.LedgerRecords
	}
	dir := t.TempDir()
	code, out, stderr := cli(t, env, "backup", dir)
	made, _ := filepath.Glob(filepath.Join(dir, "fleetmeter-*.db"))
	if code != 0 || len(made) != 1 || !strings.Contains(out, made[0]) || records(made[0]) != 10 {
		t.Fatalf("backup into a directory: exit %d %q %q, made %q", code, out, stderr, made)
	}
	file := filepath.Join(dir, "keep.db")
	os.WriteFile(file, []byte("precious"), 0o600)
	if code, _, stderr := cli(t, env, "backup", file); code != exitUsage || !strings.Contains(stderr, "the file exists; --force replaces it") {
		t.Errorf("backup over a file: exit %d %q", code, stderr)
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Errorf("the existing file was changed")
	}
	if code, _, stderr := cli(t, env, "backup", file, "--force"); code != 0 || records(file) != 10 {
		t.Errorf("backup --force: exit %d %q", code, stderr)
	}
	if code, _, stderr := cli(t, env, "backup", filepath.Join(dataDir, storage.FileName), "--force"); code != exitUsage || !strings.Contains(stderr, "the database itself") {
		t.Errorf("backup onto the database: exit %d %q", code, stderr)
	}
	if code, _, stderr := cli(t, env, "backup", filepath.Join(dir, "nowhere")+"/"); code != exitUsage || !strings.Contains(stderr, "no such directory") {
		t.Errorf("backup into a missing directory: exit %d %q", code, stderr)
	}
	if records(filepath.Join(dataDir, storage.FileName)) != 10 {
		t.Error("the database changed")
	}
}

// Without a release's -ldflags the version comes from the build info: the
// module version of `go install …@vX`, a checkout's pseudo-version, else
// its VCS commit; "dev" only when nothing is known.
func TestVersionFromBuildInfo(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		ldflags string
		bi      *debug.BuildInfo
		want    string
	}{
		{"1.4.0", &debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}}, "1.4.0"},
		{"dev", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, "v1.2.0"},
		{"dev", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261130093000-cb066ad549e4+dirty"}}, "v0.0.0-20261130093000-cb066ad549e4+dirty"},
		{"dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", "cb066ad549e4a91ab80de1680ffca295e2ba7db2", "vcs.modified", "true")}, "dev+cb066ad549e4.modified"},
		{"dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", "cb066ad549e4a91ab80de1680ffca295e2ba7db2")}, "dev+cb066ad549e4"},
		{"dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"dev", nil, "dev"},
	} {
		if got := versionFrom(tc.ldflags, tc.bi); got != tc.want {
			t.Errorf("versionFrom(%q, %+v) = %q, want %q", tc.ldflags, tc.bi, got, tc.want)
		}
	}
	// This test binary's own: the same rule, so never "dev" when its
	// build info knows better.
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info")
	}
	if _, out, _ := cli(t, nil, "version"); !strings.HasPrefix(out, "fleetmeter "+versionFrom("dev", bi)+"\n") {
		t.Errorf("version says %q", out)
	}
}

// A bad value names where it came from: the flag, the variable or the
// config file (and its key); a config file's unknown key gets the nearest
// known one. Before, every one said "config: tz …".
func TestBadValueNamesItsSource(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "fleetmeter.toml")
	os.WriteFile(conf, []byte("tz = \"Mars/Base\"\n"), 0o600)
	typo := filepath.Join(dir, "typo.toml")
	os.WriteFile(typo, []byte("[retention]\nledger_dayz = 30\n"), 0o600)
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--tz", "Mars/Base"}, `fleetmeter report: --tz "Mars/Base" is not an IANA zone name`},
		{[]string{"FLEETMETER_TZ=Mars/Base"}, nil, `fleetmeter report: FLEETMETER_TZ "Mars/Base" is not an IANA zone name`},
		{nil, []string{"--config", conf}, `fleetmeter report: config file ` + conf + `: tz "Mars/Base" is not an IANA zone name`},
		{nil, []string{"--poll-interval", "1ms"}, ""}, // not a report flag: the flag package's own error
		{nil, []string{"--config", typo}, "unknown key retention.ledger_dayz (did you mean retention.ledger_days?)"},
	} {
		code, _, stderr := runBinEnv(t, bin, tc.env, 30*time.Second, append([]string{"report", "daily", "--data-dir", dir}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "config: ") {
			t.Errorf("%v %v: exit %d %q, want %d and %q", tc.env, tc.args, code, stderr, exitUsage, tc.want)
		}
	}
	// A serve flag checked by Validate.
	code, _, stderr := runBin(t, bin, 30*time.Second, "serve", "--data-dir", dir, "--poll-interval", "1ms")
	if code != exitUsage || !strings.Contains(stderr, "--poll-interval 1ms is below 100ms") {
		t.Errorf("serve --poll-interval 1ms: exit %d %q", code, stderr)
	}
}
