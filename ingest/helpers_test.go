package ingest

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/golden")

// openDB opens a real bbolt file in a temp dir and checks its integrity
// when the test ends.
func openDB(t testing.TB) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "fleetmeter.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("database check: %v", err)
		}
		db.Close()
	})
	return db
}

// totals is the short form of a report a test compares.
type totals struct {
	Sums    rollup.Sums
	Skipped storage.Skips
}

func reportOf(t testing.TB, src rollup.Source, kind string) rollup.Report {
	t.Helper()
	rep, err := rollup.Build(src, rollup.Query{Kind: kind, Since: rollup.MinDay, Until: rollup.MaxDay})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func totalsOf(t testing.TB, src rollup.Source) totals {
	rep := reportOf(t, src, "daily")
	return totals{rep.Totals, rep.Skipped}
}

// scanDirs reads OpenClaw dirs once into a tally, as `report --openclaw-dir` does.
func scanDirs(t testing.TB, dirs ...string) *rollup.Tally {
	t.Helper()
	return scanWith(t, Config{OpenClawDirs: dirs})
}

// scanWith reads the sources of cfg once into a tally, in report mode.
func scanWith(t testing.TB, cfg Config) *rollup.Tally {
	t.Helper()
	tally := rollup.NewTally(time.UTC)
	cfg.Final = true
	if _, err := New(cfg, tally).Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tally
}

// step runs one ingest step and fails the test on error.
func step(t testing.TB, in *Ingester) StepResult {
	t.Helper()
	res, err := in.Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// ingestTwice copies a fixture tree to a temp dir, points cfg at it with
// set, ingests it into a real database and then polls once more, which must
// read and add nothing. It returns the database and the first step's result.
func ingestTwice(t *testing.T, fixture string, set func(cfg *Config, root string)) (*storage.DB, StepResult) {
	t.Helper()
	root := t.TempDir()
	copyTree(t, fixture, root)
	db := openDB(t)
	var cfg Config
	set(&cfg, root)
	in := New(cfg, db)
	first := step(t, in)
	if res := step(t, in); res.Read != 0 || res.Added != 0 {
		t.Errorf("second step read %d files, added %d; want nothing", res.Read, res.Added)
	}
	return db, first
}

// golden compares got (as indented JSON) with testdata/golden/name.json.
func golden(t *testing.T, name string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != string(b)+"\n" {
		t.Errorf("%s differs from golden file %s:\n got: %s\nwant: %s", name, path, b, want)
	}
}

// sessionsDir makes <root>/agents/<agent>/sessions and returns it.
func sessionsDir(t testing.TB, root, agent string) string {
	t.Helper()
	d := filepath.Join(root, "agents", agent, "sessions")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// assistantLine is an OpenClaw assistant message with usage.
func assistantLine(id, responseID string, tsMillis int64, in, out, cacheRead, cacheWrite int64, cost float64) string {
	m := map[string]any{
		"role": "assistant", "content": []any{map[string]any{"type": "text", "text": "ok"}},
		"api": "anthropic-messages", "provider": "anthropic", "model": "claude-sonnet-4-6",
		"usage": map[string]any{
			"input": in, "output": out, "cacheRead": cacheRead, "cacheWrite": cacheWrite,
			"totalTokens": in + out + cacheRead + cacheWrite,
			"cost":        map[string]any{"total": cost},
		},
		"stopReason": "stop", "timestamp": tsMillis,
	}
	if responseID != "" {
		m["responseId"] = responseID
	}
	b, _ := json.Marshal(map[string]any{
		"type": "message", "id": id, "parentId": nil,
		"timestamp": time.UnixMilli(tsMillis + 500).UTC().Format("2006-01-02T15:04:05.000Z"), "message": m,
	})
	return string(b) + "\n"
}

func headerLine(id string, tsMillis int64) string {
	return `{"type":"session","version":3,"id":"` + id + `","timestamp":"` +
		time.UnixMilli(tsMillis).UTC().Format("2006-01-02T15:04:05.000Z") + `","cwd":"/w"}` + "\n"
}
