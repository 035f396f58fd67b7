package appliance

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// /metrics: every family under the fleetmeter_ prefix (Go and process
// metrics too), each with # HELP and # TYPE lines, its samples together.
// The parts write plain samples (writeMetrics and the sync and alert
// writers); exposeMetrics groups them into families.

// exposeMetrics writes the whole exposition.
func (a *App) exposeMetrics(w io.Writer) {
	var raw bytes.Buffer
	a.writeMetrics(&raw)
	a.usage.write(&raw, a.db)
	writeFamilies(w, raw.Bytes())
}

// familyHelp says what our families are; others get a generic line.
var familyHelp = map[string]string{
	"fleetmeter_healthy":                                "1 when nothing is wrong (see /api/status problems), else 0.",
	"fleetmeter_ingest_records_added_total":             "Model calls recorded since the daemon started.",
	"fleetmeter_ingest_files":                           "Transcript files tracked.",
	"fleetmeter_ingest_pending_partial_lines":           "Files whose last line has no end yet.",
	"fleetmeter_ingest_file_errors_total":               "Files that could not be read, since the daemon started.",
	"fleetmeter_ingest_last_step_timestamp_seconds":     "When the last ingest pass finished (unix seconds).",
	"fleetmeter_ingest_lag_seconds":                     "Seconds since the last ingest pass finished.",
	"fleetmeter_ingest_step_failing":                    "1 while the last ingest pass failed.",
	"fleetmeter_ingest_skipped_total":                   "Lines not recorded, by reason, since the database was created.",
	"fleetmeter_ingest_corrected_total":                 "Calls recorded with a corrected figure, by kind.",
	"fleetmeter_ingest_unrecognized_usage_total":        "Usage fields no reader understands, by source and field (20 series, then other).",
	"fleetmeter_http_request_duration_seconds":          "HTTP request durations by route template, method and status class.",
	"fleetmeter_agent_cost_usd_total":                   "Cost of the calls of each agent since the database was created (top agents by cost, then other).",
	"fleetmeter_agent_calls_total":                      "Model calls of each agent since the database was created (top agents by cost, then other).",
	"fleetmeter_agent_tokens_total":                     "Tokens of each agent by kind since the database was created (top agents by cost, then other).",
	"fleetmeter_model_cost_usd_total":                   "Cost of the calls to each provider/model since the database was created (top models by cost, then other).",
	"fleetmeter_model_calls_total":                      "Model calls to each provider/model since the database was created.",
	"fleetmeter_model_tokens_total":                     "Tokens of each provider/model by kind since the database was created.",
	"fleetmeter_host_cpu_busy_percent":                  "CPU busy, steal included, in the last host sample.",
	"fleetmeter_host_cpu_steal_percent":                 "CPU steal in the last host sample.",
	"fleetmeter_host_cpu_iowait_percent":                "CPU I/O wait in the last host sample.",
	"fleetmeter_host_memory_used_bytes":                 "Memory used (total minus available) in the last host sample.",
	"fleetmeter_host_memory_total_bytes":                "Memory of the host.",
	"fleetmeter_host_swap_used_bytes":                   "Swap used in the last host sample.",
	"fleetmeter_host_load1":                             "Load average over 1 minute in the last host sample.",
	"fleetmeter_host_load_per_core":                     "Load average over 1 minute per core in the last host sample.",
	"fleetmeter_host_disk_data_used_bytes":              "Used bytes of the data dir's filesystem.",
	"fleetmeter_host_disk_data_free_bytes":              "Bytes free to users on the data dir's filesystem.",
	"fleetmeter_host_network_receive_bytes_per_second":  "Network bytes received per second (all interfaces but loopback).",
	"fleetmeter_host_network_transmit_bytes_per_second": "Network bytes sent per second (all interfaces but loopback).",
	"fleetmeter_host_gateway_processes":                 "OpenClaw gateway processes running.",
	"fleetmeter_host_active_sessions":                   "Agent sessions with a model call in the last 15 minutes.",
	"fleetmeter_host_sample_timestamp_sec":              "When the last host sample was taken (unix seconds).",
}

// family is one metric family's samples in exposition order.
type family struct {
	name, typ string
	lines     []string
}

