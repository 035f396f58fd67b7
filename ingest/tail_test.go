package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/klauspost/compress/zstd"
)

const t0 = int64(1775808000000) // 2026-04-10T08:00:00Z

// tailer is a daemon-mode ingester over one OpenClaw root, with a real DB.
type tailer struct {
	t    *testing.T
	root string
	dir  string
	db   *storage.DB
	in   *Ingester
}

func newTailer(t *testing.T) *tailer {
	root := t.TempDir()
	db := openDB(t)
	return &tailer{t: t, root: root, dir: sessionsDir(t, root, "main"), db: db,
		in: New(Config{OpenClawDirs: []string{root}}, db)}
}

func (tl *tailer) path(name string) string { return filepath.Join(tl.dir, name) }

// expect steps once and checks message count and total tokens.
func (tl *tailer) expect(messages, tokens int64) {
	tl.t.Helper()
	step(tl.t, tl.in)
	got := totalsOf(tl.t, tl.db).Sums
	if got.Messages != messages || got.TotalTokens != tokens {
		tl.t.Fatalf("after step: %d messages, %d tokens; want %d, %d", got.Messages, got.TotalTokens, messages, tokens)
	}
}

func TestLiveAppendsWithPartialLines(t *testing.T) {
	tl := newTailer(t)
	p := tl.path("s1.jsonl")
	appendFile(t, p, headerLine("s1", t0))
	var wantMsgs, wantTokens int64
	for i := range 30 {
		line := assistantLine("e", "r"+string(rune('A'+i)), t0+int64(i)*1000, int64(i+1), 1, 0, 0, 0.001)
		// Half a line, a step, then the rest: the reader must wait for the "\n".
		cut := len(line) / 2
		if i%3 == 0 {
			cut = len(line) - 1 // all but the newline: a complete object, taken now
		}
		appendFile(t, p, line[:cut])
		if i%3 == 0 {
			wantMsgs++
			wantTokens += int64(i + 2)
		}
		tl.expect(wantMsgs, wantTokens)
		appendFile(t, p, line[cut:])
		if i%3 != 0 {
			wantMsgs++
			wantTokens += int64(i + 2)
		}
		tl.expect(wantMsgs, wantTokens)
	}
	if st := tl.in.Status(); st.Skips.Malformed != 0 || st.Skips.Duplicate != 0 {
		t.Errorf("skips = %+v, want none", st.Skips)
	}
}

func TestRenameRewriteTruncateFork(t *testing.T) {
	tl := newTailer(t)
	p := tl.path("s1.jsonl")
	appendFile(t, p, headerLine("s1", t0)+
		assistantLine("a", "r1", t0+1000, 10, 0, 0, 0, 0.01)+
		assistantLine("b", "r2", t0+2000, 20, 0, 0, 0, 0.01))
	tl.expect(2, 30)

	// Reset: the file is renamed to its archive name (same inode) and a new
	// session file starts.
	archive := p + ".reset.2026-04-10T09-00-00.000Z"
	if err := os.Rename(p, archive); err != nil {
		t.Fatal(err)
	}
	tl.expect(2, 30)
	appendFile(t, archive, assistantLine("c", "r3", t0+3000, 5, 0, 0, 0, 0.01)) // late write to the renamed file
	tl.expect(3, 35)

	// Rewrite via temp file + rename (malformed-line repair): new inode, the
	// same lines plus one more.
	data, _ := os.ReadFile(archive)
	tmp := archive + ".repair-1-2.tmp"
	os.WriteFile(tmp, append(data, assistantLine("d", "r4", t0+4000, 7, 0, 0, 0, 0.01)...), 0o644)
	if err := os.Rename(tmp, archive); err != nil {
		t.Fatal(err)
	}
	tl.expect(4, 42)

	// In-place truncation below the offset (sessions.compact keeps the last
	// lines): nothing new, nothing counted twice.
	lines := strings.SplitAfter(string(data), "\n")
	if err := os.WriteFile(archive, []byte(lines[len(lines)-2]), 0o644); err != nil {
		t.Fatal(err)
	}
	tl.expect(4, 42)
	appendFile(t, archive, assistantLine("e", "r5", t0+5000, 1, 0, 0, 0, 0.01))
	tl.expect(5, 43)

	// In-place rewrite that keeps the size (pi's version migration keeps the
	// inode): the head fingerprint changes, the file is re-read, deduped.
	cur, _ := os.ReadFile(archive)
	os.WriteFile(archive, bytes.Replace(cur, []byte(`"id":"e"`), []byte(`"id":"E"`), 1), 0o644)
	tl.expect(5, 43)

	// A fork copies its parent's lines and adds its own.
	fork := tl.path("2026-04-10T10-00-00-000Z_s2.jsonl")
	appendFile(t, fork, headerLine("s2", t0+6000)+string(cur)+assistantLine("f", "r6", t0+7000, 100, 0, 0, 0, 0.01))
	tl.expect(6, 143)

	// Deleted by retention: the cursor goes, the totals stay.
	os.Remove(fork)
	tl.expect(6, 143)
	if st, _ := tl.db.Stats(); st.Cursors != 1 {
		t.Errorf("cursors = %d, want 1 after the fork file was deleted", st.Cursors)
	}
}

