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

// Claude Code transcripts (shared/reference/openclaw-format.md §9):
// <config>/projects/<encoded cwd>/<session>.jsonl, with sub-agents and side
// chats under <project>/<session>/subagents/agent-<id>.jsonl. Only
// assistant entries carry usage, in the Anthropic convention (input
// excludes cache reads and writes).
//
// Counting rules, kept equivalent to ccusage's (adapter/claude, PR #1155):
//   - One API response is written as several lines, one per content block,
//     each repeating message.id, requestId and a usage whose output grows
//     while the response streams. They share a dedupe key, and the copy
//     with the largest token total is the one kept (storage.Supersedes).
//   - Sidechain replays (/btw side questions, auto-compaction: isSidechain
//     true) re-log the parent's assistant messages with the same message.id
//     and a NEW requestId (ccusage issue #913). The key is therefore
//     message.id alone: a message id names exactly one API response, so a
//     replay lands on its parent's key and counts once, with the parent's
//     time and session (storage.AdoptIdentity). requestId only matters for
//     lines without a message id. The main-chain copy wins over a replay
//     even when the replay's counts are larger, as in ccusage
//     (Usage.Sidechain, storage.Supersedes).
//   - model "<synthetic>" and isApiErrorMessage lines are Claude Code's own
//     notices, not calls (not_model_call); all-zero usage is zero_usage.
//   - type "progress" lines that embed a sub-agent's assistant entry under
//     data.message are read like direct entries (older Claude Code wrote
//     some sub-agent calls only there); the key merges them with any other
//     copy.
//
// The agent is the project: the base name of the first cwd a usage line of
// the file records (what the user calls the project), falling back to the
// encoded project directory name. Two projects with the same base name in
// different places therefore share an agent; the encoded name would keep
// them apart but reads like "-home-ubuntu-work-app".

// claudeRoots returns the Claude Code config dirs to read: the configured
// ones, else (with discovery) $CLAUDE_CONFIG_DIR (a comma list),
// $XDG_CONFIG_HOME/claude, and ~/.claude and ~/.config/claude under every
// home.
func (in *Ingester) claudeRoots() []string {
	if len(in.cfg.ClaudeDirs) > 0 {
		return dedupePaths(in.cfg.ClaudeDirs)
	}
	if !in.cfg.Discover {
		return nil
	}
	return ClaudeRoots(in.cfg.Env, in.homes())
}

// ClaudeRoots are the Claude Code config dirs a discovering ingest looks
// in, each holding projects/ (or being it) when Claude Code runs there:
// $CLAUDE_CONFIG_DIR (a comma list), $XDG_CONFIG_HOME/claude, and each
// home's .claude and .config/claude. Install and doctor look there too.
func ClaudeRoots(env func(string) string, homes []string) []string {
	var roots []string
	for _, d := range strings.Split(env("CLAUDE_CONFIG_DIR"), ",") {
		if d = strings.TrimSpace(d); d != "" {
			roots = append(roots, d)
		}
	}
	if x := env("XDG_CONFIG_HOME"); x != "" {
		roots = append(roots, filepath.Join(x, "claude"))
	}
	for _, h := range homes {
		roots = append(roots, filepath.Join(h, ".claude"), filepath.Join(h, ".config", "claude"))
	}
	return dedupePaths(roots)
}

// homes is the configured home list, or this host's when discovering.
func (in *Ingester) homes() []string {
	if in.cfg.Homes != nil {
		return in.cfg.Homes
	}
	return Homes()
}

// claudeProjectsDir is root/projects, or root itself when it already is a
// projects dir (CLAUDE_CONFIG_DIR may name either).
func claudeProjectsDir(root string) (string, bool) {
	for _, d := range []string{filepath.Join(root, "projects"), root} {
		if filepath.Base(d) != "projects" {
			continue
		}
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d, true
		}
	}
	return "", false
}

