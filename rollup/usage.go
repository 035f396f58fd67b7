package rollup

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// The dashboard's usage questions: totals and series over a range of days,
// grouped by a time or a name dimension, filtered by agent, user, model or
// team. Days are cut in the database's zone, and every answer says which.

// Ranges the dashboard names; a custom range gives From and To.
var rangeDays = map[string]int32{"today": 1, "7d": 7, "14d": 14, "30d": 30, "90d": 90}

// RangeNames lists the named ranges, shortest first.
func RangeNames() []string { return []string{"today", "7d", "14d", "30d", "90d"} }

// Groupings of a usage query.
var groupings = []string{"day", "week", "hour", "agent", "user", "model", "team"}

// Groupings lists the group_by values, for help texts.
func Groupings() []string { return slices.Clone(groupings) }

// Bounds of what one usage query may ask.
const (
	MaxRangeDays = 400 // the ledger's default retention
	MaxHourDays  = 7   // group_by=hour
)

// UsageQuery selects dashboard usage figures: the days From..To
// (inclusive day numbers in the data's zone), grouped by GroupBy, of the
// calls matching every filter that is set. Model is "provider/model".
type UsageQuery struct {
	From, To int32
	Name     string // the named range it came from ("7d"), "" when custom
	GroupBy  string
	Filters
}

// Filters narrow a usage query; empty fields match everything.
type Filters struct {
	Agent string `json:"agent,omitempty"`
	User  string `json:"user,omitempty"`
	Model string `json:"model,omitempty"` // provider/model
	Team  string `json:"team,omitempty"`
}

// Any reports whether a filter is set.
func (f Filters) Any() bool { return f != Filters{} }

// ParseUsageQuery reads a usage query from the strings of a URL: a named
// range (today, 7d, 14d, 30d, 90d) or from/to as YYYY-MM-DD (to defaults
// to today), the grouping (default def) and the filters. today is the
// current day in the data's zone. Errors are ErrBadQuery.
func ParseUsageQuery(rangeName, from, to, groupBy, def string, f Filters, today int32) (UsageQuery, error) {
	q := UsageQuery{GroupBy: groupBy, Filters: f}
	if q.GroupBy == "" {
		q.GroupBy = def
	}
	switch {
	case rangeName != "" && (from != "" || to != ""):
		return q, badQuery("give range or from/to, not both")
	case rangeName != "":
		n, ok := rangeDays[rangeName]
		if !ok {
			return q, badQuery("range %q: want one of %s, or from and to", rangeName, strings.Join(RangeNames(), ", "))
		}
		q.From, q.To, q.Name = today-n+1, today, rangeName
	case from != "":
		var err error
		if q.From, q.To, err = ParseRange(from, to); err != nil {
			return q, err
		}
		if to == "" {
			q.To = today
		}
	case to != "":
		return q, badQuery("to needs a from")
	default:
		q.From, q.To, q.Name = today-29, today, "30d"
	}
	return q, q.Validate()
}

// Validate checks the query on its own. Errors are ErrBadQuery.
func (q UsageQuery) Validate() error {
	switch {
	case !slices.Contains(groupings, q.GroupBy):
		return badQuery("group_by %q: want one of %s", q.GroupBy, strings.Join(groupings, ", "))
	case q.From > q.To:
		return badQuery("from %s is after to %s", storage.DayString(q.From), storage.DayString(q.To))
	case q.To-q.From+1 > MaxRangeDays:
		return badQuery("a range covers at most %d days (asked %d)", MaxRangeDays, q.To-q.From+1)
	case q.GroupBy == "hour" && q.To-q.From+1 > MaxHourDays:
		return badQuery("group_by=hour covers at most %d days: use day for longer ranges", MaxHourDays)
	case q.Model != "" && !strings.Contains(q.Model, "/"):
		return badQuery("model %q: want provider/model", q.Model)
	}
	return nil
}

// Span is a range of days as answers label it.
type Span struct {
	From string `json:"from"` // YYYY-MM-DD, inclusive
	To   string `json:"to"`   // YYYY-MM-DD, inclusive
	Days int    `json:"days"`
	TZ   string `json:"tz"`             // the zone that cuts the days
	Name string `json:"name,omitempty"` // the named range, "" when custom
}

func spanOf(from, to int32, name string, loc *time.Location) Span {
	return Span{From: storage.DayString(from), To: storage.DayString(to), Days: int(to - from + 1), TZ: loc.String(), Name: name}
}

// UsageRow is one group of a usage answer.
type UsageRow struct {
	// Key identifies the group: the date (day), the Monday (week), the
	// hour's start in RFC 3339 (hour), the agent, the user id ("" is calls
	// with no human), provider/model, or the team ("" is agents in none).
	Key string `json:"key"`
	// Label is a display name where one is known: the registry's name of
	// an agent, a user's label.
	Label string `json:"label,omitempty"`
	// Start is a time group's first instant, unix seconds.
	Start  int64  `json:"start,omitempty"`
	Source string `json:"source,omitempty"` // agents: where their calls were read (comma list)
	Team   string `json:"team,omitempty"`   // agents: their registry team
	Sums
}

// Usage answers a usage query.
type Usage struct {
	Range   Span       `json:"range"`
	GroupBy string     `json:"group_by"`
	Filters Filters    `json:"filters"`
	Totals  Sums       `json:"totals"`
	Rows    []UsageRow `json:"rows"`
}

