package storage

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// LedgerFacts, the fast partial decode, gives each record exactly the
// dimension and totals that decoding it whole gives.
func TestLedgerFactsMatchRecords(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), FileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	var b Batch
	for i := range 2000 {
		u := Usage{
			TS: 1775808000000 + int64(rng.IntN(1e9)), Source: []string{SourceOpenClaw, SourceClaude, SourceCodex}[i%3],
			Agent: fmt.Sprintf("agent \"%d\" \u00e9\\", i%5), SessionID: fmt.Sprint(i % 17), User: []string{"", "telegram:1", "x\ty"}[i%3],
			Provider: "anthropic", Model: fmt.Sprintf("m-%d", i%4), Input: rng.Int64N(1e6), Output: rng.Int64N(1e5),
			CacheRead: rng.Int64N(1e7), CacheWrite: rng.Int64N(1e4), CostSource: []string{CostTable, CostUnpriced, CostTranscript}[i%3],
			DedupeKey: fmt.Sprint(i),
		}
		if u.CostSource != CostUnpriced {
			u.Cost = Cost{Total: rng.Float64() / 3, Input: rng.Float64() * 1e-7, Output: 0.1 + 0.2, CacheRead: math.SmallestNonzeroFloat64, CacheWrite: 1e-9 * float64(i)}
		}
		b.Records = append(b.Records, u)
	}
	if _, err := db.Apply(&b); err != nil {
		t.Fatal(err)
	}
	var want []Fact
	err = db.Ledger(math.MinInt64/2, math.MaxInt64/2, func(u *Usage) error {
		want = append(want, Fact{TS: u.TS, Dim: DimOf(u), Totals: TotalsOf(u)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	err = db.LedgerFacts(math.MinInt64/2, math.MaxInt64/2, func(f *Fact) error {
		if *f != want[i] {
			t.Errorf("record %d: fact %+v, want %+v", i, *f, want[i])
		}
		i++
		return nil
	})
	if err != nil || i != len(want) || i != 2000 {
		t.Fatalf("%d facts, %d records, err %v", i, len(want), err)
	}
}

// CountStats counts what Stats counts, without mapping the pages.
func TestCountStatsMatchesStats(t *testing.T) {
	path := filledDB(t)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want, err := db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.CountStats()
	if err != nil || got != want {
		t.Fatalf("CountStats %+v (%v), Stats %+v", got, err, want)
	}
	if err := db.ReleaseMemory(); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.Stats(); st != want {
		t.Errorf("after ReleaseMemory the pages read differently: %+v", st)
	}
}

// Scans that read pages with pread return what the mapped reads return,
// for any range: a tree several levels deep, ranges starting and ending
// inside pages, open ends.
func TestUnmappedScansMatch(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), FileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	base := int64(1775808000000)
	var b Batch
	for i := range 20000 {
		b.Records = append(b.Records, Usage{
			TS: base + rng.Int64N(200*86400_000), Source: SourceOpenClaw, Agent: fmt.Sprintf("agent-%d", rng.IntN(30)),
			User: fmt.Sprintf("u%d", rng.IntN(90)), SessionID: fmt.Sprint(rng.IntN(500)), Provider: "p", Model: fmt.Sprint(rng.IntN(5)),
			Input: 1, CostSource: CostUnpriced, DedupeKey: fmt.Sprint(i),
		})
	}
	if _, err := db.Apply(&b); err != nil {
		t.Fatal(err)
	}
	day0 := DayNumber(base, time.UTC)
	ranges := [][2]int32{{math.MinInt32, math.MaxInt32}, {day0 + 17, day0 + 17}, {day0 + 3, day0 + 150}, {day0 - 5, day0 + 2}, {day0 + 199, math.MaxInt32}, {day0 + 300, day0 + 400}}
	for _, kind := range []byte{DimModel, DimAgent, DimUser} {
		for _, r := range ranges {
			want, err1 := db.DimRows(kind, r[0], r[1])
			got, err2 := db.ScanDimRows(kind, r[0], r[1])
			if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("kind %c days %v: %d rows scanned, %d read (%v %v)", kind, r, len(got), len(want), err1, err2)
			}
		}
	}
	for _, r := range [][2]int64{{math.MinInt64 / 2, math.MaxInt64 / 2}, {base + 5e9, base + 6e9}, {base - 1, base + 1e6}, {base + 1e10, math.MaxInt64 / 2}} {
		var want, got int
		db.Ledger(r[0], r[1], func(*Usage) error { want++; return nil })
		db.LedgerFacts(r[0], r[1], func(*Fact) error { got++; return nil })
		if got != want {
			t.Errorf("ledger [%d, %d): %d facts, %d records", r[0], r[1], got, want)
		}
	}
}

// Releasing the mapped pages while writers grow (and so remap) the file
// and readers read it: every read still sees whole, right data.
func TestReleaseMemoryUnderLoad(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), FileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	done := make(chan struct{})
	errs := make(chan error, 3)
	go func() { // writer: grows the file past the initial mapping, forcing remaps
		defer close(done)
		for i := range 45 {
			var b Batch
			for j := range 1000 {
				b.Records = append(b.Records, Usage{TS: 1775808000000 + int64(i*1000+j), Source: SourceOpenClaw, Agent: "a", SessionID: fmt.Sprint(j % 50),
					Provider: "p", Model: "m", Input: 1, UserLabel: strings.Repeat("x", 500), SessionKey: strings.Repeat("k", 500), Channel: strings.Repeat("c", 500), CostSource: CostUnpriced, DedupeKey: fmt.Sprint(i, "|", j)})
			}
			if _, err := db.Apply(&b); err != nil {
				errs <- err
				return
			}
		}
	}()
	for range 2 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				if err := db.ReleaseMemory(); err != nil {
					errs <- err
					return
				}
				if err := db.Ledger(1775808000000, 1775808000000+500, func(u *Usage) error {
					if u.Input != 1 || u.Model != "m" || len(u.UserLabel) != 500 {
						return fmt.Errorf("record read back wrong: %+v", u)
					}
					return nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := db.Stats(); st.LedgerRecords != 45000 || st.FileBytes < 64<<20 {
		t.Errorf("stats %+v: want 45,000 records in a file grown past the first mapping", st)
	}
}

// CommittedAfter gives the time of the commit that followed a version,
// exactly while this process made it and it is among the last it kept.
func TestCommittedAfter(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "f.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v0, _ := db.DataVersion()
	if _, exact := db.CommittedAfter(v0); exact {
		t.Error("no commit after the newest version, yet one is known")
	}
	before := time.Now()
	if _, err := db.Apply(&Batch{}); err != nil {
		t.Fatal(err)
	}
	v1, _ := db.DataVersion()
	at, exact := db.CommittedAfter(v0)
	if v1 != v0+1 || !exact || at.Before(before) || time.Since(at) > time.Second {
		t.Errorf("after v%d (now v%d): %v exact %v", v0, v1, at, exact)
	}
	for range commitLogSize {
		if _, err := db.Apply(&Batch{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, exact := db.CommittedAfter(v0); exact {
		t.Error("a commit older than the log is still exact")
	}
}
