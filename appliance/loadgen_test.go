package appliance

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// fleetSpec sizes a generated data dir: a fleet's ledger over days up to
// end, and the host history of the same days.
type fleetSpec struct {
	days, records         int
	agents, users, models int
}

// genFleet writes a database into dataDir as a fleet of agents would have
// filled it: records spread over the days, agents with their own users and
// day-long sessions, models with their prices, one host sample every 5
// minutes (the raw ones of the last two weeks kept, as retention would).
// Deterministic for a spec and end.
func genFleet(t testing.TB, dataDir string, spec fleetSpec, end time.Time) {
	t.Helper()
	db, err := storage.Open(filepath.Join(dataDir, storage.FileName), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(uint64(spec.records), uint64(spec.days)))
	span := int64(spec.days) * 86400_000
	endMs := end.UnixMilli()
	batch := storage.Batch{}
	flush := func() {
		if _, err := db.Apply(&batch); err != nil {
			t.Fatal(err)
		}
		batch.Records = batch.Records[:0]
	}
	usersPerAgent := max(spec.users/spec.agents, 1)
	for i := range spec.records {
		ts := endMs - 1 - rng.Int64N(span)
		agent := rng.IntN(spec.agents)
		user := ""
		if rng.IntN(5) > 0 { // a fifth of the calls have no human: cron, heartbeats
			user = fmt.Sprintf("telegram:%d", (agent*usersPerAgent+rng.IntN(usersPerAgent))%spec.users)
		}
		model := rng.IntN(spec.models)
		in, out, cr := rng.Int64N(5000), rng.Int64N(2000), rng.Int64N(50000)
		price := float64(model+1) / 1e6
		batch.Records = append(batch.Records, storage.Usage{
			TS: ts, Source: storage.SourceOpenClaw, Agent: fmt.Sprintf("agent-%02d", agent),
			SessionID: fmt.Sprintf("s-%02d-%d", agent, (endMs-ts)/86400_000), User: user, UserLabel: "User " + user,
			Channel: "telegram", Provider: "anthropic", Model: fmt.Sprintf("model-%d", model),
			Input: in, Output: out, CacheRead: cr,
			Cost:       storage.Cost{Total: price * float64(in+5*out+cr/10), Input: price * float64(in), Output: price * float64(5*out), CacheRead: price * float64(cr/10)},
			CostSource: storage.CostTable, DedupeKey: fmt.Sprintf("gen|%d", i),
		})
		if len(batch.Records) == 20_000 {
			flush()
		}
	}
	flush()
	var samples []storage.HostSample
	for at := end.Add(-time.Duration(spec.days) * 24 * time.Hour); at.Before(end); at = at.Add(5 * time.Minute) {
		cpu := 10 + 50*rng.Float64()
		used := uint64(2<<30) + uint64(rng.IntN(2<<10))<<20
		samples = append(samples, storage.HostSample{
			TS: at.UnixMilli(), CPUPct: cpu, CPUUserPct: cpu * 0.7, CPUSystemPct: cpu * 0.3, CPUStealPct: rng.Float64() * 2,
			CPUCount: 2, MemTotal: 8 << 30, MemUsed: used, MemAvailable: 8<<30 - used, SwapTotal: 1 << 30,
			Load1: cpu / 50, LoadPerCore: cpu / 100, Procs: 180, ActiveSessions: rng.IntN(10),
			DataDisk: storage.DiskStat{Total: 100 << 30, Used: 40 << 30, Free: 60 << 30},
			RootDisk: storage.DiskStat{Total: 30 << 30, Used: 10 << 30, Free: 20 << 30},
		})
		if len(samples) == 10_000 {
			if err := db.PutHostSamples(samples); err != nil {
				t.Fatal(err)
			}
			samples = samples[:0]
		}
	}
	if err := db.PutHostSamples(samples); err != nil {
		t.Fatal(err)
	}
	// Raw samples are kept two weeks; their rollups the whole span.
	if _, err := db.PruneHostSamples(end.Add(-14 * 24 * time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
}
