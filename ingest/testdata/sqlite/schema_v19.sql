-- OpenClaw agent store at agent schema 19 as a failed 17 → 19 migration
-- leaves it (openclaw/openclaw#134163: user_version stays 17, some objects
-- of 19 exist, others do not). Session windows without channel columns,
-- transcript rows with navigation_json but no event_zstd, archives without
-- an encoding or session_key column, and a watermark table. Nothing may be
-- assumed: every optional column is probed.
PRAGMA user_version = 17;

CREATE TABLE session_nodes (
  session_key TEXT NOT NULL PRIMARY KEY,
  current_session_id TEXT NOT NULL,
  entry_json TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  status TEXT
) STRICT;

CREATE TABLE session_windows (
  session_id TEXT NOT NULL PRIMARY KEY,
  session_key TEXT NOT NULL,
  previous_session_id TEXT,
  reason TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE transcript_events (
  session_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  event_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  navigation_json TEXT,
  PRIMARY KEY (session_id, seq)
) STRICT;

CREATE TABLE transcript_rewrite_watermarks (
  session_id TEXT NOT NULL PRIMARY KEY,
  generation INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE session_transcript_archives (
  session_id TEXT NOT NULL,
  generation INTEGER NOT NULL,
  reason TEXT NOT NULL,
  archive_blob BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (session_id, generation)
) STRICT;

CREATE TABLE session_conversations (
  session_key TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  PRIMARY KEY (session_key, conversation_id)
) STRICT;
