package appliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The CLI talks to the daemon over a unix socket in the runtime dir, never
// over TCP: a socket's file permissions decide who may ask (the daemon's
// user, root, and as root the members of a group named fleetmeter), and
// nothing else can be listening at its path. The CLI finds it without
// configuration (socketCandidates): the daemon of its data dir, its own
// runtime dir's, then the system daemon's.

// socketGroup may use a root daemon's socket when it exists.
const socketGroup = "fleetmeter"

// systemSocket is where a daemon run as root listens.
const systemSocket = "/run/fleetmeter/fleetmeter.sock"

// listenSocket makes the socket's dir (0700; as root 0750 and owned by the
// fleetmeter group when there is one) and listens there. A socket left by
// a daemon that died is replaced; one that answers is another daemon's.
func listenSocket(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("runtime dir: %w", err)
	}
	if err := checkOwner(dir, "runtime dir"); err != nil {
		return nil, err
	}
	dirMode, sockMode, gid := os.FileMode(0o700), os.FileMode(0o600), -1
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup(socketGroup); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
			if err := os.Chown(dir, 0, gid); err != nil {
				return nil, fmt.Errorf("runtime dir: %w", err)
			}
			dirMode, sockMode = 0o750, 0o660
		}
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		return nil, fmt.Errorf("runtime dir: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another fleetmeter daemon answers on %s (one daemon per runtime dir; set runtime_dir for a second one)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove the stale socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, sockMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, 0, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket %s: %w", path, err)
		}
	}
	return ln, nil
}

// checkOwner refuses a directory this process does not own: the
// database, the socket and what lands beside them would end up another
// account's, or be theirs to replace.
func checkOwner(dir, what string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%s %s belongs to uid %d, not to this user (uid %d): run fleetmeter as its owner, or choose a directory of your own", what, dir, sys.Uid, os.Geteuid())
	}
	return nil
}

// daemonFile is the file in the data dir where a running daemon says
// where its socket is: a CLI given that data dir (`report --data-dir D`)
// finds the daemon of D whatever user runs it and whatever runtime dir or
// --listen it has.
const daemonFile = "daemon.json"

// daemonPointer is daemonFile's content.
type daemonPointer struct {
	Socket string `json:"socket"`
	Listen string `json:"listen"`
	PID    int    `json:"pid"`
}

// writeDaemonFile says where the daemon's socket is, in its data dir.
func writeDaemonFile(cfg Config, listen string) error {
	b, _ := json.Marshal(daemonPointer{Socket: cfg.SocketPath(), Listen: listen, PID: os.Getpid()})
	return os.WriteFile(filepath.Join(cfg.DataDir, daemonFile), append(b, '\n'), 0o644)
}

// readPointer is dataDir's daemonFile; zero when there is none (or it
// cannot be read).
func readPointer(dataDir string) daemonPointer {
	var p daemonPointer
	b, err := os.ReadFile(filepath.Join(dataDir, daemonFile))
	if err != nil || json.Unmarshal(b, &p) != nil || !filepath.IsAbs(p.Socket) {
		return daemonPointer{}
	}
	return p
}

// socketTry is one place findSocket looked, and what it found there.
type socketTry struct {
	path, outcome string
	// denied: this user may not look in the socket's dir (dir true) or
	// may not connect to the socket there.
	denied, dir bool
}

