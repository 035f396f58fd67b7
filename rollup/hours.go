package rollup

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// HourSource is what the hour index reads; *storage.DB satisfies it.
type HourSource interface {
	LedgerFacts(fromMillis, toMillis int64, fn func(*storage.Fact) error) error
	DimRows(kind byte, from, to int32) ([]storage.Row, error)
	Location() *time.Location
	DataVersion() (uint64, error)
}

// hourDays is how many days, today included, the hour index holds: the
// longest range group_by=hour and the host page's hourly cost cover.
const hourDays = MaxHourDays + 1

// hourIndex holds the fleet's usage per hour and agent for the last days,
// from the ledger (rollups hold no hours). It is kept equal to the ledger
// as the spend index is: a day whose totals by agent (messages, cost,
// tokens) differ from what it holds is read again, the last minutes
// first. Hour rows carry messages, tokens, cost and its four parts and
// unpriced figures; the ledger read it uses does not decode reasoning
// tokens or server-tool cost, which stay 0 in hourly rows.
type hourIndex struct {
	src HourSource
	now func() time.Time

	mu      sync.Mutex
	names   cubeNames // agents only
	hours   map[int64][]hourCell
	days    map[int32]dayCheck
	version uint64
	last    time.Time // the last refresh that read the ledger
	reads   int       // ledger reads, for tests
}

type hourCell struct {
	agent uint32
	t     storage.Totals
}

func newHourIndex(src HourSource, now func() time.Time) *hourIndex {
	return &hourIndex{src: src, now: now, hours: map[int64][]hourCell{}, days: map[int32]dayCheck{}}
}

// each calls fn for every cell of the hours of days from..to (within the
// index's days), with the hour's start (unix ms). fn runs under the lock.
func (x *hourIndex) each(from, to int32, fn func(hour int64, agent agentKey, t *storage.Totals)) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.refresh(); err != nil {
		return err
	}
	loc := x.src.Location()
	end := storage.DayStartMillis(to+1, loc)
	for h := storage.DayStartMillis(from, loc); h < end; h += time.Hour.Milliseconds() {
		cells := x.hours[h]
		for i := range cells {
			fn(h, x.names.agents[cells[i].agent], &cells[i].t)
		}
	}
	return nil
}

// refresh brings the index up to the ledger. x.mu is held.
func (x *hourIndex) refresh() error {
	v, err := x.src.DataVersion()
	if err != nil {
		return fmt.Errorf("hourly usage: %w", err)
	}
	if v == x.version && !x.last.IsZero() {
		return nil
	}
	loc := x.src.Location()
	now := x.now()
	today := storage.DayNumber(now.UnixMilli(), loc)
	first := today - hourDays + 1
	cut := storage.DayStartMillis(first, loc)
	for h := range x.hours {
		if h < cut {
			delete(x.hours, h)
		}
	}
	for day := range x.days {
		if day < first {
			delete(x.days, day)
		}
	}
	var tail int64 // the first refresh: none
	if !x.last.IsZero() {
		tail = x.last.Add(-tailSlack).UnixMilli()
	}
	// today+1: calls stamped a little ahead of this clock.
	if err := squareDays(x.src, first, today+1, x.days, tail, func(day int32, from int64) error { return x.read(day, from, loc) }); err != nil {
		return fmt.Errorf("hourly usage: %w", err)
	}
	x.version, x.last = v, now
	return nil
}

// read replaces the hours of day from the hour holding fromMillis to the
// day's end with the ledger's calls, and records the day's check.
func (x *hourIndex) read(day int32, fromMillis int64, loc *time.Location) error {
	hour := time.Hour.Milliseconds()
	dayStart := storage.DayStartMillis(day, loc)
	from, to := fromMillis-mod(fromMillis-dayStart, hour), storage.DayStartMillis(day+1, loc) // local hours
	for h := range x.hours {
		if h >= from && h < to {
			delete(x.hours, h)
		}
	}
	x.reads++
	pos := map[[2]int64]int{} // hour, agent → index in the hour's cells
	err := x.src.LedgerFacts(from, to, func(f *storage.Fact) error {
		h := f.TS - mod(f.TS-dayStart, hour)
		a := x.names.agent(f.Source, f.Agent)
		k := [2]int64{h, int64(a)}
		i, ok := pos[k]
		if !ok {
			i = len(x.hours[h])
			pos[k] = i
			x.hours[h] = append(x.hours[h], hourCell{agent: a})
		}
		x.hours[h][i].t.Add(f.Totals)
		return nil
	})
	if err != nil {
		delete(x.days, day) // half read: read it whole next time
		return fmt.Errorf("read %s: %w", storage.DayString(day), err)
	}
	var check dayCheck
	for h := dayStart; h < to; h += hour {
		for _, c := range x.hours[h] {
			check.messages += c.t.Messages
			check.costNanos += c.t.CostNanos
			check.tokens += c.t.TotalTokens()
		}
	}
	x.days[day] = check
	return nil
}

// maxScanDays bounds an hourly question filtered by user or model: the
// index holds agents only, so those read the ledger of their range.
const maxScanDays = 2

// hourly groups q's calls by hour: from the index, or for a user or model
// filter from the ledger.
func (d *Dashboard) hourly(q UsageQuery, reg map[string]storage.AgentInfo) (map[string]*UsageRow, storage.Totals, error) {
	loc := d.src.Location()
	g := newGrouper()
	var total storage.Totals
	add := func(h int64, t *storage.Totals) {
		total.Add(*t)
		g.add(hourKey(h, loc), *t, func() UsageRow { return UsageRow{Start: h / 1000} })
	}
	agentOK := func(a string) bool {
		return (q.Agent == "" || a == q.Agent) && (q.Team == "" || reg[a].Team == q.Team)
	}
	if q.User == "" && q.Model == "" {
		err := d.hours.each(q.From, q.To, func(h int64, a agentKey, t *storage.Totals) {
			if agentOK(a.agent) {
				add(h, t)
			}
		})
		return g.rows(), total, err
	}
	if q.To-q.From+1 > maxScanDays {
		return nil, total, badQuery("group_by=hour with a user or model filter covers at most %d days", maxScanDays)
	}
	key := fmt.Sprintf("hourscan|%d|%d|%s", q.From, q.To, q.Filters.describe())
	type scanned struct {
		rows  map[string]*UsageRow
		total storage.Totals
	}
	res, err := cached(context.Background(), d.cache, d.src, key, laneDefault, func() (scanned, error) {
		hour := time.Hour.Milliseconds()
		err := d.src.LedgerFacts(storage.DayStartMillis(q.From, loc), storage.DayStartMillis(q.To+1, loc), func(f *storage.Fact) error {
			if (q.User != "" && f.User != q.User) || (q.Model != "" && modelName(f.Dim) != q.Model) || !agentOK(f.Agent) {
				return nil
			}
			dayStart := storage.DayStartMillis(storage.DayNumber(f.TS, loc), loc)
			add(f.TS-mod(f.TS-dayStart, hour), &f.Totals)
			return nil
		})
		return scanned{g.rows(), total}, err
	})
	return res.rows, res.total, err
}
