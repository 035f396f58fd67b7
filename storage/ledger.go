package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Batch is what one ingest step commits: new records, the cursors that say
// how far the sources were read, attribution learned on the way, and skip
// counts. Apply commits all of it in one transaction.
type Batch struct {
	Records []Usage
	// Chunks are more records, in slices handed over whole: a reader's
	// chunk joins the batch without being copied again. Records come
	// first, then the chunks in order.
	Chunks [][]Usage
	// Cursors to put (value non-nil) or delete (value nil), by opaque id.
	Cursors map[string][]byte
	// SessionMeta to put, by SessionMetaID.
	SessionMeta map[string][]byte
	Skips       Skips
}

// Empty reports whether the batch holds nothing to write.
func (b *Batch) Empty() bool {
	return b.Len() == 0 && len(b.Cursors) == 0 && len(b.SessionMeta) == 0 && b.Skips == (Skips{})
}

// Len is the number of records in the batch.
func (b *Batch) Len() int {
	n := len(b.Records)
	for _, c := range b.Chunks {
		n += len(c)
	}
	return n
}

// Each calls fn for every record, Records first, then the chunks.
func (b *Batch) Each(fn func(*Usage) error) error {
	for i := range b.Records {
		if err := fn(&b.Records[i]); err != nil {
			return err
		}
	}
	for _, c := range b.Chunks {
		for i := range c {
			if err := fn(&c[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// ApplyResult says what Apply did with the records.
type ApplyResult struct {
	Added      int // new model calls
	Replaced   int // a larger copy of a known call replaced the smaller one
	Duplicates int // known calls, ignored
	// Superseded: mirror rows removed because the transcript they
	// summarise arrived (storage.ApplyRecord, rule 2).
	Superseded int
	// TooOld: calls older than what retention pruned before this file kept
	// dedupe keys (schema 1), which could otherwise count twice.
	TooOld int
	// Corrected counts the added records that carry a writer correction.
	Corrected Corrections
}

// Count folds one record's result in.
func (r *ApplyResult) Count(rr RecordResult, u *Usage) {
	switch rr.Outcome {
	case OutcomeAdded:
		r.Added++
		r.Corrected.Count(u.Corrected)
	case OutcomeReplaced:
		r.Replaced++
	default:
		r.Duplicates++
	}
	r.Superseded += rr.Superseded
}

// Apply commits a batch in one transaction: for each record the rules of
// ApplyRecord (dedupe, mirrors, users) with the ledger rows, seen keys,
// rollup deltas and outbox marks they imply; then cursors, session
// attribution, skip and correction counters. A crash at any instant leaves
// all of it or none.
func (db *DB) Apply(b *Batch) (ApplyResult, error) {
	var res ApplyResult
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		res = ApplyResult{}
		w := db.writer(tx)
		w.expect(b.Len())
		legacy := int64(decodeUint(w.metaBucket.Get(metaSeenPrunedBefore)))
		err := b.Each(func(u *Usage) error {
			if u.DedupeKey == "" {
				return fmt.Errorf("record at %d without dedupe key", u.TS)
			}
			u.Normalize()
			if u.TS < legacy {
				res.TooOld++
				return nil
			}
			rr, err := ApplyRecord(w, u)
			res.Count(rr, u)
			return err
		})
		if err != nil {
			return err
		}
		if err := w.flush(); err != nil {
			return err
		}
		if err := w.putSorted(tx.Bucket(bucketCursors), b.Cursors); err != nil {
			return err
		}
		sm := tx.Bucket(bucketSessionMeta)
		for id, v := range b.SessionMeta {
			if len(id) > 4*MaxNameBytes {
				continue // an absurd session id from untrusted input: not worth failing the batch
			}
			if err := sm.Put([]byte(id), v); err != nil {
				return err
			}
		}
		skips := b.Skips
		skips.Duplicate += int64(res.Duplicates)
		skips.TooOld += int64(res.TooOld)
		if err := addSkips(tx, skips); err != nil {
			return err
		}
		return addCorrections(tx, res.Corrected)
	})
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply batch of %d records: %w", b.Len(), err)
	}
	return res, nil
}

func addSkips(tx *bolt.Tx, add Skips) error {
	if add == (Skips{}) {
		return nil
	}
	return updateMetaJSON(tx, metaSkips, func(s *Skips) { s.Add(add) })
}

func addCorrections(tx *bolt.Tx, add Corrections) error {
	if add == (Corrections{}) {
		return nil
	}
	return updateMetaJSON(tx, metaCorrections, func(c *Corrections) { c.Add(add) })
}

// updateMetaJSON reads a JSON value of the meta bucket, changes it and
// writes it back.
func updateMetaJSON[T any](tx *bolt.Tx, key []byte, change func(*T)) error {
	meta := tx.Bucket(bucketMeta)
	var v T
	if raw := meta.Get(key); raw != nil {
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("meta %s: %w", key, err)
		}
	}
	change(&v)
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return meta.Put(key, raw)
}

// Corrections returns how many stored records carry a writer correction,
// by kind, counted since the file was created.
func (db *DB) Corrections() (Corrections, error) {
	var c Corrections
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaCorrections); v != nil {
			return json.Unmarshal(v, &c)
		}
		return nil
	})
	return c, err
}

