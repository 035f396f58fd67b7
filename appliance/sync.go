package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	upstream "github.com/fleetmeter/fleetmeter/sync"
)

// Upstream sync wiring: the config keys, `fleetmeter migrate`, `fleetmeter
// sync [--once|status]`, the daemon's worker and its status and metrics.

// Agent is one [[agents]] entry of the config: the agent registry, who an
// agent belongs to. Upstream's fleet_agents table holds it.
type Agent struct {
	ID    string `toml:"id" json:"id"` // the agent as reports name it (OpenClaw agent dir, Claude Code project)
	Name  string `toml:"name" json:"name,omitempty"`
	Team  string `toml:"team" json:"team,omitempty"`
	Owner string `toml:"owner" json:"owner,omitempty"`
}

// validateSync checks the sync settings. The DSN itself is checked by the
// worker: a bad one is reported in the sync status while ingest goes on.
func (c Config) validateSync() []error {
	var errs []error
	if c.SyncInterval < time.Second {
		errs = append(errs, fmt.Errorf("sync_interval %s is below 1s", c.SyncInterval))
	}
	if c.SupabaseDSN == maskedSecret {
		errs = append(errs, errors.New("supabase_dsn is the masked placeholder from `fleetmeter config`: put the real DSN there"))
	}
	seen := map[string]bool{}
	for i, a := range c.Agents {
		switch {
		case a.ID == "":
			errs = append(errs, fmt.Errorf("agents[%d]: id is empty", i))
		case len(a.ID) > storage.MaxNameBytes:
			errs = append(errs, fmt.Errorf("agents[%d]: id is longer than %d bytes", i, storage.MaxNameBytes))
		case seen[a.ID]:
			errs = append(errs, fmt.Errorf("agents[%d]: id %q is listed twice", i, a.ID))
		}
		seen[a.ID] = true
	}
	return errs
}

func (c Config) agentInfos() []storage.AgentInfo {
	out := make([]storage.AgentInfo, len(c.Agents))
	for i, a := range c.Agents {
		out[i] = storage.AgentInfo{ID: a.ID, Name: a.Name, Team: a.Team, Owner: a.Owner}
	}
	return out
}

// newSyncWorker builds the upstream worker, or nil when no DSN is set.
func newSyncWorker(cfg Config, db *storage.DB, log *slog.Logger, instanceType func() string) *upstream.Worker {
	if cfg.SupabaseDSN == "" {
		return nil
	}
	hostname, _ := os.Hostname()
	roots := cfg.OpenClawDirs
	if len(roots) == 0 && !cfg.NoDiscover {
		roots = ingest.OpenClawRoots(nil, os.Getenv, ingest.Homes())
	}
	return upstream.New(upstream.Config{
		DSN:             cfg.SupabaseDSN,
		Interval:        cfg.SyncInterval,
		Agents:          cfg.agentInfos(),
		Hostname:        hostname,
		Version:         version(),
		InstanceType:    instanceType,
		OpenClawVersion: func() string { return openClawVersion(roots) },
		Logger:          log.With("component", "sync"),
	}, db)
}

// openClawVersion is the newest OpenClaw version that touched one of the
// state dirs (openclaw.json's meta.lastTouchedVersion), or "". Untrusted
// text: only digits, letters, dots and dashes are kept.
func openClawVersion(roots []string) string {
	best := ""
	for _, root := range roots {
		b, err := os.ReadFile(filepath.Join(root, "openclaw.json"))
		if err != nil || len(b) > 4<<20 {
			continue
		}
		var f struct {
			Meta struct {
				LastTouchedVersion string `json:"lastTouchedVersion"`
			} `json:"meta"`
		}
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		v := strings.Map(func(r rune) rune {
			if r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
				return r
			}
			return -1
		}, f.Meta.LastTouchedVersion)
		if len(v) > 64 {
			v = v[:64]
		}
		if newerVersion(v, best) {
			best = v
		}
	}
	return best
}

// newerVersion compares dotted versions (2026.10.2 > 2026.9.30) part by part.
func newerVersion(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(strings.SplitN(pa[i], "-", 2)[0])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(strings.SplitN(pb[i], "-", 2)[0])
		}
		if x != y {
			return x > y
		}
	}
	return false
}

// syncReport is /api/sync: the status and the quarantined rows.
type syncReport struct {
	upstream.Status
	Quarantine []storage.QuarantineEntry `json:"quarantine"`
}

func (a *App) syncStatus() upstream.Status {
	if a.syncer == nil {
		return a.offSync.get(func() upstream.Status { return upstream.OffStatus(a.db, a.Now()) })
	}
	return a.syncer.Status()
}

// offSyncCache keeps the status of sync while it is off. Its pending rows
// are counted by reading the outbox's page headers, and every Overview poll
// and health check asks (on a 5 M-call fleet, counting at each poll
// through bbolt's map left 300 MB of the outbox resident and took 0.5 % of
// a core): a count is kept for at least offSyncTTL and at least 200 times
// what it took, so counting takes at most 0.5 % of a core.
type offSyncCache struct {
	mu   sync.Mutex
	at   time.Time
	took time.Duration
	st   upstream.Status
}

