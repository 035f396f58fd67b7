package rollup

import (
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// CutSource is a database whose days can be recut in another zone than
// its rollups: *storage.DB satisfies it.
type CutSource interface {
	Source
	LedgerFacts(fromMillis, toMillis int64, fn func(*storage.Fact) error) error
	LedgerSpan() (oldest, newest, prunedBefore int64, ok bool, err error)
}

// maxZones bounds the zones whose recut days are kept (each holds a few
// rows per day and dimension: ~10 MB for 400 days of a 50-agent fleet).
const maxZones = 3

// zoneCuts keeps, per zone, the daily rows recut from the ledger for the
// days reports asked for, and keeps them up to date by recutting only the
// days whose records changed: a report in another zone costs one pass
// over the ledger of its range, then only what ingest added since.
type zoneCuts struct {
	mu    sync.Mutex
	zones map[string]*zoneCut
	tick  int64
}

// zoneCut is one zone's recut days. A day of the source zone whose rows
// sum to the same totals holds the same records (a new record adds a call;
// a replacement changes the tokens), so comparing the sums tells which
// days need recutting.
type zoneCut struct {
	loc    *time.Location
	pruned int64                                             // the ledger's prune instant the rows were cut at
	sums   map[int32]storage.Totals                          // source-zone day → its totals when last compared
	done   map[int32]bool                                    // zone days cut (with or without rows)
	rows   map[byte]map[int32]map[storage.Dim]storage.Totals // kind → zone day → projected dim → totals
	names  map[string]string                                 // one copy of each name the rows hold
	used   int64
}

var cutKinds = []byte{storage.DimModel, storage.DimAgent, storage.DimUser}

// dimRows returns src's rows of days from..to of one kind, cut in loc.
func (z *zoneCuts) dimRows(src CutSource, loc *time.Location, kind byte, from, to int32) ([]storage.Row, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.zones == nil {
		z.zones = map[string]*zoneCut{}
	}
	cut := z.zones[loc.String()]
	if cut == nil {
		if len(z.zones) >= maxZones {
			var oldest string
			for name, c := range z.zones {
				if oldest == "" || c.used < z.zones[oldest].used {
					oldest = name
				}
			}
			delete(z.zones, oldest)
		}
		cut = &zoneCut{loc: loc}
		z.zones[loc.String()] = cut
	}
	z.tick++
	cut.used = z.tick
	if err := cut.update(src, from, to); err != nil {
		delete(z.zones, loc.String()) // half updated: start over next time
		return nil, err
	}
	var out []storage.Row
	for day, dims := range cut.rows[kind] {
		if day < from || day > to {
			continue
		}
		for d, t := range dims {
			out = append(out, storage.Row{Period: day, Dim: d, Totals: t})
		}
	}
	return out, nil
}

// update forgets the zone days that hold records of source days whose
// totals changed (everything when retention pruned the ledger since), then
// cuts the days of from..to not cut yet.
func (c *zoneCut) update(src CutSource, from, to int32) error {
	oldest, newest, pruned, has, err := src.LedgerSpan()
	if err != nil {
		return err
	}
	srcRows, err := dimRows(src, storage.DimModel, MinDay, MaxDay)
	if err != nil {
		return err
	}
	sums := make(map[int32]storage.Totals, len(c.sums))
	for _, r := range srcRows {
		t := sums[r.Period]
		t.Add(r.Totals)
		sums[r.Period] = t
	}
	if c.rows == nil || pruned != c.pruned {
		c.done = map[int32]bool{}
		c.rows = map[byte]map[int32]map[storage.Dim]storage.Totals{}
		for _, k := range cutKinds {
			c.rows[k] = map[int32]map[storage.Dim]storage.Totals{}
		}
		c.pruned, c.sums = pruned, sums
	}
	// Zone days touched by a changed source day are cut again.
	srcLoc := src.Location()
	forget := func(day int32) {
		first := storage.DayNumber(storage.DayStartMillis(day, srcLoc), c.loc)
		last := storage.DayNumber(storage.DayStartMillis(day+1, srcLoc)-1, c.loc)
		for d := first; d <= last; d++ {
			delete(c.done, d)
			for _, k := range cutKinds {
				delete(c.rows[k], d)
			}
		}
	}
	for day, t := range sums {
		if c.sums[day] != t {
			forget(day)
		}
	}
	for day := range c.sums {
		if _, ok := sums[day]; !ok {
			forget(day)
		}
	}
	c.sums = sums
	if !has {
		return nil
	}
	// The days asked for, within the ledger (an open range means all of it).
	from = max(from, storage.DayNumber(oldest, c.loc))
	to = min(to, storage.DayNumber(newest, c.loc))
	for day := from; day <= to; {
		if c.done[day] {
			day++
			continue
		}
		end := day
		for end+1 <= to && !c.done[end+1] {
			end++
		}
		if err := c.cut(src, day, end); err != nil {
			return err
		}
		day = end + 1
	}
	return nil
}

// cutChunk is the days of ledger one read transaction covers: a long cut
// does not hold one open for long.
const cutChunk = 30

// cut adds the records of zone days from..to to the rows.
func (c *zoneCut) cut(src CutSource, from, to int32) error {
	for start := from; start <= to; start += cutChunk {
		end := min(start+cutChunk-1, to)
		err := src.LedgerFacts(storage.DayStartMillis(start, c.loc), storage.DayStartMillis(end+1, c.loc), func(f *storage.Fact) error {
			day := storage.DayNumber(f.TS, c.loc)
			for _, k := range cutKinds {
				days := c.rows[k]
				dims := days[day]
				if dims == nil {
					dims = map[storage.Dim]storage.Totals{}
					days[day] = dims
				}
				d := storage.Project(k, f.Dim)
				if _, ok := dims[d]; !ok {
					for _, s := range []*string{&d.Source, &d.Agent, &d.User, &d.Provider, &d.Model} {
						*s = c.intern(*s)
					}
				}
				t := dims[d]
				t.Add(f.Totals)
				dims[d] = t
			}
			return nil
		})
		if err != nil {
			return err
		}
		for d := start; d <= end; d++ {
			c.done[d] = true
		}
	}
	return nil
}

func (c *zoneCut) intern(s string) string {
	if c.names == nil {
		c.names = map[string]string{}
	}
	if n, ok := c.names[s]; ok {
		return n
	}
	c.names[s] = s
	return s
}

// zoned is a source whose days are cut in another zone than its rollups.
type zoned struct {
	CutSource
	loc  *time.Location
	cuts *zoneCuts
}

func (s zoned) Location() *time.Location { return s.loc }

func (s zoned) DimRows(kind byte, from, to int32) ([]storage.Row, error) {
	return s.cuts.dimRows(s.CutSource, s.loc, kind, from, to)
}

// EachSession streams the source's sessions when it can.
func (s zoned) EachSession(fn func(*storage.Session) error) error {
	return eachSession(s.CutSource, fn)
}
