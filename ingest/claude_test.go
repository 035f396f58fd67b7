package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/valyala/fastjson"
)

// scanClaude reads Claude Code dirs once into a tally, as
// `report --claude-dir` does.
func scanClaude(t testing.TB, dirs ...string) *rollup.Tally {
	t.Helper()
	return scanWith(t, Config{ClaudeDirs: dirs})
}

// tokensOnly is a report's token figures without the cost ones.
func tokensOnly(s rollup.Sums) rollup.Sums {
	s.CostUSD, s.InputCostUSD, s.OutputCostUSD, s.CacheReadCostUSD, s.CacheWriteCost = 0, 0, 0, 0, 0
	s.UnpricedMessages, s.UnpricedTokens = 0, 0
	s.ReasoningTokens, s.ToolsCostUSD = 0, 0 // parts of the figures above, tested apart
	return s
}

func callSums(messages, in, out, cr, cw int64) rollup.Sums {
	return rollup.Sums{Messages: messages, InputTokens: in, OutputTokens: out, CacheReadTokens: cr, CacheWriteTokens: cw, TotalTokens: in + out + cr + cw}
}

// testdata/claude holds one of each Claude Code trap. Worked out by hand:
//
//	call   file                             day    in   out   cache r  cache w (1h)
//	msg_A  app/s1.jsonl (3 streamed lines)  03-10  10    80    1000     200 (50)  largest copy, the last
//	msg_B  app/s1.jsonl                     03-10   4   300    1200       0
//	msg_C  app/s1.jsonl                     03-11   2    40     500    1000 (1000)
//	msg_S1 app/s1/subagents/agent-a1        03-10  30    90       0     400       two streamed lines
//	msg_Q  app/s1/subagents/agent-aside_…   03-10   5    50    2000       0       its replays of msg_A, msg_B count once
//	msg_D  web/s2.jsonl (largest first)     03-11   7   120       0       0
//	msg_E  web/s2.jsonl (costUSD 0.12)      03-11 100    50      10      25
//	req_F  web/s2.jsonl (no message id)     03-11   1     2       0       0
//	msg_G  web/s2.jsonl (progress line)     03-11   3     9       0       0
//
// 9 calls: input 162, output 741, cache read 4710, cache write 1625; 03-10
// has 4 calls (49, 520, 4200, 600), 03-11 has 5 (113, 221, 510, 1025).
// Skipped: 4 duplicates (2 later, smaller msg_D lines; the 2 replays), 2
// not model calls (<synthetic>, API error), 1 zero usage, 1 malformed (a
// torn line). msg_A's and msg_S1's growing copies replace, not skip.
// Only msg_E has a cost (the transcript's $0.12): 8 unpriced calls, 7053
// tokens, with the default pricer.
func TestClaudeFixture(t *testing.T) {
	wantSums := callSums(9, 162, 741, 4710, 1625)
	wantDays := map[string]rollup.Sums{"2026-03-10": callSums(4, 49, 520, 4200, 600), "2026-03-11": callSums(5, 113, 221, 510, 1025)}
	wantAgents := map[string]rollup.Sums{"app": callSums(5, 51, 560, 4700, 1600), "-home-ubuntu-web": callSums(4, 111, 181, 10, 25)}
	wantSessions := map[string]int64{"s1": 5, "s2": 4}
	wantSkips := storage.Skips{Duplicate: 4, NotModelCall: 2, ZeroUsage: 1, Malformed: 1}
	check := func(t *testing.T, src rollup.Source) {
		t.Helper()
		got := totalsOf(t, src)
		if s := tokensOnly(got.Sums); s != wantSums {
			t.Errorf("sums = %+v\nwant   %+v", s, wantSums)
		}
		if math.Abs(got.Sums.CostUSD-0.12) > 1e-9 || got.Sums.UnpricedMessages != 8 || got.Sums.UnpricedTokens != 7053 {
			t.Errorf("cost = %.9f, unpriced %d calls %d tokens; want 0.12, 8, 7053", got.Sums.CostUSD, got.Sums.UnpricedMessages, got.Sums.UnpricedTokens)
		}
		if got.Skipped != wantSkips {
			t.Errorf("skipped = %+v\nwant      %+v", got.Skipped, wantSkips)
		}
		for _, row := range reportOf(t, src, "daily").Rows.([]rollup.DailyRow) {
			if s := tokensOnly(row.Sums); s != wantDays[row.Date] {
				t.Errorf("day %s = %+v, want %+v", row.Date, s, wantDays[row.Date])
			}
		}
		agents := reportOf(t, src, "agent").Rows.([]rollup.AgentRow)
		if len(agents) != len(wantAgents) {
			t.Errorf("agents = %+v, want %v", agents, wantAgents)
		}
		for _, row := range agents {
			if s := tokensOnly(row.Sums); s != wantAgents[row.Agent] || row.Source != storage.SourceClaude {
				t.Errorf("agent %s (%s) = %+v, want %+v", row.Agent, row.Source, s, wantAgents[row.Agent])
			}
		}
		sessions := reportOf(t, src, "session").Rows.([]rollup.SessionRow)
		for _, row := range sessions {
			if row.Messages != wantSessions[row.SessionID] {
				t.Errorf("session %s has %d calls, want %d", row.SessionID, row.Messages, wantSessions[row.SessionID])
			}
		}
		if len(sessions) != len(wantSessions) {
			t.Errorf("%d sessions, want %d", len(sessions), len(wantSessions))
		}
	}
	t.Run("report", func(t *testing.T) {
		check(t, scanClaude(t, "testdata/claude"))
	})
	t.Run("ledger", func(t *testing.T) {
		db, res := ingestTwice(t, "testdata/claude", func(cfg *Config, root string) { cfg.ClaudeDirs = []string{root} })
		if res.Read != 4 || res.Added != 9 {
			t.Errorf("first step read %d files, added %d; want 4, 9", res.Read, res.Added)
		}
		check(t, db)
	})
}

