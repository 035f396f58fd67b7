package storage

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fastjson"
	bolt "go.etcd.io/bbolt"
)

// Reads for the read side that a busy daemon answers often: cheap
// versions of the state, and streams that never hold the whole ledger or
// every session in memory.

// DataVersion identifies the committed state of the file: bbolt's id of
// the last write transaction, which every commit changes. A reader may
// keep what it computed from one version until the next.
func (db *DB) DataVersion() (uint64, error) {
	var v uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v = uint64(tx.ID())
		return nil
	})
	return v, err
}

// CommittedAfter is when the first write after version (a DataVersion)
// committed, as far as this process saw: exact is false when that commit
// is older than the last commitLogSize commits this process made, or
// not its own (before Open). A reader that keeps results per version asks
// it how long a result has been outdated.
func (db *DB) CommittedAfter(version uint64) (at time.Time, exact bool) {
	return db.bolt.commits.after(version)
}

// commitLogSize bounds the commits whose times are kept: at the daemon's
// pace (a few a second at most, while it catches up) the last minute.
const commitLogSize = 256

// commitLog keeps the times of this process's last commits.
type commitLog struct {
	mu   sync.Mutex
	ids  [commitLogSize]uint64
	ats  [commitLogSize]time.Time
	next int // where the next commit goes; the ring is in commit order
	n    int
}

func (l *commitLog) add(id uint64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids[l.next], l.ats[l.next] = id, at
	l.next = (l.next + 1) % commitLogSize
	l.n = min(l.n+1, commitLogSize)
}

func (l *commitLog) after(version uint64) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.n { // oldest first
		j := (l.next - l.n + i + commitLogSize) % commitLogSize
		if l.ids[j] > version {
			// Transaction ids count commits one by one: the first kept
			// one after version is the first after it when it follows it.
			return l.ats[j], l.ids[j] == version+1
		}
	}
	return time.Time{}, false
}

// LedgerSpan returns the times of the oldest and newest ledger records
// (unix ms) and the instant retention last pruned the ledger before (0 if
// never); ok is false for an empty ledger.
func (db *DB) LedgerSpan() (oldest, newest, prunedBefore int64, ok bool, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		prunedBefore = int64(decodeUint(tx.Bucket(bucketMeta).Get(metaPrunedBefore)))
		c := tx.Bucket(bucketLedger).Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		if len(first) < 8 || len(last) < 8 {
			return nil
		}
		oldest, newest, ok = decodeHostTS(first), decodeHostTS(last), true
		return nil
	})
	return oldest, newest, prunedBefore, ok, err
}

// Fact is what a rollup takes from one ledger record: its time, dimension
// and contribution.
type Fact struct {
	TS int64
	Dim
	Totals
}

// LedgerFacts calls fn for each record with fromMillis <= ts < toMillis, in
// time order, decoding only what rollups use (a few times faster than
// Ledger). Names are shared between facts: fn may keep them. The Fact is
// reused: fn copies what it keeps.
func (db *DB) LedgerFacts(fromMillis, toMillis int64, fn func(*Fact) error) error {
	var p fastjson.Parser
	var names interner
	name := func(v *fastjson.Value, key string) string { return names.get(v.GetStringBytes(key)) }
	var f Fact
	var r usageRow
	return db.bolt.View(func(tx *bolt.Tx) error {
		return db.scanUnmapped(tx, bucketLedger, ledgerKeyPrefix(fromMillis), ledgerKeyPrefix(toMillis), func(k, v []byte) error {
			if len(v) == 0 || v[0] != '{' {
				if err := r.parse(v); err != nil {
					return fmt.Errorf("ledger row %x: %w", k, err)
				}
				r.fact(&f, &names)
				return fn(&f)
			}
			u, err := p.ParseBytes(v)
			if err != nil {
				return fmt.Errorf("ledger row %x: %w", k, err)
			}
			f.TS = u.GetInt64("ts")
			f.Dim = Dim{Source: name(u, "source"), Agent: name(u, "agent"), User: name(u, "user"), Provider: name(u, "provider"), Model: name(u, "model")}
			var costs [6]int64
			if cost := u.Get("cost"); cost != nil {
				for i, key := range []string{"total", "input", "output", "cache_read", "cache_write", "tools"} {
					if costs[i], err = nanosOf(cost.Get(key)); err != nil {
						return fmt.Errorf("ledger row %x: cost.%s: %w", k, key, err)
					}
				}
			}
			f.Totals = Totals{
				Messages: 1, Input: u.GetInt64("input_tokens"), Output: u.GetInt64("output_tokens"),
				CacheRead: u.GetInt64("cache_read_tokens"), CacheWrite: u.GetInt64("cache_write_tokens"),
				CostNanos: costs[0], CostInputNanos: costs[1], CostOutputNanos: costs[2],
				CostCacheReadNanos: costs[3], CostCacheWriteNanos: costs[4],
				Reasoning: u.GetInt64("reasoning_tokens"), CostToolsNanos: costs[5],
			}
			if string(u.GetStringBytes("cost_source")) == CostUnpriced {
				f.UnpricedMessages, f.UnpricedTokens = 1, f.TotalTokens()
			}
			return fn(&f)
		})
	})
}

