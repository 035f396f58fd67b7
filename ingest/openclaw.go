package ingest

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/valyala/fastjson"
)

// lineKind is what one transcript line turned out to be.
type lineKind int

const (
	lineOther     lineKind = iota // no usage, nothing to learn
	lineHeader                    // type "session": session id, fork parent
	lineUser                      // a user message: who is talking now
	lineUsage                     // an assistant message with usage: a record
	lineSkip                      // a line we count as skipped (see reason)
	lineMalformed                 // not JSON, or JSON of the wrong shape
	lineDrift                     // usage-shaped, but in a shape no reader knows (see drift)
)

type skipReason int

const (
	skipNotModelCall skipReason = iota
	skipZeroUsage
)

// parsedLine is the result of parsing one line. Fields are valid until the
// next parse.
type parsedLine struct {
	kind   lineKind
	reason skipReason

	// lineHeader
	sessionID string

	// lineUser
	sender sender

	// lineUsage
	usage storage.Usage

	// lineDrift (and lineUsage with an unknown token field): what was
	// not understood, e.g. `type "turn_usage"` or `usage.cacheWrite2h`.
	drift string
}

// sender is the human behind the latest user message, from OpenClaw's
// "Sender (untrusted metadata)" block. All of it is untrusted text.
type sender struct {
	ID     string `json:"id,omitempty"`
	Label  string `json:"label,omitempty"`
	System bool   `json:"system,omitempty"` // a cron, heartbeat, sub-agent or system turn: no human
}

// Substrings that let most lines be classified without a JSON parse. pi
// writes compact JSON.stringify output with "role" first in "message", so
// the role of a message line sits right after this prefix; lines in any
// other shape fall back to a full parse when they mention usage, a header
// or a user role.
var (
	rolePrefix      = []byte(`"message":{"role":"`)
	usageMarker     = []byte(`"usage"`)
	senderMarker    = []byte(`Sender (untrusted metadata)`)
	convMarker      = []byte(`Conversation info (untrusted metadata)`)
	provenanceMaker = []byte(`"provenance"`)
	envelopeText    = []byte(`"text":"[`) // an old one-line envelope (attribution.go)
	envelopeContent = []byte(`"content":"[`)
)

// Key and value pairs searched for whatever blanks a writer puts around
// the colon (pi writes none, Python's json.dumps one): see indexPair.
const (
	typeKey      = `"type"`
	sessionValue = `"session"`
	roleKey      = `"role"`
	userValue    = `"user"`
	entryStart   = `{"type"` // with messageValue: an entry's first bytes
	messageValue = `"message"`
)

// pairAt reports whether b, which follows a string's closing quote,
// holds a colon and then the raw value val, with JSON blanks (fastjson's:
// space, tab, CR, LF) on either side of the colon.
func pairAt(b []byte, val string) bool {
	i := 0
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	if i == len(b) || b[i] != ':' {
		return false
	}
	i++
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return len(b)-i >= len(val) && string(b[i:i+len(val)]) == val
}

// indexPair returns the offset of the first key (quotes included) in b
// followed by a colon and val, as pairAt reads it, or -1.
func indexPair(b []byte, key, val string) int {
	for off := 0; off < len(b); {
		i := bytes.Index(b[off:], []byte(key))
		if i < 0 {
			return -1
		}
		i += off
		if pairAt(b[i+len(key):], val) {
			return i
		}
		off = i + 1
	}
	return -1
}

// isEntryStart reports whether b starts with an entry's first member,
// type "message": the start of the next append after a torn write.
func isEntryStart(b []byte) bool {
	return len(b) > len(entryStart) && string(b[:len(entryStart)]) == entryStart && pairAt(b[len(entryStart):], messageValue)
}

// lineParser parses OpenClaw (pi SessionManager) JSONL lines. Not safe for
// concurrent use; each worker has its own.
type lineParser struct {
	p      fastjson.Parser
	blocks fastjson.Parser // a user message's metadata blocks
	skim   skimmer         // see quick
	small  []byte          // the members quick passes to full
	names  map[string]string
	usage  [2]skimUsage // a usage object's view, and its cost's
}

var errNotObject = errors.New("line is not a JSON object")

