package appliance

import (
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// /metrics parses with the Prometheus text parser: every family under
// fleetmeter_ with help and type, agents and models capped with an other
// bucket, no user names, request durations by route template; on
// loopback it needs no login.
func TestMetricsExposition(t *testing.T) {
	cfg := testConfig(t)
	cfg.NoDiscover = true // only the seeded fleet, not the machine's own transcripts
	o := uiFleet(time.Now().UTC().Truncate(time.Second))
	o.Agents, o.Calls = 26, 6000 // more agents than labels
	seedFleet(t, cfg.DataDir, o)
	app := startApp(t, cfg)
	base := "http://" + app.Addr().String()
	for _, p := range []string{"/api/usage?range=7d", "/api/usage?range=30d", "/nope"} {
		resp, err := http.Get(base + p) // refused (no login) or not found: timed all the same
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics on loopback without a login: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "fleetmeter_") || f.GetHelp() == "" {
			t.Errorf("family %s: help %q", name, f.GetHelp())
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "user" {
					t.Errorf("%s has a user label", name)
				}
			}
		}
	}
	for _, want := range []string{"fleetmeter_ingest_records_added_total", "fleetmeter_ingest_skipped_total", "fleetmeter_ingest_lag_seconds",
		"fleetmeter_agent_cost_usd_total", "fleetmeter_agent_tokens_total", "fleetmeter_model_cost_usd_total", "fleetmeter_model_calls_total",
		"fleetmeter_http_request_duration_seconds", "fleetmeter_process_resident_memory_bytes", "fleetmeter_go_goroutines"} {
		if fams[want] == nil {
			t.Errorf("no family %s", want)
		}
	}
	if f := fams["fleetmeter_http_request_duration_seconds"]; f != nil {
		routes := map[string]bool{}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "route" {
					routes[l.GetValue()] = true
				}
			}
		}
		if f.GetType().String() != "HISTOGRAM" || !routes["/api/usage"] || !routes["unmatched"] || routes["/api/usage?range=7d"] {
			t.Errorf("request durations: %s by %v", f.GetType(), routes)
		}
	}
	agents := fams["fleetmeter_agent_cost_usd_total"]
	var sum float64
	other := false
	for _, m := range agents.GetMetric() {
		sum += m.GetCounter().GetValue()
		other = other || m.Label[0].GetValue() == "other"
	}
	if len(agents.GetMetric()) != maxLabelValues+1 || !other || agents.GetType().String() != "COUNTER" {
		t.Errorf("agent cost: %d series (other: %v), %s", len(agents.GetMetric()), other, agents.GetType())
	}
	var models float64
	for _, m := range fams["fleetmeter_model_cost_usd_total"].GetMetric() {
		models += m.GetCounter().GetValue()
	}
	if math.Abs(sum-models) > 1e-6 || sum <= 0 {
		t.Errorf("cost by agent %v, by model %v", sum, models)
	}
}
