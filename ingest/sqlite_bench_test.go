package ingest

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
)

// Benchmarks of the SQLite reader, against a plain SELECT of the same rows
// (the floor: SQLite and the driver alone). Run:
//
//	go test ./ingest/ -run '^$' -bench 'SQLite' -benchtime 5x
//
// and compare rows/s of BenchmarkSQLiteReader with BenchmarkSQLitePlainSelect.

const (
	benchSessions = 500
	benchPerSess  = 100 // rows per session: 50,000 in all
)

// benchStore writes a store of benchSessions sessions, each a header then
// turns of user message, assistant call (with usage) and tool result, the
// mix of a real transcript. With compress, rows of 1 KiB and more go to
// event_zstd as OpenClaw 2026.9 writes them.
func benchStore(b *testing.B, compress bool) (root string, rows, calls int) {
	b.Helper()
	root = b.TempDir()
	f := newFixture(b, root, "main", "schema_v24.sql")
	if !compress {
		f.hasZstd = false
	}
	tx, err := f.db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	plain, _ := tx.Prepare(`INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?, ?, ?, 0)`)
	packed, _ := tx.Prepare(`INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes) VALUES (?, ?, NULL, 0, ?, ?)`)
	filler := strings.Repeat("lorem ipsum dolor sit amet ", 40) // ~1 KiB of tool output
	for s := range benchSessions {
		sid := fmt.Sprintf("sess-%04d", s)
		ts := ts9 + int64(s)*60_000
		for seq := range benchPerSess {
			var line string
			switch {
			case seq == 0:
				line = headerLine(sid, ts)
			case seq%3 == 1:
				line = `{"type":"message","id":"u` + fmt.Sprint(seq) + `","parentId":null,"timestamp":"2026-09-10T08:00:00.000Z","message":{"role":"user","content":[{"type":"text","text":"please look at the build"}]}}`
			case seq%3 == 2:
				line = assistantLine(fmt.Sprint("a", seq), fmt.Sprintf("%s-%d", sid, seq), ts+int64(seq)*100, int64(seq), 50, 1000, 10, 0.001)
				calls++
			default:
				line = `{"type":"message","id":"t` + fmt.Sprint(seq) + `","parentId":null,"timestamp":"2026-09-10T08:00:00.000Z","message":{"role":"toolResult","toolCallId":"c","content":[{"type":"text","text":"` + filler + `"}]}}`
			}
			line = strings.TrimSuffix(line, "\n")
			if f.hasZstd && len(line) >= 1024 {
				_, err = packed.Exec(sid, seq, f.enc.EncodeAll([]byte(line), nil), len(line))
			} else {
				_, err = plain.Exec(sid, seq, line)
			}
			if err != nil {
				b.Fatal(err)
			}
			rows++
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return root, rows, calls
}

func benchReader(b *testing.B, compress bool) {
	root, rows, calls := benchStore(b, compress)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		tally := rollup.NewTally(time.UTC)
		in := New(Config{OpenClawDirs: []string{root}, Final: true}, tally)
		if _, err := in.Step(context.Background()); err != nil {
			b.Fatal(err)
		}
		if got := totalsOf(b, tally).Sums.Messages; got != int64(calls) {
			b.Fatalf("%d calls, want %d", got, calls)
		}
	}
	b.ReportMetric(float64(rows*b.N)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkSQLiteReader is a cold read of a 50,000-row store into a tally:
// probe, listing, bounded batches, parsing, attribution, dedupe.
func BenchmarkSQLiteReader(b *testing.B) { benchReader(b, false) }

// BenchmarkSQLiteReaderZstd is the same store as agent schema 24 writes it
// (tool results and other long rows zstd-compressed).
func BenchmarkSQLiteReaderZstd(b *testing.B) { benchReader(b, true) }

// BenchmarkSQLitePlainSelect reads the same rows with one SELECT of
// event_json, the floor for any reader of the store.
func BenchmarkSQLitePlainSelect(b *testing.B) {
	root, rows, _ := benchStore(b, false)
	path := root + "/agents/main/agent/" + storeFile
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		db, err := openStore(path)
		if err != nil {
			b.Fatal(err)
		}
		r, err := db.Query(`SELECT event_json FROM transcript_events ORDER BY session_id, seq`)
		if err != nil {
			b.Fatal(err)
		}
		n, size := 0, 0
		var ev sql.RawBytes
		for r.Next() {
			if err := r.Scan(&ev); err != nil {
				b.Fatal(err)
			}
			n++
			size += len(ev)
		}
		r.Close()
		db.Close()
		if n != rows {
			b.Fatalf("%d rows, want %d", n, rows)
		}
	}
	b.ReportMetric(float64(rows*b.N)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkSQLitePollUnchanged is the steady state: a poll of a store whose
// 500 sessions did not change (DESIGN §8: work proportional to what is new).
func BenchmarkSQLitePollUnchanged(b *testing.B) {
	root, _, _ := benchStore(b, true)
	db := openDB(b)
	in := New(Config{OpenClawDirs: []string{root}}, db)
	step(b, in)
	b.ResetTimer()
	for b.Loop() {
		if res := step(b, in); res.Read != 0 {
			b.Fatalf("unchanged poll read %d sessions", res.Read)
		}
	}
}