// A streamed response counts as its largest copy, whatever order the
// copies are written in and whether they arrive in one poll or several.
func TestClaudeStreamedCopiesAnyOrder(t *testing.T) {
	outs := []int64{5, 80, 20}
	perms := [][]int{{0, 2, 1}, {0, 1, 2}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, p := range perms {
		name := fmt.Sprint(outs[p[0]], outs[p[1]], outs[p[2]])
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			path := filepath.Join(root, "projects", "-w", "s.jsonl")
			os.MkdirAll(filepath.Dir(path), 0o755)
			db := openDB(t)
			in := New(Config{ClaudeDirs: []string{root}}, db)
			for i, k := range p {
				ts := time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC).Add(time.Duration(i) * 600 * time.Millisecond)
				appendFile(t, path, claudeTestLine("msg_1", "req_1", ts, 3, outs[k], 100, 10, false))
				step(t, in) // one poll per copy: later copies replace in the ledger
			}
			tally := scanClaude(t, root)
			for _, src := range []rollup.Source{db, tally} {
				got := totalsOf(t, src)
				if want := callSums(1, 3, 80, 100, 10); tokensOnly(got.Sums) != want {
					t.Errorf("sums = %+v, want %+v", got.Sums, want)
				}
				// The call keeps its first copy's time, even across midnight.
				rows := reportOf(t, src, "daily").Rows.([]rollup.DailyRow)
				if len(rows) != 1 || rows[0].Date != "2026-03-10" {
					t.Errorf("days = %+v, want the first copy's 2026-03-10", rows)
				}
			}
		})
	}
}

// claudeTestLine is an assistant line as Claude Code writes it.
func claudeTestLine(msgID, requestID string, ts time.Time, in, out, cacheRead, cacheWrite int64, sidechain bool) string {
	b, _ := json.Marshal(map[string]any{
		"parentUuid": "p", "isSidechain": sidechain, "userType": "external", "cwd": "/w", "sessionId": "s", "version": "2.0.14",
		"message": map[string]any{"id": msgID, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
			"content": []any{map[string]any{"type": "text", "text": "x"}},
			"usage":   map[string]any{"input_tokens": in, "output_tokens": out, "cache_read_input_tokens": cacheRead, "cache_creation_input_tokens": cacheWrite}},
		"requestId": requestID, "type": "assistant", "uuid": msgID + requestID + ts.String(), "timestamp": ts.UTC().Format(time.RFC3339Nano),
	})
	return string(b) + "\n"
}