// SessionMetaID is the key session_meta uses for a session.
func SessionMetaID(source, sessionID string) string {
	return string(sessionKey(source, sessionID))
}

// AppendSessionMetaID appends SessionMetaID's bytes to dst: a map lookup
// with string(AppendSessionMetaID(buf[:0], …)) allocates nothing.
func AppendSessionMetaID(dst []byte, source, sessionID string) []byte {
	return putString(putString(dst, source), sessionID)
}

// SessionMeta returns every stored attribution, by SessionMetaID.
func (db *DB) SessionMeta() (map[string][]byte, error) {
	return db.copyBucket(bucketSessionMeta)
}

// Cursors returns every stored ingest cursor, by id.
func (db *DB) Cursors() (map[string][]byte, error) {
	return db.copyBucket(bucketCursors)
}

// CursorsOf returns the stored cursors of ids, by id (absent ones are left
// out): what the ingester reads back for the files that changed.
func (db *DB) CursorsOf(ids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(ids))
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCursors)
		for _, id := range ids {
			if v := b.Get([]byte(id)); v != nil {
				out[id] = bytes.Clone(v)
			}
		}
		return nil
	})
	return out, err
}

func (db *DB) copyBucket(name []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(name).ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	return out, err
}

// writer applies records inside one write transaction. Session rows are
// cached and written once at the end: a batch touches few sessions many
// times. It is the bbolt RecordStore of ApplyRecord.
type writer struct {
	tx                            *bolt.Tx
	loc                           *time.Location
	ledger, seen, daily, weekly   *bolt.Bucket
	dims                          *bolt.Bucket
	outbox, sessionsB, metaBucket *bolt.Bucket
	changeSeq                     uint64
	change                        []byte // changeSeq encoded: the value of every outbox mark of the transaction
	sessions                      map[string]*pendingSession
	lastSession                   *pendingSession // the session of the record before
	keyBuf, scratch               []byte          // for lookups; for encoding
	arena                         arena           // the keys and values the transaction puts
	// The seen key of lastDedupe: Lookup and Insert of one record hash
	// the same dedupe key.
	lastDedupe string
	lastSeen   [16]byte
	scope      *rebuildScope // nil: every row takes the record
	// The rollup rows the last record added to (daily, its three
	// projections, weekly), with its day and dimension; flush forgets them.
	lastRows [5]*pendingRow
	lastDay  int32
	lastDim  Dim
	// Caches of RecordStore answers for this transaction.
	aliases map[[3]string]string
	claimed map[string]bool
	// rows are the rollup rows changed in this transaction, by bucket and
	// key, written by flush.
	rows map[*bolt.Bucket]map[string]*pendingRow
	// ledgerPuts and seenPuts are the ledger rows (nil: deleted) and seen
	// keys written in this transaction, put by flush in key order: bbolt
	// keeps a transaction's changes in nodes that split only at commit, so
	// keys put in random order shift thousands of entries each (the first
	// batch of a fresh ledger was a third of a cold ingest's time).
	ledgerPuts, seenPuts map[string][]byte
}

