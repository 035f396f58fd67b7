package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A transcript the daemon cannot read is a health problem (its calls are
// missing from every report), not a log line alone; it clears once the
// file is gone.
func TestUnreadableTranscriptIsAProblem(t *testing.T) {
	oc := t.TempDir()
	sessions := filepath.Join(oc, "agents", "main", "sessions")
	if err := os.MkdirAll(sessions, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(sessions, "s.jsonl")
	if err := os.Symlink("/proc/self/mem", bad); err != nil { // opens, then EIO: for root too
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.NoDiscover = t.TempDir(), "127.0.0.1:0", true
	cfg.OpenClawDirs = []string{oc}
	cfg.PollInterval = 20 * time.Millisecond
	app := runDaemon(t, cfg)
	wait := func(cond func(string) bool) string {
		t.Helper()
		var got string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got = strings.Join(app.problems(), "; "); cond(got) {
				break
			}
		}
		return got
	}
	if got := wait(func(p string) bool { return strings.Contains(p, "cannot be read") }); !strings.Contains(got, "1 transcript file(s) cannot be read") || !strings.Contains(got, bad) {
		t.Fatalf("problems = %q, want the unreadable file named", got)
	}
	os.Remove(bad)
	if got := wait(func(p string) bool { return !strings.Contains(p, "cannot be read") }); strings.Contains(got, "cannot be read") {
		t.Errorf("problems after the file is gone = %q", got)
	}
}

// A report read straight from transcripts, one of which cannot be read:
// the report of the rest is printed, then one line names the file and the
// exit code is 1 (README: "a file cannot be read"). Before, it exited 0
// after a raw log line.
func TestOneShotReportWithUnreadableTranscript(t *testing.T) {
	bin := binary(t)
	oc := t.TempDir()
	sessions := filepath.Join(oc, "agents", "main", "sessions")
	if err := os.MkdirAll(sessions, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(traps, "agents/main/sessions/s-cron.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sessions, "s-cron.jsonl"), data, 0o644)
	bad := filepath.Join(sessions, "s.jsonl")
	if err := os.Symlink("/proc/self/mem", bad); err != nil { // opens, then EIO: for root too
		t.Fatal(err)
	}
	code, out, stderr := runBin(t, bin, time.Minute, "report", "daily", "--openclaw-dir", oc, "--data-dir", t.TempDir())
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "fleetmeter report: 1 transcript file could not be read") || !strings.Contains(lines[0], bad) {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and one line naming %s", code, stderr, bad)
	}
	if !strings.Contains(out, "Daily usage") || !strings.Contains(out, "Total") {
		t.Errorf("the report of the readable file is not printed:\n%s", out)
	}
	// Every file read: exit 0, nothing on stderr.
	os.Remove(bad)
	if code, _, stderr := runBin(t, bin, time.Minute, "report", "daily", "--openclaw-dir", oc, "--data-dir", t.TempDir()); code != 0 || stderr != "" {
		t.Errorf("all readable: exit %d, %s", code, stderr)
	}
}
