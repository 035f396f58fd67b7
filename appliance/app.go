package appliance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
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
	alerts  *alerts.Engine
	audit   *auditWorker
	metrics *metrics.Set
	pricing string // the pricer's fingerprint (Status)
	// Now is the clock; tests replace it.
	Now func() time.Time

	mu           sync.Mutex
	instanceType string
	addr         net.Addr // where the HTTP server listens, once Run has started it
	ready        chan struct{}
}

// New opens the database and builds the workers. It starts nothing.
func New(cfg Config, log *slog.Logger) (*App, error) {
	loc, err := cfg.Location()
	if err != nil {
		return nil, err
	}
	db, err := storage.Open(cfg.DBPath(), storage.Options{Location: loc})
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, db: db, Now: time.Now, instanceType: cfg.InstanceType, ready: make(chan struct{})}
	ic, err := ingestConfig(cfg, log, false)
	if err != nil {
		db.Close()
		return nil, err
	}
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
// an error.
func (a *App) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		close(a.ready)
		return fmt.Errorf("listen on %s: %w", a.cfg.Listen, err)
	}
	a.mu.Lock()
	a.addr = ln.Addr()
	a.mu.Unlock()
	close(a.ready)
	a.log.Info("fleetmeter started", "version", Version, "data_dir", a.cfg.DataDir, "tz", a.cfg.TZ, "listen", ln.Addr().String())
	localToken, err := writeLocalToken(a.cfg.DataDir)
	if err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(localTokenPath(a.cfg.DataDir))
	reader := rollup.NewReader(a.db, rollup.ReaderConfig{Host: a.db, Now: func() time.Time { return a.Now() }, InstanceType: a.currentInstanceType})
	handler := ui.NewHandler(ui.Deps{
		Reports:    reader,
		Status:     appStatus{a},
		Metrics:    a.writeMetrics,
		Backup:     a.db.WriteTo,
		Sync:       a.syncAPI,
		Alerts:     alertsAPI{a},
		Audit:      a.audit.api,
		LocalToken: localToken,
		Token:      a.cfg.AuthToken,
		Listen:     a.cfg.Listen,
		Log:        a.log.With("component", "ui"),
	})
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ui.Serve(ctx, ln, handler, a.log.With("component", "ui")) })
	g.Go(func() error { return a.ingest.Run(ctx, a.cfg.PollInterval) })
	g.Go(func() error { return a.sampler.Run(ctx, a.cfg.SampleInterval) })
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

// localTokenPath is where the daemon leaves the token that lets local
// commands (`fleetmeter backup`) use the privileged parts of its API.
func localTokenPath(dataDir string) string { return filepath.Join(dataDir, "daemon.token") }

// writeLocalToken mints a token and writes it readable by this user only.
func writeLocalToken(dataDir string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b[:])
	path := localTokenPath(dataDir)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return token, nil
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

// maintain applies retention once at start and then daily.
func (a *App) maintain(ctx context.Context) error {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		if err := a.retention(); err != nil {
			a.log.Error("retention failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (a *App) retention() error {
	now := a.Now()
	// Whole 24-hour days, as the ingester's horizon counts them: a call
	// pruned here is always too old to be ingested again.
	days := func(n int) int64 { return now.Add(-time.Duration(n) * 24 * time.Hour).UnixMilli() }
	r := a.cfg.Retention
	var errs []error
	for _, p := range []struct {
		what  string
		days  int
		prune func(int64) (int, error)
	}{
		{"ledger", r.LedgerDays, a.db.PruneLedger},
		{"host samples", r.HostRawDays, a.db.PruneHostSamples},
		{"5-minute host rollups", r.Host5mDays, a.db.PruneHostRollups5m},
	} {
		n, err := p.prune(days(p.days))
		if err != nil {
			errs = append(errs, fmt.Errorf("prune %s: %w", p.what, err))
			continue
		}
		if n > 0 {
			a.log.Info("retention", "pruned", p.what, "rows", n, "older_than_days", p.days)
		}
	}
	return errors.Join(errs...)
}
