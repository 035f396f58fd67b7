package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fleetmeter/fleetmeter/alerts"
	"github.com/fleetmeter/fleetmeter/host"
	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/ingest/pricing"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	upstream "github.com/fleetmeter/fleetmeter/sync"
	"github.com/fleetmeter/fleetmeter/ui"
	"golang.org/x/sync/errgroup"
)

// App is the daemon: the database and the workers around it. New opens,
// Run works until its context ends, Close releases.
type App struct {
	cfg     Config
	log     *slog.Logger
	db      *storage.DB
	ingest  *ingest.Ingester
	sampler *host.Sampler
	syncer  *upstream.Worker // nil when no upstream is configured
	offSync offSyncCache     // the status while syncer is nil
	alerts  *alerts.Engine
	audit   *auditWorker
	metrics *metrics.Set
	pricing string // the pricer's fingerprint (Status)
	// Now is the clock; tests replace it.
	Now func() time.Time

	// LoginOut, when set, is where Run prints a one-time browser login
	// URL (serve sets it when its stderr is a terminal: never into a log).
	LoginOut io.Writer

	logins *ui.Logins // nil: browser login opted out
	stats  statsCache
	demo   bool // serve --demo: generated data, synthetic host (demo.go)
	usage  usageCounters

	mu           sync.Mutex
	instanceType string
	addr         net.Addr // where the HTTP server listens, once Run has started it
	ready        chan struct{}
	retentionErr error // the last retention run's failure
}

