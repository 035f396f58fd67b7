package appliance

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/alerts"
	"github.com/fleetmeter/fleetmeter/host"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/ui"
)

// auditConfig is what the audit of this host looks at: this
// configuration, and the agents' dirs it reads (configured, else found
// under every home, as install finds them).
func auditConfig(cfg Config, getenv func(string) string) host.AuditConfig {
	src := sources{OpenClaw: cfg.OpenClawDirs, Claude: cfg.ClaudeDirs, Codex: cfg.CodexDirs}
	if len(src.all()) == 0 && !cfg.NoDiscover {
		src = (&installer{root: "/"}).discover(sources{}, getenv)
	}
	return host.AuditConfig{
		Listen: cfg.Listen, AuthToken: cfg.AuthToken, DataDir: cfg.DataDir, ConfigFile: cfg.file, Socket: cfg.SocketPath(),
		OpenClawDirs: src.OpenClaw, ClaudeDirs: src.Claude, CodexDirs: src.Codex,
	}
}

// auditDocument is `fleetmeter audit --json` and /api/audit: the report,
// and how it stands against a profile.
type auditDocument struct {
	Profile   host.Profile     `json:"profile"`
	Threshold host.Severity    `json:"threshold"` // failed checks at or above it count
	Failing   int              `json:"failing"`
	Passed    bool             `json:"passed"`
	Report    host.AuditReport `json:"report"`
}

func newAuditDocument(rep host.AuditReport, p host.Profile) auditDocument {
	n := len(rep.Failing(p))
	return auditDocument{Profile: p, Threshold: p.Threshold(), Failing: n, Passed: n == 0, Report: rep}
}

func runAudit(ctx context.Context, env *cliEnv, args []string) error {
	var asJSON bool
	var profile string
	cfg, rest, err := parseConfig(env, "audit", args, flagsData|flagsSources|flagsListen, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		fs.StringVar(&profile, "profile", "standard", "risk tolerance: strict (fail on low and above), standard (medium), relaxed (high)")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	p, err := host.ParseProfile(profile)
	if err != nil {
		return usageErr("%v", err)
	}
	rep := host.Audit(ctx, auditConfig(cfg, env.getenv))
	doc := newAuditDocument(rep, p)
	if asJSON {
		if err := printJSON(env, doc); err != nil {
			return err
		}
	} else {
		writeAudit(env.stdout, doc, termWidth(env))
		if os.Geteuid() != 0 {
			fmt.Fprintln(env.stdout, "\n(not run as root: other users' files and processes were not all visible; sudo fleetmeter audit sees them)")
		}
	}
	if !doc.Passed {
		return &exitError{code: 1, msg: fmt.Sprintf("%d checks fail at the %s profile (%s and above)", doc.Failing, p, p.Threshold())}
	}
	return nil
}

// writeAudit prints the report: failing checks first, each with its
// evidence and fix.
func writeAudit(w io.Writer, doc auditDocument, width int) {
	t := rollup.Table{Columns: []rollup.Column{{Head: "Status"}, {Head: "Severity"}, {Head: "Check"}, {Head: "Summary", Shrink: true}}}
	order := []host.CheckStatus{host.StatusFail, host.StatusUnknown, host.StatusPass, host.StatusNA}
	for _, st := range order {
		for _, f := range doc.Report.Findings {
			if f.Status != st {
				continue
			}
			sev := f.Severity.String()
			if f.Status != host.StatusFail {
				sev = "-"
			}
			t.Rows = append(t.Rows, []string{string(f.Status), sev, f.ID, f.Summary})
		}
	}
	t.Render(w, width)
	for _, f := range doc.Report.Findings {
		if f.Status != host.StatusFail && f.Status != host.StatusUnknown {
			continue
		}
		// Evidence quotes the host (paths, names, config lines): untrusted.
		fmt.Fprintf(w, "\n%s: %s (%s). Expected: %s.\n", rollup.Clean(f.ID), strings.ToUpper(string(f.Status)), f.Severity, rollup.Clean(f.Title))
		for _, e := range f.Evidence {
			fmt.Fprintf(w, "  - %s\n", rollup.Clean(e))
		}
		if f.Fix != "" {
			fmt.Fprintf(w, "  fix: %s\n", rollup.Clean(f.Fix))
		}
	}
	verdict := "passes"
	if !doc.Passed {
		verdict = fmt.Sprintf("fails: %d checks at %s or above", doc.Failing, doc.Threshold)
	}
	fmt.Fprintf(w, "\nProfile %s %s.\n", doc.Profile, verdict)
}

// auditWorker runs the audit in the daemon: a few minutes after start,
// then hourly (it walks workspaces and asks the package manager). It
// keeps the latest report for /api/audit and the audit alert rule.
type auditWorker struct {
	cfg      host.AuditConfig
	interval time.Duration
	log      *slog.Logger

	mu   sync.Mutex
	last *host.AuditReport
}

func newAuditWorker(cfg Config, getenv func(string) string, log *slog.Logger) *auditWorker {
	return &auditWorker{cfg: auditConfig(cfg, getenv), interval: time.Hour, log: log}
}

// Step runs the audit once.
func (w *auditWorker) Step(ctx context.Context, now time.Time) host.AuditReport {
	c := w.cfg
	c.Now = func() time.Time { return now }
	rep := host.Audit(ctx, c)
	w.mu.Lock()
	w.last = &rep
	w.mu.Unlock()
	if failing := rep.Failing(host.ProfileStandard); len(failing) > 0 {
		ids := make([]string, len(failing))
		for i, f := range failing {
			ids[i] = f.ID
		}
		w.log.Warn("security audit: checks fail (fleetmeter audit says why and how to fix)", "failing", strings.Join(ids, ","))
	}
	return rep
}

// Run audits after a short delay (the first ingest goes first), then
// every interval.
func (w *auditWorker) Run(ctx context.Context) error {
	t := time.NewTimer(2 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		w.Step(ctx, time.Now())
		t.Reset(w.interval)
	}
}

// Latest is the last report; ok is false before the first audit.
func (w *auditWorker) Latest() (host.AuditReport, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		return host.AuditReport{}, false
	}
	return *w.last, true
}

// forAlerts is the latest audit as the audit alert rule reads it.
func (w *auditWorker) forAlerts(profile string) (alerts.AuditResult, bool) {
	rep, ok := w.Latest()
	if !ok {
		return alerts.AuditResult{}, false
	}
	p, err := host.ParseProfile(profile)
	if err != nil {
		return alerts.AuditResult{}, false
	}
	res := alerts.AuditResult{At: rep.At, Checks: host.AuditIDs()}
	for _, f := range rep.Failing(p) {
		res.Failing = append(res.Failing, alerts.AuditFinding{ID: f.ID, Title: f.Title, Severity: f.Severity.String(), Summary: f.Summary, Fix: f.Fix})
	}
	return res, true
}

// api answers /api/audit: the latest report against a profile
// (?profile=, default standard); ?refresh=1 runs the audit now.
func (w *auditWorker) api(ctx context.Context, profile string, refresh bool) (any, error) {
	p, err := host.ParseProfile(profile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ui.ErrBadRequest, err)
	}
	rep, ok := w.Latest()
	// A refresh costs a package-manager run: at most one a minute.
	if !ok || refresh && time.Since(rep.At) > time.Minute {
		rep = w.Step(ctx, time.Now())
	}
	return newAuditDocument(rep, p), nil
}
