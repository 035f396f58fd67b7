package corpus_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
)

func small(size int64) corpus.Options {
	o := corpus.DefaultOptions()
	o.SizeBytes = size
	return o
}

// hashDir hashes every file's relative path and content, in lexical order.
func hashDir(t *testing.T, root string) (string, int64) {
	t.Helper()
	h := sha256.New()
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		h.Write([]byte(rel + "\x00" + strconv.Itoa(len(b)) + "\x00"))
		h.Write(b)
		total += int64(len(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), total
}

func TestGenerateIsDeterministic(t *testing.T) {
	o := small(3 << 20)
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	ea, err := corpus.Generate(a, o)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := corpus.Generate(b, o)
	if err != nil {
		t.Fatal(err)
	}
	ha, _ := hashDir(t, a)
	hb, _ := hashDir(t, b)
	if ha != hb {
		t.Fatalf("same seed, different bytes: %s vs %s", ha, hb)
	}
	if !reflect.DeepEqual(ea, eb) {
		t.Fatalf("same seed, different Expected")
	}
	o.Seed++
	if _, err := corpus.Generate(c, o); err != nil {
		t.Fatal(err)
	}
	if hc, _ := hashDir(t, c); hc == ha {
		t.Fatalf("different seeds, same bytes")
	}
}

func TestGenerateLandsNearTargetSize(t *testing.T) {
	cases := []struct {
		name string
		o    corpus.Options
	}{
		{"1 MiB default", small(1 << 20)},
		{"6 MiB default", small(6 << 20)},
		{"4 MiB, 1 agent, 3 days", func() corpus.Options {
			o := small(4 << 20)
			o.Agents, o.Days = 1, 3
			return o
		}()},
		{"2 MiB, 20 agents, 1 day", func() corpus.Options {
			o := small(2 << 20)
			o.Agents, o.Days = 20, 1
			return o
		}()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			exp, err := corpus.Generate(dir, c.o)
			if err != nil {
				t.Fatal(err)
			}
			_, onDisk := hashDir(t, dir)
			if onDisk != exp.Files.Bytes {
				t.Errorf("Files.Bytes %d, on disk %d", exp.Files.Bytes, onDisk)
			}
			if r := float64(onDisk) / float64(c.o.SizeBytes); r < 0.9 || r > 1.1 {
				t.Errorf("wrote %d bytes for a %d target (%.2f×)", onDisk, c.o.SizeBytes, r)
			}
		})
	}
}

