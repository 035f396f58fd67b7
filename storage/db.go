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
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"

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
	// Verify reads every page before bbolt maps the file (the page walk
	// of Verify, not its values), so a damaged file is refused at once
	// rather than when a read meets the damage: a second or so per GB. A writable open of a file whose free
	// list was never written verifies anyway: bbolt then walks the file on
	// a goroutine of its own, which a damaged page crashes.
	Verify bool
}

// DB is the open database.
type DB struct {
	bolt boltFile
	file *os.File // the file again, read-only, for scans with pread (unmapped.go)
	path string
	loc  *time.Location

	instanceID string
	generation string
	// recutFrom is the zone the rollups were cut in before Open recut
	// them in Location ("" when it did not), recutTook how long it took.
	recutFrom string
	recutTook time.Duration
}

// Open opens (creating if needed) the database at path. When the file's
// rollups were cut in another zone than opts.Location, they are rebuilt
// from the ledger. A damaged file gives ErrCorrupt, never a crash: the
// meta page and the file's size are checked first (a file cut short would
// fault when mapped), every page too with opts.Verify, and what a read
// meets later is ErrCorrupt as well.
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
	if err := precheck(path, opts); err != nil {
		return nil, err
	}
	var bdb *bolt.DB
	err := guard(path, func() (err error) {
		bdb, err = openLocked(path, opts)
		return err
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, lockedError(path)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	adviseRandom(f)
	db := &DB{bolt: boltFile{bdb, path, &commitLog{}}, file: f, path: path, loc: opts.Location}
	if err := db.init(opts.ReadOnly); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}

func lockedError(path string) error {
	return fmt.Errorf("open %s: %w (stop the other process, e.g. `fleetmeter serve`, or point --data-dir elsewhere)", path, ErrLocked)
}

// precheck looks at an existing file under its lock (shared to read,
// exclusive to write), before bbolt maps it: the meta page and the file's
// size, and every page when asked or needed (see Options.Verify). A
// writable open also removes what a killed `compact` left behind.
func precheck(path string, opts Options) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || err == nil && st.Size() == 0 {
		return nil // a new file: bbolt creates it
	}
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	unlock, err := lockFile(path, !opts.ReadOnly, opts.LockTimeout)
	if err != nil {
		return err
	}
	defer unlock()
	r, err := openPages(path, false)
	if err != nil {
		return err
	}
	walk := opts.Verify || !opts.ReadOnly && r.meta.freelist == noFreelist
	r.Close()
	if !opts.ReadOnly {
		if err := os.Remove(path + compactSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove what an interrupted compact left: %w", err)
		}
	}
	if walk {
		return verifyPages(path)
	}
	return nil
}

// LockFile takes the database's write lock as bbolt would, to show that no
// process uses the file (ErrLocked after timeout); release gives it back.
func LockFile(path string, timeout time.Duration) (release func(), err error) {
	return lockFile(path, true, timeout)
}

