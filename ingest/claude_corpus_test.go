package ingest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// A deterministic Claude Code corpus for the reader benchmark, the corpus
// test and scripts/compare-ccusage-claude. It writes what Claude Code
// writes (shared/reference/openclaw-format.md §9): session files per
// project, user turns and long tool results, responses streamed as one
// line per content block with a growing output count (a few written
// largest first), sub-agent files, /btw side questions that replay the
// parent's messages with a new requestId, <synthetic> notices and API
// errors. The expected totals come from the generator's own bookkeeping,
// never from reading the files back.

// claudeCorpusOptions shape a corpus.
type claudeCorpusOptions struct {
	Seed      uint64
	SizeBytes int64     // write sessions until about this many bytes
	End       time.Time // exclusive end of the period (UTC midnight)
	Days      int
	Projects  int
}

func defaultClaudeCorpus(size int64) claudeCorpusOptions {
	return claudeCorpusOptions{Seed: 1, SizeBytes: size, End: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Days: 21, Projects: 6}
}

// claudeExpected is what a correct reader reports for the corpus.
type claudeExpected struct {
	Daily  map[string]storage.Totals `json:"daily"` // "2026-05-20" → token sums (no cost)
	Totals storage.Totals            `json:"totals"`
	Files  int                       `json:"files"`
	Bytes  int64                     `json:"bytes"`
	// Lines a reader must skip: copies (streamed or replayed), notices.
	Copies  int `json:"copies"`
	Notices int `json:"notices"`
}

var claudeModels = []string{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805", "claude-haiku-4-5-20251001"}

var claudeCorpusWords = strings.Fields(`the a to of and in is for that on with as it this be by are from at or
func return err nil if else struct type package import test build go run file line
usage token cache read write session agent model request response error value config
handler server client context parse json bytes string int64 map slice append range`)

// claudeGen holds the generator's state.
type claudeGen struct {
	rng  *rand.Rand
	root string
	exp  claudeExpected
	text string // a block of words tool results are cut from
	seq  int
}

// writeClaudeCorpus writes a corpus under dir/projects and returns its
// expected totals.
func writeClaudeCorpus(dir string, opt claudeCorpusOptions) (claudeExpected, error) {
	g := &claudeGen{rng: rand.New(rand.NewPCG(opt.Seed, 0x636c61756465)), root: dir}
	g.exp.Daily = map[string]storage.Totals{}
	var sb strings.Builder
	for sb.Len() < 64<<10 {
		sb.WriteString(claudeCorpusWords[g.rng.IntN(len(claudeCorpusWords))])
		sb.WriteByte(' ')
	}
	g.text = sb.String()
	projects := make([]string, opt.Projects)
	for i := range projects {
		projects[i] = fmt.Sprintf("/home/dev/%s-%d", []string{"api", "web", "infra", "docs", "ml", "cli"}[i%6], i)
	}
	start := opt.End.AddDate(0, 0, -opt.Days)
	for day := 0; g.exp.Bytes < opt.SizeBytes; day = (day + 1) % opt.Days {
		date := start.AddDate(0, 0, day)
		for _, cwd := range projects {
			if g.exp.Bytes >= opt.SizeBytes {
				break
			}
			if g.rng.IntN(3) == 0 {
				continue // not every project works every day
			}
			if err := g.session(cwd, date); err != nil {
				return g.exp, err
			}
		}
	}
	return g.exp, nil
}

// claudeEntry is a line in Claude Code's field order.
type claudeEntry struct {
	ParentUUID        *string        `json:"parentUuid"`
	IsSidechain       bool           `json:"isSidechain"`
	UserType          string         `json:"userType"`
	Cwd               string         `json:"cwd"`
	SessionID         string         `json:"sessionId"`
	Version           string         `json:"version"`
	GitBranch         string         `json:"gitBranch"`
	AgentID           string         `json:"agentId,omitempty"`
	Message           map[string]any `json:"message"`
	RequestID         string         `json:"requestId,omitempty"`
	IsAPIErrorMessage bool           `json:"isApiErrorMessage,omitempty"`
	Type              string         `json:"type"`
	UUID              string         `json:"uuid"`
	Timestamp         string         `json:"timestamp"`
	ToolUseResult     any            `json:"toolUseResult,omitempty"`
}

// claudeCall is one API response: its final usage and when it started.
type claudeCall struct {
	id, request, model string
	ts                 time.Time
	in, out, cr, cw    int64
	cw1h               int64
}

func (g *claudeGen) id(prefix string) string {
	g.seq++
	return fmt.Sprintf("%s%08x%08x", prefix, g.rng.Uint32(), g.seq)
}

func (g *claudeGen) uuid() string {
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", g.rng.Uint32(), g.rng.IntN(1<<16), g.rng.IntN(1<<12), 0x8000|g.rng.IntN(1<<14), g.rng.Uint64()&(1<<48-1))
}

func (g *claudeGen) words(n int) string {
	if n > len(g.text)/2 {
		n = len(g.text) / 2
	}
	i := g.rng.IntN(len(g.text) - n)
	return g.text[i : i+n]
}

// claudeFileWriter writes the lines of one transcript file.
type claudeFileWriter struct {
	f    *os.File
	w    *bufio.Writer
	n    int64
	base claudeEntry
	err  error
}

func (g *claudeGen) create(path string, base claudeEntry) (*claudeFileWriter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	g.exp.Files++
	return &claudeFileWriter{f: f, w: bufio.NewWriterSize(f, 256<<10), base: base}, nil
}

func (fw *claudeFileWriter) line(v any) {
	if fw.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		fw.err = err
		return
	}
	fw.w.Write(b)
	fw.err = fw.w.WriteByte('\n')
	fw.n += int64(len(b) + 1)
}

