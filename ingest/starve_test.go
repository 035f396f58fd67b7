package ingest

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// Symlinked agent and project folders are read (agents moved to another
// disk); a link back up the tree or to a folder read anyway is not
// followed, so nothing counts twice and a loop cannot hang a poll.
func TestSymlinkedSources(t *testing.T) {
	elsewhere := t.TempDir()
	// OpenClaw: agents/main is a folder, agents/ops a link to another
	// disk, agents/alias a second name for agents/main.
	oc := t.TempDir()
	appendFile(t, filepath.Join(sessionsDir(t, oc, "main"), "m.jsonl"), headerLine("m", t0)+assistantLine("a", "rm", t0+1, 1, 0, 0, 0, 0))
	opsReal := filepath.Join(elsewhere, "ops")
	if err := os.MkdirAll(filepath.Join(opsReal, "sessions"), 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(opsReal, "sessions", "o.jsonl"), headerLine("o", t0)+assistantLine("a", "ro", t0+2, 10, 0, 0, 0, 0))
	symlink(t, opsReal, filepath.Join(oc, "agents", "ops"))
	symlink(t, filepath.Join(oc, "agents", "main"), filepath.Join(oc, "agents", "alias"))

	// Claude Code: projects/p1 a folder holding a link back to projects/
	// (a loop), projects/p2 a link to another disk.
	claude := t.TempDir()
	p1 := filepath.Join(claude, "projects", "p1")
	os.MkdirAll(p1, 0o755)
	appendFile(t, filepath.Join(p1, "s1.jsonl"), claudeUsageLine("u1", "req1", 100))
	symlink(t, filepath.Join(claude, "projects"), filepath.Join(p1, "loop"))
	p2Real := filepath.Join(elsewhere, "p2")
	os.MkdirAll(p2Real, 0o755)
	appendFile(t, filepath.Join(p2Real, "s2.jsonl"), claudeUsageLine("u2", "req2", 1000))
	symlink(t, p2Real, filepath.Join(claude, "projects", "p2"))

	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{oc}, ClaudeDirs: []string{claude}}, db)
	step(t, in)
	// The direct report (a plan that stats nothing, see planLazy) keeps
	// the same name of agents/main as the ledger.
	direct := scanWith(t, Config{OpenClawDirs: []string{oc}, ClaudeDirs: []string{claude}})
	for name, src := range map[string]rollup.Source{"ledger": db, "direct report": direct} {
		if got := totalsOf(t, src); got.Sums.Messages != 4 || got.Sums.TotalTokens != 1111 || got.Skipped.Duplicate != 0 {
			t.Errorf("%s: read %d calls, %d tokens, %d duplicates; want 4, 1111, 0", name, got.Sums.Messages, got.Sums.TotalTokens, got.Skipped.Duplicate)
		}
		rep, err := rollup.Build(src, rollup.Query{Kind: "agent", Since: rollup.MinDay, Until: rollup.MaxDay})
		if err != nil {
			t.Fatal(err)
		}
		agents := map[string]int64{}
		for _, r := range rep.Rows.([]rollup.AgentRow) {
			agents[r.Agent] += r.TotalTokens
		}
		want := map[string]int64{"main": 1, "ops": 10, "p1": 100, "p2": 1000}
		if !maps.Equal(agents, want) {
			t.Errorf("%s: agents %v, want %v", name, agents, want)
		}
	}
	// A file appended behind a link is followed like any other.
	appendFile(t, filepath.Join(opsReal, "sessions", "o.jsonl"), assistantLine("b", "ro2", t0+3, 20, 0, 0, 0, 0))
	step(t, in)
	if got := totalsOf(t, db).Sums.TotalTokens; got != 1131 {
		t.Errorf("after an append behind the link: %d tokens, want 1131", got)
	}
}

