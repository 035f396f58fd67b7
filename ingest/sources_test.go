package ingest

import (
	"bytes"
	"context"
	"log/slog"
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
