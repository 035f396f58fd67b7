package ingest

import (
	"bytes"
	"fmt"
	"os"
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
//   - session_meta gives the thread id, cwd, originator and the parent link
//     of a forked or spawned thread (forked_from_id, parent_thread_id, or
//     source.subagent.thread_spawn.parent_thread_id). The first one is the
//     rollout's own; a fork or spawned sub-agent then embeds its parents'
//     metadata and replays their history, token_count events included
//     (re-stamped with new times in some versions).
//   - turn_context gives the model of the turns that follow;
//     thread_settings_applied (an event_msg) and turn_context may give the
//     service tier, and a token_count payload may restate it.
//   - event_msg with payload.type "token_count" carries info
//     {total_token_usage, last_token_usage}. input_tokens INCLUDES the
//     cached ones and, in newer versions, cache_write_input_tokens (OpenAI
//     convention); output_tokens includes reasoning_output_tokens.
//   - token_usage_record (newer versions) is one model response's usage
//     with its response_id. Calls outside the turn totals, such as
//     auto-compaction, appear only here.
//
// Each token_count call is the difference between consecutive cumulative
// totals. An event whose totals did not move (Codex repeats token_count
// when only the rate limits change) adds nothing and is counted as a
// duplicate. The first event of a history, or one after the totals went
// back (a reset), takes last_token_usage, or the whole total when there is
// none; an event with no totals at all takes last_token_usage.
//
// A call is counted once across both records: token_usage_records count
// under "codex|resp|<response id>"; a token_count delta counts only what
// the records since the previous token_count do not already cover, and a
// record that restates the call the previous token_count just counted is
// a duplicate. Either order of the two lines gives the same calls.
//
// The dedupe key of a token_count call is "codex|<history>|<cumulative
// totals>": the totals identify an event within its history, so the same
// event read from a copied or archived rollout, or replayed into a fork or
// sub-agent, counts once (times are not part of the key: replays re-stamp
// them). The history is the thread the events were first written in: the
// latest session_meta's parent when it has one, else its id; the
// committer then resolves it to the root of its family of forks and
// spawns (codexFamilyKey), so a grandchild's replay of its parent lands on
// the keys the parent's own rollout made, whether or not the replay embeds
// every ancestor's metadata.
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
	Tier       string     `json:"tier,omitempty"`    // the thread's service tier
	History    string     `json:"history,omitempty"` // namespace of the dedupe keys (see above)
	HasTotal   bool       `json:"has_total,omitempty"`
	Total      codexUsage `json:"total"` // latest cumulative totals of History
	// Records since the last token_count, summed; and the call the last
	// token_count counted, while no record followed it (see above).
	RecSum   codexUsage  `json:"rec_sum"`
	LastCall *codexUsage `json:"last_call,omitempty"`
}

// codexUsage is Codex's TokenUsage.
type codexUsage struct {
	Input      int64 `json:"input"` // includes Cached and CacheWrite
	Cached     int64 `json:"cached"`
	CacheWrite int64 `json:"cache_write,omitempty"`
	Output     int64 `json:"output"` // includes Reasoning
	Reasoning  int64 `json:"reasoning"`
	Total      int64 `json:"total"`
}

func (a codexUsage) covers(b codexUsage) bool {
	return a.Input >= b.Input && a.Cached >= b.Cached && a.CacheWrite >= b.CacheWrite &&
		a.Output >= b.Output && a.Reasoning >= b.Reasoning
}

func (a codexUsage) minus(b codexUsage) codexUsage {
	return codexUsage{a.Input - b.Input, a.Cached - b.Cached, a.CacheWrite - b.CacheWrite,
		a.Output - b.Output, a.Reasoning - b.Reasoning, a.Total - b.Total}
}

func (a codexUsage) plus(b codexUsage) codexUsage {
	return codexUsage{a.Input + b.Input, a.Cached + b.Cached, a.CacheWrite + b.CacheWrite,
		a.Output + b.Output, a.Reasoning + b.Reasoning, a.Total + b.Total}
}

