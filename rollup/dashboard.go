package rollup

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// DashboardSource is what the dashboard reads; *storage.DB satisfies it.
type DashboardSource interface {
	CubeSource
	HourSource
	SessionSource
	HostStore
	HostSampleReader
	Skips() (storage.Skips, error)
}

// DashboardConfig holds a Dashboard's dependencies.
type DashboardConfig struct {
	// Registry returns the configured agent registry ([[agents]]): names,
	// teams and owners of agents, by id. Nil means none.
	Registry func() []storage.AgentInfo
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Advice answers the scaling advice (the Reader's, with its cache).
	Advice func(ctx context.Context) (Advice, error)
	// MaxHeavy, BusyWait and MaxStale bound the reads that scan much (the
	// sessions), as ReaderConfig's do.
	MaxHeavy int
	BusyWait time.Duration
	MaxStale time.Duration
}

// Dashboard answers the local web UI's questions: usage totals and series
// with filters and groupings, leaderboards against the period before,
// sessions and their calls, the host's series with the fleet's cost on
// the same time axis, and the overview. It reads the database through
// in-memory indexes kept up to date incrementally (cube.go, hours.go,
// sessions.go), so a question costs about the same whatever the size of
// the ledger. Safe for concurrent use.
type Dashboard struct {
	src   DashboardSource
	cfg   DashboardConfig
	cube  *cube
	hours *hourIndex
	sess  *sessionIndex
	slots slotPoints
	cache *resultCache
}

// NewDashboard reads src.
func NewDashboard(src DashboardSource, cfg DashboardConfig) *Dashboard {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registry == nil {
		cfg.Registry = func() []storage.AgentInfo { return nil }
	}
	if cfg.Advice == nil {
		cfg.Advice = func(context.Context) (Advice, error) { return Advice{}, badQuery("no advice here") }
	}
	return &Dashboard{
		src: src, cfg: cfg,
		cube:  newCube(src, cfg.Now),
		hours: newHourIndex(src, cfg.Now),
		sess:  newSessionIndex(src, cfg.Now),
		cache: newResultCache(cfg.MaxHeavy, cfg.BusyWait, cfg.MaxStale),
	}
}

// Location is the zone the dashboard cuts days in.
func (d *Dashboard) Location() *time.Location { return d.src.Location() }

// Today is the current day number in the dashboard's zone.
func (d *Dashboard) Today() int32 {
	return storage.DayNumber(d.cfg.Now().UnixMilli(), d.src.Location())
}

// registry is the agent registry by id.
func (d *Dashboard) registry() map[string]storage.AgentInfo {
	out := map[string]storage.AgentInfo{}
	for _, a := range d.cfg.Registry() {
		out[a.ID] = a
	}
	return out
}

// Usage answers a usage query: its totals, and its rows grouped as asked
// (time groups in time order with every period present, name groups by
// cost, most expensive first).
func (d *Dashboard) Usage(ctx context.Context, q UsageQuery) (Usage, error) {
	if err := q.Validate(); err != nil {
		return Usage{}, err
	}
	reg := d.registry()
	if err := checkTeam(reg, q.Team); err != nil {
		return Usage{}, err
	}
	loc := d.src.Location()
	out := Usage{Range: spanOf(q.From, q.To, q.Name, loc), GroupBy: q.GroupBy, Filters: q.Filters}
	var got map[string]*UsageRow
	var total storage.Totals
	var err error
	if q.GroupBy == "hour" {
		got, total, err = d.hourly(q, reg)
	} else {
		got, total, err = d.grouped(q, reg)
	}
	if err != nil {
		return Usage{}, err
	}
	out.Totals = SumsOf(total)
	if timeGroup(q.GroupBy) {
		out.Rows = mergePeriods(periods(q.GroupBy, q.From, q.To, loc), got)
		return out, nil
	}
	out.Rows = make([]UsageRow, 0, len(got))
	for _, r := range got {
		out.Rows = append(out.Rows, *r)
	}
	sortRows(out.Rows, false)
	return out, nil
}

// grouped sums the cube's rows of q's days that match q's filters under
// q's grouping.
func (d *Dashboard) grouped(q UsageQuery, reg map[string]storage.AgentInfo) (map[string]*UsageRow, storage.Totals, error) {
	g := newGrouper()
	var total storage.Totals
	c := d.cube
	m := &matcher{f: q.Filters, reg: reg, names: &c.names}
	var labels map[string]string
	sources := map[string][]string{} // agent → its sources
	loc := d.src.Location()
	keyDay, dayKey := int32(MinDay), "" // the last day's key: formatting one per row costs
	err := c.each(q.From, q.To, func(day int32, r *cubeRow) {
		if labels == nil && q.GroupBy == "user" { // c.mu is held
			labels, _ = c.userLabels()
		}
		if !m.match(r) {
			return
		}
		total.Add(r.t)
		a := c.names.agents[r.agent]
		switch q.GroupBy {
		case "day":
			if day != keyDay {
				keyDay, dayKey = day, storage.DayString(day)
			}
			g.add(dayKey, r.t, nil)
		case "week":
			w := storage.WeekStart(day)
			g.add(storage.DayString(w), r.t, func() UsageRow { return UsageRow{Start: storage.DayStartMillis(w, loc) / 1000} })
		case "agent":
			if !slices.Contains(sources[a.agent], a.source) {
				sources[a.agent] = append(sources[a.agent], a.source)
			}
			g.add(a.agent, r.t, func() UsageRow {
				return UsageRow{Label: reg[a.agent].Name, Team: reg[a.agent].Team}
			})
		case "user":
			u := c.names.users[r.user]
			g.add(u, r.t, func() UsageRow { return UsageRow{Label: labels[u]} })
		case "model":
			g.add(c.names.models[r.model], r.t, nil)
		case "team":
			g.add(teamOf(reg, a.agent), r.t, nil)
		}
	})
	if err != nil {
		return nil, storage.Totals{}, err
	}
	rows := g.rows()
	for agent, srcs := range sources {
		sort.Strings(srcs)
		rows[agent].Source = strings.Join(srcs, ",")
	}
	return rows, total, nil
}