// matcher decides which cube rows a query counts. It resolves names as
// rows come (a day read from the database may add names), remembering
// each number's answer.
type matcher struct {
	f      Filters
	reg    map[string]storage.AgentInfo
	names  *cubeNames
	agents []int8 // by agent number: 0 not decided yet, 1 match, 2 no
}

func (m *matcher) match(r *cubeRow) bool {
	if m.f.User != "" && m.names.users[r.user] != m.f.User {
		return false
	}
	if m.f.Model != "" && m.names.models[r.model] != m.f.Model {
		return false
	}
	if m.f.Agent == "" && m.f.Team == "" {
		return true
	}
	for int(r.agent) >= len(m.agents) {
		m.agents = append(m.agents, 0)
	}
	if m.agents[r.agent] == 0 {
		a := m.names.agents[r.agent].agent
		m.agents[r.agent] = 2
		if (m.f.Agent == "" || a == m.f.Agent) && (m.f.Team == "" || m.reg[a].Team == m.f.Team) {
			m.agents[r.agent] = 1
		}
	}
	return m.agents[r.agent] == 1
}

// grouper accumulates rollup totals under keys; rows() turns them into
// report rows, exact to the nano-dollar.
type grouper struct {
	keys   []string
	groups map[string]*group
	fill   map[string]UsageRow // a key's row fields besides its sums
}

func newGrouper() *grouper {
	return &grouper{groups: map[string]*group{}, fill: map[string]UsageRow{}}
}

// add adds t under key; mk makes the key's row fields the first time.
func (g *grouper) add(key string, t storage.Totals, mk func() UsageRow) {
	gr := g.groups[key]
	if gr == nil {
		gr = &group{}
		g.groups[key] = gr
		g.keys = append(g.keys, key)
		r := UsageRow{}
		if mk != nil {
			r = mk()
		}
		r.Key = key
		g.fill[key] = r
	}
	gr.t.Add(t)
}

// rows returns the groups as rows, in no particular order.
func (g *grouper) rows() map[string]*UsageRow {
	out := make(map[string]*UsageRow, len(g.keys))
	for _, k := range g.keys {
		r := g.fill[k]
		r.Sums = SumsOf(g.groups[k].t)
		out[k] = &r
	}
	return out
}

// sortRows orders time groups by time and name groups by cost.
func sortRows(rows []UsageRow, byTime bool) {
	sort.Slice(rows, func(i, j int) bool {
		if byTime {
			return rows[i].Start < rows[j].Start
		}
		if c := byCost(rows[i].Sums, rows[j].Sums); c != 0 {
			return c < 0
		}
		return rows[i].Key < rows[j].Key
	})
}

// timeGroup reports whether a grouping is by time.
func timeGroup(g string) bool { return g == "day" || g == "week" || g == "hour" }

// periods lists the empty rows of a time grouping over from..to, so that a
// series has every day (week, hour) even when nothing was spent.
func periods(groupBy string, from, to int32, loc *time.Location) []UsageRow {
	var out []UsageRow
	switch groupBy {
	case "day":
		for d := from; d <= to; d++ {
			out = append(out, UsageRow{Key: storage.DayString(d), Start: storage.DayStartMillis(d, loc) / 1000})
		}
	case "week":
		for w := storage.WeekStart(from); w <= to; w += 7 {
			out = append(out, UsageRow{Key: storage.DayString(w), Start: storage.DayStartMillis(w, loc) / 1000})
		}
	case "hour":
		end := storage.DayStartMillis(to+1, loc)
		for ms := storage.DayStartMillis(from, loc); ms < end; ms += time.Hour.Milliseconds() {
			out = append(out, UsageRow{Key: hourKey(ms, loc), Start: ms / 1000})
		}
	}
	return out
}

func hourKey(ms int64, loc *time.Location) string {
	return time.UnixMilli(ms).In(loc).Format(time.RFC3339)
}

// mergePeriods puts the computed time rows into the empty series.
func mergePeriods(series []UsageRow, got map[string]*UsageRow) []UsageRow {
	for i := range series {
		if r := got[series[i].Key]; r != nil {
			series[i].Sums = r.Sums
		}
	}
	return series
}

// teamOf is the registry's team of an agent ("" when it has none).
func teamOf(reg map[string]storage.AgentInfo, agent string) string { return reg[agent].Team }

// checkTeam refuses a team the registry does not name: a typo would
// otherwise show an empty fleet.
func checkTeam(reg map[string]storage.AgentInfo, team string) error {
	if team == "" {
		return nil
	}
	var teams []string
	for _, a := range reg {
		if a.Team == team {
			return nil
		}
		if a.Team != "" && !slices.Contains(teams, a.Team) {
			teams = append(teams, a.Team)
		}
	}
	sort.Strings(teams)
	if len(teams) == 0 {
		return badQuery("team %q: the agent registry ([[agents]] in the config) names no teams", team)
	}
	return badQuery("team %q is not in the agent registry (teams: %s)", team, strings.Join(teams, ", "))
}

// describe says in words which calls a filter keeps, for errors and logs.
func (f Filters) describe() string {
	var parts []string
	for _, p := range [][2]string{{"agent", f.Agent}, {"user", f.User}, {"model", f.Model}, {"team", f.Team}} {
		if p[1] != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", p[0], p[1]))
		}
	}
	return strings.Join(parts, " ")
}
