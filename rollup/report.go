// Package rollup is fleetmeter's read model: everything it shows, as typed
// results, behind one Reader. Usage reports (series by day, ISO week with
// the trend against the week before, and month; leaderboards by agent,
// user and model; sessions) come from daily rows and session summaries of
// the bbolt database or of an in-memory Tally; host reports and scaling
// advice (with the EC2 size table) come from the host rollups. One Query
// type, validated here, selects what to read; ErrBadQuery marks a query
// that cannot be answered as asked.
package rollup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Source is what reports read.
type Source interface {
	// DimRows returns daily rows projected on one dimension (storage.DimModel,
	// DimAgent, DimUser).
	DimRows(kind byte, from, to int32) ([]storage.Row, error)
	Sessions() ([]storage.Session, error)
	Skips() (storage.Skips, error)
	UserLabels() (map[string]string, error)
	Location() *time.Location
}

// Sums are the usage figures every report row carries, in the snake_case
// names shared by the CLI, the API and upstream.
type Sums struct {
	Messages         int64   `json:"messages"`
	InputTokens      int64   `json:"input_tokens"`
	OutputTokens     int64   `json:"output_tokens"`
	CacheReadTokens  int64   `json:"cache_read_tokens"`
	CacheWriteTokens int64   `json:"cache_write_tokens"`
	TotalTokens      int64   `json:"total_tokens"`
	CostUSD          float64 `json:"cost_usd"`
	InputCostUSD     float64 `json:"input_cost_usd"`
	OutputCostUSD    float64 `json:"output_cost_usd"`
	CacheReadCostUSD float64 `json:"cache_read_cost_usd"`
	CacheWriteCost   float64 `json:"cache_write_cost_usd"`
	UnpricedMessages int64   `json:"unpriced_messages"`
	UnpricedTokens   int64   `json:"unpriced_tokens"`
	// ReasoningTokens is the part of OutputTokens a format reported as
	// reasoning; ToolsCostUSD the part of CostUSD billed per server-tool
	// request (web search).
	ReasoningTokens int64   `json:"reasoning_tokens"`
	ToolsCostUSD    float64 `json:"server_tool_cost_usd"`
}

// SumsOf converts rollup totals (integer nano-dollars) to report figures.
func SumsOf(t storage.Totals) Sums {
	return Sums{
		Messages: t.Messages, InputTokens: t.Input, OutputTokens: t.Output,
		CacheReadTokens: t.CacheRead, CacheWriteTokens: t.CacheWrite, TotalTokens: t.TotalTokens(),
		CostUSD: storage.USD(t.CostNanos), InputCostUSD: storage.USD(t.CostInputNanos),
		OutputCostUSD: storage.USD(t.CostOutputNanos), CacheReadCostUSD: storage.USD(t.CostCacheReadNanos),
		CacheWriteCost:   storage.USD(t.CostCacheWriteNanos),
		UnpricedMessages: t.UnpricedMessages, UnpricedTokens: t.UnpricedTokens,
		ReasoningTokens: t.Reasoning, ToolsCostUSD: storage.USD(t.CostToolsNanos),
	}
}

// DailyRow is one day.
type DailyRow struct {
	Date string `json:"date"`
	Sums
	Models []string `json:"models"`
}

// WeeklyRow is one ISO week (Monday first) and its cost against the week before.
type WeeklyRow struct {
	WeekStart string `json:"week_start"`
	Sums
	Models              []string `json:"models"`
	PreviousWeekCostUSD float64  `json:"previous_week_cost_usd"`
	CostChangeUSD       float64  `json:"cost_change_usd"`
	CostChangePct       *float64 `json:"cost_change_pct"` // null when the week before cost nothing
}

// MonthlyRow is one calendar month.
type MonthlyRow struct {
	Month string `json:"month"`
	Sums
	Models []string `json:"models"`
}

