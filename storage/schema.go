package storage

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// The bbolt layout, in one place. All keys are big-endian; "lp(s)" is a
// string prefixed by its uint16 length; "day" is a day number (days since
// 1970-01-01 of the civil date in the rollup zone) as uint32 with the sign bit
// flipped so that it sorts.
//
//	meta          "schema_version"   → uint64
//	              "instance_id"      → 32 hex chars, minted at creation
//	              "generation"       → 32 hex chars, minted at creation (upstream tells lineages apart)
//	              "created_at"       → RFC 3339
//	              "rollup_tz"        → IANA zone the daily/weekly rows were cut in
//	              "skips"            → JSON Skips, cumulative
//	              "ledger_pruned_before" → uint64 unix ms: ledger records before it were pruned
//	                                   (rollups before it cannot be rebuilt and are kept)
//	              "host_5m_pruned_before" → uint64 unix ms: the same for host_5m and host_daily
//	              "seen_pruned_before" → uint64 unix ms: schema 1 deleted the dedupe keys of pruned
//	                                   records; calls before it are refused (too_old), else they
//	                                   would count twice
//	              "corrections"      → JSON Corrections, cumulative
//	              "pricing"          → fingerprint of the prices the ledger is priced with
//	              "reprice_progress" → JSON: target fingerprint and last ledger key repriced, while a
//	                                   reprice runs (reprice.go)
//	              "last_reprice"     → JSON RepriceResult of the last reprice that changed something
//	cursors       opaque id (ingest's choice, e.g. "file:<dev>:<ino>") → opaque bytes owned by ingest
//	              (a file's cursor in binary, see ingest/cursorbin.go; JSON before schema 3 and for
//	              the other sources)
//	session_meta  lp(source) lp(session id) → opaque JSON owned by ingest (what sessions.json said);
//	              "codex-thread:" thread id → its parent thread id, as is (ingest/codex.go)
//	seen          sha256(dedupe key)[:16] → ledger key of the record that holds it; kept when the
//	              record is pruned or removed (the key then points at no row: the call is known, gone)
//	ledger        ts ms(8, sign flipped) | seq(8) → Usage, binary (see usagebin.go; rows written
//	              before schema 3 are JSON, and still read)
//	sessions      lp(source) lp(session id) → Session, binary (see encodeSession): per-model sums
//	users         user id → latest display label seen (untrusted text)
//	daily         day | lp(source) lp(agent) lp(user) lp(provider) lp(model) → Totals (varints, see encodeTotals)
//	weekly        same, day = the Monday of the ISO week → Totals
//	daily_dims    kind(1) | day | lp(source) lp(agent) lp(user) lp(provider) lp(model) → Totals, where
//	              only the fields of the kind are set: 'm' provider+model, 'a' source+agent,
//	              'u' user+source+agent. Reports read these: a few thousand rows for 90 days
//	              instead of every agent×user×model combination.
//	outbox        table byte | key of that row → change counter (uint64, the meta bucket's
//	              sequence when the row last changed; a row's latest change overwrites its
//	              entry, so the outbox holds each changed row once). Tables: 'd' daily, 'w'
//	              weekly, 's' sessions (marked by Apply), 'h' host_daily (day key), 'a' agents
//	              (agent id) (marked by QueueHostDays and QueueAgents, see outbox.go). The
//	              upstream sync reads entries in key order and deletes one only if its
//	              counter is unchanged since it was read.
//	mirrors       lp(group) | ledger key → empty: records that mirror another transcript (Usage.MirrorOf)
//	claimed       group ("claude:<session id>") → 1: the mirrored transcript's own calls are known
//	user_alias    lp(source NUL agent) lp(bare id) → the qualified user it is ("telegram:123"), or
//	              NUL "ambiguous" when the id was seen with two channels
//	bare_users    lp(source NUL agent) lp(bare id) | ledger key → empty: records with a bare user,
//	              moved to the qualified user once one is known (storage/rules.go)
//	host          ts ms(8) | seq(2) → host sample (owned by the host sampler)
//	host_5m       slot start ms(8) → host rollup
//	host_daily    day → host rollup
//	alerts        's' | state id → JSON owned by the alerts package: an alert instance
//	              ("alert" NUL rule NUL instance → AlertState: pending/firing/resolved, since,
//	              period, what receivers were last told and when, acknowledged), a snooze
//	              ("snooze" NUL rule → until) or a digest mark ("digest" NUL daily|weekly →
//	              the period last sent)
//	              'o' | seq(8) → JSON notification waiting for delivery to one receiver (by
//	              notifier name: URLs are secrets and never stored), with its attempts and
//	              next try; removed once delivered or given up. A round's state changes and
//	              the notifications they cause commit in one transaction (alerts.go)
//	agents        agent id → JSON AgentInfo: the agent registry of the config as last queued
//	              for upstream (QueueAgents compares the config with it)
//	sync_marks    'h' | day → sha256[:16] of the host_daily value last queued for upstream
//	              (host rows are not marked by their writer; QueueHostDays compares)
//	sync_quarantine  outbox key → JSON QuarantineEntry: a row upstream rejected for good, kept
//	              out of the outbox (with its error) until it changes or is requeued
//	sync_state    "worker" → opaque JSON owned by the upstream sync worker (last success,
//	              last error, zone last synced, totals)
//
// The ledger, seen keys, rollup deltas, outbox marks and cursors of one batch
// commit in one transaction (see Apply).