// claudeCandidates lists every Claude Code transcript under the roots and
// marks each directory it listed completely; found lists the projects/ dirs read. An explicit dir without one is an
// error, as an OpenClaw dir without agents/ is.
func (in *Ingester) claudeCandidates(listed map[string]bool) (out []candidate, found []string, err error) {
	for _, root := range in.claudeRoots() {
		projects, ok := claudeProjectsDir(root)
		if !ok {
			if len(in.cfg.ClaudeDirs) > 0 {
				if _, err := os.Stat(root); err != nil {
					return nil, nil, fmt.Errorf("claude dir %s: %w", root, err)
				}
				in.warnOnce(root, "claude dir has no projects/ folder (yet)")
			}
			continue
		}
		entries, err := in.readDir(projects)
		if err != nil {
			in.warnOnce(projects, "cannot list claude projects: "+err.Error())
			continue
		}
		found = append(found, projects)
		listed[projects] = true // watched too: a new project is an event here
		for _, e := range entries {
			if !e.dir {
				continue
			}
			project := e.name
			dir := filepath.Join(projects, project)
			if e.link && !in.followLink(dir) {
				continue
			}
			in.walkJSONL(dir, nil, listed, 0, func(path string, rel []string, link bool) {
				// <session>.jsonl, or <session>/subagents/agent-<id>.jsonl:
				// a sub-agent belongs to the session whose folder holds it.
				sid := strings.TrimSuffix(rel[0], ".jsonl")
				out = append(out, candidate{
					path: path, name: rel[len(rel)-1], agent: project, sessionID: sid, format: formatClaude, link: link,
				})
			})
		}
	}
	return out, found, nil
}

// claudeUsageMarker: only lines that mention usage can be calls, and the
// others (most of the bytes: tool results, user turns) are not parsed.
var claudeUsageMarker = []byte(`"usage"`)

// claudeLine turns one Claude Code line into a record or a skip count. A
// line that mentions usage is skimmed and read from its members
// (claudeskim.go), or parsed whole when the skimmer cannot vouch for it.
func (r *fileReader) claudeLine(line []byte, cur *fileCursor, c *chunk) {
	if line = claudeMaybeCall(line, c); line == nil {
		return
	}
	if r.claudeSkim(line) {
		if r.claudeDirect(cur, c) {
			return
		}
		line = r.claudeSmall()
	}
	r.claudeEntry(line, cur, c)
}

// claudeMaybeCall returns the line trimmed when it may be a call, else nil
// (a line that is not even shaped like an object is counted malformed).
func claudeMaybeCall(line []byte, c *chunk) []byte {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	if !bytes.Contains(line, claudeUsageMarker) {
		// User turns, tool results, summaries: not parsed. A line that is
		// not even shaped like an object is garbage or a torn write.
		if line[0] != '{' || line[len(line)-1] != '}' {
			c.skips.Malformed++
		}
		return nil
	}
	return line
}

// claudeEntry reads a line that mentions usage (the reference path: the
// whole line, or the skimmer's copy of what it reads).
func (r *fileReader) claudeEntry(line []byte, cur *fileCursor, c *chunk) {
	v, err := r.parser.p.ParseBytes(line)
	if err != nil || v.Type() != fastjson.TypeObject {
		c.skips.Malformed++
		return
	}
	entry := v
	if claudeUsage(entry) == nil {
		// A sub-agent's progress line carries the assistant entry under
		// data.message; anything else (a tool result that quotes a usage
		// block, a Task result's usage summary) is not a call.
		entry = v.Get("data", "message")
		if entry == nil || entry.Type() != fastjson.TypeObject || claudeUsage(entry) == nil {
			return
		}
	}
	u, reason, drift := claudeRecord(entry)
	if !c.claudeCounted(reason) {
		return
	}
	// The line's session (a sub-agent's file names its parent's), else the
	// progress line's around it, else the file's.
	sid := entry.GetStringBytes("sessionId")
	if len(sid) == 0 {
		sid = v.GetStringBytes("sessionId")
	}
	r.claudeCall(&u, drift, sid, v.GetStringBytes("cwd"), cur, c)
}