func TestGenerateRefusesExistingCorpus(t *testing.T) {
	dir := t.TempDir()
	if _, err := corpus.Generate(dir, small(64<<10)); err != nil {
		t.Fatal(err)
	}
	if _, err := corpus.Generate(dir, small(64<<10)); !errors.Is(err, corpus.ErrExists) {
		t.Fatalf("second Generate: %v, want ErrExists", err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*corpus.Options)
	}{
		{"zero size", func(o *corpus.Options) { o.SizeBytes = 0 }},
		{"zero days", func(o *corpus.Options) { o.Days = 0 }},
		{"zero agents", func(o *corpus.Options) { o.Agents = 0 }},
		{"no sessions", func(o *corpus.Options) { o.SessionsPerAgentDay = 0 }},
		{"rate above 1", func(o *corpus.Options) { o.ForkRate = 1.5 }},
		{"NaN rate", func(o *corpus.Options) { o.AbortRate = math.NaN() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := corpus.DefaultOptions()
			c.edit(&o)
			if err := o.Validate(); !errors.Is(err, corpus.ErrInvalidOptions) {
				t.Fatalf("Validate() = %v, want ErrInvalidOptions", err)
			}
		})
	}
	if err := corpus.DefaultOptions().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

// TestExpectedMatchesRecount recounts a corpus with encoding/json, applying
// the rules independently of the generator, and compares every total.
func TestExpectedMatchesRecount(t *testing.T) {
	dir := t.TempDir()
	o := small(8 << 20)
	exp, err := corpus.Generate(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	// Every trap must be present, or the comparison proves little.
	f := exp.Files
	if f.Forks == 0 || f.Checkpoints == 0 || f.ResetArchives == 0 || exp.Skips.Duplicate == 0 ||
		exp.Skips.NotModelCall == 0 || exp.Skips.ZeroUsage == 0 || exp.Unpriced.Messages == 0 {
		t.Fatalf("corpus lacks a trap: files %+v, skips %+v, unpriced %d", f, exp.Skips, exp.Unpriced.Messages)
	}

	r := newRecount()
	paths, _ := filepath.Glob(filepath.Join(dir, "agents", "*", "sessions", "*"))
	var lines int64
	var fileKinds corpus.Files
	for _, p := range paths {
		name := filepath.Base(p)
		agent := filepath.Base(filepath.Dir(filepath.Dir(p)))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if name == "sessions.json" {
			fileKinds.Stores++
			checkStore(t, agent, filepath.Dir(p), data)
			continue
		}
		n := checkLines(t, name, data)
		lines += int64(n)
		switch {
		case strings.Contains(name, ".checkpoint."):
			fileKinds.Checkpoints++
			continue // copies of their live transcript: never counted
		case strings.Contains(name, ".jsonl.reset."):
			fileKinds.ResetArchives++
		case strings.Contains(name, "_"):
			fileKinds.Forks++
		default:
			fileKinds.Transcripts++
		}
		r.file(t, agent, name, data)
	}
	fileKinds.Lines, fileKinds.Bytes = lines, exp.Files.Bytes
	if fileKinds != exp.Files {
		t.Errorf("files on disk %+v, Expected %+v", fileKinds, exp.Files)
	}

	got := r.exp
	sameTotals(t, "total", got.Totals, exp.Totals)
	sameTotals(t, "unpriced", got.Unpriced, exp.Unpriced)
	if got.Skips != exp.Skips {
		t.Errorf("skips: recount %+v, Expected %+v", got.Skips, exp.Skips)
	}
	for _, m := range []struct {
		name      string
		got, want map[string]corpus.Totals
	}{{"day", got.Days, exp.Days}, {"agent", got.Agents, exp.Agents}, {"model", got.Models, exp.Models}} {
		if len(m.got) != len(m.want) {
			t.Errorf("%s keys: recount %d, Expected %d", m.name, len(m.got), len(m.want))
		}
		for k, w := range m.want {
			sameTotals(t, m.name+" "+k, m.got[k], w)
		}
	}
	if len(exp.Days) < o.Days*8/10 {
		t.Errorf("only %d of %d days have usage", len(exp.Days), o.Days)
	}
	if len(exp.Agents) != o.Agents {
		t.Errorf("%d agents with usage, want %d", len(exp.Agents), o.Agents)
	}
}

func sameTotals(t *testing.T, what string, got, want corpus.Totals) {
	t.Helper()
	// The float cost sum depends on summation order; CostNanos does not.
	if math.Abs(got.Cost-want.Cost) > 1e-6*math.Max(1, want.Cost) {
		t.Errorf("%s cost: recount %v, Expected %v", what, got.Cost, want.Cost)
	}
	got.Cost, want.Cost = 0, 0
	if got != want {
		t.Errorf("%s: recount %+v, Expected %+v", what, got, want)
	}
}

// line is what the recount reads from a transcript line.
type line struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Message   *struct {
		Role       string `json:"role"`
		Provider   string `json:"provider"`
		Model      string `json:"model"`
		ResponseID string `json:"responseId"`
		Timestamp  int64  `json:"timestamp"`
		Usage      *struct {
			Input       int64 `json:"input"`
			Output      int64 `json:"output"`
			CacheRead   int64 `json:"cacheRead"`
			CacheWrite  int64 `json:"cacheWrite"`
			TotalTokens int64 `json:"totalTokens"`
			Cost        struct {
				Total float64 `json:"total"`
			} `json:"cost"`
		} `json:"usage"`
	} `json:"message"`
}

type recount struct {
	exp  corpus.Expected
	seen map[string]bool
}

func newRecount() *recount {
	return &recount{
		exp:  corpus.Expected{Days: map[string]corpus.Totals{}, Agents: map[string]corpus.Totals{}, Models: map[string]corpus.Totals{}},
		seen: map[string]bool{},
	}
}

// file counts the complete lines of data.
func (r *recount) file(t *testing.T, agent, name string, data []byte) {
	t.Helper()
	for n, raw := range bytes.SplitAfter(data, []byte("\n")) {
		if len(raw) == 0 || raw[len(raw)-1] != '\n' {
			continue // an unfinished line is not counted yet
		}
		var l line
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatalf("%s line %d: %v", name, n+1, err)
		}
		m := l.Message
		if l.Type != "message" || m == nil || m.Role != "assistant" || m.Usage == nil {
			continue
		}
		u := m.Usage
		if u.TotalTokens != u.Input+u.Output+u.CacheRead+u.CacheWrite {
			t.Errorf("%s line %d: totalTokens %d is not the sum", name, n+1, u.TotalTokens)
		}
		switch {
		case m.Provider == "openclaw":
			r.exp.Skips.NotModelCall++
			continue
		case u.Input == 0 && u.Output == 0 && u.CacheRead == 0 && u.CacheWrite == 0:
			r.exp.Skips.ZeroUsage++
			continue
		}
		key := m.Provider + "|" + m.ResponseID
		if m.ResponseID == "" {
			key = strings.Join([]string{m.Provider, m.Model, strconv.FormatInt(m.Timestamp, 10),
				strconv.FormatInt(u.Input, 10), strconv.FormatInt(u.Output, 10),
				strconv.FormatInt(u.CacheRead, 10), strconv.FormatInt(u.CacheWrite, 10)}, "|")
		}
		if r.seen[key] {
			r.exp.Skips.Duplicate++
			continue
		}
		r.seen[key] = true
		ts, err := time.Parse(time.RFC3339Nano, l.Timestamp)
		if err != nil {
			t.Fatalf("%s line %d: %v", name, n+1, err)
		}
		d := ts.UTC().Format(time.DateOnly)
		if md := time.UnixMilli(m.Timestamp).UTC().Format(time.DateOnly); md != d {
			t.Errorf("%s line %d: entry date %s, message.timestamp date %s", name, n+1, d, md)
		}
		add := func(tt *corpus.Totals) {
			tt.Messages++
			tt.Input += u.Input
			tt.Output += u.Output
			tt.CacheRead += u.CacheRead
			tt.CacheWrite += u.CacheWrite
			tt.Cost += u.Cost.Total
			tt.CostNanos += int64(math.Round(u.Cost.Total * 1e9))
		}
		add(&r.exp.Totals)
		if u.Cost.Total == 0 {
			add(&r.exp.Unpriced)
		}
		for _, kv := range []struct {
			m map[string]corpus.Totals
			k string
		}{{r.exp.Days, d}, {r.exp.Agents, agent}, {r.exp.Models, m.Provider + "/" + m.Model}} {
			tt := kv.m[kv.k]
			add(&tt)
			kv.m[kv.k] = tt
		}
	}
}

