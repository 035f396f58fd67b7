package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fleetmeter/fleetmeter/alerts"
	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/fleetmeter/fleetmeter/ui"
)

// teamsOf is the registry's teams, for team: scopes.
func teamsOf(agents []Agent) alerts.TeamMap {
	m := alerts.TeamMap{}
	for _, a := range agents {
		if a.Team != "" {
			m[a.ID] = a.Team
		}
	}
	return m
}

// resolvedAlerts is the alerting settings with every url_file read.
func (c Config) resolvedAlerts() (alerts.Settings, error) {
	s := c.Settings
	s.Notifiers = append([]alerts.NotifierConfig(nil), c.Notifiers...)
	for i, n := range s.Notifiers {
		if n.URLFile == "" {
			continue
		}
		if n.URL != "" {
			return s, fmt.Errorf("notifiers[%d] %q: url and url_file are both set; keep one", i, n.Name)
		}
		b, err := os.ReadFile(n.URLFile)
		if err != nil {
			return s, fmt.Errorf("notifiers[%d] %q: url_file: %w", i, n.Name, err)
		}
		s.Notifiers[i].URL, s.Notifiers[i].URLFile = strings.TrimSpace(string(b)), ""
	}
	return s, nil
}

// validateAlerts checks the rules and receivers at start.
func (c Config) validateAlerts() []error {
	s, err := c.resolvedAlerts()
	if err == nil {
		err = s.Validate(teamsOf(c.Agents))
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// maskedAlerts replaces receiver URLs for printing.
func maskedAlerts(s alerts.Settings) alerts.Settings {
	s.Notifiers = append([]alerts.NotifierConfig(nil), s.Notifiers...)
	for i := range s.Notifiers {
		if s.Notifiers[i].URL != "" {
			s.Notifiers[i].URL = alerts.MaskURL(s.Notifiers[i].URL)
		}
	}
	return s
}

// notifiersOf builds every receiver of s.
func notifiersOf(s alerts.Settings) (map[string]alerts.Notifier, error) {
	out := map[string]alerts.Notifier{}
	for _, n := range s.Notifiers {
		nf, err := alerts.NewNotifier(n)
		if err != nil {
			return nil, err
		}
		out[n.Name] = nf
	}
	return out, nil
}

// uiURL is the link notifications carry when ui_url is not set.
func uiURL(cfg Config) string {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/alerts"
}

// alertDeps are the engine's dependencies on a database.
func alertDeps(cfg Config, db *storage.DB, state alerts.StateStore, log *slog.Logger) (alerts.Settings, alerts.Deps, error) {
	s, err := cfg.resolvedAlerts()
	if err != nil {
		return s, alerts.Deps{}, err
	}
	ns, err := notifiersOf(s)
	if err != nil {
		return s, alerts.Deps{}, err
	}
	return s, alerts.Deps{
		Data: db, State: state, Teams: teamsOf(cfg.Agents), Notifiers: ns, InstanceID: db.InstanceID(), UIURL: uiURL(cfg),
		Reports: rollup.NewReader(db, rollup.ReaderConfig{Host: db}), Log: log,
	}, nil
}

// newAlerts builds the daemon's alert engine.
func newAlerts(a *App) (*alerts.Engine, error) {
	s, d, err := alertDeps(a.cfg, a.db, a.db, a.log.With("component", "alerts"))
	if err != nil {
		return nil, err
	}
	d.Reports = rollup.NewReader(a.db, rollup.ReaderConfig{Host: a.db, Now: func() time.Time { return a.Now() }, InstanceType: a.currentInstanceType})
	d.Pipeline.IngestError = func() string { return a.ingest.Status().LastError }
	d.RateLimits = func() []alerts.RateLimit {
		var out []alerts.RateLimit
		for _, rl := range a.ingest.RateLimits() {
			out = append(out, alerts.RateLimit{Source: rl.Source, Window: rl.Window, UsedPercent: rl.UsedPercent,
				WindowMinutes: rl.WindowMinutes, ResetsAt: rl.ResetsAt})
		}
		return out
	}
	d.Pipeline.SyncLag = func() (time.Duration, bool) {
		if a.syncer == nil {
			return 0, false // no upstream configured: nothing to lag
		}
		return time.Duration(a.syncStatus().LagSeconds * float64(time.Second)), true
	}
	d.Pipeline.DBSize = func() (int64, int64) { return fileSize(a.db.Path()), a.cfg.DBMaxMB << 20 }
	d.Pipeline.Audit = a.audit.forAlerts
	return alerts.New(s, d)
}

// alertsAPI answers /api/alerts for the ui package.
type alertsAPI struct{ a *App }

func (h alertsAPI) Alerts(ctx context.Context, view string) (any, error) {
	switch view {
	case "":
		return h.a.alerts.Snapshot(), nil
	case "blocks":
		return blocksFrom(h.a.db, h.a.Now())
	}
	return nil, fmt.Errorf("%w: view %q (want blocks or nothing)", ui.ErrBadRequest, view)
}

func (h alertsAPI) AlertAction(ctx context.Context, act ui.AlertAction) (any, error) {
	now := h.a.Now()
	var out any
	var err error
	switch act.Action {
	case "ack":
		var n int
		n, err = h.a.alerts.Ack(act.Rule, now)
		out = map[string]int{"acknowledged": n}
	case "snooze":
		until := time.Time{}
		if act.For != "" {
			d, perr := snoozeDuration(act.For)
			if perr != nil || d < 0 {
				return nil, fmt.Errorf("%w: for %q: %s, or days (7d); 0 lifts the snooze", ui.ErrBadRequest, act.For, durationForm)
			}
			if d > 0 {
				until = now.Add(d)
			}
		}
		err = h.a.alerts.Snooze(act.Rule, until)
		out = map[string]any{"snoozed_until": until}
	case "test":
		out, err = h.a.alerts.Test(ctx, act.Rule, now)
	default:
		return nil, fmt.Errorf("%w: action %q (want ack, snooze or test)", ui.ErrBadRequest, act.Action)
	}
	if errors.Is(err, alerts.ErrUnknownRule) {
		return nil, fmt.Errorf("%w: %v", ui.ErrNotFound, err)
	}
	return out, err
}

// blocksFrom cuts the database's Claude Code calls into 5-hour blocks.
func blocksFrom(db *storage.DB, now time.Time) (rollup.BlockReport, error) {
	return rollup.LoadBlocks(db, math.MinInt64/2, math.MaxInt64/2, now)
}

// writeAlertMetrics adds the alert state to /metrics.
func (a *App) writeAlertMetrics(w io.Writer) {
	s := a.alerts.Snapshot()
	metrics.WriteGaugeUint64(w, "fleetmeter_alerts_firing", uint64(s.Firing))
	metrics.WriteGaugeUint64(w, "fleetmeter_alerts_pending", uint64(s.Pending))
	if s.EvaluatedAt != nil {
		metrics.WriteGaugeFloat64(w, "fleetmeter_alerts_last_round_timestamp_seconds", float64(s.EvaluatedAt.UnixMilli())/1e3)
		metrics.WriteGaugeFloat64(w, "fleetmeter_alerts_round_seconds", s.RoundMillis/1e3)
	}
	for _, r := range s.Rules {
		labels := fmt.Sprintf(`rule=%q,type=%q`, rollup.Clean(r.Name), r.Type)
		state := map[string]float64{alerts.StateOK: 0, alerts.StatePending: 1, alerts.StateFiring: 2}[r.State]
		metrics.WriteGaugeFloat64(w, "fleetmeter_alert_state{"+labels+"}", state)
		metrics.WriteGaugeFloat64(w, "fleetmeter_alert_value{"+labels+"}", r.Value)
		if r.Error != "" {
			metrics.WriteGaugeUint64(w, "fleetmeter_alert_rule_failing{"+labels+"}", 1)
		}
	}
	for _, n := range s.Notifiers {
		name := rollup.Clean(n.Name)
		metrics.WriteGaugeUint64(w, fmt.Sprintf(`fleetmeter_alert_notifications_total{notifier=%q,outcome="delivered"}`, name), uint64(n.Delivered))
		metrics.WriteGaugeUint64(w, fmt.Sprintf(`fleetmeter_alert_notifications_total{notifier=%q,outcome="failed_attempt"}`, name), uint64(n.Failed))
		metrics.WriteGaugeUint64(w, fmt.Sprintf(`fleetmeter_alert_notifications_total{notifier=%q,outcome="gave_up"}`, name), uint64(n.GaveUp))
		metrics.WriteGaugeUint64(w, fmt.Sprintf(`fleetmeter_alert_notifications_pending{notifier=%q}`, name), uint64(max(n.Pending, 0)))
	}
}

// dryState reads the stored alert state and writes nothing: the CLI
// evaluates rules on a read-only database without telling anyone.
type dryState struct{ db *storage.DB }

func (d dryState) AlertStates() (map[string][]byte, error) { return d.db.AlertStates() }
func (dryState) CommitAlerts(storage.AlertChange) ([]uint64, error) {
	return nil, nil
}
func (dryState) AlertOutbox() ([]storage.AlertDelivery, error) { return nil, nil }
func (dryState) UpdateAlertDelivery(uint64, []byte) error      { return nil }

// currentAlerts is the rules' current state: from the daemon when it runs,
// else one dry round over the database.
func currentAlerts(ctx context.Context, env *cliEnv, cfg Config) (alerts.Snapshot, error) {
	var snap alerts.Snapshot
	db, daemon, err := openForReading(cfg)
	if err != nil {
		return snap, err
	}
	if daemon {
		body, err := daemonGet(ctx, cfg, "/api/alerts", nil)
		if err != nil {
			return snap, fmt.Errorf("%w: the database is held by a daemon that did not answer (%v)", storage.ErrLocked, err)
		}
		return snap, json.Unmarshal(body, &snap)
	}
	defer db.Close()
	s, d, err := alertDeps(cfg, db, dryState{db}, newLogger(cfg, env.stderr).With("component", "alerts"))
	if err != nil {
		return snap, err
	}
	e, err := alerts.New(s, d)
	if err != nil {
		return snap, err
	}
	if err := e.Step(ctx, time.Now()); err != nil {
		return snap, err
	}
	return e.Snapshot(), nil
}

// runAlerts is `fleetmeter alerts [--json]` and `fleetmeter alerts test RULE`.
func runAlerts(ctx context.Context, env *cliEnv, args []string) error {
	var asJSON bool
	cfg, rest, err := parseConfig(env, "alerts", args, flagsData|flagsZone, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		switch {
		case rest[0] == "test" && len(rest) == 2:
			return alertsTest(ctx, env, cfg, rest[1], asJSON)
		case rest[0] == "ack" && len(rest) == 2, rest[0] == "snooze" && len(rest) == 3:
			return alertsChange(ctx, env, cfg, rest)
		}
		return usageErr("want `fleetmeter alerts [--json]`, `alerts test RULE`, `alerts ack RULE` or `alerts snooze RULE DURATION` (0 lifts it)")
	}
	snap, err := currentAlerts(ctx, env, cfg)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, snap)
	}
	return writeAlertsTable(env.stdout, snap, termWidth(env))
}

