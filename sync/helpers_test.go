package sync

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/fleetmeter/fleetmeter/sync/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.CloseShared()
	os.Exit(code)
}

// upstreamEnv is a migrated database of a real PostgreSQL.
type upstreamEnv struct {
	c     *pgtest.Cluster
	name  string
	admin *sql.DB
}

// newUpstream takes a fresh database on the shared cluster, or on c when
// given (tests that stop or kill the server have their own).
func newUpstream(t testing.TB, c *pgtest.Cluster) *upstreamEnv {
	t.Helper()
	if c == nil {
		c = pgtest.Shared(t)
	}
	e := &upstreamEnv{c: c, name: c.NewDatabase(t)}
	if _, _, err := Migrate(context.Background(), c.AdminDSN(e.name)); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	e.admin = c.Open(t, c.AdminDSN(e.name))
	return e
}

func (e *upstreamEnv) dsn() string { return e.c.SyncDSN(e.name) }

func openLocal(t testing.TB, loc *time.Location) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), storage.FileName), storage.Options{Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("local database check: %v", err)
		}
		db.Close()
	})
	return db
}

// fleet makes calls of a fleet: agents with a few users each, models,
// sessions; spread over `days` days ending at end.
type fleet struct {
	rng                    *rand.Rand
	agents, users, models  int
	sessionsPerAgent, seq  int
	host                   string
	end                    time.Time
	days                   int
	unpricedEvery, userPct int
}

func newFleet(seed uint64, host string, end time.Time, days int) *fleet {
	return &fleet{rng: rand.New(rand.NewPCG(seed, seed)), agents: 8, users: 3, models: 4, sessionsPerAgent: 10,
		host: host, end: end, days: days, unpricedEvery: 17, userPct: 80}
}

func (f *fleet) calls(n int) []storage.Usage {
	out := make([]storage.Usage, 0, n)
	for range n {
		f.seq++
		agent := f.rng.IntN(f.agents)
		u := storage.Usage{
			TS:     f.end.Add(-time.Duration(f.rng.Int64N(int64(f.days) * int64(24*time.Hour)))).UnixMilli(),
			Source: storage.SourceOpenClaw, Agent: fmt.Sprintf("agent-%02d", agent),
			SessionID: fmt.Sprintf("s-%d-%d", agent, f.rng.IntN(f.sessionsPerAgent)), Provider: "anthropic",
			Model: fmt.Sprintf("model-%d", f.rng.IntN(f.models)),
			Input: f.rng.Int64N(5000), Output: 1 + f.rng.Int64N(2000), CacheRead: f.rng.Int64N(50000), CacheWrite: f.rng.Int64N(3000),
			Cost:       storage.Cost{Total: float64(f.rng.IntN(1e6)) / 1e7, Input: float64(f.rng.IntN(1e5)) / 1e7},
			CostSource: storage.CostTranscript, DedupeKey: fmt.Sprintf("%s-%d", f.host, f.seq),
		}
		if f.rng.IntN(100) < f.userPct {
			u.User = fmt.Sprintf("telegram:%d", agent*f.users+f.rng.IntN(f.users))
			u.UserLabel = "User " + u.User
			u.Channel = "telegram"
		}
		if f.unpricedEvery > 0 && f.seq%f.unpricedEvery == 0 {
			u.Cost, u.CostSource = storage.Cost{}, storage.CostUnpriced
		}
		out = append(out, u)
	}
	return out
}

// oneCall is a call of agent main in session s-<session> at ts, with its
// dedupe key and input tokens; every such call lands in the same daily row
// per day.
func oneCall(key, session string, ts time.Time, input int64) storage.Usage {
	return storage.Usage{TS: ts.UnixMilli(), Source: storage.SourceOpenClaw, Agent: "main", SessionID: "s-" + session,
		Provider: "anthropic", Model: "m", Input: input, Output: 1, Cost: storage.Cost{Total: 0.25}, CostSource: storage.CostTranscript, DedupeKey: key}
}

func apply(t testing.TB, db *storage.DB, recs ...storage.Usage) {
	t.Helper()
	if _, err := db.Apply(&storage.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects a worker's log for assertions.
type logBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newWorker(t testing.TB, dsn string, db Store, mod func(*Config)) (*Worker, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg := Config{DSN: dsn, Hostname: "host-" + db.InstanceID()[:6], Version: "test",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&cfg)
	}
	w := New(cfg, db)
	t.Cleanup(func() { w.Close() })
	return w, logs
}

// drain steps until nothing is pending (a round passes over the outbox
// once; rows changed behind it wait for the next).
func drain(t testing.TB, w *Worker, now time.Time) Result {
	t.Helper()
	var total Result
	for i := 0; ; i++ {
		res, err := w.Step(context.Background(), now)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		total.Sent += res.Sent
		total.Acked += res.Acked
		total.Bytes += res.Bytes
		total.Batches += res.Batches
		if res.Pending == 0 {
			return total
		}
		if i == 5 {
			t.Fatalf("still %d pending after %d rounds", res.Pending, i+1)
		}
	}
}

// figures are the additive sums of a group, compared exactly: integers, and
// the cost as the float64 both sides show.
type figures struct {
	Messages, Input, Output, CacheRead, CacheWrite, Total, UnpricedMessages, UnpricedTokens int64
	Nanos                                                                                   int64   // cost in nano-dollars: sums of several hosts stay exact
	Cost                                                                                    float64 // cost as shown (one host)
}

func figuresOf(s rollup.Sums) figures {
	return figures{s.Messages, s.InputTokens, s.OutputTokens, s.CacheReadTokens, s.CacheWriteTokens, s.TotalTokens,
		s.UnpricedMessages, s.UnpricedTokens, int64(math.Round(s.CostUSD * 1e9)), s.CostUSD}
}

// decimalNanos reads a numeric(…, 9) as text into nano-dollars, exactly.
func decimalNanos(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	frac = (frac + "000000000")[:9]
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, err
	}
	if strings.HasPrefix(whole, "-") {
		f = -f
	}
	return w*1e9 + f, nil
}

