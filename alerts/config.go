package alerts

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Settings is the alerting part of the configuration file: rules are
// opt-in, nothing is watched unless configured. In TOML:
//
//	[alerting]    Options
//	[[notifiers]] NotifierConfig, one per receiver
//	[[budgets]]   Rule with type "budget" (the type may be left out)
//	[[alerts]]    Rule of any other type
type Settings struct {
	Alerting  Options          `toml:"alerting"`
	Notifiers []NotifierConfig `toml:"notifiers"`
	Budgets   []Rule           `toml:"budgets"`
	Alerts    []Rule           `toml:"alerts"`
}

// Options are the settings shared by every rule.
type Options struct {
	Interval     time.Duration `toml:"interval"`      // between evaluation rounds; default 1m
	UIURL        string        `toml:"ui_url"`        // link in notifications; default the daemon's /alerts page
	Notify       []string      `toml:"notify"`        // notifiers of rules that name none
	Reminder     time.Duration `toml:"reminder"`      // repeat a firing alert this often (0: never); rules may override
	QuietHours   string        `toml:"quiet_hours"`   // "22:00-07:00" in the configured zone: notifications wait
	DailyDigest  string        `toml:"daily_digest"`  // "08:00": a summary of the day before, every day
	WeeklyDigest string        `toml:"weekly_digest"` // "mon 08:00": a summary of the week before
	DigestNotify []string      `toml:"digest_notify"` // notifiers of the digests; default Notify
	Timeout      time.Duration `toml:"timeout"`       // one delivery attempt; default 10s
	Attempts     int           `toml:"attempts"`      // delivery attempts before giving up; default 8
}

// NotifierConfig is one receiver. URL is a Shoutrrr service URL
// (slack://…, discord://…, telegram://…, smtp://…, ntfy://…, pushover://…,
// teams://…, generic://…) or json+https://host/path for the plain JSON
// webhook (json+http:// for plain HTTP). URLs hold tokens: they are
// secrets, never logged or shown unmasked; URLFile reads one from a file.
type NotifierConfig struct {
	Name    string `toml:"name"`
	URL     string `toml:"url,omitempty"`
	URLFile string `toml:"url_file,omitempty"`
}

// Rule types.
const (
	TypeBudget      = "budget"       // spend per calendar day, week, month or a rolling window
	TypeProjection  = "projection"   // a budget's burn rate crosses it before the period ends (from a budget with projection = true)
	TypeRunaway     = "runaway"      // an agent's hourly spend far above its own baseline
	TypeSessionCost = "session_cost" // one session above an amount
	TypeQuota       = "quota"        // Claude's 5-hour block near its limit
	TypeUnpriced    = "unpriced"     // tokens of a model with no price (tracking incomplete)
	TypeHost        = "host"         // a host metric over a threshold for a while, the gateway gone, the disk filling
	TypePipeline    = "pipeline"     // a source silent, ingest failing, sync lagging, format drift
)

var ruleTypes = []string{TypeBudget, TypeRunaway, TypeSessionCost, TypeQuota, TypeUnpriced, TypeHost, TypePipeline, TypeAudit}

// Host metrics (Rule.Metric).
var hostMetrics = []string{"cpu", "steal", "iowait", "memory", "swap", "disk", "disk_root", "load", "gateway_down", "disk_full"}

// Pipeline checks (Rule.Check).
var pipelineChecks = []string{"source_silent", "ingest_failing", "sync_lag", "format_drift", "db_size"}

// Rule is one [[budgets]] or [[alerts]] entry. Which fields apply depends
// on Type; the README has a table. Printed (`fleetmeter config`), a rule
// shows the keys it sets only. Durations are Go durations ("90m",
// "168h"); amounts are USD.
type Rule struct {
	Name  string `toml:"name,omitempty,omitzero"`
	Type  string `toml:"type,omitempty,omitzero"`
	Scope string `toml:"scope,omitempty,omitzero"` // host (default), agent:ID, team:NAME, user:ID, model:PROVIDER/MODEL, provider:NAME

	// budget
	Period      string        `toml:"period,omitempty,omitzero"` // day, week, month (in the configured zone) or rolling
	Window      time.Duration `toml:"window,omitempty,omitzero"` // rolling budgets; session_cost, pipeline: how far back to look
	AmountUSD   float64       `toml:"amount_usd,omitempty,omitzero"`
	Tiers       []float64     `toml:"tiers,omitempty,omitzero"`        // percent of the amount; default 50, 80, 100
	ResetNotice bool          `toml:"reset_notice,omitempty,omitzero"` // say so when a crossed period resets
	Projection  bool          `toml:"projection,omitempty,omitzero"`   // also warn when the burn rate will cross the budget
	FastWindow  time.Duration `toml:"fast_window,omitempty,omitzero"`  // projection: default 1h
	SlowWindow  time.Duration `toml:"slow_window,omitempty,omitzero"`  // projection: default 6h

	// runaway
	Factor        float64       `toml:"factor,omitempty,omitzero"`           // times the baseline; default 5
	MinUSDPerHour float64       `toml:"min_usd_per_hour,omitempty,omitzero"` // and at least this much; default 1
	Baseline      time.Duration `toml:"baseline,omitempty,omitzero"`         // trailing window of the hourly p95; default 168h

	// quota
	LimitTokens int64   `toml:"limit_tokens,omitempty,omitzero"` // per 5-hour block
	LimitUSD    float64 `toml:"limit_usd,omitempty,omitzero"`

	// host
	Metric    string        `toml:"metric,omitempty,omitzero"`
	Threshold float64       `toml:"threshold,omitempty,omitzero"` // percent (cpu, steal, iowait, memory, swap, disk, disk_root), load per core, or days (disk_full)
	For       time.Duration `toml:"for,omitempty,omitzero"`       // host, pipeline: how long before it fires; default 5m

	// pipeline
	Check      string        `toml:"check,omitempty,omitzero"`
	Source     string        `toml:"source,omitempty,omitzero"`      // source_silent: default openclaw
	GatewayCPU float64       `toml:"gateway_cpu,omitempty,omitzero"` // source_silent: the gateway counts as busy above this % of a core; default 5
	MaxLag     time.Duration `toml:"max_lag,omitempty,omitzero"`     // sync_lag

	// audit (audit.go); pipeline db_size reads Threshold (percent of the cap)
	Profile string `toml:"profile,omitempty,omitzero"` // strict, standard (default) or relaxed

	// delivery
	Notify     []string      `toml:"notify,omitempty,omitzero"`
	QuietHours string        `toml:"quiet_hours,omitempty,omitzero"`
	Reminder   time.Duration `toml:"reminder,omitempty,omitzero"`
}

