package rollup

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// SpendSlot is the grain of the spend index: rolling windows, burn rates
// and hourly spend are exact to it. Every zone offset is a multiple of
// 15 minutes, so a slot never straddles a civil day.
const SpendSlot = 5 * time.Minute

// SpendSource is what the spend index reads; *storage.DB satisfies it.
type SpendSource interface {
	LedgerCalls(fromMillis, toMillis int64, fn func(*storage.LedgerCall) error) error
	LedgerSequence() (uint64, error)
	DimRows(kind byte, from, to int32) ([]storage.Row, error)
	Location() *time.Location
}

// SlotSpend is what one dimension spent in one slot.
type SlotSpend struct {
	Dim            uint32 // index into SpendIndex.Dim
	Messages       int64
	CostNanos      int64
	Tokens         int64
	UnpricedTokens int64
}

// dayCheck is what the index holds for a civil day, compared with the
// day's rollup rows to find days whose ledger changed.
type dayCheck struct{ messages, costNanos, tokens int64 }

// SpendIndex answers questions about recent spend (rolling windows, burn
// rates, hourly spend per agent, active sessions, Claude calls for 5-hour
// blocks) from memory, for the alert rules that ask them every minute.
// It holds whole civil days back to Horizon, in 5-minute slots per
// dimension. Refresh keeps it equal to the ledger: a day whose rollup
// rows (messages, cost, tokens) differ from what the index holds is read
// again from the ledger, so new calls, larger copies, removed mirrors and
// reprices all show; in steady state a refresh reads only the rollup rows
// of the horizon. Not safe for concurrent use.
type SpendIndex struct {
	src     SpendSource
	horizon time.Duration
	keep    SpendDims

	dims   []storage.Dim
	dimIdx map[storage.Dim]uint32
	slots  map[int64][]SlotSpend // slot start ms → spend per dimension
	days   map[int32]dayCheck
	first  int32 // first day held
	seq    uint64
	built  bool

	lastRefresh  time.Time
	sessionsFrom int64 // sessions with no call since (unix ms) are not kept

	claude   []BlockEntry // Claude Code calls in the horizon, by time
	sessions map[storage.SessionKey]SessionSeen
	lastCall map[string]int64 // source → latest call (ms)

	// DaysRead counts the reads of the ledger (a day, or its last
	// minutes) since the index was made; steady state makes none.
	DaysRead int
}

// SpendDims says which names of a call the index keeps apart, besides
// its source and agent (always kept), and which lists it keeps besides
// the slots. A name not kept is merged: when no rule asks by user, the
// index holds a cell per agent and slot, not per agent, user and model
// (16 MB against 2 MB at 5 M calls in 90 days); a list not kept is not
// made (ClaudeCalls and SessionsSince answer none).
type SpendDims struct {
	User  bool // Dim.User
	Model bool // Dim.Provider and Dim.Model
	// ClaudeCalls keeps each Claude Code call (64 bytes: 5-hour blocks).
	ClaudeCalls bool
	// Sessions keeps the last call of each session with a call in this
	// window before the refresh (0: none), for SessionsSince of windows up
	// to it: a session-cost rule of 24 h asks for some 2,000 of the 18,000
	// sessions of 8 days (5 M calls in 90 days), 1.4 MB of heap.
	Sessions time.Duration
}

// AllSpendDims keeps every name and list (sessions of the last week).
var AllSpendDims = SpendDims{User: true, Model: true, ClaudeCalls: true, Sessions: 7 * 24 * time.Hour}

// NewSpendIndex indexes src's last horizon (at least a day), keeping the
// names of keep apart.
func NewSpendIndex(src SpendSource, horizon time.Duration, keep SpendDims) *SpendIndex {
	return &SpendIndex{src: src, horizon: max(horizon, 24*time.Hour), keep: keep, dimIdx: map[storage.Dim]uint32{},
		slots: map[int64][]SlotSpend{}, days: map[int32]dayCheck{}, sessions: map[storage.SessionKey]SessionSeen{}, lastCall: map[string]int64{}}
}

