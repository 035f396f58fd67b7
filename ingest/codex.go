package ingest

import (
	"bytes"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/valyala/fastjson"
)

// Codex CLI rollouts (shared/reference/openclaw-format.md §9):
// <home>/sessions/YYYY/MM/DD/rollout-<local time>-<thread id>.jsonl and
// <home>/archived_sessions/*.jsonl, lines {timestamp, type, payload}.
//
//   - session_meta gives the thread id, cwd and originator. The first one is
//     the rollout's own; a forked rollout then embeds its parent's metadata
//     and replays the parent's history, token_count events included.
//   - turn_context gives the model of the turns that follow.
//   - event_msg with payload.type "token_count" carries info
//     {total_token_usage, last_token_usage}. input_tokens INCLUDES the
//     cached ones (OpenAI convention), output_tokens includes reasoning.
//
// Each call is the difference between consecutive cumulative totals. An
// event whose totals did not move (Codex repeats token_count when only the
// rate limits change) adds nothing and is counted as a duplicate. The first
// event of a history, or one after the totals went back (a reset), takes
// last_token_usage, or the whole total when there is none; an event with no
// totals at all takes last_token_usage.
//
// The dedupe key is "codex|<history>|<cumulative totals>": the cumulative
// totals identify an event within its history, so the same event read from
// a copied or archived rollout, or replayed into a fork, counts once. The
// history is the thread the events were first written in: the id of the
// latest session_meta (its forked_from_id when it has one), so a fork's
// replay of its parent lands on the parent's keys while the fork's own
// calls, whose totals differ, stay distinct.
//
// Rollouts whose originator is OpenClaw (its Codex harness) are skipped
// whole: the same calls are in OpenClaw's own transcript. Their calls are
// counted as duplicates, since each one is a model call counted elsewhere.

// codexState is a rollout's reading state between polls; it is stored in
// the file's cursor, so a restart between two polls resumes exactly. A new
// value is made for every change (never modified in place): chunks already
// handed to the committer share the old one.
type codexState struct {
	Own        bool       `json:"own,omitempty"` // the rollout's own session_meta was read
	Originator string     `json:"originator,omitempty"`
	Model      string     `json:"model,omitempty"`
	History    string     `json:"history,omitempty"` // namespace of the dedupe keys (see above)
	HasTotal   bool       `json:"has_total,omitempty"`
	Total      codexUsage `json:"total"` // latest cumulative totals of History
}

// codexUsage is Codex's TokenUsage.
type codexUsage struct {
	Input     int64 `json:"input"` // includes Cached
	Cached    int64 `json:"cached"`
	Output    int64 `json:"output"` // includes Reasoning
	Reasoning int64 `json:"reasoning"`
	Total     int64 `json:"total"`
}

func (a codexUsage) covers(b codexUsage) bool {
	return a.Input >= b.Input && a.Cached >= b.Cached && a.Output >= b.Output && a.Reasoning >= b.Reasoning
}

func (a codexUsage) minus(b codexUsage) codexUsage {
	return codexUsage{a.Input - b.Input, a.Cached - b.Cached, a.Output - b.Output, a.Reasoning - b.Reasoning, a.Total - b.Total}
}

func readCodexUsage(v *fastjson.Value) (codexUsage, bool) {
	if v == nil || v.Type() != fastjson.TypeObject {
		return codexUsage{}, false
	}
	return codexUsage{
		Input:     tokens(v, "input_tokens"),
		Cached:    tokens(v, "cached_input_tokens"),
		Output:    tokens(v, "output_tokens"),
		Reasoning: tokens(v, "reasoning_output_tokens"),
		Total:     tokens(v, "total_tokens"),
	}, true
}

