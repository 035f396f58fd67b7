// Regression tests for bugs a review found; each failed before its fix.
package ingest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// assistant line whose tool call arguments are an object starting with "type":"message"
func toolCallLine(resp string, ts int64) string {
	m := map[string]any{
		"role": "assistant",
		"content": []any{map[string]any{"type": "toolCall", "id": "t1", "name": "slack",
			"arguments": json.RawMessage(`{"type":"message","channel":"C1","text":"hi"}`)}},
		"api": "anthropic-messages", "provider": "anthropic", "model": "claude-sonnet-4-6",
		"usage":      map[string]any{"input": 10, "output": 5, "cacheRead": 0, "cacheWrite": 0, "totalTokens": 15},
		"responseId": resp, "stopReason": "toolUse", "timestamp": ts,
	}
	b, _ := json.Marshal(map[string]any{"type": "message", "id": "e1", "parentId": nil,
		"timestamp": time.UnixMilli(ts).UTC().Format("2006-01-02T15:04:05.000Z"), "message": m})
	return string(b) + "\n"
}

func TestNestedMessageObjectIsNotATornWrite(t *testing.T) {
	tl := newTailer(t)
	appendFile(t, tl.path("s1.jsonl"), headerLine("s1", t0)+toolCallLine("rtool", t0+1))
	tl.expect(1, 15)
}

// The fingerprint is taken from the file after the read, not from the bytes
// read: an in-place rewrite during the read makes the cursor vouch for bytes
// never read.
type rewriteAtEOF struct {
	f    *os.File
	path string
	new  string
	done bool
}

func (r *rewriteAtEOF) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if n == 0 && !r.done {
		r.done = true
		os.WriteFile(r.path, []byte(r.new), 0o644) // pi _rewriteFile: same inode
	}
	return n, err
}

func TestRewriteDuringReadIsNoticed(t *testing.T) {
	tl := newTailer(t)
	p := tl.path("s1.jsonl")
	old := headerLine("s1", t0) + assistantLine("a", "rA", t0+1, 1, 0, 0, 0, 0) + strings.Repeat(`{"type":"custom","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`+"\n", 60)
	// the rewrite: same head, a new call B in the middle, same length and same tail
	bl := assistantLine("b", "rB", t0+2, 100, 0, 0, 0, 0)
	newer := headerLine("s1", t0) + assistantLine("a", "rA", t0+1, 1, 0, 0, 0, 0) + bl + old[len(headerLine("s1", t0))+len(assistantLine("a", "rA", t0+1, 1, 0, 0, 0, 0))+len(bl):]
	os.WriteFile(p, []byte(old), 0o644)
	if err := tl.in.load(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(p)
	defer f.Close()
	fi, _ := f.Stat()
	st := statOf(fi)
	dev, ino := st.dev, st.ino
	cur := fileCursor{Path: p, Dev: dev, Ino: ino, Format: formatOpenClaw, Agent: "main", SessionID: "s1"}
	out := make(chan *chunk, 10)
	r := &fileReader{in: tl.in}
	r.scan(context.Background(), f, &rewriteAtEOF{f: f, path: p, new: newer}, false, nil, &cur, &fingerprinter{}, out)
	close(out)
	b := &storage.Batch{Cursors: map[string][]byte{}, SessionMeta: map[string][]byte{}}
	for c := range out {
		b.Records = append(b.Records, c.records...)
		v, _ := json.Marshal(c.cursor)
		b.Cursors[c.id] = v
	}
	if _, err := tl.db.Apply(b); err != nil {
		t.Fatal(err)
	}
	tl.in.loaded = false
	tl.in.mem = newCursorMemory()
	// the next poll: the file is bigger by nothing, but mtime changed
	tl.expect(2, 101) // A and B
}

// History is never dropped unasked: a first ingest keeps a call 500 days
// old (the rollups are forever), and after retention pruned it from the
// ledger, a rewrite of its transcript does not count it again: the ledger
// keeps the dedupe keys of pruned calls. A one-shot report applies no
// retention at all.
func TestHistoryKeptAcrossRetention(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "main", "schema_v24.sql")
	f.window("s1", "agent:main:main", "")
	old := time.Now().Add(-500 * 24 * time.Hour).UnixMilli()
	f.add("s1", headerLine("s1", old), assistantLine("c1", "rold", old, 10, 0, 0, 0, 0.001))
	f.watermark("s1", "g1")
	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}}, db)
	step(t, in)
	if got := totalsOf(t, db); got.Sums.Messages != 1 || got.Skipped.TooOld != 0 {
		t.Errorf("first ingest of long history: %d messages, too_old %d; want the call kept", got.Sums.Messages, got.Skipped.TooOld)
	}
	if n, err := db.PruneLedger(time.Now().Add(-400 * 24 * time.Hour).UnixMilli()); err != nil || n != 1 {
		t.Fatalf("prune: %d %v", n, err)
	}
	f.watermark("s1", "g2") // a rewrite: the session is read again from the start
	step(t, in)
	if got := totalsOf(t, db); got.Sums.Messages != 1 || got.Skipped.Duplicate != 1 {
		t.Errorf("after prune + rewrite: %d messages, %d duplicates; want the one call, counted once", got.Sums.Messages, got.Skipped.Duplicate)
	}
	if got := totalsOf(t, scanDirs(t, root)); got.Sums.Messages != 1 {
		t.Errorf("a one-shot report dropped old history: %d messages", got.Sums.Messages)
	}
}

