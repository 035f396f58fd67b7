package host

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fx is one entry of a fixture tree: a file with body, a dir (body ""
// and dir true) or a symlink (link), with its mode.
type fx struct {
	path string
	mode fs.FileMode
	body string
	dir  bool
	link string
}

func file(path string, mode fs.FileMode, body string) fx {
	return fx{path: path, mode: mode, body: body}
}
func dir(path string, mode fs.FileMode) fx { return fx{path: path, mode: mode, dir: true} }
func symlink(path, target string) fx       { return fx{path: path, link: target} }

// tree builds a fixture root. Modes are set after creation (the umask
// does not apply) and parents default to 0755.
func tree(t *testing.T, entries ...fx) string {
	t.Helper()
	root := t.TempDir()
	for _, e := range entries {
		p := filepath.Join(root, e.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case e.link != "":
			err = os.Symlink(e.link, p)
		case e.dir:
			if err = os.MkdirAll(p, 0o755); err == nil {
				err = os.Chmod(p, e.mode)
			}
		default:
			if err = os.WriteFile(p, []byte(e.body), 0o600); err == nil {
				err = os.Chmod(p, e.mode)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// baseConfig is a sound host: fleetmeter on loopback, one OpenClaw state
// dir, one Claude dir, one Codex home.
func baseConfig(root string) AuditConfig {
	return AuditConfig{
		Root: root, Listen: "127.0.0.1:8767", DataDir: "/var/lib/fleetmeter",
		OpenClawDirs: []string{"/home/ana/.openclaw"}, ClaudeDirs: []string{"/home/ana/.claude"}, CodexDirs: []string{"/home/ana/.codex"},
		Updates: func(context.Context, string) (Updates, error) { return Updates{Source: "test"}, nil },
		Now:     func() time.Time { return time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC) },
	}
}

// procNet is a /proc/net/tcp with the listening sockets given as
// "a.b.c.d:port:inode".
func procNet(t *testing.T, socks ...string) string {
	var b strings.Builder
	b.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i, s := range socks {
		parts := strings.Split(s, ":")
		ip := net.ParseIP(parts[0]).To4()
		var port, inode int
		json.Unmarshal([]byte(parts[1]), &port)
		json.Unmarshal([]byte(parts[2]), &inode)
		// little-endian word, as the kernel prints it on x86
		hexIP := strings.ToUpper(strings.Join([]string{hex2(ip[3]), hex2(ip[2]), hex2(ip[1]), hex2(ip[0])}, ""))
		b.WriteString(strings.Join([]string{"   " + itoa(i) + ":", hexIP + ":" + hex4(port), "00000000:0000", "0A",
			"00000000:00000000", "00:00000000", "00000000", "0", "0", itoa(inode), "1", "0000000000000000", "100", "0", "0", "10", "0"}, " "))
		b.WriteString("\n")
	}
	return b.String()
}

func hex2(b byte) string {
	return strings.ToUpper(string("0123456789abcdef"[b>>4]) + string("0123456789abcdef"[b&15]))
}
func hex4(n int) string { return hex2(byte(n>>8)) + hex2(byte(n)) }
func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// A process that holds a socket: /proc/<pid>/comm and fd/3 → socket:[inode].
func proc(pid, comm string, inode int) []fx {
	return []fx{file("proc/"+pid+"/comm", 0o644, comm+"\n"), symlink("proc/"+pid+"/fd/3", "socket:["+itoa(inode)+"]")}
}

func TestAuditChecks(t *testing.T) {
	sound := []fx{
		dir("var/lib/fleetmeter", 0o700), file("var/lib/fleetmeter/fleetmeter.db", 0o600, "x"),
		dir("home/ana/.openclaw", 0o700), dir("home/ana/.openclaw/agents/main/sessions", 0o700), dir("home/ana/.openclaw/agents/main/agent", 0o700),
		file("home/ana/.openclaw/openclaw.json", 0o600, `{"gateway":{"port":18789,"bind":"loopback","auth":{"mode":"token","token":"0123456789abcdef0123456789abcdef"}}}`),
		file("home/ana/.openclaw/agents/main/agent/auth-profiles.json", 0o600, `{}`),
		dir("home/ana/.openclaw/workspace", 0o755), file("home/ana/.openclaw/workspace/AGENTS.md", 0o644, "hi"),
		dir("home/ana/.claude", 0o700), dir("home/ana/.claude/projects", 0o700), dir("home/ana/.codex", 0o700), file("home/ana/.claude/.credentials.json", 0o600, "{}"), file("home/ana/.claude.json", 0o600, "{}"),
		dir("home/ana/.codex/sessions", 0o700), file("home/ana/.codex/auth.json", 0o600, "{}"),
		file("etc/ssh/sshd_config", 0o644, "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\n"),
		file("etc/ssh/sshd_config.d/60-cloudimg-settings.conf", 0o644, "PasswordAuthentication no\n"),
		file("proc/net/tcp", 0o444, procNet(t, "0.0.0.0:22:100", "127.0.0.1:18789:200", "127.0.0.1:8767:300")),
		file("etc/systemd/system/openclaw.service", 0o644, "[Service]\nEnvironment=NODE_ENV=production\nEnvironmentFile=/home/ana/.openclaw/.env.private\n"),
	}
	sound = append(sound, proc("900", "sshd", 100)...)
	sound = append(sound, proc("901", "openclaw-gateway", 200)...)

	cases := []struct {
		name    string
		check   string
		extra   []fx // added to (or replacing, same path) the sound tree
		cfg     func(*AuditConfig)
		status  CheckStatus
		sev     Severity // for fails
		evident string   // substring of the evidence
	}{
		{"listen loopback", "fleetmeter_listen", nil, nil, StatusPass, 0, "loopback only"},
		{"listen beyond loopback, no token", "fleetmeter_listen", nil, func(c *AuditConfig) { c.Listen = "0.0.0.0:8767" }, StatusFail, SeverityCritical, "no auth_token"},
		{"listen beyond loopback, short token", "fleetmeter_listen", nil, func(c *AuditConfig) { c.Listen = "0.0.0.0:8767"; c.AuthToken = "short" }, StatusFail, SeverityHigh, "5-character token"},
		{"listen beyond loopback, strong token", "fleetmeter_listen", nil, func(c *AuditConfig) { c.Listen = "10.0.0.5:8767"; c.AuthToken = strings.Repeat("k", 40) }, StatusFail, SeverityLow, "reachable from the network"},

		{"own files private", "fleetmeter_files", nil, nil, StatusPass, 0, "fleetmeter.db: mode 0600"},
		{"database world-readable", "fleetmeter_files", []fx{file("var/lib/fleetmeter/fleetmeter.db", 0o644, "x")}, nil, StatusFail, SeverityHigh, "every local user can read every model call"},
		{"data dir world-writable", "fleetmeter_files", []fx{dir("var/lib/fleetmeter", 0o777)}, nil, StatusFail, SeverityCritical, "anyone can replace"},
		{"socket open to all", "fleetmeter_files", []fx{dir("run/fleetmeter", 0o755), file("run/fleetmeter/fleetmeter.sock", 0o666, "")},
			func(c *AuditConfig) { c.Socket = "/run/fleetmeter/fleetmeter.sock" }, StatusFail, SeverityHigh, "download the database"},
		{"socket in a private dir", "fleetmeter_files", []fx{dir("run/fleetmeter", 0o700), file("run/fleetmeter/fleetmeter.sock", 0o666, "")},
			func(c *AuditConfig) { c.Socket = "/run/fleetmeter/fleetmeter.sock" }, StatusPass, 0, "/run/fleetmeter: mode 0700"},
		{"config with secret readable", "fleetmeter_files", []fx{file("etc/fleetmeter/config.toml", 0o644, "auth_token = \"abc\"\n")},
			func(c *AuditConfig) { c.ConfigFile = "/etc/fleetmeter/config.toml" }, StatusFail, SeverityHigh, "holds auth_token"},
		{"config without secret readable", "fleetmeter_files", []fx{file("etc/fleetmeter/config.toml", 0o644, "tz = \"UTC\"\n")},
			func(c *AuditConfig) { c.ConfigFile = "/etc/fleetmeter/config.toml" }, StatusPass, 0, "config.toml: mode 0644"},
		{"no data dir yet", "fleetmeter_files", nil, func(c *AuditConfig) { c.DataDir = "/var/lib/nothing" }, StatusNA, 0, ""},

		{"state dirs private", "agent_state_private", nil, nil, StatusPass, 0, ".openclaw: mode 0700"},
		{"state dir world-readable", "agent_state_private", []fx{dir("home/ana/.openclaw", 0o755)}, nil, StatusFail, SeverityHigh, "/home/ana/.openclaw: mode 0755"},
		{"sessions dir world-readable under a traversable root", "agent_state_private", []fx{dir("home/ana/.openclaw", 0o711), dir("home/ana/.openclaw/agents", 0o711), dir("home/ana/.openclaw/agents/main", 0o711), dir("home/ana/.openclaw/agents/main/sessions", 0o755)}, nil, StatusFail, SeverityHigh, "agents/main/sessions: mode 0755"},
		{"a 0755 dir inside a 0700 root is unreachable", "agent_state_private", []fx{dir("home/ana/.openclaw/agents/main/sessions", 0o755)}, nil, StatusPass, 0, ".openclaw: mode 0700"},
		{"claude projects world-readable", "agent_state_private", []fx{dir("home/ana/.claude", 0o711), dir("home/ana/.claude/projects", 0o755)}, nil, StatusFail, SeverityHigh, ".claude/projects"},
		{"no agents", "agent_state_private", nil, func(c *AuditConfig) { c.OpenClawDirs, c.ClaudeDirs, c.CodexDirs = nil, nil, nil }, StatusNA, 0, ""},

		{"config files private", "agent_config_private", nil, nil, StatusPass, 0, "auth-profiles.json: mode 0600"},
		{"openclaw.json world-readable", "agent_config_private", []fx{dir("home/ana/.openclaw", 0o755), file("home/ana/.openclaw/openclaw.json", 0o644, "{}")}, nil, StatusFail, SeverityHigh, "openclaw.json: mode 0644"},
		{"a 0644 openclaw.json in a 0700 dir", "agent_config_private", []fx{file("home/ana/.openclaw/openclaw.json", 0o644, "{}")}, nil, StatusPass, 0, "openclaw.json: mode 0644"},
		{"claude credentials world-readable", "agent_config_private", []fx{dir("home/ana/.claude", 0o701), file("home/ana/.claude/.credentials.json", 0o604, "{}")}, nil, StatusFail, SeverityHigh, ".credentials.json"},
		{"codex auth group-writable", "agent_config_private", []fx{file("home/ana/.codex/auth.json", 0o620, "{}")}, nil, StatusFail, SeverityMedium, "auth.json: mode 0620"},

		{"gateway loopback with token", "gateway_exposure", nil, nil, StatusPass, 0, `bind "loopback", port 18789, auth token`},
		{"gateway lan without auth", "gateway_exposure", []fx{file("home/ana/.openclaw/openclaw.json", 0o600, `{gateway: {bind: "lan", auth: {mode: "none"}}, // JSON5
			}`)}, nil, StatusFail, SeverityCritical, "without auth"},
		{"gateway lan with short token", "gateway_exposure", []fx{file("home/ana/.openclaw/openclaw.json", 0o600, `{"gateway":{"bind":"lan","auth":{"token":"abc123"}}}`)}, nil, StatusFail, SeverityHigh, "6-character secret"},
		{"gateway lan with strong token", "gateway_exposure", []fx{file("home/ana/.openclaw/openclaw.json", 0o600, `{"gateway":{"bind":"lan","auth":{"mode":"token","token":"0123456789abcdef0123456789abcdef"}}}`)}, nil, StatusFail, SeverityMedium, "reachable from the network"},
		{"gateway loopback without auth", "gateway_exposure", []fx{file("home/ana/.openclaw/openclaw.json", 0o600, `{"gateway":{"bind":"loopback","auth":{"mode":"none"}}}`)}, nil, StatusFail, SeverityMedium, "no auth"},
		{"gateway says loopback, socket is not", "gateway_exposure", []fx{file("proc/net/tcp", 0o444, procNet(t, "0.0.0.0:22:100", "0.0.0.0:18789:200"))}, nil, StatusFail, SeverityMedium, "openclaw-gateway (pid 901) listens beyond loopback"},
		{"gateway funnel", "gateway_exposure", []fx{file("home/ana/.openclaw/openclaw.json", 0o600, `{"gateway":{"auth":{"token":"0123456789abcdef0123456789abcdef"},"tailscale":{"mode":"funnel"}}}`)}, nil, StatusFail, SeverityHigh, "funnel"},
		{"no gateway config", "gateway_exposure", nil, func(c *AuditConfig) { c.OpenClawDirs = nil }, StatusNA, 0, ""},

		{"only ssh beyond loopback", "listening_ports", nil, nil, StatusPass, 0, "0.0.0.0:22 by sshd (pid 900) (SSH)"},
		{"a database on every address", "listening_ports", append([]fx{file("proc/net/tcp", 0o444, procNet(t, "0.0.0.0:22:100", "0.0.0.0:5432:400"))}, proc("950", "postgres", 400)...), nil, StatusFail, SeverityMedium, "0.0.0.0:5432 by postgres (pid 950)"},
		{"unknown owner", "listening_ports", []fx{file("proc/net/tcp", 0o444, procNet(t, "10.1.2.3:9000:999"))}, nil, StatusFail, SeverityMedium, "10.1.2.3:9000 by a process"},

		{"ssh keys only", "ssh_password_login", nil, nil, StatusPass, 0, "PasswordAuthentication no (/etc/ssh/sshd_config.d/60-cloudimg-settings.conf:1)"},
		{"ssh password by default", "ssh_password_login", []fx{file("etc/ssh/sshd_config.d/60-cloudimg-settings.conf", 0o644, "# nothing\n")}, nil, StatusFail, SeverityHigh, "PasswordAuthentication yes (default)"},
		{"ssh first value wins", "ssh_password_login", []fx{file("etc/ssh/sshd_config.d/50-cloud-init.conf", 0o644, "PasswordAuthentication yes\n")}, nil, StatusFail, SeverityHigh, "50-cloud-init.conf:1"},
		{"ssh kbd-interactive through PAM", "ssh_password_login", []fx{file("etc/ssh/sshd_config", 0o644, "PasswordAuthentication no\nKbdInteractiveAuthentication yes\nUsePAM yes\n")}, nil, StatusFail, SeverityHigh, "PAM asks for a password"},
		{"ssh empty passwords", "ssh_password_login", []fx{file("etc/ssh/sshd_config", 0o644, "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitEmptyPasswords yes\n")}, nil, StatusFail, SeverityCritical, "PermitEmptyPasswords yes"},
		{"ssh password in a Match block", "ssh_password_login", []fx{file("etc/ssh/sshd_config", 0o644, "PasswordAuthentication no\nKbdInteractiveAuthentication no\nMatch User deploy\n  PasswordAuthentication yes\n")}, nil, StatusFail, SeverityMedium, "inside a Match block"},
		{"no ssh server", "ssh_password_login", []fx{file("etc/ssh/ssh_config", 0o644, "")}, func(c *AuditConfig) { os.RemoveAll(filepath.Join(c.Root, "etc/ssh/sshd_config")) }, StatusNA, 0, ""},

		{"root login by default", "ssh_root_login", nil, nil, StatusPass, 0, "PermitRootLogin prohibit-password (default)"},
		{"root login with password", "ssh_root_login", []fx{file("etc/ssh/sshd_config.d/10-root.conf", 0o644, "PermitRootLogin yes\n")}, nil, StatusFail, SeverityHigh, "PermitRootLogin yes (/etc/ssh/sshd_config.d/10-root.conf:1)"},
		{"root login off", "ssh_root_login", []fx{file("etc/ssh/sshd_config.d/10-root.conf", 0o644, "PermitRootLogin no\n")}, nil, StatusPass, 0, "PermitRootLogin no"},

		{"no update pending", "security_updates", nil, nil, StatusPass, 0, "no security update pending"},
		{"apt security updates", "security_updates", nil, func(c *AuditConfig) {
			c.Updates = func(context.Context, string) (Updates, error) {
				total, sec := parseAptSimulate([]byte(aptSimulateFixture))
				return Updates{Source: "apt-get -s", Total: total, Security: sec, SecurityCount: len(sec)}, nil
			}
		}, StatusFail, SeverityHigh, "2 security updates pending (apt-get -s): openssl 3.0.15-1~deb12u1, libssl3 3.0.15-1~deb12u1"},
		{"ubuntu notifier", "security_updates", []fx{file("var/lib/update-notifier/updates-available", 0o644, "\n12 updates can be applied immediately.\n3 of these updates are standard security updates.\nTo see these additional updates run: apt list --upgradable\n")},
			func(c *AuditConfig) { c.Updates = nil }, StatusFail, SeverityHigh, "3 security updates pending (update-notifier)"},
		{"reboot pending", "security_updates", []fx{file("run/reboot-required", 0o644, "*** System restart required ***\n")},
			func(c *AuditConfig) {
				c.Updates = func(ctx context.Context, root string) (Updates, error) {
					u, _ := LocalUpdates(ctx, root)
					u.Source = "test"
					return u, nil
				}
			}, StatusFail, SeverityLow, "reboot-required"},
		{"no package manager", "security_updates", nil, func(c *AuditConfig) {
			c.Updates = func(context.Context, string) (Updates, error) { return Updates{}, errors.New("no apt-get") }
		}, StatusUnknown, 0, ""},

		{"workspace clean", "workspace_world_writable", nil, nil, StatusPass, 0, "nothing world-writable"},
		{"world-writable script", "workspace_world_writable", []fx{file("home/ana/.openclaw/workspace/tools/run.sh", 0o777, "#!/bin/sh")}, nil, StatusFail, SeverityMedium, "workspace/tools/run.sh (0777)"},
		{"world-writable dir in a named workspace", "workspace_world_writable", []fx{
			file("home/ana/.openclaw/openclaw.json", 0o600, `{"agents":{"list":[{"id":"ops","workspace":"~/ops-ws"}]}}`), dir("home/ana/ops-ws/shared", 0o777)},
			nil, StatusFail, SeverityMedium, "/home/ana/ops-ws/shared (0777)"},
		{"symlink to a world-writable target is not counted", "workspace_world_writable", []fx{symlink("home/ana/.openclaw/workspace/tmp-link", "/tmp")}, nil, StatusPass, 0, ""},

		{"no secrets in env files", "env_file_secrets", nil, nil, StatusPass, 0, ""},
		{"key in a world-readable .env", "env_file_secrets", []fx{file("home/ana/.env", 0o644, "# keys\nANTHROPIC_API_KEY=sk-ant-secret\nLOG_LEVEL=info\n")}, nil, StatusFail, SeverityHigh, "ANTHROPIC_API_KEY (line 2), readable by every local user"},
		{"key in a .env in a private dir", "env_file_secrets", []fx{file("home/ana/.openclaw/.env", 0o644, "export OPENAI_API_KEY=\"sk-x\"\n")}, nil, StatusFail, SeverityLow, "OPENAI_API_KEY (line 1), in a plain file"},
		{"token in a unit's Environment=", "env_file_secrets", []fx{file("etc/systemd/system/openclaw.service", 0o644, "[Service]\nEnvironment=\"OPENCLAW_GATEWAY_TOKEN=abc\" NODE_ENV=production\n")}, nil, StatusFail, SeverityHigh, "OPENCLAW_GATEWAY_TOKEN (line 2) in Environment="},
		{"file references are fine", "env_file_secrets", []fx{file("etc/systemd/system/fleetmeter.service", 0o644, "[Service]\nEnvironment=FLEETMETER_AUTH_TOKEN_FILE=/etc/fleetmeter/token GITHUB_TOKEN=\n")}, nil, StatusPass, 0, ""},
	}
	covered := map[string]map[CheckStatus]bool{}
	for _, tc := range cases {
		t.Run(tc.check+"/"+tc.name, func(t *testing.T) {
			root := tree(t, append(append([]fx{}, sound...), tc.extra...)...)
			cfg := baseConfig(root)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			rep := Audit(context.Background(), cfg)
			f, ok := rep.Find(tc.check)
			if !ok {
				t.Fatalf("no finding %s", tc.check)
			}
			if f.Status != tc.status {
				t.Fatalf("status %s, want %s: %+v", f.Status, tc.status, f)
			}
			if tc.status == StatusFail && f.Severity != tc.sev {
				t.Errorf("severity %s, want %s: %+v", f.Severity, tc.sev, f)
			}
			if tc.status == StatusFail && f.Fix == "" {
				t.Errorf("a failed check names no fix: %+v", f)
			}
			if tc.evident != "" && !strings.Contains(strings.Join(f.Evidence, "\n"), tc.evident) {
				t.Errorf("evidence lacks %q:\n%s", tc.evident, strings.Join(f.Evidence, "\n"))
			}
			for _, e := range f.Evidence {
				for _, secret := range []string{"sk-ant-secret", "sk-x", "abc123", "0123456789abcdef"} {
					if strings.Contains(e, secret) {
						t.Errorf("evidence shows a secret: %s", e)
					}
				}
			}
		})
		if covered[tc.check] == nil {
			covered[tc.check] = map[CheckStatus]bool{}
		}
		covered[tc.check][tc.status] = true
	}
	for _, id := range AuditIDs() {
		if !covered[id][StatusPass] || !covered[id][StatusFail] {
			t.Errorf("check %s lacks a pass or a fail case", id)
		}
	}
}

const aptSimulateFixture = `NOTE: This is only a simulation!
Inst openssl [3.0.14-1~deb12u2] (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
Inst libssl3 [3.0.14-1~deb12u2] (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.11/stable [all])
Conf openssl (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
`

func TestParseProcNetV6(t *testing.T) {
	// [::1]:8767 and [::]:22 as the kernel prints them.
	b := []byte("  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 00000000000000000000000001000000:223F 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0\n" +
		"   1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0\n" +
		"   2: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0\n")
	socks, err := parseProcNet(b, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 2 {
		t.Fatalf("got %d listening sockets, want 2 (the established one is not listening): %+v", len(socks), socks)
	}
	if !socks[0].Addr.Equal(net.IPv6loopback) || socks[0].Port != 8767 || !socks[0].Local() {
		t.Errorf("first socket %+v, want [::1]:8767 local", socks[0])
	}
	if !socks[1].Addr.Equal(net.IPv6unspecified) || socks[1].Port != 22 || socks[1].Local() || socks[1].Inode != 222 {
		t.Errorf("second socket %+v, want [::]:22 beyond loopback", socks[1])
	}
}

func TestProfiles(t *testing.T) {
	rep := AuditReport{Findings: []Finding{
		{ID: "a", Status: StatusFail, Severity: SeverityLow},
		{ID: "b", Status: StatusFail, Severity: SeverityMedium},
		{ID: "c", Status: StatusFail, Severity: SeverityHigh},
		{ID: "d", Status: StatusPass, Severity: SeverityCritical},
	}}
	for _, tc := range []struct {
		profile string
		want    int
	}{{"strict", 3}, {"standard", 2}, {"", 2}, {"relaxed", 1}} {
		p, err := ParseProfile(tc.profile)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(rep.Failing(p)); got != tc.want {
			t.Errorf("profile %q: %d failing, want %d", tc.profile, got, tc.want)
		}
	}
	if _, err := ParseProfile("lax"); err == nil {
		t.Error("profile lax accepted")
	}
	b, _ := json.Marshal(rep.Findings[2])
	if !strings.Contains(string(b), `"severity":"high"`) {
		t.Errorf("severity not named in JSON: %s", b)
	}
}

// The real host: the audit runs whole, every check answers, none panics.
func TestAuditRealHost(t *testing.T) {
	rep := Audit(context.Background(), AuditConfig{Listen: "127.0.0.1:8767", DataDir: t.TempDir()})
	if len(rep.Findings) != len(AuditIDs()) {
		t.Fatalf("%d findings, want %d", len(rep.Findings), len(AuditIDs()))
	}
	for _, f := range rep.Findings {
		if f.Status == "" || f.Summary == "" {
			t.Errorf("finding without status or summary: %+v", f)
		}
	}
}
