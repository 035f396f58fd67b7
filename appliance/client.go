package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/host"
	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// errNoDaemon: no daemon answers on a socket this CLI may use.
var errNoDaemon = errors.New("no fleetmeter daemon answers")

// daemonGet asks the running daemon's API over its unix socket (the daemon
// holds the database lock, so the CLI reads through it). No token is ever
// sent: the socket's permissions decide.
func daemonGet(ctx context.Context, cfg Config, path string, q url.Values) ([]byte, error) {
	var buf bytes.Buffer
	if err := daemonStream(ctx, cfg, http.MethodGet, path, q, &buf, 64<<20); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// daemonPost sends body as JSON to path on the daemon's socket and
// returns its answer.
func daemonPost(ctx context.Context, cfg Config, path string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := daemonRequest(ctx, cfg, http.MethodPost, path, nil, bytes.NewReader(b), &buf, 1<<20); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// daemonStream copies the answer to w; more than limit bytes is an error,
// never a silently cut answer.
func daemonStream(ctx context.Context, cfg Config, method, path string, q url.Values, w io.Writer, limit int64) error {
	return daemonRequest(ctx, cfg, method, path, q, nil, w, limit)
}

func daemonRequest(ctx context.Context, cfg Config, method, path string, q url.Values, body io.Reader, w io.Writer, limit int64) error {
	sock, err := findSocket(cfg)
	if err != nil {
		return err
	}
	u := url.URL{Scheme: "http", Host: "fleetmeter", Path: path, RawQuery: q.Encode()}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := socketClient(sock).Do(req)
	if err != nil {
		return fmt.Errorf("%w on %s", errNoDaemon, sock)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Error string `json:"error"`
		}
		if (resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound && method == http.MethodPost) && json.Unmarshal(body, &e) == nil && e.Error != "" {
			return usageErr("%s", e.Error) // a value the daemon cannot use (an unknown team, rule): as any bad value
		}
		return fmt.Errorf("daemon answered %s for %s: %s", resp.Status, u.Path, firstLine(body))
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", u.Path, err)
	}
	if n > limit {
		return fmt.Errorf("read %s: answer larger than %d bytes", u.Path, limit)
	}
	return nil
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' || i >= 200 {
			return string(b[:i])
		}
	}
	return string(b)
}

// openForReading opens the database read-only. When the daemon holds it,
// ok is false and the caller asks the daemon instead.
func openForReading(cfg Config) (db *storage.DB, daemon bool, err error) {
	loc, err := cfg.Location()
	if err != nil {
		return nil, false, err
	}
	db, err = storage.Open(cfg.DBPath(), storage.Options{Location: loc, ReadOnly: true, LockTimeout: 300 * time.Millisecond})
	if errors.Is(err, storage.ErrLocked) {
		return nil, true, nil
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		if errors.Is(err, fs.ErrPermission) {
			if _, serr := findSocket(cfg); serr == nil {
				return nil, true, nil // another user's database, and its daemon answers us
			}
		}
		return nil, false, noDatabase(cfg, err)
	}
	if err != nil {
		return nil, false, err
	}
	return db, false, nil
}

// noDatabase says that there is no database here and no daemon this user
// may ask, with every place tried and what to do; it wraps cause (still
// fs.ErrNotExist).
func noDatabase(cfg Config, cause error) error {
	_, serr := findSocket(cfg)
	var nd *noDaemonError
	if !errors.As(serr, &nd) {
		return fmt.Errorf("%w (%v)", cause, serr)
	}
	advice := "start the daemon (`fleetmeter serve`, or `sudo fleetmeter install` for a service); a report can also read transcripts directly with --openclaw-dir, --claude-dir or --codex-dir"
	if denied, _ := nd.denied(); denied {
		advice = nd.deniedAdvice()
	}
	what := "no database at " + cfg.DBPath()
	if errors.Is(cause, fs.ErrPermission) {
		what = "the database at " + cfg.DBPath() + " is not readable by this user"
	}
	return &cliError{cause: cause, msg: fmt.Sprintf("%s and %v: %s", what, nd, advice)}
}

