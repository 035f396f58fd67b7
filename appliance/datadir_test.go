package appliance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// statusOf is the part of `health --json` these tests read.
type statusOf struct {
	DataDir  string        `json:"data_dir"`
	Database storage.Stats `json:"database"`
}

// waitIngested polls `health --json` of dataDir until its daemon has
// stored calls, and returns its status.
func waitIngested(t *testing.T, bin, dataDir string) statusOf {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, out, stderr := runBin(t, bin, 30*time.Second, "health", "--json", "--data-dir", dataDir)
		var st statusOf
		if json.Unmarshal([]byte(out), &st) == nil && st.Database.LedgerRecords > 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon of %s stored nothing: %s%s", dataDir, out, stderr)
		}
	}
}

// With a data dir named (flag or FLEETMETER_DATA_DIR), only the daemon of
// that data dir answers: a daemon of another data dir listening in the
// CLI's runtime dir (as the system daemon does at /run/fleetmeter for
// root) is passed over, and the CLI behaves as if no daemon ran. Before,
// `doctor --data-dir C` on a database cut short reported the other
// daemon's database as ok and exited 0.
func TestExplicitDataDirAsksOnlyItsDaemon(t *testing.T) {
	bin := binary(t)
	shared := shortTempDir(t) // daemon A's runtime dir, and the CLI's
	a, b := t.TempDir(), t.TempDir()
	ocB := filepath.Join(t.TempDir(), "agents", "main", "sessions")
	os.MkdirAll(ocB, 0o755)
	if data, err := os.ReadFile(filepath.Join(traps, "agents/main/sessions/s-cron.jsonl")); err != nil || os.WriteFile(filepath.Join(ocB, "s-cron.jsonl"), data, 0o644) != nil {
		t.Fatalf("copy a transcript: %v", err)
	}
	startDaemon(t, bin, a, traps, []string{"FLEETMETER_RUNTIME_DIR=" + shared})
	startDaemon(t, bin, b, filepath.Dir(filepath.Dir(filepath.Dir(ocB))), nil)
	stA, stB := waitIngested(t, bin, a), waitIngested(t, bin, b)
	if stA.Database.LedgerRecords == stB.Database.LedgerRecords {
		t.Fatalf("the two daemons hold the same number of calls (%d): the test cannot tell them apart", stA.Database.LedgerRecords)
	}
	inShared := []string{"FLEETMETER_RUNTIME_DIR=" + shared}

	// Each data dir's own daemon answers, whatever daemon the runtime dir has.
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{inShared, []string{"--data-dir", b}, b},
		{append([]string{"FLEETMETER_DATA_DIR=" + b}, inShared...), nil, b},
		{append([]string{"FLEETMETER_DATA_DIR=" + a}, inShared...), nil, a},
	} {
		code, out, stderr := runBinEnv(t, bin, tc.env, 30*time.Second, append([]string{"health", "--json"}, tc.args...)...)
		var st statusOf
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.DataDir != tc.want {
			t.Errorf("health %v %v: exit %d, data dir %q, want %q\n%s", tc.env, tc.args, code, st.DataDir, tc.want, stderr)
		}
	}

	// A data dir with no daemon of its own and a database cut short: A,
	// in the runtime dir, is not asked; the doctor reads the file itself.
	c := t.TempDir()
	if code, _, stderr := runBin(t, bin, time.Minute, "ingest", "--once", "--openclaw-dir", traps, "--data-dir", c); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	if err := os.Truncate(filepath.Join(c, storage.FileName), 3*4096); err != nil {
		t.Fatal(err)
	}
	// A pointer left by a daemon that died, naming the socket A now
	// listens on: A's peer is not that process, and its status names a.
	stale := t.TempDir()
	os.WriteFile(filepath.Join(stale, daemonFile), []byte(fmt.Sprintf(`{"socket":%q,"pid":1}`, filepath.Join(shared, "fleetmeter.sock"))), 0o644)
	aCalls := fmt.Sprintf("%d model calls", stA.Database.LedgerRecords)
	code, out, stderr := runBinEnv(t, bin, append([]string{"FLEETMETER_DATA_DIR=" + c}, inShared...), 30*time.Second, "doctor", "--no-discover")
	if code != exitDamaged || strings.Contains(out, aCalls) || !strings.Contains(out, "FAIL  database") {
		t.Errorf("FLEETMETER_DATA_DIR=%s doctor: exit %d, want %d\n%s%s", c, code, exitDamaged, out, stderr)
	}
	code, out, stderr = runBinEnv(t, bin, inShared, 30*time.Second, "doctor", "--data-dir", c, "--no-discover")
	if code != exitDamaged || strings.Contains(out, aCalls) || !strings.Contains(out, "serves another data dir") {
		t.Errorf("doctor --data-dir %s: exit %d, want %d, the daemon passed over\n%s%s", c, code, exitDamaged, out, stderr)
	}
	for _, dir := range []string{c, stale} {
		code, out, stderr := runBinEnv(t, bin, inShared, 30*time.Second, "health", "--data-dir", dir)
		if code != 1 || strings.Contains(out, "ok:") || !strings.Contains(stderr, "serves another data dir ("+a+")") {
			t.Errorf("health --data-dir %s: exit %d, want 1 naming the other daemon\n%s%s", dir, code, out, stderr)
		}
	}
}