func (db *DB) writer(tx *bolt.Tx) *writer {
	return &writer{
		tx:         tx,
		loc:        db.loc,
		ledger:     tx.Bucket(bucketLedger),
		seen:       tx.Bucket(bucketSeen),
		daily:      tx.Bucket(bucketDaily),
		weekly:     tx.Bucket(bucketWeekly),
		dims:       tx.Bucket(bucketDailyDims),
		outbox:     tx.Bucket(bucketOutbox),
		sessionsB:  tx.Bucket(bucketSessions),
		metaBucket: tx.Bucket(bucketMeta),
		sessions:   map[string]*pendingSession{},
		aliases:    map[[3]string]string{},
		claimed:    map[string]bool{},
		rows:       map[*bolt.Bucket]map[string]*pendingRow{},
		ledgerPuts: map[string][]byte{},
		seenPuts:   map[string][]byte{},
	}
}

// usageRow is u's ledger row in the arena: encoded in a scratch buffer
// the writer keeps, then copied, since its size is known only then.
func (w *writer) usageRow(u *Usage) ([]byte, error) {
	b, err := appendUsageRow(w.scratch[:0], u)
	if err != nil {
		return nil, err
	}
	w.scratch = b
	return append(w.arena.alloc(len(b))[:0], b...), nil
}

// expect sizes the transaction's maps for a batch of n records, rather
// than growing them (and rehashing every key) as the records come.
func (w *writer) expect(n int) {
	w.ledgerPuts = make(map[string][]byte, n)
	w.seenPuts = make(map[string][]byte, n)
	w.sessions = make(map[string]*pendingSession, n/4)
}

// seenKey is seenKey(dedupeKey), computed once for the record at hand.
// The bytes are valid until the next call.
func (w *writer) seenKey(dedupeKey string) []byte {
	if dedupeKey != w.lastDedupe || w.lastDedupe == "" {
		w.lastDedupe, w.lastSeen = dedupeKey, seenDigest(dedupeKey)
	}
	return w.lastSeen[:]
}

// seenGet is the ledger key a seen key points at, this transaction's puts
// included.
func (w *writer) seenGet(sk []byte) []byte {
	if lk, ok := w.seenPuts[string(sk)]; ok {
		return lk
	}
	return w.seen.Get(sk)
}

// ledgerGet is a ledger row, this transaction's puts and deletes included.
func (w *writer) ledgerGet(lk []byte) []byte {
	if v, ok := w.ledgerPuts[string(lk)]; ok {
		return v
	}
	return w.ledger.Get(lk)
}

// Lookup implements RecordStore: the seen key points at the ledger row; a
// row that is gone was pruned by retention or removed (a mirror, a moved
// user), and its key is kept so the call cannot count again.
func (w *writer) Lookup(dedupeKey string) (*Usage, bool, error) {
	lk := w.seenGet(w.seenKey(dedupeKey))
	if lk == nil {
		return nil, false, nil
	}
	raw := w.ledgerGet(lk)
	if raw == nil {
		return nil, true, nil
	}
	var old Usage
	if err := decodeUsage(raw, &old); err != nil {
		return nil, false, fmt.Errorf("ledger row %x: %w", lk, err)
	}
	return &old, false, nil
}

// Insert implements RecordStore.
func (w *writer) Insert(u *Usage) error {
	seq, err := w.ledger.NextSequence()
	if err != nil {
		return err
	}
	lk := putLedgerKey(w.arena.alloc(16), u.TS, seq)
	v, err := w.usageRow(u)
	if err != nil {
		return err
	}
	w.ledgerPuts[string(lk)] = v
	w.seenPuts[string(w.seenKey(u.DedupeKey))] = lk
	if u.User != "" && u.UserLabel != "" {
		if err := w.tx.Bucket(bucketUsers).Put([]byte(u.User), []byte(u.UserLabel)); err != nil {
			return err
		}
	}
	return w.applyRollups(u, +1)
}