// snoozeDuration is a duration (parseDuration) or whole days ("7d"): a
// snooze is often for days.
func snoozeDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 && days <= 3650 {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	return parseDuration(s)
}

// alertsChange acknowledges or snoozes a rule in the running daemon,
// through its socket: who may use the socket may change alert state.
func alertsChange(ctx context.Context, env *cliEnv, cfg Config, args []string) error {
	act := ui.AlertAction{Action: args[0], Rule: args[1]}
	if act.Action == "snooze" {
		d, err := snoozeDuration(args[2])
		if err != nil || d < 0 {
			return usageErr("snooze %s %q: %s, or days (7d); 0 lifts the snooze", args[1], args[2], durationForm)
		}
		act.For = d.String()
	}
	body, err := daemonPost(ctx, cfg, "/api/alerts", act)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s %s: %s\n", act.Action, rollup.Clean(act.Rule), bytes.TrimSpace(body))
	return nil
}

func alertsTest(ctx context.Context, env *cliEnv, cfg Config, rule string, asJSON bool) error {
	s, err := cfg.resolvedAlerts()
	if err != nil {
		return err
	}
	ns, err := notifiersOf(s)
	if err != nil {
		return err
	}
	res, err := alerts.SendTest(ctx, s, teamsOf(cfg.Agents), ns, rule, "", uiURL(cfg), time.Now())
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(env, res); err != nil {
			return err
		}
	}
	failed := 0
	for _, r := range res {
		if r.Error != "" {
			failed++
		}
		if !asJSON {
			status := "ok"
			if r.Error != "" {
				status = "failed: " + r.Error
			}
			fmt.Fprintf(env.stdout, "%s (%s): %s\n", rollup.Clean(r.Notifier), rollup.Clean(r.Receiver), rollup.Clean(status))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d receivers failed", failed, len(res))
	}
	return nil
}

