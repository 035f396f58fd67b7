package alerts

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
)

// rule is a validated Rule with its parsed parts and defaults applied.
type rule struct {
	Rule
	id       string // the name; a budget's projection is "<name>/projection"
	where    string // `budgets[2] "team-day"`: how errors name it
	scope    scope
	quiet    *quietHours
	notify   []string
	reminder time.Duration
	holdFor  time.Duration // the condition must hold this long before it fires (pipeline)
}

// compiled is the validated configuration.
type compiled struct {
	rules     []*rule
	notifiers map[string]NotifierConfig
	opts      Options
	quiet     *quietHours
	daily     *digestTime
	weekly    *digestTime
	digestTo  []string
}

// fieldsByType lists the TOML keys each rule type reads; any other key
// set on a rule is an error (a typo, or a field of another type).
var fieldsByType = map[string][]string{
	TypeBudget:      {"period", "window", "amount_usd", "tiers", "reset_notice", "projection", "fast_window", "slow_window"},
	TypeRunaway:     {"factor", "min_usd_per_hour", "baseline"},
	TypeSessionCost: {"amount_usd", "window"},
	TypeQuota:       {"limit_tokens", "limit_usd", "source", "threshold"},
	TypeUnpriced:    {},
	TypeHost:        {"metric", "threshold", "for"},
	TypePipeline:    {"check", "source", "gateway_cpu", "max_lag", "window", "for", "threshold"},
	TypeAudit:       {"profile"},
}

var commonFields = []string{"name", "type", "scope", "notify", "quiet_hours", "reminder"}

// scopesByType lists the scope kinds a type accepts.
var scopesByType = map[string][]string{
	TypeBudget:      {ScopeHost, ScopeAgent, ScopeTeam, ScopeUser, ScopeModel, ScopeProvider},
	TypeRunaway:     {ScopeHost, ScopeAgent, ScopeTeam},
	TypeSessionCost: {ScopeHost, ScopeAgent, ScopeTeam},
	TypeQuota:       {ScopeHost},
	TypeUnpriced:    {ScopeHost, ScopeModel, ScopeProvider},
	TypeHost:        {ScopeHost},
	TypePipeline:    {ScopeHost},
	TypeAudit:       {ScopeHost},
}

