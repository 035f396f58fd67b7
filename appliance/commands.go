package appliance

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/fleetmeter/fleetmeter/host"
	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/ingest/pricing"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

func runServe(ctx context.Context, env *cliEnv, args []string) error {
	cfg, rest, err := parseConfig(env, "serve", args, flagsData|flagsSources|flagsServe, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	log := newLogger(cfg, env.stderr)
	app, err := New(cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()
	return app.Run(ctx)
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
	in := ingest.New(ic, db)
	if !once {
		return in.Run(ctx, cfg.PollInterval)
	}
	res, err := in.Step(ctx)
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
	cfg, asJSON, since, until := ra.cfg, ra.asJSON, ra.since, ra.until
	q := rollup.Query{Kind: kind, Since: ra.from, Until: ra.to}
	if kind == "host" {
		return hostReport(ctx, env, cfg, asJSON, since, until)
	}
	rep, err := usageReport(ctx, env, cfg, q, since, until)
	if err != nil {
		return err
	}
	return printReport(env, asJSON, rep)
}

// usageReport builds a usage report straight from transcripts when source
// dirs are given, else from the database, or through the daemon's API
// when the daemon holds the database.
func usageReport(ctx context.Context, env *cliEnv, cfg Config, q rollup.Query, since, until string) (rollup.Report, error) {
	loc, err := cfg.Location()
	if err != nil {
		return rollup.Report{}, err
	}
	if len(cfg.OpenClawDirs)+len(cfg.ClaudeDirs)+len(cfg.CodexDirs) > 0 {
		tally := rollup.NewTally(loc)
		c, err := ingestConfig(cfg, newLogger(cfg, env.stderr), true)
		if err != nil {
			return rollup.Report{}, err
		}
		if _, err := ingest.New(c, tally).Step(ctx); err != nil {
			return rollup.Report{}, err
		}
		return rollup.Build(tally, q)
	}
	if err := repriceOffline(ctx, cfg, env); err != nil {
		return rollup.Report{}, err
	}
	db, daemon, err := openForReading(cfg)
	if err != nil {
		return rollup.Report{}, err
	}
	if !daemon {
		defer db.Close()
		return rollup.Build(dbSource{db, loc}, q)
	}
	params := url.Values{}
	for k, v := range map[string]string{"since": since, "until": until, "tz": cfg.TZ} {
		if v != "" {
			params.Set(k, v)
		}
	}
	body, err := daemonGet(ctx, cfg, "/api/report/"+q.Kind, params)
	if err != nil {
		return rollup.Report{}, fmt.Errorf("%w: the database is held by a daemon that did not answer (%v)", storage.ErrLocked, err)
	}
	return rollup.DecodeReport(q.Kind, body)
}

// hostReport prints the daily host table from the database or the daemon.
func hostReport(ctx context.Context, env *cliEnv, cfg Config, asJSON bool, since, until string) error {
	if len(cfg.OpenClawDirs)+len(cfg.ClaudeDirs)+len(cfg.CodexDirs) > 0 {
		return usageErr("report host reads the database; it takes no transcript dirs")
	}
	from, to, err := parseRange(since, until)
	if err != nil {
		return usageErr("%v", err)
	}
	db, daemon, err := openForReading(cfg)
	if err != nil {
		return err
	}
	var rep host.Report
	if daemon {
		params := url.Values{}
		for k, v := range map[string]string{"since": since, "until": until} {
			if v != "" {
				params.Set(k, v)
			}
		}
		body, err := daemonGet(ctx, cfg, "/api/report/host", params)
		if err != nil {
			return fmt.Errorf("%w: the database is held by a daemon that did not answer (%v)", storage.ErrLocked, err)
		}
		if err := json.Unmarshal(body, &rep); err != nil {
			return fmt.Errorf("decode host report: %w", err)
		}
	} else {
		defer db.Close()
		if rep, err = host.LoadReport(db, from, to); err != nil {
			return err
		}
	}
	if asJSON {
		return printJSON(env, rep)
	}
	return host.WriteReportText(env.stdout, rep)
}

// reportArgs are the settings of a command that reports over a range.
type reportArgs struct {
	cfg          Config
	asJSON       bool
	since, until string // as given, for the daemon's API
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
	return storage.Open(cfg.DBPath(), storage.Options{Location: loc})
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
	db, daemon, err := openForReading(cfg)
	if err != nil {
		return err
	}
	var advice host.Advice
	if daemon {
		body, err := daemonGet(ctx, cfg, "/api/advice", nil)
		if err != nil {
			return fmt.Errorf("%w: the database is held by a daemon that did not answer (%v)", storage.ErrLocked, err)
		}
		if err := json.Unmarshal(body, &advice); err != nil {
			return fmt.Errorf("decode advice: %w", err)
		}
	} else {
		defer db.Close()
		typ, _, err := host.ResolveInstanceType(ctx, cfg.InstanceType, host.IMDSConfig{Enabled: cfg.EC2Metadata, Endpoint: cfg.IMDSEndpoint})
		if err != nil {
			fmt.Fprintf(env.stderr, "fleetmeter advise: instance type unknown: %v\n", err)
		}
		if advice, err = host.AdviseFrom(db, time.Now(), typ, host.DefaultThresholds()); err != nil {
			return err
		}
	}
	if asJSON {
		return printJSON(env, advice)
	}
	return host.WriteAdviceText(env.stdout, advice)
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
	// Exit non-zero when ingest is failing, so `fleetmeter health` can
	// drive a monitor or a systemd watchdog script.
	var st struct {
		Ingest struct {
			LastError string `json:"last_error"`
		} `json:"ingest"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	if st.Ingest.LastError != "" {
		return fmt.Errorf("unhealthy: the last ingest step failed: %s", st.Ingest.LastError)
	}
	return nil
}

// dbSource reads reports from the database. When the file's rollups were
// cut in another zone than the report asks for, days are recut from the
// ledger instead.
type dbSource struct {
	*storage.DB
	loc *time.Location
}

func (s dbSource) Location() *time.Location { return s.loc }

func (s dbSource) DimRows(kind byte, from, to int32) ([]storage.Row, error) {
	if s.DB.Location().String() == s.loc.String() {
		return s.DB.DimRows(kind, from, to)
	}
	tally := rollup.NewTally(s.loc)
	fromMs, toMs := int64(math.MinInt64), int64(math.MaxInt64)
	if from != rollup.MinDay {
		fromMs = storage.DayStartMillis(from-1, time.UTC) // a day of slack either side for zone offsets
	}
	if to != rollup.MaxDay {
		toMs = storage.DayStartMillis(to+2, time.UTC)
	}
	var batch storage.Batch
	err := s.DB.Ledger(fromMs, toMs, func(u *storage.Usage) error {
		batch.Records = append(batch.Records, *u)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := tally.Apply(&batch); err != nil {
		return nil, err
	}
	return tally.DimRows(kind, from, to)
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
			return daemonStream(ctx, cfg, "/api/backup", nil, w, 1<<40)
		})
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

// writeFileAtomic writes path through a temp file, fsync and rename, so
// a failed backup never leaves a torn file under the final name.
func writeFileAtomic(path string, write func(io.Writer) error) error {
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
	fmt.Fprintf(env.stdout, "fleetmeter %s (price table: pydantic/genai-prices %s, MIT)\n", Version, pricing.TableDate)
	return nil
}
