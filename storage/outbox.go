package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// The upstream outbox, read side. Apply marks every daily, weekly and
// session row it changes (table byte | row key → change counter, see
// ledger.go); QueueHostDays and QueueAgents mark the rows nobody marks as
// they write them. The sync worker reads entries in key order together with
// the rows they stand for, sends them, and acknowledges each entry only if
// its counter is still the one it read: a row that changed in the meantime
// keeps its entry and goes in the next round.

// AgentInfo is one entry of the agent registry (the config's [[agents]]):
// who an agent belongs to. Untrusted text like every name.
type AgentInfo struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"` // display name
	Team  string `json:"team,omitempty"`
	Owner string `json:"owner,omitempty"`
}

// Change is one pending outbox entry and, read in the same transaction, the
// current state of the row it stands for. Which field is set follows Table;
// Gone means the row no longer exists locally (its rollup went to zero, the
// agent left the registry).
type Change struct {
	Key     []byte // the outbox key: Table | row key
	Counter uint64 // the change counter the entry held when read
	Table   byte   // OutboxDaily, OutboxWeekly, OutboxSession, OutboxHost, OutboxAgent
	Gone    bool

	Daily     Row    // OutboxDaily: period, dimension and totals (zero totals when Gone)
	UserLabel string // OutboxDaily: the user's latest display label

	Session *Session // OutboxSession: Source and SessionID always set

	Host *HostRollup // OutboxHost: Day always set

	Agent AgentInfo // OutboxAgent: ID always set
}

