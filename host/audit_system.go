package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sshdSettings is the global part of sshd's configuration: the first
// value of each keyword wins (as sshd reads it), Include directives are
// followed in place, and Match blocks are kept apart.
type sshdSettings struct {
	values  map[string]string // lower-case keyword → first value
	from    map[string]string // keyword → "file:line" it came from
	matches []string          // "file:line Match …" blocks that set a keyword we check
}

// readSSHD reads sshd_config under the root; ok is false when there is none.
func (a *auditor) readSSHD() (sshdSettings, bool, error) {
	s := sshdSettings{values: map[string]string{}, from: map[string]string{}}
	main := "/etc/ssh/sshd_config"
	if _, err := a.stat(main); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return s, false, nil
		}
		return s, false, err
	}
	err := a.readSSHDFile(&s, main, 0, false)
	return s, true, err
}

var sshdChecked = map[string]bool{"passwordauthentication": true, "permitrootlogin": true, "kbdinteractiveauthentication": true,
	"challengeresponseauthentication": true, "permitemptypasswords": true, "usepam": true}

func (a *auditor) readSSHDFile(s *sshdSettings, path string, depth int, inMatch bool) error {
	if depth > 8 {
		return fmt.Errorf("%s: Include nested too deep", path)
	}
	b, err := os.ReadFile(a.path(path))
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, _ := strings.Cut(strings.Join(strings.Fields(strings.ReplaceAll(line, "=", " ")), " "), " ")
		key = strings.ToLower(key)
		switch {
		case key == "match":
			inMatch = true
			continue
		case key == "include":
			for _, pat := range strings.Fields(val) {
				if !filepath.IsAbs(pat) {
					pat = filepath.Join("/etc/ssh", pat)
				}
				m := a.glob(pat)
				sort.Strings(m)
				for _, p := range m {
					if err := a.readSSHDFile(s, p, depth+1, inMatch); err != nil {
						return err
					}
				}
			}
			continue
		}
		if !sshdChecked[key] {
			continue
		}
		where := fmt.Sprintf("%s:%d", path, n)
		if inMatch {
			s.matches = append(s.matches, fmt.Sprintf("%s %s %s (inside a Match block)", where, key, val))
			continue
		}
		if _, seen := s.values[key]; !seen {
			s.values[key], s.from[key] = strings.ToLower(val), where
		}
	}
	return sc.Err()
}

// get is a keyword's effective value and where it was set ("default").
func (s sshdSettings) get(key, def string) (string, string) {
	if v, ok := s.values[key]; ok {
		return v, s.from[key]
	}
	return def, "default"
}

// checkSSHPassword: sshd must refuse passwords (PasswordAuthentication
// defaults to yes in OpenSSH; keyboard-interactive through PAM asks for
// one too), and never accept empty ones.
func checkSSHPassword(_ context.Context, a *auditor) Finding {
	return a.withSSHD(sshPassword)
}

// withSSHD reads sshd's settings for a check: unknown when they cannot be
// read, not applicable without an SSH server.
func (a *auditor) withSSHD(check func(sshdSettings) Finding) Finding {
	s, ok, err := a.readSSHD()
	if err != nil {
		return unknown("sshd_config cannot be read: " + err.Error())
	}
	if !ok {
		return notApplicable("No SSH server configuration (/etc/ssh/sshd_config).")
	}
	return check(s)
}

func sshPassword(s sshdSettings) Finding {
	var v verdict
	fix := "Set PasswordAuthentication no and KbdInteractiveAuthentication no in /etc/ssh/sshd_config.d/00-hardening.conf (the first value read wins), check with sshd -T, then systemctl reload ssh."
	pw, where := s.get("passwordauthentication", "yes")
	if pw == "yes" {
		v.problem(SeverityHigh, fix, "PasswordAuthentication %s (%s): SSH accepts passwords", pw, where)
	} else {
		v.fine("PasswordAuthentication %s (%s)", pw, where)
	}
	kbd, kwhere := s.get("kbdinteractiveauthentication", "")
	if kbd == "" {
		kbd, kwhere = s.get("challengeresponseauthentication", "yes")
	}
	pam, _ := s.get("usepam", "no")
	if kbd == "yes" && pam == "yes" {
		v.problem(SeverityHigh, fix, "KbdInteractiveAuthentication yes (%s) with UsePAM yes: PAM asks for a password", kwhere)
	}
	if e, ewhere := s.get("permitemptypasswords", "no"); e == "yes" {
		v.problem(SeverityCritical, "Set PermitEmptyPasswords no.", "PermitEmptyPasswords yes (%s)", ewhere)
	}
	for _, m := range s.matches {
		if strings.Contains(m, "passwordauthentication yes") || strings.Contains(m, "permitrootlogin yes") {
			v.problem(SeverityMedium, "Review the Match block: it allows passwords for some connections.", "%s", m)
		}
	}
	return v.finding("SSH accepts keys only.", "SSH accepts passwords.", SeverityHigh)
}

// checkSSHRoot: root may log in with a key at most
// (prohibit-password, OpenSSH's default), never with a password.
func checkSSHRoot(_ context.Context, a *auditor) Finding {
	return a.withSSHD(sshRoot)
}

func sshRoot(s sshdSettings) Finding {
	var v verdict
	val, where := s.get("permitrootlogin", "prohibit-password")
	if val == "yes" {
		v.problem(SeverityHigh, "Set PermitRootLogin no (or prohibit-password) in /etc/ssh/sshd_config.d/00-hardening.conf, then systemctl reload ssh.",
			"PermitRootLogin yes (%s): root can log in with a password", where)
	} else {
		v.fine("PermitRootLogin %s (%s)", val, where)
	}
	return v.finding("Root cannot log in over SSH with a password.", "Root can log in over SSH with a password.", SeverityHigh)
}

