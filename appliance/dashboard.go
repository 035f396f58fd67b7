package appliance

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/fleetmeter/fleetmeter/ingest/pricing"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/ui"
)

// The web UI's wiring: the dashboard read side over the database, what
// the Sources page says about ingest, and the request timings /metrics
// shows.

// newDashboard is the pages' read side, with the reader's advice.
func (a *App) newDashboard(reader *rollup.LocalReader) *rollup.Dashboard {
	return rollup.NewDashboard(a.db, rollup.DashboardConfig{
		Registry: a.cfg.agentInfos,
		Now:      func() time.Time { return a.Now() },
		Advice:   reader.OwnAdvice,
		MaxHeavy: max(2, runtime.GOMAXPROCS(0)), BusyWait: 5 * time.Second, MaxStale: 5 * time.Second,
	})
}

// uiSources fills the Sources page from the ingester's status and the
// configuration.
func (a *App) uiSources(ctx context.Context) (ui.Sources, error) {
	st := a.ingest.Status()
	skips, err := a.db.Skips()
	if err != nil {
		return ui.Sources{}, err
	}
	corrected, err := a.db.Corrections()
	if err != nil {
		return ui.Sources{}, err
	}
	s := ui.Sources{
		Files: st.Files, PendingLines: st.PendingTails, RecordsAdded: st.Added, FileErrors: st.FileErrors,
		LastStep: st.LastStep, LastError: st.LastError, PollSeconds: a.cfg.PollInterval.Seconds(),
		Skipped: skips, Corrected: corrected, Unrecognized: st.Unrecognized,
		PriceTableDate: pricing.TableDate, PriceFile: a.cfg.PriceFile, Discover: !a.cfg.NoDiscover && !hasSourceDirs(a.cfg),
	}
	if !st.LastStep.IsZero() {
		s.LagSeconds = a.Now().Sub(st.LastStep).Seconds()
	}
	explicit := hasSourceDirs(a.cfg)
	for _, src := range st.Sources {
		s.Roots = append(s.Roots, ui.SourceRoot{Source: src.Kind, Path: src.Path, Discovered: !explicit})
	}
	if p := st.Progress; p != nil {
		s.CatchUpPct = catchUpPct(p)
	}
	if s.Roots == nil {
		s.Roots = []ui.SourceRoot{}
	}
	return s, nil
}

// observeRequest times a request for /metrics, by route template, method
// and status class: closed sets, so the series stay few.
func (a *App) observeRequest(route, method string, status int, d time.Duration) {
	name := fmt.Sprintf(`fleetmeter_http_request_duration_seconds{route=%q,method=%q,code="%dxx"}`, route, method, status/100)
	a.metrics.GetOrCreatePrometheusHistogram(name).Update(d.Seconds())
}
