package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// filledDB writes a database of a few thousand records and host samples
// (several levels of pages in the ledger) and closes it.
func filledDB(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	for i := range 3000 {
		b.Records = append(b.Records, Usage{
			TS: 1775808000000 + int64(i)*60_000, Source: SourceOpenClaw, Agent: fmt.Sprintf("agent-%d", i%7),
			SessionID: fmt.Sprintf("s%d", i%40), Provider: "anthropic", Model: "m", Input: int64(i), Output: 1,
			CostSource: CostUnpriced, DedupeKey: fmt.Sprint(i),
		})
	}
	if _, err := db.Apply(&b); err != nil {
		t.Fatal(err)
	}
	var samples []HostSample
	for i := range 500 {
		samples = append(samples, HostSample{TS: 1775808000000 + int64(i)*15_000, CPUPct: 10, CPUCount: 2})
	}
	if err := db.PutHostSamples(samples); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Verify(path); err != nil {
		t.Fatalf("a sound file: %v", err)
	}
	return path
}

// readAll touches every bucket a report, a host report and a rebuild read.
func readAll(db *DB) error {
	if _, err := db.Stats(); err != nil {
		return err
	}
	if _, err := db.Sessions(); err != nil {
		return err
	}
	if _, err := db.DimRows(DimUser, math.MinInt32, math.MaxInt32); err != nil {
		return err
	}
	if _, err := db.HostRollups5m(math.MinInt64/2, math.MaxInt64/2); err != nil {
		return err
	}
	return db.Ledger(math.MinInt64/2, math.MaxInt64/2, func(*Usage) error { return nil })
}

// A file cut short is refused at open, read-only or not, with ErrCorrupt:
// before, bbolt mapped past its end and the first read was a SIGBUS.
func TestOpenTruncated(t *testing.T) {
	path := filledDB(t)
	// bbolt grows files ahead of use: cut into the pages in use.
	r, err := openPages(path, false)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := os.Truncate(path, int64(r.meta.hwm)*int64(r.pageSize)/2); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{true, false} {
		db, err := Open(path, Options{ReadOnly: ro})
		if err == nil {
			db.Close()
		}
		if !errors.Is(err, ErrCorrupt) || !errorsContain(err, "cut short") {
			t.Errorf("read-only %v: %v, want ErrCorrupt saying it was cut short", ro, err)
		}
	}
	if err := Verify(path); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify: %v", err)
	}
	if _, _, err := Compact(path); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Compact: %v", err)
	}
}

// A file cut short under an open reader: reads fault on the mapped pages
// past its end; the fault becomes ErrCorrupt, not a crash.
func TestTruncatedUnderAReader(t *testing.T) {
	path := filledDB(t)
	db, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := os.Truncate(path, 3*4096); err != nil {
		t.Fatal(err)
	}
	if err := readAll(db); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reads after the cut: %v, want ErrCorrupt", err)
	}
}

// Bytes flipped at random places: a writable open either refuses the file
// with ErrCorrupt or opens one whose reads all work or fail with an error:
// never a panic, never a crash of the process (before, bbolt panicked in
// its freelist goroutine at open, or a read panicked on a damaged page).
func TestBitFlips(t *testing.T) {
	orig := filledDB(t)
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	pages := reachablePages(t, orig)
	rng := rand.New(rand.NewPCG(3, uint64(time.Now().UnixNano())))
	refused := 0
	const rounds = 60
	for round := range rounds {
		damaged := append([]byte(nil), data...)
		// Flip bytes in the headers and element tables (the first 256
		// bytes) of pages in use, where damage steers reads.
		for range 1 + rng.IntN(4) {
			page := pages[rng.IntN(len(pages))]
			damaged[int(page)*4096+rng.IntN(256)] ^= byte(1 + rng.IntN(255))
		}
		path := filepath.Join(t.TempDir(), fmt.Sprintf("flip%d.db", round))
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		// Without reading every page first: the damage is met by reads,
		// which fail with ErrCorrupt (or, for damage in keys and values,
		// with an error of their own, or not at all).
		if db, err := Open(path, Options{}); err == nil {
			if err := readAll(db); err != nil && strings.Contains(err.Error(), "runtime error") && !errors.Is(err, ErrCorrupt) {
				t.Errorf("round %d: a read panicked without ErrCorrupt: %v", round, err)
			}
			db.Close()
		} else if !errors.Is(err, ErrCorrupt) {
			t.Errorf("round %d: open failed without ErrCorrupt: %v", round, err)
		}
		// As serve opens it: every page read first.
		db, err := Open(path, Options{Verify: true})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("round %d: open failed without ErrCorrupt: %v", round, err)
			}
			refused++
			continue
		}
		_ = readAll(db)
		db.Close()
	}
	if refused < rounds/4 {
		t.Errorf("only %d of %d damaged files were refused", refused, rounds)
	}
	t.Logf("%d of %d damaged files refused at open", refused, rounds)
}

