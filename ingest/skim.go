package ingest

import (
	"bytes"
	"math"
	"strings"

	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/valyala/fastjson"
	"github.com/valyala/fastjson/fastfloat"
)

// The OpenClaw line skimmer: one pass over a JSONL line that decides what
// lineParser.parse (the reference) would decide, without its text searches
// and without parsing what cannot matter.
//
// parse finds a line's kind with up to five whole-line text searches
// ("message":{"role":", "usage", "type":"session", "role":"user" and, for
// torn writes, {"type":"message") and then parses the whole line with
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

// skimmer holds one line's structure. Not safe for concurrent use.
type skimmer struct {
	b   []byte
	top []member // the entry's members
	msg []member // the members of its first "message" member, when an object
	// msgAt is the index in top of that member (-1: none seen yet).
	msgAt int
	// The members of that message's first "usage" member, and of the
	// usage's first "cost" member, when objects; usageAt and costAt index
	// them in msg and usage (-1: none seen yet).
	usageMs, costMs []member
	usageAt, costAt int

	roleAt   int  // offset just past the first `"message":{"role":"` (-1: none)
	usage    bool // a string token "usage" (or ending in an escaped `"usage`)
	session  bool // `"type":"session"`
	userRole bool // `"role":"user"`
	nested   bool // an object after offset 0 starting {"type":"message"
	escaped  bool // a key with a backslash among the members recorded
	stopTool bool // stop at a first role of toolResult
}