// SessionRow is one session.
type SessionRow struct {
	SessionID     string `json:"session_id"`
	SessionKey    string `json:"session_key"`
	Source        string `json:"source"`
	Agent         string `json:"agent"`
	Channel       string `json:"channel"`
	FirstActivity string `json:"first_activity"`
	LastActivity  string `json:"last_activity"`
	Sums
	Models []string `json:"models"`

	lastTS int64          // for ordering: RFC 3339 strings with offsets do not sort across DST
	totals storage.Totals // what Sums shows, for the report's total
}

// AgentRow is one agent.
type AgentRow struct {
	Agent  string `json:"agent"`
	Source string `json:"source"`
	Sums
}

// UserRow is one human user; the empty user is calls with no human
// (cron, heartbeat, sub-agents, system turns).
type UserRow struct {
	User      string `json:"user"`
	UserLabel string `json:"user_label"`
	Sums
	Agents []string `json:"agents"`
}

// ModelRow is one provider/model.
type ModelRow struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Sums
}

// Report is a finished report. It marshals to DESIGN §6's shape:
// {"<rows key>":[…],"totals":{…},"skipped":{…}}.
type Report struct {
	Kind    string
	Rows    any
	Totals  Sums
	Skipped storage.Skips
	// Corrected counts stored calls whose writer's numbers were fixed
	// (an implausible cost, cached tokens counted inside input).
	Corrected storage.Corrections
	// Page is set when a query asked for a page of the session rows.
	Page *Page
	// TZ is the zone the report's days were cut in.
	TZ string
	// Coverage is the days the data holds, set when the report has no
	// rows, so an empty report can say where the data is.
	Coverage *Coverage
	// Top is set when Query.Top left rows out.
	Top *Top
}

// Coverage is the first and last day with usage in the data (filters
// aside); empty strings when there is none.
type Coverage struct {
	FirstDay string `json:"first_day"`
	LastDay  string `json:"last_day"`
}

// Top says how many rows a report kept of how many.
type Top struct {
	Rows int `json:"rows"`
	Of   int `json:"of"`
}

// Page says which session rows a paged report holds.
type Page struct {
	Offset int `json:"offset"`
	Limit  int `json:"limit"`
	Total  int `json:"total_rows"` // rows in the whole range
}