// runBudget is `fleetmeter budget check`: exit 1 when a budget is crossed.
func runBudget(ctx context.Context, env *cliEnv, args []string) error {
	var asJSON bool
	cfg, rest, err := parseConfig(env, "budget check", args, flagsData|flagsZone, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if len(rest) == 0 || rest[0] != "check" {
		return usageErr("want `fleetmeter budget check`")
	}
	if len(rest) > 1 {
		return usageErr("unexpected argument %q", rest[1])
	}
	if len(cfg.Budgets) == 0 {
		// Nothing can be crossed: exit 0 (1 is "a budget crossed", 2 a
		// configuration that does not validate; none is a valid one).
		if asJSON {
			return printJSON(env, map[string]any{"budgets": []alerts.RuleStatus{}, "crossed": []string{}})
		}
		where := "the configuration"
		if cfg.file != "" {
			where = cfg.file
		}
		_, err := fmt.Fprintf(env.stdout, "No budgets are configured: nothing to check (add [[budgets]] to %s; see the README's Budgets and alerts).\n", rollup.Clean(where))
		return err
	}
	snap, err := currentAlerts(ctx, env, cfg)
	if err != nil {
		return err
	}
	var budgets []alerts.RuleStatus
	var crossed []string
	for _, r := range snap.Rules {
		if r.Type != alerts.TypeBudget {
			continue
		}
		budgets = append(budgets, r)
		if r.PercentUsed != nil && *r.PercentUsed >= 100 {
			crossed = append(crossed, r.Name)
		}
	}
	if asJSON {
		if err := printJSON(env, map[string]any{"budgets": budgets, "crossed": crossed}); err != nil {
			return err
		}
	} else if err := writeAlertsTable(env.stdout, alerts.Snapshot{Rules: budgets}, termWidth(env)); err != nil {
		return err
	}
	if len(crossed) > 0 {
		return fmt.Errorf("%s crossed: %s", plural(len(crossed), "budget"), strings.Join(crossed, ", "))
	}
	return nil
}

// writeAlertsTable prints one line per rule.
func writeAlertsTable(w io.Writer, s alerts.Snapshot, width int) error {
	if len(s.Rules) == 0 {
		_, err := fmt.Fprintln(w, "No rules: add [[budgets]] or [[alerts]] to the configuration (see the README's Budgets and alerts).")
		return err
	}
	t := rollup.Table{Columns: []rollup.Column{
		{Head: "Rule", Shrink: true}, {Head: "Type", Hide: 2}, {Head: "Scope", Shrink: true, Hide: 1}, {Head: "State"},
		{Head: "Value", Right: true}, {Head: "Summary", Shrink: true},
	}}
	for _, r := range s.Rules {
		state := r.State
		if r.SnoozedUntil != nil {
			state += " (snoozed)"
		}
		summary := r.Summary
		if r.Error != "" {
			summary = "error: " + r.Error
		}
		t.Rows = append(t.Rows, []string{r.Name, r.Type, r.Scope, state, value(r.Figures), summary})
	}
	return t.Render(w, width)
}

func value(f alerts.Figures) string {
	switch f.Unit {
	case "usd":
		return rollup.USD(f.Value)
	case "usd_per_hour":
		return rollup.USD(f.Value) + "/h"
	case "percent":
		return fmt.Sprintf("%.1f%%", f.Value)
	case "":
		return rollup.NoValue
	}
	return fmt.Sprintf("%.4g %s", f.Value, strings.ReplaceAll(f.Unit, "_", " "))
}

// reportBlocks is `fleetmeter report blocks`: Claude Code's 5-hour
// windows, as `ccusage blocks` computes them.
func reportBlocks(ctx context.Context, env *cliEnv, ra reportArgs) error {
	loc, err := ra.cfg.Location()
	if err != nil {
		return err
	}
	q, err := ra.query(ctx, "blocks", nil)
	if err != nil {
		return err
	}
	from, to := int64(math.MinInt64/2), int64(math.MaxInt64/2)
	if q.Since != rollup.MinDay {
		from = storage.DayStartMillis(q.Since, loc)
	}
	if q.Until != rollup.MaxDay {
		to = storage.DayStartMillis(q.Until+1, loc)
	}
	now := time.Now()
	var rep rollup.BlockReport
	if hasSourceDirs(ra.cfg) {
		if env.process {
			oneShotMemory()
		}
		tally := rollup.NewTally(loc)
		c, err := ingestConfig(ra.cfg, newLogger(ra.cfg, env.stderr), true)
		if err != nil {
			return err
		}
		if _, err := ingest.New(c, tally).Step(ctx); err != nil {
			return err
		}
		if rep, err = rollup.LoadBlocks(tally, from, to, now); err != nil {
			return err
		}
	} else {
		db, daemon, err := openForReading(ra.cfg)
		if err != nil {
			return err
		}
		if daemon {
			body, err := daemonGet(ctx, ra.cfg, "/api/alerts", url.Values{"view": {"blocks"}})
			if err != nil {
				return fmt.Errorf("%w: the database is held by a daemon that did not answer (%v)", storage.ErrLocked, err)
			}
			if err := json.Unmarshal(body, &rep); err != nil {
				return fmt.Errorf("decode blocks: %w", err)
			}
			rep.Blocks = filterBlocks(rep.Blocks, from, to)
		} else {
			defer db.Close()
			if rep, err = rollup.LoadBlocks(db, from, to, now); err != nil {
				return err
			}
		}
	}
	switch {
	case ra.asJSON:
		return printJSON(env, rep)
	case ra.asCSV:
		return writeCSV(env.stdout, rep.Blocks)
	}
	return writeBlocksTable(env.stdout, rep, loc, termWidth(env))
}

// filterBlocks keeps the blocks that start in [from, to).
func filterBlocks(bs []rollup.Block, from, to int64) []rollup.Block {
	out := []rollup.Block{}
	for _, b := range bs {
		if ms := b.StartTime.UnixMilli(); ms >= from && ms < to {
			out = append(out, b)
		}
	}
	return out
}

func writeBlocksTable(w io.Writer, rep rollup.BlockReport, loc *time.Location, width int) error {
	t := rollup.Table{Title: "Claude Code 5-hour blocks · " + loc.String(), Columns: []rollup.Column{
		{Head: "Block start"}, {Head: "Status"}, {Head: "Calls", Right: true, Hide: 2}, {Head: "Tokens", Right: true},
		{Head: "Cost", Right: true}, {Head: "Cost/hour", Right: true, Hide: 1}, {Head: "Projected tokens", Right: true, Hide: 3},
		{Head: "Projected cost", Right: true, Hide: 1},
	}}
	for _, b := range rep.Blocks {
		status := "done"
		switch {
		case b.IsGap:
			status = "gap"
		case b.IsActive:
			status = "ACTIVE"
		}
		rate, ptok, pcost := rollup.NoValue, rollup.NoValue, rollup.NoValue
		if b.BurnRate != nil {
			rate = rollup.USD(b.BurnRate.CostPerHour)
		}
		if b.Projection != nil {
			ptok, pcost = rollup.Count(b.Projection.TotalTokens), rollup.USD(b.Projection.TotalCost)
		}
		row := []string{b.StartTime.In(loc).Format("2006-01-02 15:04"), status, rollup.Count(int64(b.Entries)),
			rollup.Count(b.TotalTokens), rollup.USD(b.CostUSD), rate, ptok, pcost}
		if b.IsGap {
			row = []string{row[0], status, rollup.NoValue, rollup.NoValue, rollup.NoValue, rollup.NoValue, rollup.NoValue, rollup.NoValue}
		}
		t.Rows = append(t.Rows, row)
	}
	if len(rep.Blocks) == 0 {
		_, err := fmt.Fprintf(w, "%s\n\nNo Claude Code calls in this range.\n", t.Title)
		return err
	}
	return t.Render(w, width)
}
