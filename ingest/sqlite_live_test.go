package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The gateway keeps writing (WAL mode, no checkpoint: every new row lives
// only in the -wal file) while fleetmeter polls: at the end the totals are
// exact, and the writer was never blocked.
func TestSQLiteLiveWritesWAL(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "main", "schema_v24.sql")
	f.exec(`PRAGMA journal_mode = WAL`)
	f.exec(`PRAGMA wal_autocheckpoint = 0`)
	f.zstdMin = 0 // every row compressed: the hardest case
	sessions := []string{"w1", "w2", "w3"}
	for _, sid := range sessions {
		f.add(sid, headerLine(sid, ts9))
	}
	const n = 90
	done := make(chan error, 1)
	go func() {
		// Rows in small transactions, as the gateway appends a turn.
		for i := 0; i < n; i += 3 {
			tx, err := f.db.Begin()
			if err != nil {
				done <- err
				return
			}
			for j := i; j < i+3; j++ {
				sid := sessions[j%3]
				line := strings.TrimSuffix(assistantLine("e", fmt.Sprintf("live-%d", j), ts9+int64(j)*1000, int64(j+1), 1, 0, 0, 0.001), "\n")
				_, err = tx.Exec(`INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes)
					VALUES (?, 1 + ?, NULL, ?, ?, ?)`, sid, j/3, ts9, f.enc.EncodeAll([]byte(line), nil), len(line))
				if err != nil {
					tx.Rollback()
					done <- err
					return
				}
			}
			if err := tx.Commit(); err != nil {
				done <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		done <- nil
	}()

	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}}, db)
	polls := 0
	for writing := true; writing; polls++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("writer: %v", err)
			}
			writing = false
		default:
		}
		step(t, in)
	}
	expectTotals(t, db, n, n*(n+1)/2, n, 0, 0)
	if st := in.Status(); st.Skips.Duplicate != 0 || st.Skips.Malformed != 0 || st.FileErrors != 0 {
		t.Errorf("status = %+v, want no duplicates, malformed rows or errors", st)
	}
	if fi, err := os.Stat(f.path + "-wal"); err != nil || fi.Size() == 0 {
		t.Errorf("rows were expected to live in the WAL (%v)", err)
	}
	t.Logf("%d polls during %d writes", polls, n)
}