func TestCompressedArchive(t *testing.T) {
	tl := newTailer(t)
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write([]byte(headerLine("s1", t0) + assistantLine("a", "r1", t0+1000, 10, 0, 0, 0, 0.01) +
		assistantLine("b", "r2", t0+2000, 20, 0, 0, 0, 0.01)))
	zw.Close()
	os.WriteFile(tl.path("s1.jsonl.deleted.2026-04-10T09-00-00.000Z.zst"), buf.Bytes(), 0o644)
	appendFile(t, tl.path("s1.jsonl"), headerLine("s1", t0)+assistantLine("a", "r1", t0+1000, 10, 0, 0, 0, 0.01))
	tl.expect(2, 30)
	tl.expect(2, 30)
}

func TestBadInput(t *testing.T) {
	tl := newTailer(t)
	good := tl.path("good.jsonl")
	appendFile(t, good, headerLine("g", t0)+assistantLine("a", "r1", t0+1000, 10, 0, 0, 0, 0.01))
	tl.expect(1, 10)

	// A 20 MB line (a base64 image in a user message) between two calls.
	big := tl.path("big.jsonl")
	huge := `{"type":"message","message":{"role":"user","content":[{"type":"image","data":"` + strings.Repeat("QUJD", 5<<20) + `"}]}}` + "\n"
	appendFile(t, big, headerLine("b", t0)+assistantLine("a", "r2", t0+1000, 1, 0, 0, 0, 0)+huge+assistantLine("b", "r3", t0+2000, 2, 0, 0, 0, 0))
	// Binary garbage, an empty file, a file we may not read.
	os.WriteFile(tl.path("junk.jsonl"), []byte("\x00\x01\x02\xff\xfe garbage\n{\"half\":\n"), 0o644)
	os.WriteFile(tl.path("empty.jsonl"), nil, 0o644)
	locked := tl.path("locked.jsonl")
	appendFile(t, locked, headerLine("l", t0)+assistantLine("a", "r4", t0+1000, 100, 0, 0, 0, 0))
	os.Chmod(locked, 0)
	// Root reads a mode-0 file anyway; this process's own memory at
	// offset 0 fails to read (EIO) for everyone. (A name that leads to a
	// directory is a folder, followed like one: it holds no transcript.)
	os.Symlink("/proc/self/mem", tl.path("eio.jsonl"))
	os.Symlink(t.TempDir(), tl.path("isdir.jsonl"))
	if os.Geteuid() == 0 {
		tl.expect(4, 113)
	} else {
		tl.expect(3, 13)
	}
	if tl.in.Status().FileErrors == 0 {
		t.Error("unreadable file not counted")
	}
	if st := tl.in.Status(); st.Skips.Malformed != 2 {
		t.Errorf("malformed = %d, want 2 (binary line, half object)", st.Skips.Malformed)
	}
	// The daemon keeps going: more data after all that is read.
	appendFile(t, good, assistantLine("b", "r5", t0+3000, 1000, 0, 0, 0, 0))
	os.Chmod(locked, 0o644)
	tl.expect(5, 1113)
	os.Remove(tl.path("isdir.jsonl"))
}

