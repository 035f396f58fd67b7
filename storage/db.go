// Package storage keeps fleetmeter's state in one bbolt file: the usage
// ledger, dedupe keys, ingest cursors, rollups, host samples and the upstream
// outbox. It knows no producer and no consumer; schema.go documents the layout.
package storage

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the database file inside the data dir.
const FileName = "fleetmeter.db"

// ErrLocked means another process holds the database file.
var ErrLocked = errors.New("database is locked by another fleetmeter process")

// Options configure Open.
type Options struct {
	// Location is the zone whose civil days cut the daily and weekly rows.
	// Nil means UTC.
	Location *time.Location
	// LockTimeout bounds the wait for the file lock; a second fleetmeter on
	// the same file fails after it. Zero means one second.
	LockTimeout time.Duration
	// ReadOnly opens for reading (a shared lock).
	ReadOnly bool
}

// DB is the open database.
type DB struct {
	bolt *bolt.DB
	path string
	loc  *time.Location

	instanceID string
	generation string
}

// Open opens (creating if needed) the database at path. When the file's
// rollups were cut in another zone than opts.Location, they are rebuilt
// from the ledger.
func Open(path string, opts Options) (*DB, error) {
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	bdb, err := openLocked(path, opts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w (stop the other process, e.g. `fleetmeter serve`, or point --data-dir elsewhere)", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db := &DB{bolt: bdb, path: path, loc: opts.Location}
	if err := db.init(opts.ReadOnly); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}

// openLocked opens the file and takes its lock. If the file at path was
// replaced while we waited for the lock (`fleetmeter compact` renames a
// new file over it, then releases the old one), the lock we got is on the
// old, unlinked file, and writes there would be lost: open again.
func openLocked(path string, opts Options) (*bolt.DB, error) {
	for attempt := 0; ; attempt++ {
		before, statErr := os.Stat(path)
		bdb, err := bolt.Open(path, 0o600, &bolt.Options{
			Timeout:         opts.LockTimeout,
			ReadOnly:        opts.ReadOnly,
			FreelistType:    bolt.FreelistMapType,
			NoFreelistSync:  true,
			InitialMmapSize: 64 << 20,
		})
		if err != nil {
			return nil, err
		}
		after, err := os.Stat(path)
		if err == nil && (statErr != nil || os.SameFile(before, after)) || attempt == 3 {
			return bdb, nil
		}
		bdb.Close()
	}
}

// init creates every bucket, mints the identity of a new file, applies
// upgrades and checks the rollup zone.
func (db *DB) init(readOnly bool) error {
	if readOnly {
		return db.bolt.View(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if meta == nil {
				return errors.New("not a fleetmeter database (no meta bucket)")
			}
			// Older layouts read as they are (schema 1 differs from 2 only
			// in what a writer adds); a writable open upgrades them.
			if v := decodeUint(meta.Get(metaSchemaVersion)); v < 1 || v > SchemaVersion {
				return fmt.Errorf("schema version %d, this fleetmeter reads 1 to %d", v, SchemaVersion)
			}
			db.instanceID = string(meta.Get(metaInstanceID))
			db.generation = string(meta.Get(metaGeneration))
			// A reader cannot rebuild: Location must say the zone the
			// rollups were cut in, whatever the caller asked for.
			if zone := meta.Get(metaRollupTZ); zone != nil {
				loc, err := time.LoadLocation(string(zone))
				if err != nil {
					return fmt.Errorf("rollup zone %q: %w", zone, err)
				}
				db.loc = loc
			}
			return nil
		})
	}
	var rebuildFrom *time.Location // the zone existing rows were cut in, when it changed
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(metaSchemaVersion) == nil {
			if err := meta.Put(metaSchemaVersion, encodeUint(SchemaVersion)); err != nil {
				return err
			}
			for _, k := range [][]byte{metaInstanceID, metaGeneration} {
				if err := meta.Put(k, []byte(randomHex())); err != nil {
					return err
				}
			}
			if err := meta.Put(metaCreatedAt, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
				return err
			}
		}
		for v := decodeUint(meta.Get(metaSchemaVersion)); v < SchemaVersion; v++ {
			up, ok := upgrades[v]
			if !ok {
				return fmt.Errorf("no upgrade from schema version %d", v)
			}
			if err := up(tx); err != nil {
				return fmt.Errorf("upgrade schema %d → %d: %w", v, v+1, err)
			}
			if err := meta.Put(metaSchemaVersion, encodeUint(v+1)); err != nil {
				return err
			}
		}
		if v := decodeUint(meta.Get(metaSchemaVersion)); v > SchemaVersion {
			return fmt.Errorf("schema version %d is newer than this fleetmeter (%d): upgrade fleetmeter", v, SchemaVersion)
		}
		zone := db.loc.String()
		if old := meta.Get(metaRollupTZ); string(old) != zone {
			if old != nil {
				var err error
				if rebuildFrom, err = time.LoadLocation(string(old)); err != nil {
					rebuildFrom = db.loc // an unknown old zone: treat its rows as cut in the new one
				}
			}
			if err := meta.Put(metaRollupTZ, []byte(zone)); err != nil {
				return err
			}
		}
		db.instanceID = string(meta.Get(metaInstanceID))
		db.generation = string(meta.Get(metaGeneration))
		return nil
	})
	if err != nil {
		return err
	}
	if rebuildFrom != nil {
		return db.rebuildRollups(rebuildFrom)
	}
	return nil
}

