package ingest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strings"

	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/klauspost/compress/zstd"
)

// A session is read in queries of at most storeBatchRows rows and about
// storeBatchBytes stored bytes: each query is one read transaction, and a
// short one, so OpenClaw's WAL checkpoints are never held back for long.
const (
	storeBatchRows  = 512
	storeBatchBytes = 8 << 20
)

// castagnoli is CRC-32C, which the CPU computes at several GB/s: the row
// fingerprint is taken on every row and must cost next to nothing.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rowHash fingerprints a stored row (its length and CRC-32C).
func rowHash(b []byte) uint64 {
	return uint64(len(b))<<32 | uint64(crc32.Checksum(b, castagnoli))
}

// storeReader reads the stores of one poll into one batch. Not safe for
// concurrent use.
type storeReader struct {
	in      *Ingester
	res     *StepResult
	batch   *storage.Batch // cursors and attribution; records and skips go through out
	out     calls
	parser  lineParser
	pl      parsedLine
	dec     *zstd.Decoder // for event_zstd rows, made on first use
	buf     []byte        // the decoded event
	lineBuf []byte        // the line reader's buffer, for archives
}

func newStoreReader(in *Ingester, res *StepResult) *storeReader {
	return &storeReader{in: in, res: res,
		batch: &storage.Batch{Cursors: map[string][]byte{}, SessionMeta: map[string][]byte{}}}
}

func (r *storeReader) close() {
	if r.dec != nil {
		r.dec.Close()
	}
}

// sessions reads every session whose max seq or rewrite generation differs
// from its cursor. One listing query per poll; unchanged sessions cost a
// comparison of bytes and nothing else.
func (r *storeReader) sessions(ctx context.Context, d *storeDB, st store) error {
	listed, err := listSessions(ctx, d)
	if err != nil {
		return err
	}
	prefix := sessionCursorID(st.path, "")
	present := make(map[string]bool, len(listed))
	for _, ls := range listed {
		id := prefix + ls.id
		present[id] = true
		raw := r.in.otherCursors[id]
		// A rewrite that keeps max(seq) and the generation goes unseen until
		// the session grows (then the row check at the cursor catches it);
		// OpenClaw bumps the generation on every rewrite.
		if raw != nil && bytes.HasPrefix(raw, unchangedPrefix(ls.maxSeq, ls.gen)) {
			continue
		}
		var prev *storeCursor
		if raw != nil {
			var c storeCursor
			if json.Unmarshal(raw, &c) == nil {
				prev = &c
			}
		}
		if err := r.readSession(ctx, d, st, ls, prev); err != nil {
			return fmt.Errorf("session %s: %w", ls.id, err)
		}
		if len(r.out.records) >= r.in.cfg.BatchRecords {
			if err := r.commit(); err != nil {
				return err
			}
		}
	}
	// Sessions gone from the store (reset into an archive, deleted by
	// retention) lose their cursor; their records stay. Should the rows come
	// back, dedupe keeps them from counting twice.
	for id := range r.in.otherCursors {
		if strings.HasPrefix(id, prefix) && !present[id] {
			r.batch.Cursors[id] = nil
		}
	}
	return nil
}

// readSession reads one session from its cursor on, or from the start when
// it is new, was rewritten (a new generation, or a max seq below the
// cursor) or the row at the cursor changed. Re-reads rely on dedupe.
func (r *storeReader) readSession(ctx context.Context, d *storeDB, st store, ls listedSession, prev *storeCursor) error {
	id := sessionCursorID(st.path, ls.id)
	resume := prev != nil && prev.Gen == ls.gen && ls.maxSeq >= prev.Seq
	if !resume || r.in.meta[storage.SessionMetaID(storage.SourceOpenClaw, ls.id)].Key == "" {
		if err := r.learnMeta(ctx, d, ls.id, ""); err != nil {
			return err
		}
	}
	// fresh is a read from the start of what before counted skips of.
	fresh := func(before *storeCursor) storeCursor {
		c := storeCursor{Gen: ls.gen, Agent: st.agent, SessionID: ls.id}
		if before != nil {
			c.fromStart(&before.rereadSkips)
		}
		return c
	}
	cur, from, verify, valid := fresh(prev), int64(math.MinInt64), false, false
	if resume {
		cur, from, verify, valid = *prev, prev.Seq, true, true
		cur.Agent = st.agent
	}
	r.res.Read++
	for {
		n, consumed, size, restart, err := r.settledBatch(ctx, d, ls.id, from, &cur, verify)
		if restart {
			cur, from, verify, valid = fresh(&cur), math.MinInt64, false, false
			continue
		}
		verify = false
		valid = valid || consumed > 0
		if valid {
			// Even after an error: the records appended so far are exactly
			// those of the rows up to cur.Seq.
			if v, merr := json.Marshal(&cur); merr == nil {
				r.batch.Cursors[id] = v
			}
		}
		if err != nil {
			return err
		}
		if n < storeBatchRows && size < storeBatchBytes {
			return nil
		}
		from = cur.Seq + 1
		if len(r.out.records) >= r.in.cfg.BatchRecords {
			if err := r.commit(); err != nil {
				return err
			}
		}
	}
}

