package appliance

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/alerts"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// hookServer is a loopback JSON webhook receiver.
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
	status int
}

func newHookServer(t *testing.T, status int) *hookServer {
	h := &hookServer{status: status}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(b))
		h.mu.Unlock()
		w.WriteHeader(h.status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// alertsFixture is a data dir with today's spend and a config with a
// crossed budget, a team budget and a test receiver.
func alertsFixture(t *testing.T, hookURL string) (dir, cfgFile string) {
	dir = t.TempDir()
	db, err := storage.Open(filepath.Join(dir, storage.FileName), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var recs []storage.Usage
	for i, agent := range []string{"alpha", "alpha", "beta"} {
		recs = append(recs, storage.Usage{TS: now.Add(-time.Duration(i+1) * time.Minute).UnixMilli(), Source: storage.SourceOpenClaw,
			Agent: agent, SessionID: "s", Provider: "anthropic", Model: "m", Input: 10, Cost: storage.Cost{Total: 1},
			CostSource: storage.CostTranscript, DedupeKey: string(rune('a' + i))})
	}
	if _, err := db.Apply(&storage.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cfgFile = filepath.Join(dir, "fleetmeter.toml")
	os.WriteFile(cfgFile, []byte(`
[[agents]]
id = "alpha"
team = "growth"

[[notifiers]]
name = "hook"
url = "json+`+hookURL+`/hook/s3cr3t-path"

[[budgets]]
name = "fleet-roll"
period = "rolling"
window = "24h"
amount_usd = 2
notify = ["hook"]

[[budgets]]
name = "growth-month"
scope = "team:growth"
period = "month"
amount_usd = 100
notify = ["hook"]
`), 0o600)
	return dir, cfgFile
}

func TestAlertsCLI(t *testing.T) {
	hook := newHookServer(t, http.StatusOK)
	dir, cfgFile := alertsFixture(t, hook.URL)
	env := map[string]string{"FLEETMETER_CONFIG": cfgFile, "FLEETMETER_DATA_DIR": dir, "FLEETMETER_LISTEN": "127.0.0.1:1"}

	code, out, stderr := cli(t, env, "budget", "check")
	if code != 1 || !strings.Contains(stderr, "1 budget crossed: fleet-roll") || !strings.Contains(out, "fleet-roll") ||
		!strings.Contains(out, "growth-month") || !strings.Contains(out, "$3.00") {
		t.Errorf("budget check: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, stderr = cli(t, env, "alerts", "--json")
	var snap alerts.Snapshot
	if code != 0 || json.Unmarshal([]byte(out), &snap) != nil || len(snap.Rules) != 2 {
		t.Fatalf("alerts --json: exit %d %q %q", code, out, stderr)
	}
	if r := snap.Rules[1]; r.Name != "growth-month" || r.Value != 2 || r.State != alerts.StateFiring || len(r.Instances) != 0 && r.Instances[0].Key != "50%" {
		// $2 of team growth (alpha only) is 2 % of $100: no tier.
		if r.Value != 2 || r.State != alerts.StateOK {
			t.Errorf("team budget %+v", r)
		}
	}
	if len(hook.got()) != 0 {
		t.Errorf("the CLI notified: %q", hook.got())
	}
	code, out, stderr = cli(t, env, "alerts", "test", "fleet-roll")
	if code != 0 || !strings.Contains(out, "hook (json+http://127.0.0.1") || strings.Contains(out+stderr, "s3cr3t") || len(hook.got()) != 1 ||
		!strings.Contains(hook.got()[0], `"event":"test"`) {
		t.Errorf("alerts test: exit %d %q %q, hook got %q", code, out, stderr, hook.got())
	}
	hook.status = http.StatusInternalServerError
	if code, out, stderr = cli(t, env, "alerts", "test", "fleet-roll"); code != 1 || !strings.Contains(out, "failed: webhook answered 500") ||
		strings.Contains(out+stderr, "s3cr3t") {
		t.Errorf("alerts test to a failing receiver: exit %d %q %q", code, out, stderr)
	}
	if code, _, stderr = cli(t, env, "alerts", "test", "nope"); code != 1 || !strings.Contains(stderr, `no such rule: "nope"`) {
		t.Errorf("alerts test of an unknown rule: exit %d %q", code, stderr)
	}
	if code, out, _ = cli(t, env, "config"); code != 0 || strings.Contains(out, "s3cr3t") || !strings.Contains(out, `url = "json+http://127.0.0.1`) {
		t.Errorf("config shows: %s", out)
	}
}

// serve refuses a bad rule, naming it and its field, without the URL's
// secret.
func TestAlertsConfigRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.toml")
	os.WriteFile(file, []byte(`
[[notifiers]]
name = "x"
url = "telegram://123456:s3cr3tT0ken@telegram/?chats=@fleet&bogus=1"
[[budgets]]
name = "day"
period = "day"
amount_usd = -1
[[budgets]]
name = "team"
scope = "team:ghosts"
period = "day"
amount_usd = 1
`), 0o600)
	code, _, stderr := cli(t, map[string]string{"FLEETMETER_CONFIG": file, "FLEETMETER_DATA_DIR": dir}, "serve")
	for _, want := range []string{`budgets[0] "day": amount_usd -1`, `budgets[1] "team": scope "team:ghosts"`, `notifiers[0] "x": url telegram://***@`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code != 2 || strings.Contains(stderr, "s3cr3t") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// The daemon evaluates the rules, notifies, and serves them on
// /api/alerts, /metrics and to the CLI; 5-hour blocks read the same from
// the daemon, the database and the transcripts.
func TestAlertsThroughTheDaemon(t *testing.T) {
	hook := newHookServer(t, http.StatusOK)
	dir, cfgFile := alertsFixture(t, hook.URL)
	cfg := DefaultConfig()
	if err := cfg.loadFile(cfgFile); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.Listen, cfg.NoDiscover = dir, "127.0.0.1:0", true
	cfg.ClaudeDirs = []string{"../ingest/testdata/claude"}
	cfg.PollInterval = 20 * time.Millisecond
	cfg.BrowserLogin = false // plain loopback HTTP below
	cfg.RuntimeDir = shortTempDir(t)
	app := runDaemon(t, cfg)
	env := map[string]string{"FLEETMETER_CONFIG": cfgFile, "FLEETMETER_DATA_DIR": dir, "FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}
	deadline := time.Now().Add(10 * time.Second)
	for (len(hook.got()) == 0 || app.ingest.Status().Added == 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := hook.got(); len(got) != 1 || !strings.Contains(got[0], `"rule":"fleet-roll","type":"budget"`) {
		t.Fatalf("the daemon notified %q", got)
	}
	code, out, stderr := cli(t, env, "alerts")
	if code != 0 || !strings.Contains(out, "fleet-roll") || !strings.Contains(out, "firing") {
		t.Errorf("alerts via the daemon: exit %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr := cli(t, env, "budget", "check"); code != 1 || !strings.Contains(stderr, "crossed: fleet-roll") {
		t.Errorf("budget check via the daemon: exit %d %q", code, stderr)
	}
	base := "http://" + app.Addr().String()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`fleetmeter_alert_state{rule="fleet-roll",type="budget"} 2`, `fleetmeter_alerts_firing 3`,
		`fleetmeter_alert_notifications_total{notifier="hook",outcome="delivered"} 1`} {
		if !bytes.Contains(m, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	post := func(client *http.Client, base, body string) (int, string) {
		resp, err := client.Post(base+"/api/alerts", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// With browser_login = false every local account may read over
	// loopback, not change: an agent cannot snooze its own budget alert.
	// Before, this snoozed the rule for a year.
	for _, body := range []string{`{"action":"snooze","rule":"fleet-roll","for":"8760h"}`, `{"action":"ack","rule":"fleet-roll"}`, `{"action":"test","rule":"fleet-roll"}`} {
		if code, got := post(http.DefaultClient, base, body); code != http.StatusForbidden || !strings.Contains(got, "fleetmeter alerts ack|snooze") {
			t.Errorf("%s over loopback without a login or token: %d %s; want 403 saying what to use", body, code, got)
		}
	}
	resp, err = http.Get(base + "/alerts")
	if err != nil {
		t.Fatal(err)
	}
	pageBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if page := string(pageBytes); !strings.Contains(page, `id="alert-readonly"`) || !strings.Contains(page, `data-rule="fleet-roll" disabled`) {
		t.Errorf("the Alerts page offers changes it cannot make:\n%s", page)
	}
	// One budget past its three tiers is one rule firing, its tiers listed
	// highest first, wherever the pages count it.
	page := string(pageBytes)
	i100, i80, i50 := strings.Index(page, "> 100% since"), strings.Index(page, "> 80% since"), strings.Index(page, "> 50% since")
	if i100 < 0 || i100 > i80 || i80 > i50 {
		t.Errorf("the Alerts page lists the tiers at %d (100%%), %d (80%%), %d (50%%); want highest first:\n%s", i100, i80, i50, page)
	}
	if !strings.Contains(page, `<h2>Firing</h2><p class="big bad">1</p>`) || !strings.Contains(page, `title="firing">1</span>`) {
		t.Errorf("the Alerts page does not count one firing rule:\n%s", page)
	}
	var ov struct {
		Alerts    struct{ Firing int }
		Attention []struct{ Text string }
	}
	resp, err = http.Get(base + "/api/overview")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&ov)
	resp.Body.Close()
	if err != nil || ov.Alerts.Firing != 1 || len(ov.Attention) == 0 || ov.Attention[0].Text != "1 alert rule firing: fleet-roll (100% tier)" {
		t.Errorf("the overview counts %d firing, says %+v (%v); want one rule, its 100%% tier", ov.Alerts.Firing, ov.Attention, err)
	}
	if code, body := post(socketClient(cfg.SocketPath()), "http://fleetmeter", `{"action":"dance","rule":"fleet-roll"}`); code != 400 {
		t.Errorf("unknown action through the socket: %d %s", code, body)
	}
	// The socket's permissions decide: the CLI acknowledges and snoozes.
	if code, out, stderr := cli(t, env, "alerts", "ack", "fleet-roll"); code != 0 || !strings.Contains(out, `{"acknowledged":3}`) {
		t.Errorf("alerts ack: exit %d %q %q", code, out, stderr)
	}
	if code, _, stderr := cli(t, env, "alerts", "snooze", "nope", "1h"); code != 2 || !strings.Contains(stderr, "nope") {
		t.Errorf("snooze of an unknown rule: exit %d %q", code, stderr)
	}
	if code, _, stderr := cli(t, env, "alerts", "snooze", "fleet-roll", "soon"); code != 2 || !strings.Contains(stderr, "7d") {
		t.Errorf("snooze for a bad duration: exit %d %q", code, stderr)
	}
	week := time.Now().Add(7 * 24 * time.Hour).UTC().Format("2006-01-02")
	if code, out, stderr := cli(t, env, "alerts", "snooze", "fleet-roll", "7d"); code != 0 || !strings.Contains(out, `"snoozed_until":"`+week) {
		t.Errorf("alerts snooze: exit %d %q %q", code, out, stderr)
	}

	// Blocks: daemon, transcripts, and (below, the daemon stopped) the database agree.
	_, viaDaemon, stderr := cli(t, env, "report", "blocks", "--json")
	_, direct, _ := cli(t, nil, "report", "blocks", "--json", "--claude-dir", "../ingest/testdata/claude")
	var a, b rollup.BlockReport
	if json.Unmarshal([]byte(viaDaemon), &a) != nil || json.Unmarshal([]byte(direct), &b) != nil || len(a.Blocks) == 0 {
		t.Fatalf("blocks: %q %q %q", viaDaemon, direct, stderr)
	}
	if !equalJSON(a, b) {
		t.Errorf("blocks via the daemon differ from the transcripts:\n%s\n%s", viaDaemon, direct)
	}
	if code, out, _ := cli(t, nil, "report", "blocks", "--claude-dir", "../ingest/testdata/claude"); code != 0 || !strings.Contains(out, "Block start") {
		t.Errorf("blocks table: %d %s", code, out)
	}
}

// `budget check` with no budgets configured: nothing is crossed, so exit
// 0 with a line saying there are none (1 means a budget crossed). Before,
// it exited 1.
func TestBudgetCheckWithoutBudgets(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.toml")
	os.WriteFile(conf, []byte("tz = \"UTC\"\n"), 0o600)
	code, out, stderr := runBin(t, bin, 30*time.Second, "budget", "check", "--config", conf, "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "No budgets are configured") || !strings.Contains(out, conf) || stderr != "" {
		t.Errorf("exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = runBin(t, bin, 30*time.Second, "budget", "check", "--json", "--config", conf, "--data-dir", dir)
	if code != 0 || !equalJSON(jsonOf(t, out), map[string]any{"budgets": []any{}, "crossed": []any{}}) {
		t.Errorf("--json: exit %d %s", code, out)
	}
}

func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}
