package alerts

import (
	"fmt"
	"strings"
	"time"
)

// TypeAudit watches the host's security audit (fleetmeter audit): one
// instance per check, firing while the check fails at or above the
// rule's profile (strict: low and above, standard: medium, relaxed:
// high), resolved when it passes again. The audit itself runs in the
// appliance, hourly; a rule only reads its latest result.
const TypeAudit = "audit"

// auditProfiles are the profiles a rule may name (host.Profile's).
var auditProfiles = []string{"strict", "standard", "relaxed"}

// AuditResult is the latest audit as a rule reads it.
type AuditResult struct {
	At      time.Time
	Checks  []string       // every check's id: the instances
	Failing []AuditFinding // the checks failing at or above the profile asked
}

// AuditFinding is a failed check.
type AuditFinding struct {
	ID, Title, Severity, Summary, Fix string
}

// audit reads the latest audit through Pipeline.Audit.
func (r *round) audit(ru *rule) ([]Observation, Figures, error) {
	get := r.e.d.Pipeline.Audit
	head := Figures{Unit: "checks", Summary: "The security audit has not run yet."}
	if get == nil {
		head.Summary = "The security audit is not wired in."
		return nil, head, nil
	}
	res, ok := get(ru.Profile)
	if !ok {
		return nil, head, nil
	}
	failing := map[string]AuditFinding{}
	for _, f := range res.Failing {
		failing[f.ID] = f
	}
	head.Value = float64(len(res.Failing))
	head.Summary = fmt.Sprintf("%d of %d security checks fail at the %s profile (audit of %s).", len(res.Failing), len(res.Checks), ru.Profile, res.At.UTC().Format(time.RFC3339))
	var obs []Observation
	for _, id := range res.Checks {
		f, bad := failing[id]
		o := Observation{Key: id, Firing: bad, Clear: !bad, Figures: Figures{Unit: "check", Summary: "Passes."}}
		if bad {
			o.Value = 1
			o.Summary = strings.TrimSpace(fmt.Sprintf("Security check %s failed (%s): %s Fix: %s", f.ID, f.Severity, f.Summary, f.Fix))
		}
		obs = append(obs, o)
	}
	return obs, head, nil
}
