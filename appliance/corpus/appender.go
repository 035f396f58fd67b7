package corpus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Appender extends one transcript the way a live gateway does, for tailer
// tests: new turns arrive in several writes, and a line is sometimes split
// across two of them (what a reader sees while appendFileSync is halfway).
type Appender struct {
	path  string
	agent string
	s     *session
	seen  *ledger
}

// Chunk is one write(2) of an append batch.
type Chunk struct {
	Data []byte
	// Done is the cumulative total, within the batch, of counted calls
	// whose lines are complete once this chunk is written. A tailer that
	// has consumed every chunk so far must report exactly this much more.
	Done Totals
}

// NewAppender prepares to extend the transcript at path. An existing file
// is continued after its last complete line (its id becomes the next
// parentId, its timestamp the clock, or start if later); a missing or
// empty file gets a new session header at start. The agent is the
// directory above sessions/, as in a state dir.
func NewAppender(path string, seed uint64, start time.Time) (*Appender, error) {
	g := newGen(seed)
	a := newAgents(g, 1)[0]
	if dir := filepath.Dir(path); filepath.Base(dir) == "sessions" {
		a.id = filepath.Base(filepath.Dir(dir))
	}
	o := DefaultOptions()
	o.ImageRate = 0
	ap := &Appender{path: path, agent: a.id}
	exp := newExpected()
	ap.seen = newLedger(&exp)
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("appender %s: %w", path, err)
	}
	i := bytes.LastIndexByte(data, '\n')
	if i < 0 {
		ap.s = newSession(g, &o, a, a.keys[0], start.UTC(), far, 64<<10)
		ap.s.legacy, ap.s.zeroCost = false, false
		return ap, nil
	}
	data = data[:i]
	last := data[bytes.LastIndexByte(data, '\n')+1:]
	var head struct {
		Type      string `json:"type"`
		ID        string `json:"id"`
		Timestamp string `json:"timestamp"`
	}
	if err := json.Unmarshal(last, &head); err != nil {
		return nil, fmt.Errorf("appender %s: last line: %w", path, err)
	}
	t, err := time.Parse(time.RFC3339Nano, head.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("appender %s: last line timestamp: %w", path, err)
	}
	if start.After(t) {
		t = start
	}
	s := &session{
		g: g, o: &o, a: a, k: a.keys[0],
		t:       t.UTC(),
		limit:   far,
		m:       &models[a.primary],
		ids:     map[string]struct{}{},
		maxTool: 16 << 10,
		pending: 10000,
	}
	if head.Type != "session" {
		s.leaf = head.ID
	}
	ap.s = s
	return ap, nil
}

// Agent is the agent id the appended calls belong to.
func (ap *Appender) Agent() string { return ap.agent }

// Next generates turns more turns without writing them: the chunks to
// write in order, and what the whole batch adds.
func (ap *Appender) Next(turns int) ([]Chunk, Expected) {
	s := ap.s
	for range turns {
		s.turn()
	}
	ents := s.entries
	// The appender never rewrites or compacts, so earlier entries are not
	// needed again.
	s.entries, s.turns = nil, nil

	exp := newExpected()
	ap.seen.exp = &exp
	var chunks []Chunk
	var cur []byte
	var done Totals
	flush := func() {
		if len(cur) > 0 {
			chunks = append(chunks, Chunk{Data: cur, Done: done})
			cur = nil
		}
	}
	for i := range ents {
		line := ents[i].line
		exp.Files.Lines++
		exp.Files.Bytes += int64(len(line))
		if len(line) > 2 && s.g.chance(0.25) {
			cut := s.g.between(1, len(line)-1)
			cur = append(cur, line[:cut]...)
			flush()
			line = line[cut:]
		}
		cur = append(cur, line...)
		if c := ents[i].call; c != nil {
			before := exp.Totals
			ap.seen.row(ap.agent, day(ents[i].ts), c)
			if exp.Totals != before {
				done.add(c)
			}
		}
		if i == len(ents)-1 || s.g.chance(0.4) {
			flush()
		}
	}
	return chunks, exp
}

// Write appends one chunk with a single write, as appendFileSync does.
func (ap *Appender) Write(c Chunk) error {
	f, err := os.OpenFile(ap.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("append %s: %w", ap.path, err)
	}
	if _, err := f.Write(c.Data); err != nil {
		f.Close()
		return fmt.Errorf("append %s: %w", ap.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("append %s: %w", ap.path, err)
	}
	return nil
}

// Append generates turns more turns and writes them chunk by chunk.
func (ap *Appender) Append(turns int) (Expected, error) {
	chunks, exp := ap.Next(turns)
	for _, c := range chunks {
		if err := ap.Write(c); err != nil {
			return exp, err
		}
	}
	return exp, nil
}
