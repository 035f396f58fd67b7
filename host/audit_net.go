package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Socket is a listening TCP socket, from /proc/net/tcp{,6}.
type Socket struct {
	Addr    net.IP `json:"addr"`
	Port    int    `json:"port"`
	Inode   uint64 `json:"-"`
	PID     int    `json:"pid,omitempty"`     // 0: not known (another user's process, read as non-root)
	Process string `json:"process,omitempty"` // /proc/<pid>/comm
}

// Local reports whether the socket answers on loopback only.
func (s Socket) Local() bool { return s.Addr.IsLoopback() }

func (s Socket) String() string {
	who := "a process this user cannot see (run the audit as root)"
	if os.Geteuid() == 0 {
		who = "a process outside this pid namespace"
	}
	if s.PID > 0 {
		who = fmt.Sprintf("%s (pid %d)", s.Process, s.PID)
	}
	return fmt.Sprintf("%s by %s", net.JoinHostPort(s.Addr.String(), strconv.Itoa(s.Port)), who)
}

// ListeningSockets reads the listening TCP sockets of procDir (/proc) and
// the processes that hold them, as far as this user may see.
func ListeningSockets(procDir string) ([]Socket, error) {
	var out []Socket
	found := false
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join(procDir, "net", name))
		if err != nil {
			continue // no IPv6, or not there at all
		}
		found = true
		socks, err := parseProcNet(b, name == "tcp6")
		if err != nil {
			return nil, fmt.Errorf("%s/net/%s: %w", procDir, name, err)
		}
		out = append(out, socks...)
	}
	if !found {
		return nil, fmt.Errorf("%s/net/tcp: not readable", procDir)
	}
	owners := socketOwners(procDir)
	for i := range out {
		if o, ok := owners[out[i].Inode]; ok {
			out[i].PID, out[i].Process = o.pid, o.name
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Addr.String() < out[j].Addr.String()
	})
	return out, nil
}

// parseProcNet reads the LISTEN rows (state 0A) of /proc/net/tcp or tcp6:
// "sl local_address rem_address st … uid timeout inode", addresses as hex
// in the kernel's byte order (32-bit words, little-endian on x86 and arm).
func parseProcNet(b []byte, v6 bool) ([]Socket, error) {
	var out []Socket
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue // header
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		hexAddr, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			return nil, fmt.Errorf("local address %q", f[1])
		}
		raw, err := hex.DecodeString(hexAddr)
		if err != nil || (v6 && len(raw) != 16) || (!v6 && len(raw) != 4) {
			return nil, fmt.Errorf("local address %q", f[1])
		}
		// Each 32-bit word is in host order: swap to network order.
		ip := make(net.IP, len(raw))
		for w := 0; w < len(raw); w += 4 {
			binary.BigEndian.PutUint32(ip[w:], binary.LittleEndian.Uint32(raw[w:]))
		}
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("local port %q", hexPort)
		}
		inode, _ := strconv.ParseUint(f[9], 10, 64)
		out = append(out, Socket{Addr: ip, Port: int(port), Inode: inode})
	}
	return out, sc.Err()
}

type socketOwner struct {
	pid  int
	name string
}

// socketOwners maps socket inodes to the processes holding them, from
// /proc/<pid>/fd links ("socket:[12345]"); other users' processes are
// not readable without root and are left out.
func socketOwners(procDir string) map[uint64]socketOwner {
	owners := map[uint64]socketOwner{}
	d, err := os.Open(procDir)
	if err != nil {
		return owners
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(procDir, n, "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		var comm string
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err != nil {
				continue
			}
			if comm == "" {
				b, _ := os.ReadFile(filepath.Join(procDir, n, "comm"))
				comm = strings.TrimSpace(string(b))
				if comm == "" {
					comm = "?"
				}
			}
			owners[inode] = socketOwner{pid, comm}
		}
	}
	return owners
}

// sshPort is what checkListeningPorts accepts beyond loopback: a host
// must be reachable somehow, and SSH is how the UI's tunnel goes.
func isSSH(s Socket) bool { return s.Process == "sshd" || (s.PID == 0 && s.Port == 22) }

// checkListeningPorts: every TCP socket listening beyond loopback other
// than SSH, with its process.
func checkListeningPorts(_ context.Context, a *auditor) Finding {
	socks, err := a.listening()
	if err != nil {
		return unknown("Listening sockets cannot be read: " + err.Error())
	}
	var v verdict
	for _, s := range socks {
		switch {
		case s.Local():
		case isSSH(s):
			v.fine("%s (SSH)", s)
		default:
			v.problem(SeverityMedium, "Bind each service to 127.0.0.1 (reach it through an SSH tunnel), or close the port in the instance's security group and host firewall; stop what is not needed.",
				"%s listens beyond loopback", s)
		}
	}
	local := 0
	for _, s := range socks {
		if s.Local() {
			local++
		}
	}
	v.fine("%d sockets listen on loopback only", local)
	return v.finding("Only SSH listens beyond loopback.", "Services other than SSH listen beyond loopback.", SeverityMedium)
}

