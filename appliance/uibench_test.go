package appliance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/fleetmeter/fleetmeter/ui"
)

// The dashboard's performance over a generated fleet: FLEETMETER_BENCH_FLEET
// names a data dir written by scripts/genfleet (the figure is 90
// days of 50 agents, 200 users and 10 models, 5 M calls):
//
//	go run ./scripts/genfleet -out /tmp/fleet -calls 5000000
//	FLEETMETER_BENCH_FLEET=/tmp/fleet go test -run '^$' -bench 'DashboardAPI' -count 6 ./appliance/ | benchstat -
//
// Each request is timed; p50 and p95 are reported per endpoint, with
// /healthz (the HTTP path alone) and /api/report/daily (the old daily
// report) as baselines of the same run. A writer commits a host sample
// every second meanwhile, as the daemon does every 15 s: every commit
// makes the read side check what changed, so the figures are not those
// of a cache that never expires.

// benchServer serves the pages and their API over the fleet, as the
// daemon wires them (no ingest or sampler: the fleet's database is read
// as it is, apart from the writer's samples).
func benchServer(b *testing.B) (base string, db *storage.DB, stop func()) {
	b.Helper()
	dir := os.Getenv("FLEETMETER_BENCH_FLEET")
	if dir == "" {
		b.Skip("set FLEETMETER_BENCH_FLEET to a data dir made by scripts/genfleet")
	}
	db, err := storage.Open(filepath.Join(dir, storage.FileName), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	_, newest, _, _, err := db.LedgerSpan()
	if err != nil {
		b.Fatal(err)
	}
	now := func() time.Time { return time.UnixMilli(newest).Add(time.Minute) } // the fleet's own "now"
	reader := rollup.NewReader(db, rollup.ReaderConfig{Host: db, Now: now, MaxHeavy: 2, BusyWait: 5 * time.Second, MaxStale: 5 * time.Second})
	dash := rollup.NewDashboard(db, rollup.DashboardConfig{Now: now, Advice: reader.OwnAdvice, MaxHeavy: 2, BusyWait: 5 * time.Second, MaxStale: 5 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	h := ui.NewHandler(ui.Deps{Reports: reader, Dashboard: dash, Status: benchStatus{}, Metrics: func(io.Writer) {}, Listen: ln.Addr().String(), Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ui.ServeTCP(ctx, ln, h, log) }()
	go func() { // the daemon's commits
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case at := <-t.C:
				db.PutHostSample(storage.HostSample{TS: at.UnixMilli(), CPUPct: 20, CPUCount: 2, MemTotal: 8 << 30, MemUsed: 3 << 30})
			}
		}
	}()
	return "http://" + ln.Addr().String(), db, func() { cancel(); wg.Wait(); db.Close() }
}

type benchStatus struct{}

func (benchStatus) Status(context.Context) (ui.Status, error) { return ui.Status{}, nil }
func (benchStatus) Problems() []string                        { return nil }

// timeRequests GETs url b.N times and reports p50 and p95.
func timeRequests(b *testing.B, client *http.Client, u string) {
	b.Helper()
	fetch := func() {
		resp, err := client.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %s", u, resp.Status)
		}
	}
	fetch() // a first read builds what the index needs: not what a user waits for each time
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		fetch()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.95), "p95-ms")
}

func BenchmarkDashboardAPI(b *testing.B) {
	base, db, stop := benchServer(b)
	defer stop()
	agents, err := db.DimRows(storage.DimAgent, rollup.MinDay, rollup.MaxDay)
	if err != nil || len(agents) == 0 {
		b.Fatalf("no agents in the fleet: %v", err)
	}
	agent := url.QueryEscape(agents[len(agents)-1].Agent)
	client := &http.Client{}
	var session string
	{ // one session of that agent, for the calls endpoint
		resp, err := client.Get(base + "/api/sessions?range=7d&limit=1&agent=" + agent)
		if err != nil {
			b.Fatal(err)
		}
		var sl rollup.SessionList
		if err := jsonDecode(resp.Body, &sl); err != nil || len(sl.Sessions) == 0 {
			b.Fatalf("sessions: %v", err)
		}
		session = "source=" + sl.Sessions[0].Source + "&id=" + url.QueryEscape(sl.Sessions[0].SessionID)
	}
	for _, c := range []struct{ name, path string }{
		{"baseline-healthz", "/healthz"},
		{"baseline-report-daily-30d", "/api/report/daily?since=" + dayAgo(db, 29)},
		{"overview", "/api/overview"},
		{"usage-30d-by-day", "/api/usage?range=30d"},
		{"usage-90d-by-day", "/api/usage?range=90d"},
		{"usage-today-by-hour", "/api/usage?range=today&group_by=hour"},
		{"usage-30d-by-agent", "/api/usage?range=30d&group_by=agent"},
		{"usage-30d-by-user", "/api/usage?range=30d&group_by=user"},
		{"usage-30d-agent-by-model", "/api/usage?range=30d&group_by=model&agent=" + agent},
		{"leaderboard-agents-30d", "/api/leaderboard?by=agent&range=30d"},
		{"leaderboard-users-90d", "/api/leaderboard?by=user&range=90d"},
		{"leaderboard-models-30d", "/api/leaderboard?by=model&range=30d&limit=1000"},
		{"sessions-30d-agent", "/api/sessions?range=30d&limit=25&agent=" + agent},
		{"session-calls", "/api/session?" + session},
		{"host-6h", "/api/host?range=6h"},
		{"host-24h", "/api/host?range=24h"},
		{"host-7d", "/api/host?range=7d"},
		{"host-90d", "/api/host?range=90d"},
		{"agents-30d", "/api/agents?range=30d"},
		{"page-usage-30d", "/usage?range=30d"},
		{"page-overview", "/"},
	} {
		b.Run(c.name, func(b *testing.B) { timeRequests(b, client, base+c.path) })
	}
}

func dayAgo(db *storage.DB, n int) string {
	_, newest, _, _, _ := db.LedgerSpan()
	return storage.DayString(storage.DayNumber(newest, db.Location()) - int32(n))
}

func jsonDecode(r io.ReadCloser, v any) error {
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %.200s", err, b)
	}
	return nil
}