// reachablePages lists the pages of a sound file that its root reaches.
func reachablePages(t *testing.T, path string) []uint64 {
	t.Helper()
	r, err := openPages(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w := &walker{r: r, seen: make([]uint64, r.meta.hwm/64+1), kv: func([][]byte, []byte, []byte) {}, bad: func(error) bool { return false }}
	w.visit(nil, r.meta.root, 0, nil, nil)
	var ids []uint64
	for id := uint64(2); id < r.meta.hwm; id++ {
		if w.seen[id/64]&(1<<(id%64)) != 0 {
			ids = append(ids, id)
		}
	}
	if len(ids) < 20 {
		t.Fatalf("only %d pages in use", len(ids))
	}
	return ids
}

// A backup of a damaged database fails instead of copying the damage.
func TestBackupVerifies(t *testing.T) {
	path := filledDB(t)
	db, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	good := filepath.Join(t.TempDir(), "good.db")
	if err := db.Backup(good); err != nil {
		t.Fatal(err)
	}
	if err := Verify(good); err != nil {
		t.Fatal(err)
	}
	// Damage a page of the open file behind bbolt's back: the copy holds it.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := openPages(path, false)
	root := r.meta.root
	r.Close()
	f.WriteAt([]byte{0xff, 0xff, 0xff, 0xff}, int64(root)*4096+8) // the root page's flags and count
	f.Close()
	bad := filepath.Join(t.TempDir(), "bad.db")
	if err := db.Backup(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("backup of a damaged file: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed backup left %s behind", bad)
	}
	if _, err := os.Stat(bad + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed backup left its temp file behind")
	}
}

// A writable open removes what a killed compact left behind.
func TestOpenCleansCompactLeftover(t *testing.T) {
	path := filledDB(t)
	if err := os.WriteFile(path+compactSuffix, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(path + compactSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the leftover of a killed compact is still there")
	}
}

func errorsContain(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

// Salvage keeps what a damaged file still holds, and leaves a database
// whose rollups and dedupe keys agree with the records kept: nothing the
// lost pages held is counted, so reading the transcripts again adds it
// back exactly once.
func TestSalvage(t *testing.T) {
	path := filledDB(t)
	before, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	id := before.InstanceID()
	before.Close()
	pages := reachablePages(t, path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint64{pages[len(pages)/3], pages[len(pages)/2]} {
		f.WriteAt(make([]byte, 4096), int64(p)*4096) // two pages zeroed
	}
	f.Close()
	if err := Verify(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("the damage is not seen: %v", err)
	}
	dst := filepath.Join(t.TempDir(), FileName)
	res, err := Salvage(path, dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("salvaged %+v", res)
	if res.DamagedRegions == 0 || res.Records == 0 || res.Records >= 3000 {
		t.Errorf("salvage %+v: want some records kept and some lost", res)
	}
	if err := Verify(dst); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
	if db.InstanceID() != id {
		t.Errorf("instance id %q, want the damaged file's %q", db.InstanceID(), id)
	}
	st, _ := db.Stats()
	rows, _ := db.DailyRows(math.MinInt32, math.MaxInt32)
	var msgs int64
	for _, r := range rows {
		msgs += r.Messages
	}
	if st.LedgerRecords != res.Records || msgs != int64(res.Records) || st.Cursors != 0 {
		t.Errorf("ledger %d, daily rows count %d calls, cursors %d; want %d, %d, 0", st.LedgerRecords, msgs, st.Cursors, res.Records, res.Records)
	}
	// Every kept record's dedupe key is known again: re-ingesting it adds nothing.
	var again Batch
	db.Ledger(math.MinInt64/2, math.MaxInt64/2, func(u *Usage) error { again.Records = append(again.Records, *u); return nil })
	if r, err := db.Apply(&again); err != nil || r.Added != 0 || r.Duplicates != res.Records {
		t.Errorf("re-ingesting the kept records: %+v %v", r, err)
	}
}

// A value that bbolt stores intact but that cannot be read (a ledger row
// cut short or overwritten in place) is damage too: Verify, which doctor,
// repair and backup use, reports it (before, doctor said "ok" and repair
// "nothing to repair" while every recut and rebuild failed on that row).
func TestVerifyFindsUnreadableValues(t *testing.T) {
	for _, mode := range []string{"cut", "garbage", "empty"} {
		t.Run(mode, func(t *testing.T) {
			path := filledDB(t)
			db, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = db.bolt.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketLedger)
				k, v := b.Cursor().First()
				bad := append([]byte(nil), v[:len(v)/2]...)
				switch mode {
				case "garbage":
					bad = bytes.Repeat([]byte{0x7f}, len(v))
				case "empty":
					bad = nil
				}
				return b.Put(append([]byte(nil), k...), bad)
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := Verify(path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "ledger") {
				t.Fatalf("Verify: %v, want ErrCorrupt naming the ledger", err)
			}
		})
	}
}

// session_meta is ingest's: it keeps JSON under a session's key and a
// Codex thread's parent id, as is, under "codex-thread:<id>". A salvage
// keeps both, and Verify takes neither for damage (the salvage dropped
// every thread link as an unreadable value).
func TestSalvageKeepsSessionMeta(t *testing.T) {
	path := filledDB(t)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"codex-thread:0195aaaa-0000-7000-8000-000000000002": []byte("0195aaaa-0000-7000-8000-000000000001"),
		SessionMetaID(SourceOpenClaw, "s1"):                 []byte(`{"key":"agent:main:main"}`),
	}
	if _, err := db.Apply(&Batch{SessionMeta: want}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Verify(path); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	dst := filepath.Join(t.TempDir(), FileName)
	res, err := Salvage(path, dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.DroppedValues != 0 {
		t.Errorf("salvage %+v: dropped values of a sound file", res)
	}
	db, err = Open(dst, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.SessionMeta()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Errorf("session_meta %q: %q after the salvage, want %q", k, got[k], v)
		}
	}
}