// codexRoots returns the Codex homes to read: the configured ones, else
// (with discovery) $CODEX_HOME and ~/.codex under every home.
func (in *Ingester) codexRoots() []string {
	if len(in.cfg.CodexDirs) > 0 {
		return dedupePaths(in.cfg.CodexDirs)
	}
	if !in.cfg.Discover {
		return nil
	}
	var roots []string
	if d := in.cfg.Env("CODEX_HOME"); d != "" {
		roots = append(roots, d)
	}
	for _, h := range in.homes() {
		roots = append(roots, filepath.Join(h, ".codex"))
	}
	return dedupePaths(roots)
}

// codexCandidates lists every rollout under the Codex homes and marks each
// directory it listed completely.
func (in *Ingester) codexCandidates(listed map[string]bool) []candidate {
	var out []candidate
	for _, root := range in.codexRoots() {
		found := false
		for _, sub := range []string{"sessions", "archived_sessions"} {
			dir := filepath.Join(root, sub)
			in.walkJSONL(dir, nil, listed, 0, func(path string, rel []string) {
				name := rel[len(rel)-1]
				out = append(out, candidate{
					path: path, name: name, agent: "codex", sessionID: codexSessionFromName(name), format: formatCodex,
				})
			})
			found = found || listed[dir]
		}
		if !found && len(in.cfg.CodexDirs) > 0 {
			in.warnOnce(root, "codex dir has no sessions/ or archived_sessions/ folder")
		}
	}
	return out
}

// codexSessionFromName takes the thread id (a UUID, the last 36
// characters) from rollout-<time>-<uuid>.jsonl; session_meta says better.
func codexSessionFromName(name string) string {
	base := name
	if i := strings.Index(base, ".jsonl"); i >= 0 {
		base = base[:i]
	}
	if len(base) >= 36 && strings.Count(base[len(base)-36:], "-") == 4 {
		return base[len(base)-36:]
	}
	return base
}

