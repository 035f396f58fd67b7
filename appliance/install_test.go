package appliance

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// needTools skips a test that needs root and system tools (useradd,
// setfacl, systemd-analyze) where they cannot be had; where scripts/test
// installed them (CI, as root on Debian) their absence is a failure.
func needTools(t *testing.T, root bool, tools ...string) {
	t.Helper()
	required := os.Getenv("FLEETMETER_TEST_REQUIRE_SYSTEM_TOOLS") != ""
	miss := func(why string) {
		if required {
			t.Fatalf("%s (scripts/testdeps installs it)", why)
		}
		t.Skip(why)
	}
	if root && os.Geteuid() != 0 {
		miss("needs root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			miss(tool + " not found")
		}
	}
}

// targetRoot is a fresh host under a temp dir: a passwd file with root
// and the agent user ana, ana's home (0700, as on Debian 12) with an
// OpenClaw state dir holding one transcript (mode as given).
func targetRoot(t *testing.T, transcriptMode fs.FileMode) string {
	t.Helper()
	root := t.TempDir()
	// The test's own dirs: let the service user through, as / would.
	os.Chmod(root, 0o755)
	os.Chmod(filepath.Dir(root), 0o755)
	write := func(p string, body string, mode fs.FileMode) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(full, mode)
	}
	write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nana:x:1000:1000:Ana:/home/ana:/bin/bash\n", 0o644)
	write("etc/group", "root:x:0:\nana:x:1000:\n", 0o644)
	write("home/ana/.openclaw/openclaw.json", `{"gateway":{"auth":{"token":"secret-gateway-token"}}}`, 0o600)
	write("home/ana/.openclaw/agents/main/agent/auth-profiles.json", `{"key":"sk-ant-xyz"}`, 0o600)
	write("home/ana/.openclaw/agents/main/sessions/s1.jsonl", "{}\n", transcriptMode)
	write("home/ana/.claude/projects/p/s.jsonl", "{}\n", transcriptMode)
	write("home/ana/.openclaw/agents/main/agent/openclaw-agent.sqlite", "SQLite format 3\x00", transcriptMode)
	for _, d := range []string{"home/ana", "home/ana/.openclaw", "home/ana/.openclaw/agents", "home/ana/.openclaw/agents/main",
		"home/ana/.openclaw/agents/main/sessions", "home/ana/.openclaw/agents/main/agent", "home/ana/.claude"} {
		os.Chmod(filepath.Join(root, d), 0o700)
	}
	return root
}

// snapshot lists every path under root with its mode and ACL xattrs.
func snapshot(t *testing.T, root string) string {
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		acl := make([]byte, 256)
		n, _ := syscall.Getxattr(p, "system.posix_acl_access", acl)
		fmt.Fprintf(&b, "%s %v %x\n", p, fi.Mode(), acl[:max(n, 0)])
		return nil
	})
	return b.String()
}

func TestInstallDryRunChangesNothing(t *testing.T) {
	root := targetRoot(t, 0o644)
	before := snapshot(t, root)
	code, out, stderr := cli(t, nil, "install", "--dry-run", "--root", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if after := snapshot(t, root); after != before {
		t.Errorf("--dry-run changed the root:\nbefore\n%s\nafter\n%s", before, after)
	}
	for _, want := range []string{
		"OpenClaw:    /home/ana/.openclaw", "Claude Code: /home/ana/.claude", "Access: acl",
		"useradd --prefix " + root + " --system",
		"setfacl -m u:fleetmeter:x " + root + "/home/ana " + root + "/home/ana/.claude " + root + "/home/ana/.openclaw",
		"setfacl -R -m u:fleetmeter:rX,d:u:fleetmeter:rX " + root + "/home/ana/.openclaw/agents/main/sessions " + root + "/home/ana/.claude/projects",
		"ProtectSystem=strict", "--dry-run: nothing was changed.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "auth-profiles") || strings.Contains(out, "openclaw.json") {
		t.Errorf("the plan grants access to the agents' credentials:\n%s", out)
	}
}

// unitDirectives reads a unit file's Key=value lines (the last one wins,
// as systemd reads most keys; repeated keys are joined).
func unitDirectives(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		if prev, ok := out[k]; ok && v != "" {
			v = prev + " " + v
		}
		out[k] = v
	}
	return out
}

