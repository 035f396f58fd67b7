package sync

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/fleetmeter/fleetmeter/sync/pgtest"
)

// benchFleet is 90 days of a fleet in a local database: 50 agents with 4
// users each (200 users), 10 models, 40 sessions per agent; the shape of
// the rollup benchmarks.
func benchFleet(b *testing.B, calls int) *storage.DB {
	b.Helper()
	db := openLocal(b, time.UTC)
	rng := rand.New(rand.NewPCG(1, 1))
	end := time.Now()
	batch := storage.Batch{}
	for i := range calls {
		agent := rng.IntN(50)
		batch.Records = append(batch.Records, storage.Usage{
			TS: end.Add(-time.Duration(rng.Int64N(int64(90 * 24 * time.Hour)))).UnixMilli(), Source: storage.SourceOpenClaw,
			Agent: fmt.Sprintf("agent-%02d", agent), User: fmt.Sprintf("telegram:%d", agent*4+rng.IntN(4)),
			SessionID: fmt.Sprintf("s-%d-%d", agent, rng.IntN(40)), Provider: "anthropic", Model: fmt.Sprintf("model-%d", rng.IntN(10)),
			Input: rng.Int64N(5000), Output: rng.Int64N(2000), CacheRead: rng.Int64N(50000),
			Cost: storage.Cost{Total: rng.Float64() / 10}, CostSource: storage.CostTranscript, DedupeKey: fmt.Sprint(i),
		})
		if len(batch.Records) == 20000 {
			apply(b, db, batch.Records...)
			batch.Records = batch.Records[:0]
		}
	}
	apply(b, db, batch.Records...)
	for d := range 90 { // a host sample a day
		db.PutHostSample(storage.HostSample{TS: end.Add(-time.Duration(d) * 24 * time.Hour).UnixMilli(), CPUPct: 30, CPUCount: 2, MemTotal: 8 << 30, MemUsed: 3 << 30})
	}
	return db
}

// BenchmarkFirstSync is a host's first sync of 90 days into an empty,
// migrated database (the local PostgreSQL, direct): everything in the
// outbox, in batches of 5,000 entries.
func BenchmarkFirstSync(b *testing.B) {
	for _, calls := range []int{50_000, 400_000} {
		b.Run(fmt.Sprintf("calls=%d", calls), func(b *testing.B) {
			db := benchFleet(b, calls)
			c := pgtest.Shared(b)
			var rows int
			var bytes int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				up := newUpstream(b, c)
				if err := db.RequeueAll(0); err != nil { // the whole history pending again
					b.Fatal(err)
				}
				w, _ := newWorker(b, up.dsn(), db, nil)
				b.StartTimer()
				res, err := w.Step(context.Background(), time.Now())
				if err != nil || res.Pending != 0 {
					b.Fatalf("%+v %v", res, err)
				}
				rows, bytes = res.Sent, res.Bytes
			}
			b.ReportMetric(float64(rows), "rows/op")
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(bytes)/1e6, "MB_sent/op")
		})
	}
}

// BenchmarkBaselineCopy loads the same daily and session rows with COPY
// into the same empty tables in one transaction (no conflict handling, no
// guard): PostgreSQL's fastest way in, the baseline for FirstSync.
func BenchmarkBaselineCopy(b *testing.B) {
	for _, calls := range []int{50_000, 400_000} {
		b.Run(fmt.Sprintf("calls=%d", calls), func(b *testing.B) {
			db := benchFleet(b, calls)
			chs, err := db.PendingChanges(nil, 1<<30)
			if err != nil {
				b.Fatal(err)
			}
			c := pgtest.Shared(b)
			rows := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				up := newUpstream(b, c)
				conn := c.Open(b, c.AdminDSN(up.name))
				b.StartTimer()
				tx, err := conn.Begin()
				if err != nil {
					b.Fatal(err)
				}
				daily, err := tx.Prepare(`copy token_usage_daily (host_id, generation, day, source, agent, user_id, user_label,
				  provider, model, messages, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, total_tokens,
				  cost_usd, input_cost_usd, output_cost_usd, cache_read_cost_usd, cache_write_cost_usd, unpriced_messages,
				  unpriced_tokens, final, rev) from stdin`)
				if err != nil {
					b.Fatal(err)
				}
				rows = 0
				for _, ch := range chs {
					if ch.Table != storage.OutboxDaily {
						continue
					}
					r := ch.Daily
					if _, err := daily.Exec("h", "g", storage.DayString(r.Period), r.Source, r.Agent, r.User, ch.UserLabel, r.Provider, r.Model,
						r.Messages, r.Input, r.Output, r.CacheRead, r.CacheWrite, r.TotalTokens(), storage.USD(r.CostNanos), 0, 0, 0, 0,
						r.UnpricedMessages, r.UnpricedTokens, true, int64(ch.Counter)); err != nil {
						b.Fatal(err)
					}
					rows++
				}
				if _, err := daily.Exec(); err != nil {
					b.Fatal(err)
				}
				daily.Close()
				sessions, err := tx.Prepare(`copy token_usage (host_id, generation, source, session_id, provider, model, session_key,
				  agent, channel, first_activity, last_activity, messages, input_tokens, output_tokens, cache_read_tokens,
				  cache_write_tokens, total_tokens, cost_usd, unpriced_messages, unpriced_tokens, rev) from stdin`)
				if err != nil {
					b.Fatal(err)
				}
				for _, ch := range chs {
					if ch.Table != storage.OutboxSession {
						continue
					}
					s := ch.Session
					for name, t := range s.Models {
						provider, model, _ := strings.Cut(name, "/")
						if _, err := sessions.Exec("h", "g", s.Source, s.SessionID, provider, model, s.SessionKey, s.Agent, s.Channel,
							time.UnixMilli(s.FirstTS), time.UnixMilli(s.LastTS), t.Messages, t.Input, t.Output, t.CacheRead, t.CacheWrite,
							t.TotalTokens(), storage.USD(t.CostNanos), t.UnpricedMessages, t.UnpricedTokens, int64(ch.Counter)); err != nil {
							b.Fatal(err)
						}
						rows++
					}
				}
				if _, err := sessions.Exec(); err != nil {
					b.Fatal(err)
				}
				sessions.Close()
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows), "rows/op")
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkSteadyRound is the round of a host in steady state: a few calls
// since the last round (a few changed rows), a warm connection. It reports
// the round trips (writes to the server) and bytes of a round.
func BenchmarkSteadyRound(b *testing.B) {
	db := benchFleet(b, 50_000)
	up := newUpstream(b, nil)
	w, _ := newWorker(b, up.dsn(), db, nil)
	ctx := context.Background()
	if _, err := w.Step(ctx, time.Now()); err != nil {
		b.Fatal(err)
	}
	f := newFleet(7, "steady", time.Now(), 1)
	var writes, bytes int64
	for b.Loop() {
		b.StopTimer()
		apply(b, db, f.calls(5)...)
		w0, b0 := w.wire.writes.Load(), w.wire.bytes.Load()
		b.StartTimer()
		res, err := w.Step(ctx, time.Now())
		if err != nil || res.Pending != 0 {
			b.Fatalf("%+v %v", res, err)
		}
		writes += w.wire.writes.Load() - w0
		bytes += w.wire.bytes.Load() - b0
	}
	b.ReportMetric(float64(writes)/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes_sent/op")
}
