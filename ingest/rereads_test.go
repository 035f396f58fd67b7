package ingest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// A transcript read again from its start (rewritten in place, replaced by
// a temp file renamed over it, read by a restarted daemon) adds to the
// skip counters only the skips it did not hold before: the ledger's, the
// status's and the per-file malformed count. Its calls come again as
// duplicates (the dedupe's verdict, counted as such).
func TestRereadDoesNotRecountSkips(t *testing.T) {
	tl := newTailer(t)
	p := tl.path("s1.jsonl")
	notCall := strings.Replace(assistantLine("m", "r9", t0+900, 5, 0, 0, 0, 0), `"provider":"anthropic"`, `"provider":"openclaw"`, 1)
	body := assistantLine("a", "r1", t0+1000, 10, 0, 0, 0, 0.01) +
		"not json\n" + `{"half":` + "\n" + // malformed: 2
		assistantLine("z", "", t0+2000, 0, 0, 0, 0, 0) + // zero usage
		notCall + // not a model call
		`{"type":"turn","usage":{"input":3}}` + "\n" // unrecognized usage
	write := func(header string, more string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(header+body+more), 0o644); err != nil { // in place: same inode
			t.Fatal(err)
		}
	}
	ledgerSkips := func() storage.Skips {
		t.Helper()
		s, err := tl.db.Skips()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := storage.Skips{Malformed: 2, ZeroUsage: 1, NotModelCall: 1, UnrecognizedUsage: 1}
	check := func(what string, in *Ingester, duplicates int64) {
		t.Helper()
		step(t, in)
		w := want
		w.Duplicate = duplicates
		if got := ledgerSkips(); got != w {
			t.Errorf("%s: ledger skips %+v, want %+v", what, got, w)
		}
		if in != tl.in {
			return // a restarted daemon's status counts from its start
		}
		if got := in.Status().Skips; got != w {
			t.Errorf("%s: status skips %+v, want %+v", what, got, w)
		}
		if got := in.Status().MalformedFiles; len(got) != 1 || got[0].Lines != w.Malformed {
			t.Errorf("%s: malformed files %+v, want %s with %d lines", what, got, p, w.Malformed)
		}
		if got := in.Status().Unrecognized; len(got) != 1 || got["openclaw type turn"] != 1 {
			t.Errorf("%s: unrecognized usage by field %v, want the one turn once", what, got)
		}
		if got := totalsOf(t, tl.db).Sums.Messages; got != 1 {
			t.Errorf("%s: %d calls, want 1", what, got)
		}
	}

	write(headerLine("s1", t0), "")
	check("first read", tl.in, 0)

	// Rewritten in place with the same lines (the header's cwd changed:
	// the head fingerprint differs, so the file is read from its start).
	cwd2 := strings.Replace(headerLine("s1", t0), `"cwd":"/w"`, `"cwd":"/w2"`, 1)
	write(cwd2, "")
	check("rewritten in place", tl.in, 1)

	// Again, with one more malformed line: that one counts.
	write(headerLine("s1", t0), "{oops\n")
	want.Malformed++
	check("rewritten with one more malformed line", tl.in, 2)

	// Replaced: the same lines in a temp file renamed over it (a new inode).
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(cwd2+body+"{oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	check("replaced by rename", tl.in, 3)

	// A restarted daemon reads the cursor back from the ledger: a rewrite
	// after the restart counts nothing again either, and a line appended
	// after it counts once.
	restarted := New(Config{OpenClawDirs: []string{tl.root}}, tl.db)
	write(headerLine("s1", t0), "{oops\n")
	check("rewritten after a restart", restarted, 4)
	appendFile(t, p, "{oops again\n")
	want.Malformed++
	check("appended after a restart", restarted, 4)
}

// Cursors stay compact: a file without skips carries no skip counts, and
// one with skips of one kind names that kind only.
func TestCursorSkipCountsCompact(t *testing.T) {
	tl := newTailer(t)
	appendFile(t, tl.path("clean.jsonl"), headerLine("c", t0)+assistantLine("a", "r1", t0+1000, 10, 0, 0, 0, 0.01))
	appendFile(t, tl.path("bad.jsonl"), headerLine("b", t0)+"not json\n")
	step(t, tl.in)
	raw, err := tl.db.Cursors()
	if err != nil {
		t.Fatal(err)
	}
	var clean, bad string
	for _, v := range raw {
		switch s := string(v); {
		case strings.Contains(s, "clean.jsonl"):
			clean = s
		case strings.Contains(s, "bad.jsonl"):
			bad = s
		}
	}
	if strings.Contains(clean, "skipped") || strings.Contains(clean, "counted") {
		t.Errorf("a clean file's cursor holds skip counts: %s", clean)
	}
	if !strings.Contains(bad, `"skipped":{"malformed":1}`) || strings.Contains(bad, "counted") {
		t.Errorf("a file with one malformed line: cursor %s", bad)
	}
}

// A transcript with two names (a hard link) is read once, by a one-shot
// report that stats nothing before reading (planLazy: the committer keeps
// the first name) as by the daemon (the plan keeps one): its calls count
// once and are no duplicates, and it is one file.
func TestSecondNameReadOnce(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	a := filepath.Join(dir, "a.jsonl")
	appendFile(t, a, headerLine("s1", t0)+assistantLine("x", "r1", t0+1000, 10, 0, 0, 0, 0.01)+"not json\n")
	if err := os.Link(a, filepath.Join(dir, "b.jsonl")); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(dir, "c.jsonl"), headerLine("s2", t0)+assistantLine("y", "r2", t0+2000, 5, 0, 0, 0, 0.01))
	check := func(what string, src rollup.Source, in *Ingester) {
		t.Helper()
		got := totalsOf(t, src)
		if got.Sums.Messages != 2 || got.Sums.TotalTokens != 15 || got.Skipped.Duplicate != 0 || got.Skipped.Malformed != 1 {
			t.Errorf("%s: %d calls, %d tokens, skips %+v; want 2 calls, 15 tokens, 1 malformed line, no duplicate", what, got.Sums.Messages, got.Sums.TotalTokens, got.Skipped)
		}
		if n := in.Status().Files; n != 2 {
			t.Errorf("%s: %d files, want 2", what, n)
		}
	}
	tally := rollup.NewTally(time.UTC)
	oneShot := New(Config{OpenClawDirs: []string{root}, Final: true}, tally)
	step(t, oneShot)
	check("one-shot", tally, oneShot)
	db := openDB(t)
	daemon := New(Config{OpenClawDirs: []string{root}}, db)
	step(t, daemon)
	check("daemon", db, daemon)
}

