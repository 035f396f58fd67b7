package ingest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/klauspost/compress/zstd"
)

// Rewrites: a new generation in transcript_rewrite_watermarks, a max seq
// that drops below the cursor, and a changed row at the cursor each make
// the session be read again from its start; dedupe keeps every call once.
func TestSQLiteRewrites(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "main", "schema_v24.sql")
	f.window("s1", "agent:main:main", "")
	call := func(id, resp string, in int64) string {
		return assistantLine(id, resp, ts9+in*1000, in, 0, 0, 0, 0.001)
	}
	f.add("s1", headerLine("s1", ts9), call("c1", "r1", 10), call("c2", "r2", 20), call("c3", "r3", 30))
	f.watermark("s1", "g1")
	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}}, db)
	step(t, in)
	expectTotals(t, db, 3, 60, 0, 0, 0)

	dups := func(want int64) {
		t.Helper()
		if got := totalsOf(t, db).Skipped.Duplicate; got != want {
			t.Errorf("duplicates = %d, want %d", got, want)
		}
	}

	// (a) a rewrite replaces the rows before the cursor: c1 under a new
	// entry id, c4 where c2 was; the row at the cursor (c3) and max seq stay
	// the same, so only the generation says the rows changed.
	f.exec(`DELETE FROM transcript_events WHERE session_id = 's1' AND seq IN (1, 2)`)
	f.put("s1", 1, call("c1b", "r1", 10))
	f.put("s1", 2, call("c4", "r4", 40))
	f.watermark("s1", "g2")
	step(t, in)
	expectTotals(t, db, 4, 100, 0, 0, 0)
	dups(2)

	// (b) sessions.compact keeps fewer rows: max seq 2 < cursor 3.
	f.exec(`DELETE FROM transcript_events WHERE session_id = 's1' AND seq >= 2`)
	f.add("s1", call("c5", "r5", 50))
	step(t, in)
	expectTotals(t, db, 5, 150, 0, 0, 0)
	dups(3)

	// (c) the row at the cursor changes (same generation) and one more row
	// comes: the row check catches the rewrite.
	f.exec(`DELETE FROM transcript_events WHERE session_id = 's1' AND seq = 2`)
	f.put("s1", 2, call("c5b", "r5", 50))
	f.add("s1", call("c6", "r6", 60))
	step(t, in)
	expectTotals(t, db, 6, 210, 0, 0, 0)
	dups(5)

	if res := step(t, in); res.Read != 0 {
		t.Errorf("poll after the rewrites read %d sessions, want 0", res.Read)
	}
}

// A reset chain: session B continues A (previous_session_id) under the same
// key. A's window row is gone, so A's calls get the key through B. Then A
// is archived (zstd blob, one call never seen live) and its rows deleted:
// only the unseen call counts, A's cursor goes, the archive is read once.
// A deleted session's archive (identity encoding) counts too.
func TestSQLiteResetChain(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "main", "schema_v24.sql")
	const key = "agent:main:telegram:direct:55"
	a1 := assistantLine("a1", "rA1", ts9+1000, 10, 0, 0, 0, 0.001)
	a2 := assistantLine("a2", "rA2", ts9+2000, 20, 0, 0, 0, 0.001)
	a3 := assistantLine("a3", "rA3", ts9+3000, 5, 0, 0, 0, 0.001) // written just before the reset
	f.add("A", headerLine("A", ts9), a1, a2)
	f.window("B", key, "A")
	f.node(key, "B", `{"sessionId":"B","chatType":"direct","origin":{"provider":"telegram","from":"telegram:55"}}`)
	f.add("B", headerLine("B", ts9+60000), assistantLine("b1", "rB1", ts9+61000, 100, 0, 0, 0, 0.001))

	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}}, db)
	step(t, in)
	expectTotals(t, db, 3, 130, 0, 0, 0)
	for _, u := range records(t, db) {
		if u.SessionKey != key || u.User != "telegram:55" {
			t.Errorf("session %s call: key %q user %q, want %q telegram:55", u.SessionID, u.SessionKey, u.User, key)
		}
	}

	// OpenClaw archives A: the JSONL blob (with a3) goes to
	// session_transcript_archives, A's rows go.
	var blob bytes.Buffer
	zw, _ := zstd.NewWriter(&blob)
	zw.Write([]byte(headerLine("A", ts9) + a1 + a2 + a3))
	zw.Close()
	f.exec(`INSERT INTO session_transcript_archives (session_id, generation, session_key, reason, encoding, archive_blob, archive_name, created_at)
		VALUES ('A', 'gen-1', ?, 'reset', 'zstd', ?, 'A.jsonl.reset.2026-09-10T09-00-00.000Z', ?)`, key, blob.Bytes(), ts9)
	f.exec(`DELETE FROM transcript_events WHERE session_id = 'A'`)
	// D was deleted before fleetmeter ever saw it; its archive is plain.
	dBlob := headerLine("D", ts9) + userLine("u", "77", "Dan") + assistantLine("d1", "rD1", ts9+5000, 1000, 0, 0, 0, 0.001)
	f.exec(`INSERT INTO session_transcript_archives (session_id, generation, session_key, reason, encoding, archive_blob, archive_name, created_at)
		VALUES ('D', 'gen-1', 'agent:main:telegram:group:9', 'deleted', 'identity', ?, 'D.jsonl.deleted.2026-09-10T09-00-00.000Z', ?)`,
		[]byte(strings.TrimSuffix(dBlob, "\n")), ts9)

	step(t, in)
	got := expectTotals(t, db, 5, 1135, 0, 0, 0)
	if got.Skipped.Duplicate != 2 {
		t.Errorf("duplicates = %d, want 2 (a1, a2 from the archive)", got.Skipped.Duplicate)
	}
	for _, u := range records(t, db) {
		switch u.SessionID {
		case "A":
			if u.SessionKey != key {
				t.Errorf("archived call %s: key %q", u.DedupeKey, u.SessionKey)
			}
		case "D":
			if u.SessionKey != "agent:main:telegram:group:9" || u.User != "telegram:77" || u.UserLabel != "Dan" {
				t.Errorf("deleted session call: key %q user %q label %q", u.SessionKey, u.User, u.UserLabel)
			}
		}
	}
	cur, _ := db.Cursors()
	if cur[sessionCursorID(f.path, "A")] != nil {
		t.Error("A's cursor outlived its rows")
	}
	if cur[archiveCursorID(f.path, "A", "gen-1")] == nil || cur[archiveCursorID(f.path, "D", "gen-1")] == nil {
		t.Error("archive cursors missing")
	}
	if res := step(t, in); res.Read != 0 || res.Skipped != 0 {
		t.Errorf("poll after the archives: %+v, want nothing read again", res)
	}
	rep := reportOf(t, db, "session")
	if n := len(rep.Rows.([]rollup.SessionRow)); n != 3 {
		t.Errorf("%d sessions in the report, want 3 (A, B, D)", n)
	}
}

