package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// agentDirs lists every agent dir the audit knows with what it is.
func (a *auditor) agentDirs() []string {
	var out []string
	out = append(out, a.cfg.OpenClawDirs...)
	out = append(out, a.cfg.ClaudeDirs...)
	out = append(out, a.cfg.CodexDirs...)
	return out
}

// checkStateDirs: the agents' state dirs and the transcript folders in
// them are not listable or readable by other users (they hold chat
// history, and OpenClaw's hold API keys).
func checkStateDirs(_ context.Context, a *auditor) Finding {
	dirs := a.agentDirs()
	if len(dirs) == 0 {
		return notApplicable("No agent state dir found.")
	}
	var v verdict
	for _, d := range dirs {
		paths := []string{d}
		for _, pattern := range []string{"agents", "agents/*/sessions", "agents/*/agent", "credentials", "projects", "sessions"} {
			paths = append(paths, a.glob(filepath.Join(d, pattern))...)
		}
		bad := 0
		for _, p := range paths {
			fi, err := a.stat(p)
			if err != nil || !fi.IsDir() {
				continue
			}
			if a.exposed(p, fi) {
				bad++
				v.problem(SeverityHigh, "chmod -R o-rwx on each dir named (OpenClaw creates its own 0700; keep it so).",
					"%s: mode %s: every local user can read it", p, modeString(fi))
			}
		}
		if bad == 0 {
			if fi, err := a.stat(d); err == nil {
				v.fine("%s: mode %s", d, modeString(fi))
			}
		}
	}
	return v.finding("The agents' state dirs are private to their users.", "An agent state dir is readable by every local user.", SeverityHigh)
}

// agentConfigFiles lists the files under an agent dir that hold keys or
// tokens: OpenClaw's config, .env, credentials and auth profiles, Claude
// Code's credentials (and ~/.claude.json), Codex's auth.json.
func (a *auditor) agentConfigFiles() []string {
	var out []string
	glob := func(dir string, patterns ...string) {
		for _, pat := range patterns {
			out = append(out, a.glob(filepath.Join(dir, pat))...)
		}
	}
	for _, d := range a.cfg.OpenClawDirs {
		glob(d, "openclaw.json", "clawdbot.json", ".env", "credentials/*", "credentials/*/*", "agents/*/agent/auth-profiles.json", "agents/*/agent/models.json", "identity/*")
	}
	for _, d := range a.cfg.ClaudeDirs {
		glob(d, ".credentials.json", "settings.json")
		if filepath.Base(d) == ".claude" {
			glob(filepath.Dir(d), ".claude.json")
		}
	}
	for _, d := range a.cfg.CodexDirs {
		glob(d, "auth.json", "config.toml")
	}
	return out
}

// checkAgentConfigFiles: files holding keys and tokens are the agent
// user's only.
func checkAgentConfigFiles(_ context.Context, a *auditor) Finding {
	files := a.agentConfigFiles()
	if len(files) == 0 {
		return notApplicable("No agent config or credential file found.")
	}
	var v verdict
	for _, p := range files {
		fi, err := a.stat(p)
		if err != nil || fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0 {
			continue
		}
		switch perm := fi.Mode().Perm(); {
		case a.exposed(p, fi):
			v.problem(SeverityHigh, "chmod 0600 each file named.", "%s: mode %s: every local user can read its keys", p, modeString(fi))
		case perm&0o022 != 0:
			v.problem(SeverityMedium, "chmod 0600 each file named.", "%s: mode %s: other users can change it", p, modeString(fi))
		default:
			v.fine("%s: mode %s", p, modeString(fi))
		}
	}
	return v.finding("The agents' config and credential files are private.", "An agent config or credential file is readable or writable by other users.", SeverityHigh)
}

