package corpus_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
)

// keysOf returns the keys of a JSON object in the order they appear.
func keysOf(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %.60s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// TestLineShapes checks key order against pi's writer (reference §3, §6)
// and that each kind of line the brief asks for occurs.
func TestLineShapes(t *testing.T) {
	dir := t.TempDir()
	o := corpus.DefaultOptions()
	// Few sessions over a short period, so that heavy sessions (large tool
	// outputs, images) are common enough to show up in 8 MiB.
	o.SizeBytes, o.Days, o.Agents = 8<<20, 10, 4
	o.ImageRate = 0.3
	if _, err := corpus.Generate(dir, o); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"session":               {"type", "version", "id", "timestamp", "cwd"},
		"fork header":           {"type", "version", "id", "timestamp", "cwd", "parentSession"},
		"message":               {"type", "id", "parentId", "timestamp", "message"},
		"model_change":          {"type", "id", "parentId", "timestamp", "provider", "modelId"},
		"thinking_level_change": {"type", "id", "parentId", "timestamp", "thinkingLevel"},
		"custom":                {"type", "id", "parentId", "timestamp", "customType", "data"},
		"compaction":            {"type", "id", "parentId", "timestamp", "summary", "firstKeptEntryId", "tokensBefore"},
		"user":                  {"role", "content", "timestamp"},
		"toolResult":            {"role", "toolCallId", "toolName", "content", "isError", "timestamp"},
		"assistant":             {"role", "content", "api", "provider", "model", "usage", "stopReason", "timestamp", "responseId"},
		"assistant legacy":      {"role", "content", "api", "provider", "model", "usage", "stopReason", "timestamp"},
		"assistant aborted":     {"role", "content", "api", "provider", "model", "usage", "stopReason", "timestamp", "errorMessage"},
		"usage":                 {"input", "output", "cacheRead", "cacheWrite", "totalTokens", "cost"},
		"cost":                  {"input", "output", "cacheRead", "cacheWrite", "total"},
	}
	seen := map[string]int{}
	check := func(kind string, raw []byte) {
		t.Helper()
		if got := keysOf(t, raw); !slices.Equal(got, want[kind]) {
			t.Fatalf("%s keys %v, want %v", kind, got, want[kind])
		}
		seen[kind]++
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "agents", "*", "sessions", "*.jsonl*"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			var l struct {
				Type          string          `json:"type"`
				ParentSession string          `json:"parentSession"`
				Message       json.RawMessage `json:"message"`
			}
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Fatal(err)
			}
			switch {
			case l.Type == "session" && l.ParentSession != "":
				check("fork header", raw)
				checkForkPrefix(t, p, l.ParentSession, data)
			case l.Type == "message":
				check("message", raw)
				checkMessage(t, check, seen, l.Message)
			default:
				check(l.Type, raw)
			}
		}
	}
	t.Logf("seen %v", seen)
	for _, k := range []string{"fork header", "compaction", "assistant legacy", "assistant aborted",
		"channel user", "cron user", "image", "thinking", "toolCall", "msg_", "resp_", "delivery-mirror", "tool output ≥ 100 KB"} {
		if seen[k] == 0 {
			t.Errorf("no %s in the corpus", k)
		}
	}
}

func checkMessage(t *testing.T, check func(string, []byte), seen map[string]int, raw json.RawMessage) {
	t.Helper()
	var m struct {
		Role       string `json:"role"`
		Model      string `json:"model"`
		StopReason string `json:"stopReason"`
		ResponseID string `json:"responseId"`
		Content    []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		Usage json.RawMessage `json:"usage"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, c := range m.Content {
		seen[c.Type]++
	}
	switch m.Role {
	case "user":
		check("user", raw)
		text := m.Content[0].Text
		switch {
		case strings.HasPrefix(text, "Conversation info (untrusted metadata):\n```json\n{\n") &&
			strings.Contains(text, "\n```\n\nSender (untrusted metadata):\n```json\n{\n  \"label\": "):
			seen["channel user"]++
		case strings.HasPrefix(text, "[cron:"):
			seen["cron user"]++
		default:
			t.Fatalf("user text without metadata blocks: %.80q", text)
		}
	case "toolResult":
		check("toolResult", raw)
		if len(m.Content[0].Text) >= 100<<10 {
			seen["tool output ≥ 100 KB"]++
		}
	case "assistant":
		switch {
		case m.StopReason == "aborted":
			check("assistant aborted", raw)
		case m.ResponseID == "":
			check("assistant legacy", raw)
		default:
			check("assistant", raw)
			seen[m.ResponseID[:strings.IndexByte(m.ResponseID, '_')+1]]++
		}
		seen[m.Model]++
		check("usage", m.Usage)
		var u struct {
			Cost json.RawMessage `json:"cost"`
		}
		if err := json.Unmarshal(m.Usage, &u); err != nil {
			t.Fatal(err)
		}
		check("cost", u.Cost)
	default:
		t.Fatalf("unexpected role %q", m.Role)
	}
}

