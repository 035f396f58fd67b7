package appliance

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// One rule for money and one for durations, whatever prints them: a CLI
// table, an alert summary (budget check, alerts), the pages and `config`.
// $0.125 is the tie that %.2f rounded to $0.12 and the table to $0.13;
// $1,234.50 needs the separator %.2f left out; $0.0042 is under a cent
// (the table said <$0.01, the pages $0.0042). 168h printed as 168h0m0s.
func TestOneMoneyAndDurationRule(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.Open(filepath.Join(dir, storage.FileName), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tie": "$0.13", "big": "$1,234.50", "tiny": "$0.0042"}
	costs := map[string]float64{"tie": 0.125, "big": 1234.5, "tiny": 0.0042}
	now := time.Now()
	var recs []storage.Usage
	for agent, cost := range costs {
		recs = append(recs, storage.Usage{TS: now.Add(-time.Minute).UnixMilli(), Source: storage.SourceOpenClaw, Agent: agent, SessionID: "s-" + agent,
			Provider: "anthropic", Model: "m", Input: 10, Cost: storage.Cost{Total: cost}, CostSource: storage.CostTranscript, DedupeKey: agent})
	}
	if _, err := db.Apply(&storage.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cfgFile := filepath.Join(dir, "fleetmeter.toml")
	var rules strings.Builder
	for agent := range costs {
		rules.WriteString("[[budgets]]\nname = \"" + agent + "-day\"\nscope = \"agent:" + agent + "\"\nperiod = \"rolling\"\nwindow = \"24h\"\namount_usd = 5000\n\n")
	}
	rules.WriteString("[[alerts]]\nname = \"loop\"\ntype = \"runaway\"\nscope = \"agent:tie\"\n")
	os.WriteFile(cfgFile, []byte(rules.String()), 0o600)
	env := map[string]string{"FLEETMETER_CONFIG": cfgFile, "FLEETMETER_DATA_DIR": dir, "FLEETMETER_RUNTIME_DIR": shortTempDir(t)}

	outputs := map[string]string{}
	for _, args := range [][]string{{"report", "agent"}, {"budget", "check"}, {"alerts"}, {"config"}} {
		code, out, stderr := cli(t, env, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d %s", args, code, stderr)
		}
		outputs[strings.Join(args, " ")] = out
	}
	cfg := DefaultConfig()
	if err := cfg.loadFile(cfgFile); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.RuntimeDir, cfg.NoDiscover = dir, shortTempDir(t), true
	cfg.Listen, cfg.BrowserLogin = "127.0.0.1:0", false
	app := runDaemon(t, cfg)
	// The Alerts page shows the rules as the first round left them: wait
	// for it (it runs at start, beside the listener).
	for deadline := time.Now().Add(10 * time.Second); app.alerts.Snapshot().EvaluatedAt == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no alert round within 10 s of the start")
		}
	}
	for _, p := range []string{"/agents", "/alerts"} {
		resp, err := http.Get("http://" + app.Addr().String() + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		outputs["page "+p] = string(b)
	}
	for agent, w := range want {
		if got := rollup.USD(costs[agent]); got != w {
			t.Errorf("USD(%v) = %s, want %s", costs[agent], got, w)
		}
		for _, where := range []string{"report agent", "budget check", "page /agents"} {
			if !strings.Contains(outputs[where], w) {
				t.Errorf("%s lacks %s for %s:\n%s", where, w, agent, outputs[where])
			}
		}
	}
	for where, out := range outputs {
		if strings.Contains(out, "0m0s") || strings.Contains(out, "h0m") {
			t.Errorf("%s prints a duration as Go does:\n%s", where, out)
		}
	}
	for _, where := range []string{"alerts", "page /alerts"} {
		if !strings.Contains(outputs[where], "168h") {
			t.Errorf("%s does not name the runaway baseline, 168h:\n%s", where, outputs[where])
		}
	}
	if !strings.Contains(outputs["config"], `baseline = "168h"  # default`) || !strings.Contains(outputs["config"], `window = "24h"`) {
		t.Errorf("config:\n%s", outputs["config"])
	}
}
