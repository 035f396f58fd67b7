package ingest

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/klauspost/compress/zstd"
)

const ts9 = int64(1789027200000) // 2026-09-10T08:00:00Z, the SQLite era

// fixture is an OpenClaw agent store built from SQL scripts in
// testdata/sqlite, with a read-write connection like the gateway's.
type fixture struct {
	t    testing.TB
	path string
	db   *sql.DB
	// zstdMin: rows at least this long go into event_zstd, when the schema
	// has it (OpenClaw's threshold is 1 KiB; tests lower it).
	zstdMin int
	hasZstd bool
	enc     *zstd.Encoder
}

func newFixture(t testing.TB, root, agent string, scripts ...string) *fixture {
	t.Helper()
	dir := filepath.Join(root, "agents", agent, "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, storeFile)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	f := &fixture{t: t, path: path, db: db, zstdMin: 1024}
	for _, s := range scripts {
		b, err := os.ReadFile(filepath.Join("testdata", "sqlite", s))
		if err != nil {
			t.Fatal(err)
		}
		f.exec(string(b))
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM pragma_table_info('transcript_events') WHERE name = 'event_zstd'`).Scan(&n)
	f.hasZstd = n == 1
	f.enc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	return f
}

func (f *fixture) exec(q string, args ...any) {
	f.t.Helper()
	if _, err := f.db.Exec(q, args...); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

// add appends lines to a session at the next seqs, compressing long rows
// the way OpenClaw's writer does.
func (f *fixture) add(sid string, lines ...string) {
	f.t.Helper()
	var next int64
	f.db.QueryRow(`SELECT coalesce(max(seq) + 1, 0) FROM transcript_events WHERE session_id = ?`, sid).Scan(&next)
	for _, l := range lines {
		f.put(sid, next, l)
		next++
	}
}

func (f *fixture) put(sid string, seq int64, line string) {
	f.t.Helper()
	line = strings.TrimSuffix(line, "\n")
	if f.hasZstd && len(line) >= f.zstdMin {
		f.exec(`INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes)
			VALUES (?, ?, NULL, ?, ?, ?)`, sid, seq, ts9, f.enc.EncodeAll([]byte(line), nil), len(line))
		return
	}
	f.exec(`INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?, ?, ?, ?)`, sid, seq, line, ts9)
}

func (f *fixture) window(sid, key, prev string) {
	f.t.Helper()
	var p any
	if prev != "" {
		p = prev
	}
	f.exec(`INSERT OR REPLACE INTO session_windows (session_id, session_key, previous_session_id, reason, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)`, sid, key, p, map[bool]string{true: "reset", false: "initial"}[prev != ""], ts9, ts9)
}

func (f *fixture) node(key, sid, entry string) {
	f.t.Helper()
	f.exec(`INSERT OR REPLACE INTO session_nodes (session_key, current_session_id, entry_json, updated_at) VALUES (?, ?, ?, ?)`,
		key, sid, entry, ts9)
}

func (f *fixture) watermark(sid, gen string) {
	f.t.Helper()
	f.exec(`INSERT OR REPLACE INTO transcript_rewrite_watermarks (session_id, generation, updated_at) VALUES (?, ?, ?)`, sid, gen, ts9)
}

// userLine is a user message with OpenClaw's sender block.
func userLine(id, senderID, label string) string {
	return `{"type":"message","id":"` + id + `","parentId":null,"timestamp":"2026-09-10T08:00:00.000Z","message":{"role":"user","content":[{"type":"text","text":"Sender (untrusted metadata):\n` +
		"```json" + `\n{\"label\":\"` + label + `\",\"id\":\"` + senderID + `\"}\n` + "```" + `\n\nhi"}]}}` + "\n"
}

// records returns the ledger, oldest first.
func records(t testing.TB, db *storage.DB) []storage.Usage {
	t.Helper()
	var out []storage.Usage
	if err := db.Ledger(0, math.MaxInt64, func(u *storage.Usage) error {
		out = append(out, *u)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// expectTotals checks messages and the four token sums.
func expectTotals(t testing.TB, src rollup.Source, msgs, in, out, cacheRead, cacheWrite int64) totals {
	t.Helper()
	got := totalsOf(t, src)
	s := got.Sums
	if s.Messages != msgs || s.InputTokens != in || s.OutputTokens != out || s.CacheReadTokens != cacheRead || s.CacheWriteTokens != cacheWrite {
		t.Fatalf("totals = %d calls, %d/%d/%d/%d tokens; want %d calls, %d/%d/%d/%d",
			s.Messages, s.InputTokens, s.OutputTokens, s.CacheReadTokens, s.CacheWriteTokens, msgs, in, out, cacheRead, cacheWrite)
	}
	return got
}

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// The 2026.8 layout (event_json only), worked out by hand in
// testdata/sqlite/data_2026_8.sql: totals, skips, attribution from
// session_windows and from the session_nodes fallback, per-message
// senders; the store's file is not modified.
func TestSQLite2026_8Layout(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "main", "schema_2026_8.sql", "data_2026_8.sql")
	f.db.Close() // no writer: the file must stay byte for byte the same
	before, names := fileSum(t, f.path), dirNames(t, filepath.Dir(f.path))

	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}}, db)
	res := step(t, in)
	got := expectTotals(t, db, 4, 311, 56, 301, 41)
	if math.Abs(got.Sums.CostUSD-0.042) > 1e-9 || got.Sums.UnpricedMessages != 1 || got.Sums.UnpricedTokens != 4 {
		t.Errorf("cost %.9f, unpriced %d calls / %d tokens; want 0.042, 1 / 4", got.Sums.CostUSD, got.Sums.UnpricedMessages, got.Sums.UnpricedTokens)
	}
	if want := (storage.Skips{Duplicate: 1, NotModelCall: 1, ZeroUsage: 1, Malformed: 1}); got.Skipped != want {
		t.Errorf("skips = %+v, want %+v", got.Skipped, want)
	}
	if res.Added != 4 || res.Read != 2 {
		t.Errorf("step = %+v, want 4 added from 2 sessions", res)
	}

	type who struct{ session, key, channel, user, label string }
	var gotWho []who
	for _, u := range records(t, db) {
		if u.Source != storage.SourceOpenClaw || u.Agent != "main" {
			t.Errorf("record %s: source %q agent %q", u.DedupeKey, u.Source, u.Agent)
		}
		gotWho = append(gotWho, who{u.SessionID, u.SessionKey, u.Channel, u.User, u.UserLabel})
	}
	wantWho := []who{
		{"s-dm", "agent:main:telegram:direct:4242", "telegram", "telegram:4242", ""},
		{"s-dm", "agent:main:telegram:direct:4242", "telegram", "telegram:4242", ""},
		{"s-grp", "agent:main:discord:group:777", "discord", "discord:222", "Bob"},
		{"s-grp", "agent:main:discord:group:777", "discord", "discord:333", "Carol"},
	}
	if len(gotWho) != len(wantWho) {
		t.Fatalf("records = %+v", gotWho)
	}
	for i := range wantWho {
		if gotWho[i] != wantWho[i] {
			t.Errorf("record %d attributed %+v, want %+v", i, gotWho[i], wantWho[i])
		}
	}

	// Nothing changed: the next poll reads no session.
	if res := step(t, in); res.Read != 0 || res.Added != 0 || res.Skipped != 0 {
		t.Errorf("unchanged poll = %+v, want nothing read", res)
	}
	if after := fileSum(t, f.path); after != before {
		t.Error("the store's file changed: the reader must never write it")
	}
	if after := dirNames(t, filepath.Dir(f.path)); strings.Join(after, ",") != strings.Join(names, ",") {
		t.Errorf("files next to the store = %v, want %v", after, names)
	}

	// A report reading the dir directly gives the same figures.
	tally := scanDirs(t, root)
	expectTotals(t, tally, 4, 311, 56, 301, 41)
}

// Agent schema 24: most rows zstd-compressed in event_zstd; only sessions
// that changed are read; a restarted ingester resumes from its cursors.
func TestSQLiteZstdRows(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "ops", "schema_v24.sql")
	f.zstdMin = 200 // assistant rows compressed, headers and short rows plain
	f.window("z1", "agent:ops:slack:direct:u1", "")
	for i, sid := range []string{"z1", "z2", "z3"} {
		f.add(sid, headerLine(sid, ts9), `{"type":"message","id":"u","message":{"role":"user","content":"go"}}`,
			assistantLine("a", "z-"+sid, ts9+int64(i)*1000, 10, 1, 100, 0, 0.001),
			assistantLine("b", "", ts9+int64(i)*1000+500, 20, 2, 0, 5, 0.002))
	}
	f.exec(`INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes)
		VALUES ('z3', 4, NULL, 0, X'28b52ffd00ff', 40)`) // a corrupt frame: malformed, the rest is read
	var compressed int
	f.db.QueryRow(`SELECT count(*) FROM transcript_events WHERE event_json IS NULL`).Scan(&compressed)
	if compressed != 7 {
		t.Fatalf("%d compressed rows, want 7", compressed)
	}

	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}}, db)
	step(t, in)
	got := expectTotals(t, db, 6, 90, 9, 300, 15)
	if got.Skipped.Malformed != 1 {
		t.Errorf("malformed = %d, want 1 (the corrupt zstd row)", got.Skipped.Malformed)
	}
	for _, u := range records(t, db) {
		if u.SessionID == "z1" && (u.SessionKey != "agent:ops:slack:direct:u1" || u.User != "slack:u1") {
			t.Errorf("z1 call attributed to key %q user %q", u.SessionKey, u.User)
		}
	}

	f.add("z2", assistantLine("c", "z-z2-c", ts9+9000, 7, 0, 0, 0, 0.001))
	if res := step(t, in); res.Read != 1 || res.Added != 1 {
		t.Errorf("after one append: %+v, want 1 session read, 1 added", res)
	}
	expectTotals(t, db, 7, 97, 9, 300, 15)

	// A new process: cursors come from the ledger, nothing is re-read.
	in2 := New(Config{OpenClawDirs: []string{root}}, db)
	if res := step(t, in2); res.Read != 0 || res.Added != 0 || res.Skipped != 0 {
		t.Errorf("restarted poll = %+v, want nothing read", res)
	}
	f.add("z1", assistantLine("d", "z-z1-d", ts9+10000, 3, 0, 0, 0, 0.001))
	if res := step(t, in2); res.Read != 1 || res.Added != 1 || res.Skipped != 0 {
		t.Errorf("restarted, one append: %+v, want 1 read, 1 added, no duplicates", res)
	}
	expectTotals(t, db, 8, 100, 9, 300, 15)
}

