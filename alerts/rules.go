package alerts

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// round is one evaluation: the clock, and the reads its rules share.
type round struct {
	e         *Engine
	now       time.Time
	nowMs     int64
	loc       *time.Location
	today     int32
	rowsFrom  int32
	rows      map[byte][]storage.Row
	hourly    map[time.Duration]map[string][]int64
	samples   []storage.HostSample
	sampled   bool
	blocks    []rollup.Block
	blocked   bool
	sessions  []sessionCost
	sessioned bool
}

func newRound(e *Engine, now time.Time) *round {
	loc := e.loc
	today := storage.DayNumber(now.UnixMilli(), loc)
	y, m, _ := storage.DayDate(today).Date()
	from := min(storage.DayOfDate(y, m, 1), storage.WeekStart(today))
	return &round{e: e, now: now, nowMs: now.UnixMilli(), loc: loc, today: today, rowsFrom: from,
		rows: map[byte][]storage.Row{}, hourly: map[time.Duration]map[string][]int64{}}
}

func (r *round) evaluate(ru *rule) ([]Observation, Figures, error) {
	switch ru.Type {
	case TypeBudget:
		return r.budget(ru)
	case TypeProjection:
		return r.projection(ru)
	case TypeRunaway:
		return r.runaway(ru)
	case TypeSessionCost:
		return r.sessionCost(ru)
	case TypeUnpriced:
		return r.unpriced(ru)
	case TypeQuota:
		return r.quota(ru)
	case TypeHost:
		return r.host(ru)
	case TypePipeline:
		return r.pipeline(ru)
	case TypeAudit:
		return r.audit(ru)
	}
	return nil, Figures{}, fmt.Errorf("unknown type %q", ru.Type)
}

// dimRows are this round's daily rows of a projection, from the start of
// the month or the week (whichever is earlier) to tomorrow.
func (r *round) dimRows(kind byte) ([]storage.Row, error) {
	if rows, ok := r.rows[kind]; ok {
		return rows, nil
	}
	rows, err := r.e.d.Data.DimRows(kind, r.rowsFrom, r.today+1)
	if err != nil {
		return nil, err
	}
	r.rows[kind] = rows
	return rows, nil
}

// scopeKind is the daily_dims projection that holds a scope's figures.
func scopeKind(sc scope) byte {
	switch sc.kind {
	case ScopeUser:
		return storage.DimUser
	case ScopeModel, ScopeProvider:
		return storage.DimModel
	}
	return storage.DimAgent
}

// match accepts the dimensions of a scope.
func (r *round) match(sc scope) func(storage.Dim) bool {
	v := sc.value
	switch sc.kind {
	case ScopeAgent:
		return func(d storage.Dim) bool { return d.Agent == v }
	case ScopeTeam:
		teams := r.e.d.Teams
		return func(d storage.Dim) bool { return teams.TeamOf(d.Agent) == v }
	case ScopeUser:
		return func(d storage.Dim) bool { return d.User == v }
	case ScopeModel:
		return func(d storage.Dim) bool { return d.Provider+"/"+d.Model == v }
	case ScopeProvider:
		return func(d storage.Dim) bool { return d.Provider == v }
	}
	return func(storage.Dim) bool { return true }
}

