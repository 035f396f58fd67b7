package appliance

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fleetmeter/fleetmeter/alerts"
	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	upstream "github.com/fleetmeter/fleetmeter/sync"
)

// `fleetmeter doctor` checks a setup end to end and says what to fix:
// the daemon, the sources (found, readable), the database (sound, size,
// disk), upstream sync (reachable, schema), the notifiers (reachable: a
// TCP connect, nothing is sent), the clock. It changes nothing.

// Doctor outcomes.
const (
	doctorOK   = "ok"
	doctorWarn = "warn"
	doctorFail = "fail"
	doctorSkip = "skip"
)

// doctorCheck is one line of the doctor's report.
type doctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// doctor holds what the checks share.
type doctor struct {
	cfg    Config
	getenv func(string) string
	homes  []string      // where discovery looks; nil: ingest.Homes()
	status *daemonStatus // nil: no daemon answered
	damage error         // the database is damaged (storage.ErrCorrupt)
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	now    func() time.Time
}

// daemonStatus is the part of /api/status the doctor reads.
type daemonStatus struct {
	Version string `json:"version"`
	DataDir string `json:"data_dir"`
	Ingest  struct {
		Roots      []string         `json:"roots"`
		Sources    []ingest.Source  `json:"sources"`
		Files      int              `json:"files"`
		FileErrors int64            `json:"file_errors"`
		LastStep   string           `json:"last_step"`
		LastError  string           `json:"last_error"`
		Progress   *ingest.Progress `json:"progress"`
	} `json:"ingest"`
	Database storage.Stats `json:"database"`
	Sync     struct {
		Enabled     bool   `json:"enabled"`
		State       string `json:"state"`
		Target      string `json:"target"`
		LastError   string `json:"last_error"`
		LastSuccess string `json:"last_success"`
	} `json:"sync"`
}

func runDoctor(ctx context.Context, env *cliEnv, args []string) error {
	var asJSON bool
	cfg, rest, err := parseConfig(env, "doctor", args, flagsData|flagsSources, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	d := &doctor{cfg: cfg, getenv: env.getenv, dial: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, now: time.Now}
	checks := d.run(ctx)
	if asJSON {
		if err := printJSON(env, checks); err != nil {
			return err
		}
	} else {
		writeDoctor(env.stdout, checks)
	}
	failed := 0
	for _, c := range checks {
		if c.Status == doctorFail {
			failed++
		}
	}
	if d.damage != nil {
		// Exit 65 as every command that meets damage; the database check
		// above has the details, not repeated here.
		return &exitError{code: exitDamaged, msg: fmt.Sprintf("%s failed; the database file is damaged: run `fleetmeter repair` (the database check says more)", plural(failed, "check"))}
	}
	if failed > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%s failed (each says what to fix)", plural(failed, "check"))}
	}
	return nil
}

func writeDoctor(w io.Writer, checks []doctorCheck) {
	mark := map[string]string{doctorOK: "ok  ", doctorWarn: "WARN", doctorFail: "FAIL", doctorSkip: "-   "}
	for _, c := range checks {
		// Details quote paths, names and errors: untrusted text.
		fmt.Fprintf(w, "%s  %-14s %s\n", mark[c.Status], rollup.Clean(c.Name), rollup.Clean(c.Detail))
		if c.Fix != "" && c.Status != doctorOK {
			fmt.Fprintf(w, "      fix: %s\n", rollup.Clean(c.Fix))
		}
	}
}

// run does every check, in order.
func (d *doctor) run(ctx context.Context) []doctorCheck {
	out := []doctorCheck{d.checkDaemon(ctx)}
	out = append(out, d.checkSources()...)
	out = append(out, d.checkDatabase())
	out = append(out, d.checkSync(ctx))
	out = append(out, d.checkNotifiers(ctx)...)
	out = append(out, d.checkClock())
	return out
}