// Close closes the file.
func (db *DB) Close() error { return db.bolt.Close() }

// Path is the file's path.
func (db *DB) Path() string { return db.path }

// Location is the zone the rollups are cut in. For a read-only open it
// is the file's zone, which may differ from Options.Location.
func (db *DB) Location() *time.Location { return db.loc }

// InstanceID identifies this database (and so this host) upstream.
func (db *DB) InstanceID() string { return db.instanceID }

// Generation changes when the file is recreated, so upstream can tell a
// fresh lineage from a replay.
func (db *DB) Generation() string { return db.generation }

// Check runs bbolt's consistency check; tests call it at cleanup.
func (db *DB) Check() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
}

// Backup writes a consistent copy of the database to path while it stays
// open for writers.
func (db *DB) Backup(path string) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		tmp := path + ".tmp"
		if err := tx.CopyFile(tmp, 0o600); err != nil {
			return fmt.Errorf("backup to %s: %w", path, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("backup to %s: %w", path, err)
		}
		return nil
	})
}

// WriteTo streams a consistent copy of the database (a hot backup).
func (db *DB) WriteTo(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Compact copies the live data of the file at src into a new file and swaps
// it in. The database must not be open anywhere.
func Compact(src string) (before, after int64, err error) {
	st, err := os.Stat(src)
	if err != nil {
		return 0, 0, fmt.Errorf("compact: %w", err)
	}
	from, err := bolt.Open(src, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, 0, fmt.Errorf("compact %s: %w (stop `fleetmeter serve` first)", src, ErrLocked)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("compact %s: %w", src, err)
	}
	defer from.Close()
	tmp := src + ".compact"
	os.Remove(tmp)
	to, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, 0, fmt.Errorf("compact %s: %w", src, err)
	}
	if err := bolt.Compact(to, from, 64<<20); err != nil {
		to.Close()
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact %s: %w", src, err)
	}
	if err := to.Close(); err != nil {
		return 0, 0, fmt.Errorf("compact %s: %w", src, err)
	}
	if err := os.Rename(tmp, src); err != nil {
		return 0, 0, fmt.Errorf("compact %s: %w", src, err)
	}
	st2, err := os.Stat(src)
	if err != nil {
		return 0, 0, fmt.Errorf("compact: %w", err)
	}
	return st.Size(), st2.Size(), nil
}

func randomHex() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

func encodeUint(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Skips returns the cumulative skip counters of ingest.
func (db *DB) Skips() (Skips, error) {
	var s Skips
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaSkips); v != nil {
			return json.Unmarshal(v, &s)
		}
		return nil
	})
	return s, err
}