func TestClaudeRecord(t *testing.T) {
	const ts = `"timestamp":"2026-03-10T09:00:00.000Z"`
	tests := []struct {
		name    string
		line    string
		outcome claudeOutcome
		u       storage.Usage // checked for claudeOK (Source, Provider, Cost not compared)
	}{
		{"5m/1h split", `{` + ts + `,"requestId":"r","message":{"id":"m","model":"claude-opus-4-1","usage":{"input_tokens":3,"output_tokens":7,"cache_read_input_tokens":11,"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200}}}}`,
			claudeOK, storage.Usage{TS: 1773133200000, Model: "claude-opus-4-1", Input: 3, Output: 7, CacheRead: 11, CacheWrite: 300, CacheWrite1h: 200, DedupeKey: "claude|m"}},
		{"split only", `{` + ts + `,"message":{"id":"m","model":"x","usage":{"input_tokens":1,"output_tokens":1,"cache_creation":{"ephemeral_5m_input_tokens":40,"ephemeral_1h_input_tokens":2}}}}`,
			claudeOK, storage.Usage{TS: 1773133200000, Model: "x", Input: 1, Output: 1, CacheWrite: 42, CacheWrite1h: 2, DedupeKey: "claude|m"}},
		{"1h part capped at the total", `{` + ts + `,"message":{"id":"m","model":"x","usage":{"output_tokens":1,"cache_creation_input_tokens":5,"cache_creation":{"ephemeral_1h_input_tokens":9}}}}`,
			claudeOK, storage.Usage{TS: 1773133200000, Model: "x", Output: 1, CacheWrite: 5, CacheWrite1h: 5, DedupeKey: "claude|m"}},
		{"sidechain replay keys like its parent", `{` + ts + `,"isSidechain":true,"requestId":"req_new","message":{"id":"msg_parent","model":"x","usage":{"input_tokens":1}}}`,
			claudeOK, storage.Usage{TS: 1773133200000, Model: "x", Input: 1, Sidechain: true, DedupeKey: "claude|msg_parent"}},
		{"no message id: request id", `{` + ts + `,"requestId":"r9","message":{"model":"x","usage":{"input_tokens":1}}}`,
			claudeOK, storage.Usage{TS: 1773133200000, Model: "x", Input: 1, DedupeKey: "claude|req|r9"}},
		{"no ids: uuid", `{` + ts + `,"uuid":"u9","message":{"model":"x","usage":{"input_tokens":1}}}`,
			claudeOK, storage.Usage{TS: 1773133200000, Model: "x", Input: 1, DedupeKey: "claude|uuid|u9"}},
		{"no ids at all: content", `{` + ts + `,"message":{"model":"x","usage":{"input_tokens":1,"output_tokens":2}}}`,
			claudeOK, storage.Usage{TS: 1773133200000, Model: "x", Input: 1, Output: 2, DedupeKey: "claude|x|1773133200000|1|2|0|0"}},
		{"synthetic", `{` + ts + `,"message":{"id":"m","model":"<synthetic>","usage":{"input_tokens":0}}}`, claudeNotCall, storage.Usage{}},
		{"api error", `{` + ts + `,"isApiErrorMessage":true,"message":{"id":"m","model":"claude-opus-4-1","usage":{"input_tokens":5}}}`, claudeNotCall, storage.Usage{}},
		{"zero usage", `{` + ts + `,"message":{"id":"m","model":"x","usage":{"input_tokens":0,"output_tokens":0}}}`, claudeZero, storage.Usage{}},
		{"negative and huge counts are zero", `{` + ts + `,"message":{"id":"m","model":"x","usage":{"input_tokens":-5,"output_tokens":1e300}}}`, claudeZero, storage.Usage{}},
		{"no time", `{"message":{"id":"m","model":"x","usage":{"input_tokens":5}}}`, claudeMalformed, storage.Usage{}},
	}
	var p fastjson.Parser
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := p.Parse(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			u, outcome, _ := claudeRecord(v)
			if outcome != tc.outcome {
				t.Fatalf("outcome = %d, want %d", outcome, tc.outcome)
			}
			if outcome != claudeOK {
				return
			}
			if u.Source != storage.SourceClaude || u.Provider != "anthropic" {
				t.Errorf("source/provider = %s/%s", u.Source, u.Provider)
			}
			u.Source, u.Provider, u.Cost = "", "", storage.Cost{}
			if u != tc.u {
				t.Errorf("usage = %+v\nwant    %+v", u, tc.u)
			}
		})
	}
}

