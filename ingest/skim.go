package ingest

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strings"
)

// The OpenClaw line skimmer: one pass over a JSONL line that decides what
// lineParser.parse (the reference) would decide, without its text searches
// and without parsing what cannot matter.
//
// parse finds a line's kind with up to five whole-line text searches
// ("message":{"role":", "usage", "type":"session", "role":"user" and, for
// torn writes, {"type":"message"; the last three with any blanks around
// their colon) and then parses the whole line with
// fastjson. The skimmer walks the line's JSON structure once instead, with
// fastjson's own grammar (so a line is malformed for it exactly when it is
// for fastjson), jumping over strings with a vectorised byte search, and
// learns from the structure what those searches would have found: in a line
// that parses, a quote is either a string's delimiter or escaped inside it,
// so each text pattern can only occur as a certain key followed by certain
// bytes, or as a string token with certain content (see the checks in
// skimmer.key). The few members the line's kind depends on (type, id,
// timestamp, usage, and message's role, provider, model, api, usage,
// timestamp, responseId, provenance, content) are copied into a small
// object that the reference's own code (lineParser.full) then reads.
//
// A line the skimmer cannot vouch for goes to the reference path whole: a
// line fastjson would not parse (torn writes, garbage), one with leading
// blanks or a nested object that starts {"type":"message" (the torn-write
// repair of openclawLine), and one with an escaped key where the members
// are looked up (fastjson matches those after unescaping). A differential
// fuzz test (FuzzSkimMatchesParse) holds the two paths to the same result.
//
// The walk is the Claude Code reader's too (claudeskim.go): a plan names
// the members a reader records (openclawPlan, claudePlan), and only the
// OpenClaw plan notes what the text searches above would find.

// maxSkimDepth is fastjson.MaxDepth: deeper nesting is a parse error there.
const maxSkimDepth = 300

// member is one key and its raw value, as offsets into the line.
type member struct {
	k0, k1 int // key bytes (without quotes)
	v0, v1 int // value bytes
}

type skimStatus int

const (
	skimOK         skimStatus = iota
	skimInvalid               // fastjson would not parse the line
	skimToolResult            // stopped early: the first role is toolResult
)

// A skim records the members of a few objects, its frames: the line's own
// (frame 0) and, by its plan's rules, the first member named key of a
// recorded object (when that member's value is an object, its members).
type skimFrame struct {
	ms []member
	// at is the index in the parent frame of the member recorded here
	// (-1: none seen yet), whether or not its value is an object.
	at int
}

// skimRule: frame child records the first member named key of frame parent.
type skimRule struct {
	parent, child int
	key           string
}

// skimPlan is what a skim records and notes.
type skimPlan struct {
	kids [skimFrames][]skimRule // the rules by parent frame
	// searches notes what lineParser.parse's text searches would find
	// (see skimmer.key), and stops at a first role of toolResult: the
	// OpenClaw reader's.
	searches bool
}

// The frames of the OpenClaw plan: the entry, its first "message" member,
// that one's first "usage" and the usage's first "cost"; and a content
// part's members (firstText, no rule).
const (
	ocTop = iota
	ocMsg
	ocUsage
	ocCost
	ocParts
)

// skimFrames is the most frames a plan uses (claudePlan's).
const skimFrames = 8

var openclawPlan = newSkimPlan(true, skimRule{ocTop, ocMsg, "message"}, skimRule{ocMsg, ocUsage, "usage"}, skimRule{ocUsage, ocCost, "cost"})

func newSkimPlan(searches bool, rules ...skimRule) *skimPlan {
	p := &skimPlan{searches: searches}
	for _, r := range rules {
		p.kids[r.parent] = append(p.kids[r.parent], r)
	}
	return p
}