// checkLines verifies that every line is one compact JSON object starting
// with "type" as pi writes it, and returns the line count.
func checkLines(t *testing.T, name string, data []byte) int {
	t.Helper()
	if len(data) == 0 || data[len(data)-1] != '\n' {
		t.Fatalf("%s: does not end with a newline", name)
	}
	lines := bytes.Split(data[:len(data)-1], []byte("\n"))
	for i, l := range lines {
		if !json.Valid(l) {
			t.Fatalf("%s line %d: invalid JSON", name, i+1)
		}
		if !bytes.HasPrefix(l, []byte(`{"type":"`)) {
			t.Fatalf("%s line %d: does not start with type: %.60s", name, i+1, l)
		}
	}
	if !bytes.HasPrefix(lines[0], []byte(`{"type":"session","version":3,"id":"`)) {
		t.Fatalf("%s: first line is not a v3 header: %.80s", name, lines[0])
	}
	return len(lines)
}

// checkStore verifies sessions.json: keys name the agent and every
// current session's file exists.
func checkStore(t *testing.T, agent, dir string, data []byte) {
	t.Helper()
	var store map[string]struct {
		SessionID   string `json:"sessionId"`
		UpdatedAt   int64  `json:"updatedAt"`
		SessionFile string `json:"sessionFile"`
		ChatType    string `json:"chatType"`
		Origin      struct {
			Provider string `json:"provider"`
			Label    string `json:"label"`
		} `json:"origin"`
	}
	if err := json.Unmarshal(data, &store); err != nil {
		t.Fatalf("%s sessions.json: %v", agent, err)
	}
	if len(store) == 0 {
		t.Fatalf("%s sessions.json is empty", agent)
	}
	for k, e := range store {
		if !strings.HasPrefix(k, "agent:"+agent+":") {
			t.Errorf("%s: key %q lacks the agent prefix", agent, k)
		}
		if e.SessionID == "" || e.UpdatedAt == 0 || e.ChatType == "" || e.Origin.Provider == "" {
			t.Errorf("%s: %q has an incomplete entry %+v", agent, k, e)
		}
		if !strings.Contains(e.SessionFile, e.SessionID) {
			t.Errorf("%s: %q file %q does not name session %s", agent, k, e.SessionFile, e.SessionID)
		}
		if _, err := os.Stat(filepath.Join(dir, e.SessionFile)); err != nil {
			t.Errorf("%s: %q: %v", agent, k, err)
		}
	}
}