// cliError is an error with its own message that still matches its cause.
type cliError struct {
	cause error
	msg   string
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.cause }

// cliReader is where a CLI command reads from, decided in this one place:
// transcripts named on the command line (an in-memory tally; no database),
// else the database when this process can open it, else the daemon that
// holds it, over its API; with no database here, a daemon this user may
// ask (the system's, to a member of its group), else the system data dir's
// database when it is readable; with a data dir named (flag, environment,
// file), only that data dir's database or daemon. done releases what was
// opened.
func cliReader(ctx context.Context, env *cliEnv, cfg Config) (r rollup.Reader, done func(), err error) {
	loc, err := cfg.Location()
	if err != nil {
		return nil, nil, err
	}
	teams := teamsOf(cfg.Agents)
	if hasSourceDirs(cfg) {
		if env.process {
			oneShotMemory()
		}
		tally := rollup.NewTally(loc)
		// A file that cannot be read is told once, after the report (see
		// run), not as a log line before it.
		log := slog.New(dropMessage{newLogger(cfg, env.stderr).Handler(), "cannot read transcript"})
		c, err := ingestConfig(cfg, log, true)
		if err != nil {
			return nil, nil, err
		}
		in := ingest.New(c, tally)
		if _, err := in.Step(ctx); err != nil {
			return nil, nil, err
		}
		st := in.Status()
		env.unreadable, env.unreadableMore = st.UnreadableFiles, st.UnreadableOther
		return rollup.NewReader(tally, rollup.ReaderConfig{Teams: teams}), func() {}, nil
	}
	if _, err := os.Stat(cfg.DBPath()); errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		// No database here: a daemon this user may ask (the system's, to
		// a member of its group), else the system's database if readable.
		if _, serr := findSocket(cfg); serr == nil {
			return daemonReader{cfg}, func() {}, nil
		}
		if sys := cfg; cfg.DataDir != systemDataDir && cfg.Origin("data_dir") == "" {
			sys.DataDir = systemDataDir
			if db, daemon, err := openForReading(sys); err == nil {
				if daemon {
					return daemonReader{sys}, func() {}, nil
				}
				// Another account's database: read as it is, never repriced here.
				return rollup.NewReader(db, rollup.ReaderConfig{Host: db, Teams: teams}), func() { db.Close() }, nil
			}
		}
		db, _, err := openForReading(cfg)
		if err != nil {
			return nil, nil, err // says every place tried
		}
		if db != nil {
			db.Close() // it appeared meanwhile: read it below
		}
	}
	// The database shows this configuration's prices: repriced first when
	// no daemon holds it (a daemon applies its own, see repriceOffline).
	if err := repriceOffline(ctx, cfg, env); err != nil {
		return nil, nil, err
	}
	db, daemon, err := openForReading(cfg)
	if err != nil {
		return nil, nil, err
	}
	if daemon {
		return daemonReader{cfg}, func() {}, nil
	}
	// The instance type is looked up only when advice asks for it: an
	// IMDS call (when enabled) is no business of a usage report.
	instanceType := sync.OnceValue(func() string {
		typ, _, err := host.ResolveInstanceType(ctx, cfg.InstanceType, host.IMDSConfig{Enabled: cfg.EC2Metadata, Endpoint: cfg.IMDSEndpoint})
		if err != nil {
			fmt.Fprintf(env.stderr, "fleetmeter: instance type unknown: %v\n", err)
		}
		return typ
	})
	return rollup.NewReader(db, rollup.ReaderConfig{Host: db, InstanceType: instanceType, Teams: teams}), func() { db.Close() }, nil
}

// dropMessage is a log handler that leaves out records whose message is
// msg (what the caller tells in its own words).
type dropMessage struct {
	slog.Handler
	msg string
}