// skimmer holds one line's structure. Not safe for concurrent use.
type skimmer struct {
	b    []byte
	plan *skimPlan
	rec  [skimFrames]skimFrame

	roleAt   int  // offset just past the first `"message":{"role":"` (-1: none)
	usage    bool // a string token "usage" (or ending in an escaped `"usage`)
	session  bool // `"type":"session"` (blanks allowed around the colon, as below)
	userRole bool // `"role":"user"`
	nested   bool // an object after offset 0 starting {"type":"message"
	escaped  bool // a key with a backslash among the members recorded
}

// reset starts a skim of b by plan, keeping the frames' room.
func (s *skimmer) reset(b []byte, plan *skimPlan) {
	rec := s.rec
	*s = skimmer{b: b, plan: plan, roleAt: -1}
	for i := range rec {
		s.rec[i] = skimFrame{ms: rec[i].ms[:0], at: -1}
	}
}

// child is the frame that records the member of frame parent whose key is
// b[k0:k1] (-1: none), and notes the member's index there.
func (s *skimmer) child(parent, k0, k1 int) int {
	for _, r := range s.plan.kids[parent] {
		if string(s.b[k0:k1]) == r.key && s.rec[r.child].at < 0 {
			s.rec[r.child].at = len(s.rec[parent].ms)
			return r.child
		}
	}
	return -1
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func (s *skimmer) ws(i int) int {
	for i < len(s.b) && s.b[i] <= ' ' && isJSONSpace(s.b[i]) {
		i++
	}
	return i
}

// line skims the whole line (which starts with '{').
func (s *skimmer) line() skimStatus {
	end, st := s.value(0, 0, ocTop)
	if st != skimOK {
		return st
	}
	if s.ws(end) != len(s.b) {
		return skimInvalid
	}
	return skimOK
}

// value skims the value at i; rec, when a frame (not -1), records an
// object's members.
func (s *skimmer) value(i, depth, rec int) (int, skimStatus) {
	if i >= len(s.b) {
		return i, skimInvalid
	}
	depth++
	if depth > maxSkimDepth {
		return i, skimInvalid
	}
	switch c := s.b[i]; c {
	case '{':
		return s.object(i, depth, rec)
	case '[':
		return s.array(i, depth)
	case '"':
		end, _, ok := s.str(i, false)
		if !ok {
			return end, skimInvalid
		}
		if s.plan.searches && s.b[end-2] == 'e' && tokenIs(s.b[i+1:end-1], "usage") {
			s.usage = true
		}
		return end, skimOK
	case 't':
		return s.literal(i, "true")
	case 'f':
		return s.literal(i, "false")
	case 'n':
		if bytes.HasPrefix(s.b[i:], []byte("null")) {
			return i + 4, skimOK
		}
		if len(s.b)-i >= 3 && strings.EqualFold(string(s.b[i:i+3]), "nan") {
			return i + 3, skimOK
		}
		return i, skimInvalid
	}
	return s.number(i)
}

func (s *skimmer) literal(i int, lit string) (int, skimStatus) {
	if bytes.HasPrefix(s.b[i:], []byte(lit)) {
		return i + len(lit), skimOK
	}
	return i, skimInvalid
}

// number follows fastjson's parseRawNumber: any run of digits, signs,
// dots and exponents, or inf/nan after at most one sign.
func (s *skimmer) number(i int) (int, skimStatus) {
	j := i
	for j < len(s.b) {
		c := s.b[j]
		if c >= '0' && c <= '9' || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+' {
			j++
			continue
		}
		if j == i || j == i+1 && (s.b[i] == '-' || s.b[i] == '+') {
			if len(s.b)-j >= 3 {
				if x := string(s.b[j : j+3]); strings.EqualFold(x, "inf") || strings.EqualFold(x, "nan") {
					return j + 3, skimOK
				}
			}
			return j, skimInvalid
		}
		return j, skimOK
	}
	return j, skimOK
}

