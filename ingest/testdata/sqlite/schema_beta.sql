-- An early 2026.7 beta store: sessions and session_entries, no
-- transcript_events. fleetmeter does not read it and must say so, once,
-- without failing the step. The row below carries usage that is therefore
-- not counted (the JSONL files the beta kept are).
CREATE TABLE sessions (
  session_key TEXT NOT NULL PRIMARY KEY,
  session_id TEXT NOT NULL,
  entry_json TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE session_entries (
  session_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  entry_json TEXT NOT NULL,
  PRIMARY KEY (session_id, seq)
);
INSERT INTO sessions VALUES ('agent:main:main', 'beta-1', '{"sessionId":"beta-1"}', 1789027200000);
INSERT INTO session_entries VALUES ('beta-1', 0, '{"type":"session","version":3,"id":"beta-1","timestamp":"2026-09-10T08:00:00.000Z","cwd":"/w"}');
INSERT INTO session_entries VALUES ('beta-1', 1, '{"type":"message","id":"b1","parentId":null,"timestamp":"2026-09-10T08:00:01.000Z","message":{"role":"assistant","content":[],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":5,"output":5,"cacheRead":0,"cacheWrite":0,"totalTokens":10,"cost":{"total":0.001}},"stopReason":"stop","timestamp":1789027201000,"responseId":"beta-r1"}}');
