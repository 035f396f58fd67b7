package appliance

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
)

// The daemon, found from another user and another address, end to end
// with the real binary: a daemon run as a user the test creates, on a
// non-default --listen, in its own data dir and runtime dir; the CLI run
// as root with only --data-dir finds it (the data dir says where its
// socket is) and prints the very report the daemon's own user gets, cut
// in the daemon's zone. A third account that may neither read the data
// dir nor use the socket is told every place that was tried.
func TestCLIFindsTheDaemonOfAnotherUser(t *testing.T) {
	needTools(t, true, "useradd")
	bin := binary(t)
	pub := shortTempDir(t) // /tmp/fm…: every user can reach it
	os.Chmod(pub, 0o755)
	exe := filepath.Join(pub, "fleetmeter")
	if b, err := os.ReadFile(bin); err != nil || os.WriteFile(exe, b, 0o755) != nil {
		t.Fatalf("copy the binary: %v", err)
	}

	// The daemon's user, created in a root of the test's own (as install
	// does): nothing changes in this machine's /etc/passwd.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644)
	if out, err := exec.Command("useradd", "--prefix", root, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "fmdaemon").CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	uid, gid, _, ok := (&installer{root: root}).lookupUser("fmdaemon")
	if !ok || uid == 0 {
		t.Fatalf("no user fmdaemon in %s/etc/passwd", root)
	}

	// Its transcripts, data dir and runtime dir.
	state := filepath.Join(pub, "state")
	if out, err := exec.Command("cp", "-r", "../ingest/testdata/openclaw/traps", state).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	exec.Command("chmod", "-R", "a+rX", state).Run()
	data, xdg := filepath.Join(pub, "data"), filepath.Join(pub, "xdg")
	for _, d := range []string{data, xdg} {
		os.Mkdir(d, 0o700)
		os.Chown(d, uid, gid)
	}
	as := func(uid, gid int, env []string, args ...string) *exec.Cmd {
		cmd := exec.Command(exe, args...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + pub}, env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		return cmd
	}
	daemonEnv := []string{"XDG_RUNTIME_DIR=" + xdg}
	listen := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	var log syncBuffer
	serve := as(uid, gid, daemonEnv, "serve", "--data-dir", data, "--listen", listen, "--openclaw-dir", state,
		"--poll-interval", "200ms", "--tz", "Europe/Berlin")
	serve.Stdout, serve.Stderr = &log, &log
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve.Process.Kill()

	// The daemon's own user, once every call is in.
	var own string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, err := as(uid, gid, daemonEnv, "report", "--json", "daily", "--data-dir", data).Output()
		if rep, derr := rollup.DecodeReport("daily", out); err == nil && derr == nil && rep.Totals.Messages == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's user never got its report: %v %s\nserve's log:\n%s", err, out, log.String())
		}
	}
	out, err := as(uid, gid, daemonEnv, "report", "daily", "--data-dir", data).Output()
	if err != nil {
		t.Fatalf("report as the daemon's user: %v", err)
	}
	own = string(out)
	if !strings.Contains(own, "Daily usage · all days · Europe/Berlin") {
		t.Errorf("the report is not cut in the daemon's zone:\n%s", own)
	}

	// Root, another user with another runtime dir, given only the data dir.
	cmd := exec.Command(exe, "report", "daily", "--data-dir", data)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	out, err = cmd.CombinedOutput()
	if err != nil || string(out) != own {
		t.Errorf("root's report: %v\n%s\nwant the daemon user's:\n%s", err, out, own)
	}

	// An account with no access: told what was tried.
	out, err = as(65534, 65534, nil, "report", "daily", "--data-dir", data).CombinedOutput()
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	msg := string(out)
	if code != 1 || !strings.Contains(msg, "no fleetmeter daemon answers (tried ") || !strings.Contains(msg, filepath.Join(data, "fleetmeter.sock")+": cannot look: permission denied") ||
		!strings.Contains(msg, "is not readable by this user") {
		t.Errorf("nobody: exit %d, %s", code, msg)
	}

	// The pointer goes with the daemon.
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()
	if _, err := os.Stat(filepath.Join(data, daemonFile)); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", daemonFile, err)
	}
}

// With nothing to ask, the message names every place tried and what to do.
func TestNoDaemonSaysWhereItLooked(t *testing.T) {
	dir := t.TempDir()
	rt := shortTempDir(t)
	os.WriteFile(filepath.Join(dir, daemonFile), mustJSON(daemonPointer{Socket: filepath.Join(rt, "gone.sock")}), 0o600)
	code, _, stderr := cli(t, map[string]string{"FLEETMETER_RUNTIME_DIR": rt}, "report", "daily", "--data-dir", dir)
	for _, want := range []string{
		"no database at " + filepath.Join(dir, "fleetmeter.db"),
		filepath.Join(rt, "gone.sock") + ": no socket",
		filepath.Join(rt, "fleetmeter.sock") + ": no socket",
		filepath.Join(dir, "fleetmeter.sock") + ": no socket",
		"start the daemon",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("exit %d, the message lacks %q:\n%s", code, want, stderr)
		}
	}
	if strings.Contains(stderr, "ingest --once") {
		t.Errorf("advises building a second database: %s", stderr)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// A user refused a look into a root daemon's runtime dir is told what was
// seen (a dir it may not enter: it cannot tell whether a daemon runs), and
// whether the group that would admit it exists. Before: "a daemon runs
// that this user may not ask: join the fleetmeter group", with no daemon
// and no such group.
func TestNoDaemonBehindADirThisUserMayNotEnter(t *testing.T) {
	needTools(t, true)
	bin := binary(t)
	pub := shortTempDir(t)
	os.Chmod(pub, 0o755)
	exe := filepath.Join(pub, "fleetmeter")
	if b, err := os.ReadFile(bin); err != nil || os.WriteFile(exe, b, 0o755) != nil {
		t.Fatalf("copy the binary: %v", err)
	}
	closed := filepath.Join(pub, "run") // root's, 0700, empty: as /run/fleetmeter
	os.Mkdir(closed, 0o700)
	data := filepath.Join(pub, "data")
	os.Mkdir(data, 0o755)
	cmd := exec.Command(exe, "report", "daily", "--data-dir", data)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + pub, "FLEETMETER_RUNTIME_DIR=" + closed}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.CombinedOutput()
	msg := string(out)
	if strings.Contains(msg, "a daemon runs") || !strings.Contains(msg, filepath.Join(closed, "fleetmeter.sock")+": cannot look: permission denied on "+closed) ||
		!strings.Contains(msg, "cannot tell whether one runs") {
		t.Errorf("the message claims what it cannot know:\n%s", msg)
	}
	if _, err := user.LookupGroup(socketGroup); err != nil && !strings.Contains(msg, "no fleetmeter group exists on this host") {
		t.Errorf("the message sends the user to a group that does not exist:\n%s", msg)
	}
}
