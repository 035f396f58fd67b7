package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/ingest/pricing"
	"github.com/fleetmeter/fleetmeter/storage"
	"golang.org/x/sync/errgroup"
)

// App is the daemon: the database and the workers around it. New opens,
// Run works until its context ends, Close releases.
type App struct {
	cfg    Config
	log    *slog.Logger
	db     *storage.DB
	ingest *ingest.Ingester
	// Now is the clock; tests replace it.
	Now func() time.Time
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
	a := &App{cfg: cfg, log: log, db: db, Now: time.Now}
	ic, err := ingestConfig(cfg, log, false)
	if err != nil {
		db.Close()
		return nil, err
	}
	a.ingest = ingest.New(ic, db)
	return a, nil
}

// ingestConfig maps the settings onto the ingester's, with the pricer
// (embedded table plus the user's overrides).
func ingestConfig(cfg Config, log *slog.Logger, final bool) (ingest.Config, error) {
	table, err := pricing.LoadTable()
	if err != nil {
		return ingest.Config{}, fmt.Errorf("price table: %w", err)
	}
	var overrides pricing.Overrides
	if cfg.PriceFile != "" {
		if overrides, err = pricing.LoadOverrides(cfg.PriceFile); err != nil {
			return ingest.Config{}, err
		}
	}
	explicit := len(cfg.OpenClawDirs)+len(cfg.ClaudeDirs)+len(cfg.CodexDirs) > 0
	return ingest.Config{
		OpenClawDirs: cfg.OpenClawDirs,
		ClaudeDirs:   cfg.ClaudeDirs,
		CodexDirs:    cfg.CodexDirs,
		Discover:     !cfg.NoDiscover && !explicit,
		Final:        final,
		BatchBytes:   cfg.IngestBatchBytes,
		Pricer:       pricing.NewPricer(table, overrides),
		Logger:       log.With("component", "ingest"),
	}, nil
}

// Close closes the database.
func (a *App) Close() error { return a.db.Close() }

// Run runs every worker until ctx ends, then returns nil: shutdown is not
// an error.
func (a *App) Run(ctx context.Context) error {
	a.log.Info("fleetmeter started", "version", Version, "data_dir", a.cfg.DataDir, "tz", a.cfg.TZ)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.ingest.Run(ctx, a.cfg.PollInterval) })
	g.Go(func() error { return a.maintain(ctx) })
	err := g.Wait()
	a.log.Info("fleetmeter stopped")
	return err
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
	cutoff := a.Now().AddDate(0, 0, -a.cfg.Retention.LedgerDays).UnixMilli()
	n, err := a.db.PruneLedger(cutoff)
	if err != nil {
		return fmt.Errorf("prune ledger: %w", err)
	}
	if n > 0 {
		a.log.Info("pruned ledger", "records", n, "older_than_days", a.cfg.Retention.LedgerDays)
	}
	return nil
}