// str returns the offset just past the string starting at i (a quote):
// its end is the first quote after an even run of backslashes, as
// fastjson's parseRawString decides. esc reports a backslash in the
// string; it is only looked for all along a long string when key is set.
func (s *skimmer) str(i int, key bool) (end int, esc, ok bool) {
	b := s.b
	start := i + 1
	// Most strings (keys, ids, names, times) end within a few words, where
	// a word at a time beats IndexByte's setup: the first quote or
	// backslash in it (a backslash escapes the next byte).
	j := start
	for lim := start + 32; j < lim; {
		if j+8 > len(b) {
			for ; j < len(b); j++ {
				switch b[j] {
				case '"':
					return j + 1, esc, true
				case '\\':
					esc = true
					j++
				}
			}
			return len(b), esc, false
		}
		v := binary.LittleEndian.Uint64(b[j:])
		m := zeroBytes(v^(swarOnes*'"')) | zeroBytes(v^(swarOnes*'\\'))
		if m == 0 {
			j += 8
			continue
		}
		j += bits.TrailingZeros64(m) >> 3
		if b[j] == '"' {
			return j + 1, esc, true
		}
		esc = true
		j += 2
	}
	if j >= len(b) {
		return len(b), esc, false
	}
	from := j
	for {
		n := bytes.IndexByte(b[j:], '"')
		if n < 0 {
			return len(b), esc, false
		}
		q := j + n
		k := q
		for k > start && b[k-1] == '\\' {
			k--
		}
		if (q-k)%2 == 0 {
			if key && !esc {
				esc = bytes.IndexByte(b[from:q], '\\') >= 0
			}
			return q + 1, esc, true
		}
		j = q + 1
	}
}

const swarOnes = 0x0101010101010101

// zeroBytes has the high bit of the lowest zero byte of v set (and maybe
// of bytes above it, never below): TrailingZeros finds the first.
func zeroBytes(v uint64) uint64 { return (v - swarOnes) &^ v & (swarOnes * 0x80) }

func (s *skimmer) array(i, depth int) (int, skimStatus) {
	j, empty, st := s.open(i, ']')
	if empty || st != skimOK {
		return j, st
	}
	for {
		end, st := s.value(s.ws(j), depth, -1)
		if st != skimOK {
			return end, st
		}
		var done bool
		if j, done, st = s.after(end, ']'); st != skimOK || done {
			return j, st
		}
	}
}

// open reads past the opening byte at i of an array or object: j is its
// first element or member, or just past closer when it is empty.
func (s *skimmer) open(i int, closer byte) (j int, empty bool, st skimStatus) {
	j = s.ws(i + 1)
	if j == len(s.b) {
		return j, false, skimInvalid
	}
	if s.b[j] == closer {
		return j + 1, true, skimOK
	}
	return j, false, skimOK
}

// after reads what follows an element or member ending at end: a comma
// (more to come at j) or the closing byte (done, j just past it).
func (s *skimmer) after(end int, closer byte) (j int, done bool, st skimStatus) {
	j = s.ws(end)
	if j == len(s.b) {
		return j, false, skimInvalid
	}
	switch s.b[j] {
	case ',':
		return j + 1, false, skimOK
	case closer:
		return j + 1, true, skimOK
	}
	return j, false, skimInvalid
}

func (s *skimmer) object(i, depth, rec int) (int, skimStatus) {
	if s.plan.searches && i > 0 && isEntryStart(s.b[i:]) {
		s.nested = true
	}
	j, empty, st := s.open(i, '}')
	if empty || st != skimOK {
		return j, st
	}
	for {
		j = s.ws(j)
		if j == len(s.b) || s.b[j] != '"' {
			return j, skimInvalid
		}
		kend, esc, ok := s.str(j, rec >= 0)
		if !ok {
			return kend, skimInvalid
		}
		k0, k1 := j+1, kend-1
		if s.plan.searches {
			if st := s.key(k0, k1); st != skimOK {
				return kend, st
			}
		}
		j = s.ws(kend)
		if j == len(s.b) || s.b[j] != ':' {
			return j, skimInvalid
		}
		v0 := s.ws(j + 1)
		sub := -1
		if rec >= 0 {
			sub = s.child(rec, k0, k1)
		}
		end, st := s.value(v0, depth, sub)
		if st != skimOK {
			return end, st
		}
		if rec >= 0 {
			s.rec[rec].ms = append(s.rec[rec].ms, member{k0, k1, v0, end})
			s.escaped = s.escaped || esc
		}
		var done bool
		if j, done, st = s.after(end, '}'); st != skimOK || done {
			return j, st
		}
	}
}