func TestOversizeLineIsSkippedAndCounted(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(sessionsDir(t, dir, "main"), "s.jsonl")
	f, _ := os.Create(p)
	f.WriteString(headerLine("s", t0) + assistantLine("a", "r1", t0+1000, 1, 0, 0, 0, 0))
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for range MaxLineBytes>>20 + 2 {
		f.Write(chunk)
	}
	f.WriteString("\n" + assistantLine("b", "r2", t0+2000, 2, 0, 0, 0, 0))
	f.Close()
	got := totalsOf(t, scanDirs(t, dir))
	if got.Sums.Messages != 2 || got.Skipped.OversizeLine != 1 {
		t.Errorf("messages %d, oversize %d; want 2, 1", got.Sums.Messages, got.Skipped.OversizeLine)
	}
}

func TestMissingDir(t *testing.T) {
	in := New(Config{OpenClawDirs: []string{filepath.Join(t.TempDir(), "nope")}}, openDB(t))
	_, err := in.Step(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no agents/ folder") {
		t.Fatalf("err = %v, want a clear message about the missing dir", err)
	}
}

func TestVanishingFile(t *testing.T) {
	tl := newTailer(t)
	for i := range 50 {
		appendFile(t, tl.path("v"+string(rune('a'+i%26))+string(rune('a'+i/26))+".jsonl"),
			headerLine("v", t0)+assistantLine("a", "rv"+string(rune('a'+i%26))+string(rune('a'+i/26)), t0+int64(i), 1, 0, 0, 0, 0))
	}
	// Delete files while a step runs; whatever was read is kept, the step
	// does not fail, and a later step is consistent.
	done := make(chan struct{})
	go func() {
		defer close(done)
		entries, _ := os.ReadDir(tl.dir)
		for _, e := range entries[:len(entries)/2] {
			os.Remove(filepath.Join(tl.dir, e.Name()))
		}
	}()
	if _, err := tl.in.Step(context.Background()); err != nil {
		t.Fatalf("step with vanishing files: %v", err)
	}
	<-done
	before := totalsOf(t, tl.db).Sums.Messages
	step(t, tl.in)
	after := totalsOf(t, tl.db).Sums.Messages
	if before < 25 || after < before || after > 50 {
		t.Errorf("messages before %d after %d: want between 25 and 50, never shrinking", before, after)
	}
}

// A poll over unchanged history touches no file contents.
func TestUnchangedPollReadsNothing(t *testing.T) {
	tl := newTailer(t)
	for i := range 20 {
		appendFile(t, tl.path("u"+string(rune('a'+i))+".jsonl"), headerLine("u", t0)+assistantLine("a", "ru"+string(rune('a'+i)), t0, 1, 0, 0, 0, 0))
	}
	step(t, tl.in)
	if res := step(t, tl.in); res.Read != 0 || res.Bytes != 0 {
		t.Errorf("second poll read %d files, %d bytes; want 0", res.Read, res.Bytes)
	}
	// And a restarted ingester (new process) trusts the stored cursors.
	in2 := New(Config{OpenClawDirs: []string{tl.root}}, tl.db)
	if res := step(t, in2); res.Read != 0 || res.Added != 0 {
		t.Errorf("restarted ingester read %d files, added %d; want 0", res.Read, res.Added)
	}
}

// failingLedger fails every Apply after the first n: a database that is
// down or a disk that is full.
type failingLedger struct {
	*storage.DB
	n int
}

func (f *failingLedger) Apply(b *storage.Batch) (storage.ApplyResult, error) {
	if f.n <= 0 {
		return storage.ApplyResult{}, os.ErrDeadlineExceeded
	}
	f.n--
	return f.DB.Apply(b)
}

// A commit that fails midway through a big file loses nothing: the file's
// cursor stays where the last good commit left it, and the next step
// (here a restarted ingester) reads the rest.
func TestFailedCommitMidFile(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(sessionsDir(t, root, "main"), "big.jsonl")
	var sb strings.Builder
	sb.WriteString(headerLine("big", t0))
	for i := range 2000 {
		sb.WriteString(assistantLine("e", "rb"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)), t0+int64(i), 1, 0, 0, 0, 0.001))
	}
	os.WriteFile(p, []byte(sb.String()), 0o644)
	db := openDB(t)
	cfg := Config{OpenClawDirs: []string{root}, BatchBytes: 32 << 10}
	in := New(cfg, &failingLedger{DB: db, n: 3})
	if _, err := in.Step(context.Background()); err == nil {
		t.Fatal("step with a failing database did not fail")
	}
	partial := totalsOf(t, db).Sums.Messages
	if partial == 0 || partial >= 2000 {
		t.Fatalf("after the failure %d calls are stored; want some but not all", partial)
	}
	step(t, New(cfg, db))
	if got := totalsOf(t, db); got.Sums.Messages != 2000 || got.Skipped.Duplicate != 0 {
		t.Errorf("after recovery: %d calls, %d duplicates; want 2000, 0", got.Sums.Messages, got.Skipped.Duplicate)
	}
}