// codexType is the value of the line's top-level "type", read from the
// start of the line where Codex writes it (after "timestamp"). ok is false
// when it is not there, and the line must be parsed to know.
func codexType(line []byte) (typ []byte, ok bool) {
	head := line[:min(len(line), 96)]
	i := bytes.Index(head, []byte(`"type":"`))
	if i < 0 || bytes.IndexByte(head[1:i], '{') >= 0 {
		return nil, false // not there, or inside a nested object
	}
	rest := line[i+len(`"type":"`):]
	j := bytes.IndexByte(rest[:min(len(rest), 32)], '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

var (
	codexTokenCount  = []byte(`"token_count"`)
	codexSessionMeta = []byte(`"session_meta"`)
	codexTurnContext = []byte(`"turn_context"`)
)

// codexLine folds one rollout line into the file's state and the chunk.
func (r *fileReader) codexLine(line []byte, cur *fileCursor, c *chunk) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	// Most lines are response items (messages, reasoning, tool calls and
	// their output, the bulk of the bytes): none of them matters, and they
	// are not parsed. One not even shaped like an object is garbage or a
	// torn write.
	if line[0] != '{' || line[len(line)-1] != '}' {
		c.skips.Malformed++
		return
	}
	if typ, ok := codexType(line); ok {
		switch string(typ) {
		case "session_meta", "turn_context":
		case "event_msg":
			if !bytes.Contains(line, codexTokenCount) {
				return
			}
		default:
			return
		}
	} else if !bytes.Contains(line, codexTokenCount) && !bytes.Contains(line, codexSessionMeta) && !bytes.Contains(line, codexTurnContext) {
		return
	}
	v, err := r.parser.p.ParseBytes(line)
	if err != nil || v.Type() != fastjson.TypeObject {
		c.skips.Malformed++
		return
	}
	st := codexState{}
	if cur.Codex != nil {
		st = *cur.Codex
	}
	payload := v.Get("payload")
	if payload == nil || payload.Type() != fastjson.TypeObject {
		return // older rollout shapes carry no usage
	}
	switch string(v.GetStringBytes("type")) {
	case "session_meta":
		if !st.Own {
			st.Own = true
			st.Originator = string(payload.GetStringBytes("originator"))
			if id := payload.GetStringBytes("id"); len(id) > 0 {
				cur.SessionID = string(id)
			}
			if cwd := payload.GetStringBytes("cwd"); len(cwd) > 0 {
				if name := cwdName(string(cwd)); name != "" {
					cur.Agent = name
				}
			}
		}
		history := payload.GetStringBytes("forked_from_id")
		if len(history) == 0 {
			history = payload.GetStringBytes("id")
		}
		if len(history) > 0 {
			// A new history: its totals start again from the unknown.
			st.History, st.HasTotal, st.Total = string(history), false, codexUsage{}
		}
		cur.Codex = &st
	case "turn_context":
		if m := payload.GetStringBytes("model"); len(m) > 0 && string(m) != st.Model {
			st.Model = string(m)
			cur.Codex = &st
		}
	case "event_msg":
		if string(payload.GetStringBytes("type")) == "token_count" {
			r.codexTokens(v, payload, &st, cur, c)
		}
	}
}

// codexTokens turns a token_count event into a record (or a skip).
func (r *fileReader) codexTokens(v, payload *fastjson.Value, st *codexState, cur *fileCursor, c *chunk) {
	info := payload.Get("info")
	if info == nil || info.Type() != fastjson.TypeObject {
		return // a rate-limit update: no usage
	}
	total, hasTotal := readCodexUsage(info.Get("total_token_usage"))
	last, hasLast := readCodexUsage(info.Get("last_token_usage"))
	if !hasTotal && !hasLast {
		return
	}
	history := st.History
	if history == "" {
		history = cur.SessionID
	}
	ts := parseTimestamp(v.Get("timestamp"))
	var call codexUsage
	var key []byte
	if hasTotal {
		if st.HasTotal && total == st.Total {
			c.skips.Duplicate++ // the same event again: nothing moved
			return
		}
		switch {
		case st.HasTotal && total.covers(st.Total):
			call = total.minus(st.Total)
		case hasLast:
			call = last // first event of this history, or after a reset
		default:
			call = total
		}
		next := *st
		next.Total, next.HasTotal = total, true
		cur.Codex = &next
		key = codexKey(history, "", total)
	} else {
		if ts == 0 {
			c.skips.Malformed++
			return
		}
		call = last
		key = codexKey(history, strconv.FormatInt(ts, 10), last)
	}
	if strings.Contains(strings.ToLower(st.Originator), "openclaw") {
		if call != (codexUsage{}) {
			c.skips.Duplicate++ // counted in OpenClaw's transcript
		}
		return
	}
	u := storage.Usage{
		TS: ts, Source: storage.SourceCodex, Agent: cur.Agent, SessionID: cur.SessionID,
		Provider: "openai", Model: st.Model,
		Input:     max(call.Input-call.Cached, 0),
		CacheRead: min(call.Cached, call.Input),
		Output:    call.Output,
		DedupeKey: string(key),
	}
	if m := payload.GetStringBytes("model"); len(m) > 0 {
		u.Model = string(m)
	} else if m := info.GetStringBytes("model"); len(m) > 0 {
		u.Model = string(m)
	}
	if u.TotalTokens() == 0 {
		c.skips.ZeroUsage++
		return
	}
	if u.TS == 0 {
		c.skips.Malformed++ // a call with no time cannot be placed in a day
		return
	}
	r.in.pricer.Apply(&u)
	c.records = append(c.records, u)
}

// codexKey is "codex|<history>|[<ts>|]<input>|<cached>|<output>|<reasoning>|<total>".
func codexKey(history, ts string, n codexUsage) []byte {
	b := make([]byte, 0, 96)
	b = append(b, "codex|"...)
	b = append(b, history...)
	if ts != "" {
		b = append(b, "|t"...)
		b = append(b, ts...)
	}
	for _, x := range []int64{n.Input, n.Cached, n.Output, n.Reasoning, n.Total} {
		b = append(b, '|')
		b = strconv.AppendInt(b, x, 10)
	}
	return b
}
