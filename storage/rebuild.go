package storage

import (
	"bytes"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// rebuildScope limits a rebuild to what the ledger still holds. Rollups are
// kept forever, the ledger 400 days: rows older than the ledger were built
// from records that are gone, and a rebuild must keep them, not empty them.
// The boundaries are instants (midnights of the zone the kept rows were
// cut in), so a record is counted either in a kept row or in a rebuilt one,
// never in both, even when the zone changes.
type rebuildScope struct {
	dailyFrom    int64           // records from this instant go into daily rows
	weeklyFrom   int64           // records from this instant go into weekly rows
	keptSessions map[string]bool // sessions that began before the prune
}

// RebuildRollups recomputes the daily, weekly and session rows from the
// ledger. While nothing was pruned the rows equal those built incrementally,
// byte for byte; after retention pruned the ledger, rows older than it are
// kept as they are.
func (db *DB) RebuildRollups() error { return db.rebuildRollups(db.loc) }

// rebuildRollups rebuilds; oldLoc is the zone the existing rows were cut in.
func (db *DB) rebuildRollups(oldLoc *time.Location) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		pruned := int64(decodeUint(tx.Bucket(bucketMeta).Get(metaPrunedBefore)))
		var sc *rebuildScope
		if pruned == 0 {
			for _, name := range [][]byte{bucketDaily, bucketWeekly, bucketDailyDims, bucketSessions} {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
		} else {
			var err error
			if sc, err = clearRecomputable(tx, pruned, oldLoc); err != nil {
				return err
			}
		}
		w := db.writer(tx)
		w.outbox = nil // rows are re-marked below, once
		w.scope = sc
		err := tx.Bucket(bucketLedger).ForEach(func(k, v []byte) error {
			var u Usage
			if err := decodeUsage(v, &u); err != nil {
				return fmt.Errorf("ledger row %x: %w", k, err)
			}
			return w.applyRollups(&u, +1)
		})
		if err != nil {
			return err
		}
		if err := w.flush(); err != nil {
			return err
		}
		if err := db.rebuildHostDaily(tx, oldLoc); err != nil {
			return err
		}
		return markAllChanged(tx)
	})
	if err != nil {
		return fmt.Errorf("rebuild rollups: %w", err)
	}
	return nil
}

// clearRecomputable deletes the rows the ledger can rebuild: those of the
// old zone's days (and weeks) that begin after the prune.
func clearRecomputable(tx *bolt.Tx, pruned int64, oldLoc *time.Location) (*rebuildScope, error) {
	firstDay := DayNumber(pruned, oldLoc) + 1
	firstWeek := WeekStart(firstDay)
	if firstWeek < firstDay {
		firstWeek += 7
	}
	sc := &rebuildScope{
		dailyFrom:    DayStartMillis(firstDay, oldLoc),
		weeklyFrom:   DayStartMillis(firstWeek, oldLoc),
		keptSessions: map[string]bool{},
	}
	for _, r := range []struct {
		bucket       []byte
		prefix, from []byte
	}{
		{bucketDaily, nil, periodKey(firstDay)},
		{bucketWeekly, nil, periodKey(firstWeek)},
		{bucketDailyDims, []byte{DimModel}, append([]byte{DimModel}, periodKey(firstDay)...)},
		{bucketDailyDims, []byte{DimAgent}, append([]byte{DimAgent}, periodKey(firstDay)...)},
		{bucketDailyDims, []byte{DimUser}, append([]byte{DimUser}, periodKey(firstDay)...)},
	} {
		if err := deleteFrom(tx.Bucket(r.bucket), r.prefix, r.from); err != nil {
			return nil, err
		}
	}
	sessions := tx.Bucket(bucketSessions)
	var drop [][]byte
	err := sessions.ForEach(func(k, v []byte) error {
		s, err := decodeSession(v)
		if err != nil {
			return fmt.Errorf("session row %x: %w", k, err)
		}
		if s.FirstTS < pruned {
			sc.keptSessions[string(k)] = true
		} else {
			drop = append(drop, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range drop {
		if err := sessions.Delete(k); err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// rebuildHostDaily recuts the daily host rows from the 5-minute rows, for
// the old zone's days those still cover (5-minute rows are kept 400 days,
// daily rows forever). A 5-minute slot never straddles a local midnight:
// every zone's offset is a multiple of 15 minutes.
func (db *DB) rebuildHostDaily(tx *bolt.Tx, oldLoc *time.Location) error {
	slots, daily := tx.Bucket(bucketHost5m), tx.Bucket(bucketHostDaily)
	first, _ := slots.Cursor().First()
	if first == nil {
		return nil
	}
	// Every day is recut, but for the old zone's days the pruning of
	// 5-minute rows reached (the first of them partly).
	from, firstDay := int64(math.MinInt64), DayNumber(decodeHostTS(first), oldLoc)
	if pruned := int64(decodeUint(tx.Bucket(bucketMeta).Get(metaHost5mPrunedBefore))); pruned > 0 {
		firstDay = DayNumber(pruned, oldLoc) + 1
		from = DayStartMillis(firstDay, oldLoc)
	}
	if err := deleteFrom(daily, nil, periodKey(firstDay)); err != nil {
		return err
	}
	days := map[int32]*HostRollup{}
	err := slots.ForEach(func(k, v []byte) error {
		start := decodeHostTS(k)
		if start < from {
			return nil
		}
		r, err := decodeHostRollup(v)
		if err != nil {
			return fmt.Errorf("host_5m row %x: %w", k, err)
		}
		day := DayNumber(start, db.loc)
		if days[day] == nil {
			d := NewHostRollup()
			if old := daily.Get(periodKey(day)); old != nil { // a kept row with the same number
				if d, err = decodeHostRollup(old); err != nil {
					return fmt.Errorf("host_daily row %d: %w", day, err)
				}
			}
			days[day] = &d
		}
		return days[day].Merge(&r)
	})
	if err != nil {
		return err
	}
	for day, r := range days {
		if err := daily.Put(periodKey(day), appendHostRollup(nil, r)); err != nil {
			return err
		}
	}
	return nil
}

// deleteFrom deletes the keys from `from` on that start with prefix (keys
// collected first: never delete while a cursor walks).
func deleteFrom(b *bolt.Bucket, prefix, from []byte) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(from); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// markAllChanged queues every rollup row for upstream, e.g. after a rebuild.
func markAllChanged(tx *bolt.Tx) error {
	seq, err := tx.Bucket(bucketMeta).NextSequence()
	if err != nil {
		return err
	}
	outbox := tx.Bucket(bucketOutbox)
	for table, name := range map[byte][]byte{OutboxDaily: bucketDaily, OutboxWeekly: bucketWeekly, OutboxSession: bucketSessions} {
		err := tx.Bucket(name).ForEach(func(k, _ []byte) error {
			return outbox.Put(append([]byte{table}, k...), encodeUint(seq))
		})
		if err != nil {
			return err
		}
	}
	return nil
}
