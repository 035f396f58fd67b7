package corpus

import (
	"time"
)

// entry is one transcript line held in memory until its file is written,
// so that forks and checkpoints can copy it byte for byte.
type entry struct {
	id, parent string
	ts         time.Time
	line       []byte // the JSONL line, '\n' included
	msgOff     int    // offset of the "message" object in line; 0 when there is none
	call       *call  // assistant rows only
}

// message returns the entry's message object, for re-appending it.
func (e *entry) message() []byte { return e.line[e.msgOff : len(e.line)-2] }

// session writes one transcript the way pi's SessionManager appends it.
type session struct {
	g     *gen
	o     *Options
	a     *agent
	k     *sessKey
	id    string
	file  string    // base name inside the sessions dir
	t     time.Time // clock: no entry is older than the previous one
	limit time.Time // no turn starts after this

	m                *model
	legacy, zeroCost bool

	entries []entry
	ids     map[string]struct{}
	leaf    string // id of the last entry: the next entry's parentId
	bytes   int64
	turns   []int // index of each turn's first entry

	// Prompt-cache model, in tokens: cached is what the provider has cached
	// from earlier calls, pending what was added to the context since the
	// last call. Tokens are approximated as bytes/4.
	cached, pending int64
	lastCall        time.Time // zero: the next call finds a cold cache

	maxTool  int  // cap on one tool output: a third of the session's byte budget
	imageOK  bool // budget large enough for a ~200 KB image (heavy sessions)
	lastText string
	last     *call // last counted-looking call, for sessions.json's last-run fields

	wantCheckpoint, wantRewrite bool
	checkpoint                  int // entries copied to the checkpoint file; 0: none
	rewrote                     bool
}

func newSession(g *gen, o *Options, a *agent, k *sessKey, start, limit time.Time, budget int64) *session {
	s := &session{
		g: g, o: o, a: a, k: k,
		id:      g.uuid(),
		t:       start,
		limit:   limit,
		ids:     map[string]struct{}{},
		maxTool: int(max(2<<10, min(160<<10, budget/3))),
		imageOK: budget >= 120<<10,
	}
	s.file = s.id + ".jsonl"
	s.m = &models[a.primary]
	if g.chance(0.2) {
		s.m = &models[a.secondary]
	}
	s.legacy = g.chance(o.LegacyRate)
	s.zeroCost = g.chance(o.ZeroCostRate)
	s.header(a.cwd, "")
	s.modelChange()
	level := a.thinking
	s.push("thinking_level_change", s.tick(2, 20), false, nil, 0, func(b []byte) []byte {
		b = append(b, `"thinkingLevel":`...)
		return appendStr(b, level)
	})
	// The system prompt and workspace files: the first call's context.
	s.pending = int64(g.between(8000, 18000))
	return s
}

// header writes the session line: no id/parentId, version 3.
func (s *session) header(cwd, parentSession string) {
	b := append([]byte(nil), `{"type":"session","version":3,"id":"`...)
	b = append(b, s.id...)
	b = append(b, `","timestamp":"`...)
	b = append(b, isoMillis(s.t)...)
	b = append(b, `","cwd":`...)
	b = appendStr(b, cwd)
	if parentSession != "" {
		b = append(b, `,"parentSession":`...)
		b = appendStr(b, parentSession)
	}
	b = append(b, '}', '\n')
	s.entries = append(s.entries, entry{ts: s.t, line: b})
	s.bytes += int64(len(b))
}

// tick advances the clock by lo..hi milliseconds and returns it.
func (s *session) tick(lo, hi int) time.Time {
	s.t = s.t.Add(time.Duration(s.g.between(lo, hi)) * time.Millisecond)
	return s.t
}

func (s *session) newID() string {
	for {
		id := s.g.hex(8)
		if _, taken := s.ids[id]; !taken {
			s.ids[id] = struct{}{}
			return id
		}
	}
}

// push appends an entry: the common fields, then fill's fields, or with
// msg set, "message": and fill's object. hint sizes the buffer.
func (s *session) push(typ string, ts time.Time, msg bool, c *call, hint int, fill func([]byte) []byte) {
	id := s.newID()
	b := make([]byte, 0, 160+hint+hint/8)
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","id":"`...)
	b = append(b, id...)
	b = append(b, `","parentId":`...)
	if s.leaf == "" {
		b = append(b, "null"...)
	} else {
		b = appendStr(b, s.leaf)
	}
	b = append(b, `,"timestamp":"`...)
	b = append(b, isoMillis(ts)...)
	b = append(b, '"', ',')
	off := 0
	if msg {
		b = append(b, `"message":`...)
		off = len(b)
	}
	b = fill(b)
	b = append(b, '}', '\n')
	s.entries = append(s.entries, entry{id: id, parent: s.leaf, ts: ts, line: b, msgOff: off, call: c})
	s.leaf = id
	s.bytes += int64(len(b))
	if ts.After(s.t) {
		s.t = ts
	}
}