func (d *doctor) checkDaemon(ctx context.Context) doctorCheck {
	c := doctorCheck{Name: "daemon"}
	body, err := daemonGet(ctx, d.cfg, "/api/status", nil)
	if err != nil {
		c.Status, c.Detail = doctorWarn, err.Error()+": nothing is ingested until one runs"
		c.Fix = "sudo systemctl start fleetmeter (after sudo fleetmeter install), or run fleetmeter serve"
		return c
	}
	var st daemonStatus
	if err := json.Unmarshal(body, &st); err != nil {
		c.Status, c.Detail = doctorFail, "the daemon's status is not what this version reads: "+err.Error()
		c.Fix = "run the same fleetmeter version as the daemon"
		return c
	}
	d.status = &st
	sock, _ := findSocket(d.cfg) // it just answered there
	c.Status, c.Detail = doctorOK, fmt.Sprintf("fleetmeter %s answers on %s", st.Version, sock)
	if st.DataDir != "" && !sameDir(st.DataDir, d.cfg.DataDir) {
		c.Detail += fmt.Sprintf(" (data dir %s: the checks below are of its database, not of %s)", st.DataDir, d.cfg.DataDir)
	}
	c.Detail += "; last ingest step " + d.ago(st.Ingest.LastStep)
	if p := st.Ingest.Progress; p != nil {
		c.Detail += "; catching up: " + catchUp(p)
	}
	if st.Ingest.LastError != "" {
		c.Status, c.Detail = doctorFail, "the last ingest step failed: "+st.Ingest.LastError
		c.Fix = "read the daemon's log (journalctl -u fleetmeter); a full disk or the db_max_mb cap stops ingest"
	}
	return c
}

// ago is an RFC 3339 time from the daemon's status as the time elapsed
// since ("42s ago"); "not yet" for none.
func (d *doctor) ago(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() || t.Year() <= 1 {
		return "not yet"
	}
	return rollup.Ago(d.now().Sub(t)) + " ago"
}

// transcriptFiles lists up to limit transcript files under the source
// dirs (what ingest reads: OpenClaw sessions and SQLite stores, Claude
// Code projects, Codex sessions).
func transcriptFiles(src sources, limit int) (files []string, unreadableDirs []string) {
	var roots []string
	for _, d := range src.OpenClaw {
		m, _ := filepath.Glob(filepath.Join(d, "agents", "*", "sessions"))
		roots = append(roots, m...)
		s, _ := filepath.Glob(filepath.Join(d, "agents", "*", "agent", "openclaw-agent.sqlite"))
		files = append(files, s...)
		if _, err := os.ReadDir(filepath.Join(d, "agents")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			unreadableDirs = append(unreadableDirs, filepath.Join(d, "agents")+": "+errorsText(err))
		}
	}
	for _, d := range src.Claude {
		roots = append(roots, filepath.Join(d, "projects"))
	}
	for _, d := range src.Codex {
		roots = append(roots, filepath.Join(d, "sessions"), filepath.Join(d, "archived_sessions"))
	}
	for _, r := range roots {
		filepath.WalkDir(r, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					unreadableDirs = append(unreadableDirs, p+": "+errorsText(err))
				}
				return filepath.SkipDir
			}
			if len(files) >= limit {
				return filepath.SkipAll
			}
			if !e.IsDir() && strings.Contains(e.Name(), ".jsonl") && !strings.Contains(e.Name(), ".checkpoint.") {
				files = append(files, p)
			}
			return nil
		})
	}
	return files, unreadableDirs
}

func errorsText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// ingestSources are the dirs a discovering ingest reads for this user,
// from ingest's own lists (OpenClawRoots, ClaudeRoots, CodexRoots) where
// the transcripts' folders are there: Claude Code dirs given as the dir
// holding projects/, Codex homes with sessions/ or archived_sessions/
// (TestDoctorLooksWhereIngestLooks). homes nil: ingest.Homes().
func ingestSources(getenv func(string) string, homes []string) sources {
	if homes == nil {
		homes = ingest.Homes()
	}
	isDir := func(p string) bool { fi, err := os.Stat(p); return err == nil && fi.IsDir() }
	seen := map[string]bool{}
	add := func(dst *[]string, p string) {
		if p = filepath.Clean(p); !seen[p] {
			seen[p] = true
			*dst = append(*dst, p)
		}
	}
	s := sources{OpenClaw: ingest.OpenClawRoots(nil, getenv, homes)}
	for _, c := range ingest.ClaudeRoots(getenv, homes) {
		switch {
		case isDir(filepath.Join(c, "projects")):
			add(&s.Claude, c)
		case filepath.Base(filepath.Clean(c)) == "projects" && isDir(c):
			add(&s.Claude, filepath.Dir(filepath.Clean(c)))
		}
	}
	for _, x := range ingest.CodexRoots(getenv, homes) {
		if isDir(filepath.Join(x, "sessions")) || isDir(filepath.Join(x, "archived_sessions")) {
			add(&s.Codex, x)
		}
	}
	return s
}