// PendingChanges returns up to limit outbox entries with keys after `after`
// (nil: from the start), in key order, each with its row. Weekly entries
// carry no row: upstream computes weeks from the days.
func (db *DB) PendingChanges(after []byte, limit int) ([]Change, error) {
	out := make([]Change, 0, min(limit, 1024))
	err := db.bolt.View(func(tx *bolt.Tx) error {
		outbox := tx.Bucket(bucketOutbox)
		c := outbox.Cursor()
		k, v := c.First()
		if after != nil {
			k, v = c.Seek(after)
			if k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			ch, err := db.readChange(tx, k, v)
			if err != nil {
				return fmt.Errorf("outbox entry %x: %w", k, err)
			}
			out = append(out, ch)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

func (db *DB) readChange(tx *bolt.Tx, k, v []byte) (Change, error) {
	if len(k) < 1 || len(v) != 8 {
		return Change{}, errShortKey
	}
	ch := Change{Key: bytes.Clone(k), Counter: decodeUint(v), Table: k[0]}
	rk := k[1:]
	switch ch.Table {
	case OutboxDaily:
		period, dim, err := decodeRowKey(rk)
		if err != nil {
			return ch, err
		}
		ch.Daily = Row{Period: period, Dim: dim}
		if row := tx.Bucket(bucketDaily).Get(rk); row != nil {
			if ch.Daily.Totals, err = decodeTotals(row); err != nil {
				return ch, err
			}
		} else {
			ch.Gone = true
		}
		if dim.User != "" {
			ch.UserLabel = string(tx.Bucket(bucketUsers).Get([]byte(dim.User)))
		}
	case OutboxWeekly:
	case OutboxSession:
		if row := tx.Bucket(bucketSessions).Get(rk); row != nil {
			s, err := decodeSession(row)
			if err != nil {
				return ch, err
			}
			ch.Session = &s
		} else {
			source, rest, err := getString(rk)
			if err != nil {
				return ch, err
			}
			id, _, err := getString(rest)
			if err != nil {
				return ch, err
			}
			ch.Session = &Session{Source: source, SessionID: id}
			ch.Gone = true
		}
	case OutboxHost:
		if len(rk) != 4 {
			return ch, errShortKey
		}
		day := int32(binary.BigEndian.Uint32(rk) ^ signFlip)
		if row := tx.Bucket(bucketHostDaily).Get(rk); row != nil {
			r, err := decodeHostRollup(row)
			if err != nil {
				return ch, err
			}
			ch.Host = &r
		} else {
			r := NewHostRollup()
			ch.Host, ch.Gone = &r, true
		}
		ch.Host.Day = day
		ch.Host.Start = DayStartMillis(day, db.loc)
	case OutboxAgent:
		ch.Agent = AgentInfo{ID: string(rk)}
		var row []byte
		if b := tx.Bucket(bucketAgents); b != nil {
			row = b.Get(rk)
		}
		if row == nil {
			ch.Gone = true
			break
		}
		if err := json.Unmarshal(row, &ch.Agent); err != nil {
			return ch, err
		}
	default:
		return ch, fmt.Errorf("unknown outbox table %q", ch.Table)
	}
	return ch, nil
}

// AckChanges deletes the outbox entries of changes that upstream committed,
// each only if its counter is still the one read: an entry a newer change
// overwrote stays for the next round. A quarantined row that went through
// leaves the quarantine. It returns how many entries it deleted.
func (db *DB) AckChanges(changes []Change) (int, error) {
	n, err := db.takeUnchanged(changes, func(tx *bolt.Tx, ch *Change) error {
		if q := tx.Bucket(bucketQuarantine); q.Get(ch.Key) != nil {
			return q.Delete(ch.Key)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("acknowledge %d outbox entries: %w", len(changes), err)
	}
	return n, nil
}

// takeUnchanged removes from the outbox, in one write transaction, each
// change whose entry still holds the counter it was read with, after fn
// has done what goes with it; it returns how many it removed.
func (db *DB) takeUnchanged(changes []Change, fn func(tx *bolt.Tx, ch *Change) error) (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		n = 0
		outbox := tx.Bucket(bucketOutbox)
		for i := range changes {
			ch := &changes[i]
			if decodeUint(outbox.Get(ch.Key)) != ch.Counter {
				continue
			}
			if err := fn(tx, ch); err != nil {
				return err
			}
			if err := outbox.Delete(ch.Key); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// OutboxPending counts the outbox entries, weekly ones included.
func (db *DB) OutboxPending() (int, error) {
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) (err error) {
		// Page headers read from the file: bbolt's Stats walks the whole
		// bucket through the map, which then stays in the process's RSS.
		n, err = db.countUnmapped(tx, bucketOutbox)
		return err
	})
	return n, err
}

// ChangeCounter is the latest change counter handed out: every outbox entry
// holds one at most this high.
func (db *DB) ChangeCounter() (uint64, error) {
	var seq uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		seq = tx.Bucket(bucketMeta).Sequence()
		return nil
	})
	return seq, err
}

// QueueHostDays marks for upstream every host_daily row that differs from
// what was last queued (the sampler folds samples into today's row without
// marking it; a zone change recuts old rows). It returns how many it queued.
// The rows are few (one per day), so a scan each sync round costs little.
func (db *DB) QueueHostDays() (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		n = 0
		marks, outbox := tx.Bucket(bucketSyncMarks), tx.Bucket(bucketOutbox)
		var seq uint64
		return tx.Bucket(bucketHostDaily).ForEach(func(k, v []byte) error {
			sum := sha256.Sum256(v)
			mk := append([]byte{OutboxHost}, k...)
			if bytes.Equal(marks.Get(mk), sum[:16]) {
				return nil
			}
			if seq == 0 {
				var err error
				if seq, err = tx.Bucket(bucketMeta).NextSequence(); err != nil {
					return err
				}
			}
			n++
			if err := marks.Put(mk, bytes.Clone(sum[:16])); err != nil {
				return err
			}
			return outbox.Put(mk, encodeUint(seq))
		})
	})
	if err != nil {
		return 0, fmt.Errorf("queue host days: %w", err)
	}
	return n, nil
}

// QueueAgents makes the stored registry equal to agents and marks every
// entry that was added, changed or removed. Entries with an empty or
// over-long id are ignored (the config refuses them). It returns how many
// it queued.
func (db *DB) QueueAgents(agents []AgentInfo) (int, error) {
	want := map[string][]byte{}
	for _, a := range agents {
		if a.ID == "" || len(a.ID) > MaxNameBytes {
			continue
		}
		v, err := json.Marshal(a)
		if err != nil {
			return 0, err
		}
		want[a.ID] = v
	}
	n := 0
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		n = 0
		reg, outbox := tx.Bucket(bucketAgents), tx.Bucket(bucketOutbox)
		var changed []string
		err := reg.ForEach(func(k, v []byte) error {
			if w, ok := want[string(k)]; !ok || !bytes.Equal(w, v) {
				changed = append(changed, string(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for id := range want {
			if reg.Get([]byte(id)) == nil {
				changed = append(changed, id)
			}
		}
		if len(changed) == 0 {
			return nil
		}
		seq, err := tx.Bucket(bucketMeta).NextSequence()
		if err != nil {
			return err
		}
		slices.Sort(changed)
		for _, id := range changed {
			if v, ok := want[id]; ok {
				err = reg.Put([]byte(id), v)
			} else {
				err = reg.Delete([]byte(id))
			}
			if err != nil {
				return err
			}
			if err := outbox.Put(append([]byte{OutboxAgent}, id...), encodeUint(seq)); err != nil {
				return err
			}
		}
		n = len(changed)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("queue agent registry: %w", err)
	}
	return n, nil
}

// Agents returns the stored agent registry, sorted by id.
func (db *DB) Agents() ([]AgentInfo, error) {
	return readJSONBucket(db, bucketAgents, func([]byte, *AgentInfo) {})
}

// readJSONBucket decodes every value of a bucket of JSON values, in key
// order; keep sees each key with its value. A bucket a read-only open of an
// older file lacks reads as empty.
func readJSONBucket[T any](db *DB, name []byte, keep func(k []byte, v *T)) ([]T, error) {
	var out []T
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var e T
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%s entry %x: %w", name, k, err)
			}
			keep(k, &e)
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// RequeueAll marks every row upstream holds (daily, weekly, session,
// host_daily, agents) with a change counter above minCounter. Upstream
// keeps the highest counter it saw per row and ignores lower ones, so after
// a restore from backup (counters went back) or an upstream reset, this
// makes the local state win again.
func (db *DB) RequeueAll(minCounter uint64) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta.Sequence() < minCounter {
			if err := meta.SetSequence(minCounter); err != nil {
				return err
			}
		}
		if err := markAllChanged(tx); err != nil {
			return err
		}
		seq := encodeUint(meta.Sequence()) // the counter markAllChanged used
		outbox, marks := tx.Bucket(bucketOutbox), tx.Bucket(bucketSyncMarks)
		err := tx.Bucket(bucketHostDaily).ForEach(func(k, v []byte) error {
			mk := append([]byte{OutboxHost}, k...)
			sum := sha256.Sum256(v)
			if err := marks.Put(mk, bytes.Clone(sum[:16])); err != nil {
				return err
			}
			return outbox.Put(mk, seq)
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketAgents).ForEach(func(k, _ []byte) error {
			return outbox.Put(append([]byte{OutboxAgent}, k...), seq)
		})
	})
	if err != nil {
		return fmt.Errorf("requeue all rows: %w", err)
	}
	return nil
}

// DescribeOutboxKey names the row of an outbox key for people: the table
// and the row's key fields (untrusted text, quoted).
func DescribeOutboxKey(k []byte) string {
	if len(k) == 0 {
		return "empty key"
	}
	rk := k[1:]
	switch k[0] {
	case OutboxDaily, OutboxWeekly:
		period, d, err := decodeRowKey(rk)
		if err != nil {
			break
		}
		name := map[byte]string{OutboxDaily: "daily", OutboxWeekly: "weekly"}[k[0]]
		return fmt.Sprintf("%s %s source=%q agent=%q user=%q provider=%q model=%q", name, DayString(period), d.Source, d.Agent, d.User, d.Provider, d.Model)
	case OutboxSession:
		source, rest, err := getString(rk)
		if err != nil {
			break
		}
		id, _, err := getString(rest)
		if err != nil {
			break
		}
		return fmt.Sprintf("session source=%q id=%q", source, id)
	case OutboxHost:
		if len(rk) == 4 {
			return "host_daily " + DayString(int32(binary.BigEndian.Uint32(rk)^signFlip))
		}
	case OutboxAgent:
		return fmt.Sprintf("agent id=%q", rk)
	}
	return fmt.Sprintf("outbox key %x", k)
}