// parse classifies and decodes one line (without its "\n").
func (lp *lineParser) parse(line []byte, out *parsedLine) {
	*out = parsedLine{}
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		out.kind = lineOther
		return
	}
	if i := bytes.Index(line, rolePrefix); i >= 0 {
		role := line[i+len(rolePrefix):]
		switch {
		case bytes.HasPrefix(role, []byte(`assistant"`)):
			lp.full(line, out)
		case bytes.HasPrefix(role, []byte(`user"`)):
			if bytes.Contains(line, senderMarker) || bytes.Contains(line, convMarker) || bytes.Contains(line, provenanceMaker) ||
				bytes.Contains(line, envelopeText) || bytes.Contains(line, envelopeContent) {
				lp.full(line, out)
			} else {
				// A user message with no sender block: whoever spoke
				// before is not the speaker now.
				out.kind = lineUser
			}
		case bytes.HasPrefix(role, []byte(`toolResult"`)):
			out.kind = lineOther // tool output: the bulk of the bytes, never usage
		default:
			if bytes.Contains(line, usageMarker) {
				lp.full(line, out) // another role with usage: drift, counted
			}
		}
		return
	}
	// Keys in another order than pi's (another serializer, sorted keys,
	// blanks after colons): parse whatever may carry usage, a header, or a
	// user message; the rest (tool results, other entries) cannot matter.
	if indexPair(line, typeKey, sessionValue) >= 0 || bytes.Contains(line, usageMarker) || indexPair(line, roleKey, userValue) >= 0 {
		lp.full(line, out)
		return
	}
	// Lines that cannot carry usage are not parsed, but one that is not
	// even shaped like an object is counted: garbage and torn writes.
	if line[0] != '{' || line[len(line)-1] != '}' {
		out.kind = lineMalformed
	}
}

// full parses the whole line.
func (lp *lineParser) full(line []byte, out *parsedLine) {
	v, err := lp.p.ParseBytes(line)
	if err == nil && v.Type() != fastjson.TypeObject {
		err = errNotObject
	}
	if err != nil {
		out.kind = lineMalformed
		return
	}
	switch typ := string(v.GetStringBytes("type")); typ {
	case "session":
		out.kind = lineHeader
		out.sessionID = string(v.GetStringBytes("id"))
		return
	case "message":
	default:
		out.kind = lineOther
		if hasTokens(v.Get("usage")) || hasTokens(v.Get("message", "usage")) {
			// A new entry type that carries usage: no reader knows it yet.
			out.kind, out.drift = lineDrift, "type "+typ
		}
		return
	}
	msg := v.Get("message")
	if msg == nil {
		out.kind = lineMalformed
		return
	}
	switch role := string(msg.GetStringBytes("role")); role {
	case "assistant":
		lp.assistant(v, msg, out)
	case "user":
		out.kind = lineUser
		out.sender = senderOf(msg, &lp.blocks)
	default:
		out.kind = lineOther
		if hasTokens(msg.Get("usage")) {
			out.kind, out.drift = lineDrift, "role "+role
		}
	}
}

// hasTokens reports whether v is an object with a non-zero number in it:
// a usage object worth counting.
func hasTokens(v *fastjson.Value) bool {
	if v == nil || v.Type() != fastjson.TypeObject {
		return false
	}
	found := false
	v.GetObject().Visit(func(_ []byte, x *fastjson.Value) {
		found = found || x.Type() == fastjson.TypeNumber && x.GetFloat64() != 0
	})
	return found
}

// openclawUsageFields are the usage fields the OpenClaw reader knows: pi's
// own and the foreign spellings OpenClaw normalises.
var openclawUsageFields = map[string]bool{
	"input": true, "output": true, "cacheRead": true, "cacheWrite": true, "cacheWrite1h": true, "totalTokens": true,
	"reasoning": true, "reasoningTokens": true,
	"input_tokens": true, "output_tokens": true, "prompt_tokens": true, "completion_tokens": true, "total_tokens": true,
	"cache_creation_input_tokens": true, "cache_read_input_tokens": true, "cached_tokens": true, "cache_write_tokens": true,
	"reasoning_tokens": true,
}

// assistant turns an assistant message into a usage record, or a skip.
func (lp *lineParser) assistant(entry, msg *fastjson.Value, out *parsedLine) {
	usage := msg.Get("usage")
	if usage == nil || usage.Type() != fastjson.TypeObject {
		out.kind = lineOther // no usage at all (e.g. a streamed partial): nothing to count
		return
	}
	openclawCall(fjObject{usage}, callFields{
		provider: string(msg.GetStringBytes("provider")), model: string(msg.GetStringBytes("model")),
		api: string(msg.GetStringBytes("api")), responseID: string(msg.GetStringBytes("responseId")),
		entryTS: parseTimestamp(entry.Get("timestamp")), msgTS: parseTimestamp(msg.Get("timestamp")),
	}, out)
}

