package ingest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// scanCodex reads Codex homes once into a tally, as `report --codex-dir` does.
func scanCodex(t testing.TB, dirs ...string) *rollup.Tally {
	t.Helper()
	return scanWith(t, Config{CodexDirs: dirs})
}

// testdata/codex, worked out by hand (input below is uncached: Codex's
// input_tokens minus cached_input_tokens):
//
//	rollout 1 (api, 03-10), cumulative totals (input, cached, output):
//	  c1 first event (1000,200,100): last_token_usage   in 800  cached 200  out 100
//	  c2 (2600,1200,250): diff                          in 600  cached 1000 out 150
//	     the same totals again: a duplicate, not a call
//	  c3 (4000,2400,300): diff (last says output 55)    in 200  cached 1200 out 50  gpt-5.1-codex-mini
//	  c4 (500,0,20): totals went back: last             in 500  cached 0    out 20
//	  c5 (1500,800,60), no last: diff                   in 200  cached 800  out 40
//	rollout 2 (web, 03-10), last_token_usage only:      in 200+100, cached 100+600, out 30+70
//	  and a torn last line (malformed)
//	rollout 3 (originator openclaw): 2 calls skipped as duplicates
//	archived_sessions: a copy of rollout 1: 5 duplicate calls + its repeat
//	rollout 4 (api, 03-11), a fork of rollout 1 replaying its history: 5
//	  duplicate calls + the repeat, then its own call  in 200  cached 800  out 40
//
// 8 calls: input 2800, cache read 4700, output 500; 03-10 has 7 (2600,
// 3900, 460), 03-11 has 1. Skipped: 15 duplicates, 1 malformed.
func TestCodexFixture(t *testing.T) {
	wantSums := callSums(8, 2800, 500, 4700, 0)
	wantDays := map[string]rollup.Sums{"2026-03-10": callSums(7, 2600, 460, 3900, 0), "2026-03-11": callSums(1, 200, 40, 800, 0)}
	wantModels := map[string]rollup.Sums{"gpt-5.2-codex": callSums(5, 1900, 390, 2700, 0), "gpt-5.1-codex-mini": callSums(3, 900, 110, 2000, 0)}
	wantAgents := map[string]int64{"api": 6, "web": 2}
	wantSessions := map[string]int64{"0195aaaa-0000-7000-8000-000000000001": 5, "0195aaaa-0000-7000-8000-000000000002": 2, "0195aaaa-0000-7000-8000-000000000004": 1}
	wantSkips := storage.Skips{Duplicate: 15, Malformed: 1}
	check := func(t *testing.T, src rollup.Source) {
		t.Helper()
		got := totalsOf(t, src)
		if s := tokensOnly(got.Sums); s != wantSums {
			t.Errorf("sums = %+v\nwant   %+v", s, wantSums)
		}
		if got.Skipped != wantSkips {
			t.Errorf("skipped = %+v\nwant      %+v", got.Skipped, wantSkips)
		}
		days := reportOf(t, src, "daily").Rows.([]rollup.DailyRow)
		for _, row := range days {
			if s := tokensOnly(row.Sums); s != wantDays[row.Date] {
				t.Errorf("day %s = %+v, want %+v", row.Date, s, wantDays[row.Date])
			}
		}
		models := reportOf(t, src, "model").Rows.([]rollup.ModelRow)
		for _, row := range models {
			if s := tokensOnly(row.Sums); s != wantModels[row.Model] || row.Provider != "openai" {
				t.Errorf("model %s/%s = %+v, want %+v", row.Provider, row.Model, s, wantModels[row.Model])
			}
		}
		for _, row := range reportOf(t, src, "agent").Rows.([]rollup.AgentRow) {
			if row.Messages != wantAgents[row.Agent] || row.Source != storage.SourceCodex {
				t.Errorf("agent %s (%s) has %d calls, want %d", row.Agent, row.Source, row.Messages, wantAgents[row.Agent])
			}
		}
		sessions := reportOf(t, src, "session").Rows.([]rollup.SessionRow)
		for _, row := range sessions {
			if row.Messages != wantSessions[row.SessionID] {
				t.Errorf("session %s has %d calls, want %d", row.SessionID, row.Messages, wantSessions[row.SessionID])
			}
		}
		if len(days) != 2 || len(models) != 2 || len(sessions) != 3 {
			t.Errorf("%d days, %d models, %d sessions; want 2, 2, 3", len(days), len(models), len(sessions))
		}
	}
	t.Run("report", func(t *testing.T) {
		check(t, scanCodex(t, "testdata/codex"))
	})
	t.Run("ledger", func(t *testing.T) {
		db, res := ingestTwice(t, "testdata/codex", func(cfg *Config, root string) { cfg.CodexDirs = []string{root} })
		if res.Read != 5 || res.Added != 8 {
			t.Errorf("first step read %d files, added %d; want 5, 8", res.Read, res.Added)
		}
		check(t, db)
	})
}

