package rollup

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Agent statuses on the Agents page.
const (
	AgentActive  = "active"  // a call in the last ActiveWindow
	AgentIdle    = "idle"    // seen, but not lately
	AgentPlanned = "planned" // in the registry, never seen
)

// ActiveWindow is how recent a call makes an agent active: the window the
// host sampler counts active sessions in.
const ActiveWindow = 15 * time.Minute

// FleetAgent is one agent of the fleet: found in the data, listed in the
// registry, or both.
type FleetAgent struct {
	ID         string     `json:"id"`
	Name       string     `json:"name,omitempty"` // the registry's display name
	Team       string     `json:"team,omitempty"`
	Owner      string     `json:"owner,omitempty"`
	Configured bool       `json:"configured"` // listed in the registry
	Sources    []string   `json:"sources"`    // where its calls were read
	Status     string     `json:"status"`     // active, idle, planned
	LastCall   *time.Time `json:"last_call"`  // null when never seen, or not in the last 100 days
	LastDay    string     `json:"last_day"`   // the last day with a call (YYYY-MM-DD), "" when never seen
	Sessions   int        `json:"sessions"`   // sessions whose last activity is in the range
	Sums
}

// Fleet is the Agents page: every agent with its figures over the range,
// and the cost by team.
type Fleet struct {
	Range  Span         `json:"range"`
	Agents []FleetAgent `json:"agents"`
	Teams  []UsageRow   `json:"teams"`
}

// Fleet answers the Agents page for q's range (q's filters and grouping
// are not used).
func (d *Dashboard) Fleet(ctx context.Context, q UsageQuery) (Fleet, error) {
	q.Filters, q.GroupBy = Filters{}, "agent"
	byAgent, err := d.Usage(ctx, q)
	if err != nil {
		return Fleet{}, err
	}
	q.GroupBy = "team"
	byTeam, err := d.Usage(ctx, q)
	if err != nil {
		return Fleet{}, err
	}
	reg := d.registry()
	loc := d.src.Location()
	out := Fleet{Range: byAgent.Range, Teams: byTeam.Rows}
	agents := map[string]*FleetAgent{}
	get := func(id string) *FleetAgent {
		a := agents[id]
		if a == nil {
			r, ok := reg[id]
			a = &FleetAgent{ID: id, Name: r.Name, Team: r.Team, Owner: r.Owner, Configured: ok, Sources: []string{}}
			agents[id] = a
		}
		return a
	}
	for _, r := range byAgent.Rows {
		get(r.Key).Sums = r.Sums
	}
	for id := range reg {
		get(id)
	}
	// Sessions and last calls from the session index.
	from, to := storage.DayStartMillis(q.From, loc), storage.DayStartMillis(q.To+1, loc)
	x := d.sess
	if err := x.use(); err != nil {
		return Fleet{}, err
	}
	last := make([]int64, len(x.names.agents)) // by agent number
	count := make([]int, len(x.names.agents))
	for i := range x.entries {
		e := &x.entries[i]
		last[e.agent] = max(last[e.agent], e.last)
		if e.last >= from && e.last < to {
			count[e.agent]++
		}
	}
	keys := slices.Clone(x.names.agents)
	x.mu.Unlock()
	for i, k := range keys {
		ts := last[i]
		if ts == 0 {
			continue
		}
		a := get(k.agent)
		a.Sessions += count[i]
		a.Sources = append(a.Sources, k.source)
		if a.LastCall == nil || a.LastCall.UnixMilli() < ts {
			t := time.UnixMilli(ts).In(loc)
			a.LastCall = &t
		}
	}
	// Agents the session index has not seen may have calls from before
	// its days: the daily rows by agent say which day was their last.
	var unseen bool
	for _, a := range agents {
		if a.LastCall != nil {
			a.LastDay = storage.DayString(storage.DayNumber(a.LastCall.UnixMilli(), loc))
		}
		unseen = unseen || a.LastCall == nil
	}
	if unseen {
		rows, err := d.src.DimRows(storage.DimAgent, MinDay, MaxDay)
		if err != nil {
			return Fleet{}, fmt.Errorf("agents: %w", err)
		}
		for _, r := range rows { // oldest day first
			if a := agents[r.Agent]; a != nil && a.LastCall == nil && r.Messages > 0 {
				a.LastDay = storage.DayString(r.Period)
			}
		}
	}
	now := d.cfg.Now()
	for _, a := range agents {
		sort.Strings(a.Sources)
		switch {
		case a.LastDay == "":
			a.Status = AgentPlanned
		case a.LastCall != nil && now.Sub(*a.LastCall) <= ActiveWindow:
			a.Status = AgentActive
		default:
			a.Status = AgentIdle
		}
		out.Agents = append(out.Agents, *a)
	}
	sort.Slice(out.Agents, func(i, j int) bool {
		if c := byCost(out.Agents[i].Sums, out.Agents[j].Sums); c != 0 {
			return c < 0
		}
		return out.Agents[i].ID < out.Agents[j].ID
	})
	return out, nil
}
