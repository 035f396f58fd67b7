package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// cli runs the command line in-process and returns exit code and output.
// Unless env names one, the runtime dir is the test's own: never the
// machine's /run/fleetmeter.
func cli(t testing.TB, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	runtimeDir := env["FLEETMETER_RUNTIME_DIR"]
	if runtimeDir == "" {
		runtimeDir = shortTempDir(t)
	}
	getenv := func(k string) string {
		if k == "FLEETMETER_RUNTIME_DIR" {
			return runtimeDir
		}
		return env[k]
	}
	environ := func() []string {
		var kv []string
		for k, v := range env {
			kv = append(kv, k+"="+v)
		}
		return kv
	}
	code := run(context.Background(), args, &cliEnv{stdout: &out, stderr: &errb, getenv: getenv, environ: environ})
	return code, out.String(), errb.String()
}

func TestCommandLineErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no command", nil, 2, ""},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown report", []string{"report", "hourly", "--openclaw-dir", dir}, 2, `unknown report "hourly"`},
		{"bad flag", []string{"report", "daily", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"bad date", []string{"report", "daily", "--since", "2026-13-01", "--openclaw-dir", dir}, 2, "want YYYY-MM-DD"},
		{"since after until", []string{"report", "daily", "--since", "2026-02-01", "--until", "2026-01-01", "--openclaw-dir", "../ingest/testdata/openclaw/traps"}, 2, "is after"},
		{"bad zone", []string{"report", "daily", "--tz", "Mars/Olympus"}, 2, "not an IANA zone"},
		{"missing dir", []string{"report", "daily", "--openclaw-dir", filepath.Join(dir, "nope")}, 1, "no agents/ folder"},
		{"no database yet", []string{"report", "daily", "--data-dir", filepath.Join(dir, "empty")}, 1, "no fleetmeter daemon answers (tried "},
		{"exposed without token", []string{"serve", "--listen", "0.0.0.0:8767", "--data-dir", dir}, 2, "set an auth token"},
		{"bad poll interval", []string{"serve", "--poll-interval", "1ns", "--data-dir", dir}, 2, "--poll-interval 1ns is below 100ms"},
		{"help", []string{"report", "--help"}, 0, ""},
		{"rollup help", []string{"rollup", "--help"}, 0, ""},
		{"stray argument", []string{"rollup", "rebuild", "extra", "--data-dir", dir}, 2, `unexpected argument "extra"`},
		{"flags after the file", []string{"backup", filepath.Join(dir, "b.db"), "--data-dir", filepath.Join(dir, "none")}, 1, "no database at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := cli(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if !strings.Contains(stderr, tc.msg) {
				t.Errorf("stderr %q does not say %q", stderr, tc.msg)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); tc.code != 0 && n > 2 {
				t.Errorf("error is %d lines, want a short reason", n+1)
			}
		})
	}
}

// `prices` shows which models in the data have no price: here the traps
// fixture's made-up model under a real provider stays unpriced, never
// guessed from a similar name.
func TestPricesListsUnpriced(t *testing.T) {
	dir := t.TempDir()
	sessions := filepath.Join(dir, "agents", "main", "sessions")
	os.MkdirAll(sessions, 0o755)
	line := func(model, resp string) string {
		return `{"type":"message","timestamp":"2026-04-10T08:00:00.000Z","message":{"role":"assistant","provider":"anthropic","model":"` + model +
			`","usage":{"input":100,"output":10},"timestamp":1775808000000,"responseId":"` + resp + `"}}` + "\n"
	}
	os.WriteFile(filepath.Join(sessions, "s.jsonl"), []byte(line("claude-sonnet-4-5", "r1")+line("claude-sonnett-9-typo", "r2")), 0o644)
	code, out, stderr := cli(t, nil, "prices", "--json", "--openclaw-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Models []modelPrice `json:"models"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Models) != 2 {
		t.Fatalf("%v: %s", err, out)
	}
	if m := got.Models[0]; m.Model != "claude-sonnett-9-typo" || m.PerMTok != nil || m.UnpricedTokens != 110 {
		t.Errorf("first row = %+v, want the unpriced typo model with its 110 tokens", m)
	}
	if m := got.Models[1]; m.Model != "claude-sonnet-4-5" || m.PerMTok == nil || m.PerMTok.Input != 3 || m.PerMTok.Output != 15 {
		t.Errorf("second row = %+v, want claude-sonnet-4-5 at $3/$15", m)
	}
	if code, out, _ := cli(t, nil, "prices", "--openclaw-dir", dir); code != 0 || !strings.Contains(out, "UNPRICED") {
		t.Errorf("table: exit %d %q", code, out)
	}
}

