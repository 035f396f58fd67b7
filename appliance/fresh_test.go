package appliance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `health` (so /api/status) counts what the database holds: calls stored
// after the daemon counted last are in the first answer that comes more
// than the counts' TTL later, however long no one asked. Before, the first
// count (at start, 0 calls) was answered on and on: a poll only started a
// count in the background for the poll after it.
func TestHealthCountsAreCurrent(t *testing.T) {
	cfg := testConfig(t)
	root := t.TempDir()
	cfg.OpenClawDirs = []string{root}
	cfg.PollInterval = 10 * time.Millisecond
	dir := filepath.Join(root, "agents", "main", "sessions")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	app := startAppWith(t, cfg, func(a *App) { a.stats.ttl = 200 * time.Millisecond })
	env := map[string]string{"FLEETMETER_DATA_DIR": cfg.DataDir, "FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}
	// No transcript yet: unhealthy once the first pass has found none
	// (TestNoTranscriptsIsAProblem), healthy before it.
	if code, out, stderr := cli(t, env, "health"); !strings.Contains(out, " 0 calls") || code != 0 && !strings.Contains(stderr, "no transcript files found") {
		t.Fatalf("health before any call: exit %d %q %q", code, out, stderr)
	}
	copyFile(t, filepath.Join(traps, "agents/main/sessions/s-main.jsonl"), filepath.Join(dir, "s-main.jsonl"))
	deadline := time.Now().Add(10 * time.Second)
	for app.ingest.Status().Added == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	added := app.ingest.Status().Added
	time.Sleep(300 * time.Millisecond) // past the TTL, no one asks
	code, out, stderr := cli(t, env, "health")
	if code != 0 || added == 0 || strings.Contains(out, " 0 calls") {
		t.Errorf("health %s after %d calls were stored: exit %d %q %q", 300*time.Millisecond, added, code, out, stderr)
	}
}

// `advise --instance-type T` gives the advice for T while a daemon runs
// (a read: the daemon keeps its own type); a bad type is a bad value.
// Before, the flag was dropped on the way to the daemon ("instance:
// unknown").
func TestAdviseInstanceTypeThroughTheDaemon(t *testing.T) {
	cfg := testConfig(t)
	cfg.NoDiscover = true
	app := startApp(t, cfg)
	env := map[string]string{"FLEETMETER_DATA_DIR": cfg.DataDir, "FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}
	code, out, stderr := cli(t, env, "advise", "--json", "--instance-type", "t3.large")
	var adv struct {
		InstanceType string `json:"instance_type"`
	}
	if err := json.Unmarshal([]byte(out), &adv); code != 0 || err != nil || adv.InstanceType != "t3.large" {
		t.Errorf("advise --instance-type t3.large via the daemon: exit %d, %q %q", code, out, stderr)
	}
	if typ := app.currentInstanceType(); typ != "" {
		t.Errorf("the daemon's own type became %q", typ)
	}
	if code, _, stderr := cli(t, env, "advise", "--instance-type", "t3 large; <b>"); code != 2 || !strings.Contains(stderr, "t3.large") {
		t.Errorf("a bad type: exit %d %q", code, stderr)
	}
}