// scopeText names a scope in a message (names escaped).
func scopeText(sc scope) string {
	if sc.kind == ScopeHost {
		return "The fleet"
	}
	return fmt.Sprintf("%s %s", capital(sc.kind), rollup.Clean(sc.value))
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// period is a calendar budget's current period: its first and last day,
// its end (unix ms) and its name.
type period struct {
	fromDay, toDay int32
	end            time.Time
	key            string
	word           string
}

func (r *round) period(p string) period {
	switch p {
	case "week":
		ws := storage.WeekStart(r.today)
		y, w := storage.DayDate(ws).ISOWeek()
		return period{ws, ws + 6, time.UnixMilli(storage.DayStartMillis(ws+7, r.loc)), fmt.Sprintf("%d-W%02d", y, w), "weekly"}
	case "month":
		y, m, _ := storage.DayDate(r.today).Date()
		first, next := storage.DayOfDate(y, m, 1), storage.DayOfDate(y, m+1, 1)
		return period{first, next - 1, time.UnixMilli(storage.DayStartMillis(next, r.loc)), fmt.Sprintf("%d-%02d", y, m), "monthly"}
	}
	return period{r.today, r.today, time.UnixMilli(storage.DayStartMillis(r.today+1, r.loc)), storage.DayString(r.today), "daily"}
}

// spent is what a scope spent in a budget's window, in nano-dollars.
func (r *round) spent(ru *rule) (int64, period, error) {
	if ru.Period == "rolling" {
		s := r.e.index.Spend(r.nowMs-ru.Window.Milliseconds(), r.nowMs+1, r.match(ru.scope))
		return s.CostNanos, period{word: "rolling " + rollup.Duration(ru.Window)}, nil
	}
	p := r.period(ru.Period)
	rows, err := r.dimRows(scopeKind(ru.scope))
	if err != nil {
		return 0, p, err
	}
	match := r.match(ru.scope)
	var n int64
	for i := range rows {
		if rows[i].Period >= p.fromDay && rows[i].Period <= p.toDay && match(rows[i].Dim) {
			n += rows[i].CostNanos
		}
	}
	return n, p, nil
}

func ptr[T any](v T) *T { return &v }

func (r *round) budget(ru *rule) ([]Observation, Figures, error) {
	nanos, p, err := r.spent(ru)
	if err != nil {
		return nil, Figures{}, err
	}
	spent := storage.USD(nanos)
	pct := 100 * spent / ru.AmountUSD
	when := ""
	if p.key != "" {
		when = " (" + p.key + ")"
	}
	head := Figures{Value: spent, Threshold: ru.AmountUSD, Unit: "usd", AmountUSD: ptr(spent), BudgetUSD: ptr(ru.AmountUSD), PercentUsed: ptr(pct),
		Summary: fmt.Sprintf("%s spent %s of its %s %s budget%s: %.0f%%.", scopeText(ru.scope), rollup.USD(spent), rollup.USD(ru.AmountUSD), p.word, when, pct)}
	obs := make([]Observation, 0, len(ru.Tiers))
	for _, tier := range ru.Tiers {
		limit := ru.AmountUSD * tier / 100
		f := head
		f.Threshold = limit
		obs = append(obs, Observation{
			Key: fmt.Sprintf("%g%%", tier), Firing: spent >= limit,
			// A rolling window has no period to hold a tier: it resolves
			// once spend is 10 % under it.
			Clear: spent < limit*0.9, Event: true, Period: p.key, Figures: f,
		})
	}
	return obs, head, nil
}

// projection: at the burn rate of the last fast and slow windows (the
// lower of the two, so a short spike alone does not fire, as in SRE
// multi-window burn-rate alerts), the budget is crossed before the period
// ends. Fires once per period.
func (r *round) projection(ru *rule) ([]Observation, Figures, error) {
	nanos, p, err := r.spent(ru)
	if err != nil {
		return nil, Figures{}, err
	}
	spent := storage.USD(nanos)
	match := r.match(ru.scope)
	rate := func(w time.Duration) float64 { // USD per hour
		s := r.e.index.Spend(r.nowMs-w.Milliseconds(), r.nowMs+1, match)
		return storage.USD(s.CostNanos) / w.Hours()
	}
	burn := min(rate(ru.FastWindow), rate(ru.SlowWindow))
	left := max(0, p.end.Sub(r.now).Hours())
	projected := spent + burn*left
	f := Figures{Value: projected, Threshold: ru.AmountUSD, Unit: "usd", AmountUSD: ptr(spent), BudgetUSD: ptr(ru.AmountUSD),
		PercentUsed: ptr(100 * spent / ru.AmountUSD), ProjectedTotalUSD: ptr(projected)}
	firing := burn > 0 && projected >= ru.AmountUSD
	switch {
	case spent >= ru.AmountUSD:
		f.Summary = fmt.Sprintf("%s has spent %s, past its %s %s budget (%s); at %s/h it ends the period near %s.",
			scopeText(ru.scope), rollup.USD(spent), rollup.USD(ru.AmountUSD), p.word, p.key, rollup.USD(burn), rollup.USD(projected))
	case firing:
		at := r.now.Add(time.Duration((ru.AmountUSD - spent) / burn * float64(time.Hour))).Truncate(time.Minute)
		f.ProjectedAt = &at
		f.Summary = fmt.Sprintf("At the current rate (%s/h), %s reaches its %s %s budget at %s, ending the period near %s (%s spent so far).",
			rollup.USD(burn), lower(scopeText(ru.scope)), rollup.USD(ru.AmountUSD), p.word, at.In(r.loc).Format("Mon 15:04 MST"), rollup.USD(projected), rollup.USD(spent))
	default:
		f.Summary = fmt.Sprintf("At %s/h, %s ends the period near %s of its %s %s budget.", rollup.USD(burn), lower(scopeText(ru.scope)), rollup.USD(projected), rollup.USD(ru.AmountUSD), p.word)
	}
	return []Observation{{Firing: firing, Clear: !firing, Event: true, Period: p.key, Figures: f}}, f, nil
}

func lower(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'A'+'a') + s[1:]
}