// workspaces are the OpenClaw agents' working dirs: <state>/workspace,
// <state>/workspace-<agent>, and those openclaw.json names.
func (a *auditor) workspaces() []string {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if p == "" || seen[p] {
			return
		}
		if fi, err := a.stat(p); err == nil && fi.IsDir() {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, d := range a.cfg.OpenClawDirs {
		add(filepath.Join(d, "workspace"))
		for _, p := range a.glob(filepath.Join(d, "workspace-*")) {
			add(p)
		}
		var gc gatewayConfig
		if a.readJSON(filepath.Join(d, "openclaw.json"), &gc) == nil {
			home := filepath.Dir(d)
			expand := func(w string) string {
				if strings.HasPrefix(w, "~/") {
					return filepath.Join(home, w[2:])
				}
				if filepath.IsAbs(w) {
					return filepath.Clean(w)
				}
				return ""
			}
			add(expand(gc.Agents.Defaults.Workspace))
			for _, ag := range gc.Agents.List {
				add(expand(ag.Workspace))
			}
		}
	}
	sort.Strings(out)
	return out
}

// maxListed bounds the paths a finding names; the rest is counted.
const maxListed = 10

// checkWorkspaces: nothing in an agent's workspace is world-writable (any
// local user could change what the agent reads and runs).
func checkWorkspaces(ctx context.Context, a *auditor) Finding {
	ws := a.workspaces()
	if len(ws) == 0 {
		return notApplicable("No agent workspace found.")
	}
	var v verdict
	for _, w := range ws {
		var found []string
		total, visited, truncated := 0, 0, false
		err := filepath.WalkDir(a.path(w), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable corner: skip it, keep walking
			}
			if visited++; visited > a.cfg.WalkLimit || ctx.Err() != nil {
				truncated = true
				return filepath.SkipAll
			}
			if d.Type()&fs.ModeSymlink != 0 {
				return nil // a link's own mode means nothing
			}
			fi, err := d.Info()
			if err != nil || fi.Mode().Perm()&0o002 == 0 {
				return nil
			}
			if d.IsDir() && fi.Mode()&fs.ModeSticky != 0 && d.Name() == "tmp" {
				return nil // a sticky scratch dir, as /tmp
			}
			total++
			if len(found) < maxListed {
				rel, _ := filepath.Rel(a.root, p)
				found = append(found, fmt.Sprintf("/%s (%04o)", rel, fi.Mode().Perm()))
			}
			return nil
		})
		if err != nil {
			v.fine("%s: not walked whole (%v)", w, err)
		}
		if truncated {
			v.fine("%s: walk stopped after %d entries", w, a.cfg.WalkLimit)
		}
		if total == 0 {
			v.fine("%s: nothing world-writable", w)
			continue
		}
		more := ""
		if total > len(found) {
			more = fmt.Sprintf(" and %d more", total-len(found))
		}
		v.problem(SeverityMedium, "chmod -R o-w on each workspace named (find WORKSPACE -perm -o+w -exec chmod o-w {} +).",
			"%s: %d world-writable entries: %s%s", w, total, strings.Join(found, ", "), more)
	}
	return v.finding("Nothing in the agents' workspaces is world-writable.", "Files in an agent workspace are world-writable: any local user can change what the agent reads and runs.", SeverityMedium)
}

// secretKey matches variable names that hold secrets.
var secretKey = regexp.MustCompile(`(?i)(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE_KEY|ACCESS_KEY|_DSN$|^DSN$|CREDENTIALS?$)`)