// Remove implements RecordStore.
func (w *writer) Remove(u *Usage) error {
	lk := w.seenGet(seenKey(u.DedupeKey))
	if lk == nil {
		return fmt.Errorf("remove %q: not in the ledger", u.DedupeKey)
	}
	if err := w.applyRollups(u, -1); err != nil {
		return err
	}
	w.ledgerPuts[string(lk)] = nil
	return nil
}

// Claimed implements RecordStore. Answers are cached for the transaction:
// every Claude Code and Codex record asks for its own session.
func (w *writer) Claimed(group string) (bool, error) {
	if c, ok := w.claimed[group]; ok {
		return c, nil
	}
	c := w.tx.Bucket(bucketClaimed).Get([]byte(group)) != nil
	w.claimed[group] = c
	return c, nil
}

// Claim implements RecordStore: the group is marked, its mirror index
// emptied, and the mirrors still in the ledger returned.
func (w *writer) Claim(group string) ([]Usage, error) {
	w.claimed[group] = true
	if err := w.tx.Bucket(bucketClaimed).Put([]byte(group), []byte{1}); err != nil {
		return nil, err
	}
	return w.takeIndexed(w.tx.Bucket(bucketMirrors), putString(nil, group))
}

// IndexMirror implements RecordStore.
func (w *writer) IndexMirror(u *Usage) error {
	return w.index(w.tx.Bucket(bucketMirrors), putString(nil, u.MirrorOf), u)
}

// Alias implements RecordStore. Lookups are cached for the transaction:
// every record with a qualified user asks.
func (w *writer) Alias(source, agent, bare string) (string, error) {
	k := [3]string{source, agent, bare}
	if a, ok := w.aliases[k]; ok {
		return a, nil
	}
	a := string(w.tx.Bucket(bucketUserAlias).Get(userKey(source, agent, bare)))
	w.aliases[k] = a
	return a, nil
}

// SetAlias implements RecordStore.
func (w *writer) SetAlias(source, agent, bare, user string) error {
	w.aliases[[3]string{source, agent, bare}] = user
	return w.tx.Bucket(bucketUserAlias).Put(userKey(source, agent, bare), []byte(user))
}

// IndexBare implements RecordStore.
func (w *writer) IndexBare(u *Usage) error {
	return w.index(w.tx.Bucket(bucketBareUsers), userKey(u.Source, u.Agent, u.User), u)
}

// TakeBare implements RecordStore.
func (w *writer) TakeBare(source, agent, bare string) ([]Usage, error) {
	return w.takeIndexed(w.tx.Bucket(bucketBareUsers), userKey(source, agent, bare))
}

// userKey is lp(source NUL agent) lp(bare id): the key of user_alias and
// the prefix of bare_users.
func userKey(source, agent, bare string) []byte {
	scope := make([]byte, 0, len(source)+1+len(agent))
	scope = append(append(append(scope, source...), 0), agent...)
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 4+len(scope)+len(bare)), uint16(len(scope)))
	return putString(append(b, scope...), bare)
}

// index puts prefix | the ledger key of u (just stored) into b.
func (w *writer) index(b *bolt.Bucket, prefix []byte, u *Usage) error {
	lk := w.seenGet(seenKey(u.DedupeKey))
	if lk == nil {
		return fmt.Errorf("index %q: not in the ledger", u.DedupeKey)
	}
	return b.Put(append(prefix, lk...), nil)
}