// runaway: an agent's spend over the last hour above factor × the p95 of
// its own hourly spend over the baseline before it (idle hours count as
// zero), and above a minimum. Each agent is measured against itself.
func (r *round) runaway(ru *rule) ([]Observation, Figures, error) {
	hour := time.Hour.Milliseconds()
	base, ok := r.hourly[ru.Baseline]
	if !ok {
		start := r.nowMs - hour - ru.Baseline.Milliseconds()
		base = r.e.index.HourlySpend(start, r.nowMs-hour, func(d storage.Dim) string { return d.Agent })
		r.hourly[ru.Baseline] = base
	}
	match := r.match(ru.scope)
	current := map[string]int64{}
	x := r.e.index
	x.Each(r.nowMs-hour, r.nowMs+1, func(_ int64, s *rollup.SlotSpend) {
		if d := x.Dim(s.Dim); match(d) {
			current[d.Agent] += s.CostNanos
		}
	})
	agents := make([]string, 0, len(current))
	for a := range current {
		agents = append(agents, a)
	}
	sort.Strings(agents)
	var obs []Observation
	var head Figures
	best := -1.0
	for _, agent := range agents {
		spent := storage.USD(current[agent])
		p95 := storage.USD(int64(quantile(base[agent], 0.95)))
		limit := max(ru.Factor*p95, ru.MinUSDPerHour)
		f := Figures{Value: spent, Threshold: limit, Unit: "usd_per_hour", AmountUSD: ptr(spent),
			Summary: fmt.Sprintf("Agent %s spent %s in the last hour: %.1f× its hourly p95 of %s over the last %s (limit %s/h).",
				rollup.Clean(agent), rollup.USD(spent), spent/math.Max(p95, 1e-9), rollup.USD(p95), rollup.Duration(ru.Baseline), rollup.USD(limit))}
		if p95 == 0 {
			f.Summary = fmt.Sprintf("Agent %s spent %s in the last hour; it spent nothing in the %s before (limit %s/h).",
				rollup.Clean(agent), rollup.USD(spent), rollup.Duration(ru.Baseline), rollup.USD(limit))
		}
		if spent/limit > best {
			best, head = spent/limit, f
		}
		obs = append(obs, Observation{Key: agent, Firing: spent > limit, Clear: spent < 0.8*limit, Figures: f})
	}
	if best < 0 {
		head = Figures{Unit: "usd_per_hour", Summary: "No agent in scope spent anything in the last hour."}
	}
	return obs, head, nil
}

