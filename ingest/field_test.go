package ingest

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/ingest/pricing"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// Field cases (testdata/field/<case>): small inputs rebuilt from faults
// that users of other usage tools reported, each with totals worked out
// by hand in its expected.json (the first five are the team's shared
// cases, the rest ours; see testdata/field/README.md). Each is checked as a
// one-shot report (the in-memory tally of `report --…-dir`) and as the
// ledger after an ingest into a real database: both must give the
// hand-worked totals, and the same report row for row.

// fieldCase is a case's expected.json.
type fieldCase struct {
	Name    string   `json:"case"`
	Command []string `json:"command"`
	Totals  struct {
		Messages         *int64   `json:"messages"`
		InputTokens      *int64   `json:"input_tokens"`
		OutputTokens     *int64   `json:"output_tokens"`
		CacheReadTokens  *int64   `json:"cache_read_tokens"`
		CacheWriteTokens *int64   `json:"cache_write_tokens"`
		TotalTokens      *int64   `json:"total_tokens"`
		CostUSD          *float64 `json:"cost_usd"`
		UnpricedMessages *int64   `json:"unpriced_messages"`
		UnpricedTokens   *int64   `json:"unpriced_tokens"`
	} `json:"totals"`
	// Optional checks beyond the totals (our own cases).
	Users     map[string]int64     `json:"users"`
	Skipped   map[string]int64     `json:"skipped"`
	Corrected *storage.Corrections `json:"corrected"`
	Reasoning *int64               `json:"reasoning_tokens"`

	dir string
}

// FieldCases lists the cases; the appliance tests run them through a live daemon too.
func loadFieldCases(t testing.TB) []fieldCase {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("testdata", "field", "*", "expected.json"))
	if err != nil || len(dirs) < 14 {
		t.Fatalf("field cases: %d found (%v)", len(dirs), err)
	}
	var out []fieldCase
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var c fieldCase
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		c.dir = filepath.Dir(p)
		out = append(out, c)
	}
	return out
}

// config turns the case's command line into an ingest config (the dirs
// are relative to the case) and returns the report kind.
func (c fieldCase) config(t testing.TB, root string) (Config, string) {
	t.Helper()
	table, err := pricing.LoadTable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Pricer: pricing.NewPricer(table, nil)}
	kind := c.Command[1]
	for i := 2; i < len(c.Command); i++ {
		arg := c.Command[i]
		var dst *[]string
		switch arg {
		case "--openclaw-dir":
			dst = &cfg.OpenClawDirs
		case "--claude-dir":
			dst = &cfg.ClaudeDirs
		case "--codex-dir":
			dst = &cfg.CodexDirs
		case "--json":
			continue
		default:
			t.Fatalf("%s: unexpected argument %q", c.Name, arg)
		}
		i++
		*dst = append(*dst, filepath.Join(root, c.Command[i]))
	}
	return cfg, kind
}

// check compares a report with the hand-worked figures.
func (c fieldCase) check(t *testing.T, what string, rep rollup.Report) {
	t.Helper()
	got := rep.Totals
	ints := []struct {
		name string
		want *int64
		got  int64
	}{
		{"messages", c.Totals.Messages, got.Messages}, {"input_tokens", c.Totals.InputTokens, got.InputTokens},
		{"output_tokens", c.Totals.OutputTokens, got.OutputTokens}, {"cache_read_tokens", c.Totals.CacheReadTokens, got.CacheReadTokens},
		{"cache_write_tokens", c.Totals.CacheWriteTokens, got.CacheWriteTokens}, {"total_tokens", c.Totals.TotalTokens, got.TotalTokens},
		{"unpriced_messages", c.Totals.UnpricedMessages, got.UnpricedMessages}, {"unpriced_tokens", c.Totals.UnpricedTokens, got.UnpricedTokens},
		{"reasoning_tokens", c.Reasoning, got.ReasoningTokens},
	}
	for _, f := range ints {
		if f.want != nil && *f.want != f.got {
			t.Errorf("%s: %s = %d, want %d", what, f.name, f.got, *f.want)
		}
	}
	if w := c.Totals.CostUSD; w != nil && math.Abs(got.CostUSD-*w) > 1e-9+1e-6*math.Abs(*w) {
		t.Errorf("%s: cost_usd = %.9f, want %.9f", what, got.CostUSD, *w)
	}
	if len(c.Skipped) > 0 {
		var skipped map[string]int64
		b, _ := json.Marshal(rep.Skipped)
		json.Unmarshal(b, &skipped)
		for k, v := range c.Skipped {
			if skipped[k] != v {
				t.Errorf("%s: skipped %s = %d, want %d", what, k, skipped[k], v)
			}
		}
	}
	if c.Corrected != nil && rep.Corrected != *c.Corrected {
		t.Errorf("%s: corrected %+v, want %+v", what, rep.Corrected, *c.Corrected)
	}
}