// checkSources: the agents' dirs are found, and their transcripts open
// for this user (and, from its status, for the daemon's).
func (d *doctor) checkSources() []doctorCheck {
	src := sources{OpenClaw: d.cfg.OpenClawDirs, Claude: d.cfg.ClaudeDirs, Codex: d.cfg.CodexDirs}
	how := "configured"
	if len(src.all()) == 0 && !d.cfg.NoDiscover {
		src, how = ingestSources(d.getenv, d.homes), "found"
	}
	found := doctorCheck{Name: "sources"}
	if len(src.all()) == 0 {
		found.Status, found.Detail = doctorFail, "no agent transcripts found (OpenClaw state dirs, Claude Code or Codex dirs)"
		found.Fix = "name them (--openclaw-dir, openclaw_dirs in the config), or run sudo fleetmeter install again once agents run here"
		if os.Geteuid() != 0 {
			found.Fix += "; as root, doctor looks under every home"
		}
		return []doctorCheck{found}
	}
	found.Status = doctorOK
	found.Detail = how + ": " + src.text()
	readable := doctorCheck{Name: "readable"}
	files, badDirs := transcriptFiles(src, 5000)
	var bad []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			bad = append(bad, f+": "+errorsText(err))
			continue
		}
		fh.Close()
	}
	readable.Status = doctorOK
	readable.Detail = plural(len(files)-len(bad), "transcript file") + " open for this user"
	if len(files) == 0 && len(badDirs) == 0 {
		readable.Status = doctorWarn
		readable.Detail, readable.Fix = noTranscripts(src.list())
	}
	bad = append(badDirs, bad...)
	if len(bad) > 0 {
		readable.Status = doctorFail
		readable.Detail = fmt.Sprintf("%d of %d cannot be read, e.g. %s", len(bad), len(files)+len(badDirs), bad[0])
		readable.Fix = "sudo fleetmeter install again (it grants the service user read access), or check the agents' file modes"
	}
	out := []doctorCheck{found, readable}
	for _, n := range undiscovered(d.cfg, d.getenv, d.homes) {
		out = append(out, doctorCheck{Name: "not discovered", Status: doctorWarn, Detail: n.String(), Fix: n.Fix()})
	}
	if st := d.status; st != nil {
		dc := doctorCheck{Name: "daemon reads", Status: doctorOK,
			Detail: fmt.Sprintf("%s: %s", plural(st.Ingest.Files, "transcript file"), st.sourcesText())}
		if st.Ingest.Files == 0 && d.ago(st.Ingest.LastStep) != "not yet" {
			dc.Status = doctorWarn
			dc.Detail, dc.Fix = noTranscripts(st.Ingest.Sources)
		}
		if st.Ingest.FileErrors > 0 {
			dc.Status = doctorFail
			dc.Detail = fmt.Sprintf("the daemon could not read %s (its log names them)", plural(int(st.Ingest.FileErrors), "file"))
			dc.Fix = "sudo fleetmeter install again: new agent dirs get read access (or the agents write 0600 files: --access capability)"
		}
		out = append(out, dc)
	}
	return out
}

// sourcesText is what the daemon reads, by kind, as its status says
// ("OpenClaw /a; Claude Code /b/projects; Codex none"); an older daemon
// names its OpenClaw state dirs only.
func (st *daemonStatus) sourcesText() string {
	if len(st.Ingest.Sources) == 0 {
		return "OpenClaw " + orNone(st.Ingest.Roots)
	}
	var src sources
	for _, s := range st.Ingest.Sources {
		switch s.Kind {
		case "openclaw":
			src.OpenClaw = append(src.OpenClaw, s.Path)
		case "claude":
			src.Claude = append(src.Claude, s.Path)
		case "codex":
			src.Codex = append(src.Codex, s.Path)
		}
	}
	return src.text()
}