// claudeCounted counts a line that is not a call as skipped, and reports
// whether it is one.
func (c *chunk) claudeCounted(outcome claudeOutcome) bool {
	switch outcome {
	case claudeOK:
		return true
	case claudeNotCall:
		c.skips.NotModelCall++
	case claudeZero:
		c.skips.ZeroUsage++
	default:
		c.skips.Malformed++
	}
	return false
}

// claudeCall adds a call read by claudeRecord, in the session sid (else
// the file's), naming the file's agent from the line's cwd when the agent
// is still the encoded project folder.
func (r *fileReader) claudeCall(u *storage.Usage, drift string, sid, cwd []byte, cur *fileCursor, c *chunk) {
	u.SessionID = cur.SessionID
	if len(sid) > 0 {
		if string(sid) != r.session {
			r.session = string(sid) // a file's calls share their session: one string
		}
		u.SessionID = r.session
	}
	if len(cwd) > 0 && cur.Agent == r.claudeProject(cur.Path) {
		if name := cwdName(string(cwd)); name != "" {
			cur.Agent = name
		}
	}
	u.Agent = cur.Agent
	r.owner.attribute(u)
	if drift != "" {
		c.unrecognized(storage.SourceClaude, drift)
	}
	// A streamed response is written once per content block: keep one
	// copy per chunk, the one the ledger would keep (the same rule,
	// storage.Supersedes, and the first copy's identity), so the committer
	// sees each response once instead of three to five times.
	latest := r.latestOf(c)
	i, ok := len(c.records)-1, len(c.records) > 0 && c.records[len(c.records)-1].DedupeKey == u.DedupeKey
	if !ok {
		i, ok = latest[u.DedupeKey] // the copies of a response are mostly one after the other
	}
	if ok {
		old := &c.records[i]
		if !storage.Supersedes(old, u) {
			c.skips.Duplicate++
			return
		}
		u.AdoptIdentity(old)
		*old = *u
		r.in.pricer.Apply(old) // priced where it lies, as record does
		return
	}
	latest[u.DedupeKey] = len(c.records)
	r.in.record(&c.calls, *u)
}

// latestOf is the index of c's records by dedupe key: one map per reader,
// emptied for each chunk (and dropped when a chunk made it large).
func (r *fileReader) latestOf(c *chunk) map[string]int {
	if r.latestFor != c {
		r.latestFor = c
		if r.latest == nil || len(r.latest) > 1024 {
			r.latest = map[string]int{}
		} else {
			clear(r.latest)
		}
	}
	return r.latest
}

// claudeProject is claudeProject(path), kept for the file being read.
func (r *fileReader) claudeProject(path string) string {
	if path != r.projectOf {
		r.projectOf, r.project = path, claudeProject(path)
	}
	return r.project
}

// readClaudeUsage reads an Anthropic usage object in one pass over its
// fields (a transcript has one per streamed content block, so this is the
// reader's hot path): tokens, the 5-minute/1-hour split of cache writes,
// fast mode or a batch tier (the pricer's modifier table knows their
// multiples), server tool requests. It returns the first non-zero number
// under a key it does not know ("field <key>"), or "".
func readClaudeUsage(usage *fastjson.Value, u *storage.Usage) (drift string) {
	var split *fastjson.Value
	var speed, tier []byte
	hasWrite := false
	usage.GetObject().Visit(func(k []byte, x *fastjson.Value) {
		switch string(k) {
		case "input_tokens":
			u.Input = count(x)
		case "output_tokens":
			u.Output = count(x) // includes thinking
		case "cache_read_input_tokens":
			u.CacheRead = count(x)
		case "cache_creation_input_tokens":
			u.CacheWrite, hasWrite = count(x), true
		case "cache_creation":
			if x.Type() == fastjson.TypeObject {
				split = x
			}
		case "speed":
			speed, _ = x.StringBytes()
		case "service_tier":
			tier, _ = x.StringBytes()
		case "server_tool_use":
			u.WebSearches = tokens(x, "web_search_requests")
			u.WebFetches = tokens(x, "web_fetch_requests")
		default:
			if drift == "" && x.Type() == fastjson.TypeNumber && x.GetFloat64() != 0 {
				drift = "field " + string(k)
			}
		}
	})
	if split != nil {
		hour := tokens(split, "ephemeral_1h_input_tokens")
		if !hasWrite {
			u.CacheWrite = tokens(split, "ephemeral_5m_input_tokens") + hour
		}
		u.CacheWrite1h = min(hour, u.CacheWrite)
	}
	u.Modifier = string(speed)
	if u.Modifier == "" || u.Modifier == "standard" {
		u.Modifier = string(tier)
	}
	return drift
}