// localReport groups a local report's rows by the key upstream groups on.
func localReport(t testing.TB, dbs []*storage.DB, kind string, since int32) map[string]figures {
	t.Helper()
	out := map[string]figures{}
	add := func(k string, s rollup.Sums) {
		f := out[k]
		g := figuresOf(s)
		f.Messages += g.Messages
		f.Input += g.Input
		f.Output += g.Output
		f.CacheRead += g.CacheRead
		f.CacheWrite += g.CacheWrite
		f.Total += g.Total
		f.UnpricedMessages += g.UnpricedMessages
		f.UnpricedTokens += g.UnpricedTokens
		f.Nanos += g.Nanos
		f.Cost = g.Cost // compared only for one host (exact)
		out[k] = f
	}
	for _, db := range dbs {
		rep, err := rollup.Build(db, rollup.Query{Kind: kind, Since: since, Until: rollup.MaxDay})
		if err != nil {
			t.Fatal(err)
		}
		switch rows := rep.Rows.(type) {
		case []rollup.DailyRow:
			for _, r := range rows {
				add(r.Date, r.Sums)
			}
		case []rollup.AgentRow:
			for _, r := range rows {
				add(r.Source+"/"+r.Agent, r.Sums)
			}
		case []rollup.UserRow:
			for _, r := range rows {
				add(r.User, r.Sums)
			}
		case []rollup.ModelRow:
			for _, r := range rows {
				add(r.Provider+"/"+r.Model, r.Sums)
			}
		case []rollup.WeeklyRow:
			for _, r := range rows {
				add(r.WeekStart, r.Sums)
			}
		default:
			t.Fatalf("report %s: rows %T", kind, rep.Rows)
		}
	}
	return out
}

// upstreamGroups runs a grouping query whose columns are: key, messages,
// input, output, cache read, cache write, total, unpriced messages,
// unpriced tokens, cost (numeric, read as text).
func (e *upstreamEnv) groups(t testing.TB, db *sql.DB, query string, args ...any) map[string]figures {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	out := map[string]figures{}
	for rows.Next() {
		var k, cost string
		var f figures
		if err := rows.Scan(&k, &f.Messages, &f.Input, &f.Output, &f.CacheRead, &f.CacheWrite, &f.Total, &f.UnpricedMessages, &f.UnpricedTokens, &cost); err != nil {
			t.Fatal(err)
		}
		if f.Cost, err = strconv.ParseFloat(cost, 64); err != nil {
			t.Fatal(err)
		}
		if f.Nanos, err = decimalNanos(cost); err != nil {
			t.Fatal(err)
		}
		out[k] = f
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

const sumCols = `sum(messages)::bigint, sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cache_read_tokens)::bigint,
  sum(cache_write_tokens)::bigint, sum(total_tokens)::bigint, sum(unpriced_messages)::bigint, sum(unpriced_tokens)::bigint,
  sum(cost_usd)::text`

// upstreamReport groups token_usage_daily the way a local report kind does.
func (e *upstreamEnv) report(t testing.TB, kind, since string) map[string]figures {
	t.Helper()
	key := map[string]string{
		"daily": "to_char(day, 'YYYY-MM-DD')", "agent": "source || '/' || agent", "user": "user_id",
		"model": "provider || '/' || model",
	}[kind]
	return e.groups(t, e.admin, "select "+key+", "+sumCols+" from public.token_usage_daily where day >= $1::date group by 1", since)
}

// sameFigures compares two groupings; costs are compared exactly when
// exact is set (one host: both sides round the same nano-dollar sum once).
func sameFigures(t testing.TB, what string, got, want map[string]figures, exact bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d groups upstream, %d locally", what, len(got), len(want))
	}
	bad := 0
	for k, w := range want {
		g, ok := got[k]
		if !exact {
			g.Cost, w.Cost = 0, 0
		}
		if !ok || g != w {
			if bad++; bad <= 3 {
				t.Errorf("%s %q: upstream %+v, local %+v", what, k, g, w)
			}
		}
	}
}

// sameAsLocal checks every grouping upstream against the local reports,
// and the sessions.
func sameAsLocal(t *testing.T, up *upstreamEnv, db *storage.DB) {
	t.Helper()
	for _, kind := range []string{"daily", "agent", "user", "model"} {
		sameFigures(t, kind, up.report(t, kind, "1970-01-01"), localReport(t, []*storage.DB{db}, kind, rollup.MinDay), true)
	}
	rep, err := rollup.Build(db, rollup.Query{Kind: "session", Since: rollup.MinDay, Until: rollup.MaxDay})
	if err != nil {
		t.Fatal(err)
	}
	local := map[string]figures{}
	for _, r := range rep.Rows.([]rollup.SessionRow) {
		local[r.SessionID] = figuresOf(r.Sums)
	}
	sameFigures(t, "sessions", up.groups(t, up.admin, "select session_id, "+sumCols+" from public.token_usage group by 1"), local, true)
}
