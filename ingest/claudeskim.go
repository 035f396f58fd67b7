package ingest

import (
	"bytes"

	"github.com/fleetmeter/fleetmeter/storage"
)

// The Claude Code line skimmer. Parsing every line that mentions usage
// whole with fastjson was a third of the reader's time: an assistant line
// carries its message's content (text, tool_use inputs) around the few
// members the reader reads. The skimmer of the OpenClaw reader (skim.go)
// walks the line once with fastjson's grammar, so a line is malformed for
// it exactly when it is for fastjson, and records by claudePlan the members
// of the line, of its first "message" and that one's first "usage" (and the
// usage's cache_creation and server_tool_use), of its first "data" and that
// one's first "message" (a sub-agent's entry in a progress line) and of that
// entry's first "message". Then:
//   - claudeDirect reads an assistant entry of the usual shape (nearly
//     every line that mentions usage) straight from those members, as
//     claudeEntry reads it;
//   - for any other line, claudeSmall copies what claudeEntry reads into a
//     small object, in the same order (duplicates too: fastjson's Get takes
//     the first), each value as written and no deeper than it was, and
//     claudeEntry reads that as it reads a whole line;
//   - a line with an escaped key among the members recorded (fastjson
//     matches keys after unescaping them), and one fastjson would not parse,
//     go whole to claudeEntry: the reference.
//
// TestClaudeSkimMatchesEntry and FuzzClaudeSkimMatchesEntry hold the three
// paths to one result.

// The frames of the Claude Code plan.
const (
	clTop       = iota // the entry
	clMsg              // its first "message"
	clData             // its first "data"
	clDataEntry        // that one's first "message": a sub-agent's entry
	clDataMsg          // that entry's first "message"
	clUsage            // the entry's message's first "usage"
	clSplit            // that one's first "cache_creation"
	clTools            // and its first "server_tool_use"
)

var claudePlan = newSkimPlan(false, skimRule{clTop, clMsg, "message"}, skimRule{clTop, clData, "data"},
	skimRule{clData, clDataEntry, "message"}, skimRule{clDataEntry, clDataMsg, "message"},
	skimRule{clMsg, clUsage, "usage"}, skimRule{clUsage, clSplit, "cache_creation"}, skimRule{clUsage, clTools, "server_tool_use"})

// What claudeEntry and claudeRecord read of an entry besides its message
// (cwd only of the line's own), and of a message.
var (
	claudeEntryKeys = []string{"sessionId", "cwd", "timestamp", "costUSD", "isSidechain", "isApiErrorMessage", "requestId", "uuid"}
	claudeMsgKeys   = []string{"model", "id", "usage"}
)

// claudeSkim skims line (trimmed, mentioning usage) and reports whether
// the skimmer can vouch for reading it from its members: claudeDirect or
// claudeSmall then read it as claudeEntry would.
func (r *fileReader) claudeSkim(line []byte) bool {
	if line[0] != '{' {
		return false
	}
	s := &r.parser.skim
	s.reset(line, claudePlan)
	return s.line() == skimOK && !s.escaped
}

// claudeSmall returns the small object claudeEntry reads for the line
// skimmed as it would read the line. It lives in the parser's buffer until
// the next line.
func (r *fileReader) claudeSmall() []byte {
	r.parser.small = r.parser.skim.appendClaudeEntry(r.parser.small[:0], clTop, clMsg, clData)
	return r.parser.small
}

// appendClaudeEntry appends the entry recorded in frame f: the members
// claudeEntry reads, its first message (frame msg) with only the members
// claudeRecord reads, and, when data is a frame, its first data member
// with only its first message, an entry appended the same way.
func (s *skimmer) appendClaudeEntry(b []byte, f, msg, data int) []byte {
	b = append(b, '{')
	for i, m := range s.rec[f].ms {
		isMsg, isData := i == s.rec[msg].at, data >= 0 && i == s.rec[data].at
		switch {
		case isMsg && s.b[m.v0] == '{':
			b = append(s.appendKey(b, m), '{')
			for _, mm := range s.rec[msg].ms {
				if isOneOf(s.b[mm.k0:mm.k1], claudeMsgKeys) {
					b = s.appendMember(b, mm)
				}
			}
			b = append(b, '}')
		case isData && s.b[m.v0] == '{':
			b = append(s.appendKey(b, m), '{')
			if at := s.rec[clDataEntry].at; at >= 0 {
				if em := s.rec[data].ms[at]; s.b[em.v0] == '{' {
					b = s.appendClaudeEntry(s.appendKey(b, em), clDataEntry, clDataMsg, -1)
				} else {
					b = s.appendMember(b, em)
				}
			}
			b = append(b, '}')
		case isMsg || isData || isOneOf(s.b[m.k0:m.k1], claudeEntryKeys):
			b = s.appendMember(b, m)
		}
	}
	return append(b, '}')
}

