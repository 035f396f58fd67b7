package appliance

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fleetmeter/fleetmeter/host"
	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/fleetmeter/fleetmeter/ui"
)

// apiReports answers the HTTP API from the daemon's database.
type apiReports struct{ a *App }

// parseRange turns --since/--until strings into inclusive day numbers.
func parseRange(since, until string) (int32, int32, error) {
	from, to := rollup.MinDay, rollup.MaxDay
	var err error
	if since != "" {
		if from, err = storage.ParseDay(since); err != nil {
			return 0, 0, err
		}
	}
	if until != "" {
		if to, err = storage.ParseDay(until); err != nil {
			return 0, 0, err
		}
	}
	return from, to, nil
}

func (r apiReports) Report(ctx context.Context, q ui.Query) (any, error) {
	from, to, err := parseRange(q.Since, q.Until)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ui.ErrBadRequest, err)
	}
	loc := r.a.db.Location()
	if q.TZ != "" {
		if loc, err = time.LoadLocation(q.TZ); err != nil {
			return nil, fmt.Errorf("%w: tz %q is not an IANA zone", ui.ErrBadRequest, q.TZ)
		}
	}
	if !slices.Contains(rollup.Kinds(), q.Kind) {
		return nil, fmt.Errorf("%w: unknown report %q (want one of %s)", ui.ErrBadRequest, q.Kind, strings.Join(rollup.Kinds(), ", "))
	}
	if from > to {
		return nil, fmt.Errorf("%w: since %s is after until %s", ui.ErrBadRequest, q.Since, q.Until)
	}
	return rollup.Build(dbSource{r.a.db, loc}, rollup.Query{Kind: q.Kind, Since: from, Until: to})
}

func (r apiReports) HostReport(ctx context.Context, q ui.Query) (any, error) {
	from, to, err := parseRange(q.Since, q.Until)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ui.ErrBadRequest, err)
	}
	return host.LoadReport(r.a.db, from, to)
}

func (r apiReports) Advice(ctx context.Context) (any, error) {
	return host.AdviseFrom(r.a.db, r.a.Now(), r.a.currentInstanceType(), host.DefaultThresholds())
}

// status is /api/status and `fleetmeter health`.
type status struct {
	Version      string        `json:"version"`
	InstanceID   string        `json:"instance_id"`
	InstanceType string        `json:"instance_type,omitempty"`
	DataDir      string        `json:"data_dir"`
	TZ           string        `json:"tz"`
	Ingest       any           `json:"ingest"`
	Database     storage.Stats `json:"database"`
	Skipped      storage.Skips `json:"skipped"`
	Sync         any           `json:"sync"` // upstream.Status
}

func (r apiReports) Status(ctx context.Context) (any, error) {
	st, err := r.a.db.Stats()
	if err != nil {
		return nil, err
	}
	skips, err := r.a.db.Skips()
	if err != nil {
		return nil, err
	}
	return status{
		Version: Version, InstanceID: r.a.db.InstanceID(), InstanceType: r.a.currentInstanceType(),
		DataDir: r.a.cfg.DataDir, TZ: r.a.cfg.TZ, Ingest: r.a.ingest.Status(), Database: st, Skipped: skips,
		Sync: r.a.syncStatus(),
	}, nil
}

// newMetrics registers the daemon's metrics in a set of its own, so two
// Apps in one test process do not collide.
func newMetrics(a *App) *metrics.Set {
	s := metrics.NewSet()
	ing := func(f func(st ingest.Status) float64) func() float64 {
		return func() float64 { return f(a.ingest.Status()) }
	}
	s.NewGauge(`fleetmeter_ingest_records_added_total`, ing(func(st ingest.Status) float64 { return float64(st.Added) }))
	s.NewGauge(`fleetmeter_ingest_files`, ing(func(st ingest.Status) float64 { return float64(st.Files) }))
	s.NewGauge(`fleetmeter_ingest_pending_partial_lines`, ing(func(st ingest.Status) float64 { return float64(st.PendingTails) }))
	s.NewGauge(`fleetmeter_ingest_file_errors_total`, ing(func(st ingest.Status) float64 { return float64(st.FileErrors) }))
	s.NewGauge(`fleetmeter_ingest_last_step_timestamp_seconds`, ing(func(st ingest.Status) float64 {
		if st.LastStep.IsZero() {
			return 0
		}
		return float64(st.LastStep.UnixMilli()) / 1e3
	}))
	s.NewGauge(`fleetmeter_ingest_step_failing`, ing(func(st ingest.Status) float64 {
		if st.LastError != "" {
			return 1
		}
		return 0
	}))
	for reason, get := range map[string]func(storage.Skips) int64{
		"duplicate": func(k storage.Skips) int64 { return k.Duplicate }, "not_model_call": func(k storage.Skips) int64 { return k.NotModelCall },
		"zero_usage": func(k storage.Skips) int64 { return k.ZeroUsage }, "malformed": func(k storage.Skips) int64 { return k.Malformed },
		"oversize_line": func(k storage.Skips) int64 { return k.OversizeLine }, "unsupported": func(k storage.Skips) int64 { return k.Unsupported },
	} {
		s.NewGauge(fmt.Sprintf(`fleetmeter_ingest_skipped_total{reason=%q}`, reason), ing(func(st ingest.Status) float64 { return float64(get(st.Skips)) }))
	}
	return s
}

// writeMetrics writes our set, the latest host sample, and Go/process metrics.
func (a *App) writeMetrics(w io.Writer) {
	a.metrics.WritePrometheus(w)
	a.writeSyncMetrics(w)
	if s, ok, err := a.db.LatestHostSample(); err == nil && ok {
		for name, v := range map[string]float64{
			"fleetmeter_host_cpu_busy_percent":     s.CPUPct,
			"fleetmeter_host_cpu_steal_percent":    s.CPUStealPct,
			"fleetmeter_host_memory_used_bytes":    float64(s.MemUsed),
			"fleetmeter_host_memory_total_bytes":   float64(s.MemTotal),
			"fleetmeter_host_load1":                s.Load1,
			"fleetmeter_host_active_sessions":      float64(s.ActiveSessions),
			"fleetmeter_host_sample_timestamp_sec": float64(s.TS) / 1e3,
		} {
			metrics.WriteGaugeFloat64(w, name, v)
		}
	}
	metrics.WriteProcessMetrics(w)
}
