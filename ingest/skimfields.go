package ingest

import (
	"bytes"
	"math"

	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/valyala/fastjson"
	"github.com/valyala/fastjson/fastfloat"
)

// The members a skimmed line's kind depends on, read as lineParser.full
// reads them (fastjson's lookups and number rules): assistant and user
// messages of the usual shape straight from the skimmed members, anything
// else through fromSkim, which hands the members to full itself.

// wanted members: what lineParser.full, assistant and senderOf look up.
var (
	skimTopKeys = []string{"type", "id", "timestamp", "usage"}
	skimMsgKeys = []string{"role", "provider", "model", "api", "usage", "timestamp", "responseId", "provenance"}
)

// decide is lineParser.full for a skimmed line: assistant and user
// messages of the usual shape straight from their members, anything else
// through fromSkim.
func (lp *lineParser) decide(out *parsedLine) {
	s := &lp.skim
	top, msg := s.rec[ocTop].ms, s.rec[ocMsg].ms
	if s.is(top, "type", `"session"`) {
		// A header: full reads its id, as a string or "" (one of every
		// transcript, a third of a small transcript's lines).
		if id, ok := s.text(top, "id"); ok {
			out.kind, out.sessionID = lineHeader, id
			return
		}
	}
	if !s.is(top, "type", `"message"`) || s.rec[ocMsg].at < 0 || s.b[top[s.rec[ocMsg].at].v0] != '{' {
		lp.fromSkim(out)
		return
	}
	var ok bool
	switch {
	case s.is(msg, "role", `"assistant"`):
		ok = lp.directAssistant(out)
	case s.is(msg, "role", `"user"`):
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
	raw, ok := s.plainText(ms, key)
	return string(raw), ok
}

// plainText is text's bytes (in the line).
func (s *skimmer) plainText(ms []member, key string) ([]byte, bool) {
	m, found := s.find(ms, key)
	if !found || s.b[m.v0] != '"' {
		return nil, true
	}
	raw := s.b[m.v0+1 : m.v1-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		return nil, false
	}
	return raw, true
}

// timestamp is parseTimestamp for a member; ok is false for a string with
// escapes.
func (s *skimmer) timestamp(ms []member, key string) (millis int64, ok bool) {
	m, found := s.find(ms, key)
	if !found {
		return 0, true
	}
	raw := s.b[m.v0:m.v1]
	if raw[0] == '"' {
		raw = raw[1 : len(raw)-1]
		if bytes.IndexByte(raw, '\\') >= 0 {
			return 0, false
		}
		return parseTimeString(raw), true
	}
	return epochMillis(s.numberOf(m)), true
}

// isNumber reports whether the raw value is a number for fastjson (a
// number token, or NaN or Inf in any case).
func isNumber(raw []byte) bool {
	switch raw[0] {
	case '"', '{', '[', 't', 'f':
		return false
	case 'n':
		return string(raw) != "null"
	}
	return true
}

// directAssistant is lineParser.assistant on the skimmed members: the
// usage object is read from its members too when it is in pi's spelling
// (else with fastjson: the foreign spellings' rules read it).
func (lp *lineParser) directAssistant(out *parsedLine) bool {
	s := &lp.skim
	top, msg := s.rec[ocTop].ms, s.rec[ocMsg].ms
	um, found := s.find(msg, "usage")
	if !found || s.b[um.v0] != '{' {
		out.kind = lineOther
		return true
	}
	var f callFields
	var ok [6]bool
	f.provider, ok[0] = lp.name(msg, "provider")
	f.model, ok[1] = lp.name(msg, "model")
	f.api, ok[2] = lp.name(msg, "api")
	f.responseID, ok[3] = s.text(msg, "responseId")
	f.entryTS, ok[4] = s.timestamp(top, "timestamp")
	f.msgTS, ok[5] = s.timestamp(msg, "timestamp")
	if ok != [6]bool{true, true, true, true, true, true} {
		return false
	}
	usage := &lp.usage[0]
	usage.cost = &lp.usage[1]
	if usage.view(s, s.rec[ocUsage].ms) && piSpelling(usage) {
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
	raw, ok := lp.skim.plainText(ms, key)
	return lp.intern(raw), ok
}

// intern is string(b), shared for the names that recur.
func (lp *lineParser) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if v, ok := lp.names[string(b)]; ok {
		return v
	}
	v := string(b)
	if len(lp.names) < 4096 {
		if lp.names == nil {
			lp.names = map[string]string{}
		}
		lp.names[v] = v
	}
	return v
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
// It is its Float64 too (error ignored): fastfloat's Parse and
// ParseBestEffort read the same value, and only Parse makes an error
// (which holds the text, so a string made for it would be allocated).
func (s *skimmer) numberOf(m member) float64 {
	raw := s.b[m.v0:m.v1]
	if !isNumber(raw) {
		return 0
	}
	return fastfloat.ParseBestEffort(string(raw))
}

// object is the usage's cost (the only object member the rules read).
func (o *skimUsage) object(key string) (usageObject, bool) {
	m, found := o.find(key)
	if !found || o.s.b[m.v0] != '{' {
		return nil, false
	}
	if key == "cost" && o.cost != nil && o.s.rec[ocCost].at >= 0 && o.s.rec[ocCost].at < len(o.ms) && o.ms[o.s.rec[ocCost].at] == m {
		if o.cost.view(o.s, o.s.rec[ocCost].ms) {
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
	if _, found := s.find(s.rec[ocMsg].ms, "provenance"); found {
		return false
	}
	out.kind = lineUser
	cm, found := s.find(s.rec[ocMsg].ms, "content")
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
	parts := &s.rec[ocParts].ms
	for {
		var end int
		var st skimStatus
		if s.b[j] != '{' {
			end, st = s.value(j, 3, -1)
		} else {
			*parts = (*parts)[:0]
			end, st = s.object(j, 4, ocParts)
		}
		if st != skimOK {
			return nil, false
		}
		if s.b[j] == '{' {
			for _, m := range *parts {
				if bytes.IndexByte(s.b[m.k0:m.k1], '\\') >= 0 {
					return nil, false
				}
			}
			typ, ok := s.text(*parts, "type")
			if !ok {
				return nil, false
			}
			if typ == "text" {
				m, found := s.find(*parts, "text")
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
	for _, mm := range s.rec[ocMsg].ms {
		if string(s.b[mm.k0:mm.k1]) == "role" {
			withContent = string(s.b[mm.v0:mm.v1]) != `"assistant"`
			break
		}
	}
	b := append(lp.small[:0], '{')
	for i, m := range s.rec[ocTop].ms {
		switch {
		case i == s.rec[ocMsg].at && s.b[m.v0] == '{':
			b = append(s.appendKey(b, m), '{')
			for _, mm := range s.rec[ocMsg].ms {
				if k := s.b[mm.k0:mm.k1]; isOneOf(k, skimMsgKeys) || withContent && string(k) == "content" {
					b = s.appendMember(b, mm)
				}
			}
			b = append(b, '}')
		case i == s.rec[ocMsg].at || isOneOf(s.b[m.k0:m.k1], skimTopKeys):
			b = s.appendMember(b, m)
		}
	}
	b = append(b, '}')
	lp.small = b
	lp.full(b, out)
}

// appendKey appends m's key and a colon to the object being written in b,
// after a comma unless it is the object's first member.
func (s *skimmer) appendKey(b []byte, m member) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, s.b[m.k0:m.k1]...)
	return append(b, '"', ':')
}

// appendMember appends m as written.
func (s *skimmer) appendMember(b []byte, m member) []byte {
	return append(s.appendKey(b, m), s.b[m.v0:m.v1]...)
}

// isOneOf reports whether the key k is one of names.
func isOneOf(k []byte, names []string) bool {
	for _, name := range names {
		if string(k) == name {
			return true
		}
	}
	return false
}