// uncovered is what of a is not in b, field by field (never negative).
func (a codexUsage) uncovered(b codexUsage) codexUsage {
	return codexUsage{max(a.Input-b.Input, 0), max(a.Cached-b.Cached, 0), max(a.CacheWrite-b.CacheWrite, 0),
		max(a.Output-b.Output, 0), max(a.Reasoning-b.Reasoning, 0), max(a.Total-b.Total, 0)}
}

// codexTokenFields are the token fields of a TokenUsage the reader knows.
var codexTokenFields = map[string]bool{
	"input_tokens": true, "cached_input_tokens": true, "cache_write_input_tokens": true,
	"output_tokens": true, "reasoning_output_tokens": true, "total_tokens": true,
}

// readCodexUsage reads a TokenUsage; drift names a non-zero numeric field
// it does not know ("" when none).
func readCodexUsage(v *fastjson.Value) (u codexUsage, ok bool, drift string) {
	if v == nil || v.Type() != fastjson.TypeObject {
		return codexUsage{}, false, ""
	}
	return codexUsage{
		Input:      tokens(v, "input_tokens"),
		Cached:     tokens(v, "cached_input_tokens"),
		CacheWrite: tokens(v, "cache_write_input_tokens"),
		Output:     tokens(v, "output_tokens"),
		Reasoning:  tokens(v, "reasoning_output_tokens"),
		Total:      tokens(v, "total_tokens"),
	}, true, unknownField(v, codexTokenFields)
}

// threadMetaPrefix keys a Codex thread's parent in the session_meta bucket.
const threadMetaPrefix = "codex-thread:"

// learnThread keeps a thread → parent link, in memory and in the batch.
func (in *Ingester) learnThread(b *storage.Batch, thread, parent string) {
	if in.threads[thread] == parent || len(thread) > storage.MaxNameBytes {
		return
	}
	in.threads[thread] = parent
	b.SessionMeta[threadMetaPrefix+thread] = []byte(parent)
}

// codexFamilyKey puts a token_count key in its family's namespace: the
// history thread is replaced by the root of its chain of parents.
func (in *Ingester) codexFamilyKey(key string) string {
	rest, ok := strings.CutPrefix(key, "codex|")
	if !ok {
		return key
	}
	ns, tail, ok := strings.Cut(rest, "|")
	if !ok {
		return key
	}
	root := ns
	for range 32 { // a cycle in untrusted links must not hang the commit
		p, ok := in.threads[root]
		if !ok || p == root {
			break
		}
		root = p
	}
	if root == ns {
		return key
	}
	return "codex|" + root + "|" + tail
}

// codexParent is the parent a session_meta names: a fork's forked_from_id,
// a spawned sub-agent's parent thread.
func codexParent(payload *fastjson.Value) string {
	for _, path := range [][]string{
		{"forked_from_id"}, {"parent_thread_id"}, {"source", "subagent", "thread_spawn", "parent_thread_id"},
	} {
		if id := payload.GetStringBytes(path...); len(id) > 0 {
			return string(id)
		}
	}
	return ""
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
	return CodexRoots(in.cfg.Env, in.homes())
}

// CodexRoots are the Codex homes a discovering ingest looks in, each
// holding sessions/ or archived_sessions/ when Codex runs there:
// $CODEX_HOME and each home's .codex. Install and doctor look there too.
func CodexRoots(env func(string) string, homes []string) []string {
	var roots []string
	if d := env("CODEX_HOME"); d != "" {
		roots = append(roots, d)
	}
	for _, h := range homes {
		roots = append(roots, filepath.Join(h, ".codex"))
	}
	return dedupePaths(roots)
}

// codexCandidates lists every rollout under the Codex homes and marks each
// directory it listed completely; found lists the homes read. An explicit
// home that does not exist is an error; one without sessions/ or
// archived_sessions/ (nothing run yet) is said once.
func (in *Ingester) codexCandidates(listed map[string]bool) (out []candidate, found []string, err error) {
	for _, root := range in.codexRoots() {
		ok := false
		for _, sub := range []string{"sessions", "archived_sessions"} {
			dir := filepath.Join(root, sub)
			read := in.walkJSONL(dir, nil, listed, 0, func(path string, rel []string, link bool) {
				name := rel[len(rel)-1]
				out = append(out, candidate{
					path: path, name: name, agent: "codex", sessionID: codexSessionFromName(name), format: formatCodex, link: link,
				})
			})
			ok = ok || read // listed only when looked at in this step
		}
		switch {
		case ok:
			found = append(found, root)
		case len(in.cfg.CodexDirs) > 0:
			if _, err := os.Stat(root); err != nil {
				return nil, nil, fmt.Errorf("codex dir %s: %w", root, err)
			}
			in.warnOnce(root, "codex dir has no sessions/ or archived_sessions/ folder (yet)")
		}
	}
	return out, found, nil
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
	codexUsageRecord = []byte(`"token_usage_record"`)
	codexTier        = []byte(`"service_tier"`)
	codexInputTokens = []byte(`"input_tokens"`)
)