// A failed commit drops the session attribution learned from sessions.json
// for good: in.meta and the store stamp were updated before the commit.
func TestFailedCommitKeepsSessionMeta(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	os.WriteFile(filepath.Join(dir, "sessions.json"), []byte(`{"agent:main:telegram:direct:42":{"sessionId":"s1","channel":"telegram"}}`), 0o644)
	appendFile(t, filepath.Join(dir, "s1.jsonl"), headerLine("s1", t0)+assistantLine("a", "rm1", t0+1, 1, 0, 0, 0, 0))
	db := openDB(t)
	cfg := Config{OpenClawDirs: []string{root}}
	in := New(cfg, &failingLedger{DB: db, n: 0})
	if _, err := in.Step(context.Background()); err == nil {
		t.Fatal("no error")
	}
	in.ledger = db // the database is back
	step(t, in)
	appendFile(t, filepath.Join(dir, "s1.jsonl"), assistantLine("b", "rm2", t0+2, 1, 0, 0, 0, 0))
	step(t, in)
	m, _ := db.SessionMeta()
	if len(m) == 0 {
		t.Errorf("session_meta is empty after recovery: attribution is lost at the next restart")
	}
	// restart after the session was archived out of sessions.json
	os.WriteFile(filepath.Join(dir, "sessions.json"), []byte(`{}`), 0o644)
	appendFile(t, filepath.Join(dir, "s1.jsonl"), assistantLine("c", "rm3", t0+3, 1, 0, 0, 0, 0))
	step(t, New(cfg, db))
	for _, u := range records(t, db) {
		if u.SessionKey == "" {
			t.Errorf("call %s has no session key", u.DedupeKey)
		}
	}
}

// A watched directory that is removed and made again is never watched
// again (d.watched still says true): appends there wait for a full scan.
func TestRecreatedDirIsWatchedAgain(t *testing.T) {
	tl := newTailer(t)
	appendFile(t, tl.path("a.jsonl"), headerLine("a", t0)+assistantLine("x", "rr1", t0+1, 1, 0, 0, 0, 0))
	w := tl.in.startWatching()
	defer w.close()
	ctx := context.Background()
	poll := func() {
		t.Helper()
		if _, err := tl.in.stepWatched(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	poll()
	poll()
	os.RemoveAll(tl.dir)
	waitDirty(t, w, tl.dir)
	poll()
	os.MkdirAll(tl.dir, 0o755)
	appendFile(t, tl.path("b.jsonl"), headerLine("b", t0)+assistantLine("y", "rr2", t0+2, 2, 0, 0, 0, 0))
	time.Sleep(50 * time.Millisecond)
	poll() // lists the new dir afresh, reads b
	appendFile(t, tl.path("b.jsonl"), assistantLine("z", "rr3", t0+3, 4, 0, 0, 0, 0))
	time.Sleep(50 * time.Millisecond)
	for range 5 {
		poll()
	}
	if got := totalsOf(t, tl.db).Sums.TotalTokens; got != 7 {
		t.Errorf("tokens = %d after 5 polls, want 7 (the append in the re-made dir is not seen)", got)
	}
}

// A cursor at offset 0 (an empty or partial-line file) left behind in a
// directory that vanished is never dropped; if its inode is reused by a
// transcript elsewhere, the empty fingerprints "match" and the new file is
// read with the old cursor's Format/Agent/SessionID.
func TestInodeReuseDoesNotInheritCursor(t *testing.T) {
	tl := newTailer(t)
	p := tl.path("s1.jsonl")
	appendFile(t, p, headerLine("s1", t0)+assistantLine("a", "ri1", t0+1, 5, 0, 0, 0, 0))
	fi, _ := os.Stat(p)
	st := statOf(fi)
	dev, ino := st.dev, st.ino
	stale := fileCursor{Path: "/home/u/.claude/projects/gone/x.jsonl", Dev: dev, Ino: ino,
		Complete: true, Format: formatClaude, Agent: "gone", SessionID: "x"}
	v, _ := json.Marshal(stale)
	if _, err := tl.db.Apply(&storage.Batch{Cursors: map[string][]byte{cursorID(dev, ino): v}}); err != nil {
		t.Fatal(err)
	}
	tl.expect(1, 5)
}

func TestOversizeLastLineCountedOnce(t *testing.T) {
	tl := newTailer(t)
	p := tl.path("s1.jsonl")
	appendFile(t, p, headerLine("s1", t0)+`{"type":"message","x":"`+strings.Repeat("a", MaxLineBytes+10)+`"}`+"\n")
	tl.expect(0, 0)
	appendFile(t, p, assistantLine("a", "ro1", t0+1, 5, 0, 0, 0, 0))
	tl.expect(1, 5)
	if n := tl.in.Status().Skips.OversizeLine; n != 1 {
		t.Errorf("one oversize line counted %d times", n)
	}
}
