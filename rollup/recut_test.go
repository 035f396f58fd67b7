package rollup

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// A report in another zone than the database's, kept up to date as
// records arrive, are replaced by larger copies and are pruned, always
// equals the same report built from scratch by a tally in that zone.
func TestRecutFollowsTheLedger(t *testing.T) {
	db := openTestDB(t)
	reader := NewReader(db, ReaderConfig{Host: db})
	rng := rand.New(rand.NewPCG(8, 9))
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) // DST starts in New York on 03-08
	var all []storage.Usage
	add := func(n int, span time.Duration, replace bool) {
		var b storage.Batch
		for range n {
			var u storage.Usage
			if replace && len(all) > 0 {
				u = all[rng.IntN(len(all))] // a larger copy of a known call
				u.Output += 1 + rng.Int64N(100)
			} else {
				u = usageAt(t, "2026-03-01", 0, fmt.Sprintf("a%d", rng.IntN(3)), fmt.Sprintf("u%d", rng.IntN(4)), fmt.Sprintf("m%d", rng.IntN(2)), rng.Int64N(1000), rng.Float64())
				u.TS = start.UnixMilli() + rng.Int64N(span.Milliseconds())
				u.DedupeKey = fmt.Sprint(len(all), rng.Int64())
				// Reasoning tokens and server tools: a recut dropped them.
				u.Reasoning, u.Cost.Tools = rng.Int64N(50), float64(rng.IntN(3))*0.01
			}
			b.Records = append(b.Records, u)
			all = append(all, u)
		}
		if _, err := db.Apply(&b); err != nil {
			t.Fatal(err)
		}
	}
	check := func(stage string, pruneBefore int64) {
		t.Helper()
		for _, zone := range []string{"America/New_York", "Asia/Kolkata"} {
			loc, _ := time.LoadLocation(zone)
			var kept []storage.Usage
			for _, u := range all {
				if u.TS >= pruneBefore {
					kept = append(kept, u)
				}
			}
			want := tallyOf(t, loc, kept...)
			for _, c := range []struct{ kind, since, until string }{
				{"daily", "2026-03-05", "2026-03-12"}, {"user", "2026-03-09", ""}, // a part first: the rest is cut later
				{"daily", "", ""}, {"weekly", "", ""}, {"agent", "", ""}, {"user", "", ""}, {"model", "", ""},
			} {
				q := Query{Kind: c.kind, Since: MinDay, Until: MaxDay, TZ: zone}
				if c.since != "" {
					q.Since, _ = storage.ParseDay(c.since)
				}
				if c.until != "" {
					q.Until, _ = storage.ParseDay(c.until)
				}
				kind := c.kind + " " + c.since + ".." + c.until
				got, err := reader.Report(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				exp := build(t, want, c.kind, c.since, c.until)
				gj, _ := json.Marshal(got.Rows)
				wj, _ := json.Marshal(exp.Rows)
				if string(gj) != string(wj) || got.Totals != exp.Totals {
					t.Errorf("%s, %s %s:\n got %s\nwant %s", stage, zone, kind, gj, wj)
				}
			}
		}
	}
	add(400, 20*24*time.Hour, false)
	check("first cut", math.MinInt64)
	add(50, 20*24*time.Hour, false)
	add(30, 0, true)
	check("after new and replaced records", math.MinInt64)
	add(5, 40*24*time.Hour, false) // days never seen before
	check("after records on new days", math.MinInt64)
	cut := start.Add(5 * 24 * time.Hour).UnixMilli()
	if _, err := db.PruneLedger(cut); err != nil {
		t.Fatal(err)
	}
	check("after retention pruned the ledger", cut)
}