// The doctor, with no data dir named, of a daemon on another data dir
// (found in the runtime dir): it describes the daemon's database and what
// the daemon reads, by kind, with elapsed times, not raw timestamps.
// Before, it described the CLI's default database (a path that did not
// exist: "0.0 MB, 0 model calls"), said "the daemon follows 0 files under
// none" for a daemon reading Claude Code, printed the last step as
// 2026-11-30T10:01:28.841820492Z and "1 checks failed".
func TestDoctorDescribesTheDaemonItAsks(t *testing.T) {
	bin := binary(t)
	shared := shortTempDir(t)
	a := t.TempDir()
	claude, err := filepath.Abs("../ingest/testdata/claude")
	if err != nil {
		t.Fatal(err)
	}
	startDaemon(t, bin, a, traps, []string{"FLEETMETER_RUNTIME_DIR=" + shared, "FLEETMETER_CLAUDE_DIRS=" + claude})
	st := waitIngested(t, bin, a)
	home := t.TempDir()
	env := []string{"FLEETMETER_RUNTIME_DIR=" + shared, "HOME=" + home, "XDG_STATE_HOME=" + home, "FLEETMETER_DATA_DIR="}

	_, out, stderr := runBinEnv(t, bin, env, 30*time.Second, "doctor", "--json", "--openclaw-dir", traps)
	checks := doctorChecks(t, out)
	db := checks["database"].Detail
	if want := filepath.Join(a, storage.FileName) + ": "; !strings.HasPrefix(db, want) || !strings.Contains(db, fmt.Sprintf(" %d model calls", st.Database.LedgerRecords)) {
		t.Errorf("database: %q, want the daemon's %s with its %d calls\n%s", db, want, st.Database.LedgerRecords, stderr)
	}
	reads := checks["daemon reads"].Detail
	if !strings.Contains(reads, "Claude Code "+claude) || !strings.Contains(reads, "OpenClaw ") || strings.Contains(reads, "daemon follows") || !strings.Contains(reads, "transcript files: ") {
		t.Errorf("daemon reads: %q, want its sources by kind", reads)
	}
	daemon := checks["daemon"].Detail
	if !strings.Contains(daemon, " ago") || regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d`).MatchString(daemon) || !strings.Contains(daemon, "data dir "+a) {
		t.Errorf("daemon: %q, want the last step as an elapsed time and the daemon's data dir", daemon)
	}

	// One failing check (no sources, none discovered): singular.
	code, _, stderr := runBinEnv(t, bin, env, 30*time.Second, "doctor", "--no-discover")
	if code != 1 || !strings.Contains(stderr, "fleetmeter doctor: 1 check failed") {
		t.Errorf("doctor --no-discover: exit %d, %s", code, stderr)
	}
}

// A daemon whose sources hold no transcript file at all (the dirs are
// there, empty) is not healthy: health and doctor say where it looked and
// which flags point it at the agents' data; once a transcript appears it
// is healthy again. Before, health said "ok: 0 files, 0 calls".
func TestNoTranscriptsIsAProblem(t *testing.T) {
	bin := binary(t)
	oc := t.TempDir()
	sessions := filepath.Join(oc, "agents", "main", "sessions")
	os.MkdirAll(sessions, 0o755)
	data := t.TempDir()
	startDaemon(t, bin, data, oc, nil)
	health := func(want string) (int, string) {
		t.Helper()
		var code int
		var out, stderr string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if code, out, stderr = runBin(t, bin, 30*time.Second, "health", "--data-dir", data); strings.Contains(out+stderr, want) {
				break
			}
		}
		return code, out + stderr
	}
	if code, out := health("no transcript files found"); code != 1 || !strings.Contains(out, "no transcript files found under "+oc) || !strings.Contains(out, "--openclaw-dir, --claude-dir or --codex-dir") {
		t.Errorf("health: exit %d, %s", code, out)
	}
	_, out, _ := runBin(t, bin, 30*time.Second, "doctor", "--json", "--data-dir", data, "--openclaw-dir", oc)
	checks := doctorChecks(t, out)
	if c := checks["daemon reads"]; c.Status != doctorWarn || !strings.Contains(c.Detail, "no transcript files found under "+oc) || !strings.Contains(c.Fix, "--openclaw-dir") {
		t.Errorf("doctor's daemon reads: %+v", c)
	}
	if c := checks["readable"]; c.Status != doctorWarn || !strings.Contains(c.Detail, "no transcript files found") {
		t.Errorf("doctor's own look: %+v", c)
	}

	b, err := os.ReadFile(filepath.Join(traps, "agents/main/sessions/s-cron.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sessions, "s-cron.jsonl"), b, 0o644)
	if code, out := health("ok: "); code != 0 {
		t.Errorf("with a transcript: exit %d, %s", code, out)
	}
}

// Naming one kind's dir turns discovery off for every kind (by design):
// the start-up log and the doctor say what discovery would have read and
// how to add it. Before, nothing said so.
func TestNamedSourceDirSaysWhatIsNotDiscovered(t *testing.T) {
	bin := binary(t)
	claude := t.TempDir()
	os.MkdirAll(filepath.Join(claude, "projects"), 0o755)
	env := []string{"CLAUDE_CONFIG_DIR=" + claude}
	said := func(s string) bool { // this machine's homes may add their own dirs
		return strings.Contains(s, "Claude Code at "+claude) && strings.Contains(s, " not read: --openclaw-dir given") && strings.Contains(s, "add --claude-dir "+claude)
	}
	d := startDaemon(t, bin, t.TempDir(), traps, env)
	for deadline := time.Now().Add(10 * time.Second); !said(d.log.String()) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if log := d.log.String(); !said(log) {
		t.Errorf("serve's log does not say what is not discovered:\n%s", log)
	}
	_, out, _ := runBinEnv(t, bin, env, 30*time.Second, "doctor", "--json", "--data-dir", t.TempDir(), "--openclaw-dir", traps)
	if c := doctorChecks(t, out)["not discovered"]; c.Status != doctorWarn || !said(c.Detail+" "+c.Fix) {
		t.Errorf("doctor: %+v", c)
	}
	// --no-discover asks for exactly the named dirs: nothing to say.
	_, out, _ = runBinEnv(t, bin, env, 30*time.Second, "doctor", "--json", "--data-dir", t.TempDir(), "--openclaw-dir", traps, "--no-discover")
	if c, ok := doctorChecks(t, out)["not discovered"]; ok {
		t.Errorf("doctor --no-discover: %+v", c)
	}
	_, help, _ := runBin(t, bin, 10*time.Second, "serve", "--help")
	if !strings.Contains(help, "naming any source dir turns discovery off for every kind") {
		t.Errorf("serve --help does not say it:\n%s", help)
	}
}