// modelChange records a model switch as OpenClaw does: a model_change
// entry followed by a model-snapshot custom entry.
func (s *session) modelChange() {
	m := s.m
	s.push("model_change", s.tick(1, 5), false, nil, 0, func(b []byte) []byte {
		b = append(b, `"provider":`...)
		b = appendStr(b, m.provider)
		b = append(b, `,"modelId":`...)
		return appendStr(b, m.id)
	})
	ts := s.tick(100, 600)
	s.push("custom", ts, false, nil, 0, func(b []byte) []byte {
		b = append(b, `"customType":"model-snapshot","data":{"timestamp":`...)
		b = appendInt(b, ts.UnixMilli())
		b = append(b, `,"provider":`...)
		b = appendStr(b, m.provider)
		b = append(b, `,"modelApi":`...)
		b = appendStr(b, m.api)
		b = append(b, `,"modelId":`...)
		b = appendStr(b, m.id)
		return append(b, '}')
	})
}

// run adds turns until the session holds budget bytes or reaches its time
// limit, with at least one turn, then applies the session's traps.
func (s *session) run(budget int64) {
	for len(s.turns) == 0 || (s.bytes < budget && s.t.Before(s.limit)) {
		s.boundary()
		s.turn()
	}
	if s.wantRewrite && !s.rewrote {
		s.rewrite()
	}
	if s.wantCheckpoint && s.checkpoint == 0 {
		s.compact(true)
	}
}

// boundary runs between turns: the places where OpenClaw compacts,
// rewrites or switches models.
func (s *session) boundary() {
	n := len(s.turns)
	switch {
	case n >= 2 && s.wantRewrite && !s.rewrote && s.g.chance(0.5):
		s.rewrite()
	case n >= 2 && s.wantCheckpoint && s.checkpoint == 0 && s.g.chance(0.5):
		s.compact(true)
	case s.cached+s.pending > 150000:
		s.compact(false)
	}
	if n >= 1 && s.g.chance(0.04) {
		if s.m == &models[s.a.primary] {
			s.m = &models[s.a.secondary]
		} else {
			s.m = &models[s.a.primary]
		}
		s.modelChange()
	}
}

// compact writes a compaction entry; with checkpoint, the file as it was
// just before becomes the <id>.checkpoint.<uuid>.jsonl copy (~2026.4 on).
func (s *session) compact(checkpoint bool) {
	if checkpoint {
		s.checkpoint = len(s.entries)
	}
	kept := s.leaf
	if n := len(s.turns); n > 0 {
		kept = s.entries[s.turns[n-1]].id
	}
	before := s.cached + s.pending
	summary := s.g.text(s.g.between(400, 2000))
	s.push("compaction", s.tick(5000, 40000), false, nil, len(summary), func(b []byte) []byte {
		b = append(b, `"summary":`...)
		b = appendStr(b, summary)
		b = append(b, `,"firstKeptEntryId":`...)
		b = appendStr(b, kept)
		b = append(b, `,"tokensBefore":`...)
		return appendInt(b, before)
	})
	s.cached, s.pending = 0, int64(len(summary)/4)+int64(s.g.between(3000, 9000))
	s.lastCall = time.Time{}
}

// rewrite re-appends the last turn as OpenClaw's transcript rewrite does
// (reference §5): a branch from the turn's parent, the same messages with
// new entry ids, so every assistant row in it is a duplicate.
func (s *session) rewrite() {
	n := len(s.turns)
	if n == 0 {
		return
	}
	s.rewrote = true
	first := s.turns[n-1]
	suffix := s.entries[first:len(s.entries):len(s.entries)]
	s.leaf = suffix[0].parent
	s.tick(1000, 20000)
	for i := range suffix {
		e := &suffix[i]
		if e.msgOff == 0 {
			continue
		}
		msg := e.message()
		s.push("message", s.tick(2, 40), true, e.call, len(msg), func(b []byte) []byte { return append(b, msg...) })
	}
}

// fork makes the <ts>_<uuid>.jsonl file pi's createBranchedSession writes:
// a new header naming the parent, the parent's entries up to a turn
// boundary copied verbatim, then turns of its own.
func (s *session) fork(at time.Time, k *sessKey, parentPath string) *session {
	cut := len(s.entries)
	if n := len(s.turns); n > 1 {
		if j := s.g.IntN(n); j > 0 {
			cut = s.turns[j]
		}
	}
	f := &session{
		g: s.g, o: s.o, a: s.a, k: k,
		id:       s.g.uuid(),
		t:        at,
		limit:    s.limit,
		m:        s.m,
		legacy:   s.legacy,
		zeroCost: s.zeroCost,
		ids:      map[string]struct{}{},
		maxTool:  s.maxTool,
		cached:   s.cached,
	}
	f.file = fileStamp(at, true) + "_" + f.id + ".jsonl"
	f.header(s.a.cwd, parentPath)
	for _, e := range s.entries[1:cut] {
		f.entries = append(f.entries, e)
		f.ids[e.id] = struct{}{}
		f.bytes += int64(len(e.line))
	}
	f.leaf = f.entries[len(f.entries)-1].id
	return f
}

// IntN is rng.IntN, for brevity at call sites.
func (g *gen) IntN(n int) int { return g.rng.IntN(n) }