func TestConfigLayersAndMasking(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "fleetmeter.toml")
	os.WriteFile(file, []byte("tz = \"Europe/Berlin\"\npoll_interval = \"3s\"\nlisten = \"0.0.0.0:9000\"\n"), 0o600)
	secret := filepath.Join(dir, "token")
	os.WriteFile(secret, []byte("s3cret-token\n"), 0o600)
	env := map[string]string{"FLEETMETER_CONFIG": file, "FLEETMETER_AUTH_TOKEN_FILE": secret, "FLEETMETER_TZ": "Asia/Tokyo"}
	code, out, stderr := cli(t, env, "config", "--data-dir", dir, "--poll-interval", "7s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{`tz = "Asia/Tokyo"`, `poll_interval = "7s"`, `listen = "0.0.0.0:9000"`, `auth_token = "********"`} {
		if !strings.Contains(out, want) {
			t.Errorf("config output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out+stderr, "s3cret") {
		t.Error("the token appears in the output")
	}
	// What `config` prints, saved as a config file, does not pass the
	// placeholder off as a token.
	if code, _, stderr := cli(t, map[string]string{"FLEETMETER_AUTH_TOKEN": "********"}, "config"); code != 2 || !strings.Contains(stderr, "masked placeholder") {
		t.Errorf("masked token accepted: exit %d %q", code, stderr)
	}
	os.WriteFile(file, []byte("tz = \"UTC\"\npoll_intervall = \"3s\"\n"), 0o600)
	if code, _, stderr := cli(t, env, "config"); code != 2 || !strings.Contains(stderr, "unknown key poll_intervall (did you mean poll_interval?)") {
		t.Errorf("typo in config file: exit %d, %q", code, stderr)
	}
}

// startApp runs the daemon in-process until the test ends (then checks
// that it stopped cleanly) and returns once it listens.
func startApp(t *testing.T, cfg Config) *App {
	t.Helper()
	return startAppWith(t, cfg, nil)
}

// startAppWith is startApp with before applied to the App before it runs
// (a setting changed later would race with its goroutines).
func startAppWith(t *testing.T, cfg Config, before func(*App)) *App {
	t.Helper()
	app, err := New(cfg, newLogger(Config{LogLevel: "error", LogFormat: "text"}, os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(app)
	}
	return runApp(t, app)
}

// runApp runs app until the test ends (then checks that Run returned no
// error and closes it), and returns once its listener is bound.
func runApp(t *testing.T, app *App) *App {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		app.Close()
	})
	app.Addr()
	return app
}

// testConfig is the default configuration on the test's own data dir,
// runtime dir and a free loopback port.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RuntimeDir = shortTempDir(t)
	cfg.Listen = "127.0.0.1:0"
	return cfg
}

// buildBinary builds fleetmeter once per test run.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "fleetmeter-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "fleetmeter")
	cmd := exec.Command("go", "build", "-tags", "nomsgpack", "-o", bin, "github.com/fleetmeter/fleetmeter")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// binary is the fleetmeter binary the tests run: this tree's, or the one
