// Package appliance wires fleetmeter's parts into one program: the CLI
// commands, the configuration, and the daemon's lifecycle (New, Run, Close).
// It is the only package that knows every other one.
package appliance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Version, Commit and BuildDate are set at build time (scripts/release:
// -ldflags "-X github.com/fleetmeter/fleetmeter/appliance.Version=…"); a
// plain `go build` in a git checkout still knows its commit and time from
// the build info.
var (
	Version   = "dev"
	Commit    = ""
	BuildDate = ""
)

// errUsage marks a command line we could not make sense of: exit code 2.
var errUsage = errors.New("usage")

// exitDamaged is the exit code for a damaged database (EX_DATAERR): the
// README's systemd unit lists it in RestartPreventExitStatus, so serve is
// not restarted in a loop on a file it cannot use.
const exitDamaged = 65

// command is one CLI verb.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv is what commands write to and read from: injected so tests run
// the CLI in-process.
type cliEnv struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

func commands() []command {
	return []command{
		{"serve", "run the daemon: ingest transcripts, sample the host, serve UI, API and /metrics", runServe},
		{"ingest", "read transcripts into the database (--once: one pass, then exit)", runIngest},
		{"report", "usage report: daily|weekly|monthly|session|agent|user|model|host|blocks", runReportOrBlocks},
		{"prices", "the models in your data and the price each gets; unpriced ones first", runPrices},
		{"alerts", "every alert rule with its current value and state (alerts test RULE: send a test message)", runAlerts},
		{"budget", "budget check: every budget's spend; exits 1 when one is crossed", runBudget},
		{"advise", "scaling advice for this host: scale_up, scale_down, hold or investigate", runAdvise},
		{"health", "ask the running daemon how it is doing", runHealth},
		{"rollup", "rollup rebuild: recompute daily/weekly/session rows from the ledger", runRollup},
		{"backup", "backup FILE: write a consistent copy of the database", runBackup},
		{"repair", "salvage a damaged database into a new file, then re-read the transcripts", runRepair},
		{"login", "print a one-time URL that logs a browser in to the running daemon", runLogin},
		{"compact", "shrink the database file (the daemon must be stopped)", runCompact},
		{"migrate", "migrate --dsn ADMIN_DSN: create or upgrade the upstream (Supabase) schema, once per project", runMigrate},
		{"sync", "send the rollups upstream (--once: one round; `sync status`: how sync is doing)", runSync},
		{"config", "print the effective configuration, secrets masked", runConfig},
		{"install", "install as a hardened systemd service (root; --dry-run prints the plan)", runInstall},
		{"uninstall", "remove the service, its user and its access (keeps the data unless --purge)", runUninstall},
		{"doctor", "check the setup end to end (daemon, sources, database, sync, notifiers, clock) and say what to fix", runDoctor},
		{"audit", "security audit of this host: each check with severity, evidence and fix (--profile strict|standard|relaxed)", runAudit},
		{"version", "print the version", runVersion},
	}
}

// Main runs the fleetmeter command line and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, &cliEnv{stdout: stdout, stderr: stderr, getenv: os.Getenv})
}

func run(ctx context.Context, args []string, env *cliEnv) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		var exit *exitError
		switch {
		case errors.As(err, &exit):
			fmt.Fprintf(env.stderr, "fleetmeter %s: %v\n", c.name, err)
			return exit.code
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(env.stderr, "fleetmeter %s: %s\n", c.name, strings.TrimPrefix(err.Error(), "usage: "))
			return 2
		case errors.Is(err, storage.ErrCorrupt):
			fmt.Fprintf(env.stderr, "fleetmeter %s: %s; run `fleetmeter repair` (it keeps the damaged file aside, salvages what it can read and reads the transcripts again)\n", c.name, oneLine(err.Error()))
			return exitDamaged
		default:
			fmt.Fprintf(env.stderr, "fleetmeter %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.stderr, "fleetmeter: unknown command %q (see fleetmeter --help)\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "fleetmeter: what an AI agent fleet costs, and whether its host keeps up.")
	fmt.Fprintln(w, "\nUsage: fleetmeter COMMAND [flags]   (fleetmeter COMMAND --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
}

// oneLine keeps a message on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// usageErr wraps a bad command line.
func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// parseConfig builds the config of a command: defaults, the file named by
// --config or FLEETMETER_CONFIG, the environment, then the flags in args.
// extra registers the command's own flags.
func parseConfig(env *cliEnv, name string, args []string, groups flagGroups, extra func(*flag.FlagSet)) (Config, []string, error) {
	cfg := DefaultConfig()
	path := env.getenv("FLEETMETER_CONFIG")
	for i, a := range args {
		for _, p := range []string{"--config=", "-config="} {
			if strings.HasPrefix(a, p) {
				path = strings.TrimPrefix(a, p)
			}
		}
		if (a == "--config" || a == "-config") && i+1 < len(args) {
			path = args[i+1]
		}
	}
	if path != "" {
		if err := cfg.loadFile(path); err != nil {
			return cfg, nil, err
		}
		cfg.file = path
	}
	if err := cfg.loadEnv(env.getenv); err != nil {
		return cfg, nil, err
	}
	fs := flag.NewFlagSet("fleetmeter "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a bad flag gets one line, not the whole flag list
	fs.String("config", path, "TOML config file (env FLEETMETER_CONFIG)")
	cfg.bindFlags(fs, groups)
	if extra != nil {
		extra(fs)
	}
	// Flags may come before or after the arguments (`backup FILE --data-dir
	// D` as well as `backup --data-dir D FILE`); after "--" all is arguments.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(env.stdout, "Usage of fleetmeter %s:\n", name)
				fs.SetOutput(env.stdout)
				fs.PrintDefaults()
				return cfg, nil, err
			}
			return cfg, nil, usageErr("%v (see fleetmeter %s --help)", err, name)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, fmt.Errorf("config: %w", err)
	}
	return cfg, positional, nil
}

// newLogger builds the one logger of the process; parts get children
// with a "component" attribute.
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // Validate checked it
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// A warning that repeats (a poll that fails the same way every 10 s
	// for days) is written at most every 30 s.
	return slog.New(newLimitedHandler(h, logRepeatEvery, time.Now))
}
