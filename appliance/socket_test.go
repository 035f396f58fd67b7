package appliance

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The socket's directory is the daemon user's alone; a second daemon on
// the same socket is refused, the socket of one that died is taken over,
// and a runtime dir of another user is refused.
func TestListenSocket(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "rt")
	path := filepath.Join(dir, "fleetmeter.sock")
	ln, err := listenSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, st.Mode().Perm(), err, want)
		}
	}
	if _, err := listenSocket(path); err == nil || !strings.Contains(err.Error(), "another fleetmeter daemon answers") {
		t.Errorf("a second daemon: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // as a daemon that was killed leaves it
	ln.Close()
	ln, err = listenSocket(path)
	if err != nil {
		t.Fatalf("after a daemon died: %v", err)
	}
	ln.Close()
	if os.Geteuid() == 0 {
		theirs := filepath.Join(shortTempDir(t), "theirs")
		os.Mkdir(theirs, 0o700)
		os.Chown(theirs, 65534, 65534)
		if _, err := listenSocket(filepath.Join(theirs, "fleetmeter.sock")); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("another user's runtime dir: %v", err)
		}
	}
}

// Who may not enter the socket's directory cannot ask the daemon: another
// account on the host gets "permission denied", the daemon's user gets
// its answer.
func TestSocketRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a command as another user needs root")
	}
	bin := binary(t)
	pub := shortTempDir(t) // /tmp/fm…: one level below /tmp, so any user can reach it
	os.Chmod(pub, 0o755)
	exe := filepath.Join(pub, "fleetmeter")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	os.Chmod(filepath.Dir(cfg.RuntimeDir), 0o755)
	os.Chmod(cfg.RuntimeDir, 0o755) // the parent may be open: the socket's own dir decides
	cfg.RuntimeDir = filepath.Join(cfg.RuntimeDir, "rt")
	cfg.OpenClawDirs = []string{traps} // health asks for transcripts to count
	startApp(t, cfg)
	health := func(uid uint32) (string, error) {
		cmd := exec.Command(exe, "health", "--data-dir", cfg.DataDir)
		cmd.Env = []string{"FLEETMETER_RUNTIME_DIR=" + cfg.RuntimeDir, "HOME=" + pub}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := health(65534); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("another user: %v %q", err, out)
	}
	if out, err := health(0); err != nil {
		t.Errorf("the daemon's user: %v %q", err, out)
	}
}
