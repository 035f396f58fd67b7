package ingest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// storeBusyTimeout is how long a query waits for a writer's lock. In WAL
// mode (OpenClaw's default) readers never wait for writers; a lock this long
// means a rollback-journal writer, a migration or a VACUUM. A poll gives up on
// that store and the next one catches up, rather than stall every source.
const storeBusyTimeout = time.Second

// openStore opens an OpenClaw agent database read-only. mode=ro makes every
// write fail, and a read-only connection never checkpoints the WAL, so the
// gateway's files are never modified (SQLite may create the -shm index if it
// is missing, as any reader must to see rows that live only in the WAL).
// One connection: queries run one after another, each its own short read
// transaction, so the gateway's checkpoints are never held back for long.
func openStore(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", storeDSN(abs))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db, nil
}

// storeDB is an open store for one poll: its schema and the statements
// prepared on it. A poll runs the same few queries once per session;
// parsing each one again would cost more than running it.
type storeDB struct {
	db    *sql.DB
	s     *storeSchema
	stmts map[string]*sql.Stmt
	// successors maps a session id to the window that continues it (read
	// once, when first needed: previous_session_id has no index, and a
	// lookup per session would scan the table each time).
	successors map[string]sessionMeta
}

func (d *storeDB) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st := d.stmts[q]; st != nil {
		return st, nil
	}
	st, err := d.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	d.stmts[q] = st
	return st, nil
}

func (d *storeDB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := d.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow scans the first row of q into dest; found is false when there is none.
func (d *storeDB) queryRow(ctx context.Context, q string, args []any, dest ...any) (found bool, err error) {
	st, err := d.stmt(ctx, q)
	if err != nil {
		return false, err
	}
	switch err := st.QueryRowContext(ctx, args...).Scan(dest...); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

func (d *storeDB) close() {
	for _, st := range d.stmts {
		st.Close()
	}
}

// storeDSN is a SQLite URI for path. SQLite applies mode=ro; the modernc
// driver runs _pragma values on each new connection. '?', '#' and '%' in
// the path would end or corrupt the URI's path part, so they are escaped.
func storeDSN(abs string) string {
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(abs))
	return fmt.Sprintf("file:%s?mode=ro&_pragma=busy_timeout(%d)", p, storeBusyTimeout.Milliseconds())
}

// isBusy reports whether err is SQLite's "database is locked/busy".
func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // extended codes keep the primary code in the low byte
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// Tables of the agent database (see reference/openclaw-format.md §2.4-2.5).
const (
	tEvents     = "transcript_events"
	tWindows    = "session_windows"
	tNodes      = "session_nodes"
	tWatermarks = "transcript_rewrite_watermarks"
	tArchives   = "session_transcript_archives"
)

// betaTables are the table names of the early 2026.7 beta stores, a layout
// whose transcripts fleetmeter does not read.
var betaTables = []string{"sessions", "session_entries"}

// storeSchema is what a database holds: its tables and their columns, as
// probed (forks, betas and later versions differ; nothing is assumed).
type storeSchema struct {
	cols map[string]map[string]bool // table → column → present
	// eventsIndexed: transcript_events has an index led by session_id (its
	// primary key), so sessions can be listed by seeking instead of scanning.
	eventsIndexed bool

	listSQL, eventsSQL string
}

func (s *storeSchema) has(table string, cols ...string) bool {
	t := s.cols[table]
	if t == nil {
		return false
	}
	for _, c := range cols {
		if !t[c] {
			return false
		}
	}
	return true
}

// probeSchema reads the tables and columns of the database in one query.
func probeSchema(ctx context.Context, db *sql.DB) (*storeSchema, error) {
	rows, err := db.QueryContext(ctx, `SELECT m.name, p.name FROM sqlite_master m
		JOIN pragma_table_info(m.name) p WHERE m.type = 'table'`)
	if err != nil {
		return nil, fmt.Errorf("probe tables: %w", err)
	}
	s := &storeSchema{cols: map[string]map[string]bool{}}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			rows.Close()
			return nil, fmt.Errorf("probe tables: %w", err)
		}
		if s.cols[table] == nil {
			s.cols[table] = map[string]bool{}
		}
		s.cols[table][col] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("probe tables: %w", err)
	}
	if s.has(tEvents, "session_id") {
		var one int
		err := db.QueryRowContext(ctx, `SELECT 1 FROM pragma_index_list('`+tEvents+`') l
			JOIN pragma_index_info(l.name) i WHERE i.seqno = 0 AND i.name = 'session_id' LIMIT 1`).Scan(&one)
		switch {
		case err == nil:
			s.eventsIndexed = true
		case !errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("probe indexes: %w", err)
		}
	}
	s.build()
	return s, nil
}

