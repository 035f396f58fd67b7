package appliance

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/host"
)

// exposedAgent is an OpenClaw state dir that lets every user in, with a
// world-readable config: agent_config_private fails high.
func exposedAgent(t *testing.T) string {
	t.Helper()
	parent := t.TempDir()
	os.Chmod(parent, 0o755)
	os.Chmod(filepath.Dir(parent), 0o755)
	oc := filepath.Join(parent, ".openclaw")
	os.MkdirAll(filepath.Join(oc, "agents", "main", "sessions"), 0o755)
	os.WriteFile(filepath.Join(oc, "openclaw.json"), []byte(`{"gateway":{"bind":"loopback","auth":{"mode":"token","token":"0123456789abcdef0123456789abcdef"}}}`), 0o644)
	os.Chmod(oc, 0o755)
	return oc
}

func TestAuditCommand(t *testing.T) {
	oc := exposedAgent(t)
	env := map[string]string{"FLEETMETER_OPENCLAW_DIRS": oc, "FLEETMETER_DATA_DIR": t.TempDir()}
	code, out, stderr := cli(t, env, "audit", "--json", "--profile", "relaxed")
	var doc struct {
		Profile string `json:"profile"`
		Failing int    `json:"failing"`
		Passed  bool   `json:"passed"`
		Report  struct {
			Findings []host.Finding `json:"findings"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON (%v):\n%s", err, out)
	}
	if len(doc.Report.Findings) != len(host.AuditIDs()) || doc.Profile != "relaxed" {
		t.Fatalf("findings %d, profile %q", len(doc.Report.Findings), doc.Profile)
	}
	var cfgFile host.Finding
	for _, f := range doc.Report.Findings {
		if f.ID == "agent_config_private" {
			cfgFile = f
		}
	}
	if cfgFile.Status != host.StatusFail || cfgFile.Severity != host.SeverityHigh || !strings.Contains(strings.Join(cfgFile.Evidence, " "), "openclaw.json: mode 0644") {
		t.Errorf("the exposed config is not reported: %+v", cfgFile)
	}
	if code != 1 || doc.Passed || doc.Failing < 1 || !strings.Contains(stderr, "checks fail at the relaxed profile") {
		t.Errorf("exit %d, passed %v, failing %d, stderr %q: want exit 1", code, doc.Passed, doc.Failing, stderr)
	}
	// The table says what to fix.
	code, out, _ = cli(t, env, "audit")
	if code != 1 || !strings.Contains(out, "fix: chmod 0600 each file named.") || !strings.Contains(out, "Profile standard fails") {
		t.Errorf("exit %d, table:\n%s", code, out)
	}
	if code, _, stderr := cli(t, env, "audit", "--profile", "lax"); code != 2 || !strings.Contains(stderr, "want strict, standard or relaxed") {
		t.Errorf("bad profile: exit %d %q", code, stderr)
	}
}

// /api/audit: the daemon's audit, against the profile asked.
func TestAuditAPI(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.OpenClawDirs = []string{exposedAgent(t)}
	cfg.PollInterval = time.Second
	cfg.Listen = "127.0.0.1:0"
	cfg.BrowserLogin = false         // plain GETs on loopback, as a single-user box allows
	cfg.RuntimeDir = shortTempDir(t) // never the machine's own
	app := runDaemon(t, cfg)
	base := "http://" + app.Addr().String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/api/audit?profile=strict")
	if code != 200 || !strings.Contains(body, `"id":"agent_config_private","title"`) || !strings.Contains(body, `"profile":"strict"`) || !strings.Contains(body, `"threshold":"low"`) {
		t.Fatalf("%d %s", code, body)
	}
	if code, body := get("/api/audit?profile=lax"); code != 400 || !strings.Contains(body, "want strict, standard or relaxed") {
		t.Errorf("bad profile: %d %s", code, body)
	}
	res, ok := app.audit.forAlerts("relaxed")
	if !ok || len(res.Checks) != len(host.AuditIDs()) || len(res.Failing) == 0 {
		t.Errorf("the alert source sees %+v, %v", res, ok)
	}
}
