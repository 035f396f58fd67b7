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