// A line that never ends is searched for its end only in the bytes that
// came after it: each change costs what was appended, not the whole line
// again. With a per-file budget, the other files are read in full in the
// first step while the big one is read on in the steps after it.
func TestUnterminatedLineProgress(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	db := openDB(t)
	const budget = 1 << 20
	in := New(Config{OpenClawDirs: []string{root}, FileBudget: budget}, db)

	big := filepath.Join(dir, "big.jsonl")
	// A 3 MiB assistant message still being written: no "\n" yet.
	long := assistantLine("l", "rlong", t0+5, 7000, 0, 0, 0, 0)
	long = strings.Replace(long, `"text":"ok"`, `"text":"`+strings.Repeat("z", 3<<20)+`"`, 1)
	head := headerLine("big", t0) + assistantLine("a", "rb", t0+1, 1, 0, 0, 0, 0)
	appendFile(t, big, head+long[:len(long)-1000])
	small := filepath.Join(dir, "small.jsonl")
	appendFile(t, small, headerLine("small", t0)+assistantLine("a", "rs", t0+2, 10, 0, 0, 0, 0))

	res := step(t, in)
	if !res.More || res.Bytes > budget+int64(len(head))+4096 {
		t.Errorf("first step: more=%v, %d bytes; want more, at most the budget of the big file", res.More, res.Bytes)
	}
	if got := totalsOf(t, db).Sums.TotalTokens; got != 11 {
		t.Errorf("after the first step: %d tokens, want 11 (both files' first calls)", got)
	}
	var read int64 = res.Bytes
	steps := 1
	for res.More {
		res = step(t, in)
		read += res.Bytes
		if steps++; steps > 10 {
			t.Fatal("the big file is never finished")
		}
	}
	size := fileSize(t, big)
	if read > size+4096 {
		t.Errorf("read %d bytes over %d steps for a %d-byte file: parts read twice", read, steps, size)
	}
	// The writer goes on, still without an end: only what came is read.
	appendFile(t, big, long[len(long)-1000:len(long)-500])
	if res = step(t, in); res.Bytes > 4096 {
		t.Errorf("an append of 500 bytes to an unterminated line read %d bytes", res.Bytes)
	}
	// The line ends: it is read whole, once, and counted.
	appendFile(t, big, long[len(long)-500:]+assistantLine("c", "rc", t0+6, 100, 0, 0, 0, 0))
	read = 0
	for res = step(t, in); ; res = step(t, in) {
		read += res.Bytes
		if !res.More {
			break
		}
	}
	if got := totalsOf(t, db); got.Sums.TotalTokens != 7111 || got.Skipped.Malformed != 0 || got.Skipped.OversizeLine != 0 {
		t.Errorf("after the line ended: %d tokens, skips %+v; want 7111 and none", got.Sums.TotalTokens, got.Skipped)
	}
	if read > int64(len(long))+8192 {
		t.Errorf("finishing the line read %d bytes; the line is %d", read, len(long))
	}
	if res := step(t, in); res.Read != 0 || res.Bytes != 0 {
		t.Errorf("an idle step read %d files, %d bytes", res.Read, res.Bytes)
	}
}

// A line past MaxLineBytes that has not ended is skipped from where it
// was left: its bytes are counted once and never read again.
func TestOverlongLineNotReread(t *testing.T) {
	for _, budget := range []int64{0, 32 << 20} { // a one-shot read, the daemon
		t.Run(strconv.FormatInt(budget, 10), func(t *testing.T) { overlongLine(t, budget) })
	}
}

func overlongLine(t *testing.T, budget int64) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}, FileBudget: budget}, db)
	p := filepath.Join(dir, "s.jsonl")
	appendFile(t, p, headerLine("s", t0)+assistantLine("a", "r1", t0+1, 1, 0, 0, 0, 0))
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(`{"type":"message","message":{"role":"user","content":"` + strings.Repeat("y", 1<<20))
	for range MaxLineBytes>>20 + 2 {
		f.Write(chunk)
		chunk = chunk[:1<<20]
		for i := range chunk {
			chunk[i] = 'y'
		}
	}
	f.Close()
	var read int64
	for res := step(t, in); ; res = step(t, in) {
		read += res.Bytes
		if !res.More {
			break
		}
	}
	if size := fileSize(t, p); read > size+4096 {
		t.Errorf("read %d bytes of a %d-byte file", read, size)
	}
	appendFile(t, p, strings.Repeat("y", 1000)+`"}}`+"\n"+assistantLine("b", "r2", t0+2, 10, 0, 0, 0, 0))
	res := step(t, in)
	if res.Bytes > 8192 {
		t.Errorf("the end of a skipped line read %d bytes; want only what was appended", res.Bytes)
	}
	if got := totalsOf(t, db); got.Sums.TotalTokens != 11 || got.Skipped.OversizeLine != 1 || got.Skipped.Malformed != 0 {
		t.Errorf("%d tokens, skips %+v; want 11, one over-long line, nothing else", got.Sums.TotalTokens, got.Skipped)
	}
	// A restart resumes from the stored cursor: nothing to read.
	if res := step(t, New(Config{OpenClawDirs: []string{root}, FileBudget: budget}, db)); res.Read != 0 {
		t.Errorf("a restarted ingester read %d files again", res.Read)
	}
}

