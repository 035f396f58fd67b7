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

	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// Version, Commit and BuildDate are set at build time (scripts/release:
// -ldflags "-X github.com/fleetmeter/fleetmeter/appliance.Version=…");
// without them version() and buildInfo() read the build info: the module
// version of `go install …@v1.2.0`, the commit and time of a git checkout.
var (
	Version   = "dev"
	Commit    = ""
	BuildDate = ""
)

// errUsage marks a command line we could not make sense of, or a value
// (a flag's, an argument's, an environment variable's or the config
// file's) we cannot use: exit code 2, whichever it was.
var errUsage = errors.New("usage")

// exitUsage is the exit code of every bad command line and bad value.
const exitUsage = 2

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

// helpText is what `fleetmeter NAME --help` says besides the flags: a
// sentence, the arguments, and an example.
type helpText struct {
	sentence, args, example string
}

// helps are the help texts of every command and subcommand, by the name
// parseConfig is given ("report", "sync status").
var helps = map[string]helpText{
	"serve":          {"The daemon: discovers and tails transcripts, samples the host, rolls up, serves the UI, the API and /metrics on --listen and on its unix socket, runs alerts and upstream sync.", "", "fleetmeter serve --tz Europe/Berlin"},
	"ingest":         {"Reads transcripts into the database: one pass with --once, else the ingest loop alone (the daemon must be stopped).", "", "fleetmeter ingest --once --openclaw-dir ~/.openclaw"},
	"report":         {"A usage report from the database (through the daemon while it runs) or, with --openclaw-dir, --claude-dir or --codex-dir, straight from transcripts. KIND is daily, weekly, monthly, session, agent, user, model, host or blocks.", "KIND", "fleetmeter report daily --since 7d --agent main --top 5"},
	"prices":         {"The models in your data and the price each gets, unpriced ones first; `prices update` fetches a newer price table.", "[update]", "fleetmeter prices --since 2026-11-01"},
	"prices update":  {"Fetches the genai-prices feed (or reads a file), validates it, keeps it in the data dir and reprices the ledger.", "", "fleetmeter prices update --from ./data.json"},
	"alerts":         {"Every alert rule with its current value and state; `alerts test RULE` sends a test message to the rule's receivers; `alerts ack RULE` and `alerts snooze RULE DURATION` (0 lifts it) change its state in the running daemon, through its socket.", "[test RULE | ack RULE | snooze RULE DURATION]", "fleetmeter alerts snooze team-day 2h"},
	"budget check":   {"Every budget's spend; exits 1 when one is crossed (for cron and CI).", "", "fleetmeter budget check --json"},
	"advise":         {"Scaling advice over the last 7 days of host samples: scale_up, scale_down, hold or investigate, with the evidence.", "", "fleetmeter advise --instance-type t3.large"},
	"health":         {"Asks the running daemon how it is doing: one line, the status JSON with --json; exits 1 when no daemon answers or anything is wrong.", "", "fleetmeter health --json"},
	"rollup rebuild": {"Recomputes the daily, weekly and session rows from the ledger (the daemon must be stopped).", "", "fleetmeter rollup rebuild --tz Europe/Berlin"},
	"backup":         {"Writes a consistent copy of the database to FILE, or to a dated file in a directory (through the daemon while it runs), read back before it takes its name; an existing FILE is kept unless --force.", "FILE|DIR", "fleetmeter backup /var/backups/fleetmeter/"},
	"repair":         {"Keeps a damaged database aside, salvages what it can read into a new file, then reads the transcripts still on disk again.", "", "fleetmeter repair --openclaw-dir ~/.openclaw"},
	"login":          {"Prints a one-time URL (valid once, for an hour) that logs a browser in to the running daemon.", "", "fleetmeter login"},
	"compact":        {"Copies the live data into a smaller file (the daemon must be stopped).", "", "fleetmeter compact --data-dir /var/lib/fleetmeter"},
	"migrate":        {"Creates or upgrades the upstream (Supabase) schema; once per project, with an admin DSN.", "", "FLEETMETER_MIGRATE_DSN_FILE=/root/admin.dsn fleetmeter migrate"},
	"sync":           {"Sends the rollups upstream: one round with --once (exit 3 when rows are left), else the sync loop alone; `sync status` says how sync is doing.", "[status]", "fleetmeter sync --once"},
	"sync status":    {"How upstream sync is doing: state, last success and error, pending and quarantined rows, lag.", "", "fleetmeter sync status --json"},
	"config":         {"Prints the effective configuration (defaults, file, environment, flags), secrets masked.", "", "fleetmeter config --config /etc/fleetmeter/fleetmeter.toml"},
	"install":        {"As root: installs fleetmeter as a hardened systemd service, with read access to the transcripts it finds.", "", "sudo fleetmeter install --dry-run"},
	"uninstall":      {"As root: stops and removes the service, its unit, its user and its access; keeps the data unless --purge.", "", "sudo fleetmeter uninstall --dry-run"},
	"doctor":         {"Checks the setup end to end and says what to fix: daemon, sources, database, sync, notifiers, clock.", "", "fleetmeter doctor --json"},
	"audit":          {"A security audit of this host: each check with its severity, evidence and fix.", "", "sudo fleetmeter audit --profile strict"},
	"version":        {"Prints the version, the commit, the build date and the price table's date.", "", "fleetmeter version"},
}

