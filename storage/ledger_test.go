package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func openTest(t testing.TB, loc *time.Location) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), FileName), Options{Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("check: %v", err)
		}
		db.Close()
	})
	return db
}

func rec(key string, ts int64, in, out int64, cost float64) Usage {
	return Usage{
		TS: ts, Source: SourceOpenClaw, Agent: "main", SessionID: "s1", Provider: "anthropic", Model: "m",
		Input: in, Output: out, Cost: Cost{Total: cost}, CostSource: CostTranscript, DedupeKey: key,
	}
}

func TestKeysRoundTrip(t *testing.T) {
	for _, day := range []int32{-40000, -1, 0, 1, 20553, 1 << 20} {
		for _, d := range []Dim{{}, {"openclaw", "main", "telegram:1", "anthropic", "claude"}, {"x", "\x00:|", strings.Repeat("u", 70000), "", "m"}} {
			k := rowKey(day, d)
			gotDay, gotDim, err := decodeRowKey(k)
			if len(d.User) > 0xFFFF {
				d.User = d.User[:0xFFFF]
			}
			if err != nil || gotDay != day || gotDim != d {
				t.Errorf("round trip %d %q: got %d %q %v", day, d, gotDay, gotDim, err)
			}
		}
	}
	// Day keys sort in time order, negative days included.
	if string(periodKey(-1)) >= string(periodKey(0)) || string(periodKey(0)) >= string(periodKey(1)) {
		t.Error("period keys do not sort")
	}
	if string(ledgerKey(-5, 0)) >= string(ledgerKey(5, 0)) {
		t.Error("ledger keys do not sort")
	}
	tot := Totals{1, 2, 3, 4, 5, -6, 7, 8, 9, 10, 11, 12, 13, 14}
	if got, err := decodeTotals(encodeTotals(tot)); err != nil || got != tot {
		t.Errorf("totals round trip: %+v %v", got, err)
	}
	// Version 1 and 2 values (schemas 1 and 2: 12 and 14 fields of 8
	// bytes) still decode, version 1's missing fields zero.
	v2 := fixedTotals(2, tot)
	if got, err := decodeTotals(v2); err != nil || got != tot {
		t.Errorf("version 2 totals: %+v %v", got, err)
	}
	if n := len(encodeTotals(Totals{Messages: 1, Input: 20, Output: 199, CacheRead: 461, CacheWrite: 95, CostNanos: 3540000})); n > 24 {
		t.Errorf("a one-call totals value takes %d bytes", n)
	}
	for i := range encodeTotals(tot) {
		if _, err := decodeTotals(encodeTotals(tot)[:i]); err == nil {
			t.Errorf("a totals value cut at %d bytes decodes", i)
		}
	}
	if _, err := decodeTotals(append(encodeTotals(tot), 0)); err == nil {
		t.Error("a totals value with a byte more decodes")
	}
	v1 := fixedTotals(1, tot)
	want := tot
	want.Reasoning, want.CostToolsNanos = 0, 0
	if got, err := decodeTotals(v1); err != nil || got != want {
		t.Errorf("version 1 totals: %+v %v", got, err)
	}
	if _, err := decodeTotals(v1[:50]); err == nil {
		t.Error("a truncated totals value decodes")
	}
	sess := Session{Source: "claude", SessionID: "s\x00", SessionKey: "agent:main:main", Agent: "a", Channel: "c",
		FirstTS: -5, LastTS: 1 << 40, Models: map[string]Totals{"p/m": tot, "q/n": {Messages: 1}}}
	if got, err := decodeSession(encodeSession(&sess)); err != nil || !reflect.DeepEqual(got, sess) {
		t.Errorf("session round trip: %+v %v", got, err)
	}
	if _, err := decodeSession(encodeSession(&sess)[:20]); err == nil {
		t.Error("a truncated session value decodes")
	}
}

func TestDayAndWeek(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	ts := time.Date(2026, 4, 10, 23, 30, 0, 0, time.UTC).UnixMilli() // 01:30 on the 11th in Berlin
	if got := DayString(DayNumber(ts, time.UTC)); got != "2026-04-10" {
		t.Errorf("UTC day = %s", got)
	}
	if got := DayString(DayNumber(ts, berlin)); got != "2026-04-11" {
		t.Errorf("Berlin day = %s", got)
	}
	tests := map[string]string{ // day → ISO week Monday
		"2026-04-13": "2026-04-13", "2026-04-19": "2026-04-13", "2026-04-12": "2026-04-06",
		"1970-01-01": "1969-12-29", "2021-01-03": "2020-12-28",
	}
	for day, want := range tests {
		d, _ := ParseDay(day)
		if got := DayString(WeekStart(d)); got != want {
			t.Errorf("WeekStart(%s) = %s, want %s", day, got, want)
		}
	}
}