// The daemon's loop reads a file cut at its budget on at once, not at
// the next tick.
func TestRunFinishesCutFiles(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	var sb strings.Builder
	sb.WriteString(headerLine("big", t0))
	for i := range 20_000 {
		sb.WriteString(assistantLine("e", "r"+strconv.Itoa(i), t0+int64(i), 1, 0, 0, 0, 0))
	}
	os.WriteFile(filepath.Join(dir, "big.jsonl"), []byte(sb.String()), 0o644)
	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}, FileBudget: 256 << 10}, db)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx, time.Hour) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for in.Status().Added < 20_000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := in.Status().Added; got != 20_000 {
		t.Errorf("Run added %d calls of 20000 (a %d-byte file at a 256 KiB budget) without waiting a tick", got, sb.Len())
	}
}

// flakyLedger fails every Apply while fail is set: a full disk that is
// then freed.
type flakyLedger struct {
	*storage.DB
	fail atomic.Bool
}

func (f *flakyLedger) Apply(b *storage.Batch) (storage.ApplyResult, error) {
	if f.fail.Load() {
		return storage.ApplyResult{}, errors.New("no space left on device")
	}
	return f.DB.Apply(b)
}

// A watched step whose commit failed is retried by the next step, not
// left to the next full scan: the failed step's directories stay dirty.
func TestFailedStepRetried(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	appendFile(t, filepath.Join(dir, "a.jsonl"), headerLine("a", t0)+assistantLine("x", "r1", t0+1, 1, 0, 0, 0, 0))
	db := openDB(t)
	ledger := &flakyLedger{DB: db}
	in := New(Config{OpenClawDirs: []string{root}}, ledger)
	w := in.startWatching()
	defer w.close()
	ctx := context.Background()
	in.stepWatched(ctx, w)
	in.stepWatched(ctx, w) // the first polls stat everything while watches are added
	if w.take() == nil {
		t.Skip("no inotify here")
	}
	ledger.fail.Store(true)
	appendFile(t, filepath.Join(dir, "a.jsonl"), assistantLine("y", "r2", t0+2, 10, 0, 0, 0, 0))
	waitDirty(t, w, dir)
	if _, err := in.stepWatched(ctx, w); err == nil {
		t.Fatal("a step on a failing database did not fail")
	}
	if st := in.Status(); st.LastError == "" {
		t.Error("the failing step is not in the status")
	}
	ledger.fail.Store(false)
	if _, err := in.stepWatched(ctx, w); err != nil {
		t.Fatal(err)
	}
	if got := totalsOf(t, db).Sums.TotalTokens; got != 11 {
		t.Errorf("after the disk was freed: %d tokens, want 11 (the failed step's call is left to the next full scan)", got)
	}
	if st := in.Status(); st.LastError != "" {
		t.Errorf("status still failing after a good step: %q", st.LastError)
	}
}

func TestRetryDelay(t *testing.T) {
	for _, c := range []struct {
		interval time.Duration
		failures int
		want     time.Duration
	}{
		{10 * time.Second, 1, 10 * time.Second},
		{10 * time.Second, 2, 20 * time.Second},
		{10 * time.Second, 3, 40 * time.Second},
		{10 * time.Second, 4, time.Minute},
		{10 * time.Second, 100, time.Minute},
		{2 * time.Minute, 5, 2 * time.Minute},
	} {
		if got := retryDelay(c.interval, c.failures); got != c.want {
			t.Errorf("retryDelay(%v, %d) = %v, want %v", c.interval, c.failures, got, c.want)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// claudeUsageLine is a Claude Code assistant line with input tokens.
func claudeUsageLine(uuid, requestID string, input int64) string {
	return `{"type":"assistant","uuid":"` + uuid + `","requestId":"` + requestID + `","sessionId":"s","timestamp":"2026-04-10T08:00:00.000Z",` +
		`"message":{"id":"msg_` + uuid + `","model":"claude-sonnet-4-6","role":"assistant","usage":{"input_tokens":` + strconv.FormatInt(input, 10) + `,"output_tokens":0}}}` + "\n"
}
