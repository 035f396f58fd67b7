package rollup

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// A fleet's 90 days in the database: 50 agents, 200 users, 10 models, a
// few hundred thousand calls. Reports read rollup rows, so their cost
// follows the number of rows in the range, not the size of the ledger.
func benchDB(b *testing.B, calls int) *storage.DB {
	b.Helper()
	db, err := storage.Open(filepath.Join(b.TempDir(), "f.db"), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	rng := rand.New(rand.NewPCG(1, 1))
	end := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC).UnixMilli()
	batch := storage.Batch{}
	for i := range calls {
		agent := rng.IntN(50)
		batch.Records = append(batch.Records, storage.Usage{
			TS: end - rng.Int64N(90*86400_000), Source: storage.SourceOpenClaw,
			Agent: fmt.Sprintf("agent-%02d", agent), User: fmt.Sprintf("telegram:%d", agent*4+rng.IntN(4)),
			SessionID: fmt.Sprintf("s-%d-%d", agent, rng.IntN(40)), Provider: "anthropic", Model: fmt.Sprintf("model-%d", rng.IntN(10)),
			Input: rng.Int64N(5000), Output: rng.Int64N(2000), CacheRead: rng.Int64N(50000),
			Cost: storage.Cost{Total: rng.Float64() / 10}, CostSource: storage.CostTranscript, DedupeKey: fmt.Sprint(i),
		})
		if len(batch.Records) == 20000 {
			if _, err := db.Apply(&batch); err != nil {
				b.Fatal(err)
			}
			batch.Records = batch.Records[:0]
		}
	}
	if _, err := db.Apply(&batch); err != nil {
		b.Fatal(err)
	}
	return db
}

func BenchmarkReportFromLedger(b *testing.B) {
	for _, calls := range []int{50_000, 400_000} {
		db := benchDB(b, calls)
		since, _ := storage.ParseDay("2026-08-28")
		for _, kind := range []string{"daily", "agent", "user", "session"} {
			b.Run(fmt.Sprintf("%s/calls=%d", kind, calls), func(b *testing.B) {
				for b.Loop() {
					if _, err := Build(db, Query{Kind: kind, Since: since, Until: MaxDay}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
