package rollup

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// countingDB counts and slows the reads of a real database.
type countingDB struct {
	*storage.DB
	reads atomic.Int64
	delay time.Duration
}

func (c *countingDB) ScanDimRows(kind byte, from, to int32) ([]storage.Row, error) {
	c.reads.Add(1)
	time.Sleep(c.delay)
	return c.DB.ScanDimRows(kind, from, to)
}

// Fifty clients asking the same report at once cost one computation; a
// commit makes the next ask compute afresh.
func TestSameQueryComputedOnce(t *testing.T) {
	db := &countingDB{DB: openTestDB(t), delay: 20 * time.Millisecond}
	if _, err := db.Apply(&storage.Batch{Records: []storage.Usage{usageAt(t, "2026-04-10", 1, "a", "", "m", 5, 1)}}); err != nil {
		t.Fatal(err)
	}
	r := NewReader(db, ReaderConfig{Host: db, MaxHeavy: 2, BusyWait: time.Second})
	q := Query{Kind: "daily", Since: MinDay, Until: MaxDay}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rep, err := r.Report(context.Background(), q); err != nil || rep.Totals.Messages != 1 {
				t.Errorf("report: %v %+v", err, rep.Totals)
			}
		}()
	}
	wg.Wait()
	if n := db.reads.Load(); n != 1 {
		t.Errorf("%d computations for 50 identical asks, want 1", n)
	}
	if _, err := db.Apply(&storage.Batch{Records: []storage.Usage{usageAt(t, "2026-04-11", 1, "a", "", "m", 5, 1)}}); err != nil {
		t.Fatal(err)
	}
	if rep, err := r.Report(context.Background(), q); err != nil || rep.Totals.Messages != 2 {
		t.Errorf("after a commit: %v %+v", err, rep.Totals)
	}
}

// A busy daemon answers from the version before while it recomputes, and
// only for a bounded time; then the new result takes over.
func TestStaleWhileRecomputing(t *testing.T) {
	db := &countingDB{DB: openTestDB(t), delay: 200 * time.Millisecond}
	apply := func(day string) {
		t.Helper()
		if _, err := db.Apply(&storage.Batch{Records: []storage.Usage{usageAt(t, day, 1, "a", "", "m", 5, 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	apply("2026-04-10")
	r := NewReader(db, ReaderConfig{Host: db, MaxHeavy: 2, BusyWait: time.Second, MaxStale: time.Second})
	q := Query{Kind: "daily", Since: MinDay, Until: MaxDay}
	msgs := func() int64 {
		rep, err := r.Report(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Totals.Messages
	}
	if n := msgs(); n != 1 {
		t.Fatalf("first answer %d", n)
	}
	apply("2026-04-11")
	start := time.Now()
	if n := msgs(); n != 1 || time.Since(start) > 100*time.Millisecond {
		t.Errorf("right after a commit: %d calls in %s, want the old answer at once", n, time.Since(start))
	}
	time.Sleep(400 * time.Millisecond) // the recomputation ends
	if n := msgs(); n != 2 {
		t.Errorf("after the recomputation: %d calls, want 2", n)
	}
	if n := db.reads.Load(); n != 2 {
		t.Errorf("%d computations, want 2", n)
	}
}

// With every slot taken longer than the wait, a read fails with ErrBusy
// instead of piling up.
func TestBusyWhenSlotsTaken(t *testing.T) {
	db := &countingDB{DB: openTestDB(t), delay: 300 * time.Millisecond}
	r := NewReader(db, ReaderConfig{Host: db, MaxHeavy: 1, BusyWait: 20 * time.Millisecond})
	var busy, ok atomic.Int64
	var wg sync.WaitGroup
	for _, kind := range []string{"daily", "agent", "user", "model"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.Report(context.Background(), Query{Kind: kind, Since: MinDay, Until: MaxDay})
			switch {
			case errors.Is(err, ErrBusy):
				busy.Add(1)
			case err == nil:
				ok.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || busy.Load() != 3 {
		t.Errorf("%d answered, %d busy; want 1 and 3", ok.Load(), busy.Load())
	}
}

// Session rows come in pages, most recent first; totals and the row count
// cover the whole range whatever the page.
func TestSessionPages(t *testing.T) {
	db := openTestDB(t)
	var b storage.Batch
	for d := range 9 {
		b.Records = append(b.Records, usageAt(t, "2026-04-0"+string(rune('1'+d)), 1, "a", "", "m", 1, 1))
	}
	if _, err := db.Apply(&b); err != nil {
		t.Fatal(err)
	}
	r := NewReader(db, ReaderConfig{Host: db})
	var seen []string
	for offset := 0; ; offset += 4 {
		rep, err := r.Report(context.Background(), Query{Kind: "session", Since: MinDay, Until: MaxDay, Limit: 4, Offset: offset})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Page == nil || rep.Page.Total != 9 || rep.Totals.Messages != 9 {
			t.Fatalf("page %+v totals %+v", rep.Page, rep.Totals)
		}
		rows := rep.Rows.([]SessionRow)
		for _, s := range rows {
			seen = append(seen, s.SessionID)
		}
		if len(rows) < 4 {
			break
		}
	}
	if len(seen) != 9 || seen[0] != "a-2026-04-09" || seen[8] != "a-2026-04-01" {
		t.Errorf("sessions over the pages: %v", seen)
	}
	if _, err := r.Report(context.Background(), Query{Kind: "session", Since: MinDay, Until: MaxDay, Limit: MaxPage + 1}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("a page over MaxPage: %v", err)
	}
}

// Data committed longer ago than MaxStale is in the first answer after
// it, however long no one asked in between; and every kind of report
// answers from the same state. Before, the first ask after a quiet minute
// got the old figures (the old result was outdated only from that ask on).
func TestOutdatedLongAgoIsRecomputed(t *testing.T) {
	db := openTestDB(t)
	apply := func(day string) {
		t.Helper()
		if _, err := db.Apply(&storage.Batch{Records: []storage.Usage{usageAt(t, day, 1, "a", "", "m", 5, 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	apply("2026-04-10")
	r := NewReader(db, ReaderConfig{Host: db, MaxHeavy: 2, BusyWait: time.Second, MaxStale: 200 * time.Millisecond})
	msgs := func(kind string) int64 {
		t.Helper()
		rep, err := r.Report(context.Background(), Query{Kind: kind, Since: MinDay, Until: MaxDay})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Totals.Messages
	}
	if d, a := msgs("daily"), msgs("agent"); d != 1 || a != 1 {
		t.Fatalf("first answers %d, %d", d, a)
	}
	apply("2026-04-11")
	if a := msgs("agent"); a != 1 && a != 2 {
		t.Fatalf("agent right after the commit: %d", a)
	}
	time.Sleep(300 * time.Millisecond) // longer than MaxStale, nobody asks daily
	if d, a := msgs("daily"), msgs("agent"); d != 2 || a != 2 {
		t.Errorf("%s after the commit: daily %d, agent %d calls; want 2 and 2", 300*time.Millisecond, d, a)
	}
}