// cancellingLedger cancels the step's context at its first commit, as a
// SIGTERM in the middle of a cold ingest does.
type cancellingLedger struct {
	*storage.DB
	cancel context.CancelFunc
}

func (c *cancellingLedger) Apply(b *storage.Batch) (storage.ApplyResult, error) {
	c.cancel()
	return c.DB.Apply(b)
}

// Shutdown in the middle of a step returns promptly, keeps what was
// committed, and the next step finishes the work.
func TestCancelMidStep(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	for i := range 300 {
		appendFile(t, filepath.Join(dir, "s"+strings.Repeat("0", 3-len(fmt.Sprint(i)))+fmt.Sprint(i)+".jsonl"),
			headerLine("s", t0+int64(i))+assistantLine("a", fmt.Sprint("rc", i), t0+int64(i), 1, 0, 0, 0, 0))
	}
	db := openDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{OpenClawDirs: []string{root}, BatchBytes: 4 << 10, Workers: 2}
	done := make(chan error, 1)
	go func() {
		_, err := New(cfg, &cancellingLedger{DB: db, cancel: cancel}).Step(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled step returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled step did not return")
	}
	step(t, New(cfg, db))
	if got := totalsOf(t, db); got.Sums.Messages != 300 || got.Skipped.Duplicate != 0 {
		t.Errorf("after restart: %d calls, %d duplicates; want 300, 0", got.Sums.Messages, got.Skipped.Duplicate)
	}
}

// The fingerprints of bytes fed in pieces of any size equal those of the
// same bytes read from the file.
func TestFingerprinterMatchesFile(t *testing.T) {
	data := make([]byte, 3*fingerprintLen+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, piece := range []int{1, 7, 100, fingerprintLen - 1, fingerprintLen, 5000} {
		var fp fingerprinter
		for off := 0; off < len(data); off += piece {
			fp.consumed(data[off:min(off+piece, len(data))])
		}
		for _, upTo := range []int{len(data)} {
			var got, want fileCursor
			fp.set(&got)
			n := min(upTo, fingerprintLen)
			want.Hash = fingerprintHash
			want.HeadLen, want.HeadHash = n, hashBytes(want.Hash, data[:n], nil)
			want.TailLen, want.TailHash = n, hashBytes(want.Hash, data[upTo-n:upTo], nil)
			if got != want {
				t.Errorf("pieces of %d: %+v, want %+v", piece, got, want)
			}
		}
	}
}

// A cursor written with FNV-1a fingerprints (before crc32c) still proves
// the file unchanged: an upgrade does not re-read every transcript.
func TestLegacyFingerprintsResume(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	path := filepath.Join(dir, "s1.jsonl")
	appendFile(t, path, headerLine("s1", t0)+assistantLine("a", "rl1", t0+1, 1, 0, 0, 0, 0.01))
	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}}, db)
	step(t, in)
	// Rewrite the stored cursor as the old code wrote it.
	stored, err := db.Cursors()
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored cursors %v: %v", stored, err)
	}
	for id, v := range stored {
		var c fileCursor
		if err := decodeCursor(v, &c); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(c.Path)
		legacy := c
		legacy.Hash = ""
		legacy.HeadHash = hashBytes("", data[:legacy.HeadLen], nil)
		legacy.TailHash = hashBytes("", data[legacy.Offset-int64(legacy.TailLen):legacy.Offset], nil)
		v, _ := json.Marshal(&legacy)
		if _, err := db.Apply(&storage.Batch{Cursors: map[string][]byte{id: v}}); err != nil {
			t.Fatal(err)
		}
	}
	appendFile(t, path, assistantLine("b", "rl2", t0+2, 1, 0, 0, 0, 0.01))
	in = New(Config{OpenClawDirs: []string{root}}, db) // a restart: cursors from storage
	res := step(t, in)
	if res.Added != 1 || res.Skipped != 0 {
		t.Errorf("after an upgrade: %+v; want the new call only, nothing re-read", res)
	}
}