// key notes what the text searches of lineParser.parse would find at the
// key b[k0:k1]. In a line that parses, `"k":` can only be a key whose raw
// bytes are k, or end with an escaped quote and k; the bytes after the
// key's closing quote are the rest of the pattern, as written.
func (s *skimmer) key(k0, k1 int) skimStatus {
	if k1 == k0 || s.b[k1-1] != 'e' {
		return skimOK // usage, type, role and message all end so
	}
	k, rest := s.b[k0:k1], s.b[k1+1:]
	switch {
	case tokenIs(k, "usage"):
		s.usage = true
	case tokenIs(k, "type"):
		if pairAt(rest, sessionValue) {
			s.session = true
		}
	case tokenIs(k, "role"):
		if pairAt(rest, userValue) {
			s.userRole = true
		}
	case tokenIs(k, "message"):
		const after = `:{"role":"`
		if s.roleAt < 0 && bytes.HasPrefix(rest, []byte(after)) {
			s.roleAt = k1 + 1 + len(after)
			if bytes.HasPrefix(s.b[s.roleAt:], []byte(`toolResult"`)) {
				return skimToolResult
			}
		}
	}
	return skimOK
}

// tokenIs reports whether the raw string token t is `"name"` in the text:
// t is name, or ends with an (escaped) quote and name.
func tokenIs(t []byte, name string) bool {
	if len(t) == len(name) {
		return string(t) == name
	}
	return len(t) > len(name) && t[len(t)-len(name)-1] == '"' && string(t[len(t)-len(name):]) == name
}

// quick classifies an OpenClaw line as openclawLine's reference path
// (torn-write repair, then parse) would, and reports false when it cannot
// vouch for the result: then nothing in out is to be used, and the caller
// takes the reference path.
func (lp *lineParser) quick(raw []byte, out *parsedLine) bool {
	*out = parsedLine{}
	line := bytes.TrimSpace(raw)
	if len(line) == 0 {
		return true
	}
	if raw[0] != '{' {
		return false // leading blanks or no object: rare, the reference path
	}
	s := &lp.skim
	s.reset(line, openclawPlan)
	switch s.line() {
	case skimInvalid:
		return false
	case skimToolResult:
		// Tool output, the bulk of the bytes: never usage. Only a torn
		// write inside it would change that.
		if indexPair(raw[1:], entryStart, messageValue) >= 0 {
			return false
		}
		return true
	}
	if s.nested || s.escaped {
		return false
	}
	if s.roleAt >= 0 {
		role := line[s.roleAt:]
		switch {
		case bytes.HasPrefix(role, []byte(`assistant"`)):
			lp.decide(out)
		case bytes.HasPrefix(role, []byte(`user"`)):
			lp.decide(out)
			if out.kind == lineUser && out.sender == (sender{}) {
				return true
			}
			if !(bytes.Contains(line, senderMarker) || bytes.Contains(line, convMarker) || bytes.Contains(line, provenanceMaker) ||
				bytes.Contains(line, envelopeText) || bytes.Contains(line, envelopeContent)) {
				*out = parsedLine{kind: lineUser}
			}
		case bytes.HasPrefix(role, []byte(`toolResult"`)):
			// (not reached: the skim stops there)
		default:
			if s.usage {
				lp.decide(out)
			}
		}
		return true
	}
	if s.session || s.usage || s.userRole {
		lp.decide(out)
	}
	return true
}