func (h dropMessage) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h dropMessage) WithAttrs(as []slog.Attr) slog.Handler {
	return dropMessage{h.Handler.WithAttrs(as), h.msg}
}

func (h dropMessage) WithGroup(name string) slog.Handler {
	return dropMessage{h.Handler.WithGroup(name), h.msg}
}

// hasSourceDirs reports whether transcript dirs were named explicitly.
func hasSourceDirs(cfg Config) bool {
	return len(cfg.OpenClawDirs)+len(cfg.ClaudeDirs)+len(cfg.CodexDirs) > 0
}

// daemonReader asks the daemon that holds the database, over its API: the
// same questions rollup.LocalReader answers, with the same typed results.
type daemonReader struct{ cfg Config }

var _ rollup.Reader = daemonReader{}

// Report asks for the report; the daemon pages session rows, so a query
// for all of them reads page after page.
func (r daemonReader) Report(ctx context.Context, q rollup.Query) (rollup.Report, error) {
	all := q.Kind == "session" && q.Limit == 0
	if all {
		q.Limit = rollup.MaxPage
	}
	var rep rollup.Report
	for {
		body, err := r.get(ctx, "/api/report/"+q.Kind, q)
		if err != nil {
			return rollup.Report{}, err
		}
		page, err := rollup.DecodeReport(q.Kind, body)
		if err != nil {
			return rollup.Report{}, err
		}
		if !all || page.Page == nil {
			return page, nil
		}
		if rep.Rows == nil {
			rep = page
			rep.Page = nil
		} else {
			rep.Rows = append(rep.Rows.([]rollup.SessionRow), page.Rows.([]rollup.SessionRow)...)
		}
		q.Offset += q.Limit
		if q.Offset >= page.Page.Total {
			return rep, nil
		}
	}
}

func (r daemonReader) HostReport(ctx context.Context, q rollup.Query) (rollup.HostReport, error) {
	q.Kind = rollup.HostKind
	var rep rollup.HostReport
	return rep, r.getJSON(ctx, "/api/report/host", q, &rep)
}

// Advice asks the daemon, for instanceType when it is not "" (a read: the
// daemon's own type stays as it is).
func (r daemonReader) Advice(ctx context.Context, instanceType string) (rollup.Advice, error) {
	var a rollup.Advice
	body, err := daemonGet(ctx, r.cfg, "/api/advice", url.Values{"instance_type": {instanceType}})
	if err != nil {
		return a, err
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("decode /api/advice: %w", err)
	}
	if instanceType != "" && a.InstanceType != instanceType {
		return a, fmt.Errorf("the daemon (an older fleetmeter?) gave advice for %q, not %q: run this on a database no daemon holds, or upgrade the daemon", a.InstanceType, instanceType)
	}
	return a, nil
}

func (r daemonReader) getJSON(ctx context.Context, path string, q rollup.Query, v any) error {
	body, err := r.get(ctx, path, q)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// zone is the zone the daemon cuts days in (its /api/status says).
func (r daemonReader) zone(ctx context.Context) (*time.Location, error) {
	var st struct {
		TZ string `json:"tz"`
	}
	if err := r.getJSON(ctx, "/api/status", rollup.Query{}, &st); err != nil {
		return nil, err
	}
	return rollup.LoadZone(st.TZ)
}

// get validates q here first, so a bad query reads the same whoever
// answers it, then asks the daemon.
func (r daemonReader) get(ctx context.Context, path string, q rollup.Query) ([]byte, error) {
	params := url.Values{}
	if q.Kind != "" {
		if err := q.Validate(); err != nil {
			return nil, err
		}
		params = q.Values()
	}
	body, err := daemonGet(ctx, r.cfg, path, params)
	if errors.Is(err, errNoDaemon) {
		return nil, fmt.Errorf("%w: the database is held by a daemon that did not answer (%v)", storage.ErrLocked, err)
	}
	return body, err
}