// takeIndexed deletes every prefix | ledger key entry of b and returns the
// records still in the ledger (pruned ones are skipped).
func (w *writer) takeIndexed(b *bolt.Bucket, prefix []byte) ([]Usage, error) {
	var keys [][]byte
	var out []Usage
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
		raw := w.ledgerGet(k[len(prefix):])
		if raw == nil {
			continue
		}
		var u Usage
		if err := decodeUsage(raw, &u); err != nil {
			return nil, fmt.Errorf("ledger row %x: %w", k[len(prefix):], err)
		}
		out = append(out, u)
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// applyRollups adds (sign +1) or removes (sign -1) a record's contribution
// to its daily, weekly and session rows, marking each for upstream.
func (w *writer) applyRollups(u *Usage, sign int) error {
	t := TotalsOf(u)
	if sign < 0 {
		t = t.negate()
	}
	day := DayNumber(u.TS, w.loc)
	dim := DimOf(u)
	sc := w.scope
	if sc == nil && w.lastRows[0] != nil && day == w.lastDay && dim == w.lastDim {
		// The rows of the record before (a file's calls mostly share their
		// day, agent, user and model): no key to build and hash again.
		for _, r := range w.lastRows {
			r.t.Add(t)
		}
	} else {
		w.lastRows = [5]*pendingRow{}
		if sc == nil || u.TS >= sc.dailyFrom {
			var err error
			if w.lastRows[0], err = w.addRow(w.daily, OutboxDaily, rowKey(day, dim), t); err != nil {
				return err
			}
			for i, kind := range []byte{DimModel, DimAgent, DimUser} {
				if w.lastRows[1+i], err = w.addRow(w.dims, 0, dimKey(kind, day, dim), t); err != nil {
					return err
				}
			}
		}
		if sc == nil || u.TS >= sc.weeklyFrom {
			var err error
			if w.lastRows[4], err = w.addRow(w.weekly, OutboxWeekly, rowKey(WeekStart(day), dim), t); err != nil {
				return err
			}
		}
		w.lastDay, w.lastDim = day, dim
		if sc != nil {
			w.lastRows = [5]*pendingRow{} // a rebuild's scope: not kept
		}
	}
	if sc != nil && sc.keptSessions[string(sessionKey(u.Source, u.SessionID))] {
		return nil
	}
	return w.addSession(u, t)
}

// DimOf is the rollup dimension of a record.
func DimOf(u *Usage) Dim {
	return Dim{Source: u.Source, Agent: u.Agent, User: u.User, Provider: u.Provider, Model: u.Model}
}

// addRow adds delta to a rollup row. Rows are kept in memory until the
// transaction's flush: a batch touches few rows many times (one day, one
// agent, one model), and each row is then read and written once.
func (w *writer) addRow(b *bolt.Bucket, table byte, key []byte, delta Totals) (*pendingRow, error) {
	rows := w.rows[b]
	if rows == nil {
		rows = map[string]*pendingRow{}
		w.rows[b] = rows
	}
	r := rows[string(key)]
	if r == nil {
		r = &pendingRow{table: table, key: key}
		if v := b.Get(key); v != nil {
			var err error
			if r.t, err = decodeTotals(v); err != nil {
				return nil, err
			}
		}
		rows[string(key)] = r
	}
	r.t.Add(delta)
	return r, nil
}

// pendingRow is a rollup row changed in this transaction.
type pendingRow struct {
	table byte // outbox table; 0 for rows upstream does not hold
	key   []byte
	t     Totals
}

// flush writes what the transaction changed: rollup rows (an emptied row
// is deleted) with their outbox marks, and session rows.
func (w *writer) flush() error {
	if err := w.putSorted(w.ledger, w.ledgerPuts); err != nil {
		return err
	}
	if err := w.putSorted(w.seen, w.seenPuts); err != nil {
		return err
	}
	clear(w.ledgerPuts)
	clear(w.seenPuts)
	changes := len(w.sessions)
	for _, rows := range w.rows {
		changes += len(rows)
	}
	packFuller(w.outbox, changes)
	for b, rows := range w.rows {
		keys := slices.Sorted(maps.Keys(rows)) // in key order, as putSorted
		for _, k := range keys {
			r := rows[k]
			var err error
			if r.t.IsZero() {
				err = b.Delete(r.key)
			} else {
				err = b.Put(r.key, encodeTotals(r.t))
			}
			if err == nil && r.table != 0 {
				err = w.markChanged(r.table, r.key)
			}
			if err != nil {
				return err
			}
		}
	}
	clear(w.rows)
	w.lastRows = [5]*pendingRow{}
	return w.flushSessions()
}

// putSorted puts (or deletes, for nil) puts into b in key order.
func (w *writer) putSorted(b *bolt.Bucket, puts map[string][]byte) error {
	packFuller(b, len(puts))
	for _, k := range slices.Sorted(maps.Keys(puts)) {
		key := append(w.arena.alloc(len(k))[:0], k...)
		var err error
		if v := puts[k]; v == nil {
			err = b.Delete(key)
		} else {
			err = b.Put(key, v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// bbolt splits a transaction's changed pages at commit to its bucket's
// FillPercent: half a page by default, room for later inserts between
// keys. A transaction that puts many keys into a bucket (a first pass over
// a fleet's history) packs them fuller: it puts them in key order, so at
// the default most of its new pages would stay half empty for good. A cold
// ingest of 10k small files wrote 37 MB of pages at the default and 26 MB
// with this; a later insert between full pages splits one, as always.
const bulkPuts, bulkFill = 256, 0.9

// packFuller sets b's fill for a transaction that puts n keys into it.
// (The setting is the bucket handle's, for this transaction only.)
func packFuller(b *bolt.Bucket, n int) {
	if b != nil && n >= bulkPuts {
		b.FillPercent = bulkFill
	}
}

func (w *writer) markChanged(table byte, key []byte) error {
	if w.outbox == nil {
		return nil
	}
	if w.changeSeq == 0 {
		seq, err := w.metaBucket.NextSequence()
		if err != nil {
			return err
		}
		w.changeSeq, w.change = seq, encodeUint(seq)
	}
	k := append(w.arena.alloc(1 + len(key))[:0], table)
	return w.outbox.Put(append(k, key...), w.change)
}

// pendingSession is a session row changed in this transaction: its
// attribution (a Session whose Models stay nil) and its per-model sums in
// a short slice. A map of Totals allocated a kilobyte for its first model,
// and a cold ingest of many small transcripts adds a session per file.
type pendingSession struct {
	s      Session
	models []modelSums
}

// modelSums is one model's sums in a session; name is "provider/model".
type modelSums struct {
	name string
	t    Totals
}

func (w *writer) addSession(u *Usage, t Totals) error {
	ps := w.lastSession
	if ps == nil || ps.s.SessionID != u.SessionID || ps.s.Source != u.Source {
		w.keyBuf = putString(putString(w.keyBuf[:0], u.Source), u.SessionID)
		var ok bool
		if ps, ok = w.sessions[string(w.keyBuf)]; !ok {
			ps = &pendingSession{s: Session{Source: u.Source, SessionID: u.SessionID}}
			if v := w.sessionsB.Get(w.keyBuf); v != nil {
				stored, err := decodeSession(v)
				if err != nil {
					return fmt.Errorf("session %q: %w", u.SessionID, err)
				}
				ps.s, ps.models = stored, make([]modelSums, 0, len(stored.Models))
				for name, t := range stored.Models {
					ps.models = append(ps.models, modelSums{name, t})
				}
				ps.s.Models = nil
			}
			w.sessions[string(w.keyBuf)] = ps
		}
		w.lastSession = ps
	}
	ps.merge(u, t)
	return nil
}

// merge folds one record (or its removal) into a session summary.
// Attribution follows the latest record by time, ties broken by value, so
// the result does not depend on the order records arrive in.
func (ps *pendingSession) merge(u *Usage, t Totals) {
	i := 0
	for ; i < len(ps.models); i++ {
		if n := ps.models[i].name; len(n) == len(u.Provider)+1+len(u.Model) &&
			n[len(u.Provider)] == '/' && n[:len(u.Provider)] == u.Provider && n[len(u.Provider)+1:] == u.Model {
			break
		}
	}
	if i == len(ps.models) {
		ps.models = append(ps.models, modelSums{name: u.Provider + "/" + u.Model})
	}
	ps.models[i].t.Add(t)
	if ps.models[i].t.IsZero() {
		ps.models = slices.Delete(ps.models, i, i+1)
	}
	if t.Messages < 0 {
		return // first/last and labels are kept: a replacement re-adds the same call
	}
	NoteActivity(&ps.s, u)
}

// NoteActivity updates a session with a call added to it: its first and
// last activity, and the agent, key and channel of its latest call (its
// models are the caller's). The in-memory tally shares it with Apply.
func NoteActivity(s *Session, u *Usage) {
	if s.FirstTS == 0 || u.TS < s.FirstTS {
		s.FirstTS = u.TS
	}
	newer := u.TS > s.LastTS || (u.TS == s.LastTS && u.SessionKey+u.Agent+u.Channel > s.SessionKey+s.Agent+s.Channel)
	if newer || s.Agent == "" {
		s.LastTS = max(s.LastTS, u.TS)
		if u.Agent != "" {
			s.Agent = u.Agent
		}
		if u.SessionKey != "" {
			s.SessionKey = u.SessionKey
		}
		if u.Channel != "" {
			s.Channel = u.Channel
		}
	}
}

func (w *writer) flushSessions() error {
	packFuller(w.sessionsB, len(w.sessions))
	for _, k := range slices.Sorted(maps.Keys(w.sessions)) {
		ps := w.sessions[k]
		key := append(w.arena.alloc(len(k))[:0], k...)
		var err error
		if len(ps.models) == 0 {
			err = w.sessionsB.Delete(key)
		} else {
			w.scratch = appendSession(w.scratch[:0], &ps.s, ps.models)
			err = w.sessionsB.Put(key, append(w.arena.alloc(len(w.scratch))[:0], w.scratch...))
		}
		if err != nil {
			return err
		}
		if err := w.markChanged(OutboxSession, key); err != nil {
			return err
		}
	}
	clear(w.sessions)
	w.lastSession = nil
	return nil
}

// arena hands out the byte slices a write transaction puts: bbolt keeps
// them (not copies) until the commit, and one block for many keys and
// values is one allocation instead of one each.
type arena struct{ block []byte }

// alloc returns n bytes that stay valid for as long as the arena's
// caller holds them (a block is never reused).
func (a *arena) alloc(n int) []byte {
	if cap(a.block)-len(a.block) < n {
		a.block = make([]byte, 0, max(n, 64<<10))
	}
	b := a.block[len(a.block) : len(a.block)+n : len(a.block)+n]
	a.block = a.block[:len(a.block)+n]
	return b
}

// Ledger calls fn for each record with fromMillis <= ts < toMillis, in time
// order. Records are decoded copies: fn may keep them.
func (db *DB) Ledger(fromMillis, toMillis int64, fn func(*Usage) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLedger).Cursor()
		end := ledgerKeyPrefix(toMillis)
		for k, v := c.Seek(ledgerKeyPrefix(fromMillis)); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
			var u Usage
			if err := decodeUsage(v, &u); err != nil {
				return fmt.Errorf("ledger row %x: %w", k, err)
			}
			if err := fn(&u); err != nil {
				return err
			}
		}
		return nil
	})
}

// DailyRows returns the daily rows of days from..to inclusive.
func (db *DB) DailyRows(from, to int32) ([]Row, error) { return db.rows(bucketDaily, from, to) }

// DimRows returns the daily_dims rows of a projection kind (DimModel,
// DimAgent, DimUser) for days from..to inclusive; only the kind's fields
// of each row's Dim are set.
func (db *DB) DimRows(kind byte, from, to int32) ([]Row, error) {
	var out []Row
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDailyDims).Cursor()
		end := append([]byte{kind}, periodKey(to)...)
		for k, v := c.Seek(append([]byte{kind}, periodKey(from)...)); k != nil && bytes.Compare(k[:5], end) <= 0; k, v = c.Next() {
			period, dim, err := decodeRowKey(k[1:])
			if err != nil {
				return fmt.Errorf("daily_dims row %x: %w", k, err)
			}
			t, err := decodeTotals(v)
			if err != nil {
				return fmt.Errorf("daily_dims row %x: %w", k, err)
			}
			out = append(out, Row{Period: period, Dim: dim, Totals: t})
		}
		return nil
	})
	return out, err
}