func TestApplyDedupesAndReplaces(t *testing.T) {
	db := openTest(t, time.UTC)
	b := &Batch{Records: []Usage{
		rec("a", 1000, 10, 5, 0.1),
		rec("a", 1000, 10, 5, 0.1), // same call twice in one batch
		rec("b", 2000, 1, 1, 0.01),
	}}
	res, err := db.Apply(b)
	if err != nil || res.Added != 2 || res.Duplicates != 1 {
		t.Fatalf("apply = %+v, %v", res, err)
	}
	// A larger copy of "b" (a streamed response's final line) replaces it,
	// a smaller one does not.
	res, err = db.Apply(&Batch{Records: []Usage{rec("b", 2500, 1, 9, 0.05), rec("b", 3000, 1, 2, 0.02)}})
	if err != nil || res.Replaced != 1 || res.Duplicates != 1 {
		t.Fatalf("apply = %+v, %v", res, err)
	}
	rows, _ := db.DailyRows(0, 0)
	if len(rows) != 1 {
		t.Fatalf("rows = %+v", rows)
	}
	want := Totals{Messages: 2, Input: 11, Output: 14, CostNanos: 150_000_000}
	if rows[0].Totals != want {
		t.Errorf("row = %+v, want %+v", rows[0].Totals, want)
	}
	var n int
	db.Ledger(0, 1<<62, func(u *Usage) error {
		n++
		if u.DedupeKey == "b" && u.TS != 2000 {
			t.Errorf("replacement kept ts %d, want the first copy's 2000", u.TS)
		}
		return nil
	})
	if n != 2 {
		t.Errorf("ledger has %d records, want 2", n)
	}
	if s, _ := db.Skips(); s.Duplicate != 2 {
		t.Errorf("duplicate skips = %d, want 2", s.Duplicate)
	}

	// A larger sidechain replay loses to the main-chain copy; a main-chain
	// copy replaces a sidechain one that came first.
	side := rec("c", 4000, 1000, 1000, 0)
	side.Sidechain = true
	main := rec("c", 4000, 1, 1, 0)
	res, _ = db.Apply(&Batch{Records: []Usage{main, side}})
	if res.Added != 1 || res.Duplicates != 1 {
		t.Errorf("main then larger sidechain: %+v", res)
	}
	side.DedupeKey, main.DedupeKey = "d", "d"
	res, _ = db.Apply(&Batch{Records: []Usage{side, main}})
	if res.Added != 1 || res.Replaced != 1 {
		t.Errorf("sidechain then main: %+v", res)
	}
	rows, _ = db.DailyRows(0, 0)
	if rows[0].Input != 11+1+1 {
		t.Errorf("input = %d, want the main-chain copies' 13", rows[0].Input)
	}
}

func TestRebuildIsByteIdentical(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	db := openTest(t, berlin)
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for batch := range 20 {
		var b Batch
		for i := range 200 {
			u := rec(fmt.Sprintf("k%d", rng.IntN(3000)), start+rng.Int64N(90*86400_000), rng.Int64N(1000), rng.Int64N(1000), rng.Float64()/7)
			u.Agent = fmt.Sprintf("agent%d", rng.IntN(5))
			u.User = fmt.Sprintf("u%d", rng.IntN(7))
			u.SessionID = fmt.Sprintf("s%d", rng.IntN(40))
			u.Model = []string{"a", "b", "c"}[rng.IntN(3)]
			if i%10 == 0 {
				u.CostSource = CostUnpriced
			}
			b.Records = append(b.Records, u)
		}
		if _, err := db.Apply(&b); err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
	}
	before := map[string]map[string]string{}
	for _, name := range []string{"daily", "weekly", "daily_dims", "sessions"} {
		before[name], _ = db.BucketBytes(name)
		if len(before[name]) == 0 {
			t.Fatalf("%s is empty", name)
		}
	}
	if err := db.RebuildRollups(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"daily", "weekly", "daily_dims", "sessions"} {
		after, _ := db.BucketBytes(name)
		if !reflect.DeepEqual(before[name], after) {
			t.Errorf("%s differs after rebuild (%d rows before, %d after)", name, len(before[name]), len(after))
		}
	}
}

