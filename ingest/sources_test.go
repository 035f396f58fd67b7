package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer is a slog handler's output, safe to read while Run writes it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogBuffer() (*logBuffer, *slog.Logger) {
	lb := &logBuffer{}
	return lb, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Every source is listed by kind, in the status and in the log; not
// OpenClaw's alone.
func TestSourcesByKind(t *testing.T) {
	oc := t.TempDir()
	appendFile(t, filepath.Join(sessionsDir(t, oc, "main"), "a.jsonl"), headerLine("a", t0)+assistantLine("x", "r1", t0+1, 1, 0, 0, 0, 0))
	lb, log := newLogBuffer()
	in := New(Config{OpenClawDirs: []string{oc}, ClaudeDirs: []string{"testdata/claude"}, CodexDirs: []string{"testdata/codex"}, Logger: log}, openDB(t))
	step(t, in)
	want := []Source{{"openclaw", oc}, {"claude", "testdata/claude/projects"}, {"codex", "testdata/codex"}}
	if got := in.Status().Sources; !slices.Equal(got, want) {
		t.Errorf("sources = %v, want %v", got, want)
	}
	line := lb.String()
	for _, w := range []string{"transcript sources", "openclaw=[" + oc + "]", "claude=[testdata/claude/projects]", "codex=[testdata/codex]"} {
		if !strings.Contains(line, w) {
			t.Errorf("log lacks %q:\n%s", w, line)
		}
	}
}

// An explicit --claude-dir or --codex-dir that does not exist is an error
// naming it, as --openclaw-dir is.
func TestExplicitDirsMustExist(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{OpenClawDirs: []string{missing}}, "openclaw dir " + missing + ": no agents/ folder"},
		{Config{ClaudeDirs: []string{missing}}, "claude dir " + missing + ": stat " + missing + ": no such file"},
		{Config{CodexDirs: []string{missing}}, "codex dir " + missing + ": stat " + missing + ": no such file"},
	} {
		_, err := New(c.cfg, openDB(t)).Step(context.Background())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.cfg, err, c.want)
		}
	}
}

// A daemon that finds nothing says where it looked and how to point at
// the data.
func TestNothingFoundWarns(t *testing.T) {
	home := t.TempDir()
	lb, log := newLogBuffer()
	in := New(Config{Discover: true, Homes: []string{home}, Env: func(string) string { return "" }, Logger: log}, openDB(t))
	step(t, in)
	out := lb.String()
	for _, w := range []string{"level=WARN", "no transcripts found", "--claude-dir", filepath.Join(home, ".openclaw"), filepath.Join(home, ".claude"), filepath.Join(home, ".codex")} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
}

// The daemon says when its first pass is done (calls, files, time), and
// when a failing step has recovered.
func TestRunSaysFirstPassAndRecovery(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	appendFile(t, filepath.Join(dir, "a.jsonl"), headerLine("a", t0)+assistantLine("x", "r1", t0+1, 1, 0, 0, 0, 0)+assistantLine("y", "r2", t0+2, 1, 0, 0, 0, 0))
	ledger := &flakyLedger{DB: openDB(t)}
	ledger.fail.Store(true)
	lb, log := newLogBuffer()
	in := New(Config{OpenClawDirs: []string{root}, Logger: log}, ledger)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx, 5*time.Millisecond) }()
	defer func() {
		cancel()
		<-done
	}()
	waitLog := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if strings.Contains(lb.String(), what) {
				return
			}
		}
		t.Fatalf("no %q in the log:\n%s", what, lb.String())
	}
	waitLog("ingest step failed")
	ledger.fail.Store(false)
	waitLog("ingest recovered")
	waitLog("first pass done")
	if !strings.Contains(lb.String(), "calls=2 files=1") {
		t.Errorf("the first-pass line does not count 2 calls in 1 file:\n%s", lb.String())
	}
}

