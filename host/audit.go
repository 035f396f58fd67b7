package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/titanous/json5"
)

// The security audit of the host an agent fleet runs on: each check looks
// at files under a root ("/" on a real host, a fixture directory in tests)
// and says pass, fail, unknown (it could not tell, e.g. not allowed to
// read) or not applicable, with a severity, the evidence and the fix. No
// check sends traffic anywhere: sockets come from /proc/net, updates from
// the package manager's local lists.

// Severity is how much a failed check weighs.
type Severity int

// Severities, lowest first.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = []string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// MarshalText writes the name ("high").
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name.
func (s *Severity) UnmarshalText(b []byte) error {
	i := slices.Index(severityNames, string(b))
	if i < 0 {
		return fmt.Errorf("severity %q: want one of %s", b, strings.Join(severityNames, ", "))
	}
	*s = Severity(i)
	return nil
}

// CheckStatus is a check's outcome.
type CheckStatus string

const (
	StatusPass    CheckStatus = "pass"
	StatusFail    CheckStatus = "fail"
	StatusUnknown CheckStatus = "unknown"        // could not tell (not readable, no package manager, …)
	StatusNA      CheckStatus = "not_applicable" // nothing to check (no SSH server, no gateway config, …)
)

// Profile is a team's risk tolerance: the lowest severity of a failed
// check that makes `fleetmeter audit` exit non-zero.
type Profile string

const (
	ProfileStrict   Profile = "strict"   // low and above
	ProfileStandard Profile = "standard" // medium and above
	ProfileRelaxed  Profile = "relaxed"  // high and above
)

// ParseProfile reads a profile name; "" is standard.
func ParseProfile(s string) (Profile, error) {
	switch Profile(s) {
	case "":
		return ProfileStandard, nil
	case ProfileStrict, ProfileStandard, ProfileRelaxed:
		return Profile(s), nil
	}
	return "", fmt.Errorf("profile %q: want strict, standard or relaxed", s)
}

// Threshold is the lowest severity that counts against the profile.
func (p Profile) Threshold() Severity {
	switch p {
	case ProfileStrict:
		return SeverityLow
	case ProfileRelaxed:
		return SeverityHigh
	}
	return SeverityMedium
}

// Finding is one check's result. Evidence names paths, modes, addresses
// and process names, never a secret's value.
type Finding struct {
	ID       string      `json:"id"`
	Title    string      `json:"title"`
	Severity Severity    `json:"severity"` // a failure's weight (the worst of its evidence)
	Status   CheckStatus `json:"status"`
	Summary  string      `json:"summary"`
	Evidence []string    `json:"evidence"`
	Fix      string      `json:"fix,omitempty"`
}

// AuditReport is every check's finding, in a fixed order.
type AuditReport struct {
	At       time.Time `json:"at"`
	Findings []Finding `json:"findings"`
}

// Failing lists the failed findings at or above the profile's threshold.
func (r AuditReport) Failing(p Profile) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Status == StatusFail && f.Severity >= p.Threshold() {
			out = append(out, f)
		}
	}
	return out
}

// Find returns the finding with the id.
func (r AuditReport) Find(id string) (Finding, bool) {
	for _, f := range r.Findings {
		if f.ID == id {
			return f, true
		}
	}
	return Finding{}, false
}

// AuditConfig is what the audit looks at. Paths are as the host sees
// them; Root is prefixed to every one when reading.
type AuditConfig struct {
	Root string // "" or "/" on a real host; a fixture dir in tests

	// fleetmeter's own settings.
	Listen     string
	AuthToken  string // only its presence and length are looked at
	DataDir    string
	ConfigFile string // "" when none
	Socket     string // the daemon's unix socket

	// The agents' state dirs (OpenClaw), config dirs (Claude Code) and
	// homes (Codex), as configured or discovered.
	OpenClawDirs, ClaudeDirs, CodexDirs []string

	// Updates lists pending package updates from local data only; nil
	// means the host's package manager (see LocalUpdates).
	Updates func(ctx context.Context, root string) (Updates, error)
	// WalkLimit bounds the entries a workspace walk visits; 0 is 200,000.
	WalkLimit int
	Now       func() time.Time
}