// A name longer than a bbolt key may be (untrusted text) is cut, not a
// batch that fails forever.
func TestLongNamesAreCut(t *testing.T) {
	db := openTest(t, time.UTC)
	u := rec("long", 1000, 1, 1, 0)
	u.Model = strings.Repeat("m", 40000)
	u.User = strings.Repeat("ü", 30000)
	if _, err := db.Apply(&Batch{Records: []Usage{u, rec("ok", 2000, 1, 1, 0)}}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	rows, _ := db.DailyRows(0, 0)
	var calls int64
	for _, r := range rows {
		calls += r.Messages
		if len(r.Model) > MaxNameBytes || len(r.User) > MaxNameBytes || !utf8.ValidString(r.User) {
			t.Errorf("name not cut to %d valid bytes: %d, %d", MaxNameBytes, len(r.Model), len(r.User))
		}
	}
	if calls != 2 {
		t.Errorf("calls = %d, want 2", calls)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	_, err = Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "fleetmeter serve") {
		t.Fatalf("second open: %v, want ErrLocked with a hint", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second open took %s", d)
	}
}

func TestZoneChangeRebuilds(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, _ := Open(path, Options{})
	ts := time.Date(2026, 4, 10, 23, 30, 0, 0, time.UTC).UnixMilli()
	db.Apply(&Batch{Records: []Usage{rec("a", ts, 1, 1, 0)}})
	db.Close()
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	db, err := Open(path, Options{Location: tokyo})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d, _ := ParseDay("2026-04-11")
	if rows, _ := db.DailyRows(d, d); len(rows) != 1 {
		t.Errorf("rows on Tokyo's 2026-04-11 = %d, want 1 after the zone change", len(rows))
	}
}

func TestPruneLedger(t *testing.T) {
	db := openTest(t, time.UTC)
	var b Batch
	for i := range 12000 {
		b.Records = append(b.Records, rec(fmt.Sprint(i), int64(i)*1000, 1, 0, 0))
	}
	db.Apply(&b)
	n, err := db.PruneLedger(6000 * 1000)
	if err != nil || n != 6000 {
		t.Fatalf("pruned %d, %v; want 6000", n, err)
	}
	st, _ := db.Stats()
	if st.LedgerRecords != 6000 {
		t.Errorf("ledger = %d", st.LedgerRecords)
	}
	rows, _ := db.DailyRows(0, 0)
	if rows[0].Messages != 12000 {
		t.Errorf("rollups lost data on prune: %d", rows[0].Messages)
	}
}

// A writer waiting for the lock while `compact` swaps a new file in must
// end up on the new file, not on the old, unlinked one.
func TestOpenAfterSwapUsesTheNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	holder, err := Open(path, Options{ReadOnly: true}) // compact's shared lock
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan *DB, 1)
	go func() {
		w, err := Open(path, Options{LockTimeout: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		opened <- w
	}()
	time.Sleep(100 * time.Millisecond) // the writer now waits on the old file's lock
	fresh := filepath.Join(dir, "fresh.db")
	f, _ := Open(fresh, Options{})
	f.Close()
	if err := os.Rename(fresh, path); err != nil {
		t.Fatal(err)
	}
	holder.Close()
	w := <-opened
	if w == nil {
		return
	}
	if _, err := w.Apply(&Batch{Records: []Usage{rec("k", 1000, 1, 1, 0)}}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	check, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	if st, _ := check.Stats(); st.LedgerRecords != 1 {
		t.Errorf("the file at %s holds %d records: the write went to the replaced file", path, st.LedgerRecords)
	}
}

// After retention pruned the ledger, a rebuild (asked for, or forced by a
// zone change) keeps the rollups it cannot recompute.
func TestRebuildKeepsPrunedHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	old := time.Date(2024, 3, 5, 12, 0, 0, 0, time.UTC).UnixMilli()
	recent := time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC).UnixMilli()
	a, b, c := rec("old", old, 10, 0, 1), rec("recent", recent, 5, 0, 2), rec("recent2", recent+1000, 1, 0, 0)
	b.SessionID = "s2"
	if _, err := db.Apply(&Batch{Records: []Usage{a, b, c}}); err != nil {
		t.Fatal(err)
	}
	before := map[string]map[string]string{}
	for _, name := range []string{"daily", "weekly", "daily_dims", "sessions"} {
		before[name], _ = db.BucketBytes(name)
	}
	if _, err := db.PruneLedger(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if err := db.RebuildRollups(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"daily", "weekly", "daily_dims", "sessions"} {
		after, _ := db.BucketBytes(name)
		if !reflect.DeepEqual(before[name], after) {
			t.Errorf("%s changed by a rebuild after a prune (%d rows before, %d after)", name, len(before[name]), len(after))
		}
	}
	db.Close()
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	db, err = Open(path, Options{Location: tokyo}) // a zone change rebuilds
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, _ := db.DailyRows(rollupMin, rollupMax)
	var input int64
	for _, r := range rows {
		input += r.Input
	}
	if input != 16 {
		t.Errorf("input over all days = %d after a zone change, want 16 (the pruned year's 10 kept)", input)
	}
}

const rollupMin, rollupMax = -1 << 31, 1<<31 - 1

// fixedTotals is t as a schema 1 (version 1: 12 fields) or schema 2
// (version 2: 14) file holds it, each field 8 bytes big-endian.
func fixedTotals(version byte, t Totals) []byte {
	f := t.fields()
	n := 14
	if version == 1 {
		n = 12
	}
	b := []byte{version}
	for _, v := range f[:n] {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}
