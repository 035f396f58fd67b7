package ingest

import (
	"bytes"
	"testing"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Stores of agent schemas 14 and 19 (the latter as a failed 17 → 19
// migration leaves it): columns and tables present or missing in other
// combinations than 2026.8's or 24's. The same session content reads the
// same in each: two calls, a duplicate, the session key from whatever the
// store has (session_nodes only at 14), the sender per message; and at 19
// an archive with no encoding or session_key column.
func TestSQLiteOlderSchemas(t *testing.T) {
	for _, schema := range []string{"schema_v14.sql", "schema_v19.sql"} {
		t.Run(schema, func(t *testing.T) {
			root := t.TempDir()
			f := newFixture(t, root, "ops", schema)
			f.node("agent:ops:telegram:group:-100", "s-a", `{"sessionId":"s-a","chatType":"group","channel":"telegram"}`)
			f.add("s-a",
				headerLine("s-a", ts9),
				userLine("u1", "555", "Dana"),
				assistantLine("a1", "resp_sa1", ts9+1000, 100, 10, 1000, 0, 0.001),
				assistantLine("a1b", "resp_sa1", ts9+1000, 100, 10, 1000, 0, 0.001), // a rewrite re-appended it
				assistantLine("a2", "", ts9+2000, 7, 8, 0, 0, 0.002),
			)
			wantCalls, wantIn := int64(2), int64(107)
			if schema == "schema_v19.sql" {
				f.exec(`INSERT INTO session_windows (session_id, session_key, reason, created_at, updated_at) VALUES ('s-a', 'agent:ops:telegram:group:-100', 'initial', ?, ?)`, ts9, ts9)
				f.watermark("s-a", "3")
				var blob bytes.Buffer
				blob.WriteString(headerLine("s-old", ts9-86400000))
				blob.WriteString(userLine("u0", "555", "Dana"))
				blob.WriteString(assistantLine("o1", "resp_old1", ts9-86400000+500, 40, 4, 0, 0, 0.0005))
				f.exec(`INSERT INTO session_transcript_archives (session_id, generation, reason, archive_blob, created_at) VALUES ('s-old', 1, 'reset', ?, ?)`,
					blob.Bytes(), ts9)
				wantCalls, wantIn = 3, 147
			}
			db := openDB(t)
			in := New(Config{OpenClawDirs: []string{root}}, db)
			step(t, in)
			got := totalsOf(t, db)
			if got.Sums.Messages != wantCalls || got.Sums.InputTokens != wantIn {
				t.Errorf("%d calls, %d input tokens; want %d, %d", got.Sums.Messages, got.Sums.InputTokens, wantCalls, wantIn)
			}
			if got.Skipped.Duplicate != 1 || got.Skipped.Unsupported != 0 {
				t.Errorf("skipped %+v, want 1 duplicate and nothing unsupported", got.Skipped)
			}
			for _, u := range records(t, db) {
				if u.SessionID == "s-a" && (u.SessionKey != "agent:ops:telegram:group:-100" || u.User != "telegram:555" || u.Channel != "telegram") {
					t.Errorf("record %s attributed key %q user %q channel %q", u.DedupeKey, u.SessionKey, u.User, u.Channel)
				}
				if u.Agent != "ops" || u.Source != storage.SourceOpenClaw {
					t.Errorf("record %s: agent %q source %q", u.DedupeKey, u.Agent, u.Source)
				}
			}
			if res := step(t, in); res.Added != 0 || res.Read != 0 {
				t.Errorf("an unchanged store read %d sessions, added %d", res.Read, res.Added)
			}
			// A new row is read from the cursor on.
			f.add("s-a", assistantLine("a3", "resp_sa3", ts9+3000, 1, 1, 0, 0, 0.003))
			if res := step(t, in); res.Added != 1 {
				t.Errorf("after an append: %d added, want 1", res.Added)
			}
			tally := scanDirs(t, root)
			if tt := totalsOf(t, tally); tt.Sums.Messages != wantCalls+1 {
				t.Errorf("direct report: %d calls, want %d", tt.Sums.Messages, wantCalls+1)
			}
		})
	}
}