// A FIFO under a transcript's name, or a link to one, is never opened (an
// open would wait for a writer for ever; a device's driver may act on
// open): neither by a one-shot report, which stats nothing before reading,
// nor by the daemon.
func TestFIFOIsLeftAlone(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	appendFile(t, filepath.Join(dir, "s1.jsonl"), headerLine("s1", t0)+assistantLine("x", "r1", t0+1000, 10, 0, 0, 0, 0.01))
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFO here:", err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "f.jsonl"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fifo, filepath.Join(dir, "g.jsonl")); err != nil {
		t.Fatal(err)
	}
	for _, final := range []bool{true, false} {
		var ledger Ledger = rollup.NewTally(time.UTC)
		if !final {
			ledger = openDB(t)
		}
		in := New(Config{OpenClawDirs: []string{root}, Final: final}, ledger)
		done := make(chan error, 1)
		go func() { _, err := in.Step(context.Background()); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("final %v: the step waits on a FIFO", final)
		}
		if got := totalsOf(t, ledger.(rollup.Source)).Sums.Messages; got != 1 {
			t.Errorf("final %v: %d calls, want 1", final, got)
		}
		if st := in.Status(); st.Files != 1 || st.FileErrors != 0 {
			t.Errorf("final %v: %d files, %d file errors; want the transcript alone", final, st.Files, st.FileErrors)
		}
	}
}

// A FIFO where a folder or a session store is read (an agent's sessions
// folder, the agents folder of a second root, sessions.json) is skipped,
// not opened: an open would wait for a writer for ever, and SIGTERM does not
// end a process blocked in open.
func TestFIFOInPlaceOfAFolderOrStore(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	appendFile(t, filepath.Join(dir, "s1.jsonl"), headerLine("s1", t0)+assistantLine("x", "r1", t0+1000, 10, 0, 0, 0, 0.01))
	if err := syscall.Mkfifo(filepath.Join(dir, "sessions.json"), 0o644); err != nil {
		t.Skip("no FIFO here:", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "agents", "piped"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "agents", "piped", "sessions"), 0o644); err != nil {
		t.Fatal(err)
	}
	root2 := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(root2, "agents"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, final := range []bool{true, false} {
		var ledger Ledger = rollup.NewTally(time.UTC)
		if !final {
			ledger = openDB(t)
		}
		in := New(Config{OpenClawDirs: []string{root, root2}, Final: final}, ledger)
		done := make(chan error, 1)
		go func() { _, err := in.Step(context.Background()); done <- err }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("final %v: the step waits on a FIFO", final)
		}
		if got := totalsOf(t, ledger.(rollup.Source)).Sums.Messages; got != 1 {
			t.Errorf("final %v: %d calls, want 1", final, got)
		}
	}
}