// Refresh brings the index up to the ledger as of now.
func (x *SpendIndex) Refresh(now time.Time) error {
	loc := x.src.Location()
	first := storage.DayNumber(now.Add(-x.horizon).UnixMilli(), loc)
	last := storage.DayNumber(now.UnixMilli(), loc) + 1 // calls stamped a little ahead of this clock
	if x.built && first > x.first {
		x.drop(storage.DayStartMillis(first, loc))
	}
	x.first = first
	seq, err := x.src.LedgerSequence()
	if err != nil {
		return fmt.Errorf("spend index: %w", err)
	}
	x.sessionsFrom = now.Add(-x.keep.Sessions).UnixMilli()
	var tail int64 // no calls since the last refresh: none
	if x.built && seq != x.seq && !x.lastRefresh.IsZero() {
		tail = x.lastRefresh.Add(-tailSlack).UnixMilli()
	}
	err = squareDays(x.src, first, last, x.days, tail, func(day int32, from int64) error { return x.readRange(day, from, loc) })
	if err != nil {
		return fmt.Errorf("spend index: %w", err)
	}
	for k, seen := range x.sessions {
		if seen.LastTS < x.sessionsFrom {
			delete(x.sessions, k)
		}
	}
	x.seq, x.built, x.lastRefresh = seq, true, now
	return nil
}

// squareDays reads again each day from first to last whose calls, as
// held, differ from the day's rollup rows (src's per-agent rows, summed):
// read(day, from) reads the day's calls from the instant from on and
// updates held[day]. New calls are mostly recent: when tail (unix ms, 0:
// none) falls in a day, that day is read from tail first, and whole only
// if that does not square it.
func squareDays(src interface {
	DimRows(kind byte, from, to int32) ([]storage.Row, error)
	Location() *time.Location
}, first, last int32, held map[int32]dayCheck, tail int64, read func(day int32, from int64) error) error {
	rows, err := src.DimRows(storage.DimAgent, first, last)
	if err != nil {
		return err
	}
	want := map[int32]dayCheck{}
	for _, r := range rows {
		c := want[r.Period]
		c.messages += r.Messages
		c.costNanos += r.CostNanos
		c.tokens += r.TotalTokens()
		want[r.Period] = c
	}
	loc := src.Location()
	for day := first; day <= last; day++ {
		if held[day] == want[day] {
			continue
		}
		start := storage.DayStartMillis(day, loc)
		if tail > start && tail < storage.DayStartMillis(day+1, loc) {
			if err := read(day, tail); err != nil {
				return err
			}
			if held[day] == want[day] {
				continue
			}
		}
		if err := read(day, start); err != nil {
			return err
		}
	}
	return nil
}

// tailSlack is how far before the previous refresh a refresh first looks
// for new calls: ingest records calls some seconds to minutes after they
// happen.
const tailSlack = 15 * time.Minute

// drop forgets everything before fromMillis.
func (x *SpendIndex) drop(fromMillis int64) {
	for start := range x.slots {
		if start < fromMillis {
			delete(x.slots, start)
		}
	}
	for day := range x.days {
		if storage.DayStartMillis(day, x.src.Location()) < fromMillis {
			delete(x.days, day)
		}
	}
	i := sort.Search(len(x.claude), func(i int) bool { return x.claude[i].TS >= fromMillis })
	x.claude = slices.Delete(x.claude, 0, i)
	for k, seen := range x.sessions {
		if seen.LastTS < fromMillis {
			delete(x.sessions, k)
		}
	}
}