// quantile of a series (sorted copy; nearest rank).
func quantile(series []int64, q float64) float64 {
	if len(series) == 0 {
		return 0
	}
	s := append([]int64(nil), series...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return float64(s[max(0, min(i, len(s)-1))])
}

// sessionCost: a session with a call in the window whose total cost is
// above the amount. Fires once per session.
func (r *round) sessionCost(ru *rule) ([]Observation, Figures, error) {
	if !r.sessioned {
		longest := time.Duration(0)
		for _, o := range r.e.c.rules {
			if o.Type == TypeSessionCost {
				longest = max(longest, o.Window)
			}
		}
		var err error
		if r.sessions, err = r.e.sessionCosts(r.nowMs - longest.Milliseconds()); err != nil {
			return nil, Figures{}, err
		}
		r.sessioned = true
	}
	since := r.nowMs - ru.Window.Milliseconds()
	match := r.match(ru.scope)
	var obs []Observation
	var top *sessionCost
	summary := func(s *sessionCost, cost float64) Figures {
		return Figures{Value: cost, Threshold: ru.AmountUSD, Unit: "usd", AmountUSD: ptr(cost),
			Summary: fmt.Sprintf("Session %s of agent %s (%s) has cost %s, above %s.", rollup.Clean(s.SessionID), rollup.Clean(s.Agent), s.Source, rollup.USD(cost), rollup.USD(ru.AmountUSD))}
	}
	for i := range r.sessions {
		s := &r.sessions[i]
		if s.seen.LastTS < since || !match(storage.Dim{Source: s.Source, Agent: s.Agent}) {
			continue
		}
		if top == nil || s.CostNanos > top.CostNanos {
			top = s
		}
		if cost := storage.USD(s.CostNanos); cost > ru.AmountUSD {
			obs = append(obs, Observation{Key: s.Source + ":" + s.SessionID, Firing: true, Event: true, Figures: summary(s, cost)})
		}
	}
	head := Figures{Unit: "usd", Threshold: ru.AmountUSD, Summary: fmt.Sprintf("No session active in the last %s.", rollup.Duration(ru.Window))}
	if top != nil {
		cost := storage.USD(top.CostNanos)
		head = summary(top, cost)
		if cost <= ru.AmountUSD {
			head.Summary = fmt.Sprintf("The costliest session of the last %s, %s of agent %s, is at %s (limit %s).",
				rollup.Duration(ru.Window), rollup.Clean(top.SessionID), rollup.Clean(top.Agent), rollup.USD(cost), rollup.USD(ru.AmountUSD))
		}
	}
	return obs, head, nil
}

// unpriced: tokens of a model with no price today; once per model and day.
func (r *round) unpriced(ru *rule) ([]Observation, Figures, error) {
	rows, err := r.dimRows(storage.DimModel)
	if err != nil {
		return nil, Figures{}, err
	}
	match := r.match(ru.scope)
	day := storage.DayString(r.today)
	var obs []Observation
	var total int64
	for _, row := range rows {
		if row.Period != r.today || row.UnpricedTokens == 0 || !match(row.Dim) {
			continue
		}
		total += row.UnpricedTokens
		model := row.Provider + "/" + row.Model
		obs = append(obs, Observation{Key: model + "@" + day, Firing: true, Event: true, Period: day, Figures: Figures{
			Value: float64(row.UnpricedTokens), Unit: "tokens",
			Summary: fmt.Sprintf("%d tokens of %s (%d calls) have no price today: costs are incomplete. Add a price override (fleetmeter prices).",
				row.UnpricedTokens, rollup.Clean(model), row.UnpricedMessages)}})
	}
	head := Figures{Value: float64(total), Unit: "tokens", Summary: fmt.Sprintf("%d unpriced tokens today (%d models).", total, len(obs))}
	return obs, head, nil
}

// quota: the active Claude Code 5-hour block will reach its limit (tokens
// or USD) before it ends, at its burn rate (as ccusage projects it).
func (r *round) quota(ru *rule) ([]Observation, Figures, error) {
	if ru.Source == "codex" {
		return r.codexQuota(ru)
	}
	if !r.blocked {
		r.blocks, r.blocked = rollup.Blocks(r.e.index.ClaudeCalls(), r.now), true
	}
	head := Figures{Unit: "percent", Threshold: 100, Summary: "No active Claude 5-hour block."}
	var active *rollup.Block
	for i := range r.blocks {
		if r.blocks[i].IsActive {
			active = &r.blocks[i]
		}
	}
	if active == nil {
		return nil, head, nil
	}
	used, projected, eta := 0.0, 0.0, time.Time{}
	what := ""
	check := func(cur, proj, limit, perMinute float64, unit string) {
		if limit <= 0 {
			return
		}
		if u := 100 * cur / limit; u >= used || what == "" {
			used, projected, what = u, 100*proj/limit, unit
			eta = time.Time{}
			if perMinute > 0 && cur < limit {
				eta = r.now.Add(time.Duration((limit - cur) / perMinute * float64(time.Minute)))
			}
		}
	}
	projTokens, projCost, tpm, cph := float64(active.TotalTokens), active.CostUSD, 0.0, 0.0
	if active.Projection != nil {
		projTokens, projCost = float64(active.Projection.TotalTokens), active.Projection.TotalCost
		tpm, cph = active.BurnRate.TokensPerMinute, active.BurnRate.CostPerHour
	}
	check(float64(active.TotalTokens), projTokens, float64(ru.LimitTokens), tpm, "tokens")
	check(active.CostUSD, projCost, ru.LimitUSD, cph/60, "usd")
	f := Figures{Value: used, Threshold: 100, Unit: "percent", AmountUSD: ptr(active.CostUSD), ProjectedTotalUSD: ptr(projCost)}
	f.Summary = fmt.Sprintf("Claude 5-hour block from %s to %s: %.0f%% of its %s limit used (%d tokens, %s); %.0f%% by its end at this pace.",
		active.StartTime.In(r.loc).Format("15:04"), active.EndTime.In(r.loc).Format("15:04 MST"), used, what, active.TotalTokens, rollup.USD(active.CostUSD), projected)
	if !eta.IsZero() && eta.Before(active.EndTime) {
		t := eta.Truncate(time.Minute)
		f.ProjectedAt = &t
		f.Summary += fmt.Sprintf(" Exhausted near %s.", t.In(r.loc).Format("15:04 MST"))
	}
	firing := used >= 100 || projected >= 100
	return []Observation{{Key: active.ID, Period: active.ID, Firing: firing, Clear: projected < 90, Figures: f}}, f, nil
}

// sessionCost is a session's summary as the session rules read it.
type sessionCost struct {
	storage.SessionKey
	Agent     string
	CostNanos int64
	seen      rollup.SessionSeen
}

// sessionCosts are the sessions with a call since sinceMillis, with their
// whole cost. Summaries are cached between rounds and read again only for
// sessions whose calls the spend index read again (a new call, a larger
// copy, a reprice), so a quiet minute reads none.
func (e *Engine) sessionCosts(sinceMillis int64) ([]sessionCost, error) {
	active := e.index.SessionsSince(sinceMillis)
	var stale []storage.SessionKey
	for k, seen := range active {
		if c, ok := e.sessions[k]; !ok || c.seen != seen {
			stale = append(stale, k)
		}
	}
	if len(stale) > 0 {
		sort.Slice(stale, func(i, j int) bool { // bbolt reads in key order are faster
			return stale[i].Source < stale[j].Source || stale[i].Source == stale[j].Source && stale[i].SessionID < stale[j].SessionID
		})
		read, err := e.d.Data.SessionsByKey(stale)
		if err != nil {
			return nil, err
		}
		for _, s := range read {
			k := storage.SessionKey{Source: s.Source, SessionID: s.SessionID}
			c := sessionCost{SessionKey: k, Agent: s.Agent, seen: active[k]}
			for _, t := range s.Models {
				c.CostNanos += t.CostNanos
			}
			e.sessions[k] = c
		}
	}
	out := make([]sessionCost, 0, len(active))
	for k := range active {
		if c, ok := e.sessions[k]; ok {
			out = append(out, c)
		}
	}
	for k := range e.sessions {
		if _, ok := active[k]; !ok && len(e.sessions) > 2*len(active) {
			delete(e.sessions, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Source < out[j].Source || out[i].Source == out[j].Source && out[i].SessionID < out[j].SessionID
	})
	return out, nil
}

// codexQuota: one of Codex's own rate-limit windows (the plan's 5-hour and
// weekly windows, as its logs report them) is used to the threshold. A
// window counts until it resets; each window of each reset period is one
// instance, so a warning fires once per period.
func (r *round) codexQuota(ru *rule) ([]Observation, Figures, error) {
	head := Figures{Unit: "percent", Threshold: ru.Threshold, Summary: "No Codex rate-limit window reported."}
	if r.e.d.RateLimits == nil {
		return nil, head, nil
	}
	var obs []Observation
	for _, rl := range r.e.d.RateLimits() {
		if rl.Source != "codex" || (!rl.ResetsAt.IsZero() && !rl.ResetsAt.After(r.now)) {
			continue // reset since it was reported: nothing is known of the new window
		}
		f := Figures{Value: rl.UsedPercent, Threshold: ru.Threshold, Unit: "percent"}
		f.Summary = fmt.Sprintf("Codex %s window (%s): %.0f%% used", rl.Window, windowName(rl.WindowMinutes), rl.UsedPercent)
		if !rl.ResetsAt.IsZero() {
			f.Summary += fmt.Sprintf(", resets %s", rl.ResetsAt.In(r.loc).Format("Mon 15:04 MST"))
		}
		f.Summary += "."
		period := rl.Window + "@" + rl.ResetsAt.Format(time.RFC3339)
		obs = append(obs, Observation{Key: rl.Window, Period: period, Firing: rl.UsedPercent >= ru.Threshold,
			Clear: rl.UsedPercent < ru.Threshold-5, Figures: f})
		if rl.UsedPercent >= head.Value {
			head = f
		}
	}
	return obs, head, nil
}

func windowName(minutes int64) string {
	switch {
	case minutes <= 0:
		return "unknown length"
	case minutes%(24*60) == 0:
		return fmt.Sprintf("%d days", minutes/(24*60))
	case minutes%60 == 0:
		return fmt.Sprintf("%d hours", minutes/60)
	}
	return fmt.Sprintf("%d minutes", minutes)
}
