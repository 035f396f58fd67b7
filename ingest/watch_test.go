package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// With the directory watcher, a poll stats only files in directories that
// had events; changes are still all seen.
func TestWatchedPolls(t *testing.T) {
	tl := newTailer(t)
	other := sessionsDir(t, tl.root, "ops")
	appendFile(t, tl.path("a.jsonl"), headerLine("a", t0)+assistantLine("x", "rw1", t0+1, 1, 0, 0, 0, 0))
	appendFile(t, other+"/b.jsonl", headerLine("b", t0)+assistantLine("x", "rw2", t0+2, 2, 0, 0, 0, 0))
	w := tl.in.startWatching()
	defer w.close()
	ctx := context.Background()
	poll := func() StepResult {
		t.Helper()
		res, err := tl.in.stepWatched(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	poll()
	poll() // the first polls stat everything while watches are added
	if w.take() == nil {
		t.Skip("no inotify here")
	}
	appendFile(t, tl.path("a.jsonl"), assistantLine("y", "rw3", t0+3, 4, 0, 0, 0, 0))
	waitDirty(t, w, tl.dir)
	if res := poll(); res.Read != 1 {
		t.Errorf("poll after an append read %d files, want 1", res.Read)
	}
	if got := totalsOf(t, tl.db).Sums.TotalTokens; got != 7 {
		t.Errorf("tokens = %d, want 7", got)
	}
	// A file deleted elsewhere loses its cursor: the delete is an event.
	os.Remove(other + "/b.jsonl")
	waitDirty(t, w, other)
	poll()
	if st, _ := tl.db.Stats(); st.Cursors != 1 {
		t.Errorf("cursors = %d, want 1", st.Cursors)
	}
}

// waitDirty waits until the watcher has seen an event in dir.
func waitDirty(t *testing.T, w *dirWatcher, dir string) {
	t.Helper()
	for range 1000 {
		w.mu.Lock()
		ok := w.dirty[dir]
		w.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no event for %s", dir)
}

// Under the watcher, a new Claude Code project (a new directory two
// levels down) and a new session in it are found at the next poll.
func TestWatchedPollsFindNewClaudeProjects(t *testing.T) {
	root := t.TempDir()
	projects := filepath.Join(root, "projects")
	line := func(id string, in int) string {
		return `{"type":"assistant","timestamp":"2026-03-10T09:00:00.000Z","sessionId":"s","cwd":"/home/u/app","requestId":"q` + id +
			`","message":{"id":"` + id + `","model":"claude-sonnet-4-5","role":"assistant","usage":{"input_tokens":` + fmt.Sprint(in) + `,"output_tokens":1}}}` + "\n"
	}
	os.MkdirAll(filepath.Join(projects, "-home-u-app"), 0o755)
	appendFile(t, filepath.Join(projects, "-home-u-app", "s1.jsonl"), line("m1", 10))
	db := openDB(t)
	in := New(Config{ClaudeDirs: []string{root}}, db)
	w := in.startWatching()
	defer w.close()
	ctx := context.Background()
	for range 3 {
		if _, err := in.stepWatched(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	if w.w == nil {
		t.Skip("no inotify here")
	}
	os.MkdirAll(filepath.Join(projects, "-home-u-other"), 0o755)
	waitDirty(t, w, projects)
	if _, err := in.stepWatched(ctx, w); err != nil { // lists the new project, watches it
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(projects, "-home-u-other", "s2.jsonl"), line("m2", 100))
	waitDirty(t, w, filepath.Join(projects, "-home-u-other"))
	if _, err := in.stepWatched(ctx, w); err != nil {
		t.Fatal(err)
	}
	if got := totalsOf(t, db).Sums; got.Messages != 2 || got.InputTokens != 110 {
		t.Errorf("got %d calls, %d input tokens; want 2, 110", got.Messages, got.InputTokens)
	}
}

// A watched poll leaves a directory with no event alone, files and all
// (nothing per file at fleet scale), but not one whose file was left half
// read by a batch limit: that file goes on at the next poll, event or not.
func TestWatchedPollsSkipCleanDirs(t *testing.T) {
	tl := newTailer(t)
	other := sessionsDir(t, tl.root, "ops")
	for i := range 3 {
		appendFile(t, filepath.Join(other, fmt.Sprintf("o%d.jsonl", i)), headerLine(fmt.Sprint("o", i), t0)+assistantLine("x", fmt.Sprint("ro", i), t0+1, 1, 0, 0, 0, 0))
	}
	var big string
	for i := range 40 {
		big += assistantLine(fmt.Sprint("b", i), fmt.Sprint("rb", i), t0+int64(i), 1, 0, 0, 0, 0)
	}
	appendFile(t, tl.path("big.jsonl"), headerLine("big", t0)+big)
	tl.in.cfg.BatchBytes, tl.in.chunkBytes = 2000, 2000 // the big file takes several polls
	w := tl.in.startWatching()
	defer w.close()
	ctx := context.Background()
	poll := func() StepResult {
		t.Helper()
		res, err := tl.in.stepWatched(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	poll()
	if w.w == nil {
		t.Skip("no inotify here")
	}
	for range 20 { // no event anywhere from here on
		poll()
	}
	if got := totalsOf(t, tl.db).Sums.Messages; got != 43 {
		t.Errorf("%d calls, want 43: a half-read file must go on without an event", got)
	}
	if st := tl.in.Status(); st.Files != 4 {
		t.Errorf("status counts %d files, want 4 (skipped directories included)", st.Files)
	}
	if res := poll(); res.Read != 0 {
		t.Errorf("an idle watched poll read %d files", res.Read)
	}
	if tl.in.skipped != 4 {
		t.Errorf("an idle watched poll skipped %d files, want all 4 (nothing done per file)", tl.in.skipped)
	}
}
