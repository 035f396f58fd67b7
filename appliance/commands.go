package appliance

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/ingest/pricing"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

func runServe(ctx context.Context, env *cliEnv, args []string) error {
	var demo bool
	cfg, rest, err := parseConfig(env, "serve", args, flagsData|flagsSources|flagsServe, func(fs *flag.FlagSet) {
		fs.BoolVar(&demo, "demo", false, "serve a generated 90-day demo fleet from a temporary dir (no login; nothing real is read or written)")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	if demo {
		return runDemo(ctx, env, cfg)
	}
	log := newLogger(cfg, env.stderr)
	// A monitor must not push the host it watches into swap: past this
	// soft limit the collector works harder rather than the heap growing.
	if env.getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	app, err := New(cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()
	if f, ok := env.stderr.(*os.File); ok && isTerminal(f) {
		app.LoginOut = env.stderr // a login URL on a terminal, never into a log
	}
	return app.Run(ctx)
}

// memoryLimit is serve's soft memory limit (GOMEMLIMIT overrides it).
const memoryLimit = 200 << 20

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runIngest(ctx context.Context, env *cliEnv, args []string) error {
	var once bool
	cfg, rest, err := parseConfig(env, "ingest", args, flagsData|flagsSources|flagsServe, func(fs *flag.FlagSet) {
		fs.BoolVar(&once, "once", false, "one pass over every transcript, then exit")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	log := newLogger(cfg, env.stderr)
	db, err := openWritable(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	ic, err := ingestConfig(cfg, log, false)
	if err != nil {
		return err
	}
	if _, err := priceLedger(ctx, db, ic.Pricer.(*pricing.Pricer), time.Now(), log.With("component", "pricing")); err != nil {
		return err
	}
	onProgress, finish := terminalProgress(env.stderr)
	ic.OnProgress = onProgress
	in := ingest.New(ic, capLedger(db, cfg))
	if !once {
		return in.Run(ctx, cfg.PollInterval)
	}
	res, err := in.Step(ctx)
	finish()
	if err != nil {
		return err
	}
	st := in.Status()
	fmt.Fprintf(env.stdout, "ingested %d new model calls from %d files (%d read, %.1f MB); skipped: %d duplicate, %d not model calls, %d zero usage, %d malformed; %d files could not be read\n",
		res.Added, res.Files, res.Read, float64(res.Bytes)/1e6, st.Skips.Duplicate, st.Skips.NotModelCall, st.Skips.ZeroUsage, st.Skips.Malformed, st.FileErrors)
	return nil
}

func runReport(ctx context.Context, env *cliEnv, args []string) error {
	kinds := append(rollup.Kinds(), "host")
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(env.stdout, "Usage: fleetmeter report KIND [--json] [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--tz ZONE] [--openclaw-dir DIR]...\nKIND is one of %s.\nWith --openclaw-dir, --claude-dir or --codex-dir, transcripts are read directly and no database is touched;\nelse the database is read, through the daemon's API when `fleetmeter serve` holds it.\n", strings.Join(kinds, ", "))
		if len(args) == 0 {
			return usageErr("missing report kind")
		}
		return nil
	}
	kind := args[0]
	if !slices.Contains(kinds, kind) {
		return usageErr("unknown report %q (want one of %s)", kind, strings.Join(kinds, ", "))
	}
	ra, err := parseReportArgs(env, "report "+kind, args[1:])
	if err != nil {
		return err
	}
	q := rollup.Query{Kind: kind, Since: ra.from, Until: ra.to, TZ: ra.cfg.TZ}
	if kind == rollup.HostKind {
		if hasSourceDirs(ra.cfg) {
			return usageErr("report host reads the database; it takes no transcript dirs")
		}
		reader, done, err := cliReader(ctx, env, ra.cfg)
		if err != nil {
			return err
		}
		defer done()
		rep, err := reader.HostReport(ctx, q)
		if err != nil {
			return err
		}
		if ra.asJSON {
			return printJSON(env, rep)
		}
		return rollup.WriteHostTable(env.stdout, rep)
	}
	rep, err := usageReport(ctx, env, ra.cfg, q, ra.since, ra.until)
	if err != nil {
		return err
	}
	return printReport(env, ra.asJSON, rep)
}

// usageReport builds a usage report through cliReader: straight from
// transcripts when source dirs are given, else from the database or the
// daemon that holds it. since and until are what the user typed; q holds
// the same range as day numbers. An empty q.TZ means the configured zone.
func usageReport(ctx context.Context, env *cliEnv, cfg Config, q rollup.Query, since, until string) (rollup.Report, error) {
	reader, done, err := cliReader(ctx, env, cfg)
	if err != nil {
		return rollup.Report{}, err
	}
	defer done()
	if q.TZ == "" {
		q.TZ = cfg.TZ
	}
	return reader.Report(ctx, q)
}

// reportArgs are the settings of a command that reports over a range.
type reportArgs struct {
	cfg          Config
	asJSON       bool
	since, until string // as given
	from, to     int32  // day numbers, open ends as rollup.MinDay/MaxDay
}

// parseReportArgs parses the config flags plus --json, --since and --until;
// no arguments are allowed.
func parseReportArgs(env *cliEnv, name string, args []string) (reportArgs, error) {
	var ra reportArgs
	cfg, rest, err := parseConfig(env, name, args, flagsData|flagsSources|flagsServe, func(fs *flag.FlagSet) {
		fs.BoolVar(&ra.asJSON, "json", false, "print JSON")
		fs.StringVar(&ra.since, "since", "", "first day, YYYY-MM-DD (inclusive)")
		fs.StringVar(&ra.until, "until", "", "last day, YYYY-MM-DD (inclusive)")
	})
	if err != nil {
		return ra, err
	}
	if len(rest) > 0 {
		return ra, usageErr("unexpected argument %q", rest[0])
	}
	ra.cfg = cfg
	if ra.from, ra.to, err = parseRange(ra.since, ra.until); err != nil {
		return ra, usageErr("%v", err)
	}
	return ra, nil
}

// openWritable opens the database for a command that writes it; it fails
// at once when the daemon holds it.
func openWritable(cfg Config) (*storage.DB, error) {
	loc, err := cfg.Location()
	if err != nil {
		return nil, err
	}
	return openDB(cfg, loc, true)
}

// openDB opens the database to write, in a data dir of this user's only
// (else the file and what lands beside it would end up another account's),
// and removes the backup copies a killed daemon left there. verify reads
// every page first: a damaged file is refused at once (a second or so per
// GB), before anything is written to it.
func openDB(cfg Config, loc *time.Location, verify bool) (*storage.DB, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := checkOwner(cfg.DataDir, "data dir"); err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.DBPath()); err == nil {
		if err := checkOwner(cfg.DBPath(), "database"); err != nil {
			return nil, err
		}
	}
	db, err := storage.Open(cfg.DBPath(), storage.Options{Location: loc, Verify: verify})
	if err != nil {
		return nil, err
	}
	leftovers, _ := filepath.Glob(filepath.Join(cfg.DataDir, storage.BackupTempPrefix+"*"))
	for _, f := range leftovers {
		os.Remove(f)
	}
	return db, nil
}

func printReport(env *cliEnv, asJSON bool, rep rollup.Report) error {
	if asJSON {
		return printJSON(env, rep)
	}
	return rollup.WriteTable(env.stdout, rep)
}

func printJSON(env *cliEnv, v any) error {
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runAdvise(ctx context.Context, env *cliEnv, args []string) error {
	var asJSON bool
	cfg, rest, err := parseConfig(env, "advise", args, flagsData|flagsServe, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	reader, done, err := cliReader(ctx, env, cfg)
	if err != nil {
		return err
	}
	defer done()
	advice, err := reader.Advice(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, advice)
	}
	return rollup.WriteAdvice(env.stdout, advice)
}

func runHealth(ctx context.Context, env *cliEnv, args []string) error {
	cfg, rest, err := parseConfig(env, "health", args, flagsData|flagsServe, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	body, err := daemonGet(ctx, cfg, "/api/status", nil)
	if err != nil {
		return err
	}
	if err := printJSON(env, json.RawMessage(body)); err != nil {
		return err
	}
	// Exit non-zero when anything is wrong (a failing ingest step, a full
	// disk…), so `fleetmeter health` can drive a monitor or a watchdog.
	var st struct {
		Healthy  bool     `json:"healthy"`
		Problems []string `json:"problems"`
		Ingest   struct {
			Progress *ingest.Progress `json:"progress"`
		} `json:"ingest"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	if p := st.Ingest.Progress; p != nil && p.Bytes > 0 {
		// A first run over months of history: say how far it is.
		fmt.Fprintf(env.stderr, "catching up: %d of %d files, %.1f of %.1f MB (%.0f%%), %.1f MB/s, about %s left\n",
			p.FilesDone, p.Files, float64(p.BytesDone)/1e6, float64(p.Bytes)/1e6, 100*float64(p.BytesDone)/float64(p.Bytes),
			p.RateBytes/1e6, p.Left.Round(time.Second))
	}
	if !st.Healthy {
		return fmt.Errorf("unhealthy: %s", strings.Join(st.Problems, "; "))
	}
	return nil
}

func runRollup(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(env.stdout, "Usage: fleetmeter rollup rebuild [--data-dir DIR] [--tz ZONE]\nRecomputes the daily, weekly and session rows from the ledger (the daemon must be stopped).")
		return nil
	}
	if len(args) == 0 || args[0] != "rebuild" {
		return usageErr("want `fleetmeter rollup rebuild`")
	}
	cfg, rest, err := parseConfig(env, "rollup rebuild", args[1:], flagsData, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	db, err := openWritable(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	if err := db.RebuildRollups(); err != nil {
		return err
	}
	st, err := db.Stats()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "rebuilt %d daily rows and %d sessions from %d ledger records in %s\n",
		st.DailyRows, st.Sessions, st.LedgerRecords, time.Since(start).Round(time.Millisecond))
	return nil
}

func runBackup(ctx context.Context, env *cliEnv, args []string) error {
	cfg, rest, err := parseConfig(env, "backup", args, flagsData|flagsServe, nil)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageErr("want `fleetmeter backup FILE`")
	}
	dst := rest[0]
	db, daemon, err := openForReading(cfg)
	if err != nil {
		return err
	}
	if daemon {
		// The daemon holds the file: it streams a consistent copy.
		err := writeFileAtomic(dst, func(w io.Writer) error {
			return daemonStream(ctx, cfg, http.MethodGet, "/api/backup", nil, w, 1<<40)
		}, storage.Verify)
		if err != nil {
			return fmt.Errorf("backup to %s through the daemon: %w", dst, err)
		}
	} else {
		defer db.Close()
		if err := db.Backup(dst); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.stdout, "backed up %s to %s\n", cfg.DBPath(), dst)
	return nil
}

// writeFileAtomic writes path through a temp file, fsync, check and
// rename, so a failed or damaged backup never takes the final name.
func writeFileAtomic(path string, write func(io.Writer) error, check func(string) error) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = check(tmp)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func runCompact(ctx context.Context, env *cliEnv, args []string) error {
	cfg, rest, err := parseConfig(env, "compact", args, flagsData, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	before, after, err := storage.Compact(cfg.DBPath())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "compacted %s: %.1f MB → %.1f MB\n", cfg.DBPath(), float64(before)/1e6, float64(after)/1e6)
	return nil
}

func runConfig(ctx context.Context, env *cliEnv, args []string) error {
	cfg, rest, err := parseConfig(env, "config", args, flagsData|flagsSources|flagsServe, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	return toml.NewEncoder(env.stdout).Encode(cfg.Masked())
}

func runVersion(ctx context.Context, env *cliEnv, args []string) error {
	commit, date := buildInfo()
	fmt.Fprintf(env.stdout, "fleetmeter %s\ncommit:      %s\nbuilt:       %s\nprice table: pydantic/genai-prices %s (MIT)\n",
		Version, commit, date, pricing.TableDate)
	return nil
}

// buildInfo is the commit and build date: from -ldflags, else from the
// build info a git checkout leaves in the binary, else "unknown".
func buildInfo() (commit, date string) {
	commit, date = Commit, BuildDate
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && commit == "":
				commit = s.Value
			case s.Key == "vcs.time" && date == "":
				date = s.Value
			case s.Key == "vcs.modified" && s.Value == "true" && Commit == "":
				defer func() { commit += " (modified)" }()
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	if date == "" {
		date = "unknown"
	}
	return commit, date
}
