package appliance

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/alerts"
	"github.com/fleetmeter/fleetmeter/host"
	"github.com/fleetmeter/fleetmeter/rollup"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name (-update rewrites it).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s\nwant:\n%s", name, got, want)
	}
}

// widths are the terminals every table is checked at: a wide one and an
// 80-column one (the compact layout).
var widths = []int{160, 80}

// wideFleet writes an OpenClaw state dir whose agents have CJK and emoji
// names, with a model the price table knows, one it does not (unpriced)
// and one whose transcript carries its own cost.
func wideFleet(t *testing.T) string {
	t.Helper()
	state := t.TempDir()
	line := `{"type":"message","timestamp":"%[1]s","message":{"role":"assistant","provider":"%[2]s","model":"%[3]s","usage":{"input":%[4]d,"output":%[5]d,"cacheRead":%[6]d,"cost":{"total":%[7]g}},"timestamp":%[8]d,"responseId":"r%[9]d"}}` + "\n"
	calls := []struct {
		agent, day, provider, model string
		in, out, cache              int64
		cost                        float64
	}{
		{"客服", "2026-11-01", "anthropic", "claude-sonnet-4-6", 120_000, 30_000, 900_000, 0},
		{"客服", "2026-11-02", "mystery", "模型-x", 5_000, 1_000, 0, 0},
		{"🤖-ops", "2026-11-02", "acme", "house-model", 40_000, 2_000, 0, 1.25},
		{"🤖-ops", "2026-11-03", "anthropic", "claude-sonnet-4-6", 2_000_000, 400_000, 0, 0},
	}
	for i, c := range calls {
		dir := filepath.Join(state, "agents", c.agent, "sessions")
		os.MkdirAll(dir, 0o755)
		ts, _ := time.Parse(time.DateOnly, c.day)
		ts = ts.Add(10 * time.Hour)
		f, err := os.OpenFile(filepath.Join(dir, c.agent+"-"+c.day+".jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, line, ts.Format(time.RFC3339Nano), c.provider, c.model, c.in, c.out, c.cache, c.cost, ts.UnixMilli(), i)
		f.Close()
	}
	return state
}

// The tables the CLI prints from transcripts, at two widths, against
// golden files: reports with wide names and an unpriced model, and
// `prices` (the unpriced model first, the transcript-costed one priced).
func TestCLITablesGolden(t *testing.T) {
	state := wideFleet(t)
	for _, width := range widths {
		env := map[string]string{"COLUMNS": fmt.Sprint(width)}
		for _, args := range [][]string{
			{"report", "daily"}, {"report", "agent"}, {"report", "model"}, {"report", "session"}, {"prices"},
		} {
			code, out, stderr := cli(t, env, append(args, "--openclaw-dir", state)...)
			if code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, stderr)
			}
			// The price table's age moves with the clock: not part of the golden file.
			out = regexp.MustCompile(`(?m)^Warning: the price table is \d+ days old.*\n`).ReplaceAllString(out, "")
			golden(t, fmt.Sprintf("tables/%s-%d.txt", strings.Join(args, "-"), width), []byte(out))
		}
	}
	_, out, _ := cli(t, nil, "prices", "--openclaw-dir", state)
	unpriced, transcript := strings.Index(out, "模型-x"), strings.Index(out, "house-model")
	if unpriced < 0 || transcript < 0 || unpriced > transcript || !strings.Contains(out, "the transcript's own cost") || !strings.Contains(out, "Overrides: none.") {
		t.Errorf("prices: the unpriced model first, the transcript-costed one priced, no overrides:\n%s", out)
	}
	prices := filepath.Join(t.TempDir(), "prices.json")
	os.WriteFile(prices, []byte(`{"mystery/模型-x": {"input": 1, "output": 2}}`), 0o600)
	_, out, _ = cli(t, nil, "prices", "--openclaw-dir", state, "--prices", prices)
	if !strings.Contains(out, "Overrides: "+prices+".") || strings.Contains(out, "UNPRICED") {
		t.Errorf("prices with an override file:\n%s", out)
	}
}

// The tables built from the daemon's documents, at two widths: alerts,
// Claude Code's blocks and the audit.
func TestDocumentTablesGolden(t *testing.T) {
	pct := 62.5
	snap := alerts.Snapshot{Rules: []alerts.RuleStatus{
		{Name: "客服-day", Type: "budget", Scope: "agent:客服", State: "firing", Figures: alerts.Figures{Value: 1536.53, Unit: "usd", Summary: "Agent 客服 spent $1,536.53 of its $1,000.00 daily budget.", PercentUsed: &pct}},
		{Name: "🤖 runaway", Type: "runaway", Scope: "host", State: "ok", Figures: alerts.Figures{Value: 0.4, Unit: "usd_per_hour", Summary: "Spend is normal."}},
		{Name: "broken", Type: "host", Scope: "host", State: "ok", Error: "no host samples"},
	}}
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	blocks := rollup.BlockReport{Blocks: []rollup.Block{
		{StartTime: start, Entries: 12, TotalTokens: 1_234_567, CostUSD: 12.5},
		{StartTime: start.Add(5 * time.Hour), IsGap: true},
		{StartTime: start.Add(10 * time.Hour), IsActive: true, Entries: 3, TotalTokens: 40_000, CostUSD: 0.75,
			BurnRate: &rollup.BurnRate{CostPerHour: 0.5}, Projection: &rollup.BlockProjection{TotalTokens: 90_000, TotalCost: 1.9}},
	}}
	audit := newAuditDocument(host.AuditReport{Findings: []host.Finding{
		{ID: "ssh_password_login", Severity: host.SeverityHigh, Status: host.StatusFail, Title: "SSH refuses passwords", Summary: "SSH accepts passwords (パスワード)", Evidence: []string{"/etc/ssh/sshd_config: PasswordAuthentication yes"}, Fix: "Set PasswordAuthentication no."},
		{ID: "fleetmeter_listen", Severity: host.SeverityLow, Status: host.StatusPass, Summary: "listens on loopback only"},
	}}, host.ProfileStandard)
	for _, width := range widths {
		var b bytes.Buffer
		if err := writeAlertsTable(&b, snap, width); err != nil {
			t.Fatal(err)
		}
		golden(t, fmt.Sprintf("tables/alerts-%d.txt", width), b.Bytes())
		b.Reset()
		if err := writeBlocksTable(&b, blocks, time.UTC, width); err != nil {
			t.Fatal(err)
		}
		golden(t, fmt.Sprintf("tables/blocks-%d.txt", width), b.Bytes())
		b.Reset()
		writeAudit(&b, audit, width)
		golden(t, fmt.Sprintf("tables/audit-%d.txt", width), b.Bytes())
	}
}
