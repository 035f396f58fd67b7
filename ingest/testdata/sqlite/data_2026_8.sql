-- Two sessions of agent "main", worked out by hand (see TestSQLite2026_8):
--
-- s-dm, a Telegram DM; its session_windows row gives the key
-- agent:main:telegram:direct:4242, so its calls are user telegram:4242.
--   A1 r1   100/20/300/0  $0.010
--   a delivery-mirror copy (provider openclaw)         -> not_model_call
--   an aborted call, all-zero usage                    -> zero_usage
--   A2 (no responseId) 10/5/0/40  $0.002
--   a row that is not JSON                             -> malformed
--   A1 re-appended by a transcript rewrite (new id)    -> duplicate
-- s-grp, a Discord group with NO session_windows row: the key comes from
-- session_nodes.current_session_id; the speaker from each user message's
-- "Sender (untrusted metadata)" block.
--   Bob (222)   -> B1 r3  200/30/0/0  $0.030
--   Carol (333) -> B2 r4  1/1/1/1     cost 0: unpriced
-- trajectory_runtime_events repeats A1's usage: never read.
--
-- Totals: 4 calls; input 311, output 56, cache read 301, cache write 41
-- (709 tokens); $0.042; 1 unpriced call of 4 tokens; skipped 1 duplicate,
-- 1 not model call, 1 zero usage, 1 malformed.

INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at) VALUES
 ('agent:main:telegram:direct:4242', 's-dm', '{"sessionId":"s-dm","chatType":"direct","origin":{"provider":"telegram","from":"telegram:4242","label":"Dee"}}', 1789027200000),
 ('agent:main:discord:group:777', 's-grp', '{"sessionId":"s-grp","chatType":"group","channel":"discord","displayName":"#ops"}', 1789027200000);

INSERT INTO session_windows (session_id, session_key, reason, created_at, updated_at, chat_type, channel) VALUES
 ('s-dm', 'agent:main:telegram:direct:4242', 'initial', 1789027200000, 1789027200000, 'direct', 'telegram');

INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES
 ('s-dm', 0, '{"type":"session","version":3,"id":"s-dm","timestamp":"2026-09-10T08:00:00.000Z","cwd":"/w"}', 1789027200000),
 ('s-dm', 1, '{"type":"message","id":"u1","parentId":null,"timestamp":"2026-09-10T08:00:00.500Z","message":{"role":"user","content":"hi","timestamp":1789027200500}}', 1789027200500),
 ('s-dm', 2, '{"type":"message","id":"a1","parentId":"u1","timestamp":"2026-09-10T08:00:01.000Z","message":{"role":"assistant","content":[{"type":"text","text":"hello"}],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":100,"output":20,"cacheRead":300,"cacheWrite":0,"totalTokens":420,"cost":{"input":0.003,"output":0.003,"cacheRead":0.004,"cacheWrite":0,"total":0.01}},"stopReason":"stop","timestamp":1789027201000,"responseId":"r1"}}', 1789027201000),
 ('s-dm', 3, '{"type":"message","id":"m1","parentId":"a1","timestamp":"2026-09-10T08:00:01.100Z","message":{"role":"assistant","content":[{"type":"text","text":"hello"}],"api":"openclaw-transcript","provider":"openclaw","model":"delivery-mirror","usage":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"totalTokens":0,"cost":{"total":0}},"stopReason":"stop","timestamp":1789027201100}}', 1789027201100),
 ('s-dm', 4, '{"type":"message","id":"a0","parentId":"m1","timestamp":"2026-09-10T08:00:02.000Z","message":{"role":"assistant","content":[],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"totalTokens":0,"cost":{"total":0}},"stopReason":"aborted","timestamp":1789027202000}}', 1789027202000),
 ('s-dm', 5, '{"type":"message","id":"a2","parentId":"a0","timestamp":"2026-09-10T08:00:03.000Z","message":{"role":"assistant","content":[{"type":"text","text":"ok"}],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":10,"output":5,"cacheRead":0,"cacheWrite":40,"totalTokens":55,"cost":{"total":0.002}},"stopReason":"stop","timestamp":1789027203000}}', 1789027203000),
 ('s-dm', 6, 'not json at all', 1789027203500),
 ('s-dm', 7, '{"type":"message","id":"a1b","parentId":"u1","timestamp":"2026-09-10T08:00:01.000Z","message":{"role":"assistant","content":[{"type":"text","text":"hello"}],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":100,"output":20,"cacheRead":300,"cacheWrite":0,"totalTokens":420,"cost":{"input":0.003,"output":0.003,"cacheRead":0.004,"cacheWrite":0,"total":0.01}},"stopReason":"stop","timestamp":1789027201000,"responseId":"r1"}}', 1789027204000),

 ('s-grp', 0, '{"type":"session","version":3,"id":"s-grp","timestamp":"2026-09-10T09:00:00.000Z","cwd":"/w"}', 1789030800000),
 ('s-grp', 1, '{"type":"message","id":"g1","parentId":null,"timestamp":"2026-09-10T09:00:00.500Z","message":{"role":"user","content":[{"type":"text","text":"Sender (untrusted metadata):\n```json\n{\"label\":\"Bob\",\"id\":\"222\"}\n```\n\ndeploy please"}],"timestamp":1789030800500}}', 1789030800500),
 ('s-grp', 2, '{"type":"message","id":"b1","parentId":"g1","timestamp":"2026-09-10T09:00:01.000Z","message":{"role":"assistant","content":[{"type":"text","text":"done"}],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":200,"output":30,"cacheRead":0,"cacheWrite":0,"totalTokens":230,"cost":{"total":0.03}},"stopReason":"stop","timestamp":1789030801000,"responseId":"r3"}}', 1789030801000),
 ('s-grp', 3, '{"type":"message","id":"g2","parentId":"b1","timestamp":"2026-09-10T09:00:02.000Z","message":{"role":"user","content":[{"type":"text","text":"Sender (untrusted metadata):\n```json\n{\"label\":\"Carol\",\"id\":\"333\"}\n```\n\nstatus?"}],"timestamp":1789030802000}}', 1789030802000),
 ('s-grp', 4, '{"type":"message","id":"b2","parentId":"g2","timestamp":"2026-09-10T09:00:03.000Z","message":{"role":"assistant","content":[{"type":"text","text":"green"}],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":1,"output":1,"cacheRead":1,"cacheWrite":1,"totalTokens":4,"cost":{"total":0}},"stopReason":"stop","timestamp":1789030803000,"responseId":"r4"}}', 1789030803000);

INSERT INTO trajectory_runtime_events (session_id, seq, run_id, event_json, created_at) VALUES
 ('s-dm', 0, 'run-1', '{"type":"model.completed","provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":100,"output":20,"cacheRead":300,"cacheWrite":0},"responseId":"r1-trace"}', 1789027201000);