// SchemaVersion is the layout this code reads and writes. Version 2 added
// the mirrors, claimed, user_alias and bare_users buckets, Totals values of
// 14 fields (version 1's 12-field values still decode), and dedupe keys
// kept past retention. Version 3 writes ledger rows in binary and Totals
// values as varints (version 2's JSON rows and fixed-size Totals still
// decode), which a version 2 fleetmeter could not read.
const SchemaVersion = 3

var (
	bucketMeta        = []byte("meta")
	bucketCursors     = []byte("cursors")
	bucketSessionMeta = []byte("session_meta")
	bucketSeen        = []byte("seen")
	bucketLedger      = []byte("ledger")
	bucketSessions    = []byte("sessions")
	bucketUsers       = []byte("users")
	bucketDaily       = []byte("daily")
	bucketWeekly      = []byte("weekly")
	bucketDailyDims   = []byte("daily_dims")
	bucketOutbox      = []byte("outbox")
	bucketHost        = []byte("host")
	bucketHost5m      = []byte("host_5m")
	bucketHostDaily   = []byte("host_daily")
	bucketAlerts      = []byte("alerts")
	bucketMirrors     = []byte("mirrors")
	bucketClaimed     = []byte("claimed")
	bucketUserAlias   = []byte("user_alias")
	bucketBareUsers   = []byte("bare_users")
	bucketAgents      = []byte("agents")
	bucketSyncMarks   = []byte("sync_marks")
	bucketQuarantine  = []byte("sync_quarantine")
	bucketSyncState   = []byte("sync_state")

	allBuckets = [][]byte{
		bucketMeta, bucketCursors, bucketSessionMeta, bucketSeen, bucketLedger, bucketSessions, bucketUsers,
		bucketDaily, bucketWeekly, bucketDailyDims, bucketOutbox, bucketHost, bucketHost5m, bucketHostDaily, bucketAlerts,
		bucketMirrors, bucketClaimed, bucketUserAlias, bucketBareUsers,
		bucketAgents, bucketSyncMarks, bucketQuarantine, bucketSyncState,
	}
)

var (
	metaSchemaVersion      = []byte("schema_version")
	metaInstanceID         = []byte("instance_id")
	metaGeneration         = []byte("generation")
	metaCreatedAt          = []byte("created_at")
	metaRollupTZ           = []byte("rollup_tz")
	metaSkips              = []byte("skips")
	metaPrunedBefore       = []byte("ledger_pruned_before")
	metaHost5mPrunedBefore = []byte("host_5m_pruned_before")
	metaSeenPrunedBefore   = []byte("seen_pruned_before")
	metaCorrections        = []byte("corrections")
	metaPricing            = []byte("pricing")
	metaRepriceProgress    = []byte("reprice_progress")
	metaLastReprice        = []byte("last_reprice")
)

// Outbox table bytes.
const (
	OutboxDaily   = 'd'
	OutboxWeekly  = 'w'
	OutboxSession = 's'
	OutboxHost    = 'h' // host_daily rows, queued by QueueHostDays
	OutboxAgent   = 'a' // agent registry entries, queued by QueueAgents
)

// upgrades[v] moves a file from schema version v to v+1. The buckets a
// version adds are created at open, before upgrades run.
var upgrades = map[uint64]func(*bolt.Tx) error{
	// 1 → 2: schema 1 deleted the dedupe keys of the records it pruned, so
	// calls older than its last prune are refused from now on, as its
	// ingest horizon refused them. Version 1 Totals values decode as they are.
	1: func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(metaPrunedBefore); v != nil {
			return meta.Put(metaSeenPrunedBefore, bytes.Clone(v))
		}
		return nil
	},
	// 2 → 3: nothing to change; new ledger rows are binary.
	2: func(*bolt.Tx) error { return nil },
}