// lockFile takes the flock bbolt takes (exclusive or shared) on a file
// descriptor of its own, waiting up to timeout: ErrLocked when another
// process holds it. Locks of two descriptors conflict even in one process,
// so release it before bbolt opens the file.
func lockFile(path string, exclusive bool, timeout time.Duration) (release func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing the descriptor releases its lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, lockedError(path)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openLocked opens the file and takes its lock. If the file at path was
// replaced while we waited for the lock (`fleetmeter compact` renames a
// new file over it, then releases the old one), the lock we got is on the
// old, unlinked file, and writes there would be lost: open again.
func openLocked(path string, opts Options) (*bolt.DB, error) {
	for attempt := 0; ; attempt++ {
		before, statErr := os.Stat(path)
		bdb, err := bolt.Open(path, 0o600, &bolt.Options{
			Timeout:      opts.LockTimeout,
			ReadOnly:     opts.ReadOnly,
			FreelistType: bolt.FreelistMapType,
			// The free list is written with each commit: without it, every
			// writable open walks the whole file through the mapping (its
			// size in resident memory, at every start) and bbolt's walk
			// panics on a goroutine of its own at the first damaged page.
			NoFreelistSync:  false,
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

// boltFile is the bbolt handle with every transaction guarded: a panic or
// a memory fault while reading a damaged page becomes ErrCorrupt instead
// of killing the process.
type boltFile struct {
	*bolt.DB
	path    string
	commits *commitLog
}

func (b boltFile) View(fn func(*bolt.Tx) error) error {
	return guard(b.path, func() error { return b.DB.View(fn) })
}

// Update runs a write transaction, then lets go of the pages it mapped: a
// commit reads pages all over the file (dedupe keys, rollup rows, the
// outbox), and the kernel maps more than each page read (see unmapped.go),
// so a daemon that commits every few seconds would otherwise end up with
// the whole file resident.
func (b boltFile) Update(fn func(*bolt.Tx) error) error {
	var id uint64
	err := guard(b.path, func() error {
		return b.DB.Update(func(tx *bolt.Tx) error {
			id = uint64(tx.ID())
			return fn(tx)
		})
	})
	if err != nil {
		return err
	}
	b.commits.add(id, time.Now())
	_ = b.releaseMapped() // the commit stands; at worst pages stay mapped a while
	return nil
}

// releaseMapped drops the mapping's resident pages (madvise DONTNEED; the
// page cache keeps them). Safe at any time: inside a read transaction
// bbolt cannot remap the file, and it writes with pwrite, never through
// its read-only, shared mapping.
func (b boltFile) releaseMapped() error {
	return b.View(func(tx *bolt.Tx) error {
		info := b.Info()
		n := int(tx.Size()) &^ (info.PageSize - 1) // within the mapping, whatever the file's size
		if info.Data == 0 || n == 0 {
			return nil
		}
		// The mapping is outside the Go heap: its address as a pointer is
		// stable for as long as this transaction holds bbolt's remap lock.
		base := *(*unsafe.Pointer)(unsafe.Pointer(&info.Data))
		if err := dropMapped(unsafe.Slice((*byte)(base), n)); err != nil {
			return fmt.Errorf("release mapped pages: %w", err)
		}
		return nil
	})
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
			if _, err := tx.CreateBucketIfNotExists(name); errors.Is(err, berrors.ErrIncompatibleValue) {
				return corrupt(db.path, "bucket %q is a plain value", name)
			} else if err != nil {
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
		start := time.Now()
		if err := db.rebuildRollups(rebuildFrom); err != nil {
			return err
		}
		db.recutFrom, db.recutTook = rebuildFrom.String(), time.Since(start)
	}
	return nil
}

// ZoneRecut says whether Open recut the rollups for a change of zone:
// the zone they were cut in before ("" when it did not), and how long the
// recut took, for the caller's log.
func (db *DB) ZoneRecut() (from string, took time.Duration) { return db.recutFrom, db.recutTook }

// Close closes the file.
func (db *DB) Close() error {
	db.file.Close()
	return db.bolt.Close()
}

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

// ReleaseMemory drops this process's mapping of the database pages it
// has read; they stay in the page cache and are mapped again when read.
// Every write transaction does it when it ends (see boltFile.Update).
func (db *DB) ReleaseMemory() error { return db.bolt.releaseMapped() }

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
// open for writers, and reads the copy back before it takes the name: a
// damaged database gives ErrCorrupt, not a damaged backup.
func (db *DB) Backup(path string) error {
	tmp := path + ".tmp"
	if err := db.copyTo(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	return nil
}

// BackupTemp writes a verified consistent copy into a new file in dir
// (its name starts with BackupTempPrefix) and returns its path; the caller
// removes it. A read transaction is held only while the copy is written to
// local disk, never while a slow client reads it: a long read transaction
// stalls every commit that grows the file.
func (db *DB) BackupTemp(dir string) (string, error) {
	f, err := os.CreateTemp(dir, BackupTempPrefix+"*")
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	path := f.Name()
	f.Close()
	if err := db.copyTo(path); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("backup: %w", err)
	}
	return path, nil
}

// BackupTempPrefix starts the names of BackupTemp's files, so a start can
// remove those a killed process left.
const BackupTempPrefix = ".fleetmeter-backup-"

// copyTo writes a consistent copy to path (0600, fsynced) and verifies it.
func (db *DB) copyTo(path string) error {
	err := db.bolt.View(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) })
	if err != nil {
		return err
	}
	if err := verifyPages(path); err != nil {
		return fmt.Errorf("the copy does not read back (%w): the database itself is damaged", err)
	}
	return nil
}

// compactSuffix names the new file while Compact writes it.
const compactSuffix = ".compact"

// Compact copies the live data of the file at src into a new file and swaps
// it in. The database must not be open anywhere. A damaged file is refused
// (ErrCorrupt) and left as it is.
func Compact(src string) (before, after int64, err error) {
	st, err := os.Stat(src)
	if err != nil {
		return 0, 0, fmt.Errorf("compact: %w", err)
	}
	if err := precheck(src, Options{LockTimeout: time.Second, Verify: true}); err != nil {
		return 0, 0, fmt.Errorf("compact: %w", err)
	}
	tmp := src + compactSuffix
	err = guard(src, func() error {
		from, err := bolt.Open(src, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("%w (stop `fleetmeter serve` first)", ErrLocked)
		}
		if err != nil {
			return err
		}
		defer from.Close()
		os.Remove(tmp)
		to, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			return err
		}
		if err := bolt.Compact(to, from, 64<<20); err != nil {
			to.Close()
			return err
		}
		return to.Close()
	})
	if err == nil {
		err = os.Rename(tmp, src)
	}
	if err != nil {
		os.Remove(tmp)
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