// FLEETMETER_TEST_BIN names (a build of an older commit, to show a test
// failed before).
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if b := os.Getenv("FLEETMETER_TEST_BIN"); b != "" {
		return b
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// dbReport opens a data dir's database and returns its daily report.
func dbReport(t *testing.T, dataDir string) rollup.Report {
	t.Helper()
	db, err := storage.Open(filepath.Join(dataDir, storage.FileName), storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := rollup.Build(db, rollup.Query{Kind: "daily", Since: rollup.MinDay, Until: rollup.MaxDay})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
	return rep
}

func sameTotals(t *testing.T, what string, got, want rollup.Report) {
	t.Helper()
	g, w := got.Totals, want.Totals
	if math.Abs(g.CostUSD-w.CostUSD) > 1e-9 {
		t.Errorf("%s: cost %.9f, want %.9f", what, g.CostUSD, w.CostUSD)
	}
	g.CostUSD, w.CostUSD = 0, 0
	if g != w {
		t.Errorf("%s: totals\n%+v\nwant\n%+v", what, g, w)
	}
	if got.Skipped != want.Skipped {
		t.Errorf("%s: skipped %+v, want %+v", what, got.Skipped, want.Skipped)
	}
	gj, _ := json.Marshal(got.Rows)
	wj, _ := json.Marshal(want.Rows)
	if !bytes.Equal(gj, wj) {
		t.Errorf("%s: daily rows differ", what)
	}
}

// A real `fleetmeter ingest --once` is SIGKILLed at random points, at
// least 20 times (FLEETMETER_CRASH_KILLS=100 for the long run), then run to
// the end: the totals equal a clean run's, nothing lost, nothing doubled.
func TestCrashSafety(t *testing.T) {
	bin := binary(t)
	corpusDir := t.TempDir()
	opts := corpus.DefaultOptions()
	opts.SizeBytes = 24 << 20
	exp, err := corpus.Generate(corpusDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ingestCmd := func(dataDir string) *exec.Cmd {
		cmd := exec.Command(bin, "ingest", "--once", "--openclaw-dir", corpusDir, "--data-dir", dataDir, "--log-level", "error")
		// Small batches: many commits for the kills to land between and inside.
		cmd.Env = append(os.Environ(), "FLEETMETER_INGEST_BATCH_BYTES=262144")
		return cmd
	}
	clean := t.TempDir()
	start := time.Now()
	if out, err := ingestCmd(clean).CombinedOutput(); err != nil {
		t.Fatalf("clean run: %v\n%s", err, out)
	}
	cleanDur := time.Since(start)
	t.Logf("clean run: %s for %.1f MB", cleanDur, float64(exp.Files.Bytes)/1e6)
	want := dbReport(t, clean)
	if want.Totals.Messages != exp.Messages || want.Totals.TotalTokens != exp.TotalTokens() {
		t.Fatalf("clean run found %d calls, %d tokens; the corpus has %d, %d",
			want.Totals.Messages, want.Totals.TotalTokens, exp.Messages, exp.TotalTokens())
	}

	want20 := 20
	if n, err := strconv.Atoi(os.Getenv("FLEETMETER_CRASH_KILLS")); err == nil && n > want20 {
		want20 = n
	}
	crashy := t.TempDir()
	rng := rand.New(rand.NewPCG(42, uint64(time.Now().UnixNano())))
	kills := 0
	for i := 0; i < 2*want20 && kills < want20+want20/4; i++ {
		cmd := ingestCmd(crashy)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Each run gets a random slice of a clean run's time, so the kills
		// land all along the way rather than after the work is done.
		time.Sleep(time.Duration(rng.Int64N(int64(cleanDur)/8 + 1)))
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			if err := cmd.Wait(); err != nil {
				kills++ // killed before it finished
			}
		} else {
			cmd.Wait()
		}
	}
	if kills < want20 {
		t.Fatalf("only %d runs were killed mid-way, want %d", kills, want20)
	}
	t.Logf("%d runs killed mid-way", kills)
	if out, err := ingestCmd(crashy).CombinedOutput(); err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	sameTotals(t, fmt.Sprintf("after %d kills", kills), dbReport(t, crashy), want)
}

// A second fleetmeter on the same data dir fails fast with a clear
// message; SIGTERM stops serve cleanly.
func TestSecondInstanceAndShutdown(t *testing.T) {
	bin := binary(t)
	dataDir, oc := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(oc, "agents"), 0o755)
	var serveErr syncBuffer
	serve := exec.Command(bin, "serve", "--data-dir", dataDir, "--openclaw-dir", oc, "--listen", "127.0.0.1:0")
	serve.Env = append(os.Environ(), "FLEETMETER_RUNTIME_DIR="+shortTempDir(t))
	serve.Stderr = &serveErr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve.Process.Kill()
	// Wait for the daemon to hold the file.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(serveErr.String(), "fleetmeter started") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	out, err := exec.Command(bin, "ingest", "--once", "--data-dir", dataDir, "--openclaw-dir", oc).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "locked by another fleetmeter") {
		t.Errorf("second instance: err %v, output %q", err, out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second instance took %s to fail", d)
	}
	serve.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM:\n%s", err, serveErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s of SIGTERM")
	}
	if !strings.Contains(serveErr.String(), "fleetmeter stopped") {
		t.Errorf("no clean stop in the log:\n%s", serveErr.String())
	}
}