// auditor runs the checks of one audit.
type auditor struct {
	cfg     AuditConfig
	root    string
	sockets []Socket // listening sockets, read once
	sockErr error
	sockOK  bool
}

type auditCheck struct {
	id, title string
	run       func(ctx context.Context, a *auditor) Finding
}

// auditChecks is every check, in the order reports list them.
var auditChecks = []auditCheck{
	{"fleetmeter_listen", "fleetmeter's UI and API are not exposed", checkListen},
	{"fleetmeter_files", "fleetmeter's database, token and config are private", checkOwnFiles},
	{"agent_state_private", "agents' state dirs are not readable by other users", checkStateDirs},
	{"agent_config_private", "agents' config and credential files are not readable by other users", checkAgentConfigFiles},
	{"gateway_exposure", "the agent gateway listens on loopback, with auth", checkGateway},
	{"listening_ports", "nothing but SSH listens beyond loopback", checkListeningPorts},
	{"ssh_password_login", "SSH refuses passwords", checkSSHPassword},
	{"ssh_root_login", "SSH refuses root logins with a password", checkSSHRoot},
	{"security_updates", "no security update is pending", checkUpdates},
	{"workspace_world_writable", "nothing in the agents' workspaces is world-writable", checkWorkspaces},
	{"env_file_secrets", "no secret sits in a plain environment file", checkEnvSecrets},
}

// AuditIDs lists the ids of every check, in report order.
func AuditIDs() []string {
	ids := make([]string, len(auditChecks))
	for i, c := range auditChecks {
		ids[i] = c.id
	}
	return ids
}

// Audit runs every check. It never fails as a whole: a check that cannot
// look says unknown, with why.
func Audit(ctx context.Context, cfg AuditConfig) AuditReport {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.WalkLimit <= 0 {
		cfg.WalkLimit = 200_000
	}
	a := &auditor{cfg: cfg, root: cfg.Root}
	if a.root == "" {
		a.root = "/"
	}
	rep := AuditReport{At: cfg.Now().UTC()}
	for _, c := range auditChecks {
		if ctx.Err() != nil {
			rep.Findings = append(rep.Findings, Finding{ID: c.id, Title: c.title, Status: StatusUnknown, Summary: "The audit was cancelled."})
			continue
		}
		f := c.run(ctx, a)
		f.ID, f.Title = c.id, c.title
		if f.Evidence == nil {
			f.Evidence = []string{}
		}
		rep.Findings = append(rep.Findings, f)
	}
	return rep
}

// path is p (a host path) under the audit's root.
func (a *auditor) path(p string) string { return filepath.Join(a.root, p) }

// glob matches a host path pattern under the root and returns host paths.
func (a *auditor) glob(pattern string) []string {
	m, _ := filepath.Glob(a.path(pattern))
	out := make([]string, 0, len(m))
	for _, p := range m {
		rel, err := filepath.Rel(a.root, p)
		if err == nil {
			out = append(out, "/"+rel)
		}
	}
	return out
}

// stat is os.Lstat of a host path under the root.
func (a *auditor) stat(p string) (fs.FileInfo, error) { return os.Lstat(a.path(p)) }

// listening returns the listening sockets, read once per audit.
func (a *auditor) listening() ([]Socket, error) {
	if !a.sockOK {
		a.sockets, a.sockErr = ListeningSockets(a.path("/proc"))
		a.sockOK = true
	}
	return a.sockets, a.sockErr
}

// modeString is "0640 ana:ana" for evidence.
func modeString(fi fs.FileInfo) string {
	s := fmt.Sprintf("%04o", fi.Mode().Perm())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s += fmt.Sprintf(" uid %d gid %d", st.Uid, st.Gid)
	}
	return s
}

// othersCanRead: the mode's "other" bits give read (files) or list/enter
// (dirs). ACL entries for named users show as group bits, not these.
func othersCanRead(fi fs.FileInfo) bool {
	if fi.IsDir() {
		return fi.Mode().Perm()&0o005 != 0
	}
	return fi.Mode().Perm()&0o004 != 0
}