// socketCandidates are the sockets a CLI of cfg may mean, in order: the
// daemon of its data dir (the one it names, then the data dir's own
// socket), its own runtime dir's, and for a user other than root the
// system daemon's (its fixed socket, then the one the system data dir names).
func socketCandidates(cfg Config) []string {
	var out []string
	add := func(p string) {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	pointed := func(dataDir string) string { return readPointer(dataDir).Socket }
	add(pointed(cfg.DataDir))
	add(cfg.SocketPath())
	add(filepath.Join(cfg.DataDir, "fleetmeter.sock"))
	// With a data dir named, the system daemon only when it is the
	// system's (findSocket checks that the daemon serves it).
	if os.Geteuid() != 0 && (cfg.Origin("data_dir") == "" || sameDir(cfg.DataDir, systemDataDir)) {
		add(systemSocket)
		add(pointed(systemDataDir))
	}
	return out
}

// findSocket is the socket of the daemon this CLI should ask: the first
// of socketCandidates where a daemon answers. errNoDaemon when there is
// none, naming every place it looked and what it found there.
func findSocket(cfg Config) (string, error) {
	var tried []socketTry
	for _, p := range socketCandidates(cfg) {
		_, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrPermission):
			// Whether a socket is in there, this user cannot tell.
			tried = append(tried, socketTry{p, fmt.Sprintf("cannot look: permission denied on %s (it admits the daemon's user, root and the %s group)", filepath.Dir(p), socketGroup), true, true})
			continue
		case err != nil:
			tried = append(tried, socketTry{path: p, outcome: "no socket"})
			continue
		}
		c, err := net.DialTimeout("unix", p, 2*time.Second)
		if err != nil {
			t := socketTry{path: p, outcome: "nothing answers (a daemon that stopped left it)"}
			if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EACCES) {
				t.outcome, t.denied = fmt.Sprintf("a socket this user may not use: permission denied (it admits the daemon's user, root and the %s group)", socketGroup), true
			}
			tried = append(tried, t)
			continue
		}
		// With a data dir named (flag, environment or file), only its own
		// daemon may answer: the system's, or a runtime dir's of another
		// data dir, would report another database's figures as D's.
		if cfg.Origin("data_dir") != "" {
			if other, ok := servesDataDir(c, p, cfg.DataDir); !ok {
				c.Close()
				tried = append(tried, socketTry{path: p, outcome: "the daemon there serves another data dir (" + other + "), not " + cfg.DataDir})
				continue
			}
		}
		c.Close()
		return p, nil
	}
	return "", &noDaemonError{tried: tried}
}

// servesDataDir reports whether the daemon on sock (c: a connection to
// it) is dataDir's: the process that listens is the one dataDir's
// daemonFile names (its peer credentials say), else the data dir its
// /api/status reports is dataDir. other is the data dir it serves, when
// known.
func servesDataDir(c net.Conn, sock, dataDir string) (other string, ok bool) {
	if ptr := readPointer(dataDir); ptr.PID > 0 {
		if uc, isUnix := c.(*net.UnixConn); isUnix {
			if raw, err := uc.SyscallConn(); err == nil {
				pid := 0
				raw.Control(func(fd uintptr) { pid = peerPID(fd) })
				if pid == ptr.PID {
					return dataDir, true
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://fleetmeter/api/status", nil)
	resp, err := socketClient(sock).Do(req)
	if err != nil {
		return "unknown: " + errorsText(err), false
	}
	defer resp.Body.Close()
	var st struct {
		DataDir string `json:"data_dir"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil || st.DataDir == "" {
		return "unknown: its status does not say", false
	}
	return st.DataDir, sameDir(st.DataDir, dataDir)
}

// sameDir reports whether a and b name one directory.
func sameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// noDaemonError says that no daemon answers, and where the CLI looked.
type noDaemonError struct{ tried []socketTry }

func (e *noDaemonError) Error() string {
	parts := make([]string, len(e.tried))
	for i, t := range e.tried {
		parts[i] = t.path + ": " + t.outcome
	}
	return fmt.Sprintf("%v (tried %s)", errNoDaemon, strings.Join(parts, "; "))
}

func (e *noDaemonError) Unwrap() error { return errNoDaemon }

// denied reports whether this user was refused somewhere: a socket it may
// not use (socket true: one is there), or a dir it may not look in.
func (e *noDaemonError) denied() (some, socket bool) {
	for _, t := range e.tried {
		some = some || t.denied
		socket = socket || t.denied && !t.dir
	}
	return some, socket
}

// deniedAdvice says what to do when this user was refused a look or a
// socket: what was seen (a socket, or only a dir it may not enter: it
// cannot tell whether a daemon runs), and whether the group that would
// admit it exists on this host.
func (e *noDaemonError) deniedAdvice() string {
	_, socket := e.denied()
	seen := "this user may not look where a system daemon's socket would be, so it cannot tell whether one runs"
	if socket {
		seen = "a daemon's socket is there that this user may not use"
	}
	if _, err := user.LookupGroup(socketGroup); err != nil {
		return fmt.Sprintf("%s; no %s group exists on this host, so a root daemon admits only root: use sudo, or have an admin create it (`sudo groupadd %s; sudo usermod -aG %s $USER`) and restart the daemon", seen, socketGroup, socketGroup, socketGroup)
	}
	return fmt.Sprintf("%s: join the %s group (`sudo usermod -aG %s $USER`, then log in again) or use sudo", seen, socketGroup, socketGroup)
}

// socketClient is an HTTP client whose every connection is the socket.
func socketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}
