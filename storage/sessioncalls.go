package storage

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// SessionCalls calls fn for each ledger record of one session with
// fromMillis <= ts < toMillis, newest first. Records of other sessions are
// passed over without being decoded (a binary row's session id is read in
// place, a JSON row is searched for it): a day of a busy fleet's ledger is
// read in milliseconds. fn returns false to stop.
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
		var r usageRow
		for ; k != nil && bytes.Compare(k, start) >= 0; k, v = c.Prev() {
			var u Usage
			if len(v) > 0 && v[0] == '{' {
				if !bytes.Contains(v, needle) {
					continue
				}
				if err := decodeUsage(v, &u); err != nil {
					return fmt.Errorf("ledger row %x: %w", k, err)
				}
			} else if err := r.parse(v); err != nil {
				return fmt.Errorf("ledger row %x: %w", k, err)
			} else if string(r.str[rowSessionID]) != sessionID || string(r.str[rowSource]) != source {
				continue
			} else {
				r.usage(&u) // parsed already: only its strings are copied
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
