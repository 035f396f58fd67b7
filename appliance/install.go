package appliance

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/rollup"
)

// `fleetmeter install` turns a copied binary into a hardened service: a
// system user, read access for it to the agents' transcripts, a systemd
// unit, started. Every change is printed before it is made (--dry-run
// prints only); --root DIR makes every change under DIR (a test's temp
// dir) and nothing on the real system.

// The names install uses on the target system.
const (
	serviceUser     = "fleetmeter"
	unitName        = "fleetmeter.service"
	installedBinary = "/usr/local/bin/fleetmeter"
	systemDataDir   = "/var/lib/fleetmeter"
	unitPath        = "/etc/systemd/system/" + unitName
	wantsLink       = "/etc/systemd/system/multi-user.target.wants/" + unitName
	manifestPath    = "/etc/fleetmeter/install.json"
)

//go:embed fleetmeter.service.tmpl
var unitTemplateText string

var unitTemplate = template.Must(template.New("unit").Funcs(template.FuncMap{"unitQuote": unitQuote}).Parse(unitTemplateText))

// unitQuote writes an Environment= assignment so systemd reads it whole:
// bare, it splits at whitespace (a dir "/srv/My Agents" would reach the
// service as "/srv/My") and unescapes quotes and backslashes; a percent
// sign starts a specifier everywhere (systemd.exec(5), systemd.unit(5)).
func unitQuote(kv string) string {
	if !strings.ContainsAny(kv, " \t\"'\\%") {
		return kv
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%")
	return `"` + r.Replace(kv) + `"`
}

// Access modes: how the service user reads other users' transcripts.
const (
	accessACL        = "acl"        // POSIX ACL entries for the service user on the transcript dirs
	accessCapability = "capability" // CAP_DAC_READ_SEARCH: read every file (needed when agents write 0600 files)
	accessAuto       = "auto"       // acl, unless existing transcripts show the writer uses mode 0600
)

// sources are the agents' dirs, as the target system sees them.
type sources struct {
	OpenClaw []string `json:"openclaw"`
	Claude   []string `json:"claude"`
	Codex    []string `json:"codex"`
}

func (s sources) all() []string {
	return slices.Concat(s.OpenClaw, s.Claude, s.Codex)
}

// list is every dir with its kind.
func (s sources) list() []ingest.Source {
	var out []ingest.Source
	for _, k := range []struct {
		kind string
		dirs []string
	}{{"openclaw", s.OpenClaw}, {"claude", s.Claude}, {"codex", s.Codex}} {
		for _, d := range k.dirs {
			out = append(out, ingest.Source{Kind: k.kind, Path: d})
		}
	}
	return out
}

// text is "OpenClaw A, B; Claude Code none; Codex C".
func (s sources) text() string {
	return fmt.Sprintf("OpenClaw %s; Claude Code %s; Codex %s", orNone(s.OpenClaw), orNone(s.Claude), orNone(s.Codex))
}

// manifest is what install did, for uninstall to undo exactly that.
type manifest struct {
	Access      string   `json:"access"`
	ACLPaths    []string `json:"acl_paths"` // paths that got an entry for the service user
	Sources     sources  `json:"sources"`
	CopiedBin   bool     `json:"copied_binary"`
	CreatedUser bool     `json:"created_user"`
	// CreatedGroup: install made the group with the user; a group that
	// was there before (an admin's, for the socket) is not its to delete.
	CreatedGroup bool `json:"created_group"`
}

// installer carries out a plan under a root.
type installer struct {
	root   string // "/" or a test's dir
	dryRun bool
	out    io.Writer
	uid    int // the service user's, once known
	gid    int
}

// step is one change: said in words, with the command it runs (printed
// as is) or an in-process action.
type step struct {
	say string
	cmd []string
	do  func() error
}

// at is a target path under the root.
func (in *installer) at(p string) string { return filepath.Join(in.root, p) }

func (in *installer) realRoot() bool { return in.root == "/" }

// run prints every step, then (unless dry-run) carries them out in order,
// stopping at the first failure.
func (in *installer) run(steps []step) error {
	for i, s := range steps {
		// Paths come from the homes and agent dirs found: untrusted text.
		line := fmt.Sprintf("%2d. %s", i+1, rollup.Clean(s.say))
		if len(s.cmd) > 0 {
			line += "\n      " + rollup.Clean(shellQuote(s.cmd))
		}
		fmt.Fprintln(in.out, line)
	}
	if in.dryRun {
		fmt.Fprintln(in.out, "\n--dry-run: nothing was changed.")
		return nil
	}
	fmt.Fprintln(in.out)
	for i, s := range steps {
		var err error
		if len(s.cmd) > 0 {
			err = in.exec(s.cmd)
		}
		if err == nil && s.do != nil {
			err = s.do()
		}
		if err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, s.say, err)
		}
	}
	return nil
}

