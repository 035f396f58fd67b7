package appliance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// The CLI talks to the daemon over a unix socket in the runtime dir, never
// over TCP: a socket's file permissions decide who may ask (the daemon's
// user, root, and as root the members of a group named fleetmeter), and
// nothing else can be listening at its path. The CLI finds it without
// configuration: its own runtime dir first, then the system daemon's.

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

// findSocket is the socket of the daemon this CLI should ask: the one its
// configuration names, else (for a user other than root) the system
// daemon's. errNoDaemon when there is none.
func findSocket(cfg Config) (string, error) {
	candidates := []string{cfg.SocketPath()}
	if os.Geteuid() != 0 && cfg.SocketPath() != systemSocket {
		candidates = append(candidates, systemSocket)
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if errors.Is(err, fs.ErrPermission) {
			return "", fmt.Errorf("cannot reach the daemon's socket %s: permission denied (its runtime dir admits the daemon's user, root and the %s group)", p, socketGroup)
		}
	}
	return "", fmt.Errorf("%w (no socket at %s)", errNoDaemon, candidates[0])
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