// An early beta store (sessions, session_entries) is reported as
// unsupported once, with one log line, and never fails the step; the
// agent's JSONL files are still read. Upgraded in place, it is read.
func TestSQLiteBetaLayoutUnsupported(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, root, "main", "schema_beta.sql")
	appendFile(t, filepath.Join(sessionsDir(t, root, "main"), "j1.jsonl"),
		headerLine("j1", ts9)+assistantLine("a", "j-r1", ts9+1000, 4, 0, 0, 0, 0.001))
	var logs bytes.Buffer
	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, db)
	for range 3 {
		step(t, in)
	}
	got := expectTotals(t, db, 1, 4, 0, 0, 0)
	if got.Skipped.Unsupported != 1 {
		t.Errorf("unsupported = %d, want 1 for the store, counted once", got.Skipped.Unsupported)
	}
	if n := strings.Count(logs.String(), "layout fleetmeter does not read"); n != 1 {
		t.Errorf("%d unsupported-layout log lines, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "sessions, session_entries") || !strings.Contains(logs.String(), f.path) {
		t.Errorf("log does not name the tables and the store:\n%s", logs.String())
	}
	if tally := scanDirs(t, root); expectTotals(t, tally, 1, 4, 0, 0, 0).Skipped.Unsupported != 1 {
		t.Error("a report does not count the unsupported store")
	}

	// `openclaw doctor` migrates the store in place.
	f.exec(`DROP TABLE sessions; DROP TABLE session_entries`)
	b, _ := os.ReadFile("testdata/sqlite/schema_v24.sql")
	f.exec(string(b))
	f.add("m1", headerLine("m1", ts9), assistantLine("a", "m-r1", ts9+2000, 6, 0, 0, 0, 0.001))
	step(t, in)
	expectTotals(t, db, 2, 10, 0, 0, 0)
	if cur, _ := db.Cursors(); cur[storeStateID(f.path)] != nil {
		t.Error("the unsupported mark outlived the upgrade")
	}
}