// The running totals live in the file's cursor: a daemon restarted between
// two polls goes on diffing from where it was, and neither recounts the
// history nor loses the next call.
func TestCodexRestartBetweenPolls(t *testing.T) {
	src, err := os.ReadFile("testdata/codex/sessions/2026/03/10/rollout-2026-03-10T09-00-00-0195aaaa-0000-7000-8000-000000000001.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(src), "\n")
	root := t.TempDir()
	path := filepath.Join(root, "sessions", "2026", "03", "10", "rollout-x.jsonl")
	os.MkdirAll(filepath.Dir(path), 0o755)
	db := openDB(t)
	for i, cut := range []int{10, 12, len(lines)} { // after c2 and its repeat, after c3, the end
		prev := 0
		if i > 0 {
			prev = []int{10, 12}[i-1]
		}
		appendFile(t, path, strings.Join(lines[prev:cut], ""))
		step(t, New(Config{CodexDirs: []string{root}}, db)) // a new process each time
	}
	got := totalsOf(t, db)
	if want := callSums(5, 2300, 360, 3200, 0); tokensOnly(got.Sums) != want {
		t.Errorf("sums = %+v\nwant   %+v", tokensOnly(got.Sums), want)
	}
	if got.Skipped.Duplicate != 1 {
		t.Errorf("duplicates = %d, want 1 (the repeated event)", got.Skipped.Duplicate)
	}
	cursors, err := db.Cursors()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range cursors {
		var c fileCursor
		if err := decodeCursor(v, &c); err != nil || c.Codex == nil || !c.Codex.HasTotal || c.Codex.Total.Input != 1500 || c.Codex.Model != "gpt-5.1-codex-mini" {
			t.Errorf("cursor state = %s (%v)", v, err)
		}
	}
}

// A fork that names its parent (forked_from_id) but does not embed the
// parent's session_meta still replays into the parent's keys.
func TestCodexForkWithoutParentMeta(t *testing.T) {
	root := t.TempDir()
	copyTree(t, "testdata/codex/sessions/2026/03/10", filepath.Join(root, "sessions", "2026", "03", "10"))
	src, err := os.ReadFile("testdata/codex/sessions/2026/03/11/rollout-2026-03-11T08-00-00-0195aaaa-0000-7000-8000-000000000004.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(src), "\n")
	fork := lines[0] + strings.Join(lines[2:], "") // drop the embedded parent meta
	os.MkdirAll(filepath.Join(root, "sessions", "2026", "03", "11"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "sessions", "2026", "03", "11", "rollout-fork.jsonl"), []byte(fork), 0o644); err != nil {
		t.Fatal(err)
	}
	got := totalsOf(t, scanCodex(t, root))
	if want := callSums(8, 2800, 500, 4700, 0); tokensOnly(got.Sums) != want {
		t.Errorf("sums = %+v\nwant   %+v", tokensOnly(got.Sums), want)
	}
}

// Discovery reads $CODEX_HOME and ~/.codex; explicit dirs replace it.
func TestCodexDiscovery(t *testing.T) {
	home, other := t.TempDir(), t.TempDir()
	r1 := "testdata/codex/sessions/2026/03/10"
	copyTree(t, r1, filepath.Join(home, ".codex", "sessions", "2026", "03", "10"))
	copyTree(t, "testdata/codex/archived_sessions", filepath.Join(other, "archived_sessions"))
	count := func(cfg Config) int64 {
		tally := rollup.NewTally(time.UTC)
		cfg.Final = true
		if _, err := New(cfg, tally).Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		return totalsOf(t, tally).Sums.Messages
	}
	env := func(k string) string {
		if k == "CODEX_HOME" {
			return other
		}
		return ""
	}
	if n := count(Config{Discover: true, Homes: []string{home}, Env: env}); n != 7 {
		t.Errorf("discovered %d calls, want 7 (rollouts 1 and 2, the archive a copy)", n)
	}
	if n := count(Config{CodexDirs: []string{other}, Discover: true, Homes: []string{home}}); n != 5 {
		t.Errorf("explicit dir gave %d calls, want 5", n)
	}
}

func TestCodexSessionFromName(t *testing.T) {
	for name, want := range map[string]string{
		"rollout-2025-05-07T17-24-21-5973b6c0-94b8-487b-a530-2aeb6098ae0e.jsonl":     "5973b6c0-94b8-487b-a530-2aeb6098ae0e",
		"rollout-2025-05-07T17-24-21-5973b6c0-94b8-487b-a530-2aeb6098ae0e.jsonl.zst": "5973b6c0-94b8-487b-a530-2aeb6098ae0e",
		"short.jsonl": "short",
	} {
		if got := codexSessionFromName(name); got != want {
			t.Errorf("codexSessionFromName(%q) = %q, want %q", name, got, want)
		}
	}
	for line, want := range map[string]string{
		`{"timestamp":"2026-03-10T09:00:00.000Z","type":"response_item","payload":{"type":"message"}}`: "response_item",
		`{"payload":{"type":"token_count"},"type":"event_msg"}`:                                        "", // nested: parse to know
		`{"type":"event_msg","payload":{}}`:                                                            "event_msg",
	} {
		if got, _ := codexType([]byte(line)); string(got) != want {
			t.Errorf("codexType(%s) = %q, want %q", line, got, want)
		}
	}
}

// The generated corpus reads back to the generator's own totals.
func TestCodexCorpus(t *testing.T) {
	dir := t.TempDir()
	exp, err := writeCodexCorpus(dir, 1, 3<<20)
	if err != nil {
		t.Fatal(err)
	}
	tally := scanCodex(t, dir)
	got := totalsOf(t, tally)
	if want := tokensOnly(rollup.SumsOf(exp.Totals)); tokensOnly(got.Sums) != want {
		t.Errorf("sums = %+v\nwant   %+v", tokensOnly(got.Sums), want)
	}
	for _, row := range reportOf(t, tally, "daily").Rows.([]rollup.DailyRow) {
		if w := tokensOnly(rollup.SumsOf(exp.Daily[row.Date])); tokensOnly(row.Sums) != w {
			t.Errorf("%s = %+v\nwant %+v", row.Date, tokensOnly(row.Sums), w)
		}
	}
}

// writeCodexCorpus writes Codex homes' worth of rollouts under dir
// (sessions/YYYY/MM/DD and a few archived copies) until about size bytes,
// deterministically for seed, and returns the totals a reader must find.
// Rollouts carry what Codex writes: session metadata with its long base
// instructions, turn contexts, messages, encrypted reasoning, tool calls and
// their output, and a token_count after each response (sometimes twice).
func writeCodexCorpus(dir string, seed uint64, size int64) (claudeExpected, error) {
	rng := rand.New(rand.NewPCG(seed, 0x636f646578))
	exp := claudeExpected{Daily: map[string]storage.Totals{}}
	text := strings.Repeat("lorem ipsum token cache usage build test deploy ", 2000)
	words := func(n int) string { i := rng.IntN(len(text) - n); return text[i : i+n] }
	start := time.Date(2026, 5, 11, 0, 0, 0, 0, time.UTC)
	models := []string{"gpt-5.2-codex", "gpt-5.2-codex", "gpt-5.1-codex-mini"}
	for n := 0; exp.Bytes < size; n++ {
		t := start.AddDate(0, 0, n%21).Add(time.Duration(rng.IntN(20*3600)) * time.Second)
		id := fmt.Sprintf("0195%04x-%04x-7%03x-8%03x-%012x", n, rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Uint64()&(1<<48-1))
		rel := filepath.Join("sessions", t.Format("2006/01/02"), "rollout-"+t.Format("2006-01-02T15-04-05")+"-"+id+".jsonl")
		cwd := fmt.Sprintf("/home/dev/%s", []string{"api", "web", "infra"}[n%3])
		var b strings.Builder
		w := func(ts time.Time, typ string, payload any) {
			p, _ := json.Marshal(payload)
			fmt.Fprintf(&b, "{\"timestamp\":%q,\"type\":%q,\"payload\":%s}\n", ts.Format("2006-01-02T15:04:05.000Z"), typ, p)
		}
		w(t, "session_meta", map[string]any{"id": id, "timestamp": t.Format(time.RFC3339), "cwd": cwd, "originator": "codex_cli_rs", "cli_version": "0.63.0",
			"source": "cli", "model_provider": "openai", "base_instructions": map[string]string{"text": words(6000)}})
		var total codexUsage
		model := models[rng.IntN(len(models))]
		context := int64(6000 + rng.IntN(10000))
		for range 2 + rng.IntN(10) {
			t = t.Add(time.Duration(30+rng.IntN(300)) * time.Second)
			w(t, "turn_context", map[string]any{"cwd": cwd, "approval_policy": "on-request", "model": model, "effort": "medium", "summary": "auto"})
			w(t, "response_item", map[string]any{"type": "message", "role": "user", "content": []any{map[string]string{"type": "input_text", "text": words(50 + rng.IntN(600))}}})
			for range 1 + rng.IntN(5) {
				t = t.Add(time.Duration(3+rng.IntN(40)) * time.Second)
				w(t, "response_item", map[string]any{"type": "reasoning", "summary": []any{}, "encrypted_content": words(500 + rng.IntN(3000))})
				w(t, "response_item", map[string]any{"type": "function_call", "name": "shell", "arguments": `{"command":["bash","-lc","` + words(40) + `"]}`, "call_id": "call_" + strconv.Itoa(rng.IntN(1e9))})
				last := codexUsage{Input: context, Cached: context - int64(rng.IntN(3000)), Output: int64(20 + rng.IntN(1500))}
				last.Reasoning = last.Output / 3
				last.Total = last.Input + last.Output
				context += last.Output + int64(rng.IntN(4000))
				total = total.plus(last)
				info := map[string]any{"total_token_usage": total.json(), "last_token_usage": last.json(), "model_context_window": 272000}
				w(t, "event_msg", map[string]any{"type": "token_count", "info": info})
				if rng.IntN(4) == 0 { // a rate-limit refresh repeats the event
					w(t.Add(time.Second), "event_msg", map[string]any{"type": "token_count", "info": info, "rate_limits": map[string]any{"primary": map[string]any{"used_percent": 20.5}}})
				}
				w(t.Add(2*time.Second), "response_item", map[string]any{"type": "function_call_output", "call_id": "call_1", "output": words(200 + rng.IntN(8000))})
				day := t.Format("2006-01-02")
				add := storage.Totals{Messages: 1, Input: last.Input - last.Cached, CacheRead: last.Cached, Output: last.Output}
				d := exp.Daily[day]
				d.Add(add)
				exp.Daily[day] = d
				exp.Totals.Add(add)
			}
		}
		paths := []string{rel}
		if rng.IntN(10) == 0 { // archived as a copy: counted once
			paths = append(paths, filepath.Join("archived_sessions", filepath.Base(rel)))
		}
		for _, p := range paths {
			if err := writeCodexFile(filepath.Join(dir, p), b.String()); err != nil {
				return exp, err
			}
			exp.Files++
			exp.Bytes += int64(b.Len())
		}
	}
	return exp, nil
}

func (u codexUsage) json() map[string]int64 {
	return map[string]int64{"input_tokens": u.Input, "cached_input_tokens": u.Cached, "output_tokens": u.Output, "reasoning_output_tokens": u.Reasoning, "total_tokens": u.Total}
}

func writeCodexFile(path, s string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.WriteString(s)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// BenchmarkCodexReader is `report --codex-dir` over a generated corpus of
// FLEETMETER_BENCH_MB (default 100) megabytes; /cat reads the same bytes.
//
//	go test -run '^$' -bench 'CodexReader' -count 6 ./ingest/
func BenchmarkCodexReader(b *testing.B) {
	mb := 100
	if v, err := strconv.Atoi(os.Getenv("FLEETMETER_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("fleetmeter-bench-codex-%d", mb))
	if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
		os.RemoveAll(dir)
		if _, err := writeCodexCorpus(dir, 1, int64(mb)<<20); err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "done"), nil, 0o644)
	}
	files, size := jsonlFiles(dir), jsonlBytes(dir)
	b.Run("report", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			tally := rollup.NewTally(time.UTC)
			if _, err := New(Config{CodexDirs: []string{dir}, Final: true}, tally).Step(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cat", func(b *testing.B) { catFiles(b, files, size) })
}

// Codex's rate-limit windows come from token_count events, those without
// usage included; the newest line wins, whichever rollout holds it.
func TestCodexRateLimits(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "sessions", "2026", "11", "20")
	os.MkdirAll(dir, 0o755)
	ev := func(ts string, primary, secondary float64, resets int64) string {
		return `{"timestamp":"` + ts + `","type":"event_msg","payload":{"type":"token_count","info":null,"rate_limits":{"primary":{"used_percent":` +
			strconv.FormatFloat(primary, 'f', -1, 64) + `,"window_minutes":300,"resets_at":` + strconv.FormatInt(resets, 10) +
			`},"secondary":{"used_percent":` + strconv.FormatFloat(secondary, 'f', -1, 64) + `,"window_minutes":10080}}}}` + "\n"
	}
	meta := func(id string) string {
		return `{"timestamp":"2026-11-20T08:00:00.000Z","type":"session_meta","payload":{"id":"` + id + `","cwd":"/w","originator":"codex_cli_rs"}}` + "\n"
	}
	appendFile(t, filepath.Join(dir, "rollout-2026-11-20T08-00-00-a.jsonl"), meta("a")+ev("2026-11-20T09:00:00.000Z", 10, 50, 1795000000)+ev("2026-11-20T11:00:00.000Z", 35, 61, 1795000000))
	appendFile(t, filepath.Join(dir, "rollout-2026-11-20T08-30-00-b.jsonl"), meta("b")+ev("2026-11-20T10:00:00.000Z", 20, 55, 1795000000))
	in := New(Config{CodexDirs: []string{root}}, openDB(t))
	step(t, in)
	got := in.RateLimits()
	if len(got) != 2 || got[0].Window != "primary" || got[0].UsedPercent != 35 || got[1].UsedPercent != 61 ||
		got[0].ResetsAt.Unix() != 1795000000 || got[0].WindowMinutes != 300 || !got[1].ResetsAt.IsZero() {
		t.Errorf("rate limits %+v, want the 11:00 report: primary 35 %% resetting at 1795000000, secondary 61 %%", got)
	}
}