// writeFamilies regroups samples into families with their metadata,
// prefixing names that lack fleetmeter_ (the Go and process metrics).
func writeFamilies(w io.Writer, raw []byte) {
	var order []*family
	byName := map[string]*family{}
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		if !strings.HasPrefix(line, "fleetmeter_") {
			line = "fleetmeter_" + line
		}
		name := line[:strings.IndexAny(line+" ", "{ ")]
		base, typ := name, "gauge"
		switch {
		case strings.HasSuffix(name, "_bucket") && strings.Contains(line, `le="`):
			base, typ = strings.TrimSuffix(name, "_bucket"), "histogram"
		case strings.Contains(line, `quantile="`):
			typ = "summary"
		case strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count"):
			trimmed := strings.TrimSuffix(strings.TrimSuffix(name, "_sum"), "_count")
			if f := byName[trimmed]; f != nil && (f.typ == "histogram" || f.typ == "summary") {
				base, typ = trimmed, f.typ
			}
		case strings.HasSuffix(name, "_total"):
			typ = "counter"
		}
		f := byName[base]
		if f == nil {
			f = &family{name: base, typ: typ}
			byName[base] = f
			order = append(order, f)
		}
		f.lines = append(f.lines, line)
	}
	var b bytes.Buffer
	for _, f := range order {
		help := familyHelp[f.name]
		if help == "" {
			help = "Go runtime or process metric: " + strings.ReplaceAll(strings.TrimPrefix(f.name, "fleetmeter_"), "_", " ") + "."
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, help, f.name, f.typ)
		for _, l := range f.lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	w.Write(b.Bytes())
}

// maxLabelValues bounds the agents and models named in labels: the most
// expensive ones, the rest summed as "other".
const maxLabelValues = 20

// usageCounters are the cost, calls and tokens per agent and per model
// since the database was created, from the daily rows by agent and by
// model (kept forever), recomputed when the data changed.
type usageCounters struct {
	mu      sync.Mutex
	version uint64
	text    []byte
}

func (u *usageCounters) write(w io.Writer, db *storage.DB) {
	u.mu.Lock()
	defer u.mu.Unlock()
	v, err := db.DataVersion()
	if err != nil {
		return
	}
	if u.text == nil || v != u.version {
		var b bytes.Buffer
		for _, k := range []struct {
			kind      byte
			prefix    string
			label     string
			groupName func(storage.Row) string
		}{
			{storage.DimAgent, "fleetmeter_agent", "agent", func(r storage.Row) string { return r.Agent }},
			{storage.DimModel, "fleetmeter_model", "model", func(r storage.Row) string { return r.Provider + "/" + r.Model }},
		} {
			rows, err := db.ScanDimRows(k.kind, rollup.MinDay, rollup.MaxDay)
			if err != nil {
				return
			}
			writeUsageCounters(&b, k.prefix, k.label, rows, k.groupName)
		}
		u.text, u.version = b.Bytes(), v
	}
	w.Write(u.text)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// promLabel makes an untrusted name a label value: graphic characters
// only (rollup.Clean), escaped, at most 128 bytes.
func promLabel(s string) string {
	s = rollup.Clean(s)
	if len(s) > 128 {
		s = s[:128]
	}
	return labelEscaper.Replace(strings.ToValidUTF8(s, "?"))
}

func writeUsageCounters(w io.Writer, prefix, label string, rows []storage.Row, name func(storage.Row) string) {
	sums := map[string]*storage.Totals{}
	for _, r := range rows {
		k := name(r)
		if sums[k] == nil {
			sums[k] = &storage.Totals{}
		}
		sums[k].Add(r.Totals)
	}
	keys := make([]string, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if sums[keys[i]].CostNanos != sums[keys[j]].CostNanos {
			return sums[keys[i]].CostNanos > sums[keys[j]].CostNanos
		}
		return keys[i] < keys[j]
	})
	var other storage.Totals
	emit := func(value string, t *storage.Totals) {
		l := fmt.Sprintf(`%s="%s"`, label, value)
		metrics.WriteGaugeFloat64(w, prefix+"_cost_usd_total{"+l+"}", storage.USD(t.CostNanos))
		metrics.WriteGaugeUint64(w, prefix+"_calls_total{"+l+"}", uint64(t.Messages))
		for _, kind := range []struct {
			name string
			n    int64
		}{{"input", t.Input}, {"output", t.Output}, {"cache_read", t.CacheRead}, {"cache_write", t.CacheWrite}} {
			metrics.WriteGaugeUint64(w, prefix+"_tokens_total{"+l+`,kind="`+kind.name+`"}`, uint64(kind.n))
		}
	}
	for i, k := range keys {
		if i >= maxLabelValues || k == "other" {
			other.Add(*sums[k])
			continue
		}
		emit(promLabel(k), sums[k])
	}
	if len(keys) > maxLabelValues || sums["other"] != nil {
		emit("other", &other)
	}
}