// othersReach reports whether other users can get to p: every dir above
// it lets them through (o+x). A 0644 file in a 0700 dir is safe.
func (a *auditor) othersReach(p string) bool {
	for d := filepath.Dir(filepath.Clean(p)); d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(a.path(d))
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
	}
	return true // "/" itself lets everyone through
}

// exposed: other users can reach p and read (list) it.
func (a *auditor) exposed(p string, fi fs.FileInfo) bool {
	return othersCanRead(fi) && a.othersReach(p)
}

// pass, fail and unknown build findings.
func pass(summary string, evidence ...string) Finding {
	return Finding{Status: StatusPass, Summary: summary, Evidence: evidence}
}

func unknown(summary string, evidence ...string) Finding {
	return Finding{Status: StatusUnknown, Summary: summary, Evidence: evidence}
}

func notApplicable(summary string) Finding {
	return Finding{Status: StatusNA, Summary: summary}
}

// verdict collects evidence; the finding fails with the worst severity
// seen when any problem was added.
type verdict struct {
	worst    Severity
	failed   bool
	problems []string
	ok       []string
	fixes    []string
}

func (v *verdict) problem(sev Severity, fix, format string, args ...any) {
	if !v.failed || sev > v.worst {
		v.worst = sev
	}
	v.failed = true
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
	if fix != "" && !slices.Contains(v.fixes, fix) {
		v.fixes = append(v.fixes, fix)
	}
}

func (v *verdict) fine(format string, args ...any) { v.ok = append(v.ok, fmt.Sprintf(format, args...)) }

// finding is the verdict: fail (problems first in the evidence), else pass.
func (v *verdict) finding(passSummary, failSummary string, nominal Severity) Finding {
	if !v.failed {
		return Finding{Status: StatusPass, Severity: nominal, Summary: passSummary, Evidence: v.ok}
	}
	return Finding{Status: StatusFail, Severity: v.worst, Summary: failSummary,
		Evidence: append(v.problems, v.ok...), Fix: strings.Join(v.fixes, " ")}
}

// checkListen: fleetmeter's own address. Loopback is the default; beyond
// it, a strong token is needed, and an SSH tunnel is better.
func checkListen(_ context.Context, a *auditor) Finding {
	if a.cfg.Listen == "" {
		return notApplicable("No listen address configured.")
	}
	host, port, err := net.SplitHostPort(a.cfg.Listen)
	if err != nil {
		return unknown("The listen address is not host:port.", "listen "+a.cfg.Listen)
	}
	var v verdict
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		v.fine("listen %s: loopback only", a.cfg.Listen)
		return v.finding("The UI and API answer on loopback only.", "", SeverityHigh)
	}
	tunnel := fmt.Sprintf("Set listen = \"127.0.0.1:%s\" and open the UI through an SSH tunnel (ssh -L %s:127.0.0.1:%s HOST).", port, port, port)
	switch n := len(a.cfg.AuthToken); {
	case n == 0:
		v.problem(SeverityCritical, tunnel, "listen %s is reachable from the network and no auth_token is set: anyone who reaches the port reads the fleet's costs", a.cfg.Listen)
	case n < 32:
		v.problem(SeverityHigh, "Use a token of at least 32 random characters (openssl rand -hex 32). "+tunnel, "listen %s is reachable from the network behind a %d-character token", a.cfg.Listen, n)
	default:
		v.problem(SeverityLow, tunnel, "listen %s is reachable from the network (behind a %d-character token)", a.cfg.Listen, n)
	}
	return v.finding("", "fleetmeter's UI and API are reachable from the network.", SeverityHigh)
}