// claudeUsage is entry.message.usage when entry is an assistant entry.
func claudeUsage(entry *fastjson.Value) *fastjson.Value {
	u := entry.Get("message", "usage")
	if u == nil || u.Type() != fastjson.TypeObject {
		return nil
	}
	return u
}

type claudeOutcome int

const (
	claudeOK        claudeOutcome = iota
	claudeNotCall                 // <synthetic> notices and API error messages
	claudeZero                    // all-zero usage
	claudeMalformed               // no usable time
)

// claudeRecord reads the call in an assistant entry (entry.message.usage
// must exist), and names a usage field it does not know (drift). Agent,
// session and pricing are the caller's.
func claudeRecord(entry *fastjson.Value) (u storage.Usage, outcome claudeOutcome, drift string) {
	msg := entry.Get("message")
	usage := msg.Get("usage")
	u = storage.Usage{Source: storage.SourceClaude, Provider: "anthropic", Model: string(msg.GetStringBytes("model"))}
	if u.Model == "<synthetic>" || entry.GetBool("isApiErrorMessage") {
		return u, claudeNotCall, ""
	}
	drift = readClaudeUsage(usage, &u)
	if u.TotalTokens() == 0 {
		return u, claudeZero, drift
	}
	if u.TS = parseTimestamp(entry.Get("timestamp")); u.TS == 0 {
		return u, claudeMalformed, drift // a call with no time cannot be placed in a day
	}
	// Old Claude Code versions wrote their own estimate; the pricer keeps a
	// positive one as the transcript's cost and prices the rest.
	if cost := num(fjObject{entry}, "costUSD"); cost > 0 {
		u.Cost.Total = cost
	}
	u.Sidechain = entry.GetBool("isSidechain")
	u.DedupeKey = claudeDedupeKey(&u, msg.GetStringBytes("id"), entry.GetStringBytes("requestId"), entry.GetStringBytes("uuid"))
	return u, claudeOK, drift
}

// claudeDedupeKey: "claude|<message.id>" (see the rules above); lines
// without a message id fall back to the request id, the entry's uuid
// (kept when Claude Code copies history into a resumed session), and last
// to the call's content.
func claudeDedupeKey(u *storage.Usage, msgID, requestID, uuid []byte) string {
	b := make([]byte, 0, 48)
	b = append(b, "claude|"...)
	switch {
	case len(msgID) > 0:
		return string(append(b, msgID...))
	case len(requestID) > 0:
		return string(append(append(b, "req|"...), requestID...))
	case len(uuid) > 0:
		return string(append(append(b, "uuid|"...), uuid...))
	}
	b = append(b, u.Model...)
	for _, n := range []int64{u.TS, u.Input, u.Output, u.CacheRead, u.CacheWrite} {
		b = append(b, '|')
		b = strconv.AppendInt(b, n, 10)
	}
	return string(b)
}

// claudeProject is the encoded project folder of a transcript path: the
// component after the last "projects". It is the agent a file starts with,
// before a cwd names the project better. (Called per record: no allocation.)
func claudeProject(path string) string {
	const sep = string(filepath.Separator)
	i := strings.LastIndex(path, sep+"projects"+sep)
	if i < 0 {
		return ""
	}
	rest := path[i+len("projects")+2:]
	if j := strings.Index(rest, sep); j >= 0 {
		return rest[:j]
	}
	return ""
}
