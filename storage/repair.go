package storage

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SalvageResult says what Salvage kept and lost.
type SalvageResult struct {
	Records        int // ledger records kept
	Values         int // other keys kept (rollups, host history, attribution)
	DroppedValues  int // keys whose values did not decode
	DamagedRegions int // subtrees of pages that could not be read
}

// salvaged lists the buckets whose readable contents a salvage keeps, and
// how to tell a sound value. The rest is derived or disposable: seen keys
// are rebuilt from the ledger, cursors dropped (so every transcript still
// on disk is read again, deduplicated), the outbox re-marked by the
// rebuild, meta minted anew but for the identity and history copied below.
var salvaged = map[string]func(k, v []byte) bool{
	string(bucketLedger): func(k, v []byte) bool {
		var u Usage
		return len(k) == 16 && decodeUsage(v, &u) == nil && u.DedupeKey != ""
	},
	// ingest's, opaque: JSON under a session's key, a Codex thread's parent
	// id as is under "codex-thread:<id>"; ingest skips what it cannot parse
	string(bucketSessionMeta): func(k, v []byte) bool { return true },
	string(bucketUsers):       func(k, v []byte) bool { return true },
	string(bucketAlerts):      func(k, v []byte) bool { return true },
	string(bucketHost):        func(k, v []byte) bool { _, err := decodeHostSample(v); return len(k) == 10 && err == nil },
	string(bucketHost5m):      func(k, v []byte) bool { _, err := decodeHostRollup(v); return len(k) == 8 && err == nil },
	string(bucketHostDaily):   func(k, v []byte) bool { _, err := decodeHostRollup(v); return len(k) == 4 && err == nil },
	string(bucketDaily):       rowOK,
	string(bucketWeekly):      rowOK,
	string(bucketDailyDims):   func(k, v []byte) bool { return len(k) > 0 && rowOK(k[1:], v) },
	string(bucketSessions):    func(k, v []byte) bool { _, err := decodeSession(v); return err == nil },
}

func rowOK(k, v []byte) bool {
	_, _, kerr := decodeRowKey(k)
	_, verr := decodeTotals(v)
	return kerr == nil && verr == nil
}

// keptMeta are the meta keys a salvage copies: the file's identity and
// what its history says (the rest is minted by the new file).
var keptMeta = [][]byte{metaInstanceID, metaGeneration, metaCreatedAt, metaSkips, metaPrunedBefore, metaHost5mPrunedBefore}

// Salvage reads what it can of the damaged file at src, without bbolt,
// page by page, and writes it into a new database at dst (which must not
// exist); then it rebuilds the dedupe keys and the rollups from the
// records it kept. Rollup rows older than the ledger's retention, which no
// record can rebuild, are kept as read. src is only read.
func Salvage(src, dst string, opts Options) (SalvageResult, error) {
	var res SalvageResult
	if _, err := os.Stat(dst); err == nil {
		return res, fmt.Errorf("salvage: %s exists", dst)
	}
	type kv struct{ k, v []byte }
	found := map[string][]kv{}
	var meta []kv
	err := walkFile(src, true, func(path [][]byte, k, v []byte) {
		if len(path) != 1 {
			return // our layout has no nested buckets
		}
		name := string(path[0])
		if name == string(bucketMeta) {
			meta = append(meta, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
			return
		}
		ok, keep := salvaged[name]
		if !keep {
			return
		}
		if !ok(k, v) {
			res.DroppedValues++
			return
		}
		found[name] = append(found[name], kv{append([]byte(nil), k...), append([]byte(nil), v...)})
	}, func(error) bool {
		res.DamagedRegions++
		return true
	})
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return res, fmt.Errorf("salvage %s: %w", src, err)
	}
	if err != nil {
		res.DamagedRegions++ // nothing could be walked: start afresh
	}
	db, err := Open(dst, opts)
	if err != nil {
		return res, err
	}
	defer db.Close()
	oldLoc := db.loc // the zone the kept rows were cut in
	for _, e := range meta {
		if string(e.k) == string(metaRollupTZ) {
			if loc, err := time.LoadLocation(string(e.v)); err == nil {
				oldLoc = loc
			}
		}
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		for _, e := range meta {
			for _, k := range keptMeta {
				if string(e.k) == string(k) {
					if err := m.Put(e.k, e.v); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("salvage: %w", err)
	}
	db.instanceID, db.generation = metaString(db, metaInstanceID), metaString(db, metaGeneration)
	for name, kvs := range found {
		for start := 0; start < len(kvs); start += 10_000 {
			chunk := kvs[start:min(start+10_000, len(kvs))]
			err := db.bolt.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(name))
				for _, e := range chunk {
					if err := b.Put(e.k, e.v); err != nil {
						return err
					}
					if name == string(bucketLedger) {
						var u Usage
						if err := decodeUsage(e.v, &u); err != nil {
							return err
						}
						if err := tx.Bucket(bucketSeen).Put(seenKey(u.DedupeKey), e.k); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				return res, fmt.Errorf("salvage %s: %w", name, err)
			}
		}
		if name == string(bucketLedger) {
			res.Records += len(kvs)
		} else {
			res.Values += len(kvs)
		}
	}
	// Recompute what the kept records can: a lost page of records must
	// not leave rollups counting them (they would count twice once the
	// transcripts are read again).
	if err := db.rebuildRollups(oldLoc); err != nil {
		return res, fmt.Errorf("salvage: %w", err)
	}
	return res, nil
}

func metaString(db *DB, key []byte) string {
	var s string
	db.bolt.View(func(tx *bolt.Tx) error {
		s = string(tx.Bucket(bucketMeta).Get(key))
		return nil
	})
	return s
}