// Updates is what the package manager knows is pending, from local data
// only (no network: its lists are as fresh as the last apt-get update).
type Updates struct {
	Source         string    // "update-notifier" or "apt-get -s"
	Total          int       // upgradable packages
	Security       []string  // security updates ("openssl 3.0.15-1~deb12u1"); Ubuntu's notifier gives only a count
	SecurityCount  int       // len(Security), or the notifier's count
	ListsAge       time.Time // when the package lists were last fetched (zero: unknown)
	RebootRequired bool      // /run/reboot-required: an update waits for a reboot
}

// LocalUpdates asks the host's package manager what is pending, without
// network: Ubuntu's update-notifier stamp when there is one, else a
// simulated `apt-get upgrade` over the local lists. Off the real root (a
// fixture) only the files are read.
func LocalUpdates(ctx context.Context, root string) (Updates, error) {
	var u Updates
	p := func(s string) string { return filepath.Join(root, s) }
	if _, err := os.Stat(p("/run/reboot-required")); err == nil {
		u.RebootRequired = true
	}
	if fi, err := os.Stat(p("/var/lib/apt/lists")); err == nil {
		u.ListsAge = fi.ModTime()
	}
	if b, err := os.ReadFile(p("/var/lib/update-notifier/updates-available")); err == nil {
		u.Source = "update-notifier"
		u.Total, u.SecurityCount = parseUpdateNotifier(b)
		return u, nil
	}
	if root != "/" && root != "" {
		return u, errors.New("no update-notifier stamp, and apt-get runs only on the real root")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return u, errors.New("no apt-get: this host's package manager cannot tell pending updates without the network")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", "-s", "-qq", "-o", "Debug::NoLocking=true", "upgrade")
	cmd.Env = []string{"LANG=C", "LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		return u, fmt.Errorf("apt-get -s upgrade: %w", err)
	}
	u.Source = "apt-get -s"
	u.Total, u.Security = parseAptSimulate(out)
	u.SecurityCount = len(u.Security)
	return u, nil
}

var notifierLine = regexp.MustCompile(`^(\d+) (?:of these )?updates? (?:can be applied immediately|are (?:standard )?security updates|is a (?:standard )?security update)`)

// parseUpdateNotifier reads Ubuntu's /var/lib/update-notifier/
// updates-available ("12 updates can be applied immediately.\n3 of these
// updates are standard security updates.").
func parseUpdateNotifier(b []byte) (total, security int) {
	for _, line := range strings.Split(string(b), "\n") {
		m := notifierLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if strings.Contains(line, "security") {
			security += n
		} else {
			total = n
		}
	}
	return total, security
}

// parseAptSimulate reads `apt-get -s upgrade` ("Inst openssl [3.0.14-1]
// (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])"): every
// Inst line is an upgrade, a security one when its origin is a -security
// suite.
func parseAptSimulate(b []byte) (total int, security []string) {
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Inst ")
		if !ok {
			continue
		}
		total++
		name, _, _ := strings.Cut(rest, " ")
		i := strings.Index(rest, "(")
		if i < 0 {
			continue
		}
		origin := rest[i+1:]
		ver, _, _ := strings.Cut(origin, " ")
		if strings.Contains(strings.ToLower(origin), "-security") {
			security = append(security, name+" "+ver)
		}
	}
	return total, security
}

// checkUpdates: security updates the package manager knows of (from its
// local lists), and a reboot an installed update waits for.
func checkUpdates(ctx context.Context, a *auditor) Finding {
	get := a.cfg.Updates
	if get == nil {
		get = LocalUpdates
	}
	u, err := get(ctx, a.root)
	if err != nil {
		f := unknown("Pending updates cannot be told without the network: " + err.Error())
		if u.RebootRequired {
			f = Finding{Status: StatusFail, Severity: SeverityLow, Summary: "A reboot is pending.", Evidence: []string{"/run/reboot-required exists: an installed update (often the kernel) is not running yet", err.Error()}, Fix: "Reboot the host when the agents can spare it."}
		}
		return f
	}
	var v verdict
	fix := "Install them (Debian/Ubuntu: apt-get update && apt-get upgrade, or enable unattended-upgrades)."
	if u.SecurityCount > 0 {
		list := ""
		if len(u.Security) > 0 {
			shown := u.Security
			if len(shown) > maxListed {
				shown = shown[:maxListed]
			}
			list = ": " + strings.Join(shown, ", ")
			if len(u.Security) > maxListed {
				list += fmt.Sprintf(" and %d more", len(u.Security)-maxListed)
			}
		}
		v.problem(SeverityHigh, fix, "%d security updates pending (%s)%s", u.SecurityCount, u.Source, list)
	} else {
		v.fine("no security update pending (%s); %d other upgrades", u.Source, u.Total)
	}
	if u.RebootRequired {
		v.problem(SeverityLow, "Reboot the host when the agents can spare it.", "/run/reboot-required exists: an installed update (often the kernel) is not running yet")
	}
	if !u.ListsAge.IsZero() {
		age := a.cfg.Now().Sub(u.ListsAge)
		if age > 7*24*time.Hour {
			v.fine("the package lists are %d days old: what is pending is as of then (apt-get update refreshes them; the audit never does)", int(age.Hours()/24))
		}
	}
	return v.finding("No security update is pending.", "Security updates are pending.", SeverityHigh)
}