// unsupported says why the store cannot be read, or "" when it can (or
// when it is empty: a store being created holds no usage yet).
func (s *storeSchema) unsupported() string {
	if len(s.cols) == 0 {
		return ""
	}
	if s.has(tEvents, "session_id", "seq") && (s.has(tEvents, "event_json") || s.has(tEvents, "event_zstd")) {
		return ""
	}
	var beta []string
	for _, t := range betaTables {
		if s.cols[t] != nil {
			beta = append(beta, t)
		}
	}
	if len(beta) > 0 {
		return "early beta layout (tables " + strings.Join(beta, ", ") + ", no " + tEvents + ")"
	}
	if s.cols[tEvents] != nil {
		return tEvents + " without session_id, seq and event_json/event_zstd columns"
	}
	names := make([]string, 0, len(s.cols))
	for t := range s.cols {
		names = append(names, t)
	}
	sort.Strings(names)
	if len(names) > 8 {
		names = append(names[:8], "…")
	}
	return "no " + tEvents + " table (tables " + strings.Join(names, ", ") + ")"
}

// build writes the two queries every poll runs, for the columns present.
func (s *storeSchema) build() {
	gen := "NULL"
	if s.has(tWatermarks, "session_id", "generation") {
		order := ""
		if s.has(tWatermarks, "updated_at") {
			order = " ORDER BY w.updated_at DESC"
		}
		gen = `(SELECT CAST(w.generation AS TEXT) FROM ` + tWatermarks + ` w WHERE w.session_id = s.id` + order + ` LIMIT 1)`
	}
	if s.eventsIndexed {
		// A loose index scan: one seek per session for its id and one for
		// its max(seq), instead of GROUP BY's walk over every row. An
		// unchanged history then costs a poll O(sessions), not O(rows).
		s.listSQL = `WITH RECURSIVE s(id) AS (
			SELECT (SELECT min(session_id) FROM ` + tEvents + `)
			UNION ALL
			SELECT (SELECT min(session_id) FROM ` + tEvents + ` WHERE session_id > s.id) FROM s WHERE s.id IS NOT NULL)
		SELECT s.id, (SELECT max(seq) FROM ` + tEvents + ` e WHERE e.session_id = s.id), ` + gen + `
		FROM s WHERE s.id IS NOT NULL`
	} else {
		s.listSQL = `SELECT s.id, s.m, ` + gen + ` FROM
			(SELECT session_id AS id, max(seq) AS m FROM ` + tEvents + ` WHERE session_id IS NOT NULL GROUP BY session_id) s`
	}
	js, zs, n := "NULL", "NULL", "NULL"
	if s.has(tEvents, "event_json") {
		js = "CAST(event_json AS BLOB)" // a blob reaches Go as []byte without a string copy
	}
	if s.has(tEvents, "event_zstd") {
		zs = "event_zstd"
	}
	if s.has(tEvents, "event_utf8_bytes") {
		n = "event_utf8_bytes"
	}
	s.eventsSQL = `SELECT seq, ` + js + `, ` + zs + `, ` + n + ` FROM ` + tEvents +
		` WHERE session_id = ? AND seq >= ? ORDER BY seq LIMIT ?`
}

// listedSession is one session of transcript_events as a poll sees it.
type listedSession struct {
	id     string
	maxSeq int64
	gen    string // rewrite generation, "" when none
}

