package appliance

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
)

// serve --demo: a generated 90-day fleet through the real readers, every
// page populated, no login, nothing written outside its temporary dir,
// and calls arriving while it runs.
func TestServeDemo(t *testing.T) {
	realData := t.TempDir()
	var stderr syncBuffer
	env := &cliEnv{stdout: io.Discard, stderr: &stderr, getenv: func(k string) string {
		switch k {
		case "FLEETMETER_DATA_DIR":
			return realData
		case "FLEETMETER_RUNTIME_DIR":
			return t.TempDir()
		}
		return ""
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--demo", "--listen", "127.0.0.1:0"}, env) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve --demo exited %d: %s", code, stderr.String())
		}
		if dir := regexp.MustCompile(`demo fleet in (\S+) `).FindStringSubmatch(stderr.String()); dir == nil {
			t.Error("the demo did not say where its data is")
		} else if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
			t.Errorf("the demo left %s behind", dir[1])
		}
		if entries, _ := os.ReadDir(realData); len(entries) != 0 {
			t.Errorf("the demo wrote into the real data dir: %v", entries)
		}
	}()
	urlRE := regexp.MustCompile(`the demo is at (http://\S+)/ `)
	var base string
	for deadline := time.Now().Add(60 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := urlRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		t.Fatalf("no demo URL: %s", stderr.String())
	}
	getJSON := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(base + path) // no login: the demo's data belongs to no one
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var agents, users, teams, days rollup.Usage
	getJSON("/api/usage?range=90d&group_by=agent", &agents)
	getJSON("/api/usage?range=90d&group_by=user", &users)
	getJSON("/api/usage?range=90d&group_by=team", &teams)
	getJSON("/api/usage?range=90d", &days)
	active := 0
	for _, d := range days.Rows {
		if d.Messages > 0 {
			active++
		}
	}
	if len(agents.Rows) < 20 || len(users.Rows) < 80 || len(teams.Rows) < 5 || active < 85 || days.Totals.CostUSD <= 0 {
		t.Errorf("the demo fleet: %d agents, %d users, %d teams, %d days with calls, $%.2f", len(agents.Rows), len(users.Rows), len(teams.Rows), active, days.Totals.CostUSD)
	}
	var fleet rollup.Fleet
	getJSON("/api/agents?range=30d", &fleet)
	planned := 0
	for _, a := range fleet.Agents {
		if a.Status == rollup.AgentPlanned {
			planned++
		}
	}
	var host rollup.HostSeries
	getJSON("/api/host?range=7d", &host)
	var steal float64
	for _, v := range host.StealPct {
		steal = max(steal, v)
	}
	if planned != 2 || len(host.T) < 1000 || steal < 15 {
		t.Errorf("planned agents %d, host points %d, steal at most %.1f %%", planned, len(host.T), steal)
	}
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "<strong>Demo.</strong>") {
		t.Error("the overview does not say it is a demo")
	}
	// Calls arrive while the demo runs.
	var before rollup.Usage
	getJSON("/api/usage?range=today", &before)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		var now rollup.Usage
		getJSON("/api/usage?range=today", &now)
		if now.Totals.Messages > before.Totals.Messages {
			return
		}
	}
	t.Error("no call arrived in 30 s of demo")
}