// callFields are an assistant message's fields besides its usage.
type callFields struct {
	provider, model, api, responseID string
	entryTS, msgTS                   int64 // the entry's and the message's timestamps (unix ms, 0: none)
}

// openclawCall turns an assistant message's usage object and fields into a
// usage record, or a skip.
func openclawCall(usage usageObject, f callFields, out *parsedLine) {
	u := &out.usage
	u.Source = storage.SourceOpenClaw
	u.Provider, u.Model = f.provider, f.model
	if u.Provider == "openclaw" || f.api == "openclaw-transcript" {
		// delivery-mirror, gateway-injected, acp-runtime: copies, not calls.
		out.kind, out.reason = lineSkip, skipNotModelCall
		return
	}
	usage.tokens(u)
	out.drift = usage.unknown(openclawUsageFields)
	if u.TotalTokens() == 0 {
		out.kind, out.reason = lineSkip, skipZeroUsage // errors and aborts
		return
	}
	if c, ok := usage.object("cost"); ok {
		u.Cost = storage.Cost{
			Input: num(c, "input"), Output: num(c, "output"),
			CacheRead: num(c, "cacheRead"), CacheWrite: num(c, "cacheWrite"),
			Total: num(c, "total"),
		}
		if u.Cost.Total == 0 {
			u.Cost.Total = u.Cost.Input + u.Cost.Output + u.Cost.CacheRead + u.Cost.CacheWrite
		}
	}
	msgTS := f.msgTS
	u.TS = f.entryTS
	if u.TS == 0 {
		u.TS = msgTS
	}
	if msgTS == 0 {
		msgTS = u.TS
	}
	if u.TS == 0 {
		out.kind = lineMalformed // a call with no time cannot be placed in a day
		return
	}
	u.DedupeKey = openclawDedupeKey(u, f.responseID, msgTS)
	out.kind = lineUsage
}

// openclawEntry folds one parsed OpenClaw entry (a JSONL line or a store
// row) into out, the same way for both: a header names the session, a user
// message says who speaks to the calls that follow, and a call is
// attributed to the session's key and that sender, then recorded. A row
// that mirrors a turn of a CLI backend's own transcript (claude-cli,
// codex-cli) names that transcript, so the fuller copy wins (storage rule 2).
func (in *Ingester) openclawEntry(pl *parsedLine, agent string, sessionID *string, snd *sender, out *calls) {
	switch pl.kind {
	case lineHeader:
		if pl.sessionID != "" {
			*sessionID = pl.sessionID
		}
	case lineUser:
		*snd = pl.sender
	case lineUsage:
		u := pl.usage
		var kb [128]byte
		meta := in.meta[string(storage.AppendSessionMetaID(kb[:0], storage.SourceOpenClaw, *sessionID))]
		a := attribute(meta, *snd)
		u.Agent, u.SessionID, u.SessionKey = agent, *sessionID, meta.Key
		u.Channel, u.User, u.UserLabel = a.channel, a.user, a.label
		u.MirrorOf = mirrorOf(&u, meta)
		if pl.drift != "" {
			out.unrecognized(storage.SourceOpenClaw, pl.drift)
		}
		in.record(out, u)
	case lineSkip:
		switch pl.reason {
		case skipNotModelCall:
			out.skips.NotModelCall++
		case skipZeroUsage:
			out.skips.ZeroUsage++
		}
	case lineMalformed:
		out.skips.Malformed++
	case lineDrift:
		out.unrecognized(storage.SourceOpenClaw, pl.drift)
	}
}

// mirrorOf names the transcript an OpenClaw row of a CLI backend mirrors:
// OpenClaw's claude-cli runtime runs Claude Code, whose own transcript
// holds the turn's calls in full; the session entry binds the two.
func mirrorOf(u *storage.Usage, meta sessionMeta) string {
	switch strings.ToLower(u.Provider) {
	case "claude-cli":
		if meta.ClaudeCLI != "" {
			return "claude:" + meta.ClaudeCLI
		}
	case "codex-cli":
		if meta.CodexCLI != "" {
			return "codex:" + meta.CodexCLI
		}
	}
	return ""
}

