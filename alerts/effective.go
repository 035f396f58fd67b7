package alerts

import (
	"fmt"
	"reflect"
	"strings"
)

// Effective is s as the engine runs it: every default that validation
// fills in written into the settings ([alerting] interval, timeout and
// attempts; each rule's scope, tiers, windows, factor, thresholds; the
// notify, quiet_hours and reminder a rule inherits from [alerting]), and
// the keys that took a default (every [alerting] key left out; a rule's
// keys that a default filled), as "alerting.interval",
// "budgets[0].tiers" or "alerts[1].factor". Rules are opt-in: with no
// [[budgets]] or [[alerts]] there is no rule to default. Notifiers are
// s's own. An invalid s is Validate's error.
func (s Settings) Effective(teams Teams) (Settings, []string, error) {
	c, err := s.compile(teams)
	if err != nil {
		return s, nil, err
	}
	out := Settings{Alerting: c.opts, Notifiers: s.Notifiers}
	if (c.daily != nil || c.weekly != nil) && len(out.Alerting.DigestNotify) == 0 {
		out.Alerting.DigestNotify = c.digestTo
	}
	// An option left out is at its default, zero ones included (no
	// reminder, no quiet hours, no digest).
	defaulted := unset("alerting.", s.Alerting)
	var rules []*rule
	for _, ru := range c.rules {
		if ru.Type != TypeProjection { // a budget's second rule, not a table of its own
			rules = append(rules, ru)
		}
	}
	for i, given := range s.Budgets {
		r := rules[i].effective(c.opts, given)
		out.Budgets = append(out.Budgets, r)
		defaulted = append(defaulted, newlySet(fmt.Sprintf("budgets[%d].", i), given, r)...)
	}
	for i, given := range s.Alerts {
		r := rules[len(s.Budgets)+i].effective(c.opts, given)
		out.Alerts = append(out.Alerts, r)
		defaulted = append(defaulted, newlySet(fmt.Sprintf("alerts[%d].", i), given, r)...)
	}
	return out, defaulted, nil
}

// effective is the rule as configured (given) with compile's defaults and
// what it inherits from opts.
func (ru *rule) effective(opts Options, given Rule) Rule {
	r := ru.Rule
	r.Scope = ru.scope.String()
	r.Notify = ru.notify
	r.Reminder = ru.reminder
	if r.QuietHours == "" {
		r.QuietHours = opts.QuietHours
	}
	if r.Type == TypeBudget && !r.Projection {
		// The projection windows apply to a projection only.
		r.FastWindow, r.SlowWindow = given.FastWindow, given.SlowWindow
	}
	return r
}

// unset lists, as prefix+key, the TOML keys zero in given (a struct).
func unset(prefix string, given any) []string {
	g := reflect.ValueOf(given)
	var out []string
	for i := range g.NumField() {
		if g.Field(i).IsZero() {
			name, _, _ := strings.Cut(g.Type().Field(i).Tag.Get("toml"), ",")
			out = append(out, prefix+name)
		}
	}
	return out
}

// newlySet lists, as prefix+key, the TOML keys zero in given and set in
// eff (both the same struct type).
func newlySet(prefix string, given, eff any) []string {
	g, e := reflect.ValueOf(given), reflect.ValueOf(eff)
	var out []string
	for i := range g.NumField() {
		if g.Field(i).IsZero() && !e.Field(i).IsZero() {
			name, _, _ := strings.Cut(g.Type().Field(i).Tag.Get("toml"), ",")
			out = append(out, prefix+name)
		}
	}
	return out
}