// checkHardening asserts the directives the issue lists.
func checkHardening(t *testing.T, unit string, caps string) {
	t.Helper()
	d := unitDirectives(t, unit)
	for k, want := range map[string]string{
		"User": serviceUser, "ProtectSystem": "strict", "ProtectHome": "read-only", "ReadWritePaths": systemDataDir,
		"NoNewPrivileges": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": caps, "AmbientCapabilities": caps,
		"Restart": "on-failure", "RuntimeDirectory": serviceUser, "StateDirectory": serviceUser, "UMask": "0077",
		"ExecStart": installedBinary + " serve", "RestartPreventExitStatus": "2 65",
	} {
		if got, ok := d[k]; !ok || got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if !strings.Contains(d["Environment"], "FLEETMETER_RUNTIME_DIR=/run/fleetmeter") {
		t.Errorf("Environment %q does not put the socket in the runtime dir", d["Environment"])
	}
}

// exposure runs systemd-analyze security offline on a unit file.
func exposure(t *testing.T, unit string) float64 {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// asUser runs cat on path as uid and reports whether it could read it.
func readableBy(uid, gid int, path string) bool {
	cmd := exec.Command("cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	return cmd.Run() == nil
}

func TestInstallUninstallUnderRoot(t *testing.T) {
	needTools(t, true, "useradd", "userdel", "setfacl", "cat")
	root := targetRoot(t, 0o644)
	code, out, stderr := cli(t, nil, "install", "--root", root)
	if code != 0 {
		t.Fatalf("install: exit %d: %s\n%s", code, stderr, out)
	}
	in := &installer{root: root}
	uid, gid, home, ok := in.lookupUser(serviceUser)
	if !ok || uid == 0 || home != systemDataDir {
		t.Fatalf("user %s: uid %d home %q ok %v", serviceUser, uid, home, ok)
	}
	if _, _, _, ok := (&installer{root: "/"}).lookupUser(serviceUser); ok && !strings.HasPrefix(root, "/") {
		t.Fatal("unreachable")
	}
	checkHardening(t, filepath.Join(root, unitPath), "")
	d := unitDirectives(t, filepath.Join(root, unitPath))
	if !strings.Contains(d["Environment"], "FLEETMETER_OPENCLAW_DIRS=/home/ana/.openclaw") || !strings.Contains(d["Environment"], "FLEETMETER_CLAUDE_DIRS=/home/ana/.claude") {
		t.Errorf("the unit does not name the discovered dirs: %q", d["Environment"])
	}
	if link, err := os.Readlink(filepath.Join(root, wantsLink)); err != nil || link != unitPath {
		t.Errorf("not enabled: link %q %v", link, err)
	}
	fi, err := os.Stat(filepath.Join(root, systemDataDir))
	if err != nil || fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Errorf("data dir %v %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, installedBinary)); err != nil || len(b) == 0 {
		t.Errorf("binary not copied: %v", err)
	}
	transcript := filepath.Join(root, "home/ana/.openclaw/agents/main/sessions/s1.jsonl")
	store := filepath.Join(root, "home/ana/.openclaw/agents/main/agent/openclaw-agent.sqlite")
	if !readableBy(uid, gid, transcript) || !readableBy(uid, gid, filepath.Join(root, "home/ana/.claude/projects/p/s.jsonl")) || !readableBy(uid, gid, store) {
		t.Error("the service user cannot read the transcripts")
	}
	for _, secret := range []string{"home/ana/.openclaw/openclaw.json", "home/ana/.openclaw/agents/main/agent/auth-profiles.json"} {
		if readableBy(uid, gid, filepath.Join(root, secret)) {
			t.Errorf("the service user can read %s", secret)
		}
	}
	// A transcript written later (0644, as a umask-022 writer makes it)
	// inherits the access; a 0600 one does not: what --access auto sees.
	later := filepath.Join(root, "home/ana/.openclaw/agents/main/sessions/s2.jsonl")
	os.WriteFile(later, []byte("{}\n"), 0o644)
	if !readableBy(uid, gid, later) {
		t.Error("a transcript written after install is not readable")
	}
	private := filepath.Join(root, "home/ana/.openclaw/agents/main/sessions/s3.jsonl")
	os.WriteFile(private, []byte("{}\n"), 0o600)
	if readableBy(uid, gid, private) {
		t.Error("a 0600 file is readable through the ACL: the mask should hide it")
	}
	// Installing again changes nothing of note (idempotent).
	if code, out, stderr := cli(t, nil, "install", "--root", root); code != 0 || strings.Contains(out, "useradd") {
		t.Errorf("second install: exit %d, %s\n%s", code, stderr, out)
	}

	code, out, stderr = cli(t, nil, "uninstall", "--root", root)
	if code != 0 {
		t.Fatalf("uninstall: exit %d: %s\n%s", code, stderr, out)
	}
	if _, _, _, ok := in.lookupUser(serviceUser); ok {
		t.Error("user still there")
	}
	for _, p := range []string{unitPath, wantsLink, installedBinary, manifestPath} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s still there", p)
		}
	}
	if readableBy(uid, gid, transcript) || readableBy(uid, gid, store) {
		t.Error("the ACL entries outlive uninstall")
	}
	if _, err := os.Stat(filepath.Join(root, systemDataDir)); err != nil {
		t.Errorf("uninstall did not keep the data: %v", err)
	}
	cli(t, nil, "install", "--root", root)
	if code, _, stderr := cli(t, nil, "uninstall", "--purge", "--root", root); code != 0 {
		t.Fatalf("uninstall --purge: %s", stderr)
	}
	if _, err := os.Stat(filepath.Join(root, systemDataDir)); err == nil {
		t.Error("--purge kept the data dir")
	}
}

// Agents that write their transcripts 0600 get the capability, not ACLs.
func TestInstallAutoPicksCapabilityFor0600Writers(t *testing.T) {
	root := targetRoot(t, 0o600)
	code, out, stderr := cli(t, nil, "install", "--dry-run", "--root", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "Access: capability (/home/ana/") || strings.Contains(out, "setfacl") {
		t.Errorf("want the capability and no ACL:\n%s", out)
	}
	if !strings.Contains(out, "CapabilityBoundingSet=CAP_DAC_READ_SEARCH") {
		t.Errorf("unit lacks the capability:\n%s", out)
	}
}

// The unit's directives, in both access modes, and its exposure as
// systemd-analyze rates it (under 3.0, "OK").
func TestUnitHardening(t *testing.T) {
	for _, caps := range []string{"", "CAP_DAC_READ_SEARCH"} {
		t.Run("caps="+caps, func(t *testing.T) {
			b, err := renderUnit(unitData{User: serviceUser, Binary: installedBinary, DataDir: systemDataDir, Capabilities: caps, AccessNote: "x",
				Env: []string{"FLEETMETER_OPENCLAW_DIRS=/home/ana/.openclaw"}})
			if err != nil {
				t.Fatal(err)
			}
			unit := filepath.Join(t.TempDir(), unitName)
			os.WriteFile(unit, b, 0o644)
			checkHardening(t, unit, caps)
			needTools(t, false, "systemd-analyze")
			if e := exposure(t, unit); e >= 3.0 {
				t.Errorf("exposure %.1f, want under 3.0", e)
			} else {
				t.Logf("systemd-analyze security exposure: %.1f", e)
			}
		})
	}
}

func TestInstallRefusesRelativeDirs(t *testing.T) {
	code, _, stderr := cli(t, nil, "install", "--dry-run", "--root", t.TempDir(), "--openclaw-dir", "rel/dir")
	if code != 2 || !strings.Contains(stderr, "absolute") {
		t.Errorf("exit %d, %q", code, stderr)
	}
	// A comma would split the unit's FLEETMETER_*_DIRS list.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "srv", "a,b"), 0o755)
	code, _, stderr = cli(t, nil, "install", "--dry-run", "--root", root, "--openclaw-dir", "/srv/a,b")
	if code != 2 || !strings.Contains(stderr, "comma") {
		t.Errorf("a dir with a comma: exit %d, %q", code, stderr)
	}
}

// --grant-uid gives one uid (a container's user) the ACL entries and
// does nothing else.
func TestInstallGrantUIDOnly(t *testing.T) {
	root := targetRoot(t, 0o644)
	code, out, stderr := cli(t, nil, "install", "--dry-run", "--grant-uid", "65532", "--root", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "setfacl -R -m u:65532:rX,d:u:65532:rX") || strings.Contains(out, "useradd") || strings.Contains(out, "unit") {
		t.Errorf("want only ACL steps for uid 65532:\n%s", out)
	}
	if code, _, stderr := cli(t, nil, "install", "--dry-run", "--grant-uid", "65532", "--root", targetRoot(t, 0o600)); code != 1 || !strings.Contains(stderr, "FLEETMETER_UID") {
		t.Errorf("0600 writers: exit %d %q, want a refusal naming FLEETMETER_UID", code, stderr)
	}
}

// A setting the service cannot start with is refused before anything is
// written: listen beyond loopback without a token (serve exits 2 on it),
// a bad config file, an agent dir that does not exist. Before, install
// wrote a unit that failed at every start, in a restart loop.
func TestInstallRefusesWhatServeRefuses(t *testing.T) {
	root := targetRoot(t, 0o644)
	before := snapshot(t, root)
	for _, c := range []struct {
		args []string
		file string // the service's config file
		want string
	}{
		{[]string{"--listen", "0.0.0.0:8767"}, "", "not a loopback address"},
		{[]string{"--listen", "8767"}, "", "want host:port"},
		{[]string{"--openclaw-dir", "/nonexistent"}, "", "no such dir"},
		{nil, "poll_interval = \"10\"\n", "poll_interval"},
		{nil, "nosuchkey = 1\n", "unknown key"},
	} {
		cfgFile := filepath.Join(root, defaultConfigFile)
		os.Remove(cfgFile)
		if c.file != "" {
			os.MkdirAll(filepath.Dir(cfgFile), 0o755)
			os.WriteFile(cfgFile, []byte(c.file), 0o600)
		}
		for _, dry := range []bool{true, false} {
			args := append([]string{"install", "--root", root}, c.args...)
			if dry {
				args = append(args, "--dry-run")
			}
			code, out, stderr := cli(t, nil, args...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("%v with config %q: exit %d, %q; want 2 saying %q\n%s", c.args, c.file, code, stderr, c.want, out)
			}
		}
		os.Remove(cfgFile)
		os.Remove(filepath.Dir(cfgFile))
	}
	if after := snapshot(t, root); after != before {
		t.Errorf("a refused install changed the root:\nbefore\n%s\nafter\n%s", before, after)
	}
	// With a token in the service's config file, listening beyond
	// loopback is what serve accepts: so does install, and it says so.
	cfgFile := filepath.Join(root, defaultConfigFile)
	os.MkdirAll(filepath.Dir(cfgFile), 0o755)
	os.WriteFile(cfgFile, []byte("auth_token = \"0123456789abcdef0123456789abcdef\"\n"), 0o600)
	code, out, stderr := cli(t, nil, "install", "--root", root, "--dry-run", "--listen", "0.0.0.0:8767")
	if code != 0 || !strings.Contains(out, "FLEETMETER_LISTEN=0.0.0.0:8767") {
		t.Errorf("with a token: exit %d %q\n%s", code, stderr, out)
	}
}

// A fleetmeter group made before install (README: the group that may ask
// the daemon) becomes the service user's group, and uninstall keeps it;
// a group install made, uninstall deletes. Before, useradd failed on it.
func TestInstallWithAnExistingGroup(t *testing.T) {
	needTools(t, true, "useradd", "userdel", "groupdel", "setfacl")
	root := targetRoot(t, 0o644)
	group := filepath.Join(root, "etc/group")
	f, _ := os.OpenFile(group, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("fleetmeter:x:995:ana\n")
	f.Close()
	in := &installer{root: root}
	hasGroup := func() bool { b, _ := os.ReadFile(group); return strings.Contains("\n"+string(b), "\nfleetmeter:") }
	if code, out, stderr := cli(t, nil, "install", "--root", root); code != 0 {
		t.Fatalf("install with the group there: exit %d %s\n%s", code, stderr, out)
	}
	if _, gid, _, ok := in.lookupUser(serviceUser); !ok || gid != 995 {
		t.Errorf("the service user's gid %d (ok %v), want the existing group's 995", gid, ok)
	}
	if code, out, stderr := cli(t, nil, "uninstall", "--root", root); code != 0 || !strings.Contains(out, "keep the group") {
		t.Fatalf("uninstall: exit %d %s\n%s", code, stderr, out)
	}
	if b, _ := os.ReadFile(group); !strings.Contains(string(b), "fleetmeter:x:995:ana") {
		t.Errorf("uninstall removed a group install did not make:\n%s", b)
	}
	// A group install made itself goes with the user.
	os.WriteFile(group, []byte("root:x:0:\nana:x:1000:\n"), 0o644)
	if code, out, stderr := cli(t, nil, "install", "--root", root); code != 0 || !hasGroup() {
		t.Fatalf("install: exit %d %s\n%s", code, stderr, out)
	}
	if code, out, stderr := cli(t, nil, "uninstall", "--root", root); code != 0 || hasGroup() {
		b, _ := os.ReadFile(group)
		t.Errorf("uninstall: exit %d %s\n%s\ngroup file:\n%s", code, stderr, out, b)
	}
	if code, out, stderr := cli(t, nil, "install", "--root", root); code != 0 {
		t.Errorf("install after uninstall: exit %d %s\n%s", code, stderr, out)
	}
}

// On the real root, install writes into the config the dirs the installing
// shell's environment names ($CLAUDE_CONFIG_DIR, $CODEX_HOME,
// $OPENCLAW_STATE_DIR), as ingest would find them, and absolute: the
// service has none of these variables and runs from /, where a relative
// dir ("cfg", from the dir above it) is nothing, and an explicit dir that
// does not exist fails every ingest step of every source. Under another
// root they mean nothing.
func TestInstallFindsWhereIngestLooks(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"cfg/projects/p", "codexhome/sessions/2026", "oc/agents/main/sessions"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(base)
	for _, env := range []map[string]string{
		{"CLAUDE_CONFIG_DIR": filepath.Join(base, "cfg"), "CODEX_HOME": filepath.Join(base, "codexhome"), "OPENCLAW_STATE_DIR": filepath.Join(base, "oc")},
		{"CLAUDE_CONFIG_DIR": "cfg", "CODEX_HOME": "./codexhome", "OPENCLAW_STATE_DIR": "oc"},
	} {
		getenv := func(k string) string { return env[k] }
		s := (&installer{root: "/"}).discover(sources{}, getenv)
		for _, c := range []struct {
			got  []string
			want string
		}{{s.Claude, "cfg"}, {s.Codex, "codexhome"}, {s.OpenClaw, "oc"}} {
			if !slices.Contains(c.got, filepath.Join(base, c.want)) {
				t.Errorf("%v: install on / found %v, want %s among them", env, c.got, filepath.Join(base, c.want))
			}
			for _, p := range c.got {
				if !filepath.IsAbs(p) {
					t.Errorf("install would write the relative dir %q into the unit", p)
				}
			}
		}
		other := (&installer{root: t.TempDir()}).discover(sources{}, getenv)
		if len(other.all()) != 0 {
			t.Errorf("install under another root took the shell's environment: %+v", other)
		}
	}
}

// unitEnvironment reads a unit's Environment= lines as systemd does
// (systemd.exec(5)): assignments split at whitespace, a double-quoted
// one whole with \" and \\ unescaped, %% a percent sign (a lone % starts
// a specifier). An assignment without "=" is dropped, as systemd drops
// it ("Invalid environment assignment, ignoring").
func unitEnvironment(unit string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(unit, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "Environment=")
		if !ok {
			continue
		}
		var words []string
		var w strings.Builder
		in, started := false, false
		for i := 0; i < len(v); i++ {
			c := v[i]
			switch {
			case in && c == '\\' && i+1 < len(v):
				i++
				w.WriteByte(v[i])
			case c == '"':
				in, started = !in, true
			case !in && (c == ' ' || c == '\t'):
				if started {
					words = append(words, w.String())
					w.Reset()
					started = false
				}
			default:
				w.WriteByte(c)
				started = true
			}
		}
		if started {
			words = append(words, w.String())
		}
		for _, a := range words {
			if k, val, ok := strings.Cut(strings.ReplaceAll(a, "%%", "%"), "="); ok {
				env[k] = val
			}
		}
	}
	return env
}

// A dir with a space (or a quote, a backslash, a percent sign) reaches
// the service whole: written bare, systemd would split the assignment at
// the space and the service would be given a dir that does not exist,
// which fails every ingest step. (install finds such dirs in
// $CLAUDE_CONFIG_DIR or $CODEX_HOME, or is given them.)
func TestUnitEnvironmentKeepsOddPaths(t *testing.T) {
	dirs := []string{`/srv/My Agents/claude`, `/srv/100%/claude`, `/srv/a"b\c/claude`, "/root/.claude"}
	unitEnv := serviceEnv(&installer{root: t.TempDir()}, sources{Claude: dirs}, "")
	b, err := renderUnit(unitData{User: serviceUser, Binary: installedBinary, DataDir: systemDataDir, AccessNote: "x", Env: unitEnv})
	if err != nil {
		t.Fatal(err)
	}
	env := unitEnvironment(string(b))
	if got, want := env["FLEETMETER_CLAUDE_DIRS"], strings.Join(dirs, ","); got != want {
		t.Errorf("the service would get FLEETMETER_CLAUDE_DIRS=%q, want %q; the unit says:\n%s", got, want, b)
	}
	if env["FLEETMETER_DATA_DIR"] != systemDataDir {
		t.Errorf("FLEETMETER_DATA_DIR=%q", env["FLEETMETER_DATA_DIR"])
	}
}