// codexKnownTypes are the line types the reader knows; a line of another
// type that carries token counts is format drift.
var codexKnownTypes = map[string]bool{
	"session_meta": true, "turn_context": true, "response_item": true, "event_msg": true,
	"compacted": true, "token_usage_record": true,
}

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
		case "session_meta", "turn_context", "token_usage_record":
		case "event_msg":
			if !bytes.Contains(line, codexTokenCount) && !bytes.Contains(line, codexTier) {
				return
			}
		case "response_item", "compacted":
			return
		default:
			if !bytes.Contains(line, codexInputTokens) {
				return // a type we do not read, with no token counts
			}
		}
	} else if !bytes.Contains(line, codexTokenCount) && !bytes.Contains(line, codexSessionMeta) &&
		!bytes.Contains(line, codexTurnContext) && !bytes.Contains(line, codexUsageRecord) && !bytes.Contains(line, codexTier) {
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
	switch typ := string(v.GetStringBytes("type")); typ {
	case "session_meta":
		id := string(payload.GetStringBytes("id"))
		parent := codexParent(payload)
		c.link(id, parent)
		if !st.Own {
			st.Own = true
			st.Originator = string(payload.GetStringBytes("originator"))
			if id != "" {
				cur.SessionID = id
			}
			if cwd := payload.GetStringBytes("cwd"); len(cwd) > 0 {
				if name := cwdName(string(cwd)); name != "" {
					cur.Agent = name
				}
			}
		}
		history := firstNonEmpty(parent, id)
		if history != "" {
			// A new history: its totals start again from the unknown.
			st.History, st.HasTotal, st.Total, st.RecSum, st.LastCall = history, false, codexUsage{}, codexUsage{}, nil
		}
		cur.Codex = &st
	case "turn_context":
		m := string(payload.GetStringBytes("model"))
		tier := st.Tier
		if t := payload.GetStringBytes("service_tier"); t != nil {
			tier = string(t)
		}
		if (m != "" && m != st.Model) || tier != st.Tier {
			st.Model, st.Tier = firstNonEmpty(m, st.Model), tier
			cur.Codex = &st
		}
	case "event_msg":
		switch string(payload.GetStringBytes("type")) {
		case "token_count":
			r.codexTokens(v, payload, &st, cur, c)
		case "thread_settings_applied":
			if t := payload.Get("thread_settings", "service_tier"); t != nil && t.Type() == fastjson.TypeString {
				st.Tier = string(t.GetStringBytes())
				cur.Codex = &st
			}
		}
	case "token_usage_record":
		r.codexRecord(v, payload, &st, cur, c)
	default:
		if !codexKnownTypes[typ] {
			c.unrecognized(storage.SourceCodex, "type "+typ)
		}
	}
}

