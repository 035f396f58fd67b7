package storage

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// rebuildScope limits a rebuild to what the ledger still holds. Rollups are
// kept forever, the ledger 400 days: rows older than the ledger were built
// from records that are gone, and a rebuild must keep them, not empty them.
type rebuildScope struct {
	dayFrom      int32           // first day entirely in the ledger
	weekFrom     int32           // first ISO week entirely in the ledger
	keptSessions map[string]bool // sessions that began before the prune
}

// RebuildRollups recomputes the daily, weekly and session rows from the
// ledger. While nothing was pruned the rows equal those built incrementally,
// byte for byte; after retention pruned the ledger, rows older than it are
// kept as they are (and, after a zone change, stay cut in the old zone).
func (db *DB) RebuildRollups() error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		w := db.writer(tx)
		w.outbox = nil // rows are re-marked below, once
		pruned := int64(decodeUint(tx.Bucket(bucketMeta).Get(metaPrunedBefore)))
		if pruned == 0 {
			for _, name := range [][]byte{bucketDaily, bucketWeekly, bucketDailyDims, bucketSessions} {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
			w = db.writer(tx)
			w.outbox = nil
		} else {
			sc, err := db.clearRecomputable(tx, pruned)
			if err != nil {
				return err
			}
			w.scope = sc
		}
		err := tx.Bucket(bucketLedger).ForEach(func(k, v []byte) error {
			var u Usage
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("ledger row %x: %w", k, err)
			}
			return w.applyRollups(&u, +1)
		})
		if err != nil {
			return err
		}
		if err := w.flushSessions(); err != nil {
			return err
		}
		return markAllChanged(tx)
	})
	if err != nil {
		return fmt.Errorf("rebuild rollups: %w", err)
	}
	return nil
}

// clearRecomputable deletes the rows the ledger can rebuild and returns
// the scope of the rebuild.
func (db *DB) clearRecomputable(tx *bolt.Tx, pruned int64) (*rebuildScope, error) {
	sc := &rebuildScope{dayFrom: DayNumber(pruned, db.loc) + 1, keptSessions: map[string]bool{}}
	sc.weekFrom = WeekStart(sc.dayFrom)
	if sc.weekFrom < sc.dayFrom {
		sc.weekFrom += 7
	}
	for _, r := range []struct {
		bucket       []byte
		prefix, from []byte
	}{
		{bucketDaily, nil, periodKey(sc.dayFrom)},
		{bucketWeekly, nil, periodKey(sc.weekFrom)},
		{bucketDailyDims, []byte{DimModel}, append([]byte{DimModel}, periodKey(sc.dayFrom)...)},
		{bucketDailyDims, []byte{DimAgent}, append([]byte{DimAgent}, periodKey(sc.dayFrom)...)},
		{bucketDailyDims, []byte{DimUser}, append([]byte{DimUser}, periodKey(sc.dayFrom)...)},
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
