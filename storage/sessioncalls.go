package storage

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// SessionCalls calls fn for each ledger record of one session with
// fromMillis <= ts < toMillis, newest first. Records of other sessions are
// passed over by a byte search for the session's id, without decoding
// them: a day of a busy fleet's ledger is read in milliseconds. fn returns
// false to stop.
func (db *DB) SessionCalls(source, sessionID string, fromMillis, toMillis int64, fn func(*Usage) bool) error {
	id, err := json.Marshal(sessionID) // as the record holds it (json.Marshal wrote it)
	if err != nil {
		return err
	}
	needle := append([]byte(`"session_id":`), id...)
	return db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLedger).Cursor()
		start := ledgerKeyPrefix(fromMillis)
		k, v := c.Seek(ledgerKeyPrefix(toMillis))
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.Compare(k, start) >= 0; k, v = c.Prev() {
			if !bytes.Contains(v, needle) {
				continue
			}
			var u Usage
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("ledger row %x: %w", k, err)
			}
			if u.SessionID != sessionID || u.Source != source {
				continue
			}
			if !fn(&u) {
				return nil
			}
		}
		return nil
	})
}