// WeeklyRows returns the weekly rows whose week starts from..to inclusive.
func (db *DB) WeeklyRows(from, to int32) ([]Row, error) { return db.rows(bucketWeekly, from, to) }

func (db *DB) rows(name []byte, from, to int32) ([]Row, error) {
	var out []Row
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(name).Cursor()
		end := periodKey(to)
		for k, v := c.Seek(periodKey(from)); k != nil && bytes.Compare(k[:4], end) <= 0; k, v = c.Next() {
			period, dim, err := decodeRowKey(k)
			if err != nil {
				return fmt.Errorf("%s row %x: %w", name, k, err)
			}
			t, err := decodeTotals(v)
			if err != nil {
				return fmt.Errorf("%s row %x: %w", name, k, err)
			}
			out = append(out, Row{Period: period, Dim: dim, Totals: t})
		}
		return nil
	})
	return out, err
}

// UserLabels returns the latest display label of each user.
func (db *DB) UserLabels() (map[string]string, error) {
	m, err := db.copyBucket(bucketUsers)
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out, err
}

// Sessions returns every session summary.
func (db *DB) Sessions() ([]Session, error) {
	var out []Session
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			s, err := decodeSession(v)
			if err != nil {
				return fmt.Errorf("session row %x: %w", k, err)
			}
			out = append(out, s)
			return nil
		})
	})
	return out, err
}

