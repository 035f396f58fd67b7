package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// The real upstream excerpt (pi-mono large-session.jsonl, first 27 lines)
// gives the totals its README states.
func TestUpstreamFixture(t *testing.T) {
	root := t.TempDir()
	src, err := os.ReadFile("testdata/upstream/large-session.head27.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sessionsDir(t, root, "main"), "large-session.jsonl"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	got := totalsOf(t, scanDirs(t, root))
	want := rollup.Sums{Messages: 8, InputTokens: 41, OutputTokens: 5739, CacheReadTokens: 71099, CacheWriteTokens: 66837}
	if got.Sums.Messages != want.Messages || got.Sums.InputTokens != want.InputTokens || got.Sums.OutputTokens != want.OutputTokens ||
		got.Sums.CacheReadTokens != want.CacheReadTokens || got.Sums.CacheWriteTokens != want.CacheWriteTokens {
		t.Errorf("tokens = %+v, want %+v", got.Sums, want)
	}
	if math.Abs(got.Sums.CostUSD-0.35817645) > 1e-9 {
		t.Errorf("cost = %.9f, want 0.35817645", got.Sums.CostUSD)
	}
	if got.Skipped.ZeroUsage != 1 {
		t.Errorf("zero-usage skips = %d, want 1 (the aborted gpt-5.1-codex call)", got.Skipped.ZeroUsage)
	}
}

// testdata/openclaw/traps holds one of each trap of DESIGN §2. Worked out
// by hand (see testdata/openclaw/README.md): 10 model calls, input 1247,
// output 310, cache read 103, cache write 76, cost $0.189, 3 unpriced calls
// with 180 tokens; skipped 4 duplicates, 2 not model calls, 1 zero usage,
// 5 malformed lines, 1 partial line.
func TestTrapsFixture(t *testing.T) {
	wantSums := rollup.Sums{
		Messages: 10, InputTokens: 1247, OutputTokens: 310, CacheReadTokens: 103, CacheWriteTokens: 76,
		TotalTokens: 1736, UnpricedMessages: 3, UnpricedTokens: 180,
	}
	wantSkips := storage.Skips{Duplicate: 4, NotModelCall: 2, ZeroUsage: 1, Malformed: 5, PartialLine: 1}
	check := func(t *testing.T, src rollup.Source, partial int64) {
		got := totalsOf(t, src)
		cost := got.Sums.CostUSD
		s := got.Sums
		s.CostUSD, s.InputCostUSD, s.OutputCostUSD, s.CacheReadCostUSD, s.CacheWriteCost = 0, 0, 0, 0, 0
		if s != wantSums {
			t.Errorf("sums = %+v\nwant   %+v", s, wantSums)
		}
		if math.Abs(cost-0.189) > 1e-9 {
			t.Errorf("cost = %.9f, want 0.189", cost)
		}
		ws := wantSkips
		ws.PartialLine = partial
		if got.Skipped != ws {
			t.Errorf("skipped = %+v\nwant      %+v", got.Skipped, ws)
		}
	}
	t.Run("report", func(t *testing.T) {
		tally := scanDirs(t, "testdata/openclaw/traps")
		check(t, tally, 1)
		golden(t, "traps-daily", reportOf(t, tally, "daily"))
		golden(t, "traps-users", reportOf(t, tally, "user"))
		golden(t, "traps-sessions", reportOf(t, tally, "session"))
	})
	t.Run("ledger", func(t *testing.T) {
		// In the daemon a partial line waits for its end instead of being counted.
		db, _ := ingestTwice(t, "testdata/openclaw/traps", func(cfg *Config, root string) { cfg.OpenClawDirs = []string{root} })
		check(t, db, 0)
		if got, want := reportOf(t, db, "user"), reportOf(t, scanDirs(t, "testdata/openclaw/traps"), "user"); !sameRows(got, want) {
			t.Errorf("ledger user report differs from direct read:\n%+v\n%+v", got.Rows, want.Rows)
		}
	})
}

func sameRows(a, b rollup.Report) bool {
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	// The skipped counts differ by design (partial lines); compare rows only.
	ra, _ := rollupRows(ja)
	rb, _ := rollupRows(jb)
	return ra == rb
}

func rollupRows(b []byte) (string, error) {
	i := len(b)
	for j := range b {
		if string(b[j:min(j+9, len(b))]) == `,"totals"` {
			i = j
			break
		}
	}
	return string(b[:i]), nil
}

func copyTree(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
		return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		kind lineKind
		u    storage.Usage // checked for lineUsage
	}{
		{"pi v3 assistant", `{"type":"message","id":"a","parentId":"b","timestamp":"2026-04-10T08:31:20.480Z","message":{"role":"assistant","content":[],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":4,"output":60,"cacheRead":12760,"cacheWrite":150,"totalTokens":12974,"cost":{"input":0.000012,"output":0.0009,"cacheRead":0.003828,"cacheWrite":0.0005625000000000001,"total":0.0053025}},"stopReason":"stop","timestamp":1775809875002,"responseId":"msg_01"}}`,
			lineUsage, storage.Usage{TS: 1775809880480, Provider: "anthropic", Model: "claude-sonnet-4-6", Input: 4, Output: 60, CacheRead: 12760, CacheWrite: 150, DedupeKey: "anthropic|msg_01"}},
		{"no responseId: content key", `{"type":"message","timestamp":"2025-11-20T23:33:54.572Z","message":{"role":"assistant","provider":"anthropic","model":"m","usage":{"input":3,"output":191,"cacheRead":0,"cacheWrite":1684},"timestamp":1763681630793}}`,
			lineUsage, storage.Usage{TS: 1763681634572, Provider: "anthropic", Model: "m", Input: 3, Output: 191, CacheWrite: 1684, DedupeKey: "anthropic|m|1763681630793|3|191|0|1684"}},
		{"entry time missing: message time", `{"type":"message","message":{"role":"assistant","provider":"p","model":"m","usage":{"input":1},"timestamp":1763681630793}}`,
			lineUsage, storage.Usage{TS: 1763681630793, Provider: "p", Model: "m", Input: 1, DedupeKey: "p|m|1763681630793|1|0|0|0"}},
		{"float tokens", `{"type":"message","timestamp":"2026-01-01T00:00:00Z","message":{"role":"assistant","provider":"p","model":"m","usage":{"input":10.0,"output":2e1},"responseId":"r"}}`,
			lineUsage, storage.Usage{TS: 1767225600000, Provider: "p", Model: "m", Input: 10, Output: 20, DedupeKey: "p|r"}},
		{"other key order", `{"timestamp":"2026-01-01T00:00:00Z","message":{"provider":"p","model":"m","role":"assistant","usage":{"input":5},"responseId":"r"},"type":"message"}`,
			lineUsage, storage.Usage{TS: 1767225600000, Provider: "p", Model: "m", Input: 5, DedupeKey: "p|r"}},
		{"delivery mirror", `{"type":"message","message":{"role":"assistant","provider":"openclaw","model":"delivery-mirror","usage":{"input":0,"output":0}}}`, lineSkip, storage.Usage{}},
		{"transcript-only api", `{"type":"message","message":{"role":"assistant","api":"openclaw-transcript","provider":"x","model":"y","usage":{"input":3}}}`, lineSkip, storage.Usage{}},
		{"aborted", `{"type":"message","timestamp":"2026-01-01T00:00:00Z","message":{"role":"assistant","provider":"openai","model":"m","usage":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0},"stopReason":"aborted"}}`, lineSkip, storage.Usage{}},
		{"no time at all", `{"type":"message","message":{"role":"assistant","provider":"p","model":"m","usage":{"input":5}}}`, lineMalformed, storage.Usage{}},
		{"header", `{"type":"session","version":3,"id":"abc","timestamp":"2026-01-01T00:00:00Z","cwd":"/"}`, lineHeader, storage.Usage{}},
		{"tool result", `{"type":"message","message":{"role":"toolResult","content":"\"usage\":{\"input\":5}"}}`, lineOther, storage.Usage{}},
		{"user", `{"type":"message","message":{"role":"user","content":"hi"}}`, lineUser, storage.Usage{}},
		{"garbage", `not json`, lineMalformed, storage.Usage{}},
		{"truncated assistant", `{"type":"message","message":{"role":"assistant","usage":{"inp`, lineMalformed, storage.Usage{}},
		{"model change", `{"type":"model_change","provider":"openai","modelId":"gpt-4o"}`, lineOther, storage.Usage{}},
	}
	var lp lineParser
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pl parsedLine
			lp.parse([]byte(tc.line), &pl)
			if pl.kind != tc.kind {
				t.Fatalf("kind = %d, want %d", pl.kind, tc.kind)
			}
			if tc.kind != lineUsage {
				return
			}
			u := pl.usage
			u.Cost, u.Source = storage.Cost{}, ""
			if u != tc.u {
				t.Errorf("usage = %+v\nwant    %+v", u, tc.u)
			}
		})
	}
}