// Teams answers which team an agent belongs to; the agent registry of the
// configuration ([[agents]]) satisfies it.
type Teams interface {
	// TeamOf is the agent's team, "" when it has none.
	TeamOf(agent string) string
	// Known reports whether any agent belongs to team.
	Known(team string) bool
}

// TeamMap is a registry as agent → team.
type TeamMap map[string]string

func (m TeamMap) TeamOf(agent string) string { return m[agent] }

func (m TeamMap) Known(team string) bool {
	for _, t := range m {
		if t == team {
			return true
		}
	}
	return false
}

// NoTeams is a registry without teams.
type NoTeams struct{}

func (NoTeams) TeamOf(string) string { return "" }
func (NoTeams) Known(string) bool    { return false }

// Scope kinds.
const (
	ScopeHost     = "host"
	ScopeAgent    = "agent"
	ScopeTeam     = "team"
	ScopeUser     = "user"
	ScopeModel    = "model"
	ScopeProvider = "provider"
)

// scope is a parsed Rule.Scope.
type scope struct{ kind, value string }

func (s scope) String() string {
	if s.kind == ScopeHost {
		return ScopeHost
	}
	return s.kind + ":" + s.value
}

func parseScope(s string) (scope, error) {
	if s == "" || s == ScopeHost {
		return scope{kind: ScopeHost}, nil
	}
	kind, value, ok := strings.Cut(s, ":")
	if !ok || value == "" {
		return scope{}, fmt.Errorf("%q: want host or KIND:VALUE (agent, team, user, model, provider)", s)
	}
	switch kind {
	case ScopeAgent, ScopeTeam, ScopeUser, ScopeProvider:
	case ScopeModel:
		if !strings.Contains(value, "/") {
			return scope{}, fmt.Errorf("%q: want model:PROVIDER/MODEL", s)
		}
	default:
		return scope{}, fmt.Errorf("%q: unknown kind %q (want agent, team, user, model or provider)", s, kind)
	}
	return scope{kind, value}, nil
}

// quietHours is a daily window in the configured zone, minutes after
// midnight; from > to wraps midnight.
type quietHours struct{ from, to int }

func parseQuietHours(s string) (*quietHours, error) {
	if s == "" {
		return nil, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return nil, fmt.Errorf("%q: want HH:MM-HH:MM", s)
	}
	from, err1 := parseClock(strings.TrimSpace(a))
	to, err2 := parseClock(strings.TrimSpace(b))
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	if from == to {
		return nil, fmt.Errorf("%q: an empty window", s)
	}
	return &quietHours{from, to}, nil
}

// parseClock reads HH:MM as minutes after midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not a time of day (HH:MM)", s)
	}
	return hh*60 + mm, nil
}

// contains reports whether t (in its own zone) falls in the window.
func (q *quietHours) contains(t time.Time) bool {
	if q == nil {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	if q.from < q.to {
		return m >= q.from && m < q.to
	}
	return m >= q.from || m < q.to
}

// digestTime is a daily or weekly send time: weekday < 0 means daily.
type digestTime struct {
	weekday time.Weekday
	daily   bool
	minute  int
}

func parseDigestTime(s string, weekly bool) (*digestTime, error) {
	if s == "" {
		return nil, nil
	}
	d := &digestTime{daily: !weekly}
	clock := s
	if weekly {
		day, rest, ok := strings.Cut(s, " ")
		if !ok {
			return nil, fmt.Errorf("%q: want DAY HH:MM (e.g. mon 08:00)", s)
		}
		i := slices.Index([]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}, strings.ToLower(day))
		if i < 0 {
			return nil, fmt.Errorf("%q: %q is not a weekday (mon … sun)", s, day)
		}
		d.weekday, clock = time.Weekday(i), strings.TrimSpace(rest)
	}
	m, err := parseClock(clock)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	d.minute = m
	return d, nil
}

// Validate checks the settings with the notifier URLs resolved and the
// agent registry known; every problem names its rule and field.
func (s Settings) Validate(teams Teams) error {
	_, err := s.compile(teams)
	return err
}

// fieldErr names the rule and field of a problem.
func fieldErr(where, field string, format string, a ...any) error {
	return fmt.Errorf("%s: %s %s", where, field, fmt.Sprintf(format, a...))
}