// Discovery finds ~/.claude, ~/.config/claude and $CLAUDE_CONFIG_DIR (a
// comma list whose entries may name the projects folder itself); explicit
// dirs replace discovery.
func TestClaudeDiscovery(t *testing.T) {
	home, other := t.TempDir(), t.TempDir()
	write := func(dir, project string, msg string) {
		p := filepath.Join(dir, "projects", project, "s-"+msg+".jsonl")
		os.MkdirAll(filepath.Dir(p), 0o755)
		appendFile(t, p, claudeTestLine(msg, "r", time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), 1, 1, 0, 0, false))
	}
	write(filepath.Join(home, ".claude"), "-a", "m1")
	write(filepath.Join(home, ".config", "claude"), "-b", "m2")
	write(filepath.Join(other, "one"), "-c", "m3")
	write(filepath.Join(other, "two"), "-d", "m4")
	write(filepath.Join(other, "xdg", "claude"), "-e", "m5")
	env := map[string]string{
		"CLAUDE_CONFIG_DIR": filepath.Join(other, "one") + " , " + filepath.Join(other, "two", "projects") + ",",
		"XDG_CONFIG_HOME":   filepath.Join(other, "xdg"),
	}
	count := func(cfg Config) int64 {
		tally := rollup.NewTally(time.UTC)
		cfg.Final = true
		if _, err := New(cfg, tally).Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		return totalsOf(t, tally).Sums.Messages
	}
	if n := count(Config{Discover: true, Homes: []string{home}, Env: func(k string) string { return env[k] }}); n != 5 {
		t.Errorf("discovered %d calls, want 5", n)
	}
	if n := count(Config{Discover: true, Homes: []string{home}, Env: func(string) string { return "" }}); n != 2 {
		t.Errorf("discovered %d calls under the home, want 2", n)
	}
	if n := count(Config{ClaudeDirs: []string{filepath.Join(other, "one")}, Discover: true, Homes: []string{home}}); n != 1 {
		t.Errorf("explicit dir gave %d calls, want 1", n)
	}
	if n := count(Config{Homes: []string{home}}); n != 0 {
		t.Errorf("no discovery and no dirs gave %d calls", n)
	}
}

// The daemon follows a live session: appended lines count once, a
// sub-agent file appearing later is found, and a deleted transcript
// (Claude Code's cleanupPeriodDays) drops its cursor but not its calls.
func TestClaudeLiveSession(t *testing.T) {
	root := t.TempDir()
	project := filepath.Join(root, "projects", "-home-u-app")
	main := filepath.Join(project, "s.jsonl")
	sub := filepath.Join(project, "s", "subagents", "agent-a.jsonl")
	os.MkdirAll(filepath.Dir(sub), 0o755)
	db := openDB(t)
	in := New(Config{ClaudeDirs: []string{root}}, db)
	t0 := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	appendFile(t, main, claudeTestLine("m1", "r1", t0, 1, 10, 100, 0, false))
	// A line still being written: not read until its end arrives.
	appendFile(t, main, strings.TrimSuffix(claudeTestLine("m2", "r2", t0.Add(time.Minute), 2, 20, 200, 0, false), "}\n"))
	step(t, in)
	appendFile(t, main, "}\n"+claudeTestLine("m3", "r3", t0.Add(2*time.Minute), 3, 30, 300, 0, false))
	appendFile(t, sub, claudeTestLine("s1", "rs", t0.Add(3*time.Minute), 4, 40, 0, 400, true))
	step(t, in)
	if got := totalsOf(t, db).Sums; tokensOnly(got) != callSums(4, 10, 100, 600, 400) {
		t.Errorf("sums = %+v", got)
	}
	if len(in.mem.stamps) != 2 {
		t.Fatalf("%d cursors, want 2", len(in.mem.stamps))
	}
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	step(t, in)
	if len(in.mem.stamps) != 1 {
		t.Errorf("%d cursors after the sub-agent file was deleted, want 1", len(in.mem.stamps))
	}
	if got := totalsOf(t, db).Sums; got.Messages != 4 {
		t.Errorf("calls = %d after a delete, want 4 (the ledger keeps them)", got.Messages)
	}
	if got := reportOf(t, db, "agent").Rows.([]rollup.AgentRow); len(got) != 1 || got[0].Agent != "w" {
		t.Errorf("agents = %+v, want the cwd's base name", got)
	}
}

