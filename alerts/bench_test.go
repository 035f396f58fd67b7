package alerts

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// benchEnd is "now" in the benchmarks.
var benchEnd = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// benchFleet is 90 days of a 50-agent fleet (200 users, 10 models, 400k
// calls, a tenth of one agent's calls through Claude Code) and host samples.
func benchFleet(b *testing.B) *fleet {
	f := newFleet(b, time.UTC)
	rng := rand.New(rand.NewPCG(1, 1))
	end := benchEnd.UnixMilli()
	var batch []storage.Usage
	for i := range 400_000 {
		agent := rng.IntN(50)
		u := storage.Usage{
			TS: end - rng.Int64N(90*86400_000), Source: storage.SourceOpenClaw,
			Agent: fmt.Sprintf("agent-%02d", agent), User: fmt.Sprintf("telegram:%d", agent*4+rng.IntN(4)),
			SessionID: fmt.Sprintf("s-%d-%d", agent, rng.IntN(40)), Provider: "anthropic", Model: fmt.Sprintf("model-%d", rng.IntN(10)),
			Input: rng.Int64N(5000), Output: rng.Int64N(2000), CacheRead: rng.Int64N(50000),
			Cost: storage.Cost{Total: rng.Float64() / 10}, CostSource: storage.CostTranscript, DedupeKey: fmt.Sprint(i),
		}
		if agent == 7 && i%10 == 0 {
			u.Source = storage.SourceClaude
		}
		if i%1000 == 0 {
			u.CostSource, u.Cost = storage.CostUnpriced, storage.Cost{}
		}
		batch = append(batch, u)
		if len(batch) == 20000 {
			f.add(batch...)
			batch = batch[:0]
		}
	}
	f.add(batch...)
	// Host samples: every 5 minutes for two days (the disk trend reads
	// 5-minute rollups), every 15 s in the last hour (what host rules read).
	f.samples(benchEnd.Add(-48*time.Hour), benchEnd.Add(-time.Hour), 5*time.Minute, nil)
	f.samples(benchEnd.Add(-time.Hour), benchEnd, 15*time.Second, nil)
	return f
}

// benchRules are 44 rules of every type; with the projections of 6
// budgets, 50 rules are evaluated.
func benchRules() string {
	var b strings.Builder
	periods := []string{"day", "week", "month", "rolling"}
	scopes := []string{"host", "agent:agent-01", "agent:agent-02", "team:team-0", "team:team-1", "user:telegram:5",
		"model:anthropic/model-3", "provider:anthropic", "agent:agent-07", "team:team-2"}
	for i := range 16 {
		fmt.Fprintf(&b, "[[budgets]]\nname = \"b%d\"\nscope = %q\nperiod = %q\namount_usd = %d\n", i, scopes[i%len(scopes)], periods[i%4], 50+i*10)
		if periods[i%4] == "rolling" {
			b.WriteString("window = \"24h\"\n")
		} else if i < 8 {
			b.WriteString("projection = true\n")
		}
	}
	add := func(name, body string) { fmt.Fprintf(&b, "[[alerts]]\nname = %q\n%s\n", name, body) }
	add("runaway", `type = "runaway"`)
	for i := range 4 {
		add(fmt.Sprint("runaway-team-", i), fmt.Sprintf("type = \"runaway\"\nscope = \"team:team-%d\"\nfactor = %d", i, 3+i))
	}
	for i, usd := range []int{12, 20, 30, 50, 100} { // sessions cost about $10 each here
		add(fmt.Sprint("session-", i), fmt.Sprintf("type = \"session_cost\"\namount_usd = %d", usd))
	}
	for i, s := range []string{"host", "provider:anthropic", "model:anthropic/model-1"} {
		add(fmt.Sprint("unpriced-", i), fmt.Sprintf("type = \"unpriced\"\nscope = %q", s))
	}
	add("quota-tokens", "type = \"quota\"\nlimit_tokens = 5000000")
	add("quota-usd", "type = \"quota\"\nlimit_usd = 20")
	for _, m := range []string{"cpu", "steal", "memory", "swap", "disk", "disk_root", "iowait"} {
		add("host-"+m, fmt.Sprintf("type = \"host\"\nmetric = %q\nthreshold = 90", m))
	}
	add("load", "type = \"host\"\nmetric = \"load\"\nthreshold = 2")
	add("gateway", "type = \"host\"\nmetric = \"gateway_down\"")
	add("disk-full", "type = \"host\"\nmetric = \"disk_full\"\nthreshold = 14")
	add("silent", "type = \"pipeline\"\ncheck = \"source_silent\"")
	add("ingest", "type = \"pipeline\"\ncheck = \"ingest_failing\"")
	add("drift", "type = \"pipeline\"\ncheck = \"format_drift\"")
	return b.String()
}

// benchTeams puts the 50 agents in 5 teams.
func benchTeams() TeamMap {
	m := TeamMap{}
	for i := range 50 {
		m[fmt.Sprintf("agent-%02d", i)] = fmt.Sprint("team-", i%5)
	}
	return m
}

// One evaluation round of 50 rules over the fleet with nothing new since
// the round before (the steady state of a minute-by-minute worker), and
// with one new call (today is read again from the ledger).
func BenchmarkRound(b *testing.B) {
	f := benchFleet(b)
	e := f.engine(benchRules(), nil, func(d *Deps) {
		d.Teams = benchTeams()
		d.Pipeline.IngestError = func() string { return "" }
	})
	if e.Rules() != 50 {
		b.Fatalf("%d rules", e.Rules())
	}
	ctx := context.Background()
	now := benchEnd
	if err := e.Step(ctx, now); err != nil { // the first round builds the spend index
		b.Fatal(err)
	}
	b.Run("steady", func(b *testing.B) {
		for b.Loop() {
			now = now.Add(time.Second)
			if err := e.Step(ctx, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-new-call", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			now = now.Add(time.Second)
			f.add(f.call(now.Add(-time.Second), "agent-03", 0.01))
			b.StartTimer()
			if err := e.Step(ctx, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The baseline, in the same run: the bare reads one round makes, with
	// no rule logic: the month's rollup rows of the three projections, the
	// spend index's check of the last nine days, the last hour of host
	// samples and two daily host rows, the ledger counter, the alert states
	// and the outbox.
	b.Run("baseline-reads", func(b *testing.B) {
		db := f.db
		today := storage.DayNumber(now.UnixMilli(), time.UTC)
		for b.Loop() {
			for _, k := range []byte{storage.DimAgent, storage.DimUser, storage.DimModel} {
				if _, err := db.DimRows(k, today-25, today+1); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := db.DimRows(storage.DimAgent, today-8, today+1); err != nil {
				b.Fatal(err)
			}
			if _, err := db.LedgerSequence(); err != nil {
				b.Fatal(err)
			}
			err := db.HostSamples(now.Add(-time.Hour).UnixMilli(), now.UnixMilli(), func(*storage.HostSample) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
			if _, err := db.HostRollupsDaily(today-1, today); err != nil {
				b.Fatal(err)
			}
			if _, err := db.AlertStates(); err != nil {
				b.Fatal(err)
			}
			if _, err := db.AlertOutbox(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cold", func(b *testing.B) { // a fresh engine: the first round after a start
		for b.Loop() {
			e := f.engine(benchRules(), nil, func(d *Deps) { d.Teams = benchTeams() })
			if err := e.Step(ctx, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