// checkDatabase: sound (through the daemon, or opened read-only), its
// size against the cap, the free space of its disk.
func (d *doctor) checkDatabase() doctorCheck {
	c := doctorCheck{Name: "database"}
	path, dataDir := d.cfg.DBPath(), d.cfg.DataDir
	var stats storage.Stats
	switch {
	case d.status != nil:
		// The daemon's database, wherever its data dir is (the CLI's
		// default may be another, or not exist).
		stats = d.status.Database
		if d.status.DataDir != "" {
			dataDir = d.status.DataDir
			path = filepath.Join(dataDir, storage.FileName)
		}
	default:
		db, daemon, err := openForReading(d.cfg)
		if err == nil && !daemon {
			defer db.Close()
			// Every page read without bbolt first (its own check crashes
			// on some damage), under the shared lock: no writer meanwhile.
			if err = storage.Verify(path); err == nil {
				err = db.Check()
				if err != nil && !errors.Is(err, storage.ErrCorrupt) {
					err = fmt.Errorf("%w: %s fails its consistency check: %v", storage.ErrCorrupt, path, err)
				}
			}
			if err == nil {
				stats, err = db.Stats()
			}
		}
		switch {
		case errors.Is(err, storage.ErrCorrupt):
			d.damage = err
			c.Status, c.Detail = doctorFail, oneLine(err.Error())
			c.Fix = "stop the daemon, run fleetmeter repair (it keeps the damaged file aside, salvages what it can read and reads the transcripts again), start it again; or restore a backup"
			return c
		case errors.Is(err, fs.ErrNotExist):
			c.Status, c.Detail = doctorWarn, "no database yet at "+path
			c.Fix = "it is made by the first fleetmeter serve (or ingest --once)"
			return c
		case err != nil:
			c.Status, c.Detail = doctorFail, "the database cannot be read: "+oneLine(err.Error())
			return c
		case daemon:
			c.Status, c.Detail = doctorFail, "the database is locked by a process that does not answer on "+d.cfg.SocketPath()
			c.Fix = "check that only one fleetmeter runs (systemctl status fleetmeter; ps -C fleetmeter)"
			return c
		}
	}
	size := fileSize(path)
	if d.status != nil && stats.FileBytes > 0 {
		size = stats.FileBytes // the daemon's figure: its file may not be this user's to stat
	}
	c.Status = doctorOK
	c.Detail = fmt.Sprintf("%s: %.1f MB, %s, %s", path, float64(size)/1e6, plural(stats.LedgerRecords, "model call"), plural(stats.DailyRows, "daily row"))
	if limit := d.cfg.DBMaxMB << 20; limit > 0 {
		pct := 100 * float64(size) / float64(limit)
		c.Detail += fmt.Sprintf(", %.0f%% of the %d MiB cap", pct, d.cfg.DBMaxMB)
		if pct >= 80 {
			c.Status = doctorWarn
			c.Fix = "raise db_max_mb, shorten [retention] and run fleetmeter compact (daemon stopped): at the cap ingest stops"
			if pct >= 100 {
				c.Status = doctorFail
			}
		}
	}
	var fsst syscall.Statfs_t
	if err := syscall.Statfs(dataDir, &fsst); err == nil {
		free := fsst.Bavail * uint64(fsst.Bsize)
		total := fsst.Blocks * uint64(fsst.Bsize)
		c.Detail += fmt.Sprintf("; %.1f GB free on its disk", float64(free)/1e9)
		if total > 0 && (free < 1<<30 || float64(free)/float64(total) < 0.05) && c.Status == doctorOK {
			c.Status, c.Fix = doctorWarn, "free space on the data dir's disk (or set db_max_mb so the database stops before the disk fills)"
		}
	}
	return c
}

// checkSync: the daemon's view when it runs; else a connection and the
// schema version read (nothing written).
func (d *doctor) checkSync(ctx context.Context) doctorCheck {
	c := doctorCheck{Name: "sync"}
	if d.cfg.SupabaseDSN == "" {
		c.Status, c.Detail = doctorSkip, "no upstream configured (supabase_dsn): local only"
		return c
	}
	dsn, err := upstream.ParseDSN(d.cfg.SupabaseDSN, true)
	if err != nil {
		c.Status, c.Detail, c.Fix = doctorFail, err.Error(), "fix supabase_dsn (see README, Upstream sync)"
		return c
	}
	if st := d.status; st != nil {
		c.Status = doctorOK
		c.Detail = fmt.Sprintf("the daemon syncs to %s: %s, last success %s", dsn, st.Sync.State, d.ago(st.Sync.LastSuccess))
		if st.Sync.LastError != "" {
			c.Status, c.Detail = doctorFail, fmt.Sprintf("the daemon's sync to %s fails (%s): %s", dsn, st.Sync.State, st.Sync.LastError)
			c.Fix = "fleetmeter sync status says more; a schema mismatch needs fleetmeter migrate"
		}
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	version, err := dsn.UpstreamVersion(ctx)
	if err != nil {
		c.Status, c.Detail = doctorFail, fmt.Sprintf("%s does not answer: %v", dsn, err)
		c.Fix = "check the network path to the pooler (port 6543), the password, and that fleetmeter migrate ran"
		return c
	}
	c.Status, c.Detail = doctorOK, fmt.Sprintf("%s answers; upstream schema %d", dsn, version)
	if want := upstream.SchemaVersion(); version != want {
		c.Status, c.Detail = doctorFail, fmt.Sprintf("%s has schema %d, this fleetmeter writes %d", dsn, version, want)
		c.Fix = "run fleetmeter migrate --dsn ADMIN_DSN (an older schema) or upgrade fleetmeter (a newer one)"
	}
	return c
}

// notifierAddr is where a receiver URL delivers: host:port, and whether
// it speaks TLS. Shoutrrr services go to their vendor's API host.
func notifierAddr(raw string) (addr string, tlsOn bool, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "", false, false
	}
	scheme := strings.TrimPrefix(u.Scheme, "json+")
	api := map[string]string{"slack": "slack.com", "discord": "discord.com", "telegram": "api.telegram.org",
		"pushover": "api.pushover.net", "teams": "outlook.office.com", "googlechat": "chat.googleapis.com"}
	host, port := u.Hostname(), u.Port()
	switch {
	case scheme == "http":
		tlsOn = false
	case api[scheme] != "":
		host, tlsOn = api[scheme], true
	case scheme == "smtp":
		if port == "" {
			port = "25"
		}
	case scheme == "https", scheme == "ntfy", scheme == "gotify", scheme == "mattermost", scheme == "generic", scheme == "matrix", scheme == "rocketchat":
		tlsOn = u.Query().Get("disabletls") != "yes" && u.Query().Get("scheme") != "http"
	default:
		return "", false, false
	}
	if host == "" {
		return "", false, false
	}
	if port == "" {
		port = "443"
		if !tlsOn {
			port = "80"
		}
	}
	return net.JoinHostPort(host, port), tlsOn, true
}