// envFiles lists the plain environment files the audit reads: the
// agents' .env files, /etc/environment, /etc/default/*claw*, and every
// systemd unit and drop-in under /etc/systemd/system (Environment= lines;
// `systemctl show` prints them to every user).
func (a *auditor) envFiles() []string {
	var out []string
	add := func(pattern string) { out = append(out, a.glob(pattern)...) }
	for _, d := range a.agentDirs() {
		add(filepath.Join(d, ".env"))
		add(filepath.Join(filepath.Dir(d), ".env"))
	}
	add("/etc/environment")
	add("/etc/default/*claw*")
	add("/etc/systemd/system/*.service")
	add("/etc/systemd/system/*.service.d/*.conf")
	add("/etc/systemd/user/*.service")
	for _, d := range a.agentDirs() {
		add(filepath.Join(filepath.Dir(d), ".config/systemd/user/*.service"))
		add(filepath.Join(filepath.Dir(d), ".config/systemd/user/*.service.d/*.conf"))
	}
	sort.Strings(out)
	seen := map[string]bool{}
	uniq := out[:0]
	for _, p := range out {
		if !seen[p] {
			seen[p] = true
			uniq = append(uniq, p)
		}
	}
	return uniq
}

// envSecret is a secret-looking assignment: where it is and its name,
// never its value.
type envSecret struct {
	line int
	key  string
}

// scanEnvSecrets finds KEY=value assignments with a secret-looking name
// and a literal value in an env file or unit (Environment="K=V" K2=V2).
func scanEnvSecrets(b []byte, unit bool) []envSecret {
	var out []envSecret
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		var assigns []string
		if unit {
			rest, ok := strings.CutPrefix(line, "Environment=")
			if !ok {
				continue
			}
			assigns = splitUnitWords(rest)
		} else {
			assigns = []string{strings.TrimPrefix(line, "export ")}
		}
		for _, as := range assigns {
			k, val, ok := strings.Cut(as, "=")
			k, val = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(val), `"'`)
			if !ok || val == "" || strings.HasSuffix(k, "_FILE") || strings.HasPrefix(val, "$") || strings.HasPrefix(val, "/") {
				continue // empty, a file path or a reference: no secret here
			}
			if secretKey.MatchString(k) {
				out = append(out, envSecret{n, k})
			}
		}
	}
	return out
}

// splitUnitWords splits an Environment= value into its assignments
// (space-separated, double or single quotes group).
func splitUnitWords(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '"' || r == '\''):
			quote = r
		case quote == 0 && r == ' ':
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// checkEnvSecrets: API keys and tokens in plain environment files and
// unit files. Readable by others is high; a unit's Environment= is too
// (any user can `systemctl show` it); a private .env file is low (strict
// profile): a credentials store or systemd LoadCredential= is better.
func checkEnvSecrets(_ context.Context, a *auditor) Finding {
	files := a.envFiles()
	if len(files) == 0 {
		return notApplicable("No environment file found.")
	}
	var v verdict
	unreadable := 0
	for _, p := range files {
		fi, err := a.stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > 4<<20 {
			continue
		}
		b, err := os.ReadFile(a.path(p))
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				unreadable++
			}
			continue
		}
		unit := strings.Contains(p, "/systemd/")
		secrets := scanEnvSecrets(b, unit)
		if len(secrets) == 0 {
			continue
		}
		var names []string
		for _, s := range secrets {
			names = append(names, fmt.Sprintf("%s (line %d)", s.key, s.line))
		}
		where := fmt.Sprintf("%s: mode %s: %s", p, modeString(fi), strings.Join(names, ", "))
		switch {
		case unit:
			v.problem(SeverityHigh, "Move secrets out of unit files: LoadCredential= or an EnvironmentFile= of mode 0600, then systemctl daemon-reload.",
				"%s in Environment= (any user can read it with systemctl show)", where)
		case a.exposed(p, fi):
			v.problem(SeverityHigh, "chmod 0600 each env file named, and rotate the keys it exposed.", "%s, readable by every local user", where)
		default:
			v.problem(SeverityLow, "Keep keys in the agent's credential store or systemd credentials rather than plain env files.", "%s, in a plain file (private to its owner)", where)
		}
	}
	if unreadable > 0 {
		v.fine("%d environment files not readable by this user (run the audit as root to see them)", unreadable)
	}
	return v.finding("No secret sits in a plain environment file.", "Secrets sit in plain environment or unit files.", SeverityHigh)
}
