package ingest

// The SQLite era of OpenClaw (2026.8 and later): each agent keeps its
// transcripts in <root>/agents/<agentId>/agent/openclaw-agent.sqlite, one
// row of transcript_events per former JSONL line (reference/openclaw-format.md
// §2.4-2.5 and §5). This file finds the stores and runs one poll over each;
// sqlite_schema.go probes and queries them, sqlite_read.go turns rows into
// records.
//
// Cursors (in the cursors bucket, committed with the records they cover):
//
//	sqlite:<db path>:<session id>                 → storeCursor JSON
//	sqlite-archive:<db path>:<session id>:<gen>   → archiveCursor JSON (the archive was read)
//	sqlite-store:<db path>                        → storeState JSON (only for an unsupported layout)

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

const storeFile = "openclaw-agent.sqlite"

// storeCursor is how far one session of a store was read. Seq and Gen are
// the first fields: a session that did not change is recognised by the
// JSON prefix they make (see unchangedPrefix), without decoding.
type storeCursor struct {
	Seq int64  `json:"seq"` // the last seq read
	Gen string `json:"gen"` // transcript_rewrite_watermarks.generation when read
	// Hash fingerprints the stored row at Seq (rowHash). The next poll reads from Seq
	// again: a different row there means the transcript was rewritten even
	// though the generation did not say so, and it is re-read.
	Hash      uint64 `json:"hash"`
	Agent     string `json:"agent"`
	SessionID string `json:"session_id"`
	Sender    sender `json:"sender"` // who spoke last, for the next calls
	// The session's skips, so a session read again from its start (a
	// rewrite) counts none twice, as a file's (see rereads.go). Last: the
	// listing's unchanged check reads the keys before it.
	rereadSkips
}

// archiveCursor marks a session_transcript_archives row as read. Archives
// never change: a (session, generation) is read once.
type archiveCursor struct {
	SessionID string `json:"session_id"`
	Gen       string `json:"gen"`
	Lines     int    `json:"lines"`
}

// storeState remembers that a store's layout is unsupported, so it is
// counted and logged once, not on every poll.
type storeState struct {
	Unsupported string `json:"unsupported"`
}

// store is one agent database.
type store struct {
	path  string
	agent string // the agents/<agentId> directory
}

func sessionCursorID(db, sessionID string) string { return "sqlite:" + db + ":" + sessionID }
func archiveCursorID(db, sessionID, gen string) string {
	return "sqlite-archive:" + db + ":" + sessionID + ":" + gen
}
func storeStateID(db string) string { return "sqlite-store:" + db }

// unchangedPrefix is the start of the JSON of a cursor at seq and gen.
func unchangedPrefix(seq int64, gen string) []byte {
	g, _ := json.Marshal(gen) // the same escaping as the struct's encoding
	b := append([]byte(`{"seq":`), strconv.FormatInt(seq, 10)...)
	b = append(b, `,"gen":`...)
	b = append(b, g...)
	return append(b, ',')
}