// settledBatch is eventBatch with its skips settled against the session's
// cursor (rereadSkips): r.out keeps only those the session had not
// counted before, while it gathers every session of the store.
func (r *storeReader) settledBatch(ctx context.Context, d *storeDB, sessionID string, from int64,
	cur *storeCursor, verify bool) (n, consumed int, size int64, restart bool, err error) {
	r.settled(&cur.rereadSkips, func() {
		n, consumed, size, restart, err = r.eventBatch(ctx, d, sessionID, from, cur, verify)
	})
	return n, consumed, size, restart, err
}

// settled runs read, then settles the skips it found against c: r.out
// keeps only those of the session that c had not counted before.
func (r *storeReader) settled(c *rereadSkips, read func()) {
	skips, drift := r.out.skips, r.out.drift
	r.out.skips, r.out.drift = storage.Skips{}, nil
	read()
	c.settle(&r.out)
	r.out.skips.Add(skips)
	for k, v := range r.out.drift {
		if drift == nil {
			drift = map[string]int64{}
		}
		drift[k] += v
	}
	r.out.drift = drift
}

// eventBatch runs one bounded query of a session's rows from seq `from` on
// and folds them into the batch. With verify, the first row must be the
// one the cursor ended on, unchanged; if not, restart is set and nothing
// is consumed.
func (r *storeReader) eventBatch(ctx context.Context, d *storeDB, sessionID string, from int64,
	cur *storeCursor, verify bool) (n, consumed int, size int64, restart bool, err error) {
	rows, err := d.query(ctx, d.s.eventsSQL, sessionID, from, storeBatchRows)
	if err != nil {
		return 0, 0, 0, false, err
	}
	defer rows.Close()
	var (
		seq      int64
		js, zs   sql.RawBytes // valid until the next row: parsed before it
		utf8Size sql.NullInt64
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &js, &zs, &utf8Size); err != nil {
			return n, consumed, size, false, err
		}
		n++
		stored := js
		if stored == nil {
			stored = zs
		}
		h := rowHash(stored)
		if verify {
			verify = false
			if seq == cur.Seq && h == cur.Hash {
				continue
			}
			return n, 0, size, true, nil
		}
		r.event(js, zs, utf8Size.Int64, cur)
		cur.Seq, cur.Hash = seq, h
		consumed++
		size += int64(len(stored))
		if size >= storeBatchBytes {
			break
		}
	}
	r.res.Bytes += size
	return n, consumed, size, false, rows.Err()
}

// event decodes one row (event_json, or zstd event_zstd when it is NULL)
// and folds it in as the JSONL reader folds a line.
func (r *storeReader) event(js, zs []byte, utf8Size int64, cur *storeCursor) {
	line := js
	if line == nil {
		switch {
		case zs == nil:
			r.out.skips.Malformed++ // neither column: the row holds nothing
			return
		case utf8Size > MaxLineBytes:
			r.out.skips.OversizeLine++
			return
		}
		if r.dec == nil {
			var err error
			if r.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxLineBytes)); err != nil {
				r.out.skips.Malformed++
				return
			}
		}
		out, err := r.dec.DecodeAll(zs, r.buf[:0])
		switch {
		case errors.Is(err, zstd.ErrDecoderSizeExceeded):
			r.out.skips.OversizeLine++
			return
		case err != nil:
			r.out.skips.Malformed++
			return
		}
		r.buf, line = out, out
	}
	if len(line) > MaxLineBytes {
		r.out.skips.OversizeLine++
		return
	}
	r.handle(line, cur.Agent, cur.SessionID, &cur.Sender)
}

// handle parses one event with the JSONL line parser and folds it in the
// same way (openclawEntry). Unlike a file line, a row is never a torn
// write, so a nested `{"type":"message"` is not mistaken for one; and the
// session is the row's, whatever a header row says.
func (r *storeReader) handle(line []byte, agent, sessionID string, snd *sender) {
	r.parser.parse(line, &r.pl)
	r.in.openclawEntry(&r.pl, agent, &sessionID, snd, &r.out)
}

// learnMeta looks up a session's attribution in the store and keeps it
// (in memory and in session_meta): archives and leftover JSONL files of
// the session are attributed with it after its rows are gone.
func (r *storeReader) learnMeta(ctx context.Context, d *storeDB, sessionID, fallbackKey string) error {
	m, err := lookupMeta(ctx, d, sessionID)
	if err != nil {
		return err
	}
	if m.Key == "" {
		m.Key = fallbackKey
	}
	if m.Key == "" {
		return nil // nothing known here: keep what sessions.json said, if anything
	}
	id := storage.SessionMetaID(storage.SourceOpenClaw, sessionID)
	old := r.in.meta[id]
	if old.Key == m.Key {
		m = mergeMeta(m, old)
	}
	if old == m {
		return nil
	}
	r.in.meta[id] = m
	if v, err := json.Marshal(m); err == nil {
		r.batch.SessionMeta[id] = v
	}
	return nil
}