// checkNotifiers: each receiver's host takes a connection (and a TLS
// handshake); no message is sent.
func (d *doctor) checkNotifiers(ctx context.Context) []doctorCheck {
	if len(d.cfg.Notifiers) == 0 {
		return []doctorCheck{{Name: "notifiers", Status: doctorSkip, Detail: "no [[notifiers]] configured"}}
	}
	resolved, err := d.cfg.resolvedAlerts()
	if err != nil {
		return []doctorCheck{{Name: "notifiers", Status: doctorFail, Detail: err.Error(), Fix: "fix the [[notifiers]] entry named"}}
	}
	var out []doctorCheck
	for _, n := range resolved.Notifiers {
		c := doctorCheck{Name: "notifier " + n.Name}
		addr, useTLS, ok := notifierAddr(n.URL)
		if !ok {
			c.Status, c.Detail = doctorWarn, alerts.MaskURL(n.URL)+": cannot check without sending"
			c.Fix = "fleetmeter alerts test RULE sends a test message"
			out = append(out, c)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := d.dial(cctx, "tcp", addr)
		if err == nil && useTLS {
			host, _, _ := net.SplitHostPort(addr)
			tc := tls.Client(conn, &tls.Config{ServerName: host})
			err = tc.HandshakeContext(cctx)
			conn = tc
		}
		cancel()
		if conn != nil {
			conn.Close()
		}
		if err != nil {
			c.Status, c.Detail = doctorFail, fmt.Sprintf("%s (%s) is not reachable: %s", alerts.MaskURL(n.URL), addr, errorsText(err))
			c.Fix = "check the host's outbound network (security group, proxy) and the URL"
		} else {
			c.Status, c.Detail = doctorOK, fmt.Sprintf("%s (%s) takes connections; nothing was sent", alerts.MaskURL(n.URL), addr)
		}
		out = append(out, c)
	}
	return out
}

// checkClock: the kernel says its clock is synchronised (NTP), and the
// clock is not behind this build or the newest data.
func (d *doctor) checkClock() doctorCheck {
	c := doctorCheck{Name: "clock", Status: doctorOK}
	now := d.now()
	c.Detail = "now " + now.UTC().Format(time.RFC3339)
	if _, date := buildInfo(); date != "unknown" {
		if built, err := time.Parse(time.RFC3339, date); err == nil && now.Before(built.Add(-24*time.Hour)) {
			c.Status, c.Detail = doctorFail, fmt.Sprintf("the clock says %s, before this binary was built (%s)", now.UTC().Format(time.RFC3339), date)
			c.Fix = "set the clock (timedatectl set-ntp true; on EC2 the Amazon Time Sync Service)"
			return c
		}
	}
	synced, known, errMicros := clockSync()
	switch {
	case !known:
		c.Detail += "; synchronisation unknown"
	case !synced:
		c.Status = doctorWarn
		c.Detail += "; the kernel says it is not synchronised (no NTP)"
		c.Fix = "timedatectl set-ntp true (or chrony): days and budgets are cut by this clock"
	default:
		c.Detail += fmt.Sprintf("; synchronised (estimated error %d µs)", errMicros)
	}
	return c
}