// pollStores reads what is new in every OpenClaw SQLite store. A store that
// cannot be read (locked past the busy timeout, corrupt) is logged and
// skipped; the step goes on and the next poll catches up from the cursors.
func (in *Ingester) pollStores(ctx context.Context, res StepResult) (StepResult, error) {
	stores, err := in.sqliteStores()
	if err != nil || len(stores) == 0 {
		return res, err
	}
	r := newStoreReader(in, &res)
	defer r.close()
	for _, st := range stores {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		stampID := "sqlite:" + st.path
		stamp, stamped := storeStamp(st.path)
		if stamped && in.stores[stampID] == stamp {
			continue // nothing committed since a poll that read everything
		}
		delete(in.stores, stampID)
		perr := r.poll(ctx, st)
		// What was read before an error is whole: records and the cursors
		// that cover them go in together.
		if err := r.commit(); err != nil {
			return res, fmt.Errorf("commit %s: %w", st.path, err)
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if perr != nil {
			in.storeError(st, perr)
			continue
		}
		if stamped {
			in.stores[stampID] = stamp // taken before the poll: a later commit changes it
		}
		if _, ok := in.warned[st.path]; ok {
			delete(in.warned, st.path)
			in.log.Info("OpenClaw store readable again", "path", st.path)
		}
	}
	return res, nil
}

// sqliteStores lists the agent databases under every OpenClaw root.
func (in *Ingester) sqliteStores() ([]store, error) {
	roots, err := in.openclawRoots()
	if err != nil {
		return nil, err
	}
	var out []store
	seen := map[[2]uint64]bool{}
	for _, root := range roots {
		dirs, err := agentDirs(root)
		if err != nil {
			continue // candidates already logged it
		}
		for _, ad := range dirs {
			p := filepath.Join(root, "agents", ad.agent, "agent", storeFile)
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			st := statOf(fi)
			dev, ino := st.dev, st.ino
			if seen[[2]uint64{dev, ino}] {
				continue // a second root or a symlink naming the same store
			}
			seen[[2]uint64{dev, ino}] = true
			out = append(out, store{path: p, agent: ad.agent})
		}
	}
	return out, nil
}

// storeStamp fingerprints a store without opening it, so that an idle
// store costs a poll three small reads: it hashes the first 96 bytes of the
// database file (its change counter moves on every commit in
// rollback-journal mode), the size, mtime and first bytes of the WAL, and
// the WAL-index header at the start of -shm (its change counter and frame
// count move on every commit in WAL mode). Readers write only read marks,
// past those 96 bytes, and the -shm mtime, so neither is part of it. The
// stamp goes in in.stores, the map of stamps of files re-read only on
// change, under "sqlite:<db path>".
func storeStamp(path string) (fileStamp, bool) {
	h := fnv.New64a()
	var size int64
	var hdr [96]byte
	for i, suffix := range []string{"", "-wal", "-shm"} {
		f, err := os.Open(path + suffix)
		if errors.Is(err, fs.ErrNotExist) && i > 0 {
			h.Write([]byte{byte(i)}) // no WAL (rollback mode, or checkpointed away)
			continue
		}
		if err != nil {
			return fileStamp{}, false
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fileStamp{}, false
		}
		n, _ := f.ReadAt(hdr[:], 0)
		f.Close()
		h.Write(hdr[:n])
		if suffix != "-shm" {
			fmt.Fprintf(h, "|%d|%d|", fi.Size(), fi.ModTime().UnixNano())
		}
		if i == 0 {
			size = fi.Size()
		}
	}
	return fileStamp{size: size, modNano: int64(h.Sum64())}, true
}

// storeError logs a store that could not be read, once per distinct error
// until it reads again, and counts it.
func (in *Ingester) storeError(st store, err error) {
	if isBusy(err) {
		err = fmt.Errorf("locked by a writer for longer than the %s busy timeout; its new rows are read at a later poll: %w",
			storeBusyTimeout, err)
	}
	if msg := err.Error(); in.warned[st.path] != msg {
		in.warned[st.path] = msg
		in.log.Warn("cannot read OpenClaw store", "path", st.path, "agent", st.agent, "err", err)
	}
	in.mu.Lock()
	in.stats.FileErrors++
	in.mu.Unlock()
}

// poll reads one store: its sessions, then its archives.
func (r *storeReader) poll(ctx context.Context, st store) (err error) {
	db, err := openStore(st.path)
	if err != nil {
		return fmt.Errorf("open %s: %w", st.path, err)
	}
	defer db.Close()
	defer func() {
		if err != nil {
			err = fmt.Errorf("%s: %w", st.path, err)
			if r.in.final {
				r.out.skips.UnreadableFile++
			}
		}
	}()
	s, err := probeSchema(ctx, db)
	if err != nil {
		return err
	}
	d := &storeDB{db: db, s: s, stmts: map[string]*sql.Stmt{}}
	defer d.close()
	state := storeStateID(st.path)
	if why := s.unsupported(); why != "" {
		v, _ := json.Marshal(storeState{Unsupported: why})
		if !bytes.Equal(r.in.otherCursors[state], v) {
			r.in.log.Warn("OpenClaw store has a layout fleetmeter does not read; its usage is not counted",
				"path", st.path, "agent", st.agent, "layout", why)
			r.out.skips.Unsupported++
			r.batch.Cursors[state] = v
		}
		return nil
	}
	if r.in.otherCursors[state] != nil {
		r.batch.Cursors[state] = nil // upgraded in place: readable now
	}
	if err := r.sessions(ctx, d, st); err != nil {
		return err
	}
	return r.archives(ctx, d, st)
}

// commit applies what was read so far with the cursors that cover it.
func (r *storeReader) commit() error {
	r.in.take(r.batch, &r.out)
	ar, err := r.in.commit(r.batch, nil)
	r.res.Added += ar.Added
	r.res.Skipped += ar.Duplicates
	return err
}