// fact sets f to what a rollup takes from the row, with names from the
// interner.
func (r *usageRow) fact(f *Fact, names *interner) {
	f.TS = r.ts
	f.Dim = Dim{Source: names.get(r.str[rowSource]), Agent: names.get(r.str[rowAgent]), User: names.get(r.str[rowUser]),
		Provider: names.get(r.str[rowProvider]), Model: names.get(r.str[rowModel])}
	// TotalsOf reads the numbers and the cost source only: no string of
	// the row is copied for it.
	u := Usage{Input: r.input, Output: r.output, CacheRead: r.cacheRead, CacheWrite: r.cacheWrite,
		Reasoning: r.reasoning, Cost: r.cost}
	if string(r.str[rowCostSource]) == CostUnpriced {
		u.CostSource = CostUnpriced
	}
	f.Totals = TotalsOf(&u)
}

// interner hands out one string per distinct name: rows of a scan share
// them instead of each holding its own copies.
type interner map[string]string

func (in *interner) get(b []byte) string {
	if *in == nil {
		*in = map[string]string{}
	}
	if s, ok := (*in)[string(b)]; ok {
		return s
	}
	s := string(b)
	(*in)[s] = s
	return s
}

// intern returns the interner's one copy of s.
func (in *interner) intern(s string) string {
	if *in == nil {
		*in = map[string]string{}
	}
	if c, ok := (*in)[s]; ok {
		return c
	}
	(*in)[s] = s
	return s
}

// nanosOf converts a JSON number of dollars as encoding/json and Nanos
// would: the same float from the same text, so sums agree to the nano.
func nanosOf(v *fastjson.Value) (int64, error) {
	if v == nil {
		return 0, nil
	}
	usd, err := strconv.ParseFloat(string(v.MarshalTo(nil)), 64)
	if err != nil {
		return 0, err
	}
	return Nanos(usd), nil
}

// EachSession calls fn for each session summary in key order, decoding one
// at a time, without mapping the file's pages.
func (db *DB) EachSession(fn func(*Session) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		return db.scanUnmapped(tx, bucketSessions, nil, nil, func(k, v []byte) error {
			s, err := decodeSession(v)
			if err != nil {
				return fmt.Errorf("session row %x: %w", k, err)
			}
			return fn(&s)
		})
	})
}

// CountStats is Stats counted without mapping the file: the buckets'
// pages are read with pread inside one read transaction (see unmapped.go),
// only the header of each leaf page, so counting a large ledger does not
// leave it resident in this process (1M calls: ~0.1 s, against 1.1 s for
// reading every key).
func (db *DB) CountStats() (Stats, error) {
	var s Stats
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, c := range []struct {
			name []byte
			n    *int
		}{{bucketLedger, &s.LedgerRecords}, {bucketSessions, &s.Sessions}, {bucketDaily, &s.DailyRows}, {bucketOutbox, &s.OutboxRows}, {bucketCursors, &s.Cursors}} {
			n, err := db.countUnmapped(tx, c.name)
			if err != nil {
				return err
			}
			*c.n = n
		}
		s.FileBytes = tx.Size()
		return nil
	})
	return s, err
}