func TestFieldCases(t *testing.T) {
	for _, c := range loadFieldCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			// A copy: the ledger run must not share files with the report run.
			root := t.TempDir()
			copyTree(t, c.dir, root)
			cfg, kind := c.config(t, root)

			cfg.Final = true
			tally := rollupTally()
			in := New(cfg, tally)
			step(t, in)
			direct := reportOf(t, tally, kind)
			c.check(t, "report", direct)

			cfg.Final = false
			db := openDB(t)
			in = New(cfg, db)
			step(t, in)
			if res := step(t, in); res.Added != 0 || res.Read != 0 {
				t.Errorf("a second ingest read %d sources and added %d calls", res.Read, res.Added)
			}
			ledger := reportOf(t, db, kind)
			c.check(t, "ledger", ledger)
			// Row for row the same report, whichever path read the files.
			dj, _ := json.Marshal(direct.Rows)
			lj, _ := json.Marshal(ledger.Rows)
			if string(dj) != string(lj) {
				t.Errorf("report and ledger rows differ:\nreport %s\nledger %s", dj, lj)
			}
			if len(c.Users) > 0 {
				got := map[string]int64{}
				for _, r := range reportOf(t, db, "user").Rows.([]rollup.UserRow) {
					got[r.User] = r.Messages
				}
				for u, n := range c.Users {
					if got[u] != n {
						t.Errorf("user %q: %d calls, want %d (users %v)", u, got[u], n, got)
					}
				}
				if len(got) != len(c.Users) {
					t.Errorf("users %v, want %v", got, c.Users)
				}
			}
			if c.Name == "format-drift" {
				st := in.Status()
				for _, want := range []string{"claude field cache_fetch_input_tokens", "codex type turn_usage"} {
					if st.Unrecognized[want] != 1 {
						t.Errorf("status unrecognized_usage %v: want %q counted once", st.Unrecognized, want)
					}
				}
			}
		})
	}
}

// rollupTally is a report-mode ledger in UTC.
func rollupTally() *rollup.Tally { return rollup.NewTally(time.UTC) }

// A mirror row read before the transcript it mirrors leaves the ledger
// when the transcript arrives, in a later poll: the order in which the
// daemon sees the two readers' files does not change the dollars.
func TestMirrorBeforeItsTranscript(t *testing.T) {
	var c fieldCase
	for _, fc := range loadFieldCases(t) {
		if fc.Name == "openclaw-cli-mirror-cost" {
			c = fc
		}
	}
	root := t.TempDir()
	copyTree(t, c.dir, root)
	cfg, kind := c.config(t, root)
	claude := cfg.ClaudeDirs
	cfg.ClaudeDirs = nil
	db := openDB(t)
	step(t, New(cfg, db))
	before := reportOf(t, db, kind).Totals
	if before.Messages != 2 { // both claude-cli rows, nothing else yet
		t.Fatalf("before the Claude Code transcript: %d calls, want the 2 mirror rows", before.Messages)
	}
	cfg.ClaudeDirs = claude
	in := New(cfg, db)
	step(t, in)
	c.check(t, "after", reportOf(t, db, kind))
	// And the tally agrees, reading everything at once.
	cfg.Final = true
	tally := rollupTally()
	step(t, New(cfg, tally))
	c.check(t, "tally", reportOf(t, tally, kind))
	if s := reportOf(t, db, "session").Rows.([]rollup.SessionRow); len(s) != 2 {
		t.Errorf("%d sessions, want the Claude Code session and the unbound OpenClaw one", len(s))
	}
	if strings.Contains(mustJSON(t, reportOf(t, db, "model").Rows), "claude-cli") == false {
		t.Errorf("the unbound claude-cli row is gone from the model report")
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