// checkForkPrefix verifies a fork's inherited entries (older than its
// header) are byte-identical lines of its parent, wherever the parent is
// now (possibly renamed to a reset archive).
func checkForkPrefix(t *testing.T, forkPath, parentSession string, fork []byte) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(forkPath), filepath.Base(parentSession)+"*"))
	if len(matches) != 1 {
		t.Fatalf("fork %s: parent %s found %d times", forkPath, parentSession, len(matches))
	}
	parent, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(fork, []byte("\n"))
	var head struct{ Timestamp time.Time }
	if err := json.Unmarshal(lines[0], &head); err != nil {
		t.Fatal(err)
	}
	inherited := 0
	for _, l := range lines[1:] {
		var e struct{ Timestamp time.Time }
		if len(l) == 0 || json.Unmarshal(l, &e) != nil || !e.Timestamp.Before(head.Timestamp) {
			break
		}
		if !bytes.Contains(parent, l) {
			t.Fatalf("fork %s: inherited line not in parent: %.80s", forkPath, l)
		}
		inherited++
	}
	if inherited == 0 {
		t.Fatalf("fork %s inherits nothing", forkPath)
	}
}

func TestAppender(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agents", "live", "sessions")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "6f1d3c2a-0000-4000-8000-000000000001.jsonl")
	start := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)

	ap, err := corpus.NewAppender(path, 7, start)
	if err != nil {
		t.Fatal(err)
	}
	if ap.Agent() != "live" {
		t.Fatalf("agent %q, want live", ap.Agent())
	}
	chunks, exp := ap.Next(8)
	split := 0
	for i, c := range chunks {
		if err := ap.Write(c); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		if data[len(data)-1] != '\n' {
			split++
		}
		r := newRecount()
		r.file(t, "live", path, data)
		sameTotals(t, fmt.Sprintf("after chunk %d", i), r.exp.Totals, c.Done)
	}
	if split == 0 {
		t.Errorf("no chunk ended inside a line")
	}
	if exp.Messages == 0 || chunks[len(chunks)-1].Done != exp.Totals {
		t.Fatalf("batch totals %+v, last chunk %+v", exp.Totals, chunks[len(chunks)-1].Done)
	}

	// A second appender continues the same file after its last line.
	before, _ := os.ReadFile(path)
	lastLine := before[bytes.LastIndexByte(before[:len(before)-1], '\n')+1:]
	var last struct{ ID string }
	if err := json.Unmarshal(lastLine, &last); err != nil {
		t.Fatal(err)
	}
	ap2, err := corpus.NewAppender(path, 8, start)
	if err != nil {
		t.Fatal(err)
	}
	exp2, err := ap2.Append(3)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	var next struct{ ParentID string }
	if err := json.Unmarshal(after[len(before):bytes.IndexByte(after[len(before):], '\n')+len(before)], &next); err != nil {
		t.Fatal(err)
	}
	if next.ParentID != last.ID {
		t.Errorf("continued with parentId %q, want %q", next.ParentID, last.ID)
	}
	checkLines(t, path, after)
	r := newRecount()
	r.file(t, "live", path, after)
	want := exp.Totals
	want.Messages += exp2.Messages
	want.Input += exp2.Input
	want.Output += exp2.Output
	want.CacheRead += exp2.CacheRead
	want.CacheWrite += exp2.CacheWrite
	want.Cost += exp2.Cost
	want.CostNanos += exp2.CostNanos
	sameTotals(t, "whole file", r.exp.Totals, want)
	if got := r.exp.Agents["live"].Messages; got != want.Messages {
		t.Errorf("agent live has %d messages, want %d", got, want.Messages)
	}
}