// checkOwnFiles: the data dir, the database, the daemon's local token and
// a config file holding secrets are the daemon's user's only.
func checkOwnFiles(_ context.Context, a *auditor) Finding {
	if a.cfg.DataDir == "" {
		return notApplicable("No data dir configured.")
	}
	var v verdict
	dir, err := a.stat(a.cfg.DataDir)
	if err != nil {
		if os.IsNotExist(err) {
			return notApplicable("The data dir does not exist yet (fleetmeter has not run).")
		}
		return unknown("The data dir cannot be read: "+err.Error(), a.cfg.DataDir)
	}
	fixDir := fmt.Sprintf("chmod 0700 %s.", a.cfg.DataDir)
	switch perm := dir.Mode().Perm(); {
	case perm&0o002 != 0:
		v.problem(SeverityCritical, fixDir, "%s: mode %s: anyone can replace the database", a.cfg.DataDir, modeString(dir))
	case perm&0o020 != 0:
		v.problem(SeverityMedium, fixDir, "%s: mode %s: its group can replace the database", a.cfg.DataDir, modeString(dir))
	default:
		v.fine("%s: mode %s", a.cfg.DataDir, modeString(dir))
	}
	db := filepath.Join(a.cfg.DataDir, "fleetmeter.db")
	if fi, err := a.stat(db); err == nil {
		fix := fmt.Sprintf("chmod 0600 %s.", db)
		switch perm := fi.Mode().Perm(); {
		case perm&0o004 != 0:
			v.problem(SeverityHigh, fix, "%s: mode %s: every local user can read every model call, agent, user and session name", db, modeString(fi))
		case perm&0o022 != 0:
			v.problem(SeverityMedium, fix, "%s: mode %s: others can change it", db, modeString(fi))
		default:
			v.fine("%s: mode %s", db, modeString(fi))
		}
	}
	a.socketAccess(&v)
	if a.cfg.ConfigFile != "" {
		a.configFileSecrets(&v)
	}
	return v.finding("The data dir and its files are private.", "fleetmeter's files are readable or writable by other users.", SeverityHigh)
}

// socketAccess fails a daemon socket every local user may connect to
// (search on its dir, write on the socket): the socket answers the whole
// API, backups of the database included, with no further check.
func (a *auditor) socketAccess(v *verdict) {
	if a.cfg.Socket == "" {
		return
	}
	dir := filepath.Dir(a.cfg.Socket)
	di, err := a.stat(dir)
	if err != nil {
		return // no daemon has run: nothing to reach
	}
	si, err := a.stat(a.cfg.Socket)
	if err == nil && a.othersReach(a.cfg.Socket) && si.Mode().Perm()&0o002 != 0 {
		v.problem(SeverityHigh, fmt.Sprintf("chmod 0700 %s (fleetmeter makes it so; something changed it).", dir),
			"%s: mode %s, its dir %s: every local user can use the daemon's API and download the database", a.cfg.Socket, modeString(si), modeString(di))
		return
	}
	v.fine("%s: mode %s", dir, modeString(di))
}

// configFileSecrets fails a config file that holds a secret (auth_token,
// supabase_dsn, a notifier url) and is readable by others.
func (a *auditor) configFileSecrets(v *verdict) {
	p := a.cfg.ConfigFile
	fi, err := a.stat(p)
	if err != nil {
		return
	}
	b, err := os.ReadFile(a.path(p))
	if err != nil {
		v.fine("%s: not readable by this user (%v)", p, errorsCause(err))
		return
	}
	var keys []string
	for _, line := range strings.Split(string(b), "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(line), "=")
		k, val = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(val), `"'`)
		if !ok || val == "" || strings.HasPrefix(k, "#") {
			continue
		}
		if k == "auth_token" || k == "supabase_dsn" || k == "url" {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 && a.exposed(p, fi) {
		v.problem(SeverityHigh, fmt.Sprintf("chmod 0600 %s (or move the secrets to *_FILE settings).", p),
			"%s: mode %s, holds %s: every local user can read it", p, modeString(fi), strings.Join(slices.Compact(keys), ", "))
		return
	}
	v.fine("%s: mode %s", p, modeString(fi))
}

// errorsCause is the innermost error's text (no path twice in evidence).
func errorsCause(err error) string {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// readJSON reads a small JSON (or JSON5, as OpenClaw writes its config)
// file under the root into v.
func (a *auditor) readJSON(p string, v any) error {
	b, err := os.ReadFile(a.path(p))
	if err != nil {
		return err
	}
	if len(b) > 8<<20 {
		return fmt.Errorf("%s: larger than 8 MiB", p)
	}
	if err := json.Unmarshal(b, v); err == nil {
		return nil
	}
	// JSON5 (comments, unquoted keys, trailing commas), as OpenClaw
	// allows in its config file.
	return json5.Unmarshal(b, v)
}