// readRange replaces what the index holds for day from fromMillis (a
// slot start, or inside one: it is moved back to the slot's start) to the
// day's end with the ledger's calls.
func (x *SpendIndex) readRange(day int32, fromMillis int64, loc *time.Location) error {
	from, to := fromMillis-mod(fromMillis, SpendSlot.Milliseconds()), storage.DayStartMillis(day+1, loc)
	whole := from == storage.DayStartMillis(day, loc)
	for start := range x.slots {
		if start >= from && start < to {
			delete(x.slots, start)
		}
	}
	lo := sort.Search(len(x.claude), func(i int) bool { return x.claude[i].TS >= from })
	hi := sort.Search(len(x.claude), func(i int) bool { return x.claude[i].TS >= to })
	kept := x.claude[hi:]
	x.claude = x.claude[:lo:lo]
	read := x.DaysRead + 1
	var check dayCheck
	fresh := map[int64][]SlotSpend{} // slot start → the cells read, packed when the read ends
	cells := map[[2]int64]int{}      // slot, dim → position in its slot
	err := x.src.LedgerCalls(from, to, func(c *storage.LedgerCall) error {
		d := storage.Dim{Source: c.Source, Agent: c.Agent}
		if x.keep.User {
			d.User = c.User
		}
		if x.keep.Model {
			d.Provider, d.Model = c.Provider, c.Model
		}
		id, ok := x.dimIdx[d]
		if !ok {
			id = uint32(len(x.dims))
			x.dims = append(x.dims, d)
			x.dimIdx[d] = id
		}
		slot := c.TS - mod(c.TS, SpendSlot.Milliseconds())
		ck := [2]int64{slot, int64(id)}
		pos, ok := cells[ck]
		if !ok {
			pos = len(fresh[slot])
			cells[ck] = pos
			fresh[slot] = append(fresh[slot], SlotSpend{Dim: id})
		}
		s := &fresh[slot][pos]
		tokens := c.Tokens()
		s.Messages++
		s.CostNanos += c.CostNanos
		s.Tokens += tokens
		if c.Unpriced {
			s.UnpricedTokens += tokens
		}
		check.messages++
		check.costNanos += c.CostNanos
		check.tokens += tokens
		if c.Source == storage.SourceClaude && x.keep.ClaudeCalls {
			x.claude = append(x.claude, BlockEntry{TS: c.TS, Model: c.Model, Input: c.Input, Output: c.Output,
				CacheRead: c.CacheRead, CacheWrite: c.CacheWrite, CostNanos: c.CostNanos})
		}
		if x.keep.Sessions > 0 {
			// A session kept is marked read whatever the call's time (a
			// reprice of an older day changes its cost); one not kept
			// only from a call in the window.
			sk := storage.SessionKey{Source: c.Source, SessionID: c.SessionID}
			if seen, ok := x.sessions[sk]; ok || c.TS >= x.sessionsFrom {
				x.sessions[sk] = SessionSeen{LastTS: max(seen.LastTS, c.TS), Read: read}
			}
		}
		x.lastCall[c.Source] = max(x.lastCall[c.Source], c.TS)
		return nil
	})
	x.claude = append(x.claude, kept...)
	if err != nil {
		return fmt.Errorf("read %s: %w", storage.DayString(day), err)
	}
	x.pack(storage.DayStartMillis(day, loc), from, to, fresh)
	if !whole {
		// The day's figures: the slots before the range, as held, plus
		// what was just read.
		x.Each(storage.DayStartMillis(day, loc), from, func(_ int64, s *SlotSpend) {
			check.messages += s.Messages
			check.costNanos += s.CostNanos
			check.tokens += s.Tokens
		})
	}
	x.days[day] = check
	x.DaysRead++
	return nil
}