func listSessions(ctx context.Context, d *storeDB) ([]listedSession, error) {
	rows, err := d.db.QueryContext(ctx, d.s.listSQL)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []listedSession
	for rows.Next() {
		var ls listedSession
		var maxSeq sql.NullInt64
		var gen sql.NullString
		if err := rows.Scan(&ls.id, &maxSeq, &gen); err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		ls.maxSeq, ls.gen = maxSeq.Int64, gen.String
		if maxSeq.Valid {
			out = append(out, ls)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// lookupMeta finds a session's key and origin: its session_windows row;
// failing that, the window that continues it (a reset keeps the key, and
// previous_session_id points back); then the session_nodes entry for the
// key (the sessions.json entry: origin, chat type), or the node whose
// current session it is.
func lookupMeta(ctx context.Context, d *storeDB, sessionID string) (sessionMeta, error) {
	s := d.s
	var m sessionMeta
	if s.has(tWindows, "session_id", "session_key") {
		var key, channel, chatType sql.NullString
		cols := "session_key, " + s.colOr(tWindows, "channel") + ", " + s.colOr(tWindows, "chat_type")
		found, err := d.queryRow(ctx, `SELECT `+cols+` FROM `+tWindows+` WHERE session_id = ?`,
			[]any{sessionID}, &key, &channel, &chatType)
		if err != nil {
			return m, fmt.Errorf("session window of %s: %w", sessionID, err)
		}
		m = sessionMeta{Key: key.String, Channel: channel.String, ChatType: chatType.String}
		if !found && s.has(tWindows, "previous_session_id") {
			if d.successors == nil {
				if err := d.loadSuccessors(ctx, cols); err != nil {
					return m, err
				}
			}
			m = d.successors[sessionID]
		}
	}
	if !s.has(tNodes, "session_key", "entry_json") {
		return m, nil
	}
	var key, entry sql.NullString
	var found bool
	var err error
	switch {
	case m.Key != "":
		key.String = m.Key
		found, err = d.queryRow(ctx, `SELECT entry_json FROM `+tNodes+` WHERE session_key = ?`, []any{m.Key}, &entry)
	case s.has(tNodes, "current_session_id"):
		found, err = d.queryRow(ctx, `SELECT session_key, entry_json FROM `+tNodes+` WHERE current_session_id = ? LIMIT 1`,
			[]any{sessionID}, &key, &entry)
	}
	if err != nil {
		return m, fmt.Errorf("session node of %s: %w", sessionID, err)
	}
	if !found {
		return m, nil
	}
	return mergeMeta(m, entryMeta(key.String, []byte(entry.String))), nil
}

func (d *storeDB) loadSuccessors(ctx context.Context, cols string) error {
	rows, err := d.db.QueryContext(ctx, `SELECT previous_session_id, `+cols+` FROM `+tWindows+
		` WHERE previous_session_id IS NOT NULL`)
	if err != nil {
		return fmt.Errorf("session windows: %w", err)
	}
	defer rows.Close()
	d.successors = map[string]sessionMeta{}
	for rows.Next() {
		var prev, key, channel, chatType sql.NullString
		if err := rows.Scan(&prev, &key, &channel, &chatType); err != nil {
			return fmt.Errorf("session windows: %w", err)
		}
		d.successors[prev.String] = sessionMeta{Key: key.String, Channel: channel.String, ChatType: chatType.String}
	}
	return rows.Err()
}

// colOr selects a column when the table has it, else an empty string.
func (s *storeSchema) colOr(table, col string) string {
	if s.has(table, col) {
		return col
	}
	return "''"
}

// mergeMeta fills the empty fields of m from o.
func mergeMeta(m, o sessionMeta) sessionMeta {
	m.Key = firstNonEmpty(m.Key, o.Key)
	m.Channel = firstNonEmpty(m.Channel, o.Channel)
	m.ChatType = firstNonEmpty(m.ChatType, o.ChatType)
	m.OriginFrom = firstNonEmpty(m.OriginFrom, o.OriginFrom)
	m.Label = firstNonEmpty(m.Label, o.Label)
	m.ClaudeCLI = firstNonEmpty(m.ClaudeCLI, o.ClaudeCLI)
	m.CodexCLI = firstNonEmpty(m.CodexCLI, o.CodexCLI)
	return m
}
