package appliance

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/rollup"
)

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// quietListener accepts connections on loopback and counts the bytes
// clients send: the doctor must connect and send nothing.
type quietListener struct {
	ln    net.Listener
	conns atomic.Int64
	bytes atomic.Int64
}

func newQuietListener(t *testing.T) *quietListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	q := &quietListener{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			q.conns.Add(1)
			go func() {
				n, _ := io.Copy(io.Discard, c)
				q.bytes.Add(n)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return q
}

func doctorChecks(t *testing.T, out string) map[string]doctorCheck {
	t.Helper()
	var checks []doctorCheck
	if err := json.Unmarshal([]byte(out), &checks); err != nil {
		t.Fatalf("not JSON (%v):\n%s", err, out)
	}
	m := map[string]doctorCheck{}
	for _, c := range checks {
		m[c.Name] = c
	}
	return m
}

// A broken setup: every problem found, each with its fix; nothing sent.
func TestDoctorFindsProblems(t *testing.T) {
	oc := t.TempDir()
	sessions := filepath.Join(oc, "agents", "main", "sessions")
	os.MkdirAll(sessions, 0o755)
	os.WriteFile(filepath.Join(sessions, "ok.jsonl"), []byte("{}\n"), 0o644)
	os.Symlink(filepath.Join(oc, "gone"), filepath.Join(sessions, "broken.jsonl")) // cannot be opened
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "fleetmeter.toml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
supabase_dsn = "host=127.0.0.1 port=%d user=fleetmeter_sync dbname=postgres password=hunter2 sslmode=disable binary_parameters=yes connect_timeout=3"
[[notifiers]]
name = "hook"
url = "json+http://127.0.0.1:%d/alerts?token=s3cret"
`, closedPort(t), closedPort(t))), 0o600)
	env := map[string]string{"FLEETMETER_CONFIG": cfgFile, "FLEETMETER_DATA_DIR": filepath.Join(dir, "data"),
		"FLEETMETER_OPENCLAW_DIRS": oc, "FLEETMETER_LISTEN": fmt.Sprintf("127.0.0.1:%d", closedPort(t)),
		"FLEETMETER_RUNTIME_DIR": shortTempDir(t)} // no daemon there, whatever runs on this machine
	code, out, stderr := cli(t, env, "doctor", "--json")
	if code != 1 || !strings.Contains(stderr, "checks failed") {
		t.Errorf("exit %d (%s), want 1", code, stderr)
	}
	m := doctorChecks(t, out)
	for name, want := range map[string]struct{ status, detail string }{
		"daemon":        {doctorWarn, "no fleetmeter daemon answers"},
		"sources":       {doctorOK, oc},
		"readable":      {doctorFail, "1 of 2 cannot be read, e.g. " + filepath.Join(sessions, "broken.jsonl")},
		"database":      {doctorWarn, "no database yet"},
		"sync":          {doctorFail, "does not answer"},
		"notifier hook": {doctorFail, "is not reachable"},
		"clock":         {"", "now "},
	} {
		c, ok := m[name]
		if !ok {
			t.Errorf("no check %q in %s", name, out)
			continue
		}
		if want.status != "" && c.Status != want.status || !strings.Contains(c.Detail, want.detail) {
			t.Errorf("%s: %s %q, want %s %q", name, c.Status, c.Detail, want.status, want.detail)
		}
		if c.Status == doctorFail && c.Fix == "" {
			t.Errorf("%s fails without a fix", name)
		}
	}
	if n := strings.Count(m["daemon"].Detail, "daemon answers"); n != 1 {
		t.Errorf("the daemon check says it %d times: %q", n, m["daemon"].Detail)
	}
	for _, secret := range []string{"hunter2", "s3cret"} {
		if strings.Contains(out, secret) {
			t.Errorf("doctor shows a secret %q:\n%s", secret, out)
		}
	}
	// The table form says the same for a person.
	_, table, _ := cli(t, env, "doctor")
	if !strings.Contains(table, "FAIL  readable") || !strings.Contains(table, "fix: sudo fleetmeter install again") {
		t.Errorf("table:\n%s", table)
	}
}

// A sound setup: the daemon runs, sync reaches PostgreSQL, the notifier's
// host takes a connection and receives nothing.
func TestDoctorHealthy(t *testing.T) {
	c, name := migrated(t)
	hook := newQuietListener(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "fleetmeter.toml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("[[notifiers]]\nname = \"hook\"\nurl = \"json+http://%s/alerts\"\n", hook.ln.Addr())), 0o600)
	cfg := DefaultConfig()
	if err := cfg.loadFile(cfgFile); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.OpenClawDirs = []string{"../ingest/testdata/openclaw/traps"}
	cfg.PollInterval = 20 * time.Millisecond
	cfg.Listen = "127.0.0.1:0"
	cfg.SupabaseDSN = c.SyncDSN(name)
	cfg.SyncInterval = time.Second
	cfg.RuntimeDir = shortTempDir(t)
	app := runDaemon(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for app.ingest.Status().LastStep.IsZero() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	env := map[string]string{"FLEETMETER_CONFIG": cfgFile, "FLEETMETER_DATA_DIR": cfg.DataDir, "FLEETMETER_LISTEN": app.Addr().String(),
		"FLEETMETER_RUNTIME_DIR":   cfg.RuntimeDir,
		"FLEETMETER_OPENCLAW_DIRS": "../ingest/testdata/openclaw/traps", "FLEETMETER_SUPABASE_DSN": cfg.SupabaseDSN}
	code, out, stderr := cli(t, env, "doctor", "--json")
	m := doctorChecks(t, out)
	for _, name := range []string{"daemon", "sources", "readable", "daemon reads", "database", "sync", "notifier hook"} {
		if m[name].Status != doctorOK {
			t.Errorf("%s: %s %q (fix %q)", name, m[name].Status, m[name].Detail, m[name].Fix)
		}
	}
	if m["clock"].Status == doctorFail {
		t.Errorf("clock: %+v", m["clock"])
	}
	if code != 0 {
		t.Errorf("exit %d: %s", code, stderr)
	}
	time.Sleep(50 * time.Millisecond)
	if hook.conns.Load() == 0 || hook.bytes.Load() != 0 {
		t.Errorf("the notifier's host got %d connections and %d bytes: want a connection and nothing sent", hook.conns.Load(), hook.bytes.Load())
	}
	// Without the daemon, sync is checked by its own connection.
	d := &doctor{cfg: cfg, getenv: func(string) string { return "" }, now: time.Now}
	if s := d.checkSync(t.Context()); s.Status != doctorOK || !strings.Contains(s.Detail, "upstream schema 1") {
		t.Errorf("direct sync check: %+v", s)
	}
}

func TestNotifierAddr(t *testing.T) {
	for raw, want := range map[string]string{
		"slack://xoxb-1-2@C012345":                "slack.com:443",
		"telegram://123:abc@telegram?chats=1":     "api.telegram.org:443",
		"ntfy://ntfy.example.com/fleet":           "ntfy.example.com:443",
		"json+https://hooks.example.com/x":        "hooks.example.com:443",
		"json+http://127.0.0.1:9000/x":            "127.0.0.1:9000",
		"smtp://u:p@mail.example.com:587/?to=a@b": "mail.example.com:587",
		"weird://x": "",
	} {
		got, _, ok := notifierAddr(raw)
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", raw, got, ok, want)
		}
	}
}

// The doctor finds transcripts where ingest reads them: the
// $CLAUDE_CONFIG_DIR list (a config dir, or a projects/ dir itself),
// $XDG_CONFIG_HOME/claude, $CODEX_HOME, $OPENCLAW_STATE_DIR and the homes'
// own dirs; and it says so in its report, once.
func TestDoctorLooksWhereIngestLooks(t *testing.T) {
	base := t.TempDir()
	put := func(dst, src string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(dst), 0o755)
		os.WriteFile(dst, b, 0o644)
	}
	claudeFile := "../ingest/testdata/claude/projects/-home-ubuntu-web/s2.jsonl"
	codexFile := "../ingest/testdata/codex/sessions/2026/03/11/rollout-2026-03-11T07-00-00-0195aaaa-0000-7000-8000-000000000003.jsonl"
	home := filepath.Join(base, "home")
	put(filepath.Join(home, ".claude", "projects", "p", "a.jsonl"), claudeFile)
	put(filepath.Join(base, "cfgA", "projects", "p", "a.jsonl"), claudeFile)
	put(filepath.Join(base, "cfgB", "projects", "p", "a.jsonl"), claudeFile) // named by its projects/ dir
	put(filepath.Join(base, "xdg", "claude", "projects", "p", "a.jsonl"), claudeFile)
	put(filepath.Join(base, "codexhome", "sessions", "2026", "03", "11", filepath.Base(codexFile)), codexFile)
	put(filepath.Join(base, "oc", "agents", "main", "sessions", "s.jsonl"), "../ingest/testdata/openclaw/traps/agents/main/sessions/s-bad.jsonl")
	env := map[string]string{
		"CLAUDE_CONFIG_DIR":  filepath.Join(base, "cfgA") + ", " + filepath.Join(base, "cfgB", "projects"),
		"XDG_CONFIG_HOME":    filepath.Join(base, "xdg"),
		"CODEX_HOME":         filepath.Join(base, "codexhome"),
		"OPENCLAW_STATE_DIR": filepath.Join(base, "oc"),
	}
	getenv := func(k string) string { return env[k] }
	homes := []string{home}

	cfg := DefaultConfig()
	ic, err := ingestConfig(cfg, newLogger(Config{LogLevel: "error", LogFormat: "text"}, io.Discard), true)
	if err != nil {
		t.Fatal(err)
	}
	ic.Env, ic.Homes = getenv, homes
	in := ingest.New(ic, rollup.NewTally(time.UTC))
	if _, err := in.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, s := range in.Status().Sources {
		want[s.Kind] = append(want[s.Kind], s.Path)
	}
	got := ingestSources(getenv, homes)
	var claudeProjects []string
	for _, c := range got.Claude {
		claudeProjects = append(claudeProjects, filepath.Join(c, "projects"))
	}
	for kind, paths := range map[string][]string{"openclaw": got.OpenClaw, "claude": claudeProjects, "codex": got.Codex} {
		slices.Sort(paths)
		slices.Sort(want[kind])
		if !slices.Equal(paths, want[kind]) {
			t.Errorf("%s: the doctor looks in %q, ingest reads %q", kind, paths, want[kind])
		}
	}
	if len(want["claude"]) != 4 || len(want["codex"]) != 1 || len(want["openclaw"]) != 1 {
		t.Fatalf("the fixture is not what ingest finds: %q", want)
	}
	d := &doctor{cfg: cfg, getenv: getenv, homes: homes, now: time.Now}
	checks := d.checkSources()
	if checks[0].Status != doctorOK || !strings.Contains(checks[0].Detail, filepath.Join(base, "cfgA")) || !strings.Contains(checks[0].Detail, filepath.Join(base, "codexhome")) ||
		checks[1].Status != doctorOK || !strings.Contains(checks[1].Detail, "6 transcript files") {
		t.Errorf("doctor sources: %+v", checks)
	}
}