func (fw *claudeFileWriter) close(g *claudeGen) error {
	if err := fw.w.Flush(); fw.err == nil {
		fw.err = err
	}
	if err := fw.f.Close(); fw.err == nil {
		fw.err = err
	}
	g.exp.Bytes += fw.n
	return fw.err
}

func claudeStamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// session writes one session file, and maybe a sub-agent and a side
// question, for a project on a day.
func (g *claudeGen) session(cwd string, date time.Time) error {
	sid := g.uuid()
	enc := strings.NewReplacer("/", "-", ".", "-", "_", "-").Replace(cwd)
	dir := filepath.Join(g.root, "projects", enc)
	base := claudeEntry{UserType: "external", Cwd: cwd, SessionID: sid, Version: "2.0.14", GitBranch: "main"}
	fw, err := g.create(filepath.Join(dir, sid+".jsonl"), base)
	if err != nil {
		return err
	}
	// Sessions start before 20:00 and last at most a few hours, so no
	// streamed response straddles midnight (ccusage dates a call by its
	// largest copy, fleetmeter by its first: the same day here).
	t := date.Add(time.Duration(g.rng.IntN(20*3600)) * time.Second)
	if g.rng.IntN(4) == 0 {
		fw.line(map[string]any{"type": "summary", "summary": g.words(40), "leafUuid": g.uuid()})
	}
	model := claudeModels[g.rng.IntN(len(claudeModels))]
	var calls []claudeCall
	context := int64(8000 + g.rng.IntN(20000))
	turns := 3 + g.rng.IntN(12)
	for range turns {
		t = t.Add(time.Duration(20+g.rng.IntN(300)) * time.Second)
		g.user(fw, t, g.words(20+g.rng.IntN(400)), "")
		for r, responses := 0, 1+g.rng.IntN(4); r < responses; r++ {
			t = t.Add(time.Duration(2+g.rng.IntN(40)) * time.Second)
			c := g.call(model, t, &context)
			g.stream(fw, c, false, "")
			calls = append(calls, c)
			// A tool result between responses: most of a transcript's bytes.
			t = t.Add(time.Duration(1+g.rng.IntN(20)) * time.Second)
			g.user(fw, t, "", g.words(200+g.rng.IntN(6000)))
		}
		switch n := g.rng.IntN(100); {
		case n < 3:
			g.notice(fw, t.Add(time.Second), false)
		case n < 5:
			g.notice(fw, t.Add(time.Second), true)
		}
	}
	if err := fw.close(g); err != nil {
		return err
	}
	if g.rng.IntN(5) == 0 {
		if err := g.subagent(dir, base, sid, t.Add(time.Minute)); err != nil {
			return err
		}
	}
	if g.rng.IntN(8) == 0 && len(calls) > 1 {
		if err := g.aside(dir, base, sid, calls, t.Add(2*time.Minute)); err != nil {
			return err
		}
	}
	return nil
}

// call makes one response's final usage; the cached context grows.
func (g *claudeGen) call(model string, t time.Time, context *int64) claudeCall {
	c := claudeCall{id: g.id("msg_01"), request: g.id("req_011"), model: model, ts: t}
	c.in = int64(1 + g.rng.IntN(12))
	c.cr = *context
	c.cw = int64(g.rng.IntN(6000))
	if g.rng.IntN(3) == 0 {
		c.cw1h = c.cw // Claude Code's 1-hour cache
	}
	c.out = int64(20 + g.rng.IntN(2500))
	*context += c.cw + c.out
	return c
}

func (g *claudeGen) usage(c claudeCall, out int64) map[string]any {
	return map[string]any{
		"input_tokens": c.in, "cache_creation_input_tokens": c.cw, "cache_read_input_tokens": c.cr,
		"cache_creation": map[string]int64{"ephemeral_5m_input_tokens": c.cw - c.cw1h, "ephemeral_1h_input_tokens": c.cw1h},
		"output_tokens":  out, "service_tier": "standard",
	}
}

