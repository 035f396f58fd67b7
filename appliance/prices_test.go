package appliance

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/ingest/pricing"
	"github.com/fleetmeter/fleetmeter/rollup"
)

// unpricedFixture writes an OpenClaw dir with two calls: one of a model the
// table knows, one it does not (no cost in the transcript).
func unpricedFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sessions := filepath.Join(dir, "agents", "main", "sessions")
	os.MkdirAll(sessions, 0o755)
	line := func(model, resp string) string {
		return `{"type":"message","timestamp":"2026-04-10T08:00:00.000Z","message":{"role":"assistant","provider":"anthropic","model":"` + model +
			`","usage":{"input":100000,"output":0},"timestamp":1775808000000,"responseId":"` + resp + `"}}` + "\n"
	}
	os.WriteFile(filepath.Join(sessions, "s.jsonl"), []byte(line("claude-sonnet-4-5", "r1")+line("claude-inhouse-1", "r2")), 0o644)
	return dir
}

func dailyTotals(t *testing.T, env map[string]string, args ...string) rollup.Sums {
	t.Helper()
	code, out, stderr := cli(t, env, append([]string{"report", "daily", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	rep, err := rollup.DecodeReport("daily", []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	return rep.Totals
}

// The new user's path: `prices` says a model is unpriced; after adding an
// override, every report from the database shows it priced (the ledger is
// repriced, history included) and `prices` says what changed; a broken
// price file is an error, never ignored; a running daemon that prices with
// another file refuses the command instead of ignoring the flag.
func TestPricesFollowOverrides(t *testing.T) {
	src := unpricedFixture(t)
	data := t.TempDir()
	env := map[string]string{"FLEETMETER_DATA_DIR": data}
	if code, _, stderr := cli(t, env, "ingest", "--once", "--openclaw-dir", src); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	before := dailyTotals(t, env)
	if before.UnpricedMessages != 1 || math.Abs(before.CostUSD-0.3) > 1e-9 {
		t.Fatalf("before the override: %+v, want 1 unpriced call and $0.30", before)
	}

	prices := filepath.Join(t.TempDir(), "prices.json")
	os.WriteFile(prices, []byte(`{"anthropic/claude-inhouse-1": {"input": 2, "output": 8}}`), 0o600)
	after := dailyTotals(t, env, "--prices", prices)
	if after.UnpricedMessages != 0 || math.Abs(after.CostUSD-0.5) > 1e-9 {
		t.Errorf("with the override: %+v, want nothing unpriced and $0.30 + $0.20", after)
	}
	// The ledger itself was repriced: without the flag, the override is
	// gone again and so is the price (history follows both ways).
	if again := dailyTotals(t, env); again.UnpricedMessages != 1 {
		t.Errorf("without the override: %+v, want the call unpriced again", again)
	}
	code, out, stderr := cli(t, env, "prices", "--json", "--prices", prices)
	if code != 0 {
		t.Fatalf("prices: %s", stderr)
	}
	var po pricesOutput
	if err := json.Unmarshal([]byte(out), &po); err != nil {
		t.Fatal(err)
	}
	var inhouse *modelPrice
	for i := range po.Models {
		if po.Models[i].Model == "claude-inhouse-1" {
			inhouse = &po.Models[i]
		}
	}
	if inhouse == nil || inhouse.PricedAs != "anthropic/claude-inhouse-1" || inhouse.UnpricedTokens != 0 || po.PriceFile != prices {
		t.Errorf("prices rows %+v (file %q)", po.Models, po.PriceFile)
	}
	if r := po.LastReprice; r == nil || r.Changed != 1 || len(r.Models) != 1 || r.Models[0].SourceTo != "override" {
		t.Errorf("last reprice %+v, want the one call now priced by the override", r)
	}
	if len(po.Modifiers) == 0 || po.PriceTableDate != pricing.TableDate {
		t.Errorf("modifiers %d, table date %q", len(po.Modifiers), po.PriceTableDate)
	}

	broken := filepath.Join(t.TempDir(), "broken.json")
	os.WriteFile(broken, []byte(`{"anthropic/claude-inhouse-1": {"input": 2,`), 0o600)
	if code, _, stderr := cli(t, env, "report", "daily", "--prices", broken); code != 1 || !strings.Contains(stderr, "invalid price overrides") {
		t.Errorf("broken price file: exit %d %q", code, stderr)
	}

	// A daemon holds the database, pricing without the file.
	cfg := DefaultConfig()
	cfg.DataDir, cfg.OpenClawDirs, cfg.Listen = data, []string{src}, "127.0.0.1:0"
	cfg.RuntimeDir = shortTempDir(t)
	runDaemon(t, cfg)
	denv := map[string]string{"FLEETMETER_DATA_DIR": data, "FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}
	if code, _, stderr := cli(t, denv, "report", "daily", "--prices", prices); code != 1 || !strings.Contains(stderr, "running daemon prices with its own price file") {
		t.Errorf("--prices against a daemon without it: exit %d %q", code, stderr)
	}
	if s := dailyTotals(t, denv); s.UnpricedMessages != 1 {
		t.Errorf("through the daemon: %+v", s)
	}
}

// `prices` against a daemon that prices with a price file of its own says
// that the prices it lists are its own, not the daemon's; given the same
// file, it says nothing.
func TestPricesSayWhenTheDaemonPricesOtherwise(t *testing.T) {
	src := unpricedFixture(t)
	prices := filepath.Join(t.TempDir(), "prices.json")
	os.WriteFile(prices, []byte(`{"anthropic/claude-inhouse-1": {"input": 2, "output": 8}}`), 0o600)
	cfg := DefaultConfig()
	cfg.DataDir, cfg.OpenClawDirs, cfg.Listen, cfg.PriceFile = t.TempDir(), []string{src}, "127.0.0.1:0", prices
	cfg.RuntimeDir = shortTempDir(t)
	runDaemon(t, cfg)
	env := map[string]string{"FLEETMETER_DATA_DIR": cfg.DataDir, "FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}
	warned := func(args ...string) bool {
		t.Helper()
		code, out, stderr := cli(t, env, append([]string{"prices", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("prices %v: exit %d %s", args, code, stderr)
		}
		var po pricesOutput
		if err := json.Unmarshal([]byte(out), &po); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(po.Warnings, func(w string) bool { return strings.Contains(w, "daemon prices with another price file") })
	}
	if !warned() {
		t.Error("prices without the daemon's price file: no warning")
	}
	if warned("--prices", prices) {
		t.Error("prices with the daemon's own price file: warned")
	}
}

// `prices update` takes a feed from a URL (a loopback stand-in for the
// public one) or a file, validates it, keeps it, and reprices the ledger;
// a broken feed changes nothing.
func TestPricesUpdate(t *testing.T) {
	feed, err := os.ReadFile("../ingest/pricing/genaiprices/data.json")
	if err != nil {
		t.Fatal(err)
	}
	// The same feed with claude-inhouse-1 added to Anthropic's models.
	var providers []map[string]any
	json.Unmarshal(feed, &providers)
	for _, p := range providers {
		if p["id"] == "anthropic" {
			p["models"] = append(p["models"].([]any), map[string]any{
				"id": "claude-inhouse-1", "match": map[string]any{"equals": "claude-inhouse-1"},
				"prices": map[string]any{"input_mtok": 4, "output_mtok": 20},
			})
		}
	}
	newer, _ := json.Marshal(providers)
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/broken.json" {
			w.Write([]byte(`[{"id":"x"`))
			return
		}
		w.Write(newer)
	}))
	defer srv.Close()

	src := unpricedFixture(t)
	data := t.TempDir()
	env := map[string]string{"FLEETMETER_DATA_DIR": data}
	if code, _, stderr := cli(t, env, "ingest", "--once", "--openclaw-dir", src); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	if code, _, stderr := cli(t, env, "prices", "update", "--from", srv.URL+"/broken.json"); code != 1 || !strings.Contains(stderr, "invalid price feed") {
		t.Errorf("broken feed: exit %d %q", code, stderr)
	}
	if _, err := os.Stat(pricing.FeedDir(data)); !os.IsNotExist(err) && dailyTotals(t, env).UnpricedMessages != 1 {
		t.Error("a broken feed changed the prices")
	}
	code, out, stderr := cli(t, env, "prices", "update", "--from", srv.URL+"/data.json")
	if code != 0 || !strings.Contains(out, "ledger repriced: 1 of 2 calls changed") {
		t.Fatalf("update: exit %d %q %q", code, out, stderr)
	}
	if s := dailyTotals(t, env); s.UnpricedMessages != 0 || math.Abs(s.CostUSD-0.7) > 1e-9 {
		t.Errorf("after the update: %+v, want $0.30 + $0.40", s)
	}
	code, out, _ = cli(t, env, "prices", "--json")
	var po pricesOutput
	json.Unmarshal([]byte(out), &po)
	if code != 0 || po.PriceTable != srv.URL+"/data.json" || po.PriceTableDate != time.Now().UTC().Format(time.DateOnly) {
		t.Errorf("prices after update: table %q of %q", po.PriceTable, po.PriceTableDate)
	}
	if hits != 2 {
		t.Errorf("%d requests to the feed server, want 2 (nothing fetched on its own)", hits)
	}
}