// A writer that holds an exclusive lock (a rollback-journal store: in WAL
// mode readers never wait) for longer than the busy timeout: the step goes
// on with the other sources, says clearly what happened, once, and the
// next poll catches up with nothing lost.
func TestSQLiteLockedStore(t *testing.T) {
	root := t.TempDir()
	locked := newFixture(t, root, "locked", "schema_2026_8.sql")
	locked.add("L", headerLine("L", ts9), assistantLine("l1", "rL1", ts9+1000, 1, 0, 0, 0, 0.001),
		assistantLine("l2", "rL2", ts9+2000, 2, 0, 0, 0, 0.001))
	free := newFixture(t, root, "free", "schema_v24.sql")
	free.add("F", headerLine("F", ts9), assistantLine("f1", "rF1", ts9+3000, 10, 0, 0, 0, 0.001))
	jsonl := filepath.Join(sessionsDir(t, root, "files"), "J.jsonl")
	appendFile(t, jsonl, headerLine("J", ts9)+assistantLine("j1", "rJ1", ts9+4000, 100, 0, 0, 0, 0.001))

	var logs bytes.Buffer
	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, db)
	step(t, in)
	expectTotals(t, db, 4, 113, 0, 0, 0)

	ctx := context.Background()
	w, err := locked.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// A lock with nothing committed changes nothing on disk: the poll does
	// not even open the store, so it does not wait.
	if _, err := w.ExecContext(ctx, `BEGIN EXCLUSIVE`); err != nil {
		t.Fatal(err)
	}
	if start := time.Now(); step(t, in).Read != 0 || time.Since(start) >= storeBusyTimeout {
		t.Errorf("an idle locked store cost a poll %v", time.Since(start))
	}
	if _, err := w.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}

	// One committed row, then a writer takes the lock with another row
	// pending. (A lock alone, with nothing committed, changes nothing on
	// disk: the poll would not even open the store.)
	// (w holds the fixture's only connection: rows go through it.)
	if _, err := w.ExecContext(ctx, `INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES ('L', 3, ?, 0)`,
		strings.TrimSuffix(assistantLine("l3", "rL3", ts9+5000, 3, 0, 0, 0, 0.001), "\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `BEGIN EXCLUSIVE`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES ('L', 4, ?, 0)`,
		strings.TrimSuffix(assistantLine("l4", "rL4", ts9+5500, 4, 0, 0, 0, 0.001), "\n")); err != nil {
		t.Fatal(err)
	}
	free.add("F", assistantLine("f2", "rF2", ts9+6000, 20, 0, 0, 0, 0.001))
	appendFile(t, jsonl, assistantLine("j2", "rJ2", ts9+7000, 200, 0, 0, 0, 0.001))

	for range 2 {
		start := time.Now()
		if _, err := in.Step(ctx); err != nil {
			t.Fatalf("a locked store failed the step: %v", err)
		}
		if waited := time.Since(start); waited < storeBusyTimeout {
			t.Errorf("step took %v, shorter than the busy timeout", waited)
		}
		expectTotals(t, db, 6, 333, 0, 0, 0) // the other store and the file went on
	}
	msg := logs.String()
	if n := strings.Count(msg, "cannot read OpenClaw store"); n != 1 {
		t.Errorf("%d lock messages over two polls, want 1:\n%s", n, msg)
	}
	if !strings.Contains(msg, "locked by a writer") || !strings.Contains(msg, locked.path) {
		t.Errorf("the message does not say which store is locked and why:\n%s", msg)
	}
	if st := in.Status(); st.FileErrors != 2 {
		t.Errorf("file errors = %d, want 2", st.FileErrors)
	}

	if _, err := w.ExecContext(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	step(t, in)
	got := expectTotals(t, db, 8, 340, 0, 0, 0)
	if got.Skipped.Duplicate != 0 {
		t.Errorf("duplicates = %d, want 0: the cursor did not move while locked", got.Skipped.Duplicate)
	}
	if !strings.Contains(logs.String(), "readable again") {
		t.Errorf("no recovery message:\n%s", logs.String())
	}
}

// The same sessions as SQLite rows and as leftover JSONL files (a failed
// or partial `doctor --session-sqlite import`): each call counts once,
// whichever copy is seen first.
func TestSQLiteWithLeftoverJSONL(t *testing.T) {
	s1 := []string{headerLine("s1", ts9), userLine("u", "9", "Ivy"),
		assistantLine("a", "r1", ts9+1000, 1, 2, 3, 4, 0.01),
		assistantLine("b", "", ts9+2000, 10, 20, 30, 40, 0.02),
		assistantLine("c", "r3", ts9+3000, 100, 0, 0, 0, 0.03)}
	s2 := []string{headerLine("s2", ts9), assistantLine("d", "r4", ts9+4000, 5, 5, 0, 0, 0.01),
		assistantLine("e", "r5", ts9+5000, 6, 6, 0, 0, 0.01)}
	build := func(t *testing.T, root string, store, files bool) {
		if store {
			f := newFixture(t, root, "main", "schema_v24.sql")
			f.window("s1", "agent:main:main", "")
			f.add("s1", s1...)
			f.add("s2", s2...)
		}
		if files {
			dir := sessionsDir(t, root, "main")
			appendFile(t, filepath.Join(dir, "s1.jsonl"), strings.Join(s1, ""))
			appendFile(t, filepath.Join(dir, "s2.jsonl"), s2[0]+s2[1]) // imported half-way
		}
	}
	check := func(t *testing.T, src totals) {
		t.Helper()
		s := src.Sums
		if s.Messages != 5 || s.TotalTokens != 10+100+100+10+12 {
			t.Errorf("%d calls, %d tokens; want 5, 232", s.Messages, s.TotalTokens)
		}
		if src.Skipped.Duplicate != 4 {
			t.Errorf("duplicates = %d, want 4", src.Skipped.Duplicate)
		}
	}
	t.Run("together", func(t *testing.T) {
		root := t.TempDir()
		build(t, root, true, true)
		db := openDB(t)
		step(t, New(Config{OpenClawDirs: []string{root}}, db))
		check(t, totalsOf(t, db))
		check(t, totalsOf(t, scanDirs(t, root)))
	})
	t.Run("files appear later", func(t *testing.T) {
		root := t.TempDir()
		build(t, root, true, false)
		db := openDB(t)
		in := New(Config{OpenClawDirs: []string{root}}, db)
		step(t, in)
		build(t, root, false, true)
		step(t, in)
		check(t, totalsOf(t, db))
		// The store's copies came first: they keep the key from session_windows.
		for _, u := range records(t, db) {
			if u.SessionID == "s1" && (u.SessionKey != "agent:main:main" || u.User != "9") {
				t.Errorf("s1 call: key %q user %q", u.SessionKey, u.User)
			}
		}
	})
}