// stream writes a response as Claude Code does: one line per content
// block, each with the usage known so far; the last carries the final
// output count. One in twenty is written largest first.
func (g *claudeGen) stream(fw *claudeFileWriter, c claudeCall, sidechain bool, agentID string) {
	blocks := 1 + g.rng.IntN(4)
	largestFirst := blocks > 1 && g.rng.IntN(20) == 0
	for b := range blocks {
		out := c.out * int64(b+1) / int64(blocks)
		if b < blocks-1 {
			out = max(1, out/2)
		}
		if largestFirst {
			out = c.out
			if b > 0 {
				out = max(1, c.out*int64(blocks-b)/int64(blocks+1))
			}
		}
		content := map[string]any{"type": "text", "text": g.words(30 + g.rng.IntN(800))}
		if b > 0 {
			content = map[string]any{"type": "tool_use", "id": g.id("toolu_01"), "name": "Bash", "input": map[string]string{"command": g.words(60)}}
		}
		e := fw.base
		e.IsSidechain, e.AgentID = sidechain, agentID
		e.Message = map[string]any{
			"id": c.id, "type": "message", "role": "assistant", "model": c.model,
			"content": []any{content}, "stop_reason": nil, "stop_sequence": nil, "usage": g.usage(c, out),
		}
		e.RequestID, e.Type, e.UUID = c.request, "assistant", g.uuid()
		e.Timestamp = claudeStamp(c.ts.Add(time.Duration(b*150) * time.Millisecond))
		fw.line(e)
	}
	g.exp.Copies += blocks - 1
	day := c.ts.UTC().Format("2006-01-02")
	add := storage.Totals{Messages: 1, Input: c.in, Output: c.out, CacheRead: c.cr, CacheWrite: c.cw}
	d := g.exp.Daily[day]
	d.Add(add)
	g.exp.Daily[day] = d
	g.exp.Totals.Add(add)
}

// user writes a user turn: a prompt, or a tool result.
func (g *claudeGen) user(fw *claudeFileWriter, t time.Time, prompt, result string) {
	e := fw.base
	e.Type, e.UUID, e.Timestamp = "user", g.uuid(), claudeStamp(t)
	if result == "" {
		e.Message = map[string]any{"role": "user", "content": prompt}
	} else {
		e.Message = map[string]any{"role": "user", "content": []any{map[string]any{"tool_use_id": g.id("toolu_01"), "type": "tool_result", "content": result}}}
		e.ToolUseResult = map[string]any{"stdout": result[:min(len(result), 200)], "stderr": "", "interrupted": false}
	}
	fw.line(e)
}

// notice writes a <synthetic> line or an API error: no call, no tokens.
func (g *claudeGen) notice(fw *claudeFileWriter, t time.Time, apiError bool) {
	e := fw.base
	text := "No response requested."
	if apiError {
		text = "API Error: 529 {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}"
	}
	e.Message = map[string]any{
		"id": g.uuid(), "type": "message", "role": "assistant", "model": "<synthetic>", "content": []any{map[string]any{"type": "text", "text": text}},
		"usage": map[string]any{"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
	}
	e.IsAPIErrorMessage = apiError
	e.Type, e.UUID, e.Timestamp = "assistant", g.uuid(), claudeStamp(t)
	fw.line(e)
	g.exp.Notices++
}

// subagent writes a Task sub-agent's transcript: its own calls, sidechain.
func (g *claudeGen) subagent(dir string, base claudeEntry, sid string, t time.Time) error {
	agentID := fmt.Sprintf("a%016x", g.rng.Uint64())
	fw, err := g.create(filepath.Join(dir, sid, "subagents", "agent-"+agentID+".jsonl"), base)
	if err != nil {
		return err
	}
	model := claudeModels[3]
	context := int64(4000 + g.rng.IntN(8000))
	for range 2 + g.rng.IntN(5) {
		t = t.Add(time.Duration(5+g.rng.IntN(30)) * time.Second)
		g.stream(fw, g.call(model, t, &context), true, agentID)
		g.user(fw, t.Add(time.Second), "", g.words(100+g.rng.IntN(3000)))
	}
	return fw.close(g)
}

// aside writes a /btw side question: Claude Code replays the parent's
// recent messages (same message.id and usage, a new requestId, sidechain)
// before the one new answer (ccusage issue #913).
func (g *claudeGen) aside(dir string, base claudeEntry, sid string, calls []claudeCall, t time.Time) error {
	agentID := fmt.Sprintf("aside_question-%016x", g.rng.Uint64())
	fw, err := g.create(filepath.Join(dir, sid, "subagents", "agent-"+agentID+".jsonl"), base)
	if err != nil {
		return err
	}
	replayRequest := g.id("req_011")
	for _, c := range calls[max(0, len(calls)-1-g.rng.IntN(6)):] {
		e := fw.base
		e.IsSidechain, e.AgentID = true, agentID
		e.Message = map[string]any{"id": c.id, "type": "message", "role": "assistant", "model": c.model,
			"content": []any{map[string]any{"type": "text", "text": g.words(80)}}, "usage": g.usage(c, c.out)}
		e.RequestID, e.Type, e.UUID, e.Timestamp = replayRequest, "assistant", g.uuid(), claudeStamp(c.ts)
		fw.line(e)
		g.exp.Copies++
	}
	context := calls[len(calls)-1].cr
	g.stream(fw, g.call(calls[0].model, t, &context), true, agentID)
	return fw.close(g)
}