// MarshalJSON writes the rows under their kind's key.
func (r Report) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	rows, err := json.Marshal(r.Rows)
	if err != nil {
		return nil, err
	}
	totals, _ := json.Marshal(r.Totals)
	skipped, _ := json.Marshal(r.Skipped)
	corrected, _ := json.Marshal(r.Corrected)
	fmt.Fprintf(&b, `{%q:%s,"totals":%s,"skipped":%s,"corrected":%s`, kinds[r.Kind], rows, totals, skipped, corrected)
	if r.TZ != "" {
		fmt.Fprintf(&b, `,"tz":%q`, r.TZ)
	}
	for _, part := range []struct {
		key string
		v   any
		set bool
	}{{"page", r.Page, r.Page != nil}, {"coverage", r.Coverage, r.Coverage != nil}, {"top", r.Top, r.Top != nil}} {
		if part.set {
			v, _ := json.Marshal(part.v)
			fmt.Fprintf(&b, `,%q:%s`, part.key, v)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// paged is rep with only the session rows of q's page; rep is not changed.
func paged(rep Report, q Query) Report {
	rows, ok := rep.Rows.([]SessionRow)
	if !ok || q.Limit == 0 {
		return rep
	}
	rep.Page = &Page{Offset: q.Offset, Limit: q.Limit, Total: len(rows)}
	from := min(q.Offset, len(rows))
	rep.Rows = rows[from:min(from+q.Limit, len(rows)):min(from+q.Limit, len(rows))]
	return rep
}

// Build makes the report q asks for from src.
func Build(src Source, q Query) (rep Report, err error) {
	if err := q.validate(true); err != nil {
		return Report{}, err
	}
	skipped, err := src.Skips()
	if err != nil {
		return Report{}, err
	}
	rep = Report{Kind: q.Kind, Skipped: skipped, TZ: src.Location().String()}
	defer func() {
		if err == nil && rowCount(rep.Rows) == 0 {
			rep.Coverage, err = coverage(src)
		}
	}()
	if c, ok := src.(interface {
		Corrections() (storage.Corrections, error)
	}); ok {
		if rep.Corrected, err = c.Corrections(); err != nil {
			return Report{}, err
		}
	}
	if q.Kind == "session" {
		rows, totals, err := sessionRows(src, q)
		rep.Rows, rep.Totals = rows, SumsOf(totals)
		return rep, err
	}
	if q.Kind == "weekly" {
		// Whole ISO weeks, so that each row and its trend compare like
		// with like: --since moves back to its Monday, --until on to its Sunday.
		if q.Since != MinDay {
			q.Since = storage.WeekStart(q.Since)
		}
		if q.Until != MaxDay {
			q.Until = storage.WeekStart(q.Until) + 6
		}
	}
	from := q.Since
	if q.Kind == "weekly" && from != MinDay {
		from = q.Since - 7 // the week before the first, for its trend
	}
	kind := byte(storage.DimModel)
	switch q.Kind {
	case "agent":
		kind = storage.DimAgent
	case "user":
		kind = storage.DimUser
	}
	var rows []storage.Row
	if q.Filter.Empty() {
		rows, err = dimRows(src, kind, from, q.Until)
	} else {
		rows, err = filteredRows(src, q.Filter, from, q.Until)
	}
	if err != nil {
		return Report{}, err
	}
	var totals storage.Totals
	for _, r := range rows {
		if r.Period >= q.Since {
			totals.Add(r.Totals)
		}
	}
	rep.Totals = SumsOf(totals)
	switch q.Kind {
	case "daily":
		rep.Rows = byPeriod(rows, q.Since, func(d int32) int32 { return d }, func(p int32, s Sums, m []string) DailyRow {
			return DailyRow{Date: storage.DayString(p), Sums: s, Models: m}
		})
	case "monthly":
		rep.Rows = byPeriod(rows, q.Since, monthOf, func(p int32, s Sums, m []string) MonthlyRow {
			return MonthlyRow{Month: storage.DayString(p)[:7], Sums: s, Models: m}
		})
	case "weekly":
		rep.Rows = weeklyRows(rows, q.Since)
	case "agent":
		rep.Rows = agentRows(rows, q.Since)
	case "user":
		labels, err := src.UserLabels()
		if err != nil {
			return Report{}, err
		}
		rep.Rows = userRows(rows, q.Since, labels)
	case "model":
		rep.Rows = modelRows(rows, q.Since)
	}
	return rep, nil
}

func monthOf(day int32) int32 {
	y, m, _ := storage.DayDate(day).Date()
	return storage.DayOfDate(y, m, 1)
}

// group accumulates totals and the set of names seen.
type group struct {
	t     storage.Totals
	names map[string]bool
}

func (g *group) add(t storage.Totals, name string) {
	g.t.Add(t)
	if g.names == nil {
		g.names = map[string]bool{}
	}
	g.names[name] = true
}

func (g *group) list() []string {
	out := make([]string, 0, len(g.names))
	for n := range g.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func modelName(d storage.Dim) string { return d.Provider + "/" + d.Model }

// byPeriod groups rows by period(day), in time order.
func byPeriod[T any](rows []storage.Row, since int32, period func(int32) int32, mk func(int32, Sums, []string) T) []T {
	groups := map[int32]*group{}
	for _, r := range rows {
		if r.Period < since {
			continue
		}
		p := period(r.Period)
		if groups[p] == nil {
			groups[p] = &group{}
		}
		groups[p].add(r.Totals, modelName(r.Dim))
	}
	keys := make([]int32, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		out = append(out, mk(k, SumsOf(groups[k].t), groups[k].list()))
	}
	return out
}

func weeklyRows(rows []storage.Row, since int32) []WeeklyRow {
	cost := map[int32]int64{} // whole-week cost, including days before --since, for the trend
	for _, r := range rows {
		cost[storage.WeekStart(r.Period)] += r.CostNanos
	}
	out := byPeriod(rows, since, storage.WeekStart, func(p int32, s Sums, m []string) WeeklyRow {
		return WeeklyRow{WeekStart: storage.DayString(p), Sums: s, Models: m}
	})
	for i := range out {
		w, _ := storage.ParseDay(out[i].WeekStart)
		prev := cost[w-7]
		out[i].PreviousWeekCostUSD = storage.USD(prev)
		out[i].CostChangeUSD = storage.USD(cost[w] - prev)
		if prev != 0 {
			pct := float64(cost[w]-prev) / float64(prev) * 100
			out[i].CostChangePct = &pct
		}
	}
	return out
}

// byCost orders leaderboard rows: most expensive first, then most tokens.
func byCost(a, b Sums) int {
	switch {
	case a.CostUSD != b.CostUSD:
		if a.CostUSD > b.CostUSD {
			return -1
		}
		return 1
	case a.TotalTokens != b.TotalTokens:
		if a.TotalTokens > b.TotalTokens {
			return -1
		}
		return 1
	}
	return 0
}

func agentRows(rows []storage.Row, since int32) []AgentRow {
	groups := map[[2]string]*group{}
	for _, r := range rows {
		if r.Period < since {
			continue
		}
		k := [2]string{r.Source, r.Agent}
		if groups[k] == nil {
			groups[k] = &group{}
		}
		groups[k].add(r.Totals, "")
	}
	out := make([]AgentRow, 0, len(groups))
	for k, g := range groups {
		out = append(out, AgentRow{Source: k[0], Agent: k[1], Sums: SumsOf(g.t)})
	}
	sort.Slice(out, func(i, j int) bool {
		if c := byCost(out[i].Sums, out[j].Sums); c != 0 {
			return c < 0
		}
		return out[i].Source+"\x00"+out[i].Agent < out[j].Source+"\x00"+out[j].Agent
	})
	return out
}

func userRows(rows []storage.Row, since int32, labels map[string]string) []UserRow {
	groups := map[string]*group{}
	for _, r := range rows {
		if r.Period < since {
			continue
		}
		if groups[r.User] == nil {
			groups[r.User] = &group{}
		}
		groups[r.User].add(r.Totals, r.Agent)
	}
	out := make([]UserRow, 0, len(groups))
	for u, g := range groups {
		out = append(out, UserRow{User: u, UserLabel: labels[u], Sums: SumsOf(g.t), Agents: g.list()})
	}
	sort.Slice(out, func(i, j int) bool {
		if c := byCost(out[i].Sums, out[j].Sums); c != 0 {
			return c < 0
		}
		return out[i].User < out[j].User
	})
	return out
}

func modelRows(rows []storage.Row, since int32) []ModelRow {
	groups := map[[2]string]*storage.Totals{}
	for _, r := range rows {
		if r.Period < since {
			continue
		}
		k := [2]string{r.Provider, r.Model}
		if groups[k] == nil {
			groups[k] = &storage.Totals{}
		}
		groups[k].Add(r.Totals)
	}
	out := make([]ModelRow, 0, len(groups))
	for k, t := range groups {
		out = append(out, ModelRow{Provider: k[0], Model: k[1], Sums: SumsOf(*t)})
	}
	sort.Slice(out, func(i, j int) bool {
		if c := byCost(out[i].Sums, out[j].Sums); c != 0 {
			return c < 0
		}
		return modelName(storage.Dim{Provider: out[i].Provider, Model: out[i].Model}) <
			modelName(storage.Dim{Provider: out[j].Provider, Model: out[j].Model})
	})
	return out
}

// sessionRows lists sessions whose last activity falls in the range, most
// recent first.
func sessionRows(src Source, q Query) ([]SessionRow, storage.Totals, error) {
	loc := src.Location()
	var total storage.Totals
	out := []SessionRow{}
	err := eachSession(src, func(s *storage.Session) error {
		day := storage.DayNumber(s.LastTS, loc)
		if day < q.Since || day > q.Until {
			return nil
		}
		if !q.Filter.keepsSession(s) {
			return nil
		}
		row := sessionRow(s, loc, func(m string) bool {
			provider, model, _ := strings.Cut(m, "/")
			return q.Filter.keepsModel(provider, model)
		})
		if row.totals.IsZero() {
			return nil
		}
		total.Add(row.totals)
		out = append(out, row)
		return nil
	})
	if err != nil {
		return nil, storage.Totals{}, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].lastTS != out[j].lastTS {
			return out[i].lastTS > out[j].lastTS
		}
		return out[i].SessionID < out[j].SessionID
	})
	return out, total, nil
}

// dimRows reads daily rows with the source's unmapped scan when it has one
// (the database: a report then does not leave the pages it read resident).
func dimRows(src Source, kind byte, from, to int32) ([]storage.Row, error) {
	if s, ok := src.(interface {
		ScanDimRows(kind byte, from, to int32) ([]storage.Row, error)
	}); ok {
		return s.ScanDimRows(kind, from, to)
	}
	return src.DimRows(kind, from, to)
}

// eachSession streams the sessions of src when it can (the database
// decodes one at a time), else walks the list it returns.
func eachSession(src Source, fn func(*storage.Session) error) error {
	if st, ok := src.(interface {
		EachSession(func(*storage.Session) error) error
	}); ok {
		return st.EachSession(fn)
	}
	sessions, err := src.Sessions()
	if err != nil {
		return err
	}
	for i := range sessions {
		if err := fn(&sessions[i]); err != nil {
			return err
		}
	}
	return nil
}

// DecodeReport reads a report back from its JSON (as the daemon's API
// sends it), so the CLI can print it as a table.
func DecodeReport(kind string, data []byte) (Report, error) {
	key, ok := kinds[kind]
	if !ok {
		return Report{}, fmt.Errorf("unknown report %q", kind)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Report{}, fmt.Errorf("decode %s report: %w", kind, err)
	}
	rep := Report{Kind: kind}
	var rows any
	switch kind {
	case "daily":
		rows = &[]DailyRow{}
	case "weekly":
		rows = &[]WeeklyRow{}
	case "monthly":
		rows = &[]MonthlyRow{}
	case "session":
		rows = &[]SessionRow{}
	case "agent":
		rows = &[]AgentRow{}
	case "user":
		rows = &[]UserRow{}
	case "model":
		rows = &[]ModelRow{}
	}
	for _, part := range []struct {
		key string
		dst any
	}{{key, rows}, {"totals", &rep.Totals}, {"skipped", &rep.Skipped}, {"corrected", &rep.Corrected}} {
		if raw[part.key] == nil && part.key == "corrected" {
			continue // a daemon from before corrections were counted
		}
		if err := json.Unmarshal(raw[part.key], part.dst); err != nil {
			return Report{}, fmt.Errorf("decode %s report %q: %w", kind, part.key, err)
		}
	}
	if tz, ok := raw["tz"]; ok {
		if err := json.Unmarshal(tz, &rep.TZ); err != nil {
			return Report{}, fmt.Errorf("decode %s report tz: %w", kind, err)
		}
	}
	for _, part := range []struct {
		key string
		dst any
	}{{"page", &Page{}}, {"coverage", &Coverage{}}, {"top", &Top{}}} {
		p, ok := raw[part.key]
		if !ok || string(p) == "null" {
			continue
		}
		if err := json.Unmarshal(p, part.dst); err != nil {
			return Report{}, fmt.Errorf("decode %s report %s: %w", kind, part.key, err)
		}
		switch v := part.dst.(type) {
		case *Page:
			rep.Page = v
		case *Coverage:
			rep.Coverage = v
		case *Top:
			rep.Top = v
		}
	}
	rep.Rows = reflect.ValueOf(rows).Elem().Interface()
	return rep, nil
}
