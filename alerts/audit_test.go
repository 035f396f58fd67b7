package alerts

import (
	"strings"

	"github.com/BurntSushi/toml"
	"testing"
	"time"
)

// The audit source: one instance per check, firing while it fails at the
// rule's profile, resolved when it passes; db_size fires at its share of
// the cap and resolves 5 points under.
func TestAuditAndDBSizeRules(t *testing.T) {
	f := newFleet(t, time.UTC)
	hook := newReceiver(t)
	var res AuditResult
	have := false
	var asked []string
	size, limit := int64(70<<20), int64(100<<20)
	e := f.engine(hookNotifier+`
[alerting]
notify = ["hook"]

[[alerts]]
name = "security"
type = "audit"
profile = "relaxed"

[[alerts]]
name = "db-cap"
type = "pipeline"
check = "db_size"
threshold = 80
`, hook, func(d *Deps) {
		d.Pipeline.Audit = func(profile string) (AuditResult, bool) { asked = append(asked, profile); return res, have }
		d.Pipeline.DBSize = func() (int64, int64) { return size, limit }
	})
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	s := step(t, e, t0)
	wantEvents(t, hook)
	if r := ruleOf(t, s, "security"); !strings.Contains(r.Summary, "not run yet") {
		t.Errorf("before the first audit: %q", r.Summary)
	}
	have = true
	res = AuditResult{At: t0, Checks: []string{"ssh_password_login", "listening_ports"},
		Failing: []AuditFinding{{ID: "ssh_password_login", Severity: "high", Summary: "SSH accepts passwords.", Fix: "Set PasswordAuthentication no."}}}
	size = 85 << 20
	step(t, e, t0.Add(time.Minute))
	wantEvents(t, hook, "firing security ssh_password_login", "firing db-cap")
	if asked[len(asked)-1] != "relaxed" {
		t.Errorf("asked the audit for profile %q, want the rule's", asked[len(asked)-1])
	}
	for _, n := range hook.notifications(t) {
		if n.Rule == "security" && (!strings.Contains(n.Summary, "PasswordAuthentication no") || n.Severity != "critical") {
			t.Errorf("audit notification %+v lacks the fix or severity", n)
		}
	}
	res.Failing = nil
	size = 78 << 20 // under 80 %, not 5 points under: stays
	step(t, e, t0.Add(2*time.Minute))
	wantEvents(t, hook, "firing security ssh_password_login", "firing db-cap", "resolved security ssh_password_login")
	size = 70 << 20
	step(t, e, t0.Add(3*time.Minute))
	wantEvents(t, hook, "firing security ssh_password_login", "firing db-cap", "resolved security ssh_password_login", "resolved db-cap")
}

func TestAuditRuleValidation(t *testing.T) {
	for _, tc := range []struct{ rule, want string }{
		{`type = "audit"` + "\nprofile = \"lax\"", `profile "lax"`},
		{`type = "audit"` + "\nthreshold = 3", "does not apply to a audit rule"},
		{`type = "pipeline"` + "\ncheck = \"db_size\"\nthreshold = 120", "threshold 120"},
		{`type = "pipeline"` + "\ncheck = \"sync_lag\"\nmax_lag = \"1h\"\nthreshold = 50", "applies to the db_size check only"},
	} {
		var s Settings
		if _, err := toml.Decode("[[alerts]]\nname = \"r\"\n"+tc.rule+"\n", &s); err != nil {
			t.Fatal(err)
		}
		_, err := s.compile(nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.rule, err, tc.want)
		}
	}
}
