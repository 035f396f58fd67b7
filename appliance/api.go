package appliance

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fleetmeter/fleetmeter/host"
	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/fleetmeter/fleetmeter/ui"
)

// appStatus answers /api/status, /healthz (and so `fleetmeter health`).
type appStatus struct{ a *App }

func (r appStatus) Problems() []string { return r.a.problems() }

func (r appStatus) Status(ctx context.Context) (ui.Status, error) {
	st, err := r.a.stats.get(r.a.db)
	if err != nil {
		return ui.Status{}, err
	}
	skips, err := r.a.db.Skips()
	if err != nil {
		return ui.Status{}, err
	}
	corrected, err := r.a.db.Corrections()
	if err != nil {
		return ui.Status{}, err
	}
	problems := r.a.problems()
	return ui.Status{
		Version: version(), InstanceID: r.a.db.InstanceID(), InstanceType: r.a.currentInstanceType(),
		DataDir: r.a.cfg.DataDir, TZ: r.a.cfg.TZ, Healthy: len(problems) == 0, Problems: append([]string{}, problems...),
		Ingest: r.a.ingest.Status(), Host: r.a.sampler.Status(), Database: st, Skipped: skips,
		Corrected: corrected, Pricing: r.a.pricing,
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
	s.NewGauge(`fleetmeter_ingest_lag_seconds`, ing(func(st ingest.Status) float64 {
		if st.LastStep.IsZero() {
			return 0
		}
		return a.Now().Sub(st.LastStep).Seconds()
	}))
	s.NewGauge(`fleetmeter_ingest_step_failing`, ing(func(st ingest.Status) float64 {
		if st.LastError != "" {
			return 1
		}
		return 0
	}))
	s.NewGauge(`fleetmeter_healthy`, func() float64 {
		if len(a.problems()) > 0 {
			return 0
		}
		return 1
	})
	smp := func(f func(st host.Status) float64) func() float64 {
		return func() float64 { return f(a.sampler.Status()) }
	}
	s.NewGauge(`fleetmeter_host_samples_stored_total`, smp(func(st host.Status) float64 { return float64(st.Stored) }))
	s.NewGauge(`fleetmeter_host_samples_dropped_total{reason="clock_behind"}`, smp(func(st host.Status) float64 { return float64(st.Dropped) }))
	s.NewGauge(`fleetmeter_host_sample_failing`, smp(func(st host.Status) float64 {
		if st.LastError != "" {
			return 1
		}
		return 0
	}))
	for reason, get := range map[string]func(storage.Skips) int64{
		"duplicate": func(k storage.Skips) int64 { return k.Duplicate }, "not_model_call": func(k storage.Skips) int64 { return k.NotModelCall },
		"zero_usage": func(k storage.Skips) int64 { return k.ZeroUsage }, "malformed": func(k storage.Skips) int64 { return k.Malformed },
		"oversize_line": func(k storage.Skips) int64 { return k.OversizeLine }, "unsupported": func(k storage.Skips) int64 { return k.Unsupported },
		"too_old": func(k storage.Skips) int64 { return k.TooOld }, "unrecognized_usage": func(k storage.Skips) int64 { return k.UnrecognizedUsage },
		"partial_line": func(k storage.Skips) int64 { return k.PartialLine }, "unreadable_file": func(k storage.Skips) int64 { return k.UnreadableFile },
	} {
		s.NewGauge(fmt.Sprintf(`fleetmeter_ingest_skipped_total{reason=%q}`, reason), ing(func(st ingest.Status) float64 { return float64(get(st.Skips)) }))
	}
	for kind, get := range map[string]func(storage.Corrections) int64{
		storage.CorrectedImplausibleCost: func(c storage.Corrections) int64 { return c.ImplausibleCost },
		storage.CorrectedCacheInInput:    func(c storage.Corrections) int64 { return c.CacheInInput },
	} {
		s.NewGauge(fmt.Sprintf(`fleetmeter_ingest_corrected_total{kind=%q}`, kind), ing(func(st ingest.Status) float64 { return float64(get(st.Corrected)) }))
	}
	return s
}

// maxDriftSeries bounds the unrecognized_usage series: the field names come
// from transcripts, so their number must not grow without limit.
const maxDriftSeries = 20

// writeDriftMetrics writes fleetmeter_ingest_unrecognized_usage_total by
// source and field, the most frequent maxDriftSeries and an "other" series.
func writeDriftMetrics(w io.Writer, drift map[string]int64) {
	if len(drift) == 0 {
		return
	}
	keys := make([]string, 0, len(drift))
	for k := range drift {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if drift[keys[i]] != drift[keys[j]] {
			return drift[keys[i]] > drift[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var other int64
	for i, k := range keys {
		if i >= maxDriftSeries {
			other += drift[k]
			continue
		}
		source, what, _ := strings.Cut(k, " ")
		metrics.WriteGaugeUint64(w, fmt.Sprintf(`fleetmeter_ingest_unrecognized_usage_total{source=%q,what=%q}`,
			rollup.Clean(source), rollup.Clean(what)), uint64(drift[k]))
	}
	if other > 0 {
		metrics.WriteGaugeUint64(w, `fleetmeter_ingest_unrecognized_usage_total{source="other",what="other"}`, uint64(other))
	}
}

// writeMetrics writes our set, the last host sample, and Go/process metrics.
func (a *App) writeMetrics(w io.Writer) {
	a.metrics.WritePrometheus(w)
	writeDriftMetrics(w, a.ingest.Status().Unrecognized)
	a.writeSyncMetrics(w)
	a.writeAlertMetrics(w)
	// The last sample taken, not the newest stored: rows stamped by a clock
	// that was ahead would hold the gauges still until it caught up.
	if s, ok := a.sampler.Latest(); ok {
		for name, v := range map[string]float64{
			"fleetmeter_host_cpu_busy_percent":                  s.CPUPct,
			"fleetmeter_host_cpu_steal_percent":                 s.CPUStealPct,
			"fleetmeter_host_cpu_iowait_percent":                s.CPUIowaitPct,
			"fleetmeter_host_memory_used_bytes":                 float64(s.MemUsed),
			"fleetmeter_host_memory_total_bytes":                float64(s.MemTotal),
			"fleetmeter_host_swap_used_bytes":                   float64(s.SwapUsed),
			"fleetmeter_host_load1":                             s.Load1,
			"fleetmeter_host_load_per_core":                     s.LoadPerCore,
			"fleetmeter_host_disk_data_used_bytes":              float64(s.DataDisk.Used),
			"fleetmeter_host_disk_data_free_bytes":              float64(s.DataDisk.Free),
			"fleetmeter_host_network_receive_bytes_per_second":  s.NetInBps,
			"fleetmeter_host_network_transmit_bytes_per_second": s.NetOutBps,
			"fleetmeter_host_gateway_processes":                 float64(s.GatewayProcs),
			"fleetmeter_host_active_sessions":                   float64(s.ActiveSessions),
			"fleetmeter_host_sample_timestamp_sec":              float64(s.TS) / 1e3,
		} {
			metrics.WriteGaugeFloat64(w, name, v)
		}
	}
	metrics.WriteProcessMetrics(w)
}