const offSyncTTL = 30 * time.Second

func (c *offSyncCache) get(read func() upstream.Status) upstream.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < max(offSyncTTL, 200*c.took) {
		return c.st
	}
	start := time.Now()
	c.st = read()
	c.at, c.took = time.Now(), time.Since(start)
	return c.st
}

// syncAPI answers /api/sync.
func (a *App) syncAPI(ctx context.Context) (any, error) {
	q, err := a.db.Quarantined()
	if err != nil {
		return nil, err
	}
	if q == nil {
		q = []storage.QuarantineEntry{} // [] rather than null for clients
	}
	return syncReport{Status: a.syncStatus(), Quarantine: q}, nil
}

// writeSyncMetrics writes the sync gauges from one status read (labels
// come from a closed set, never from error text).
func (a *App) writeSyncMetrics(w io.Writer) {
	st := a.syncStatus()
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixMilli()) / 1e3
	}
	for _, g := range []struct {
		name string
		v    float64
	}{
		{"fleetmeter_sync_enabled", b2f(st.Enabled)},
		{"fleetmeter_sync_pending_rows", float64(st.PendingRows)},
		{"fleetmeter_sync_quarantined_rows", float64(st.QuarantinedRows)},
		{"fleetmeter_sync_lag_seconds", st.LagSeconds},
		{"fleetmeter_sync_last_success_timestamp_seconds", unix(st.LastSuccess)},
		{"fleetmeter_sync_consecutive_failures", float64(st.ConsecutiveFailures)},
		{"fleetmeter_sync_rows_sent_total", float64(st.RowsSent)},
		{"fleetmeter_sync_bytes_sent_total", float64(st.BytesSent)},
		{"fleetmeter_sync_failing", b2f(st.ConsecutiveFailures > 0 || st.State == upstream.StateConfig)},
	} {
		metrics.WriteGaugeFloat64(w, g.name, g.v)
	}
	for _, class := range upstream.Classes() {
		metrics.WriteGaugeFloat64(w, fmt.Sprintf(`fleetmeter_sync_last_error{class=%q}`, class), b2f(st.ErrorClass == class && st.LastError != ""))
	}
}

// exitError carries an exit code other than 1 (`sync --once` says with 3
// that rows are left).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func runMigrate(ctx context.Context, env *cliEnv, args []string) error {
	var dsn string
	_, rest, err := parseConfig(env, "migrate", args, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&dsn, "dsn", "", "an admin DSN of the upstream project (or FLEETMETER_MIGRATE_DSN / FLEETMETER_MIGRATE_DSN_FILE, which keep it out of `ps`)")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	if dsn == "" {
		dsn = env.getenv("FLEETMETER_MIGRATE_DSN")
	}
	if path := env.getenv("FLEETMETER_MIGRATE_DSN_FILE"); dsn == "" && path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("FLEETMETER_MIGRATE_DSN_FILE: %w", err)
		}
		dsn = strings.TrimSpace(string(b))
	}
	if dsn == "" {
		return usageErr("want --dsn ADMIN_DSN (or FLEETMETER_MIGRATE_DSN[_FILE]): the project's admin connection; run once per project, not on every host")
	}
	applied, version, err := upstream.Migrate(ctx, dsn)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(env.stdout, "upstream schema already at version %d\n", version)
		return nil
	}
	fmt.Fprintf(env.stdout, "applied migrations %v: upstream schema at version %d\n", applied, version)
	return nil
}

