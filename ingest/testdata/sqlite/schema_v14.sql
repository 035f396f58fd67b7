-- OpenClaw agent store at agent schema 14 (2026.7.1, before the SQLite
-- flip made it canonical; stores stuck there exist in the field because the
-- 14 → 15 migration failed, openclaw/openclaw#119263). Transcript rows are
-- plain event_json; there are no session windows, rewrite watermarks or
-- archives yet: the session key comes from session_nodes alone.
PRAGMA user_version = 14;

CREATE TABLE session_nodes (
  session_key TEXT NOT NULL PRIMARY KEY,
  current_session_id TEXT NOT NULL,
  entry_json TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE transcript_events (
  session_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  event_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (session_id, seq)
);

CREATE TABLE transcript_event_identities (
  session_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (session_id, event_id)
);