// claudeDirect reads the line skimmed as claudeEntry would when it is an
// assistant entry of the usual shape (its first message an object whose
// first usage is an object), straight from its members, and reports
// whether it did. It did not (and counted nothing) when a member it reads
// is not plain: a string with escapes, cache_creation or server_tool_use
// twice in the usage.
func (r *fileReader) claudeDirect(cur *fileCursor, c *chunk) bool {
	s := &r.parser.skim
	top, msg := s.rec[clTop].ms, s.rec[clMsg].ms
	if at := s.rec[clMsg].at; at < 0 || s.b[top[at].v0] != '{' {
		return false
	}
	if at := s.rec[clUsage].at; at < 0 || s.b[msg[at].v0] != '{' {
		return false
	}
	// What claudeRecord and claudeCall read, all of it first: any may make
	// the line not plain. (A cwd with escapes, as Windows paths have, only
	// matters while it may still name the agent.)
	model, ok0 := r.parser.name(msg, "model")
	msgID, ok1 := s.plainText(msg, "id")
	requestID, ok2 := s.plainText(top, "requestId")
	uuid, ok3 := s.plainText(top, "uuid")
	sid, ok4 := s.plainText(top, "sessionId")
	ts, ok5 := s.timestamp(top, "timestamp")
	cwd, ok6 := s.plainText(top, "cwd")
	ok6 = ok6 || cur.Agent != r.claudeProject(cur.Path)
	u := storage.Usage{Source: storage.SourceClaude, Provider: "anthropic", Model: model}
	drift, plain := r.claudeUsage(&u)
	if !(plain && ok0 && ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return false
	}
	outcome := claudeOK
	switch {
	case u.Model == "<synthetic>" || s.is(top, "isApiErrorMessage", "true"):
		outcome = claudeNotCall
	case u.TotalTokens() == 0:
		outcome = claudeZero
	case ts == 0:
		outcome = claudeMalformed
	}
	if !c.claudeCounted(outcome) {
		return true
	}
	u.TS = ts
	if cost := costOf(s.frame(clTop).number("costUSD")); cost > 0 {
		u.Cost.Total = cost
	}
	u.Sidechain = s.is(top, "isSidechain", "true")
	u.DedupeKey = claudeDedupeKey(&u, msgID, requestID, uuid)
	r.claudeCall(&u, drift, sid, cwd, cur, c)
	return true
}

// claudeUsage is readClaudeUsage on the skimmed members of the message's
// usage; plain is false when a string it reads has escapes, or an object
// it reads is there twice (the last one counts there, and the skim
// recorded the first).
func (r *fileReader) claudeUsage(u *storage.Usage) (drift string, plain bool) {
	s := &r.parser.skim
	var speed, tier []byte
	hasWrite, splits, tools := false, 0, 0
	for _, m := range s.rec[clUsage].ms {
		k := s.b[m.k0:m.k1]
		switch string(k) {
		case "input_tokens":
			u.Input = countOf(s.numberOf(m))
		case "output_tokens":
			u.Output = countOf(s.numberOf(m)) // includes thinking
		case "cache_read_input_tokens":
			u.CacheRead = countOf(s.numberOf(m))
		case "cache_creation_input_tokens":
			u.CacheWrite, hasWrite = countOf(s.numberOf(m)), true
		case "cache_creation":
			splits++
		case "speed", "service_tier":
			v, ok := s.stringOf(m)
			if !ok {
				return "", false
			}
			if k[1] == 'p' {
				speed = v
			} else {
				tier = v
			}
		case "server_tool_use":
			tools++
			u.WebSearches = countOf(s.frame(clTools).number("web_search_requests"))
			u.WebFetches = countOf(s.frame(clTools).number("web_fetch_requests"))
		default:
			if drift == "" && s.numberOf(m) != 0 {
				drift = "field " + string(k)
			}
		}
	}
	if splits > 1 || tools > 1 {
		return "", false
	}
	if at := s.rec[clSplit].at; at >= 0 && s.b[s.rec[clUsage].ms[at].v0] == '{' {
		hour := countOf(s.frame(clSplit).number("ephemeral_1h_input_tokens"))
		if !hasWrite {
			u.CacheWrite = countOf(s.frame(clSplit).number("ephemeral_5m_input_tokens")) + hour
		}
		u.CacheWrite1h = min(hour, u.CacheWrite)
	}
	u.Modifier = r.parser.intern(speed)
	if u.Modifier == "" || u.Modifier == "standard" {
		u.Modifier = r.parser.intern(tier)
	}
	return drift, true
}

// stringOf is fastjson's StringBytes of a member's value: nil unless it is
// a string; ok is false for a string with escapes.
func (s *skimmer) stringOf(m member) (v []byte, ok bool) {
	if s.b[m.v0] != '"' {
		return nil, true
	}
	v = s.b[m.v0+1 : m.v1-1]
	return v, bytes.IndexByte(v, '\\') < 0
}

// skimMembers reads numbers from a frame's members as fjObject reads them
// (GetFloat64: 0 when absent or not a number).
type skimMembers struct {
	s  *skimmer
	ms []member
}

func (o skimMembers) number(key string) float64 {
	m, found := o.s.find(o.ms, key)
	if !found {
		return 0
	}
	return o.s.numberOf(m)
}

func (s *skimmer) frame(f int) skimMembers { return skimMembers{s, s.rec[f].ms} }