// A watched step that leaves a source's folders alone still lists the
// source (the Codex home dropped out of the status and the log after each
// file-event poll).
func TestSourcesStableInWatchedSteps(t *testing.T) {
	oc := t.TempDir()
	dir := sessionsDir(t, oc, "main")
	appendFile(t, filepath.Join(dir, "a.jsonl"), headerLine("a", t0)+assistantLine("x", "r1", t0+1, 1, 0, 0, 0, 0))
	codex := t.TempDir()
	copyTree(t, "testdata/codex", codex)
	lb, log := newLogBuffer()
	in := New(Config{OpenClawDirs: []string{oc}, CodexDirs: []string{codex}, Logger: log}, openDB(t))
	w := in.startWatching()
	defer w.close()
	ctx := context.Background()
	for range 2 { // the first polls stat everything while watches are added
		if _, err := in.stepWatched(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	if w.take() == nil {
		t.Skip("no inotify here")
	}
	appendFile(t, filepath.Join(dir, "a.jsonl"), assistantLine("y", "r2", t0+2, 1, 0, 0, 0, 0))
	waitDirty(t, w, dir)
	if _, err := in.stepWatched(ctx, w); err != nil {
		t.Fatal(err)
	}
	want := []Source{{"openclaw", oc}, {"codex", codex}}
	if got := in.Status().Sources; !slices.Equal(got, want) {
		t.Errorf("sources after a watched step = %v, want %v", got, want)
	}
	if n := strings.Count(lb.String(), "transcript sources"); n != 1 {
		t.Errorf("the sources were logged %d times, want once:\n%s", n, lb.String())
	}
}

// A link back into a source given as a relative path is recognised as
// one: the tree is not walked a second time.
func TestSymlinkGuardRelativeRoot(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	p := filepath.Join("cl", "projects", "-p")
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(p, "s.jsonl"), claudeUsageLine("u1", "req1", 5))
	symlink(t, filepath.Join(base, "cl", "projects"), filepath.Join(p, "loop")) // absolute target
	lb, log := newLogBuffer()
	in := New(Config{ClaudeDirs: []string{"cl"}, Logger: log}, openDB(t))
	step(t, in)
	if st := in.Status(); st.Files != 1 {
		t.Errorf("%d files tracked, want 1 (the loop was walked)", st.Files)
	}
	if out := lb.String(); !strings.Contains(out, "symlinked folder not followed") || !strings.Contains(out, "path="+filepath.Join(p, "loop")+"\n") || strings.Contains(out, "loop/-p") {
		t.Errorf("the loop is not refused at its first link:\n%s", out)
	}
}

// A transcript that cannot be read is named in the status until it can
// be read, or is gone: its calls are missing meanwhile.
func TestUnreadableFilesInStatus(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	bad := filepath.Join(dir, "bad.jsonl")
	symlink(t, "/proc/self/mem", bad) // opens, fails to read (EIO), for root too
	in := New(Config{OpenClawDirs: []string{root}}, openDB(t))
	step(t, in)
	st := in.Status()
	if len(st.UnreadableFiles) != 1 || st.UnreadableFiles[0].Path != bad || st.UnreadableFiles[0].Error == "" {
		t.Fatalf("unreadable files = %+v, want %s", st.UnreadableFiles, bad)
	}
	step(t, in)
	if n := len(in.Status().UnreadableFiles); n != 1 {
		t.Errorf("after a second step: %d unreadable files, want 1", n)
	}
	// It becomes a readable transcript: read, and no longer named.
	os.Remove(bad)
	appendFile(t, bad, headerLine("b", t0)+assistantLine("x", "rb", t0+1, 3, 0, 0, 0, 0))
	step(t, in)
	if st := in.Status(); len(st.UnreadableFiles) != 0 || st.Added != 1 {
		t.Errorf("after the file became readable: unreadable %+v, added %d", st.UnreadableFiles, st.Added)
	}
	// Gone: not named either.
	symlink(t, "/proc/self/mem", filepath.Join(dir, "bad2.jsonl"))
	step(t, in)
	os.Remove(filepath.Join(dir, "bad2.jsonl"))
	step(t, in)
	if st := in.Status(); len(st.UnreadableFiles) != 0 {
		t.Errorf("a removed unreadable file is still named: %+v", st.UnreadableFiles)
	}
}