// pack lays out the slots of a day, from dayStart to to, in one array of
// their exact size: the slots before from as held, the others from fresh.
// A slot's cells appended one by one hold up to twice their size (8 days
// of 50 agents at 5 M calls in 90 days: 75,000 cells, 3.0 MB packed
// against 4.4 MB appended).
func (x *SpendIndex) pack(dayStart, from, to int64, fresh map[int64][]SlotSpend) {
	step := SpendSlot.Milliseconds()
	n := 0
	for slot := dayStart; slot < to; slot += step {
		if slot < from {
			n += len(x.slots[slot])
		} else {
			n += len(fresh[slot])
		}
	}
	all := make([]SlotSpend, 0, n)
	for slot := dayStart; slot < to; slot += step {
		cells := fresh[slot]
		if slot < from {
			cells = x.slots[slot]
		}
		delete(x.slots, slot)
		if len(cells) > 0 {
			i := len(all)
			all = append(all, cells...)
			x.slots[slot] = all[i:len(all):len(all)]
		}
	}
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// Dims is the number of dimensions held (ids 0 to Dims()-1).
func (x *SpendIndex) Dims() int { return len(x.dims) }

// Dim is the dimension of a SlotSpend.
func (x *SpendIndex) Dim(id uint32) storage.Dim { return x.dims[id] }

// Each calls fn for every slot whose start is in [fromMillis, toMillis),
// with the slot's start. A window is exact to the slot: the slot holding
// fromMillis counts whole.
func (x *SpendIndex) Each(fromMillis, toMillis int64, fn func(slot int64, s *SlotSpend)) {
	step := SpendSlot.Milliseconds()
	for slot := fromMillis - mod(fromMillis, step); slot < toMillis; slot += step {
		cells := x.slots[slot]
		for i := range cells {
			fn(slot, &cells[i])
		}
	}
}

// Spend sums the slots of [fromMillis, toMillis) whose dimension match
// accepts (nil: all).
func (x *SpendIndex) Spend(fromMillis, toMillis int64, match func(storage.Dim) bool) SlotSpend {
	var sum SlotSpend
	x.Each(fromMillis, toMillis, func(_ int64, s *SlotSpend) {
		if match == nil || match(x.dims[s.Dim]) {
			sum.Messages += s.Messages
			sum.CostNanos += s.CostNanos
			sum.Tokens += s.Tokens
			sum.UnpricedTokens += s.UnpricedTokens
		}
	})
	return sum
}

// HourlySpend is the cost in nano-dollars of each whole hour of
// [fromMillis, toMillis) (hours aligned to fromMillis), per key; key
// returns "" for calls to leave out. Every key gets len = the number of
// hours, zero hours included.
func (x *SpendIndex) HourlySpend(fromMillis, toMillis int64, key func(storage.Dim) string) map[string][]int64 {
	hour := time.Hour.Milliseconds()
	n := int((toMillis - fromMillis + hour - 1) / hour)
	out := map[string][]int64{}
	keys := make([]string, len(x.dims))
	for i, d := range x.dims {
		keys[i] = key(d)
	}
	x.Each(fromMillis, toMillis, func(slot int64, s *SlotSpend) {
		k := keys[s.Dim]
		if k == "" || slot < fromMillis {
			return
		}
		series := out[k]
		if series == nil {
			series = make([]int64, n)
			out[k] = series
		}
		series[(slot-fromMillis)/hour] += s.CostNanos
	})
	return out
}

// LastCall is the time of the latest call of source in the horizon (unix
// ms); ok is false when there is none.
func (x *SpendIndex) LastCall(source string) (int64, bool) {
	ts, ok := x.lastCall[source]
	return ts, ok
}

// SessionSeen is what the index knows of a session: its latest call, and
// the count of ledger days read when its calls were last read (a session
// whose Read did not change has had no call added, replaced or repriced
// since, unless one of its days dropped out of the horizon).
type SessionSeen struct {
	LastTS int64
	Read   int
}

// SessionsSince lists the sessions with a call at or after sinceMillis;
// only those of SpendDims.Sessions before the last refresh are kept.
func (x *SpendIndex) SessionsSince(sinceMillis int64) map[storage.SessionKey]SessionSeen {
	out := map[storage.SessionKey]SessionSeen{}
	for k, seen := range x.sessions {
		if seen.LastTS >= sinceMillis {
			out[k] = seen
		}
	}
	return out
}

// ClaudeCalls are the Claude Code calls of the horizon, oldest first, for
// 5-hour blocks. The slice belongs to the index.
func (x *SpendIndex) ClaudeCalls() []BlockEntry { return x.claude }

// Start is the first instant the index holds (unix ms).
func (x *SpendIndex) Start() int64 { return storage.DayStartMillis(x.first, x.src.Location()) }