// PruneLedger deletes ledger records older than beforeMillis, a chunk per
// transaction so writers are not held up. Rollups are kept, and so are the
// records' dedupe keys (32 bytes a call): a transcript read again later,
// however old, cannot count a pruned call twice, so ingest needs no
// retention horizon and a first ingest keeps rollups for all history.
func (db *DB) PruneLedger(beforeMillis int64) (int, error) {
	const chunk = 5000
	total := 0
	end := ledgerKeyPrefix(beforeMillis)
	for {
		n := 0
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			ledger := tx.Bucket(bucketLedger)
			var keys [][]byte
			c := ledger.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, end) < 0 && len(keys) < chunk; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := ledger.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			if n == 0 {
				return nil
			}
			meta := tx.Bucket(bucketMeta)
			if uint64(beforeMillis) > decodeUint(meta.Get(metaPrunedBefore)) {
				return meta.Put(metaPrunedBefore, encodeUint(uint64(beforeMillis)))
			}
			return nil
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("prune ledger: %w", err)
		}
		if n < chunk {
			return total, nil
		}
	}
}

// Stats are counts for health output and metrics.
type Stats struct {
	LedgerRecords int   `json:"ledger_records"`
	Sessions      int   `json:"sessions"`
	DailyRows     int   `json:"daily_rows"`
	OutboxRows    int   `json:"outbox_rows"`
	Cursors       int   `json:"cursors"`
	FileBytes     int64 `json:"file_bytes"`
}

// Stats counts the main buckets.
func (db *DB) Stats() (Stats, error) {
	var s Stats
	err := db.bolt.View(func(tx *bolt.Tx) error {
		s.LedgerRecords = tx.Bucket(bucketLedger).Stats().KeyN
		s.Sessions = tx.Bucket(bucketSessions).Stats().KeyN
		s.DailyRows = tx.Bucket(bucketDaily).Stats().KeyN
		s.OutboxRows = tx.Bucket(bucketOutbox).Stats().KeyN
		s.Cursors = tx.Bucket(bucketCursors).Stats().KeyN
		s.FileBytes = tx.Size()
		return nil
	})
	return s, err
}

// BucketBytes returns a copy of every key and value of a rollup bucket
// ("daily", "weekly", "sessions"); tests compare rebuilds with it.
func (db *DB) BucketBytes(name string) (map[string]string, error) {
	m, err := db.copyBucket([]byte(name))
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out, err
}