// New opens the database and builds the workers. It starts nothing.
func New(cfg Config, log *slog.Logger) (*App, error) {
	loc, err := cfg.Location()
	if err != nil {
		return nil, err
	}
	db, err := openDB(cfg, loc, true)
	if err != nil {
		return nil, err
	}
	if from, took := db.ZoneRecut(); from != "" {
		log.Info("rollups recut for a zone change", "from", from, "to", loc.String(), "took", took.Round(time.Millisecond))
	}
	a := &App{cfg: cfg, log: log, db: db, Now: time.Now, instanceType: cfg.InstanceType, ready: make(chan struct{})}
	if cfg.BrowserLogin {
		a.logins = ui.NewLogins(func() time.Time { return a.Now() })
	}
	ic, err := ingestConfig(cfg, log, false)
	if err != nil {
		db.Close()
		return nil, err
	}
	// A poll reads at most this much of one file before it looks at the
	// others again: a multi-gigabyte transcript, or a line that never ends,
	// then delays the rest of the fleet by a fraction of a second per step,
	// not by the whole file.
	ic.FileBudget = 32 << 20
	pricer := ic.Pricer.(*pricing.Pricer)
	a.pricing = pricer.Fingerprint()
	if _, err := priceLedger(context.Background(), db, pricer, a.Now(), log.With("component", "pricing")); err != nil {
		db.Close()
		return nil, err
	}
	a.ingest = ingest.New(ic, capLedger(db, cfg))
	a.audit = newAuditWorker(cfg, os.Getenv, log.With("component", "audit"))
	a.sampler, err = host.NewSampler(context.Background(), host.SamplerConfig{
		DataDir: cfg.DataDir,
		Store:   db,
		ActiveSessions: func(now time.Time) (int, map[string]int, error) {
			return db.ActiveSessions(now.UnixMilli(), host.SessionWindow)
		},
		Logger: log.With("component", "host"),
		Now:    func() time.Time { return a.Now() },
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("host sampler: %w", err)
	}
	a.syncer = newSyncWorker(cfg, db, log, a.currentInstanceType)
	if a.alerts, err = newAlerts(a); err != nil {
		db.Close()
		return nil, fmt.Errorf("alerts: %w", err)
	}
	a.metrics = newMetrics(a)
	return a, nil
}

// ingestConfig maps the settings onto the ingester's, with the pricer
// (embedded table plus the user's overrides).
func ingestConfig(cfg Config, log *slog.Logger, final bool) (ingest.Config, error) {
	ps, err := newPricer(cfg)
	if err != nil {
		return ingest.Config{}, err
	}
	explicit := hasSourceDirs(cfg)
	return ingest.Config{
		OpenClawDirs: cfg.OpenClawDirs,
		ClaudeDirs:   cfg.ClaudeDirs,
		CodexDirs:    cfg.CodexDirs,
		Discover:     !cfg.NoDiscover && !explicit,
		Final:        final,
		BatchBytes:   cfg.IngestBatchBytes,
		Pricer:       ps.pricer,
		Logger:       log.With("component", "ingest"),
	}, nil
}

// Close closes the database.
func (a *App) Close() error {
	metrics.UnregisterSet(a.metrics, true)
	if a.syncer != nil {
		a.syncer.Close()
	}
	return a.db.Close()
}

// Addr is the HTTP server's address; it blocks until Run has bound it.
func (a *App) Addr() net.Addr {
	<-a.ready
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr
}

// Run runs every worker until ctx ends, then returns nil: shutdown is not
// an error. It serves the API on TCP and on the unix socket the CLI uses.
func (a *App) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		close(a.ready)
		return fmt.Errorf("listen on %s: %w", a.cfg.Listen, err)
	}
	sock, err := listenSocket(a.cfg.SocketPath())
	if err != nil {
		ln.Close()
		close(a.ready)
		return err
	}
	a.mu.Lock()
	a.addr = ln.Addr()
	a.mu.Unlock()
	if err := writeDaemonFile(a.cfg, ln.Addr().String()); err != nil {
		a.log.Warn("cannot say where the socket is in the data dir: a CLI given only --data-dir may not find this daemon", "err", err)
	}
	defer os.Remove(filepath.Join(a.cfg.DataDir, daemonFile))
	close(a.ready)
	a.log.Info("fleetmeter started", "version", version(), "data_dir", a.cfg.DataDir, "tz", a.cfg.TZ, "socket", a.cfg.SocketPath(), "listen", ln.Addr().String())
	for _, p := range a.problems() {
		a.log.Warn("degraded", "reason", p)
	}
	for _, n := range undiscovered(a.cfg, os.Getenv, nil) {
		a.log.Warn("not discovered: "+n.String(), "fix", n.Fix())
	}
	go a.stats.get(a.db) // the first status poll need not wait for the first count
	uiLog := a.log.With("component", "ui")
	reader := rollup.NewReader(a.db, rollup.ReaderConfig{
		Host: a.db, Now: func() time.Time { return a.Now() }, InstanceType: a.currentInstanceType,
		MaxHeavy: max(2, runtime.GOMAXPROCS(0)), BusyWait: 5 * time.Second, MaxStale: 5 * time.Second,
		Teams: teamsOf(a.cfg.Agents),
	})
	handler := ui.NewHandler(ui.Deps{
		Reports:   reader,
		Status:    appStatus{a},
		Metrics:   a.exposeMetrics,
		Backup:    func() (string, error) { return a.db.BackupTemp(a.cfg.DataDir) },
		Sync:      a.syncAPI,
		Alerts:    alertsAPI{a},
		Audit:     a.audit.api,
		Dashboard: a.newDashboard(reader),
		Sources:   a.uiSources,
		Demo:      a.demo,
		Observe:   a.observeRequest,
		Token:     a.cfg.AuthToken,
		Logins:    a.logins,
		LoginURL:  a.loginURL,
		Listen:    a.cfg.Listen,
		Log:       uiLog,
	})
	switch {
	case a.logins == nil:
		a.log.Info("browser login is off (browser_login = false): every local account may read the UI")
	case a.LoginOut != nil:
		if u, err := a.loginURL(); err == nil {
			fmt.Fprintf(a.LoginOut, "fleetmeter: open %s to log in (valid once, for an hour; `fleetmeter login` prints another)\n", u)
		}
	default:
		a.log.Info("browser login: run `fleetmeter login` for a one-time login URL")
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ui.ServeTCP(ctx, ln, handler, uiLog) })
	g.Go(func() error { return ui.ServeSocket(ctx, sock, handler, uiLog) })
	g.Go(func() error { return a.ingest.Run(ctx, a.cfg.PollInterval) })
	if !a.demo {
		g.Go(func() error { return a.sampler.Run(ctx, a.cfg.SampleInterval) })
	}
	g.Go(func() error { return a.maintain(ctx) })
	g.Go(func() error { return a.alerts.Run(ctx, func() time.Time { return a.Now() }) })
	g.Go(func() error { a.resolveInstanceType(ctx); return nil })
	g.Go(func() error { return a.audit.Run(ctx) })
	if a.syncer != nil {
		g.Go(func() error { return a.syncer.Run(ctx) })
	}
	err = g.Wait()
	a.log.Info("fleetmeter stopped")
	return err
}