// gatewayConfig is the part of openclaw.json the audit reads.
type gatewayConfig struct {
	Gateway struct {
		Port           int    `json:"port"`
		Bind           string `json:"bind"`
		CustomBindHost string `json:"customBindHost"`
		Host           string `json:"host"`
		Auth           struct {
			Mode     string `json:"mode"`
			Token    string `json:"token"`
			Password string `json:"password"`
		} `json:"auth"`
		Tailscale struct {
			Mode string `json:"mode"`
		} `json:"tailscale"`
		ControlUI struct {
			AllowInsecureAuth bool `json:"allowInsecureAuth"`
		} `json:"controlUi"`
	} `json:"gateway"`
	Agents struct {
		Defaults struct {
			Workspace string `json:"workspace"`
		} `json:"defaults"`
		List []struct {
			ID        string `json:"id"`
			Workspace string `json:"workspace"`
		} `json:"list"`
	} `json:"agents"`
}

// defaultGatewayPort is OpenClaw's.
const defaultGatewayPort = 18789

// checkGateway: each OpenClaw gateway's bind mode and auth, from its
// config, checked against the sockets actually listening on its port.
func checkGateway(_ context.Context, a *auditor) Finding {
	socks, sockErr := a.listening()
	var v verdict
	configs := 0
	for _, dir := range a.cfg.OpenClawDirs {
		p := filepath.Join(dir, "openclaw.json")
		var gc gatewayConfig
		if err := a.readJSON(p, &gc); err != nil {
			if !os.IsNotExist(err) {
				v.fine("%s: not read (%s)", p, errorsCause(err))
			}
			continue
		}
		configs++
		g := gc.Gateway
		port := g.Port
		if port == 0 {
			port = defaultGatewayPort
		}
		mode := g.Auth.Mode
		if mode == "" {
			switch {
			case g.Auth.Token != "":
				mode = "token"
			case g.Auth.Password != "":
				mode = "password"
			default:
				mode = "none"
			}
		}
		secret := g.Auth.Token
		if mode == "password" {
			secret = g.Auth.Password
		}
		bind := g.Bind
		if bind == "" {
			bind = "loopback"
		}
		if bind == "custom" {
			h := g.CustomBindHost
			if h == "" {
				h = g.Host
			}
			if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
				bind = "loopback"
			}
		}
		// What actually listens on the port beats what the file says.
		var exposed []string
		for _, s := range socks {
			if s.Port == port && !s.Local() {
				exposed = append(exposed, s.String())
			}
		}
		beyond := bind != "loopback" || len(exposed) > 0
		where := fmt.Sprintf("%s: gateway.bind %q, port %d, auth %s", p, bind, port, mode)
		fixLoop := fmt.Sprintf("Set gateway.bind to \"loopback\" in %s and reach the gateway through an SSH tunnel or Tailscale serve; restart the gateway.", p)
		fixAuth := fmt.Sprintf("Set gateway.auth.mode to \"token\" with a random token of 32+ characters (openssl rand -hex 32) in %s.", p)
		// A token mode with no token in the file takes it from the
		// environment (OPENCLAW_GATEWAY_TOKEN): auth is on.
		noAuth := mode == "none"
		switch {
		case beyond && noAuth:
			v.problem(SeverityCritical, fixLoop+" "+fixAuth, "%s: reachable from the network without auth: anyone can drive the agents", where)
		case beyond && mode != "trusted-proxy" && len(secret) > 0 && len(secret) < 24:
			v.problem(SeverityHigh, fixAuth+" "+fixLoop, "%s: reachable from the network behind a %d-character secret", where, len(secret))
		case beyond && bind == "tailnet" && len(exposed) == 0:
			v.problem(SeverityLow, fixLoop, "%s: reachable from the tailnet", where)
		case beyond:
			v.problem(SeverityMedium, fixLoop, "%s: reachable from the network", where)
		case noAuth:
			v.problem(SeverityMedium, fixAuth, "%s: no auth: every local user and process can drive the agents", where)
		default:
			v.fine("%s", where)
		}
		for _, e := range exposed {
			v.problem(SeverityMedium, fixLoop, "port %d: %s listens beyond loopback", port, e)
		}
		if g.Tailscale.Mode == "funnel" {
			v.problem(SeverityHigh, fmt.Sprintf("Set gateway.tailscale.mode to \"serve\" or \"off\" in %s.", p), "%s: gateway.tailscale.mode \"funnel\" publishes the gateway on the internet", p)
		}
		if g.ControlUI.AllowInsecureAuth {
			v.problem(SeverityMedium, fmt.Sprintf("Remove gateway.controlUi.allowInsecureAuth from %s.", p), "%s: gateway.controlUi.allowInsecureAuth is on (auth over plain HTTP)", p)
		}
	}
	if configs == 0 {
		if sockErr == nil && slices.ContainsFunc(socks, func(s Socket) bool { return s.Port == defaultGatewayPort && !s.Local() }) {
			v.problem(SeverityHigh, "Bind the gateway to loopback (gateway.bind \"loopback\").", "port %d (OpenClaw's gateway) listens beyond loopback and no openclaw.json was found to tell its auth", defaultGatewayPort)
			return v.finding("", "", SeverityHigh)
		}
		return notApplicable("No OpenClaw gateway config found.")
	}
	if sockErr != nil {
		v.fine("listening sockets not read: %v", sockErr)
	}
	return v.finding("Every gateway listens on loopback, with auth.", "An agent gateway is reachable beyond loopback or has no auth.", SeverityHigh)
}