// A stored session read again from its start (a new generation, or the
// row at the cursor changed) counts its skips once, as a rewritten file
// does: the malformed row and the user turn it holds are not counted again.
func TestSQLiteRewriteCountsSkipsOnce(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "main", "schema_v24.sql")
	f.window("s1", "agent:main:main", "")
	call := func(id, resp string, in int64) string {
		return assistantLine(id, resp, ts9+in*1000, in, 0, 0, 0, 0.001)
	}
	f.add("s1", headerLine("s1", ts9), `{"type":"message","id":`, call("c1", "r1", 10), call("c2", "r2", 20))
	f.watermark("s1", "g1")
	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}}, db)
	step(t, in)
	before := totalsOf(t, db).Skipped
	if before.Malformed != 1 {
		t.Fatalf("first read: %d malformed, want 1", before.Malformed)
	}
	// A rewrite under a new generation: every row read again.
	f.watermark("s1", "g2")
	step(t, in)
	// The row at the cursor changes under the same generation, and one
	// more malformed row comes: only that one is new.
	f.exec(`DELETE FROM transcript_events WHERE session_id = 's1' AND seq = 3`) // seqs from 0: c2's row
	f.put("s1", 3, call("c2b", "r2", 20))
	f.add("s1", `{"broken`, call("c3", "r3", 30))
	step(t, in)
	after := totalsOf(t, db).Skipped
	if after.Duplicate < 4 {
		t.Errorf("%d duplicates: the sessions were not read again from the start", after.Duplicate)
	}
	if after.Malformed != 2 || after.NotModelCall != before.NotModelCall {
		t.Errorf("after two rewrites: %d malformed, %d not model calls; want 2 and %d", after.Malformed, after.NotModelCall, before.NotModelCall)
	}
	expectTotals(t, db, 3, 60, 0, 0, 0)
}

// A session OpenClaw resets after fleetmeter read it live: its rows go to
// session_transcript_archives as one JSONL blob, and the blob is read from
// its start. Its calls are duplicates (dedupe); its skips (the malformed
// row) were counted by the live read and must not count
// again, as a rewritten session's do not. The report from the transcripts
// counts them once.
func TestSQLiteArchiveCountsSkipsOnce(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "main", "schema_v24.sql")
	const key = "agent:main:main"
	f.window("s1", key, "")
	lines := []string{headerLine("s1", ts9), userLine("u1", "77", "Dan"), `{"type":"message","id":`,
		assistantLine("c1", "r1", ts9+1000, 10, 0, 0, 0, 0.001)}
	f.add("s1", lines...)
	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}}, db)
	step(t, in)
	before := totalsOf(t, db).Skipped
	if before.Malformed != 1 {
		t.Fatalf("live read: %+v, want 1 malformed", before)
	}
	f.exec(`INSERT INTO session_transcript_archives (session_id, generation, session_key, reason, encoding, archive_blob, archive_name, created_at)
		VALUES ('s1', 'gen-1', ?, 'reset', 'identity', ?, 's1.jsonl.reset.2026-09-10T09-00-00.000Z', ?)`,
		key, []byte(strings.Join(lines, "")), ts9)
	f.exec(`DELETE FROM transcript_events WHERE session_id = 's1'`)
	step(t, in)
	after := totalsOf(t, db).Skipped
	expectTotals(t, db, 1, 10, 0, 0, 0)
	if after.Malformed != before.Malformed || after.NotModelCall != before.NotModelCall {
		t.Errorf("after the archive: %d malformed, %d not model calls; want %d and %d (counted by the live read)",
			after.Malformed, after.NotModelCall, before.Malformed, before.NotModelCall)
	}
}
