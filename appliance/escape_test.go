package appliance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostile is a name that tries to end its line and print a row of its
// own, and one that reverses what follows it on the line (U+202E).
const (
	hostileNewline = "app\n2026-03-10  fake-agent  999  $0.00"
	hostileBidi    = "evil\u202egnp.exe"
)

// rawControl reports the first raw control or bidi character in out
// other than the newlines that end lines.
func rawControl(out string) (rune, bool) {
	for _, r := range out {
		if r == '\u202e' || r == '\u202d' || r == '\u2066' || r == 0x1b || r < 0x20 && r != '\n' {
			return r, true
		}
	}
	return 0, false
}

// One rule for every text output: a name is printed escaped (Clean) in
// report tables, audit evidence and the install plan, so it can neither
// split a row nor reorder a line. Before, a Claude Code project named with
// "\n" split its row in the session and agent tables, and U+202E came out
// raw in audit evidence and the install plan.
func TestNamesCannotSpoofTextOutput(t *testing.T) {
	claude := t.TempDir()
	for _, cwd := range []string{"/home/u/" + hostileNewline, "/home/u/" + hostileBidi} {
		dir := filepath.Join(claude, "projects", strings.NewReplacer("/", "-", "\n", "-").Replace(cwd))
		os.MkdirAll(dir, 0o755)
		line := `{"parentUuid":"p","isSidechain":false,"userType":"external","cwd":` + jsonString(cwd) + `,"sessionId":"s1","version":"2.0.14","message":{"id":"msg_` + filepath.Base(dir) + `","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"usage":{"input_tokens":10,"output_tokens":5}},"requestId":"r","type":"assistant","uuid":"u","timestamp":"2026-03-10T09:00:01.000Z"}` + "\n"
		os.WriteFile(filepath.Join(dir, "s1.jsonl"), []byte(line), 0o644)
	}
	for _, kind := range []string{"session", "agent", "daily"} {
		code, out, stderr := cli(t, map[string]string{"COLUMNS": "200"}, "report", kind, "--claude-dir", claude)
		if code != 0 {
			t.Fatalf("report %s: exit %d %s", kind, code, stderr)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "fake-agent") && !strings.Contains(line, `app\n2026`) {
				t.Errorf("report %s: a name split its row:\n%s", kind, out)
			}
		}
		if r, bad := rawControl(out); bad {
			t.Errorf("report %s: raw %U in:\n%s", kind, r, out)
		}
	}

	// Audit evidence names paths on the host.
	parent := filepath.Join(t.TempDir(), hostileBidi)
	os.MkdirAll(parent, 0o755)
	oc := filepath.Join(parent, ".openclaw")
	os.MkdirAll(filepath.Join(oc, "agents", "main", "sessions"), 0o755)
	os.WriteFile(filepath.Join(oc, "openclaw.json"), []byte(`{}`), 0o644)
	_, out, _ := cli(t, map[string]string{"FLEETMETER_OPENCLAW_DIRS": oc, "FLEETMETER_DATA_DIR": t.TempDir()}, "audit")
	if !strings.Contains(out, `evil\u202egnp.exe`) {
		t.Errorf("audit evidence does not name the path escaped:\n%s", out)
	}
	if r, bad := rawControl(out); bad {
		t.Errorf("audit: raw %U in:\n%s", r, out)
	}

	// The install plan names the agent dirs found under every home.
	root := targetRoot(t, 0o644)
	home := "/home/" + hostileBidi
	os.MkdirAll(filepath.Join(root, home, ".openclaw/agents/main/sessions"), 0o755)
	os.WriteFile(filepath.Join(root, home, ".openclaw/agents/main/sessions/s.jsonl"), []byte("{}\n"), 0o644)
	f, _ := os.OpenFile(filepath.Join(root, "etc/passwd"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("eve:x:1001:1001:Eve:" + home + ":/bin/bash\n")
	f.Close()
	for _, cmd := range []string{"install", "uninstall"} {
		code, out, stderr := cli(t, nil, cmd, "--dry-run", "--root", root)
		if code != 0 {
			t.Fatalf("%s --dry-run: exit %d %s", cmd, code, stderr)
		}
		if r, bad := rawControl(out); bad {
			t.Errorf("%s plan: raw %U in:\n%s", cmd, r, out)
		}
		if cmd == "install" && !strings.Contains(out, `evil\u202egnp.exe`) {
			t.Errorf("install plan does not name the dir escaped:\n%s", out)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