// storeArchive is one row of session_transcript_archives, without its blob.
type storeArchive struct {
	sessionID, gen, key string
}

// archives reads each reset or deleted transcript in
// session_transcript_archives once. Its calls were mostly counted from the
// live rows already; the archive brings those the reader never saw.
func (r *storeReader) archives(ctx context.Context, d *storeDB, st store) error {
	if !d.s.has(tArchives, "session_id", "generation", "archive_blob") {
		return nil
	}
	rows, err := d.db.QueryContext(ctx, `SELECT session_id, CAST(generation AS TEXT), `+
		d.s.colOr(tArchives, "session_key")+` FROM `+tArchives)
	if err != nil {
		return fmt.Errorf("list archives: %w", err)
	}
	present := map[string]bool{}
	var todo []storeArchive
	for rows.Next() {
		var sid, gen, key sql.NullString
		if err := rows.Scan(&sid, &gen, &key); err != nil {
			rows.Close()
			return fmt.Errorf("list archives: %w", err)
		}
		id := archiveCursorID(st.path, sid.String, gen.String)
		present[id] = true
		if r.in.otherCursors[id] == nil {
			todo = append(todo, storeArchive{sid.String, gen.String, key.String})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list archives: %w", err)
	}
	for _, a := range todo {
		if err := r.readArchive(ctx, d, st, a); err != nil {
			return fmt.Errorf("archive %s generation %s: %w", a.sessionID, a.gen, err)
		}
		if len(r.out.records) >= r.in.cfg.BatchRecords {
			if err := r.commit(); err != nil {
				return err
			}
		}
	}
	prefix := "sqlite-archive:" + st.path + ":"
	for id := range r.in.otherCursors {
		if strings.HasPrefix(id, prefix) && !present[id] {
			r.batch.Cursors[id] = nil // pruned by retention
		}
	}
	return nil
}

// readArchive reads one archive blob: a JSONL transcript, plain or zstd.
func (r *storeReader) readArchive(ctx context.Context, d *storeDB, st store, a storeArchive) error {
	var enc sql.NullString
	var blob []byte
	found, err := d.queryRow(ctx, `SELECT `+d.s.colOr(tArchives, "encoding")+`, CAST(archive_blob AS BLOB) FROM `+tArchives+
		` WHERE session_id = ? AND CAST(generation AS TEXT) = ?`, []any{a.sessionID, a.gen}, &enc, &blob)
	if err != nil || !found {
		return err // not found: pruned since the listing
	}
	if r.in.meta[storage.SessionMetaID(storage.SourceOpenClaw, a.sessionID)].Key == "" {
		if err := r.learnMeta(ctx, d, a.sessionID, a.key); err != nil {
			return err
		}
	}
	cur := archiveCursor{SessionID: a.sessionID, Gen: a.gen}
	var src io.Reader = bytes.NewReader(blob)
	switch enc.String {
	case "", "identity":
	case "zstd":
		dec, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return err
		}
		defer dec.Close()
		src = dec
	default:
		r.in.log.Warn("OpenClaw archive in an unknown encoding; not counted",
			"path", st.path, "session_id", a.sessionID, "encoding", enc.String)
		r.out.skips.Unsupported++
		src = nil
	}
	if src != nil {
		// The live rows of the session were counted under its cursor (most
		// often deleted in this very poll, still known until the commit):
		// its archive, the same transcript, counts only the skips beyond
		// them, as a rewrite does (see rereads.go).
		var counted rereadSkips
		if raw := r.in.otherCursors[sessionCursorID(st.path, a.sessionID)]; raw != nil {
			var live storeCursor
			if json.Unmarshal(raw, &live) == nil {
				counted.fromStart(&live.rereadSkips)
			}
		}
		r.settled(&counted, func() { cur.Lines = r.archiveLines(src, st.agent, a.sessionID) })
	}
	// An archive never changes: it is marked read even when it was corrupt,
	// since reading it again would give the same.
	if v, err := json.Marshal(cur); err == nil {
		r.batch.Cursors[archiveCursorID(st.path, a.sessionID, a.gen)] = v
	}
	r.res.Read++
	r.res.Bytes += int64(len(blob))
	return nil
}

// archiveLines folds the lines of an archive in and returns their number.
func (r *storeReader) archiveLines(src io.Reader, agent, sessionID string) int {
	lr := newLineReader(src, 0, r.lineBuf)
	defer func() { r.lineBuf = lr.buf[:0] }()
	var snd sender
	lines := 0
	for {
		line, _, ok := lr.next()
		if !ok {
			break
		}
		lines++
		r.handle(line, agent, sessionID, &snd)
	}
	r.out.skips.OversizeLine += int64(lr.oversize)
	if lr.err != nil {
		r.out.skips.Malformed++ // a corrupt blob: its readable lines are counted
		return lines
	}
	if tail := lr.tail(); len(bytes.TrimSpace(tail)) > 0 {
		lines++ // the blob's last line needs no "\n": the blob is complete
		r.handle(tail, agent, sessionID, &snd)
	}
	return lines
}
