package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/ingest/pricing"
	"github.com/fleetmeter/fleetmeter/storage"
	"golang.org/x/sync/errgroup"
)

// `fleetmeter serve --demo`: a first look for newcomers. It generates a
// realistic 90-day fleet (agents in teams, about a hundred users, several
// models and providers) as OpenClaw transcripts with the corpus generator,
// ingests them through the real readers into a new database, adds a
// synthetic host history with a busy week and a steal episode, and serves
// it; a call is appended and a host sample taken every few seconds, so the
// overview moves. Everything lives in a temporary directory removed at
// exit: the demo never touches a real data dir, never syncs upstream,
// never notifies anyone, and needs no login (its data belongs to no one).

// demoTeams puts the corpus's agents in teams; the last two are planned:
// configured, never seen.
var demoTeams = map[string]struct{ name, team string }{
	"main": {"Front desk", "Operations"}, "ops": {"Ops runbook", "Operations"}, "devops": {"Deploy bot", "Operations"},
	"research": {"Research scout", "Innovation"}, "coder": {"Code reviewer", "Innovation"},
	"support": {"Support triage", "Support"}, "home": {"IT helpdesk", "Support"},
	"sales": {"Sales assistant", "Sales"}, "writer": {"Content writer", "Sales"},
	"finance": {"Finance clerk", "Finance"}, "scheduler": {"Scheduler", "Finance"}, "family": {"Office manager", "Operations"},
	"legal-review": {"Contract review", "Legal"}, "onboarding": {"People onboarding", "People"},
}

// demoTeam is the registry entry of a corpus agent: the named ones above,
// the numbered ones (agent-12…) spread over the teams.
func demoTeam(id string, i int) (name, team string) {
	if t, ok := demoTeams[id]; ok {
		return t.name, t.team
	}
	teams := []string{"Sales", "Support", "Innovation", "Operations", "Finance"}
	return fmt.Sprintf("Assistant %d", i), teams[i%len(teams)]
}

// demoAgents is the number of agents the corpus makes (2 to 6 users each).
const demoAgents = 26

// demoConfig is cfg pointed at the demo's directory, with everything that
// reaches beyond it switched off.
func demoConfig(cfg Config, dir string) Config {
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.RuntimeDir = filepath.Join(dir, "run")
	cfg.OpenClawDirs, cfg.ClaudeDirs, cfg.CodexDirs = []string{filepath.Join(dir, "openclaw")}, nil, nil
	cfg.NoDiscover = true
	cfg.BrowserLogin = false
	cfg.SupabaseDSN = ""
	cfg.EC2Metadata = false
	cfg.InstanceType = "t3.large"
	cfg.PriceFile = ""
	cfg.PollInterval = 2 * time.Second
	cfg.Settings.Alerting.Notify = nil
	cfg.Settings.Notifiers = nil
	cfg.Settings.Budgets = nil
	cfg.Settings.Alerts = nil
	cfg.Agents = nil
	for i, id := range append(corpus.AgentIDs(demoAgents), "legal-review", "onboarding") {
		name, team := demoTeam(id, i)
		cfg.Agents = append(cfg.Agents, Agent{ID: id, Name: name, Team: team, Owner: strings.ToLower(team) + "@example.com"})
	}
	return cfg
}

// runDemo serves a generated fleet until ctx ends.
func runDemo(ctx context.Context, env *cliEnv, cfg Config) error {
	dir, err := os.MkdirTemp("", "fleetmeter-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)
	cfg = demoConfig(cfg, dir)
	if ln, err := net.Listen("tcp", cfg.Listen); err != nil {
		cfg.Listen = "127.0.0.1:0" // a real daemon has the port: take any
	} else {
		ln.Close()
	}
	log := newLogger(cfg, env.stderr)
	fmt.Fprintf(env.stderr, "fleetmeter: generating a 90-day demo fleet in %s (removed at exit)…\n", dir)
	now := time.Now()
	if err := writeDemo(ctx, cfg, now, log); err != nil {
		return err
	}
	app, err := New(cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()
	app.demo = true
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return app.Run(ctx) })
	g.Go(func() error {
		if app.Addr() == nil {
			return nil // Run failed to listen and says why
		}
		fmt.Fprintf(env.stderr, "fleetmeter: the demo is at http://%s/ (no login: its data is made up). Ctrl-C ends it.\n", app.Addr())
		return feedDemo(ctx, app, filepath.Join(dir, "openclaw"), log)
	})
	return g.Wait()
}

// writeDemo generates the transcripts, ingests them, and writes the host
// history, into cfg's (new) data dir.
func writeDemo(ctx context.Context, cfg Config, now time.Time, log *slog.Logger) error {
	o := corpus.DefaultOptions()
	o.Seed, o.Days, o.Agents, o.End = 7, 90, demoAgents, now.UTC()
	o.SizeBytes = 256 << 20
	o.ImageRate = 0 // big images only make the files larger
	if _, err := corpus.Generate(cfg.OpenClawDirs[0], o); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	db, err := openWritable(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	ic, err := ingestConfig(cfg, log, false)
	if err != nil {
		return err
	}
	ic.Logger = slog.New(slog.DiscardHandler)
	if _, err := priceLedger(ctx, db, ic.Pricer.(*pricing.Pricer), now, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	if _, err := ingest.New(ic, db).Step(ctx); err != nil {
		return fmt.Errorf("demo: ingest: %w", err)
	}
	h := corpus.DefaultHostOptions()
	h.End, h.Days, h.Seed = now.UTC(), 90, 7
	if err := corpus.HostHistory(h, db.PutHostSamples); err != nil {
		return fmt.Errorf("demo: host history: %w", err)
	}
	return nil
}

// feedDemo keeps the demo alive: every few seconds a host sample on the
// same synthetic curve, and now and then a few turns appended to one of
// the agents' transcripts, which the daemon ingests as it would live ones.
func feedDemo(ctx context.Context, app *App, openclaw string, log *slog.Logger) error {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var aps []*corpus.Appender
	for i, agent := range []string{"main", "support", "sales", "research"} {
		path := filepath.Join(openclaw, "agents", agent, "sessions", fmt.Sprintf("demo-live-%d.jsonl", i))
		ap, err := corpus.NewAppender(path, uint64(i+100), time.Now())
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		aps = append(aps, ap)
	}
	sample := time.NewTicker(15 * time.Second)
	defer sample.Stop()
	talk := time.NewTimer(3 * time.Second)
	defer talk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sample.C:
			h := corpus.DefaultHostOptions()
			now := app.Now()
			h.End, h.Days, h.Recent, h.Seed = now.Add(15*time.Second), 1, 0, rng.Uint64()
			var last []storage.HostSample
			err := corpus.HostHistory(h, func(s []storage.HostSample) error { last = s; return nil })
			if err == nil && len(last) > 0 {
				s := last[len(last)-1]
				s.TS = now.UnixMilli()
				err = app.db.PutHostSample(s)
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("demo host sample", "err", err)
			}
		case <-talk.C:
			ap := aps[rng.IntN(len(aps))]
			if _, err := ap.Append(1 + rng.IntN(3)); err != nil {
				log.Warn("demo transcript", "err", err)
			}
			// About the history's pace: a turn every one to three minutes.
			talk.Reset(time.Duration(60+rng.IntN(120)) * time.Second)
		}
	}
}
