package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The alerts bucket holds the alert engine's state and its pending
// notifications. Values are opaque JSON owned by the alerts package; the
// layout is documented in schema.go:
//
//	's' | state id  → state (one alert instance, a digest mark, …)
//	'o' | seq(8)    → a notification waiting for delivery to one receiver
//
// State changes and the notifications they cause commit in one
// transaction (CommitAlerts): after a crash, either both are there or
// neither, so a restart neither repeats nor loses a notification.
const (
	alertStatePrefix  = 's'
	alertOutboxPrefix = 'o'
)

// AlertChange is what one evaluation round writes.
type AlertChange struct {
	Put     map[string][]byte // state id → value
	Delete  []string          // state ids
	Enqueue [][]byte          // new notifications, in order
}

// AlertDelivery is one pending notification.
type AlertDelivery struct {
	Seq   uint64
	Value []byte
}

// AlertStates returns every stored state by id.
func (db *DB) AlertStates() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAlerts).Cursor()
		p := []byte{alertStatePrefix}
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			out[string(k[1:])] = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read alert states: %w", err)
	}
	return out, nil
}

// CommitAlerts writes states and appends notifications in one
// transaction. It returns the sequence numbers given to the notifications.
func (db *DB) CommitAlerts(ch AlertChange) ([]uint64, error) {
	if len(ch.Put) == 0 && len(ch.Delete) == 0 && len(ch.Enqueue) == 0 {
		return nil, nil
	}
	var seqs []uint64
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		for id, v := range ch.Put {
			if id == "" {
				return errors.New("empty alert state id")
			}
			if err := b.Put(alertStateKey(id), v); err != nil {
				return err
			}
		}
		for _, id := range ch.Delete {
			if err := b.Delete(alertStateKey(id)); err != nil {
				return err
			}
		}
		for _, v := range ch.Enqueue {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(alertOutboxKey(seq), v); err != nil {
				return err
			}
			seqs = append(seqs, seq)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("commit alert state: %w", err)
	}
	return seqs, nil
}

// AlertOutbox returns the pending notifications, oldest first.
func (db *DB) AlertOutbox() ([]AlertDelivery, error) {
	var out []AlertDelivery
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAlerts).Cursor()
		p := []byte{alertOutboxPrefix}
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if len(k) != 9 {
				return fmt.Errorf("alert outbox key %x: want 9 bytes", k)
			}
			out = append(out, AlertDelivery{Seq: binary.BigEndian.Uint64(k[1:]), Value: bytes.Clone(v)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read alert outbox: %w", err)
	}
	return out, nil
}

// UpdateAlertDelivery rewrites a pending notification (its attempts and
// next try); a nil value removes it (delivered, or given up).
func (db *DB) UpdateAlertDelivery(seq uint64, value []byte) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		if value == nil {
			return b.Delete(alertOutboxKey(seq))
		}
		if b.Get(alertOutboxKey(seq)) == nil {
			return nil // removed meanwhile: do not bring it back
		}
		return b.Put(alertOutboxKey(seq), value)
	})
	if err != nil {
		return fmt.Errorf("update alert delivery %d: %w", seq, err)
	}
	return nil
}

func alertStateKey(id string) []byte {
	return append([]byte{alertStatePrefix}, id...)
}

func alertOutboxKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{alertOutboxPrefix}, seq)
}
