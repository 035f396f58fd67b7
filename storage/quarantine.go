package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// QuarantineEntry is a row upstream rejected for good (bad data, a value
// out of range): it leaves the outbox so it does not block the rows behind
// it, and stays here, shown in the sync status, until the row changes again
// (its new outbox entry retries it) or RequeueQuarantined puts it back.
type QuarantineEntry struct {
	Key     []byte    `json:"-"`
	Row     string    `json:"row"`     // DescribeOutboxKey of Key
	Counter uint64    `json:"counter"` // the change counter that was rejected
	Error   string    `json:"error"`   // upstream's reason, without secrets
	At      time.Time `json:"at"`
}

// QuarantineChanges moves the entries of changes from the outbox to the
// quarantine with their error, each only if unchanged since it was read (a
// newer change deserves its own try). It returns how many it moved.
func (db *DB) QuarantineChanges(changes []Change, reason string, at time.Time) (int, error) {
	n, err := db.takeUnchanged(changes, func(tx *bolt.Tx, ch *Change) error {
		v, err := json.Marshal(QuarantineEntry{Row: DescribeOutboxKey(ch.Key), Counter: ch.Counter, Error: reason, At: at.UTC()})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketQuarantine).Put(ch.Key, v)
	})
	if err != nil {
		return 0, fmt.Errorf("quarantine %d rows: %w", len(changes), err)
	}
	return n, nil
}

// Quarantined returns the quarantined rows in key order.
func (db *DB) Quarantined() ([]QuarantineEntry, error) {
	return readJSONBucket(db, bucketQuarantine, func(k []byte, e *QuarantineEntry) { e.Key = bytes.Clone(k) })
}

// QuarantineCount counts the quarantined rows.
func (db *DB) QuarantineCount() (int, error) {
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketQuarantine); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n, err
}

// RequeueQuarantined puts every quarantined row back in the outbox with a
// new change counter (after the cause was fixed upstream) and empties the
// quarantine. It returns how many it requeued.
func (db *DB) RequeueQuarantined() (int, error) {
	n := 0
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		quarantine, outbox := tx.Bucket(bucketQuarantine), tx.Bucket(bucketOutbox)
		var keys [][]byte
		if err := quarantine.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil }); err != nil {
			return err
		}
		n = len(keys)
		if n == 0 {
			return nil
		}
		seq, err := tx.Bucket(bucketMeta).NextSequence()
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := outbox.Put(k, encodeUint(seq)); err != nil {
				return err
			}
			if err := quarantine.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("requeue quarantined rows: %w", err)
	}
	return n, nil
}

var syncStateKey = []byte("worker")

// SyncState returns what the sync worker last saved (opaque JSON), or nil.
func (db *DB) SyncState() ([]byte, error) {
	var v []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSyncState); b != nil {
			v = bytes.Clone(b.Get(syncStateKey))
		}
		return nil
	})
	return v, err
}

// PutSyncState saves the sync worker's state (opaque JSON).
func (db *DB) PutSyncState(v []byte) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSyncState).Put(syncStateKey, v)
	})
	if err != nil {
		return fmt.Errorf("save sync state: %w", err)
	}
	return nil
}
