package rollup

import (
	"fmt"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// CubeSource is what the usage cube reads; *storage.DB satisfies it.
type CubeSource interface {
	DailyRows(from, to int32) ([]storage.Row, error)
	DimRows(kind byte, from, to int32) ([]storage.Row, error)
	UserLabels() (map[string]string, error)
	Location() *time.Location
	DataVersion() (uint64, error)
}

// cube holds the daily rollup rows of the recent days in memory, with
// names as small numbers, so that any filter and grouping of a usage
// question is a pass over a few thousand rows instead of a decode of the
// database's (a day of a 50-agent fleet is ~1,000 rows; reading them
// costs ~1 µs each, scanning them here ~10 ns).
//
// It stays equal to the database: a day is read again when the data
// version moved and the day's totals by model (a cheap projection) differ
// from what it holds; today and yesterday are read again on every new
// version (records move between users without changing totals when a
// bare sender id is qualified, and that happens to recent calls); and the
// whole cube is read anew after maxAge, for the rare late move of an old
// record. Days older than the window are read from the database on each
// question. After idle without a question the cube lets go of its rows.
type cube struct {
	src    CubeSource
	window int32 // days back from today kept in memory
	maxAge time.Duration
	now    func() time.Time

	mu      sync.Mutex
	names   cubeNames
	days    map[int32]*cubeDay
	labels  map[string]string // user → label, as of labelsV
	labelsV uint64
	built   time.Time
	idler
	reads int // days read from the database, for tests
}

type cubeRow struct {
	agent, user, model uint32
	t                  storage.Totals
}

type cubeDay struct {
	version uint64         // the data version the day was last known equal at
	check   storage.Totals // the day's totals when its rows were read
	rows    []cubeRow
}

type agentKey struct{ source, agent string }

// cubeNames numbers the names rows carry.
type cubeNames struct {
	agents   []agentKey
	agentIdx map[agentKey]uint32
	users    []string
	userIdx  map[string]uint32
	models   []string // provider/model
	modelIdx map[string]uint32
}

func (n *cubeNames) agent(source, agent string) uint32 {
	k := agentKey{source, agent}
	if i, ok := n.agentIdx[k]; ok {
		return i
	}
	if n.agentIdx == nil {
		n.agentIdx = map[agentKey]uint32{}
	}
	i := uint32(len(n.agents))
	n.agents = append(n.agents, k)
	n.agentIdx[k] = i
	return i
}

func intern(list *[]string, idx *map[string]uint32, s string) uint32 {
	if i, ok := (*idx)[s]; ok {
		return i
	}
	if *idx == nil {
		*idx = map[string]uint32{}
	}
	i := uint32(len(*list))
	*list = append(*list, s)
	(*idx)[s] = i
	return i
}

func (n *cubeNames) row(r *storage.Row) cubeRow {
	return cubeRow{
		agent: n.agent(r.Source, r.Agent),
		user:  intern(&n.users, &n.userIdx, r.User),
		model: intern(&n.models, &n.modelIdx, modelName(r.Dim)),
		t:     r.Totals,
	}
}

const (
	cubeWindow = 100 // days: the 90-day range and a few more
	cubeIdle   = 10 * time.Minute
	cubeMaxAge = 10 * time.Minute
)

func newCube(src CubeSource, now func() time.Time) *cube {
	return &cube{src: src, window: cubeWindow, maxAge: cubeMaxAge, now: now, idler: idler{idle: cubeIdle}}
}

// each calls fn for every row of days from..to, after bringing the days
// of the window up to the database. fn runs under the cube's lock.
func (c *cube) each(from, to int32, fn func(day int32, r *cubeRow)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touch(c.drop)
	loc := c.src.Location()
	today := storage.DayNumber(c.now().UnixMilli(), loc)
	lo := max(from, today-c.window+1)
	if lo <= to {
		if err := c.refresh(lo, to, today); err != nil {
			return err
		}
		for day := lo; day <= to; day++ {
			if d := c.days[day]; d != nil {
				for i := range d.rows {
					fn(day, &d.rows[i])
				}
			}
		}
	}
	if from < lo {
		// Older than the window: read on each question, not kept.
		rows, err := c.src.DailyRows(from, min(to, lo-1))
		if err != nil {
			return fmt.Errorf("usage: %w", err)
		}
		for i := range rows {
			r := c.names.row(&rows[i])
			fn(rows[i].Period, &r)
		}
	}
	return nil
}

// refresh brings days lo..hi up to the database's current version. c.mu is held.
func (c *cube) refresh(lo, hi, today int32) error {
	v, err := c.src.DataVersion()
	if err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	if c.days == nil || c.now().Sub(c.built) > c.maxAge {
		c.days, c.built = map[int32]*cubeDay{}, c.now()
	}
	for day := range c.days {
		if day < today-c.window+1 {
			delete(c.days, day)
		}
	}
	stale := []int32{}
	for day := lo; day <= hi; day++ {
		if d := c.days[day]; d == nil || d.version != v {
			stale = append(stale, day)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	checks, err := c.dayTotals(stale[0], stale[len(stale)-1])
	if err != nil {
		return err
	}
	for _, day := range stale {
		d := c.days[day]
		if d != nil && d.check == checks[day] && day < today-1 {
			d.version = v
			continue
		}
		rows, err := c.src.DailyRows(day, day)
		if err != nil {
			return fmt.Errorf("usage: %w", err)
		}
		c.reads++
		nd := &cubeDay{version: v, rows: make([]cubeRow, 0, len(rows))}
		for i := range rows {
			nd.check.Add(rows[i].Totals)
			nd.rows = append(nd.rows, c.names.row(&rows[i]))
		}
		if nd.check != checks[day] {
			// A commit landed between the two reads: keep the rows, but
			// do not vouch for them at this version.
			nd.version = 0
		}
		c.days[day] = nd
	}
	return nil
}

// dayTotals sums each day's rows projected on models: the cheapest read
// that changes whenever a day's records do (a call added, replaced,
// removed or repriced).
func (c *cube) dayTotals(from, to int32) (map[int32]storage.Totals, error) {
	rows, err := c.src.DimRows(storage.DimModel, from, to)
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	out := map[int32]storage.Totals{}
	for i := range rows {
		t := out[rows[i].Period]
		t.Add(rows[i].Totals)
		out[rows[i].Period] = t
	}
	return out, nil
}

// userLabels is the label of each user, reread when the data changed.
// c.mu is held.
func (c *cube) userLabels() (map[string]string, error) {
	v, err := c.src.DataVersion()
	if err != nil {
		return nil, err
	}
	if c.labels == nil || v != c.labelsV {
		if c.labels, err = c.src.UserLabels(); err != nil {
			return nil, err
		}
		c.labelsV = v
	}
	return c.labels, nil
}

// idler lets an index go of its memory when no question came for idle:
// touch on every question (under the index's lock), and drop checks idle
// (a question may have come while the timer fired).
type idler struct {
	idle    time.Duration
	lastUse time.Time
	timer   *time.Timer
}

func (i *idler) touch(drop func()) {
	i.lastUse = time.Now()
	if i.timer == nil {
		i.timer = time.AfterFunc(i.idle, drop)
		return
	}
	i.timer.Reset(i.idle)
}

func (i *idler) idleNow() bool { return time.Since(i.lastUse) >= i.idle }

// drop lets go of the rows (and names) when no question came for idle.
func (c *cube) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.idleNow() {
		return
	}
	c.days, c.names, c.labels = nil, cubeNames{}, nil
}