// While serve polls, a writer appends lines, sometimes half a line and the
// rest later: the totals end exact.
func TestServeLiveAppends(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "agents", "main", "sessions")
	os.MkdirAll(dir, 0o755)
	cfg := testConfig(t)
	cfg.OpenClawDirs = []string{root}
	cfg.PollInterval = 5 * time.Millisecond
	cfg.Listen = "127.0.0.1:0"
	app, err := New(cfg, newLogger(cfg, os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()

	rng := rand.New(rand.NewPCG(7, 7))
	var wantTokens int64
	files := []*os.File{}
	for i := range 3 {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("s%d.jsonl", i)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.WriteString(`{"type":"session","version":3,"id":"s` + fmt.Sprint(i) + `","timestamp":"2026-04-10T08:00:00.000Z","cwd":"/"}` + "\n")
		files = append(files, f)
	}
	const calls = 300
	for i := range calls {
		in := int64(1 + rng.IntN(1000))
		wantTokens += in
		line := fmt.Sprintf(`{"type":"message","id":"m%d","parentId":null,"timestamp":"2026-04-10T09:%02d:%02d.000Z","message":{"role":"assistant","content":[{"type":"text","text":"%s"}],"provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":%d,"output":0,"cacheRead":0,"cacheWrite":0,"cost":{"total":0.001}},"timestamp":1775811600000,"responseId":"r%d"}}`+"\n",
			i, i/60%60, i%60, strings.Repeat("x", rng.IntN(3000)), in, i)
		f := files[rng.IntN(len(files))]
		cut := rng.IntN(len(line))
		f.WriteString(line[:cut])
		if rng.IntN(4) == 0 {
			time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond) // let a poll see half a line
		}
		f.WriteString(line[cut:])
	}
	deadline := time.Now().Add(20 * time.Second)
	var got rollup.Report
	for time.Now().Before(deadline) {
		got, err = rollup.Build(app.db, rollup.Query{Kind: "daily", Since: rollup.MinDay, Until: rollup.MaxDay})
		if err != nil {
			t.Fatal(err)
		}
		if got.Totals.Messages == calls {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if got.Totals.Messages != calls || got.Totals.InputTokens != wantTokens {
		t.Errorf("got %d calls, %d tokens; want %d, %d", got.Totals.Messages, got.Totals.InputTokens, calls, wantTokens)
	}
	if got.Skipped.Malformed != 0 || got.Skipped.Duplicate != 0 {
		t.Errorf("skipped %+v, want nothing", got.Skipped)
	}
	if err := app.db.Check(); err != nil {
		t.Error(err)
	}
	app.Close()
}

// While serve holds the database, report, advise and health go through
// its API on loopback and print what a direct read prints.
func TestCLIAsksTheDaemon(t *testing.T) {
	cfg := testConfig(t)
	cfg.OpenClawDirs = []string{"../ingest/testdata/openclaw/traps"}
	cfg.PollInterval = 10 * time.Millisecond
	app := startApp(t, cfg)
	env := map[string]string{"FLEETMETER_DATA_DIR": cfg.DataDir, "FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}
	deadline := time.Now().Add(10 * time.Second)
	for app.ingest.Status().Added < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	code, viaDaemon, stderr := cli(t, env, "report", "user", "--json")
	if code != 0 {
		t.Fatalf("report via daemon: exit %d: %s", code, stderr)
	}
	_, direct, _ := cli(t, nil, "report", "user", "--json", "--openclaw-dir", "../ingest/testdata/openclaw/traps")
	rd, _ := rollup.DecodeReport("user", []byte(viaDaemon))
	rr, _ := rollup.DecodeReport("user", []byte(direct))
	if rd.Totals.Messages != 10 || !equalJSON(rd.Rows, rr.Rows) {
		t.Errorf("daemon report differs from direct read:\n%s\n%s", viaDaemon, direct)
	}
	if code, out, stderr := cli(t, env, "report", "weekly"); code != 0 || !strings.Contains(out, "2026-04-06") {
		t.Errorf("weekly table via daemon: exit %d %q %q", code, out, stderr)
	}
	for _, args := range [][]string{{"report", "host", "--json"}, {"advise", "--json"}, {"health", "--json"}} {
		if code, out, stderr := cli(t, env, args...); code != 0 || !json.Valid([]byte(out)) {
			t.Errorf("%v via daemon: exit %d, %q %q", args, code, out, stderr)
		}
	}
	// A hot backup through the daemon opens as a database with the same calls.
	backup := filepath.Join(t.TempDir(), "copy.db")
	if code, _, stderr := cli(t, env, "backup", backup); code != 0 {
		t.Fatalf("backup via daemon: exit %d %q", code, stderr)
	}
	bdb, err := storage.Open(backup, storage.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("backup does not open: %v", err)
	}
	if st, _ := bdb.Stats(); st.LedgerRecords != 10 {
		t.Errorf("backup holds %d records, want 10", st.LedgerRecords)
	}
	bdb.Close()
	// Again: the file is kept, not replaced; a directory gets a dated file.
	if code, _, stderr := cli(t, env, "backup", backup); code != exitUsage || !strings.Contains(stderr, "the file exists; --force replaces it") {
		t.Errorf("backup over a file via daemon: exit %d %q", code, stderr)
	}
	backupDir := t.TempDir()
	if code, out, stderr := cli(t, env, "backup", backupDir); code != 0 || !strings.Contains(out, filepath.Join(backupDir, "fleetmeter-")) {
		t.Errorf("backup into a directory via daemon: exit %d %q %q", code, out, stderr)
	}
	if code, _, stderr := cli(t, map[string]string{"FLEETMETER_LISTEN": "127.0.0.1:1"}, "health"); code != 1 || !strings.Contains(stderr, "no fleetmeter daemon answers") {
		t.Errorf("health without a daemon: exit %d %q", code, stderr)
	}
	// A browser: nothing without a login, even on loopback; `fleetmeter
	// login` (over the socket) gives a one-time URL that buys a session.
	base := "http://" + app.Addr().String()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	getStatus := func(cookie string) int {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/status", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := getStatus(""); code != http.StatusUnauthorized {
		t.Errorf("status without a login: %d", code)
	}
	code, out, stderr := cli(t, env, "login")
	loginURL := strings.TrimSpace(strings.Split(out, "\n")[0])
	if code != 0 || !strings.HasPrefix(loginURL, base+"/login?token=") {
		t.Fatalf("login: exit %d %q %q", code, out, stderr)
	}
	resp, err := noRedirect.Get(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := strings.Split(resp.Header.Get("Set-Cookie"), ";")[0]
	if resp.StatusCode != http.StatusSeeOther || cookie == "" || getStatus(cookie) != http.StatusOK {
		t.Errorf("login URL: %d, cookie %q", resp.StatusCode, cookie)
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// syncBuffer is a bytes.Buffer a child process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A report in another zone than the database's recuts days from the
// ledger: the cron call at 23:59:59.999 UTC on 04-10 is on 04-11 in Tokyo.
func TestReportInAnotherZone(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{"FLEETMETER_DATA_DIR": dataDir}
	if code, _, stderr := cli(t, env, "ingest", "--once", "--openclaw-dir", "../ingest/testdata/openclaw/traps"); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	day := func(tz string) map[string]int64 {
		_, out, stderr := cli(t, env, "report", "daily", "--json", "--tz", tz)
		rep, err := rollup.DecodeReport("daily", []byte(out))
		if err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
		m := map[string]int64{}
		for _, r := range rep.Rows.([]rollup.DailyRow) {
			m[r.Date] = r.InputTokens
		}
		return m
	}
	utc, tokyo := day("UTC"), day("Asia/Tokyo")
	if utc["2026-04-10"] != 1116 || tokyo["2026-04-11"] < 1000 || tokyo["2026-04-10"] >= utc["2026-04-10"] {
		t.Errorf("UTC %v\nTokyo %v", utc, tokyo)
	}
	var sumU, sumT int64
	for _, v := range utc {
		sumU += v
	}
	for _, v := range tokyo {
		sumT += v
	}
	if sumU != sumT || sumU != 1247 {
		t.Errorf("totals differ by zone: %d vs %d", sumU, sumT)
	}
}