func (s *skimmer) reset(b []byte) {
	*s = skimmer{b: b, top: s.top[:0], msg: s.msg[:0], usageMs: s.usageMs[:0], costMs: s.costMs[:0],
		msgAt: -1, usageAt: -1, costAt: -1, roleAt: -1, stopTool: true}
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func (s *skimmer) ws(i int) int {
	for i < len(s.b) && isJSONSpace(s.b[i]) {
		i++
	}
	return i
}

// line skims the whole line (which starts with '{').
func (s *skimmer) line() skimStatus {
	end, st := s.value(0, 0, &s.top)
	if st != skimOK {
		return st
	}
	if s.ws(end) != len(s.b) {
		return skimInvalid
	}
	return skimOK
}

// value skims the value at i; rec, when set, records an object's members.
func (s *skimmer) value(i, depth int, rec *[]member) (int, skimStatus) {
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
		end, ok := s.str(i)
		if !ok {
			return end, skimInvalid
		}
		if s.b[end-2] == 'e' && tokenIs(s.b[i+1:end-1], "usage") {
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
// fastjson's parseRawString decides.
func (s *skimmer) str(i int) (int, bool) {
	start := i + 1
	// Most strings (keys, ids, names) end within a few bytes, where a
	// plain loop beats IndexByte's setup; a backslash escapes the next byte.
	j := start
	for lim := min(len(s.b), start+24); j < lim; j++ {
		switch s.b[j] {
		case '"':
			return j + 1, true
		case '\\':
			j++
		}
	}
	j = min(j, len(s.b))
	for {
		n := bytes.IndexByte(s.b[j:], '"')
		if n < 0 {
			return len(s.b), false
		}
		q := j + n
		k := q
		for k > start && s.b[k-1] == '\\' {
			k--
		}
		if (q-k)%2 == 0 {
			return q + 1, true
		}
		j = q + 1
	}
}

func (s *skimmer) array(i, depth int) (int, skimStatus) {
	j := s.ws(i + 1)
	if j == len(s.b) {
		return j, skimInvalid
	}
	if s.b[j] == ']' {
		return j + 1, skimOK
	}
	for {
		end, st := s.value(s.ws(j), depth, nil)
		if st != skimOK {
			return end, st
		}
		j = s.ws(end)
		if j == len(s.b) {
			return j, skimInvalid
		}
		switch s.b[j] {
		case ',':
			j++
		case ']':
			return j + 1, skimOK
		default:
			return j, skimInvalid
		}
	}
}

func (s *skimmer) object(i, depth int, rec *[]member) (int, skimStatus) {
	if i > 0 && bytes.HasPrefix(s.b[i:], messageStart) {
		s.nested = true
	}
	j := s.ws(i + 1)
	if j == len(s.b) {
		return j, skimInvalid
	}
	if s.b[j] == '}' {
		return j + 1, skimOK
	}
	for {
		j = s.ws(j)
		if j == len(s.b) || s.b[j] != '"' {
			return j, skimInvalid
		}
		kend, ok := s.str(j)
		if !ok {
			return kend, skimInvalid
		}
		k0, k1 := j+1, kend-1
		if st := s.key(k0, k1); st != skimOK {
			return kend, st
		}
		j = s.ws(kend)
		if j == len(s.b) || s.b[j] != ':' {
			return j, skimInvalid
		}
		v0 := s.ws(j + 1)
		// The members of the first top-level "message" object are recorded.
		// The members of the entry's first "message" object, its first
		// "usage" and that one's first "cost" are recorded.
		var sub *[]member
		switch {
		case depth == 1 && s.msgAt < 0 && string(s.b[k0:k1]) == "message":
			s.msgAt, sub = len(*rec), &s.msg
		case depth == 2 && rec == &s.msg && s.usageAt < 0 && string(s.b[k0:k1]) == "usage":
			s.usageAt, sub = len(*rec), &s.usageMs
		case depth == 3 && rec == &s.usageMs && s.costAt < 0 && string(s.b[k0:k1]) == "cost":
			s.costAt, sub = len(*rec), &s.costMs
		}
		end, st := s.value(v0, depth, sub)
		if st != skimOK {
			return end, st
		}
		if rec != nil {
			*rec = append(*rec, member{k0, k1, v0, end})
			if bytes.IndexByte(s.b[k0:k1], '\\') >= 0 {
				s.escaped = true
			}
		}
		j = s.ws(end)
		if j == len(s.b) {
			return j, skimInvalid
		}
		switch s.b[j] {
		case ',':
			j++
		case '}':
			return j + 1, skimOK
		default:
			return j, skimInvalid
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
		if bytes.HasPrefix(rest, []byte(`:"session"`)) {
			s.session = true
		}
	case tokenIs(k, "role"):
		if bytes.HasPrefix(rest, []byte(`:"user"`)) {
			s.userRole = true
		}
	case tokenIs(k, "message"):
		const after = `:{"role":"`
		if s.roleAt < 0 && bytes.HasPrefix(rest, []byte(after)) {
			s.roleAt = k1 + 1 + len(after)
			if s.stopTool && bytes.HasPrefix(s.b[s.roleAt:], []byte(`toolResult"`)) {
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

// wanted members: what lineParser.full, assistant and senderOf look up.
var (
	skimTopKeys = []string{"type", "id", "timestamp", "usage"}
	skimMsgKeys = []string{"role", "provider", "model", "api", "usage", "timestamp", "responseId", "provenance"}
)

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
	s.reset(line)
	switch s.line() {
	case skimInvalid:
		return false
	case skimToolResult:
		// Tool output, the bulk of the bytes: never usage. Only a torn
		// write inside it would change that.
		if bytes.Contains(raw[1:], messageStart) {
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

// decide is lineParser.full for a skimmed line: assistant and user
// messages of the usual shape straight from their members, anything else
// through fromSkim.
func (lp *lineParser) decide(out *parsedLine) {
	s := &lp.skim
	if !s.is(s.top, "type", `"message"`) || s.msgAt < 0 || s.b[s.top[s.msgAt].v0] != '{' {
		lp.fromSkim(out)
		return
	}
	var ok bool
	switch {
	case s.is(s.msg, "role", `"assistant"`):
		ok = lp.directAssistant(out)
	case s.is(s.msg, "role", `"user"`):
		ok = lp.directUser(out)
	}
	if !ok {
		*out = parsedLine{}
		lp.fromSkim(out)
	}
}

// find returns the first member named key (fastjson's Get, for keys
// without escapes, which quick has made sure of).
func (s *skimmer) find(ms []member, key string) (member, bool) {
	for _, m := range ms {
		if string(s.b[m.k0:m.k1]) == key {
			return m, true
		}
	}
	return member{}, false
}

// is reports whether the member named key has exactly the raw value raw.
func (s *skimmer) is(ms []member, key, raw string) bool {
	m, ok := s.find(ms, key)
	return ok && string(s.b[m.v0:m.v1]) == raw
}

// text is fastjson's GetStringBytes for a member: "" when absent or not a
// string; ok is false for a string with escapes (the caller falls back).
func (s *skimmer) text(ms []member, key string) (v string, ok bool) {
	m, found := s.find(ms, key)
	if !found || s.b[m.v0] != '"' {
		return "", true
	}
	raw := s.b[m.v0+1 : m.v1-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		return "", false
	}
	return string(raw), true
}

// timestamp is parseTimestamp for a member; ok is false for a string with
// escapes.
func (s *skimmer) timestamp(ms []member, key string) (millis int64, ok bool) {
	m, found := s.find(ms, key)
	if !found {
		return 0, true
	}
	raw := s.b[m.v0:m.v1]
	switch raw[0] {
	case '"':
		raw = raw[1 : len(raw)-1]
		if bytes.IndexByte(raw, '\\') >= 0 {
			return 0, false
		}
		return parseTimeString(raw), true
	case '{', '[', 't', 'f':
		return 0, true
	case 'n':
		if string(raw) == "null" {
			return 0, true
		}
	}
	f, _ := fastfloat.Parse(string(raw)) // a number, as fastjson's Float64 reads it
	return epochMillis(f), true
}

// directAssistant is lineParser.assistant on the skimmed members: the
// usage object is read from its members too when it is in pi's spelling
// (else with fastjson: the foreign spellings' rules read it).
func (lp *lineParser) directAssistant(out *parsedLine) bool {
	s := &lp.skim
	um, found := s.find(s.msg, "usage")
	if !found || s.b[um.v0] != '{' {
		out.kind = lineOther
		return true
	}
	var f callFields
	var ok [6]bool
	f.provider, ok[0] = lp.name(s.msg, "provider")
	f.model, ok[1] = lp.name(s.msg, "model")
	f.api, ok[2] = lp.name(s.msg, "api")
	f.responseID, ok[3] = s.text(s.msg, "responseId")
	f.entryTS, ok[4] = s.timestamp(s.top, "timestamp")
	f.msgTS, ok[5] = s.timestamp(s.msg, "timestamp")
	if ok != [6]bool{true, true, true, true, true, true} {
		return false
	}
	usage := &lp.usage[0]
	usage.cost = &lp.usage[1]
	if usage.view(s, s.usageMs) && piSpelling(usage) {
		openclawCall(usage, f, out)
		return true
	}
	v, err := lp.p.ParseBytes(s.b[um.v0:um.v1])
	if err != nil {
		return false
	}
	openclawCall(fjObject{v}, f, out)
	return true
}

// name is text for a member whose few values recur (provider, model,
// api): the string is shared, not allocated per line.
func (lp *lineParser) name(ms []member, key string) (string, bool) {
	s := &lp.skim
	m, found := s.find(ms, key)
	if !found || s.b[m.v0] != '"' {
		return "", true
	}
	raw := s.b[m.v0+1 : m.v1-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		return "", false
	}
	if v, ok := lp.names[string(raw)]; ok {
		return v, true
	}
	v := string(raw)
	if len(lp.names) < 4096 {
		if lp.names == nil {
			lp.names = map[string]string{}
		}
		lp.names[v] = v
	}
	return v, true
}

// skimUsage is a usage (or cost) object read from its skimmed members.
type skimUsage struct {
	s    *skimmer
	ms   []member
	at   [len(usageKeys)]int16 // ms index of each usageKeys member (-1: absent)
	cost *skimUsage            // room for the cost object's view
}

// usageKeys are the members the token rules read from a usage object
// (pi's spelling) and from its cost.
var usageKeys = [...]string{"input", "output", "cacheRead", "cacheWrite", "cacheWrite1h", "reasoning",
	"reasoningTokens", "totalTokens", "cost", "total"}

func usageKey(k []byte) int {
	for i, name := range usageKeys {
		if string(k) == name {
			return i
		}
	}
	return -1
}

// view points o at the skimmed members ms; ok is false when a key has
// escapes (fastjson would match it unescaped).
func (o *skimUsage) view(s *skimmer, ms []member) bool {
	o.s, o.ms = s, ms
	for i := range o.at {
		o.at[i] = -1
	}
	if len(ms) > math.MaxInt16 {
		return false
	}
	for i, m := range ms {
		k := s.b[m.k0:m.k1]
		if bytes.IndexByte(k, '\\') >= 0 {
			return false
		}
		if j := usageKey(k); j >= 0 && o.at[j] < 0 {
			o.at[j] = int16(i)
		}
	}
	return true
}

func (o *skimUsage) find(key string) (member, bool) {
	if j := usageKey([]byte(key)); j >= 0 {
		if i := o.at[j]; i >= 0 {
			return o.ms[i], true
		}
		return member{}, false
	}
	return o.s.find(o.ms, key)
}

func (o *skimUsage) has(key string) bool {
	_, found := o.find(key)
	return found
}

func (o *skimUsage) number(key string) float64 {
	m, found := o.find(key)
	if !found {
		return 0
	}
	return o.s.numberOf(m)
}

// numberOf is GetFloat64 of a member's value: 0 unless it is a number.
func (s *skimmer) numberOf(m member) float64 {
	raw := s.b[m.v0:m.v1]
	switch raw[0] {
	case '"', '{', '[', 't', 'f':
		return 0
	case 'n':
		if string(raw) == "null" {
			return 0
		}
	}
	return fastfloat.ParseBestEffort(string(raw))
}

// object is the usage's cost (the only object member the rules read).
func (o *skimUsage) object(key string) (usageObject, bool) {
	m, found := o.find(key)
	if !found || o.s.b[m.v0] != '{' {
		return nil, false
	}
	if key == "cost" && o.cost != nil && o.s.costAt >= 0 && o.s.costAt < len(o.ms) && o.ms[o.s.costAt] == m {
		if o.cost.view(o.s, o.s.costMs) {
			return o.cost, true
		}
	}
	v, err := fastjson.ParseBytes(o.s.b[m.v0:m.v1])
	if err != nil {
		return nil, false
	}
	return fjObject{v}, true
}

func (o *skimUsage) tokens(u *storage.Usage) { piTokens(o, u) }

func (o *skimUsage) unknown(known map[string]bool) string {
	for _, m := range o.ms {
		if k := o.s.b[m.k0:m.k1]; !known[string(k)] && o.s.numberOf(m) != 0 {
			return "field " + string(k)
		}
	}
	return ""
}

// directUser is the sender of a user message without provenance, from the
// text messageText finds: a string content, or the first text part.
func (lp *lineParser) directUser(out *parsedLine) bool {
	s := &lp.skim
	if _, found := s.find(s.msg, "provenance"); found {
		return false
	}
	out.kind = lineUser
	cm, found := s.find(s.msg, "content")
	if !found {
		return true
	}
	text := s.b[cm.v0:cm.v1]
	if text[0] == '[' {
		var ok bool
		if text, ok = s.firstText(cm.v0); !ok {
			return false
		}
	}
	if len(text) == 0 || text[0] != '"' {
		return true // no text
	}
	v, err := lp.p.ParseBytes(text) // unescaped as fastjson does
	if err != nil {
		return false
	}
	b, _ := v.StringBytes()
	out.sender = senderOfText(b, &lp.blocks)
	return true
}

// firstText returns the raw "text" value of the first part of the content
// array at i whose "type" is "text" (nil when there is none); ok is false
// when a part is not of the plain shape.
func (s *skimmer) firstText(i int) (text []byte, ok bool) {
	j := s.ws(i + 1)
	if s.b[j] == ']' {
		return nil, true
	}
	var parts []member
	for {
		var end int
		var st skimStatus
		if s.b[j] != '{' {
			end, st = s.value(j, 3, nil)
		} else {
			parts = parts[:0]
			end, st = s.object(j, 4, &parts)
		}
		if st != skimOK {
			return nil, false
		}
		if s.b[j] == '{' {
			for _, m := range parts {
				if bytes.IndexByte(s.b[m.k0:m.k1], '\\') >= 0 {
					return nil, false
				}
			}
			typ, ok := s.text(parts, "type")
			if !ok {
				return nil, false
			}
			if typ == "text" {
				m, found := s.find(parts, "text")
				if !found {
					return nil, true
				}
				return s.b[m.v0:m.v1], true
			}
		}
		j = s.ws(end)
		if s.b[j] == ']' {
			return nil, true
		}
		j = s.ws(j + 1) // the comma
	}
}

// fromSkim runs lineParser.full on the members that decide the result,
// copied into a small object: the same lookups, on a fraction of the bytes.
// The message's content (the bulk of an assistant's bytes) is only copied
// when its role may be "user": its text names the sender.
func (lp *lineParser) fromSkim(out *parsedLine) {
	s := &lp.skim
	withContent := true
	for _, mm := range s.msg {
		if string(s.b[mm.k0:mm.k1]) == "role" {
			withContent = string(s.b[mm.v0:mm.v1]) != `"assistant"`
			break
		}
	}
	b := append(lp.small[:0], '{')
	add := func(m member, val []byte) {
		if len(b) > 1 && b[len(b)-1] != '{' {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, s.b[m.k0:m.k1]...)
		b = append(b, `":`...)
		b = append(b, val...)
	}
	for i, m := range s.top {
		k := string(s.b[m.k0:m.k1])
		switch {
		case i == s.msgAt && s.b[m.v0] == '{':
			add(m, []byte{'{'})
			for _, mm := range s.msg {
				kk := string(s.b[mm.k0:mm.k1])
				if contains(skimMsgKeys, kk) || withContent && kk == "content" {
					add(mm, s.b[mm.v0:mm.v1])
				}
			}
			b = append(b, '}')
		case i == s.msgAt || contains(skimTopKeys, k):
			add(m, s.b[m.v0:m.v1])
		}
	}
	b = append(b, '}')
	lp.small = b
	lp.full(b, out)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