func TestSenderAndAttribution(t *testing.T) {
	var lp lineParser
	var pl parsedLine
	line := `{"type":"message","message":{"role":"user","content":[{"type":"text","text":"Conversation info (untrusted metadata):\n` + "```json" + `\n{\"sender_id\": \"42\"}\n` + "```" + `\n\nSender (untrusted metadata):\n` + "```json" + `\n{\n  \"label\": \"Alice (@a)\",\n  \"id\": \"123456789\"\n}\n` + "```" + `\n\nhi"}]}}`
	lp.parse([]byte(line), &pl)
	if pl.kind != lineUser || pl.sender.ID != "123456789" || pl.sender.Label != "Alice (@a)" {
		t.Fatalf("sender = %+v (kind %d)", pl.sender, pl.kind)
	}
	lp.parse([]byte(`{"type":"message","message":{"role":"user","content":"tick","provenance":{"kind":"internal_system"}}}`), &pl)
	if !pl.sender.System {
		t.Errorf("internal_system provenance not a system turn: %+v", pl.sender)
	}

	tests := []struct {
		name string
		meta sessionMeta
		s    sender
		want attribution
	}{
		{"group sender", sessionMeta{Key: "agent:main:discord:group:g1"}, sender{ID: "7", Label: "Bob"}, attribution{"discord", "discord:7", "Bob"}},
		{"per-channel-peer DM", sessionMeta{Key: "agent:main:telegram:direct:555"}, sender{}, attribution{"telegram", "telegram:555", ""}},
		{"old dm spelling", sessionMeta{Key: "agent:main:whatsapp:dm:+15551234567"}, sender{}, attribution{"whatsapp", "whatsapp:+15551234567", ""}},
		{"account scope", sessionMeta{Key: "agent:ops:slack:acct1:direct:u9"}, sender{}, attribution{"slack", "slack:u9", ""}},
		{"main DM origin", sessionMeta{Key: "agent:main:main", Channel: "telegram", OriginFrom: "telegram:111", ChatType: "direct", Label: "Al"}, sender{}, attribution{"telegram", "telegram:111", "Al"}},
		{"main DM sender beats origin", sessionMeta{Key: "agent:main:main", Channel: "telegram", OriginFrom: "telegram:111"}, sender{ID: "222"}, attribution{"telegram", "telegram:222", ""}},
		{"cron", sessionMeta{Key: "agent:main:cron:nightly:run:abc"}, sender{ID: "1"}, attribution{}},
		{"subagent", sessionMeta{Key: "agent:main:subagent:uuid"}, sender{}, attribution{}},
		{"heartbeat", sessionMeta{Key: "agent:main:main:heartbeat", OriginFrom: "telegram:1"}, sender{}, attribution{}},
		{"system turn", sessionMeta{Key: "agent:main:main", OriginFrom: "telegram:1"}, sender{System: true}, attribution{}},
		{"group without sender", sessionMeta{Key: "agent:main:discord:group:g1", ChatType: "group", OriginFrom: "discord:g1"}, sender{}, attribution{channel: "discord"}},
		{"unknown session", sessionMeta{}, sender{}, attribution{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := attribute(tc.meta, tc.s); got != tc.want {
				t.Errorf("attribute = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := map[string]fileKind{
		"0b6f.jsonl":                                      kindTranscript,
		"0b6f-topic-42.jsonl":                             kindTranscript,
		"2026-04-10T07-59-59-912Z_0b6f.jsonl":             kindTranscript,
		"0b6f.jsonl.reset.2026-04-10T07-59-59.912Z":       kindArchive,
		"0b6f.jsonl.deleted.2026-04-10T07-59-59.912Z":     kindArchive,
		"0b6f.jsonl.deleted.2026-04-10T07-59-59.912Z.zst": kindArchive,
		"0b6f.checkpoint.1234.jsonl":                      kindIgnore,
		"0b6f.trajectory.jsonl":                           kindIgnore,
		"0b6f.jsonl.bak.2026-04-10T07-59-59.912Z":         kindIgnore,
		"0b6f.jsonl.bak-123-456":                          kindIgnore,
		"0b6f.jsonl.lock":                                 kindIgnore,
		"0b6f.jsonl.repair-1-2.tmp":                       kindIgnore,
		"sessions.json":                                   kindIgnore,
		"sessions.json.1f2e.tmp":                          kindIgnore,
	}
	for name, want := range tests {
		if got := classify(name); got != want {
			t.Errorf("classify(%q) = %d, want %d", name, got, want)
		}
	}
	if got := sessionIDFromName("2026-04-10T07-59-59-912Z_0b6f.jsonl"); got != "0b6f" {
		t.Errorf("fork session id = %q", got)
	}
}

// FuzzParseLine: no input makes the parser panic, and a record it returns
// always has a dedupe key, a time and non-negative tokens.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`{"type":"message","timestamp":"2026-04-10T08:31:20.480Z","message":{"role":"assistant","provider":"anthropic","model":"m","usage":{"input":4,"output":60,"cacheRead":1,"cacheWrite":2,"cost":{"total":0.1}},"timestamp":1775809875002,"responseId":"r"}}`,
		`{"type":"message","message":{"role":"user","content":"Sender (untrusted metadata):\n` + "```json" + `\n{\"id\":\"1\"}\n` + "```" + `"}}`,
		`{"type":"session","version":3,"id":"abc","timestamp":"2026-01-01T00:00:00Z"}`,
		`{"type":"message","message":{"role":"assistant","usage":{"prompt_tokens":100,"prompt_tokens_details":{"cached_tokens":40}}}}`,
		`{"type":"message","message":{"role":"assistant","usage":{"input":-5,"output":1e308}}}`,
		"\x00\xff{",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var lp lineParser
		var pl parsedLine
		lp.parse(line, &pl)
		if pl.kind == lineUsage {
			u := pl.usage
			if u.DedupeKey == "" || u.TS <= 0 {
				t.Fatalf("record without key or time: %+v", u)
			}
			if u.Input < 0 || u.Output < 0 || u.CacheRead < 0 || u.CacheWrite < 0 || u.TotalTokens() <= 0 {
				t.Fatalf("bad tokens: %+v", u)
			}
			if u.Cost.Total < 0 || math.IsNaN(u.Cost.Total) {
				t.Fatalf("bad cost: %+v", u.Cost)
			}
		}
	})
}

// Lines written by another serializer, keys in alphabetical order (role
// after content): the sender of a user message is still read, and calls
// are attributed to it, as with pi's key order.
func TestAlphabeticalKeyOrder(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	os.WriteFile(filepath.Join(dir, "sessions.json"), []byte(`{"agent:main:telegram:group:7":{"sessionId":"s1","channel":"telegram"}}`), 0o644)
	sortKeys := func(line string) string {
		var v any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v) // encoding/json writes map keys sorted
		return string(b) + "\n"
	}
	user := func(id, sid string) string {
		return sortKeys(`{"type":"message","id":"` + id + `","parentId":null,"timestamp":"2026-04-10T08:00:00.000Z","message":{"role":"user","content":[{"type":"text","text":"Sender (untrusted metadata):\n` +
			"```json" + `\n{\"id\":\"` + sid + `\",\"label\":\"P` + sid + `\"}\n` + "```" + `\n\nhello"}]}}`)
	}
	plain := sortKeys(`{"type":"message","id":"u3","parentId":null,"timestamp":"2026-04-10T08:00:00.000Z","message":{"role":"user","content":[{"type":"text","text":"no sender here"}]}}`)
	appendFile(t, filepath.Join(dir, "s1.jsonl"), sortKeys(headerLine("s1", t0))+
		user("u1", "101")+sortKeys(assistantLine("a1", "ra1", t0+1, 1, 0, 0, 0, 0.01))+
		user("u2", "202")+sortKeys(assistantLine("a2", "ra2", t0+2, 2, 0, 0, 0, 0.01))+
		plain+sortKeys(assistantLine("a3", "ra3", t0+3, 3, 0, 0, 0, 0.01)))
	db := openDB(t)
	step(t, New(Config{OpenClawDirs: []string{root}}, db))
	got := map[int64]string{}
	for _, u := range records(t, db) {
		got[u.Input] = u.User
	}
	want := map[int64]string{1: "telegram:101", 2: "telegram:202", 3: ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("users by call %v, want %v", got, want)
	}
}