// openclawDedupeKey is the DESIGN §2 rule: provider|responseId when the
// transport recorded one, else the call's content (entry ids change on
// rewrite and session ids on fork, so neither can be part of it).
func openclawDedupeKey(u *storage.Usage, responseID string, msgTS int64) string {
	if responseID != "" {
		return u.Provider + "|" + responseID
	}
	b := make([]byte, 0, 96)
	b = append(b, u.Provider...)
	b = append(b, '|')
	b = append(b, u.Model...)
	for _, n := range []int64{msgTS, u.Input, u.Output, u.CacheRead, u.CacheWrite} {
		b = append(b, '|')
		b = strconv.AppendInt(b, n, 10)
	}
	return string(b)
}

// usageObject is what the token rules read from a usage object: through
// fastjson (fjObject), or through the skimmer's members (skimUsage, pi's
// spelling only). Both read exactly as fastjson's Get, Exists and
// GetFloat64 do.
type usageObject interface {
	has(key string) bool
	// number is the member's number as GetFloat64 reads it: 0 when absent
	// or not a number.
	number(key string) float64
	// object is an object member.
	object(key string) (usageObject, bool)
	// tokens reads the token counts into u (readTokens).
	tokens(u *storage.Usage)
	// unknown is unknownField.
	unknown(known map[string]bool) string
}

type fjObject struct{ v *fastjson.Value }

func (o fjObject) has(key string) bool              { return o.v.Exists(key) }
func (o fjObject) number(key string) float64        { return o.v.GetFloat64(key) }
func (o fjObject) tokens(u *storage.Usage)          { readTokens(o.v, u) }
func (o fjObject) unknown(k map[string]bool) string { return unknownField(o.v, k) }
func (o fjObject) object(key string) (usageObject, bool) {
	c := o.v.Get(key)
	return fjObject{c}, c != nil && c.Type() == fastjson.TypeObject
}

// piSpelling reports whether a usage object is in pi's own spelling.
func piSpelling(o usageObject) bool {
	return o.has("input") || o.has("output") || o.has("cacheRead") || o.has("cacheWrite")
}

// piTokens reads pi's usage spelling.
func piTokens(o usageObject, u *storage.Usage) {
	count := func(key string) int64 { return countOf(o.number(key)) }
	u.Input = count("input")
	u.Output = count("output")
	u.CacheRead = count("cacheRead")
	u.CacheWrite = count("cacheWrite")
	u.CacheWrite1h = min(count("cacheWrite1h"), u.CacheWrite)
	reasoning := int64(0)
	if o.has("reasoning") {
		reasoning = count("reasoning")
	} else if o.has("reasoningTokens") {
		reasoning = count("reasoningTokens")
	}
	u.Reasoning = min(reasoning, u.Output)
	// Some provider adapters put cached tokens inside input (OpenAI's
	// prompt_tokens convention) and report them again as cacheRead:
	// then input + output already make totalTokens.
	if total := count("totalTokens"); total > 0 && (u.CacheRead > 0 || u.CacheWrite > 0) &&
		u.Input+u.Output == total && u.Input >= u.CacheRead+u.CacheWrite {
		u.Input -= u.CacheRead + u.CacheWrite
		u.Corrected = storage.CorrectedCacheInInput
	}
}

// readTokens reads pi's usage spelling and the foreign ones OpenClaw itself
// normalises (Anthropic and OpenAI field names).
func readTokens(usage *fastjson.Value, u *storage.Usage) {
	if piSpelling(fjObject{usage}) {
		piTokens(fjObject{usage}, u)
		return
	}
	u.Reasoning = firstTokens(usage, []string{"reasoning_tokens"}, []string{"completion_tokens_details", "reasoning_tokens"},
		[]string{"output_tokens_details", "reasoning_tokens"})
	u.Output = firstTokens(usage, []string{"output_tokens"}, []string{"completion_tokens"})
	u.Reasoning = min(u.Reasoning, u.Output)
	u.CacheWrite = firstTokens(usage, []string{"cache_creation_input_tokens"}, []string{"cache_write_tokens"})
	if usage.Exists("input_tokens") {
		// Anthropic convention: input excludes cache reads and writes.
		u.Input = tokens(usage, "input_tokens")
		u.CacheRead = firstTokens(usage, []string{"cache_read_input_tokens"}, []string{"cached_tokens"})
		return
	}
	// OpenAI convention: prompt tokens include the cached ones.
	u.CacheRead = firstTokens(usage, []string{"cached_tokens"}, []string{"prompt_tokens_details", "cached_tokens"}, []string{"cache_read_input_tokens"})
	u.Input = max(tokens(usage, "prompt_tokens")-u.CacheRead, 0)
}
