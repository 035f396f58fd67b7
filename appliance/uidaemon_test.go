package appliance

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
	"github.com/fleetmeter/fleetmeter/storage"
)

// xssAgent is an agent whose name is markup: every page must show it as
// text.
const xssAgent = `<img src=x onerror=alert(1)>`

// seedFleet writes a generated fleet into dataDir: o's ledger, the host
// history of the same days, and the calls of xssAgent (enough to rank in
// every top ten). It returns o's totals.
func seedFleet(t testing.TB, dataDir string, o corpus.FleetOptions) corpus.FleetTotals {
	t.Helper()
	db, err := storage.Open(filepath.Join(dataDir, storage.FileName), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tot, err := corpus.GenerateFleet(o, 20_000, func(records []storage.Usage) error {
		_, err := db.Apply(&storage.Batch{Records: records})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var evil []storage.Usage
	for i := range 40 {
		ts := o.End.Add(-time.Duration(i) * 7 * time.Hour).UnixMilli()
		evil = append(evil, storage.Usage{TS: ts, Source: storage.SourceOpenClaw, Agent: xssAgent, SessionID: xssAgent + " session",
			User: "telegram:" + xssAgent, UserLabel: xssAgent, Channel: "telegram", Provider: "anthropic", Model: "claude-opus-4-6",
			Input: 2_000_000, Output: 40_000, Cost: storage.Cost{Total: 11, Input: 10, Output: 1}, CostSource: storage.CostTable,
			DedupeKey: "evil|" + string(rune('a'+i))})
	}
	if _, err := db.Apply(&storage.Batch{Records: evil}); err != nil {
		t.Fatal(err)
	}
	h := corpus.DefaultHostOptions()
	h.End, h.Days, h.Recent = o.End, o.Days, 6*time.Hour
	if err := corpus.HostHistory(h, db.PutHostSamples); err != nil {
		t.Fatal(err)
	}
	return tot
}

// uiFleet is the fleet the UI tests serve: small enough to generate in a
// second, with every page populated.
func uiFleet(end time.Time) corpus.FleetOptions {
	o := corpus.DefaultFleetOptions()
	o.End, o.Days, o.Calls, o.Agents, o.Users, o.Models = end, 90, 30_000, 12, 48, 6
	return o
}

// uiDaemon runs a daemon over a seeded fleet with the registry of its
// agents (and one planned agent), a daily budget that fires into a
// loopback webhook, and an upstream sync that cannot connect. The browser
// login stays on.
func uiDaemon(t *testing.T) (*App, corpus.FleetOptions) {
	t.Helper()
	hook := newHookServer(t, http.StatusOK)
	cfg := testConfig(t)
	o := uiFleet(time.Now().UTC().Truncate(time.Second))
	seedFleet(t, cfg.DataDir, o)
	var toml strings.Builder
	for _, a := range corpus.FleetAgents(o) {
		toml.WriteString("[[agents]]\nid = \"" + a.ID + "\"\nname = \"" + a.Name + "\"\nteam = \"" + a.Team + "\"\nowner = \"" + a.Owner + "\"\n\n")
	}
	toml.WriteString(`[[agents]]
id = "legal-review"
name = "Contract review"
team = "Legal"

[[notifiers]]
name = "hook"
url = "json+` + hook.URL + `/hook"

[[budgets]]
name = "fleet-day"
period = "rolling"
window = "24h"
amount_usd = 5
notify = ["hook"]
`)
	file := filepath.Join(t.TempDir(), "fleetmeter.toml")
	if err := os.WriteFile(file, []byte(toml.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cfg.loadFile(file); err != nil {
		t.Fatal(err)
	}
	cfg.NoDiscover = true
	// The fleet is seeded into the database; the OpenClaw folder holds one
	// transcript with no call, so the pages show a source with a file (and
	// no "no transcript files found" problem) without changing the totals.
	oc := t.TempDir()
	sessions := filepath.Join(oc, "agents", "main", "sessions")
	if err := os.MkdirAll(sessions, 0o755); err != nil {
		t.Fatal(err)
	}
	header := `{"type":"session","version":3,"id":"ui-empty","timestamp":"2026-11-01T00:00:00.000Z","cwd":"/tmp"}` + "\n"
	if err := os.WriteFile(filepath.Join(sessions, "ui-empty.jsonl"), []byte(header), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.OpenClawDirs = []string{oc}
	cfg.SupabaseDSN = "host=127.0.0.1 port=9 user=u password=Sekr1t-pw dbname=d sslmode=disable binary_parameters=yes connect_timeout=1"
	app := startApp(t, cfg)
	app.Addr()
	return app, o
}