// compile validates s and applies defaults. Every problem is reported,
// each naming its rule (or notifier) and field.
func (s Settings) compile(teams Teams) (*compiled, error) {
	if teams == nil {
		teams = NoTeams{}
	}
	var errs []error
	c := &compiled{notifiers: map[string]NotifierConfig{}, opts: s.Alerting}
	o := &c.opts
	if o.Interval == 0 {
		o.Interval = time.Minute
	}
	if o.Interval < time.Second {
		errs = append(errs, fmt.Errorf("alerting: interval %s is below 1s", o.Interval))
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("alerting: timeout %s is negative", o.Timeout))
	}
	if o.Attempts == 0 {
		o.Attempts = 8
	}
	if o.Attempts < 1 {
		errs = append(errs, fmt.Errorf("alerting: attempts %d is below 1", o.Attempts))
	}
	if o.Reminder < 0 {
		errs = append(errs, fmt.Errorf("alerting: reminder %s is negative", o.Reminder))
	}
	var err error
	if c.quiet, err = parseQuietHours(o.QuietHours); err != nil {
		errs = append(errs, fmt.Errorf("alerting: quiet_hours %w", err))
	}
	if c.daily, err = parseDigestTime(o.DailyDigest, false); err != nil {
		errs = append(errs, fmt.Errorf("alerting: daily_digest %w", err))
	}
	if c.weekly, err = parseDigestTime(o.WeeklyDigest, true); err != nil {
		errs = append(errs, fmt.Errorf("alerting: weekly_digest %w", err))
	}
	if o.UIURL != "" && !strings.HasPrefix(o.UIURL, "http://") && !strings.HasPrefix(o.UIURL, "https://") {
		errs = append(errs, fmt.Errorf("alerting: ui_url %q: want an http:// or https:// URL", o.UIURL))
	}
	for i, n := range s.Notifiers {
		where := fmt.Sprintf("notifiers[%d] %q", i, n.Name)
		switch {
		case n.Name == "":
			errs = append(errs, fmt.Errorf("notifiers[%d]: name is empty", i))
			continue
		case c.notifiers[n.Name].Name != "":
			errs = append(errs, fmt.Errorf("%s: name is used twice", where))
			continue
		}
		if err := checkNotifierURL(n.URL); err != nil {
			errs = append(errs, fmt.Errorf("%s: url %w", where, err))
		}
		c.notifiers[n.Name] = n
	}
	checkNotify := func(where, field string, names []string) {
		for _, name := range names {
			if _, ok := c.notifiers[name]; !ok {
				errs = append(errs, fieldErr(where, field, "names %q, which is no [[notifiers]] entry", name))
			}
		}
	}
	checkNotify("alerting", "notify", o.Notify)
	checkNotify("alerting", "digest_notify", o.DigestNotify)
	c.digestTo = o.DigestNotify
	if len(c.digestTo) == 0 {
		c.digestTo = o.Notify
	}
	if (c.daily != nil || c.weekly != nil) && len(c.digestTo) == 0 {
		errs = append(errs, errors.New("alerting: daily_digest/weekly_digest: no notifier to send them to (set digest_notify or notify)"))
	}
	names := map[string]bool{}
	add := func(table string, i int, r Rule) {
		where := fmt.Sprintf("%s[%d] %q", table, i, r.Name)
		if table == "budgets" && r.Type == "" {
			r.Type = TypeBudget
		}
		ru, rerrs := compileRule(where, r, teams)
		errs = append(errs, rerrs...)
		if r.Name != "" {
			if names[r.Name] {
				errs = append(errs, fmt.Errorf("%s: name is used by another rule", where))
			}
			names[r.Name] = true
		}
		checkNotify(where, "notify", r.Notify)
		if ru == nil {
			return
		}
		if len(ru.notify) == 0 {
			ru.notify = o.Notify
		}
		if r.QuietHours == "" {
			ru.quiet = c.quiet
		}
		if r.Reminder == 0 {
			ru.reminder = o.Reminder
		}
		c.rules = append(c.rules, ru)
		if ru.Type == TypeBudget && ru.Projection {
			p := *ru
			p.id, p.Type = ru.id+"/projection", TypeProjection
			c.rules = append(c.rules, &p)
		}
	}
	for i, r := range s.Budgets {
		add("budgets", i, r)
	}
	for i, r := range s.Alerts {
		add("alerts", i, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// compileRule checks one rule and fills in its defaults.
func compileRule(where string, r Rule, teams Teams) (*rule, []error) {
	var errs []error
	bad := func(field, format string, a ...any) { errs = append(errs, fieldErr(where, field, format, a...)) }
	switch {
	case r.Name == "":
		bad("name", "is empty")
	case len(r.Name) > 100:
		bad("name", "is longer than 100 bytes")
	case strings.ContainsFunc(r.Name, func(c rune) bool { return c == '/' || !unicode.IsGraphic(c) || unicode.IsSpace(c) }):
		bad("name", "%q: use letters, digits, '-', '_' or '.' (no spaces or '/')", r.Name)
	}
	if !slices.Contains(ruleTypes, r.Type) {
		bad("type", "%q is not a rule type (want one of %s)", r.Type, strings.Join(ruleTypes, ", "))
		return nil, errs
	}
	ru := &rule{Rule: r, id: r.Name, where: where, notify: r.Notify, reminder: r.Reminder}
	for _, f := range setFields(r) {
		if !slices.Contains(commonFields, f) && !slices.Contains(fieldsByType[r.Type], f) {
			bad(f, "does not apply to a %s rule", r.Type)
		}
	}
	sc, err := parseScope(r.Scope)
	if err != nil {
		bad("scope", "%v", err)
	} else if !slices.Contains(scopesByType[r.Type], sc.kind) {
		bad("scope", "%q: a %s rule takes %s", r.Scope, r.Type, strings.Join(scopesByType[r.Type], ", "))
	} else if sc.kind == ScopeTeam && !teams.Known(sc.value) {
		bad("scope", "%q: no agent of the registry ([[agents]]) is in team %q", r.Scope, sc.value)
	}
	ru.scope = sc
	if ru.quiet, err = parseQuietHours(r.QuietHours); err != nil {
		bad("quiet_hours", "%v", err)
	}
	if r.Reminder < 0 {
		bad("reminder", "%s is negative", r.Reminder)
	}
	positive := func(field string, v float64) {
		if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			bad(field, "%g: want an amount above 0", v)
		}
	}
	durDefault := func(field string, d *time.Duration, def, least time.Duration) {
		if *d == 0 {
			*d = def
		}
		if *d < least {
			bad(field, "%s: want at least %s", *d, least)
		}
	}
	switch r.Type {
	case TypeBudget:
		positive("amount_usd", r.AmountUSD)
		switch r.Period {
		case "day", "week", "month":
			if r.Window != 0 {
				bad("window", "applies to rolling budgets only (period = \"rolling\")")
			}
		case "rolling":
			if r.Window <= 0 {
				bad("window", "is needed for a rolling budget (e.g. \"24h\")")
			}
			if r.Projection {
				bad("projection", "applies to day, week and month budgets: a rolling window never ends")
			}
		default:
			bad("period", "%q: want day, week, month or rolling", r.Period)
		}
		if len(ru.Tiers) == 0 {
			ru.Tiers = []float64{50, 80, 100}
		}
		ru.Tiers = slices.Clone(ru.Tiers)
		slices.Sort(ru.Tiers)
		for i, t := range ru.Tiers {
			if t <= 0 || t > 1000 || math.IsNaN(t) {
				bad("tiers", "%g: want percentages above 0 (and at most 1000)", t)
			} else if i > 0 && ru.Tiers[i-1] == t {
				bad("tiers", "%g is listed twice", t)
			}
		}
		durDefault("fast_window", &ru.FastWindow, time.Hour, 5*time.Minute)
		durDefault("slow_window", &ru.SlowWindow, 6*time.Hour, 5*time.Minute)
		if ru.FastWindow >= ru.SlowWindow {
			bad("fast_window", "%s must be shorter than slow_window %s", ru.FastWindow, ru.SlowWindow)
		}
	case TypeRunaway:
		if ru.Factor == 0 {
			ru.Factor = 5
		}
		if ru.Factor <= 1 || math.IsNaN(ru.Factor) {
			bad("factor", "%g: want more than 1 (times the baseline)", ru.Factor)
		}
		if ru.MinUSDPerHour == 0 {
			ru.MinUSDPerHour = 1
		}
		positive("min_usd_per_hour", ru.MinUSDPerHour)
		durDefault("baseline", &ru.Baseline, 7*24*time.Hour, 24*time.Hour)
		if ru.Baseline > 7*24*time.Hour {
			bad("baseline", "%s: at most 168h (the spend index holds a week)", ru.Baseline)
		}
	case TypeSessionCost:
		positive("amount_usd", r.AmountUSD)
		durDefault("window", &ru.Window, 24*time.Hour, time.Hour)
		if ru.Window > 7*24*time.Hour {
			bad("window", "%s: at most 168h", ru.Window)
		}
	case TypeQuota:
		if r.Source == "codex" {
			// Codex's own windows: percent used, as its logs report it.
			if r.Threshold == 0 {
				ru.Threshold = 90
			}
			if ru.Threshold <= 0 || ru.Threshold > 100 {
				bad("threshold", "%g: a percent of the window, above 0 and at most 100", r.Threshold)
			}
			break
		}
		if r.Source != "" && r.Source != "claude" {
			bad("source", "%q: want claude (5-hour blocks from transcripts) or codex (its own rate-limit windows)", r.Source)
		}
		if r.LimitTokens < 0 {
			bad("limit_tokens", "%d is negative", r.LimitTokens)
		}
		if r.LimitUSD < 0 || math.IsNaN(r.LimitUSD) {
			bad("limit_usd", "%g is negative", r.LimitUSD)
		}
		if r.LimitTokens == 0 && r.LimitUSD == 0 {
			bad("limit_tokens", "or limit_usd is needed: the limit of one 5-hour block")
		}
	case TypeHost:
		durDefault("for", &ru.For, 5*time.Minute, 0)
		if ru.For > 24*time.Hour {
			bad("for", "%s: at most 24h", ru.For)
		}
		switch r.Metric {
		case "cpu", "steal", "iowait", "memory", "swap", "disk", "disk_root":
			if r.Threshold <= 0 || r.Threshold > 100 {
				bad("threshold", "%g: want a percentage above 0, at most 100", r.Threshold)
			}
		case "load":
			positive("threshold", r.Threshold)
		case "disk_full":
			positive("threshold", r.Threshold) // days
		case "gateway_down":
			if r.Threshold != 0 {
				bad("threshold", "does not apply to gateway_down")
			}
		default:
			bad("metric", "%q: want one of %s", r.Metric, strings.Join(hostMetrics, ", "))
		}
	case TypePipeline:
		switch r.Check {
		case "source_silent":
			if ru.Source == "" {
				ru.Source = "openclaw"
			}
			if ru.Source != "openclaw" {
				bad("source", "%q: only openclaw has a gateway to tell busy from idle", ru.Source)
			}
			durDefault("window", &ru.Window, 30*time.Minute, 5*time.Minute)
			if ru.GatewayCPU == 0 {
				ru.GatewayCPU = 5
			}
			positive("gateway_cpu", ru.GatewayCPU)
		case "ingest_failing":
			durDefault("for", &ru.For, 10*time.Minute, 0)
			ru.holdFor = ru.For
		case "sync_lag":
			if r.MaxLag <= 0 {
				bad("max_lag", "is needed (e.g. \"6h\")")
			}
		case "format_drift":
			durDefault("window", &ru.Window, 24*time.Hour, time.Minute)
		case "db_size":
			if ru.Threshold == 0 {
				ru.Threshold = 80
			}
			if ru.Threshold <= 5 || ru.Threshold > 100 {
				bad("threshold", "%g: want a percentage of db_max_mb above 5, at most 100", ru.Threshold)
			}
		default:
			bad("check", "%q: want one of %s", r.Check, strings.Join(pipelineChecks, ", "))
		}
		if ru.Window > 7*24*time.Hour {
			bad("window", "%s: at most 168h", ru.Window)
		}
		if r.Threshold != 0 && r.Check != "db_size" {
			bad("threshold", "applies to the db_size check only")
		}
	case TypeAudit:
		if ru.Profile == "" {
			ru.Profile = "standard"
		}
		if !slices.Contains(auditProfiles, ru.Profile) {
			bad("profile", "%q: want strict, standard or relaxed", ru.Profile)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return ru, nil
}

// setFields lists the TOML keys of r that are not zero.
func setFields(r Rule) []string {
	var out []string
	v := reflect.ValueOf(r)
	t := v.Type()
	for i := range t.NumField() {
		if !v.Field(i).IsZero() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
			out = append(out, name)
		}
	}
	return out
}
