package appliance

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
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

// onceBatchFiles bounds the files one commit of `ingest --once` holds.
const onceBatchFiles = 8192

func runIngest(ctx context.Context, env *cliEnv, args []string) error {
	var once bool
	cfg, rest, err := parseConfig(env, "ingest", args, flagsData|flagsZone|flagsSources|flagsPoll, func(fs *flag.FlagSet) {
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
		return heldBy(ctx, cfg, err, "it ingests the transcripts itself: its reports are current (fleetmeter report daily, fleetmeter health), and fleetmeter report --openclaw-dir DIR (or --claude-dir, --codex-dir) reads transcripts without the database")
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
	if once {
		// Fewer, larger commits than the daemon's, whose memory must stay
		// low: a cold pass over 10k small files commits 4 times, not 8
		// (-10 % wall time, +4 MB peak).
		ic.BatchFiles = onceBatchFiles
	}
	in := ingest.New(ic, capLedger(db, cfg))
	if !once {
		return in.Run(ctx, cfg.PollInterval)
	}
	if env.process {
		// One pass and exit: no collection before 40 MB of heap (a cold
		// pass over the 100 MiB corpus: 12 % less CPU and wall time).
		oneShotMemory()
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

// runReport is `fleetmeter report KIND`: a usage report, the host report
// or Claude Code's 5-hour blocks, with the flags before or after KIND.
func runReport(ctx context.Context, env *cliEnv, args []string) error {
	ra, err := parseReportArgs(env, "report", args, true)
	if err != nil {
		return err
	}
	kinds := append(rollup.Kinds(), rollup.HostKind, "blocks")
	if len(ra.rest) == 0 {
		return usageErr("missing report kind (want one of %s; see fleetmeter report --help)", strings.Join(kinds, ", "))
	}
	if len(ra.rest) > 1 {
		return usageErr("unexpected argument %q", ra.rest[1])
	}
	kind := ra.rest[0]
	if !slices.Contains(kinds, kind) {
		return usageErr("unknown report %q (want one of %s)", kind, strings.Join(kinds, ", "))
	}
	if kind == "blocks" || kind == rollup.HostKind {
		if !ra.filter.Empty() || ra.top > 0 || ra.order != "" {
			return usageErr("report %s takes no --agent, --user, --model, --team, --source, --top or --order", kind)
		}
	}
	if kind == "blocks" {
		return reportBlocks(ctx, env, ra)
	}
	if kind == rollup.HostKind && hasSourceDirs(ra.cfg) {
		return usageErr("report host reads the database; it takes no transcript dirs")
	}
	if kind != rollup.HostKind {
		// Bad values fail before a transcript is read or a daemon asked.
		early := rollup.Query{Kind: kind, Since: rollup.MinDay, Until: rollup.MaxDay, Filter: ra.filter, Top: ra.top, Order: ra.order}
		if err := early.Validate(); err != nil {
			return err
		}
	}
	reader, done, err := cliReader(ctx, env, ra.cfg)
	if err != nil {
		return err
	}
	defer done()
	q, err := ra.query(ctx, kind, reader)
	if err != nil {
		return err
	}
	if kind == rollup.HostKind {
		rep, err := reader.HostReport(ctx, q)
		if err != nil {
			return err
		}
		switch {
		case ra.asJSON:
			return printJSON(env, rep)
		case ra.asCSV:
			return writeCSV(env.stdout, rep.Host)
		}
		return rollup.WriteHostTable(env.stdout, rep, rollup.TextOptions{Width: termWidth(env), Query: q})
	}
	rep, err := reader.Report(ctx, q)
	if err != nil {
		return err
	}
	return printReport(env, ra, q, rep)
}

// usageReport builds a usage report through cliReader: straight from
// transcripts when source dirs are given, else from the database or the
// daemon that holds it.
func usageReport(ctx context.Context, env *cliEnv, ra reportArgs, kind string) (rollup.Report, rollup.Query, error) {
	reader, done, err := cliReader(ctx, env, ra.cfg)
	if err != nil {
		return rollup.Report{}, rollup.Query{}, err
	}
	defer done()
	q, err := ra.query(ctx, kind, reader)
	if err != nil {
		return rollup.Report{}, q, err
	}
	rep, err := reader.Report(ctx, q)
	return rep, q, err
}

// reportArgs are the settings of a command that reports over a range.
type reportArgs struct {
	cfg           Config
	asJSON, asCSV bool
	since, until  string // as given
	filter        rollup.Filter
	top           int
	order         string
	rest          []string // the arguments
}

// parseReportArgs parses the config flags plus --json, --csv, --since and
// --until, and with filters the filters, --top and --order.
func parseReportArgs(env *cliEnv, name string, args []string, filters bool) (reportArgs, error) {
	var ra reportArgs
	var top string
	cfg, rest, err := parseConfig(env, name, args, flagsData|flagsZone|flagsSources, func(fs *flag.FlagSet) {
		fs.BoolVar(&ra.asJSON, "json", false, "print JSON")
		fs.BoolVar(&ra.asCSV, "csv", false, "print CSV: one line per row, the JSON names as the header")
		fs.StringVar(&ra.since, "since", "", "first day (inclusive): "+rollup.DateForms)
		fs.StringVar(&ra.until, "until", "", "last day (inclusive), in the same forms")
		if f := fs.Lookup("tz"); f != nil {
			f.Usage, f.DefValue = "IANA time zone that cuts days and weeks, any letter case (env FLEETMETER_TZ; default: the zone the data was cut in)", ""
		}
		if !filters {
			return
		}
		fs.StringVar(&ra.filter.Agent, "agent", "", "only this agent")
		fs.StringVar(&ra.filter.User, "user", "", "only this user (<channel>:<sender id>, e.g. telegram:123)")
		fs.StringVar(&ra.filter.Model, "model", "", "only this model (model or provider/model)")
		fs.StringVar(&ra.filter.Team, "team", "", "only the agents of this team ([[agents]] team in the config)")
		fs.StringVar(&ra.filter.Source, "source", "", "only this source: "+strings.Join(rollup.Sources, ", "))
		fs.StringVar(&top, "top", "", "only the N rows of highest cost, N above 0 (the totals still cover all)")
		fs.StringVar(&ra.order, "order", "", "asc or desc: by date for daily, weekly and monthly (default asc), by cost for the rest (default desc)")
	})
	if err != nil {
		return ra, err
	}
	ra.cfg, ra.rest = cfg, rest
	if ra.asJSON && ra.asCSV {
		return ra, usageErr("--json and --csv: choose one")
	}
	if ra.top, err = rollup.ParseTop(top); err != nil { // one rule with the API's ?top=
		return ra, usageErr("%v", err)
	}
	for name, d := range map[string]string{"since": ra.since, "until": ra.until} {
		if _, err := rollup.ParseDate(d, 0, true); d != "" && err != nil {
			return ra, usageErr("%s: %v", name, err) // before any transcript is read
		}
	}
	return ra, nil
}

// zoneReader is a reader that knows the zone of its data.
type zoneReader interface {
	Location() *time.Location
}

// query is the query of a report kind: relative dates ("7d", "yesterday")
// count in the zone the report is cut in (--tz, else the data's zone).
func (ra reportArgs) query(ctx context.Context, kind string, reader rollup.Reader) (rollup.Query, error) {
	q := rollup.Query{Kind: kind, Since: rollup.MinDay, Until: rollup.MaxDay, Filter: ra.filter, Top: ra.top, Order: ra.order}
	if ra.cfg.Origin("tz") != "" {
		q.TZ = ra.cfg.TZ
	}
	zone := func() (*time.Location, error) {
		if q.TZ != "" {
			return rollup.LoadZone(q.TZ)
		}
		switch r := reader.(type) {
		case zoneReader:
			return r.Location(), nil
		case daemonReader:
			return r.zone(ctx)
		}
		return ra.cfg.Location()
	}
	var err error
	for _, d := range []struct {
		name string
		in   string
		dst  *int32
	}{{"since", ra.since, &q.Since}, {"until", ra.until, &q.Until}} {
		if d.in == "" {
			continue
		}
		today := int32(0)
		if _, err := rollup.ParseDate(d.in, 0, false); err != nil { // relative: needs today
			loc, err := zone()
			if err != nil {
				return q, err
			}
			today = storage.DayNumber(time.Now().UnixMilli(), loc)
		}
		if *d.dst, err = rollup.ParseDate(d.in, today, true); err != nil {
			return q, usageErr("%s: %v", d.name, err)
		}
	}
	if kind == "blocks" {
		return q, nil
	}
	return q, q.Validate()
}

// heldBy explains err when it is storage.ErrLocked: who holds the
// database — a daemon that answers (its version and socket), and then
// what to do instead (instead; "" when there is nothing but to stop it)
// and how to stop it, said once, or a process that does not — in place
// of the lock's bare "locked by another fleetmeter process". Other
// errors pass unchanged.
func heldBy(ctx context.Context, cfg Config, err error, instead string) error {
	if !errors.Is(err, storage.ErrLocked) {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var st struct {
		Version string `json:"version"`
	}
	body, derr := daemonGet(ctx, cfg, "/api/status", nil)
	if derr == nil && json.Unmarshal(body, &st) == nil {
		sock, _ := findSocket(cfg) // it just answered there
		const stop = "stop the daemon (sudo systemctl stop fleetmeter, or end its fleetmeter serve), run this again, then start it again"
		if instead != "" {
			return fmt.Errorf("%w: a fleetmeter daemon is running (fleetmeter %s, socket %s) and holds %s; %s; or %s",
				storage.ErrLocked, st.Version, sock, cfg.DBPath(), instead, stop)
		}
		return fmt.Errorf("%w: a fleetmeter daemon is running (fleetmeter %s, socket %s) and holds %s: %s",
			storage.ErrLocked, st.Version, sock, cfg.DBPath(), stop)
	}
	return fmt.Errorf("%w: %s is held by a process that does not answer as a daemon (%v): check that only one fleetmeter runs (systemctl status fleetmeter; ps -C fleetmeter), or point --data-dir elsewhere",
		storage.ErrLocked, cfg.DBPath(), derr)
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

// printReport prints a usage report as --json, --csv or a table.
func printReport(env *cliEnv, ra reportArgs, q rollup.Query, rep rollup.Report) error {
	switch {
	case ra.asJSON:
		return printJSON(env, rep)
	case ra.asCSV:
		return writeCSV(env.stdout, rep.Rows)
	}
	return rollup.WriteReport(env.stdout, rep, rollup.TextOptions{Width: termWidth(env), Query: q, Transcripts: hasSourceDirs(ra.cfg)})
}

func printJSON(env *cliEnv, v any) error {
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runAdvise(ctx context.Context, env *cliEnv, args []string) error {
	var asJSON bool
	cfg, rest, err := parseConfig(env, "advise", args, flagsData|flagsInstance, func(fs *flag.FlagSet) {
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
	// An explicit type (--instance-type, its variable or the config file)
	// is asked of the daemon too; without one the daemon's own applies.
	advice, err := reader.Advice(ctx, cfg.InstanceType)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, advice)
	}
	return rollup.WriteAdvice(env.stdout, advice, termWidth(env))
}

func runHealth(ctx context.Context, env *cliEnv, args []string) error {
	var asJSON bool
	cfg, rest, err := parseConfig(env, "health", args, flagsData, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the daemon's status JSON (/api/status)")
	})
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
	if asJSON {
		if err := printJSON(env, json.RawMessage(body)); err != nil {
			return err
		}
	}
	// Exit non-zero when anything is wrong (a failing ingest step, a full
	// disk…), so `fleetmeter health` can drive a monitor or a watchdog.
	var st healthStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	if !asJSON {
		fmt.Fprintln(env.stdout, st.summary(time.Now()))
		for _, f := range st.Ingest.MalformedFiles {
			fmt.Fprintf(env.stdout, "  malformed lines: %s in %s\n", rollup.Count(f.Lines), rollup.Clean(f.Path))
		}
		if n := st.Ingest.MalformedOther; n > 0 {
			fmt.Fprintf(env.stdout, "  malformed lines: %s more in other files\n", rollup.Count(n))
		}
	}
	if p := st.Ingest.Progress; p != nil {
		// A first run over months of history: say how far it is.
		fmt.Fprintf(env.stderr, "catching up: %s, %.1f MB/s, about %s left\n", catchUp(p), p.RateBytes/1e6, p.Left.Round(time.Second))
	}
	if !st.Healthy {
		return fmt.Errorf("unhealthy: %s", strings.Join(st.Problems, "; "))
	}
	return nil
}

// catchUp says how far a catch-up has come: files, and bytes when known
// ("3 of 10 files, 1.2 of 4.0 MB (30%)"; a first pass over many files
// knows no bytes: "3 of 10 files (30%), 1.2 MB").
func catchUp(p *ingest.Progress) string {
	if p.Bytes > 0 {
		return fmt.Sprintf("%d of %d files, %.1f of %.1f MB (%.0f%%)", p.FilesDone, p.Files,
			float64(p.BytesDone)/1e6, float64(p.Bytes)/1e6, catchUpPct(p))
	}
	return fmt.Sprintf("%d of %d files (%.0f%%), %.1f MB", p.FilesDone, p.Files, catchUpPct(p), float64(p.BytesDone)/1e6)
}

// catchUpPct is how far a catch-up has come, in percent of its bytes, or
// of its files when the bytes are not known.
func catchUpPct(p *ingest.Progress) float64 {
	switch {
	case p.Bytes > 0:
		return 100 * float64(p.BytesDone) / float64(p.Bytes)
	case p.Files > 0:
		return 100 * float64(p.FilesDone) / float64(p.Files)
	}
	return 0
}

// healthStatus is the part of /api/status `fleetmeter health` reads.
type healthStatus struct {
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems"`
	Ingest   struct {
		Files          int                    `json:"files"`
		LastStep       time.Time              `json:"last_step"`
		Progress       *ingest.Progress       `json:"progress"`
		MalformedFiles []ingest.MalformedFile `json:"malformed_files"`
		MalformedOther int64                  `json:"malformed_lines_elsewhere"`
	} `json:"ingest"`
	Database storage.Stats `json:"database"`
}

// summary is health's one line: "ok: 597 files, 2,920 calls, last step
// 3 s ago", or "unhealthy: …" with the same figures.
func (st healthStatus) summary(now time.Time) string {
	state := "ok"
	if !st.Healthy {
		state = "unhealthy (" + rollup.Clean(strings.Join(st.Problems, "; ")) + ")"
	}
	last := "no step yet"
	if !st.Ingest.LastStep.IsZero() {
		last = "last step " + rollup.Ago(now.Sub(st.Ingest.LastStep)) + " ago"
	}
	return fmt.Sprintf("%s: %s files, %s calls, %s", state, rollup.Count(int64(st.Ingest.Files)), rollup.Count(int64(st.Database.LedgerRecords)), last)
}

func runRollup(ctx context.Context, env *cliEnv, args []string) error {
	cfg, rest, err := parseConfig(env, "rollup rebuild", args, flagsData|flagsZone, nil)
	if err != nil {
		return err
	}
	if len(rest) == 0 || rest[0] != "rebuild" {
		return usageErr("want `fleetmeter rollup rebuild`")
	}
	if len(rest) > 1 {
		return usageErr("unexpected argument %q", rest[1])
	}
	db, err := openWritable(cfg)
	if err != nil {
		return heldBy(ctx, cfg, err, "its own rollups are kept up to date as it ingests")
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
	var force bool
	cfg, rest, err := parseConfig(env, "backup", args, flagsData, func(fs *flag.FlagSet) {
		fs.BoolVar(&force, "force", false, "replace FILE when it exists")
	})
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageErr("want `fleetmeter backup FILE` (or a directory: a dated file in it)")
	}
	dst, err := backupTarget(rest[0], force, cfg.DBPath(), time.Now())
	if err != nil {
		return err
	}
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

// backupTarget is the file a backup goes to: dst, or in a directory dst
// a new fleetmeter-<UTC time>.db. An existing file is refused unless
// force, and the database itself always.
func backupTarget(dst string, force bool, dbPath string, now time.Time) (string, error) {
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		dst = filepath.Join(dst, "fleetmeter-"+now.UTC().Format("20060102T150405Z")+".db")
	} else if strings.HasSuffix(dst, string(filepath.Separator)) {
		return "", usageErr("backup to %s: no such directory", dst)
	}
	fi, err := os.Stat(dst)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return dst, nil
	case err != nil:
		return "", fmt.Errorf("backup to %s: %w", dst, err)
	}
	if db, derr := os.Stat(dbPath); derr == nil && os.SameFile(fi, db) {
		return "", usageErr("backup to %s: that is the database itself", dst)
	}
	if !force {
		return "", usageErr("backup to %s: the file exists; --force replaces it (or name a new file, or a directory for a dated one)", dst)
	}
	return dst, nil
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
		return heldBy(ctx, cfg, err, "")
	}
	fmt.Fprintf(env.stdout, "compacted %s: %.1f MB → %.1f MB\n", cfg.DBPath(), float64(before)/1e6, float64(after)/1e6)
	return nil
}

func runConfig(ctx context.Context, env *cliEnv, args []string) error {
	cfg, rest, err := parseConfig(env, "config", args, flagsData|flagsZone|flagsSources|flagsServe, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	return writeConfig(env.stdout, cfg)
}

func runVersion(ctx context.Context, env *cliEnv, args []string) error {
	// Its own flag set: a broken config file must not hide the version.
	fs := flag.NewFlagSet("fleetmeter version", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		printHelp(env.stdout, "version", nil)
		return err
	} else if err != nil {
		return usageErr("%v", err)
	} else if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	commit, date := buildInfo()
	fmt.Fprintf(env.stdout, "fleetmeter %s\ncommit:      %s\nbuilt:       %s\nprice table: pydantic/genai-prices %s (MIT)\n",
		version(), commit, date, pricing.TableDate)
	return nil
}

// version is this build's version (what `version`, /api/status, the log,
// upstream's fleet_instances and the price fetch's User-Agent say): the
// -ldflags one of a release, else the module's own from the build info
// (v1.2.0 for `go install …@v1.2.0`; a pseudo-version naming the commit
// for a build in a git checkout), else dev+<commit> from the VCS stamp,
// else "dev".
func version() string {
	bi, _ := debug.ReadBuildInfo()
	return versionFrom(Version, bi)
}

func versionFrom(ldflags string, bi *debug.BuildInfo) string {
	if ldflags != "dev" && ldflags != "" || bi == nil {
		return cmp.Or(ldflags, "dev")
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, modified := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	v := "dev+" + rev[:min(12, len(rev))]
	if modified {
		v += ".modified"
	}
	return v
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