// Lines written with Python's json.dumps separators (`"role": "user"`,
// pi's key order otherwise): the sender of a user message is still read
// and the next calls are attributed to it; a torn write in that shape is
// cut where the next entry starts, as in pi's.
func TestSpacedSeparators(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	os.WriteFile(filepath.Join(dir, "sessions.json"), spaceSeparators([]byte(`{"agent:main:telegram:group:7":{"sessionId":"s1","channel":"telegram"}}`)), 0o644)
	spaced := func(line string) string {
		b := spaceSeparators(bytes.TrimSuffix([]byte(line), []byte("\n")))
		if !bytes.Contains(b, []byte(`": "`)) {
			t.Fatalf("not rewritten: %s", b)
		}
		return string(b) + "\n"
	}
	user := func(id, sid string) string {
		return spaced(`{"type":"message","id":"` + id + `","parentId":null,"timestamp":"2026-04-10T08:00:00.000Z","message":{"role":"user","content":[{"type":"text","text":"Sender (untrusted metadata):\n` +
			"```json" + `\n{\"id\":\"` + sid + `\",\"label\":\"P` + sid + `\"}\n` + "```" + `\n\nhello"}]}}`)
	}
	call := func(id string, ts, input int64) string { // pi's key order: type first
		return spaced(`{"type":"message","id":"` + id + `","parentId":null,"timestamp":"` + time.UnixMilli(ts).UTC().Format(time.RFC3339Nano) +
			`","message":{"role":"assistant","content":[{"type":"text","text":"ok"}],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-4-6",` +
			`"usage":{"input":` + strconv.FormatInt(input, 10) + `,"output":0,"cacheRead":0,"cacheWrite":0,"totalTokens":` + strconv.FormatInt(input, 10) +
			`,"cost":{"total":0.01}},"stopReason":"stop","timestamp":` + strconv.FormatInt(ts, 10) + `,"responseId":"r` + id + `"}}`)
	}
	plain := spaced(`{"type":"message","id":"u4","parentId":null,"timestamp":"2026-04-10T08:00:00.000Z","message":{"role":"user","content":[{"type":"text","text":"no sender here"}]}}`)
	torn := user("u3", "303")
	torn = torn[:len(torn)/2] // a write cut short, then the next append on its line
	appendFile(t, filepath.Join(dir, "s1.jsonl"), spaced(headerLine("s1", t0))+
		user("u1", "101")+call("a1", t0+1, 1)+user("u2", "202")+call("a2", t0+2, 2)+
		torn+call("a3", t0+3, 3)+plain+call("a4", t0+4, 4))
	db := openDB(t)
	step(t, New(Config{OpenClawDirs: []string{root}}, db))
	got := map[int64]string{}
	for _, u := range records(t, db) {
		got[u.Input] = u.User + " " + u.SessionKey
	}
	key := " agent:main:telegram:group:7"
	want := map[int64]string{1: "telegram:101" + key, 2: "telegram:202" + key, 3: "telegram:202" + key, 4: key}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("users by call %v, want %v", got, want)
	}
	skips, err := db.Skips()
	if err != nil {
		t.Fatal(err)
	}
	if skips.Malformed != 1 {
		t.Errorf("malformed %d, want 1 (the torn user line)", skips.Malformed)
	}
}