// loginURL mints a one-time browser login URL on the TCP address.
func (a *App) loginURL() (string, error) {
	if a.logins == nil {
		return "", fmt.Errorf("%w: browser login is off (browser_login = false)", ui.ErrBadRequest)
	}
	host, port, err := net.SplitHostPort(a.Addr().String())
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/login?token=" + a.logins.NewToken(), nil
}

// resolveInstanceType asks EC2 instance metadata, only when enabled.
func (a *App) resolveInstanceType(ctx context.Context) {
	typ, src, err := host.ResolveInstanceType(ctx, a.cfg.InstanceType, host.IMDSConfig{Enabled: a.cfg.EC2Metadata, Endpoint: a.cfg.IMDSEndpoint})
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("instance type unknown", "err", err)
		}
		return
	}
	if typ != "" {
		a.log.Info("instance type", "type", typ, "from", src)
	}
	a.mu.Lock()
	a.instanceType = typ
	a.mu.Unlock()
}

func (a *App) currentInstanceType() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.instanceType
}

// maintain applies retention a while after start (a daemon restarted in a
// loop never prunes) and then daily, and every minute lets go of the
// database pages its reads mapped.
func (a *App) maintain(ctx context.Context) error {
	first := time.NewTimer(retentionDelay)
	defer first.Stop()
	daily := time.NewTicker(24 * time.Hour)
	defer daily.Stop()
	release := time.NewTicker(time.Minute)
	defer release.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-release.C:
			if err := a.db.ReleaseMemory(); err != nil {
				a.log.Warn("release mapped pages", "err", err)
			}
			continue
		case <-first.C:
		case <-daily.C:
		}
		err := a.retention()
		if err != nil {
			a.log.Error("retention failed", "err", err)
		}
		a.mu.Lock()
		a.retentionErr = err
		a.mu.Unlock()
	}
}

// retentionDelay is how long after start retention first runs.
const retentionDelay = 10 * time.Minute

// retentionStep bounds how far past the oldest data one retention run
// prunes: a clock that jumped ahead takes a week a day, not the history.
const retentionStep = 7 * 24 * time.Hour

// horizon is the instant data older than keep is pruned before: now −
// keep, but never later than newest − keep (a clock that disagrees with the
// newest data prunes nothing that data's age would keep) nor than oldest +
// retentionStep. held says a clamp kept back more than a day (the newest
// data is always a little older than now: that is no news).
func horizon(now time.Time, keep time.Duration, oldest, newest int64) (cut int64, held bool) {
	want := now.Add(-keep).UnixMilli()
	cut = min(want, newest-keep.Milliseconds(), oldest+retentionStep.Milliseconds())
	return cut, want-cut > (24 * time.Hour).Milliseconds()
}

func (a *App) retention() error {
	now := a.Now()
	r := a.cfg.Retention
	// Whole 24-hour days, as the ingester's horizon counts them: a call
	// pruned here is always too old to be ingested again.
	days := func(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }
	oldest, newest, _, hasLedger, err := a.db.LedgerSpan()
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	samples, slots, err := a.db.HostSpans()
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	var errs []error
	for _, p := range []struct {
		what  string
		days  int
		span  storage.Span
		prune func(int64) (int, error)
	}{
		{"ledger", r.LedgerDays, storage.Span{Oldest: oldest, Newest: newest, OK: hasLedger}, a.db.PruneLedger},
		{"host samples", r.HostRawDays, samples, a.db.PruneHostSamples},
		{"5-minute host rollups", r.Host5mDays, slots, a.db.PruneHostRollups5m},
	} {
		if !p.span.OK {
			continue
		}
		cut, held := horizon(now, days(p.days), p.span.Oldest, p.span.Newest)
		if held {
			a.log.Warn("retention held back: the clock is far past the newest data, or a step would prune more than a week",
				"what", p.what, "clock", now.UTC().Format(time.RFC3339), "newest", time.UnixMilli(p.span.Newest).UTC().Format(time.RFC3339),
				"pruning_before", time.UnixMilli(cut).UTC().Format(time.RFC3339))
		}
		n, err := p.prune(cut)
		if err != nil {
			errs = append(errs, fmt.Errorf("prune %s: %w", p.what, err))
			continue
		}
		if n > 0 {
			a.log.Info("retention", "pruned", p.what, "rows", n, "older_than_days", p.days)
		}
	}
	if err := a.db.ReleaseMemory(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