// The generated corpus reads back to the generator's own totals, per day.
func TestClaudeCorpus(t *testing.T) {
	dir := t.TempDir()
	exp, err := writeClaudeCorpus(dir, defaultClaudeCorpus(3<<20))
	if err != nil {
		t.Fatal(err)
	}
	tally := scanClaude(t, dir)
	got := totalsOf(t, tally)
	want := rollup.SumsOf(exp.Totals)
	if tokensOnly(got.Sums) != tokensOnly(want) {
		t.Errorf("sums = %+v\nwant   %+v", tokensOnly(got.Sums), tokensOnly(want))
	}
	if got.Skipped.NotModelCall != int64(exp.Notices) || got.Skipped.Malformed != 0 || got.Skipped.ZeroUsage != 0 {
		t.Errorf("skipped = %+v, want %d not model calls", got.Skipped, exp.Notices)
	}
	for _, row := range reportOf(t, tally, "daily").Rows.([]rollup.DailyRow) {
		if w := tokensOnly(rollup.SumsOf(exp.Daily[row.Date])); tokensOnly(row.Sums) != w {
			t.Errorf("%s = %+v\nwant %+v", row.Date, tokensOnly(row.Sums), w)
		}
	}
}

// TestClaudeCorpusExport writes a generated corpus for
// scripts/compare-ccusage-claude: FLEETMETER_CLAUDE_CORPUS names the
// directory, FLEETMETER_CLAUDE_CORPUS_MB its size (default 20). The
// generator's expected totals go to expected.json beside projects/.
func TestClaudeCorpusExport(t *testing.T) {
	dir := os.Getenv("FLEETMETER_CLAUDE_CORPUS")
	if dir == "" {
		t.Skip("set FLEETMETER_CLAUDE_CORPUS to write a corpus")
	}
	mb, err := strconv.Atoi(os.Getenv("FLEETMETER_CLAUDE_CORPUS_MB"))
	if err != nil || mb <= 0 {
		mb = 20
	}
	opt := defaultClaudeCorpus(int64(mb) << 20)
	if s, err := strconv.ParseUint(os.Getenv("FLEETMETER_CLAUDE_CORPUS_SEED"), 10, 64); err == nil {
		opt.Seed = s
	}
	exp, err := writeClaudeCorpus(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(exp, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "expected.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// claudeBenchCorpus is a generated corpus of FLEETMETER_BENCH_MB (default
// 100) megabytes, made once per run.
func claudeBenchCorpus(b *testing.B) (string, []string, int64) {
	b.Helper()
	mb := 100
	if v, err := strconv.Atoi(os.Getenv("FLEETMETER_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("fleetmeter-bench-claude-%d", mb))
	if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
		os.RemoveAll(dir)
		if _, err := writeClaudeCorpus(dir, defaultClaudeCorpus(int64(mb)<<20)); err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "done"), nil, 0o644)
	}
	return dir, jsonlFiles(dir), jsonlBytes(dir)
}

// BenchmarkClaudeReader is `report --claude-dir` over a generated corpus
// (both cores, in memory); /cat reads the same bytes, the floor.
//
//	go test -run '^$' -bench 'ClaudeReader' -count 6 ./ingest/
func BenchmarkClaudeReader(b *testing.B) {
	dir, files, size := claudeBenchCorpus(b)
	b.Run("report", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			tally := rollup.NewTally(time.UTC)
			if _, err := New(Config{ClaudeDirs: []string{dir}, Final: true}, tally).Step(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cat", func(b *testing.B) { catFiles(b, files, size) })
}

// jsonlFiles lists the transcripts under dir.
func jsonlFiles(dir string) []string {
	var files []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.HasSuffix(p, ".jsonl") {
			files = append(files, p)
		}
		return nil
	})
	return files
}

func jsonlBytes(dir string) int64 {
	var n int64
	for _, p := range jsonlFiles(dir) {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// catFiles reads every file through a 1 MiB buffer on one core.
func catFiles(b *testing.B, files []string, size int64) {
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	for b.Loop() {
		for _, p := range files {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := f.Read(buf); err != nil {
					break
				}
			}
			f.Close()
		}
	}
}
