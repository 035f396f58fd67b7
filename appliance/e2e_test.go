package appliance

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// The drop-in, end to end, with the real binary: install into a temp
// root (unit and user entries there, nothing on this system), the unit's
// directives; serve, as the unprivileged user install made, on the data
// dir install made, reading a generated OpenClaw state dir through the
// access install gave; the UI answers; a report agrees with the API and
// the generator; backup gives a file with the same totals; SIGTERM stops
// it within 5 s with the database closed cleanly.
func TestDropInEndToEnd(t *testing.T) {
	needTools(t, true, "useradd", "setfacl")
	bin := binary(t)
	os.Chmod(filepath.Dir(bin), 0o755)
	root := targetRoot(t, 0o644)
	state := filepath.Join(root, "home/ana/.openclaw")
	os.RemoveAll(filepath.Join(state, "agents"))
	opts := corpus.DefaultOptions()
	opts.SizeBytes, opts.Days, opts.Agents = 4<<20, 30, 3
	exp, err := corpus.Generate(state, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The generator writes 0600 files; this agent writes with umask 022
	// (0644), so install takes the ACL path (0600 writers: capability).
	filepath.WalkDir(state, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			os.Chmod(p, 0o644)
		}
		return nil
	})
	for _, d := range []string{"home/ana", "home/ana/.openclaw"} {
		os.Chmod(filepath.Join(root, d), 0o700) // an agent user's, as on Debian 12
	}

	// Install, with the binary itself.
	out, err := exec.Command(bin, "install", "--root", root).CombinedOutput()
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	unit := filepath.Join(root, unitPath)
	checkHardening(t, unit, "")
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		if e := exposure(t, unit); e >= 3.0 {
			t.Errorf("exposure %.1f, want under 3.0", e)
		}
	}
	uid, gid, _, ok := (&installer{root: root}).lookupUser(serviceUser)
	if !ok || uid == 0 {
		t.Fatalf("no service user in %s/etc/passwd", root)
	}

	// Run what the unit runs, as its user, with its environment (paths
	// under the root; the runtime dir made as systemd would).
	d := unitDirectives(t, unit)
	exe := strings.Fields(d["ExecStart"])
	port := closedPort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	runtime := filepath.Join(root, "run", serviceUser)
	os.MkdirAll(filepath.Dir(runtime), 0o755)
	os.Mkdir(runtime, 0o750)
	os.Chown(runtime, uid, gid)
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + filepath.Join(root, systemDataDir), "FLEETMETER_LISTEN=" + listen,
		"FLEETMETER_POLL_INTERVAL=200ms", "FLEETMETER_LOG_LEVEL=info"}
	for _, kv := range strings.Fields(d["Environment"]) {
		k, v, _ := strings.Cut(kv, "=")
		var paths []string
		for _, p := range strings.Split(v, ",") {
			if strings.HasPrefix(p, "/") {
				p = filepath.Join(root, p)
			}
			paths = append(paths, p)
		}
		env = append(env, k+"="+strings.Join(paths, ","))
	}
	as := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		return cmd
	}
	var log syncBuffer
	serve := as(filepath.Join(root, exe[0]), exe[1:]...)
	serve.Stdout, serve.Stderr = &log, &log
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve.Process.Kill()
	base := "http://" + listen
	// A browser logs in as the tunnel's user would: `fleetmeter login` as
	// the service user prints a one-time URL; opening it sets a session.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	loginDeadline := time.Now().Add(20 * time.Second)
	for {
		out, err := as(bin, "login").Output()
		if err == nil {
			u := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
			resp, err := browser.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			break
		}
		if time.Now().After(loginDeadline) {
			t.Fatalf("fleetmeter login: %v\n%s\nserve's log:\n%s", err, out, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	get := func(path string) (int, []byte) {
		resp, err := browser.Get(base + path)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// The UI answers, and the first ingest ends with every generated call.
	deadline := time.Now().Add(60 * time.Second)
	var api rollup.Report
	for {
		code, body := get("/api/report/daily")
		if code == 200 {
			if api, err = rollup.DecodeReport("daily", body); err != nil {
				t.Fatal(err)
			}
			if api.Totals.Messages == exp.Messages {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s the API has %d of %d calls (code %d); serve's log:\n%s", api.Totals.Messages, exp.Messages, code, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if api.Totals.TotalTokens != exp.TotalTokens() {
		t.Errorf("API tokens %d, the generator's %d", api.Totals.TotalTokens, exp.TotalTokens())
	}
	if code, body := get("/"); code != 200 || !strings.Contains(string(body), "<html") {
		t.Errorf("the UI: %d %.200s", code, body)
	}
	// The CLI as the service user asks the daemon: the same report.
	cliOut, err := as(bin, "report", "daily", "--json").Output()
	if err != nil {
		t.Fatalf("report: %v\n%s", err, cliOut)
	}
	cliRep, err := rollup.DecodeReport("daily", cliOut)
	if err != nil {
		t.Fatal(err)
	}
	sameTotals(t, "report vs API", cliRep, api)

	// A backup, as the service user, has the same totals.
	backupDir := t.TempDir()
	os.Chmod(backupDir, 0o777)
	backup := filepath.Join(backupDir, storage.FileName)
	if out, err := as(bin, "backup", backup).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	sameTotals(t, "backup vs API", dbReport(t, backupDir), api)

	// SIGTERM: out within 5 s, exit 0, the file closed cleanly.
	took := terminate(t, serve, &log, 5*time.Second)
	t.Logf("stopped %s after SIGTERM; %d calls, %.1f MB of transcripts", took.Round(time.Millisecond), exp.Messages, float64(exp.Files.Bytes)/1e6)
	if !strings.Contains(log.String(), "fleetmeter stopped") {
		t.Errorf("no clean stop in the log:\n%s", log.String())
	}
	db, err := storage.Open(filepath.Join(root, systemDataDir, storage.FileName), storage.Options{LockTimeout: 200 * time.Millisecond})
	if errors.Is(err, storage.ErrLocked) {
		t.Fatal("the database is still locked after serve exited")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		t.Errorf("the database after SIGTERM: %v", err)
	}
}

// terminate sends SIGTERM and wants a clean exit (status 0) within limit;
// it returns how long the process took.
func terminate(t *testing.T, cmd *exec.Cmd, log *syncBuffer, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exited with %v after SIGTERM:\n%s", err, log.String())
		}
	case <-time.After(limit):
		t.Fatalf("still running %s after SIGTERM:\n%s", limit, log.String())
	}
	return time.Since(start)
}