// codexTokens turns a token_count event into a record (or a skip).
func (r *fileReader) codexTokens(v, payload *fastjson.Value, st *codexState, cur *fileCursor, c *chunk) {
	r.in.noteRateLimits(payload.Get("rate_limits"), parseTimestamp(v.Get("timestamp")))
	info := payload.Get("info")
	if info == nil || info.Type() != fastjson.TypeObject {
		return // a rate-limit update: no usage
	}
	total, hasTotal, drift := readCodexUsage(info.Get("total_token_usage"))
	last, hasLast, drift2 := readCodexUsage(info.Get("last_token_usage"))
	if !hasTotal && !hasLast {
		return
	}
	if drift = firstNonEmpty(drift, drift2); drift != "" {
		c.unrecognized(storage.SourceCodex, drift)
	}
	history := st.History
	if history == "" {
		history = cur.SessionID
	}
	ts := parseTimestamp(v.Get("timestamp"))
	var call codexUsage
	var key []byte
	next := *st
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
		next.Total, next.HasTotal = total, true
		key = codexKey(history, "", total)
	} else {
		if ts == 0 {
			c.skips.Malformed++
			return
		}
		call = last
		key = codexKey(history, strconv.FormatInt(ts, 10), last)
	}
	// What token_usage_records since the last token_count counted already.
	own := call.uncovered(st.RecSum)
	next.RecSum, next.LastCall = codexUsage{}, nil
	if own != (codexUsage{}) {
		next.LastCall = &own
	}
	cur.Codex = &next
	if own == (codexUsage{}) {
		if call != (codexUsage{}) {
			c.skips.Duplicate++ // counted from its token_usage_record
		}
		return
	}
	tier := firstNonEmpty(string(payload.GetStringBytes("service_tier")), st.Tier)
	r.codexCall(own, ts, string(key), firstNonEmpty(string(payload.GetStringBytes("model")), string(info.GetStringBytes("model")), st.Model), tier, st, cur, c)
}

// codexRecord turns a token_usage_record line into a record (or a skip).
func (r *fileReader) codexRecord(v, payload *fastjson.Value, st *codexState, cur *fileCursor, c *chunk) {
	usage, ok, drift := readCodexUsage(payload.Get("usage"))
	if !ok {
		c.unrecognized(storage.SourceCodex, "token_usage_record without usage")
		return
	}
	if drift != "" {
		c.unrecognized(storage.SourceCodex, drift)
	}
	next := *st
	if st.LastCall != nil && *st.LastCall == usage {
		// The token_count just before counted this very response.
		next.LastCall = nil
		cur.Codex = &next
		c.skips.Duplicate++
		return
	}
	next.RecSum = st.RecSum.plus(usage)
	next.LastCall = nil
	cur.Codex = &next
	ts := parseTimestamp(v.Get("timestamp"))
	key := "codex|resp|" + string(payload.GetStringBytes("response_id"))
	if len(payload.GetStringBytes("response_id")) == 0 {
		history := firstNonEmpty(st.History, cur.SessionID)
		key = string(codexKey(history, "r"+strconv.FormatInt(ts, 10), usage))
	}
	tier := firstNonEmpty(string(payload.GetStringBytes("service_tier")), st.Tier)
	r.codexCall(usage, ts, key, firstNonEmpty(string(payload.GetStringBytes("model")), st.Model), tier, st, cur, c)
}

// codexCall records one Codex call: uncached input is input minus cached
// and cache-write tokens, both of which Codex counts inside input_tokens.
func (r *fileReader) codexCall(call codexUsage, ts int64, key, model, tier string, st *codexState, cur *fileCursor, c *chunk) {
	if strings.Contains(strings.ToLower(st.Originator), "openclaw") {
		if call != (codexUsage{}) {
			c.skips.Duplicate++ // counted in OpenClaw's transcript
		}
		return
	}
	cacheRead := min(call.Cached, call.Input)
	cacheWrite := min(call.CacheWrite, call.Input-cacheRead)
	u := storage.Usage{
		TS: ts, Source: storage.SourceCodex, Agent: cur.Agent, SessionID: cur.SessionID,
		Provider: "openai", Model: model,
		Input:      max(call.Input-cacheRead-cacheWrite, 0),
		CacheRead:  cacheRead,
		CacheWrite: cacheWrite,
		Output:     call.Output,
		Reasoning:  min(call.Reasoning, call.Output),
		Modifier:   tier,
		DedupeKey:  key,
	}
	r.owner.attribute(&u)
	if u.TotalTokens() == 0 {
		c.skips.ZeroUsage++
		return
	}
	if u.TS == 0 {
		c.skips.Malformed++ // a call with no time cannot be placed in a day
		return
	}
	r.in.record(&c.calls, u)
}

// codexKey is "codex|<history>|[<ts>|]<input>|<cached>|<output>|<reasoning>|<total>[|w<cache write>]".
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
	if n.CacheWrite != 0 { // absent in older versions: their keys stay as they were
		b = append(b, "|w"...)
		b = strconv.AppendInt(b, n.CacheWrite, 10)
	}
	return b
}