// printHelp writes a command's help: its sentence, its usage line, only
// its flags, and an example.
func printHelp(w io.Writer, name string, fs *flag.FlagSet) {
	h := helps[name]
	if h.sentence != "" {
		fmt.Fprintln(w, h.sentence)
		fmt.Fprintln(w)
	}
	args := ""
	if h.args != "" {
		args = " " + h.args
	}
	fmt.Fprintf(w, "Usage: fleetmeter %s%s [flags]   (flags may come before or after arguments)\n", name, args)
	if fs != nil {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if h.example != "" {
		fmt.Fprintf(w, "\nExample:\n  %s\n", h.example)
	}
}

// cliEnv is what commands write to and read from: injected so tests run
// the CLI in-process.
type cliEnv struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	environ        func() []string // KEY=value; nil: the environment is not checked for typos
	// process: the CLI owns this process (Main, not a test), so a
	// one-shot command may tune the runtime (oneShotMemory).
	process bool
	// unreadable are the transcripts a read straight from transcripts
	// could not read (cliReader): the command prints what it has, then
	// exits 1 naming them.
	unreadable     []ingest.UnreadableFile
	unreadableMore int // past the ones named
}

func commands() []command {
	return []command{
		{"serve", "run the daemon: ingest transcripts, sample the host, serve UI, API and /metrics", runServe},
		{"ingest", "read transcripts into the database (--once: one pass, then exit)", runIngest},
		{"report", "usage report: daily|weekly|monthly|session|agent|user|model|host|blocks", runReport},
		{"prices", "the models in your data and the price each gets; unpriced ones first", runPrices},
		{"alerts", "every alert rule with its current value and state (test, ack, snooze RULE)", runAlerts},
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
	return run(ctx, args, &cliEnv{stdout: stdout, stderr: stderr, getenv: os.Getenv, environ: os.Environ, process: true})
}

func run(ctx context.Context, args []string, env *cliEnv) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args = []string{"version"}
	}
	if len(args) == 2 && args[0] == "help" {
		args = []string{args[1], "--help"} // `fleetmeter help report`
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		var exit *exitError
		// An error quotes paths, names and values: untrusted text, escaped
		// as every text output escapes it (rollup.Clean).
		switch {
		case errors.As(err, &exit):
			fmt.Fprintf(env.stderr, "fleetmeter %s: %s\n", c.name, rollup.CleanLines(err.Error()))
			return exit.code
		case err == nil && len(env.unreadable) > 0:
			fmt.Fprintf(env.stderr, "fleetmeter %s: %s\n", c.name, rollup.Clean(unreadableLine(env.unreadable, env.unreadableMore)))
			return 1
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage), errors.Is(err, rollup.ErrBadQuery):
			fmt.Fprintf(env.stderr, "fleetmeter %s: %s\n", c.name, rollup.CleanLines(strings.TrimPrefix(err.Error(), "usage: ")))
			return exitUsage
		case errors.Is(err, storage.ErrCorrupt):
			fmt.Fprintf(env.stderr, "fleetmeter %s: %s; run `fleetmeter repair` (it keeps the damaged file aside, salvages what it can read and reads the transcripts again)\n", c.name, rollup.Clean(oneLine(err.Error())))
			return exitDamaged
		default:
			fmt.Fprintf(env.stderr, "fleetmeter %s: %s\n", c.name, rollup.CleanLines(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(env.stderr, "fleetmeter: unknown command %q (see fleetmeter --help)\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "fleetmeter: what an AI agent fleet costs, and whether its host keeps up.")
	fmt.Fprintln(w, "\nUsage: fleetmeter COMMAND [flags]   (fleetmeter COMMAND --help for its arguments, flags and an example)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nExit codes: 0 ok; 1 failed (each command says why); 2 a command line or a value that cannot be used")
	fmt.Fprintln(w, "(unknown command, flag or argument; a bad date, zone, number, name or config value); 3 `sync --once` left rows;")
	fmt.Fprintln(w, "65 a damaged database file.")
}

// unreadableLine says which transcripts could not be read, in one line.
func unreadableLine(files []ingest.UnreadableFile, more int) string {
	named := make([]string, len(files))
	for i, f := range files {
		named[i] = fmt.Sprintf("%s (%s)", f.Path, f.Error)
	}
	tail := ""
	if more > 0 {
		tail = fmt.Sprintf(" and %d more", more)
	}
	return fmt.Sprintf("%s could not be read, the figures above miss their calls: %s%s",
		plural(len(files)+more, "transcript file"), strings.Join(named, ", "), tail)
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
			return cfg, nil, usageErr("%v", err)
		}
		cfg.file = path
	}
	if err := cfg.loadEnv(env.getenv); err != nil {
		return cfg, nil, usageErr("%v", err)
	}
	if env.environ != nil {
		// Once per command: a typo would otherwise leave a default in
		// place without a word (the value may be a secret: not printed).
		for _, w := range unknownEnv(env.environ()) {
			fmt.Fprintf(env.stderr, "fleetmeter: warning: %s\n", w)
		}
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
				printHelp(env.stdout, name, fs)
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
	fs.Visit(func(f *flag.Flag) { cfg.setOrigin(flagKey(f.Name), "flag --"+f.Name) })
	if err := cfg.Validate(); err != nil {
		return cfg, nil, usageErr("%s", cfg.sourced(err))
	}
	cfg.TZ, _ = rollup.ZoneName(cfg.TZ) // Validate loaded it: the zone's own spelling
	return cfg, positional, nil
}

// boolFlags are the flags that take no value, for finding a subcommand
// among flags that may come before it.
var boolFlags = map[string]bool{"json": true, "csv": true, "once": true, "retry-quarantined": true, "no-discover": true,
	"ec2-metadata": true, "dry-run": true, "purge": true, "no-start": true, "h": true, "help": true}

// splitSub finds a subcommand word in args wherever the flags put it
// (`sync --json status` as well as `sync status --json`): the first
// argument that is neither a flag nor a flag's value. It returns the
// word ("" when the first argument is none of subs) and the other args.
func splitSub(args []string, subs ...string) (string, []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") {
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && !boolFlags[name] {
				i++ // its value
			}
			continue
		}
		for _, s := range subs {
			if a == s {
				return s, append(append([]string{}, args[:i]...), args[i+1:]...)
			}
		}
		return "", args
	}
	return "", args
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