// exec runs a command; ACL specs name the service user by uid off the
// real root (the name exists only in the root's passwd file there).
func (in *installer) exec(cmd []string) error {
	args := slices.Clone(cmd)
	if !in.realRoot() && in.uid > 0 {
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "u:"+serviceUser, "u:"+strconv.Itoa(in.uid))
		}
	}
	c := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$`\\*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// lookupUser finds a user in the root's passwd file.
func (in *installer) lookupUser(name string) (uid, gid int, home string, ok bool) {
	f, err := os.Open(in.at("/etc/passwd"))
	if err != nil {
		return 0, 0, "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 6 && fields[0] == name {
			uid, err1 := strconv.Atoi(fields[2])
			gid, err2 := strconv.Atoi(fields[3])
			if err1 == nil && err2 == nil {
				return uid, gid, fields[5], true
			}
		}
	}
	return 0, 0, "", false
}

// groupExists reports whether the root's group file has group name.
func (in *installer) groupExists(name string) bool {
	b, err := os.ReadFile(in.at("/etc/group"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if g, _, ok := strings.Cut(line, ":"); ok && g == name {
			return true
		}
	}
	return false
}

// homes lists the home dirs of the root's passwd file (and /root).
func (in *installer) homes() []string {
	homes := []string{"/root"}
	b, err := os.ReadFile(in.at("/etc/passwd"))
	if err != nil {
		return homes
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 6 && strings.HasPrefix(f[5], "/") && f[5] != "/" && f[0] != serviceUser {
			homes = append(homes, filepath.Clean(f[5]))
		}
	}
	slices.Sort(homes)
	return slices.Compact(homes)
}

// discover finds the agents' dirs as the daemon run as root would: the
// explicit ones when given, else OpenClaw state dirs, Claude Code config
// dirs (holding projects/) and Codex homes (holding sessions/) under
// every home. Paths are the target's (without the root).
func (in *installer) discover(explicit sources, getenv func(string) string) sources {
	if len(explicit.all()) > 0 {
		return explicit
	}
	env := func(string) string { return "" }
	if in.realRoot() {
		env = getenv // the installing shell's variables name dirs only on this root
	}
	var rooted []string
	for _, h := range in.homes() {
		rooted = append(rooted, in.at(h))
	}
	unroot := func(ps []string) []string {
		var out []string
		for _, p := range ps {
			// A relative dir of the shell's environment is its working
			// dir's; the service runs from /.
			if abs, err := filepath.Abs(p); err == nil {
				p = abs
			}
			if rel, err := filepath.Rel(in.root, p); err == nil {
				p = "/" + rel
			}
			out = append(out, p)
		}
		return out
	}
	// Where ingest looks ($OPENCLAW_STATE_DIR, $CLAUDE_CONFIG_DIR,
	// $XDG_CONFIG_HOME/claude, $CODEX_HOME and the homes' dirs), written
	// into the config: the service's environment has none of these.
	found := ingestSources(env, rooted)
	return sources{OpenClaw: unroot(found.OpenClaw), Claude: unroot(found.Claude), Codex: unroot(found.Codex)}
}

// transcriptDirs are the dirs whose files the daemon reads, recursively,
// per source: the ACL grants read there and nowhere else.
func (in *installer) transcriptDirs(s sources) []string {
	var out []string
	glob := func(pattern string) {
		m, _ := filepath.Glob(in.at(pattern))
		for _, p := range m {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				rel, _ := filepath.Rel(in.root, p)
				out = append(out, "/"+rel)
			}
		}
	}
	for _, d := range s.OpenClaw {
		glob(filepath.Join(d, "agents", "*", "sessions"))
	}
	for _, d := range s.Claude {
		glob(filepath.Join(d, "projects"))
	}
	for _, d := range s.Codex {
		glob(filepath.Join(d, "sessions"))
		glob(filepath.Join(d, "archived_sessions"))
	}
	return out
}

// privateWriter reports whether the agents write their transcripts
// without group bits (0600): an ACL's mask then hides files created
// later, and only CAP_DAC_READ_SEARCH can read them. It names one.
func (in *installer) privateWriter(s sources) (string, bool) {
	var found string
	for _, d := range in.transcriptDirs(s) {
		seen := 0
		filepath.WalkDir(in.at(d), func(p string, e fs.DirEntry, err error) error {
			if err != nil || found != "" || seen > 2000 {
				return filepath.SkipDir
			}
			if !e.Type().IsRegular() || !(strings.Contains(e.Name(), ".jsonl") || strings.Contains(e.Name(), ".sqlite")) {
				return nil
			}
			seen++
			if fi, err := e.Info(); err == nil && fi.Mode().Perm()&0o040 == 0 {
				rel, _ := filepath.Rel(in.root, p)
				found = fmt.Sprintf("/%s is mode %04o", rel, fi.Mode().Perm())
			}
			return nil
		})
	}
	for _, d := range s.OpenClaw {
		m, _ := filepath.Glob(in.at(filepath.Join(d, "agents", "*", "agent", "openclaw-agent.sqlite")))
		for _, p := range m {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o040 == 0 && found == "" {
				rel, _ := filepath.Rel(in.root, p)
				found = fmt.Sprintf("/%s is mode %04o", rel, fi.Mode().Perm())
			}
		}
	}
	return found, found != ""
}

// aclSteps grants the service user read access to the transcripts and
// nothing more: traverse (x) on the dirs above them, list and read in
// the transcript dirs, with default entries so files made later inherit
// it (as far as their own mode lets: a 0600 secret stays private).
func (in *installer) aclSteps(s sources, who string) (steps []step, paths []string) {
	u := "u:" + who
	traverse := map[string]bool{}
	var order []string
	addTraverse := func(p string) {
		for d := p; d != "/" && d != "."; d = filepath.Dir(d) {
			if traverse[d] {
				return
			}
			fi, err := os.Stat(in.at(d))
			if err != nil {
				return
			}
			if fi.Mode().Perm()&0o001 == 0 { // others may not pass: the service user needs an entry
				traverse[d] = true
				order = append(order, d)
			}
		}
	}
	dirs := in.transcriptDirs(s)
	for _, d := range dirs {
		addTraverse(filepath.Dir(d))
	}
	slices.Sort(order)
	if len(order) > 0 {
		steps = append(steps, step{say: "let " + who + " pass through (not list) the dirs above the transcripts",
			cmd: append([]string{"setfacl", "-m", u + ":x"}, order...)})
		paths = append(paths, order...)
	}
	// OpenClaw: list agents/ (new agents appear there) and inherit to new
	// agent dirs; the SQLite store of each agent (2026.8 on).
	for _, d := range s.OpenClaw {
		agents := filepath.Join(d, "agents")
		if _, err := os.Stat(in.at(agents)); err != nil {
			continue
		}
		steps = append(steps, step{say: "let " + who + " list " + agents + " and reach agents added later",
			cmd: []string{"setfacl", "-m", u + ":rx,d:" + u + ":rX", agents}})
		paths = append(paths, agents)
		m, _ := filepath.Glob(in.at(filepath.Join(agents, "*", "agent")))
		for _, p := range m {
			rel, _ := filepath.Rel(in.root, p)
			agentDir := "/" + rel
			stores, _ := filepath.Glob(filepath.Join(p, "openclaw-agent.sqlite*"))
			cmd := []string{"setfacl", "-m", u + ":x,d:" + u + ":r", agentDir}
			steps = append(steps, step{say: "let " + who + " open the SQLite store in " + agentDir + " (not its other files)", cmd: cmd})
			paths = append(paths, agentDir)
			for _, st := range stores {
				rel, _ := filepath.Rel(in.root, st)
				steps = append(steps, step{cmd: []string{"setfacl", "-m", u + ":r", "/" + rel}, say: "read " + "/" + rel})
				paths = append(paths, "/"+rel)
			}
		}
	}
	if len(dirs) > 0 {
		steps = append(steps, step{say: "let " + who + " read the transcripts, and those written later",
			cmd: append([]string{"setfacl", "-R", "-m", u + ":rX,d:" + u + ":rX"}, dirs...)})
		paths = append(paths, dirs...)
	}
	// Off the real root the commands run on the target's paths.
	for i := range steps {
		for j, a := range steps[i].cmd {
			if j > 0 && strings.HasPrefix(a, "/") {
				steps[i].cmd[j] = in.at(a)
			}
		}
	}
	return steps, paths
}

// unitData fills the unit template.
type unitData struct {
	User, Binary, DataDir, Capabilities, AccessNote string
	Env                                             []string
}

func renderUnit(d unitData) ([]byte, error) {
	var b bytes.Buffer
	err := unitTemplate.Execute(&b, d)
	return b.Bytes(), err
}

// tunnelHint is how to open the UI from a laptop.
func tunnelHint(listen string) string {
	addr, port, err := net.SplitHostPort(listen)
	if err != nil {
		port = "8767"
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "THIS-HOST"
	}
	if err == nil && !isLoopback(addr) {
		return fmt.Sprintf("The UI and API listen on %s, beyond loopback: every request needs the auth token (a browser logs in with the link sudo fleetmeter login prints)\n"+
			"Check the setup with: sudo fleetmeter doctor", listen)
	}
	return fmt.Sprintf("Open the UI from your machine through an SSH tunnel (nothing listens beyond loopback):\n"+
		"  ssh -N -L %s:127.0.0.1:%s YOU@%s     (on EC2: ubuntu@ or ec2-user@ the instance's public DNS name)\n"+
		"  then, on this host, sudo fleetmeter login prints a one-time link that logs your browser in\n"+
		"Check the setup with: sudo fleetmeter doctor", port, port, host)
}

func writeFile(path string, data []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func copyExecutable(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeFile(dst, b, 0o755)
}

// sameFile reports whether a and b are one file.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// systemdRunning: systemd is this machine's init (not so in most
// containers), so systemctl can start things.
func systemdRunning() bool {
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}

func parseInstallFlags(env *cliEnv, name string, args []string, extra func(*flag.FlagSet)) (*installer, error) {
	in := &installer{out: env.stdout}
	fs := flag.NewFlagSet("fleetmeter "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&in.dryRun, "dry-run", false, "print what would be done, change nothing")
	fs.StringVar(&in.root, "root", "/", "make every change under this dir instead of / (tests, image builds)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(env.stdout, name, fs)
			return nil, err
		}
		return nil, usageErr("%v (see fleetmeter %s --help)", err, name)
	}
	if fs.NArg() > 0 {
		return nil, usageErr("unexpected argument %q", fs.Arg(0))
	}
	root, err := filepath.Abs(in.root)
	if err != nil {
		return nil, err
	}
	in.root = root
	if os.Geteuid() != 0 && !in.dryRun {
		return nil, fmt.Errorf("%s needs root (it creates a system user and a systemd unit): run it with sudo, or add --dry-run to see what it would do", name)
	}
	return in, nil
}

func runInstall(ctx context.Context, env *cliEnv, args []string) error {
	var explicit sources
	var access, listen string
	var noStart bool
	grantUID := -1
	in, err := parseInstallFlags(env, "install", args, func(fs *flag.FlagSet) {
		fs.IntVar(&grantUID, "grant-uid", -1, "only give this uid read access to the transcripts (a container's user, see README), nothing else")
		fs.Var(&listFlag{dst: &explicit.OpenClaw}, "openclaw-dir", "an OpenClaw state dir (repeatable; default: discover under every home)")
		fs.Var(&listFlag{dst: &explicit.Claude}, "claude-dir", "a Claude Code dir holding projects/ (repeatable)")
		fs.Var(&listFlag{dst: &explicit.Codex}, "codex-dir", "a Codex home holding sessions/ (repeatable)")
		fs.StringVar(&access, "access", accessAuto, "how the service reads the agents' transcripts: acl, capability (CAP_DAC_READ_SEARCH) or auto")
		fs.StringVar(&listen, "listen", "", "address of the UI and API (default 127.0.0.1:8767; beyond loopback needs an auth token in the config file)")
		fs.BoolVar(&noStart, "no-start", false, "enable the service but do not start it")
	})
	if err != nil {
		return err
	}
	if !slices.Contains([]string{accessAuto, accessACL, accessCapability}, access) {
		return usageErr("--access %q: want acl, capability or auto", access)
	}
	for _, d := range explicit.all() {
		if !filepath.IsAbs(d) {
			return usageErr("%s: give agent dirs as absolute paths", d)
		}
	}
	for _, d := range explicit.all() {
		if fi, err := os.Stat(in.at(d)); err != nil || !fi.IsDir() {
			return usageErr("%s: no such dir (the service would find nothing there)", in.at(d))
		}
	}
	src := in.discover(explicit, env.getenv)
	for _, d := range src.all() {
		if strings.Contains(d, ",") {
			// The unit passes the dirs as FLEETMETER_*_DIRS, a comma list.
			return usageErr("%s: a dir whose name holds a comma cannot be given to the service; rename it or link it under another name", rollup.Clean(d))
		}
	}
	fmt.Fprintf(env.stdout, "fleetmeter install (root %s)\n\nAgent dirs found:\n", rollup.Clean(in.root))
	for _, l := range []struct {
		what string
		dirs []string
	}{{"OpenClaw", src.OpenClaw}, {"Claude Code", src.Claude}, {"Codex", src.Codex}} {
		fmt.Fprintf(env.stdout, "  %-12s %s\n", l.what+":", rollup.Clean(orNone(l.dirs)))
	}
	if len(src.all()) == 0 {
		fmt.Fprintln(env.stdout, "  none: the service will find nothing to read; run install again once agents run here, or name the dirs (--openclaw-dir)")
	}
	note := ""
	if access == accessAuto {
		access = accessACL
		if why, ok := in.privateWriter(src); ok {
			access = accessCapability
			note = " (" + why + ": an ACL cannot reach transcripts written later, so the service gets CAP_DAC_READ_SEARCH)"
		}
	}
	fmt.Fprintf(env.stdout, "Access: %s%s\n\n", access, rollup.Clean(note))
	if grantUID >= 0 {
		if access != accessACL {
			return fmt.Errorf("--grant-uid gives ACL entries, which files written 0600 do not inherit: run the container as the agents' own uid instead (FLEETMETER_UID)")
		}
		steps, _ := in.aclSteps(src, strconv.Itoa(grantUID))
		return in.run(steps)
	}

	unitEnv := serviceEnv(in, src, listen)
	if err := in.validateService(unitEnv); err != nil {
		return err
	}
	if access == accessACL && !in.dryRun && len(src.all()) > 0 {
		if _, err := exec.LookPath("setfacl"); err != nil {
			return errors.New("setfacl not found: install the acl package (apt-get install acl, dnf install acl), or use --access capability")
		}
	}
	m := manifest{Access: access, Sources: src}
	// Installing again (new agent dirs, a new binary) keeps what the
	// first install created, so uninstall still removes all of it.
	var old manifest
	if b, err := os.ReadFile(in.at(manifestPath)); err == nil {
		_ = json.Unmarshal(b, &old)
	}
	m.CreatedUser, m.CopiedBin, m.CreatedGroup = old.CreatedUser, old.CopiedBin, old.CreatedGroup
	var steps []step
	_, _, _, exists := in.lookupUser(serviceUser)
	if !exists {
		// The group may be there already: an admin made it to let users
		// ask the daemon (README, CLI), or an uninstall kept it.
		group, say := []string{"--user-group"}, ""
		if in.groupExists(serviceUser) {
			group, say = []string{"--gid", serviceUser}, ", in the existing group "+serviceUser
		} else {
			m.CreatedGroup = true
		}
		cmd := slices.Concat([]string{"useradd", "--system"}, group, []string{"--home-dir", systemDataDir, "--no-create-home", "--shell", "/usr/sbin/nologin", "--comment", "fleetmeter daemon", serviceUser})
		if !in.realRoot() {
			cmd = slices.Insert(cmd, 1, "--prefix", in.root)
		}
		m.CreatedUser = true
		steps = append(steps, step{say: "create the system user " + serviceUser + " (no login, no home of its own" + say + ")", cmd: cmd, do: func() error {
			if !in.realRoot() {
				for _, f := range []string{"/etc/passwd", "/etc/group"} {
					if _, err := os.Stat(in.at(f)); err != nil {
						return fmt.Errorf("%s: %w", in.at(f), err)
					}
				}
			}
			return nil
		}})
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	if !sameFile(self, in.at(installedBinary)) {
		m.CopiedBin = true
		steps = append(steps, step{say: "copy this binary to " + installedBinary, do: func() error { return copyExecutable(self, in.at(installedBinary)) }})
	}
	steps = append(steps, step{say: "create the data dir " + systemDataDir + " (mode 0700, owned by " + serviceUser + "; kept by uninstall)", do: func() error {
		if err := in.resolveUser(); err != nil {
			return err
		}
		p := in.at(systemDataDir)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := os.Chmod(p, 0o700); err != nil {
			return err
		}
		return os.Chown(p, in.uid, in.gid)
	}})
	caps, accessNote := "", "Empty: the service has no capability at all; it reads the transcripts through ACL entries (fleetmeter install --access acl)."
	if access == accessACL {
		acl, paths := in.aclSteps(src, serviceUser)
		steps = append(steps, acl...)
		m.ACLPaths = paths
	} else {
		caps = "CAP_DAC_READ_SEARCH"
		accessNote = "CAP_DAC_READ_SEARCH alone: the agents write their transcripts 0600, which no ACL reaches; it lets the service read (never write) any file (fleetmeter install --access capability)."
	}
	for _, p := range old.ACLPaths {
		if !slices.Contains(m.ACLPaths, p) {
			m.ACLPaths = append(m.ACLPaths, p)
		}
	}
	unit, err := renderUnit(unitData{User: serviceUser, Binary: installedBinary, DataDir: systemDataDir, Capabilities: caps, AccessNote: accessNote, Env: unitEnv})
	if err != nil {
		return err
	}
	steps = append(steps, step{say: "write the hardened unit " + unitPath, do: func() error { return writeFile(in.at(unitPath), unit, 0o644) }})
	mj, _ := json.MarshalIndent(m, "", "  ")
	steps = append(steps, step{say: "note what was done in " + manifestPath + " (for uninstall)", do: func() error { return writeFile(in.at(manifestPath), mj, 0o644) }})
	steps = append(steps, in.enableSteps(noStart)...)
	if err := in.run(steps); err != nil {
		return err
	}
	if in.dryRun {
		fmt.Fprintf(env.stdout, "\nThe unit it would write:\n\n%s", rollup.CleanLines(string(unit)))
		return nil
	}
	fmt.Fprintf(env.stdout, "\nInstalled.\n%s\n", tunnelHint(listenOr(listen)))
	return nil
}

// serviceEnv is the unit's environment beyond its data and runtime dirs.
func serviceEnv(in *installer, src sources, listen string) []string {
	var unitEnv []string
	for _, e := range []struct {
		name string
		dirs []string
	}{{"FLEETMETER_OPENCLAW_DIRS", src.OpenClaw}, {"FLEETMETER_CLAUDE_DIRS", src.Claude}, {"FLEETMETER_CODEX_DIRS", src.Codex}} {
		if len(e.dirs) > 0 {
			unitEnv = append(unitEnv, e.name+"="+strings.Join(e.dirs, ","))
		}
	}
	if _, err := os.Stat(in.at(defaultConfigFile)); err == nil {
		unitEnv = append(unitEnv, "FLEETMETER_CONFIG="+defaultConfigFile)
	}
	if listen != "" {
		unitEnv = append(unitEnv, "FLEETMETER_LISTEN="+listen)
	}
	return unitEnv
}

// validateService builds the configuration the service's `serve` will
// have (defaults, the config file, the unit's environment) and validates
// it as serve does, before anything is written: a setting serve refuses
// would otherwise make a unit that fails at every start (exit 2), which
// RestartPreventExitStatus keeps systemd from retrying, but is still no
// service.
func (in *installer) validateService(unitEnv []string) error {
	env := map[string]string{"FLEETMETER_DATA_DIR": systemDataDir, "FLEETMETER_RUNTIME_DIR": "/run/" + serviceUser}
	for _, kv := range unitEnv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	cfg := DefaultConfig()
	if _, err := os.Stat(in.at(defaultConfigFile)); err == nil {
		if err := cfg.loadFile(in.at(defaultConfigFile)); err != nil {
			return usageErr("the service could not start: %v", err)
		}
	}
	getenv := func(k string) string {
		if strings.HasSuffix(k, "_FILE") && env[k] != "" {
			return in.at(env[k]) // a secret file of the config, on the target
		}
		return env[k]
	}
	if err := cfg.loadEnv(getenv); err != nil {
		return usageErr("the service could not start: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		return usageErr("the service could not start with this setup (nothing was changed): %v", err)
	}
	return nil
}

func listenOr(l string) string {
	if l == "" {
		return DefaultConfig().Listen
	}
	return l
}

// defaultConfigFile is where the service's config file goes, if any.
const defaultConfigFile = "/etc/fleetmeter/fleetmeter.toml"

func orNone(dirs []string) string {
	if len(dirs) == 0 {
		return "none"
	}
	return strings.Join(dirs, ", ")
}

// resolveUser reads the service user's uid and gid from the root's passwd.
func (in *installer) resolveUser() error {
	uid, gid, _, ok := in.lookupUser(serviceUser)
	if !ok {
		return fmt.Errorf("user %s not in %s", serviceUser, in.at("/etc/passwd"))
	}
	in.uid, in.gid = uid, gid
	return nil
}

// enableSteps enable (and start) the unit: systemctl on a running
// systemd, the wants link itself under another root.
func (in *installer) enableSteps(noStart bool) []step {
	if !in.realRoot() {
		return []step{{say: "enable the unit (the link systemctl enable makes, under the root; nothing is started there)", do: func() error {
			link := in.at(wantsLink)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				return err
			}
			os.Remove(link)
			return os.Symlink(unitPath, link)
		}}}
	}
	if !systemdRunning() {
		return []step{{say: "systemd is not running here (a container?): start `" + installedBinary + " serve` as " + serviceUser + " by other means", do: func() error { return nil }}}
	}
	steps := []step{{say: "reload systemd's units", cmd: []string{"systemctl", "daemon-reload"}}}
	if noStart {
		return append(steps, step{say: "enable the service at boot", cmd: []string{"systemctl", "enable", unitName}})
	}
	return append(steps,
		step{say: "enable the service at boot", cmd: []string{"systemctl", "enable", unitName}},
		step{say: "start it (restart it, if it ran: the new unit and binary take effect)", cmd: []string{"systemctl", "restart", unitName}})
}

func runUninstall(ctx context.Context, env *cliEnv, args []string) error {
	var purge bool
	in, err := parseInstallFlags(env, "uninstall", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&purge, "purge", false, "also delete the data dir "+systemDataDir+" (the database: every model call recorded)")
	})
	if err != nil {
		return err
	}
	var m manifest
	if b, err := os.ReadFile(in.at(manifestPath)); err == nil {
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("%s: %w", in.at(manifestPath), err)
		}
	} else {
		fmt.Fprintf(env.stdout, "No %s: undoing what a default install does.\n", manifestPath)
		m.CreatedUser, m.CopiedBin = true, false
	}
	fmt.Fprintf(env.stdout, "fleetmeter uninstall (root %s)\n\n", rollup.Clean(in.root))
	var steps []step
	if in.realRoot() && systemdRunning() {
		steps = append(steps, step{say: "stop the service and disable it", cmd: []string{"systemctl", "disable", "--now", unitName}})
	} else {
		steps = append(steps, step{say: "disable the unit (remove its wants link)", do: func() error { return removeIfThere(in.at(wantsLink)) }})
	}
	steps = append(steps, step{say: "remove " + unitPath, do: func() error { return removeIfThere(in.at(unitPath)) }})
	if in.realRoot() && systemdRunning() {
		steps = append(steps, step{say: "reload systemd's units", cmd: []string{"systemctl", "daemon-reload"}})
	}
	if len(m.ACLPaths) > 0 {
		u := "u:" + serviceUser
		if _, _, _, ok := in.lookupUser(serviceUser); ok {
			steps = append(steps, step{say: "resolve the service user", do: in.resolveUser})
		}
		var targets []string
		for _, p := range m.ACLPaths {
			if _, err := os.Lstat(in.at(p)); err == nil {
				targets = append(targets, in.at(p))
			}
		}
		if len(targets) > 0 {
			steps = append(steps, step{say: "remove " + serviceUser + "'s ACL entries from the agents' dirs",
				cmd: append([]string{"setfacl", "-R", "-x", u + ",d:" + u}, targets...)})
		}
	}
	if _, _, _, ok := in.lookupUser(serviceUser); ok && m.CreatedUser {
		cmd := []string{"userdel", serviceUser}
		if !in.realRoot() {
			cmd = []string{"userdel", "--prefix", in.root, serviceUser}
		}
		steps = append(steps, step{say: "delete the user " + serviceUser, cmd: cmd})
	}
	if m.CreatedGroup && in.groupExists(serviceUser) {
		cmd := []string{"groupdel", serviceUser}
		if !in.realRoot() {
			cmd = []string{"groupdel", "--prefix", in.root, serviceUser}
		}
		// userdel removes it itself where login.defs says USERGROUPS_ENAB
		// and no one else is in it: then there is nothing left to do.
		steps = append(steps, step{say: "delete the group " + serviceUser + " (install made it; members added since lose it)", do: func() error {
			if !in.groupExists(serviceUser) {
				return nil
			}
			return in.exec(cmd)
		}})
	} else if in.groupExists(serviceUser) {
		steps = append(steps, step{say: "keep the group " + serviceUser + " (it was there before install)", do: func() error { return nil }})
	}
	if m.CopiedBin {
		steps = append(steps, step{say: "remove " + installedBinary, do: func() error { return removeIfThere(in.at(installedBinary)) }})
	}
	steps = append(steps, step{say: "remove " + manifestPath, do: func() error { return removeIfThere(in.at(manifestPath)) }})
	if purge {
		steps = append(steps, step{say: "delete the data dir " + systemDataDir + " (--purge)", do: func() error { return os.RemoveAll(in.at(systemDataDir)) }})
	} else {
		steps = append(steps, step{say: "keep the data dir " + systemDataDir + " (--purge deletes it)", do: func() error { return nil }})
	}
	if err := in.run(steps); err != nil {
		return err
	}
	if !in.dryRun {
		fmt.Fprintln(env.stdout, "Uninstalled.")
	}
	return nil
}

func removeIfThere(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