func runSync(ctx context.Context, env *cliEnv, args []string) error {
	if sub, rest := splitSub(args, "status"); sub != "" {
		return runSyncStatus(ctx, env, rest)
	}
	var once, retry bool
	cfg, rest, err := parseConfig(env, "sync", args, flagsData, func(fs *flag.FlagSet) {
		fs.BoolVar(&once, "once", false, "one round, then exit: 0 when nothing is left, 3 when rows are left (pending or quarantined)")
		fs.BoolVar(&retry, "retry-quarantined", false, "put quarantined rows back in the outbox first (after fixing their cause upstream)")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q (want `fleetmeter sync [--once]` or `fleetmeter sync status`)", rest[0])
	}
	if cfg.SupabaseDSN == "" {
		return errors.New("no upstream configured: set supabase_dsn in the config file, FLEETMETER_SUPABASE_DSN or FLEETMETER_SUPABASE_DSN_FILE")
	}
	db, err := openWritable(cfg)
	if errors.Is(err, storage.ErrLocked) {
		return fmt.Errorf("%w: the daemon syncs by itself; `fleetmeter sync status` shows how it does", storage.ErrLocked)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	if retry {
		n, err := db.RequeueQuarantined()
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "requeued %d quarantined rows\n", n)
	}
	w := newSyncWorker(cfg, db, newLogger(cfg, env.stderr), func() string { return cfg.InstanceType })
	defer w.Close()
	if !once {
		return w.Run(ctx)
	}
	res, err := w.Step(ctx, time.Now())
	if err != nil {
		return err
	}
	st := w.Status()
	fmt.Fprintf(env.stdout, "sent %d rows in %d batches (%.1f kB); %d quarantined this round; %d pending, %d quarantined in all\n",
		res.Sent, res.Batches, float64(res.Bytes)/1e3, res.Quarantined, st.PendingRows, st.QuarantinedRows)
	if st.PendingRows > 0 || st.QuarantinedRows > 0 {
		return &exitError{code: 3, msg: fmt.Sprintf("rows are left: %d pending, %d quarantined (see `fleetmeter sync status`)", st.PendingRows, st.QuarantinedRows)}
	}
	return nil
}

func runSyncStatus(ctx context.Context, env *cliEnv, args []string) error {
	var asJSON bool
	cfg, rest, err := parseConfig(env, "sync status", args, flagsData, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	var rep syncReport
	db, daemon, err := openForReading(cfg)
	if err != nil {
		return err
	}
	if daemon {
		body, err := daemonGet(ctx, cfg, "/api/sync", nil)
		if err != nil {
			return fmt.Errorf("%w: the database is held by a daemon that did not answer (%v)", storage.ErrLocked, err)
		}
		if err := json.Unmarshal(body, &rep); err != nil {
			return fmt.Errorf("decode sync status: %w", err)
		}
	} else {
		defer db.Close()
		now := time.Now()
		rep.Status = upstream.ReadStatus(db, now, now)
		if cfg.SupabaseDSN == "" {
			rep.Status = upstream.OffStatus(db, now)
		} else if d, err := upstream.ParseDSN(cfg.SupabaseDSN, true); err == nil {
			rep.Target = d.String()
		}
		if rep.Quarantine, err = db.Quarantined(); err != nil {
			return err
		}
		if rep.Quarantine == nil {
			rep.Quarantine = []storage.QuarantineEntry{} // [] as /api/sync says
		}
	}
	if asJSON {
		return printJSON(env, rep)
	}
	writeSyncStatus(env.stdout, rep, time.Now())
	return nil
}

// writeSyncStatus prints the status for people. With sync off it says so
// and what waits to be sent once it is on, and nothing about an upstream
// it has no word from (no schema, no attempts).
func writeSyncStatus(w io.Writer, rep syncReport, now time.Time) {
	when := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), rollup.Ago(now.Sub(t)))
	}
	if !rep.Enabled {
		fmt.Fprintln(w, "sync:            off: no upstream configured (supabase_dsn, FLEETMETER_SUPABASE_DSN or FLEETMETER_SUPABASE_DSN_FILE; see the README, Upstream sync)")
		fmt.Fprintf(w, "waiting:         %d rows, sent once sync is on\n", rep.PendingRows)
		if !rep.LastSuccess.IsZero() {
			fmt.Fprintf(w, "last success:    %s, before sync was turned off\n", when(rep.LastSuccess))
		}
	} else {
		fmt.Fprintf(w, "sync:            %s\n", rep.State)
		if rep.Target != "" {
			fmt.Fprintf(w, "upstream:        %s\n", rollup.Clean(rep.Target))
		}
		fmt.Fprintf(w, "last success:    %s\n", when(rep.LastSuccess))
		fmt.Fprintf(w, "last attempt:    %s\n", when(rep.LastAttempt))
		if !rep.NextAttempt.IsZero() {
			fmt.Fprintf(w, "next attempt:    %s\n", rep.NextAttempt.Local().Format(time.DateTime))
		}
		fmt.Fprintf(w, "pending rows:    %d (lag %s)\n", rep.PendingRows, rollup.Ago(time.Duration(rep.LagSeconds*float64(time.Second))))
		if rep.UpstreamSchema > 0 { // known to a daemon that has reached upstream
			fmt.Fprintf(w, "upstream schema: %d (this fleetmeter writes %d)\n", rep.UpstreamSchema, rep.KnownSchema)
		}
	}
	if rep.QuarantinedRows > 0 || rep.Enabled {
		fmt.Fprintf(w, "quarantined:     %d\n", rep.QuarantinedRows)
	}
	if rep.RowsSent > 0 || rep.Enabled {
		fmt.Fprintf(w, "sent in all:     %d rows, %.1f MB\n", rep.RowsSent, float64(rep.BytesSent)/1e6)
	}
	if rep.Backfill != nil {
		fmt.Fprintf(w, "backfill:        %d of %d entries\n", rep.Backfill.Sent, rep.Backfill.Of)
	}
	if rep.LastError != "" {
		fmt.Fprintf(w, "last error:      [%s, %d in a row] %s\n", rep.ErrorClass, rep.ConsecutiveFailures, rollup.Clean(rep.LastError))
	}
	for _, q := range rep.Quarantine {
		fmt.Fprintf(w, "  quarantined %s: %s (%s)\n", rollup.Clean(q.Row), rollup.Clean(q.Error), q.At.Local().Format(time.DateTime))
	}
}
