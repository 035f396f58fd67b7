package storage

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkApplySmallFiles is the write side of a cold `ingest --once` over
// many small transcripts: 10,000 files of one call each (each its own
// session and cursor, the shape of the 10k-files corpus), applied in
// batches of 2,000 files as the ingester commits them. One op is the whole
// cold ingest into a fresh file.
//
//	go test -run '^$' -bench ApplySmallFiles -count 6 ./storage/ | benchstat -
func BenchmarkApplySmallFiles(b *testing.B) {
	const files, perBatch = 10_000, 2_000
	batches := make([]*Batch, 0, files/perBatch)
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for lo := 0; lo < files; lo += perBatch {
		bt := &Batch{Cursors: map[string][]byte{}, SessionMeta: map[string][]byte{}}
		for i := lo; i < lo+perBatch; i++ {
			// The corpus's order: agent by agent, so times interleave
			// across batches the way a real fleet's do.
			agent, n := i%20, i
			sid := fmt.Sprintf("%04d%08d-0000-4000-8000-000000000000", agent, n)
			bt.Records = append(bt.Records, Usage{
				TS: base + int64(n)*60_000, Source: SourceOpenClaw, Agent: fmt.Sprintf("agent%d", agent), SessionID: sid,
				Provider: "anthropic", Model: "claude-sonnet-4-6",
				Input: int64(1 + n%50), Output: int64(10 + n%500), CacheRead: int64(n % 5000), CacheWrite: int64(n % 300),
				Cost: Cost{Total: float64(n%1000) / 1e5}, CostSource: CostTranscript, DedupeKey: "anthropic|msg_" + sid,
			})
			cur, _ := json.Marshal(map[string]any{
				"path": fmt.Sprintf("/home/ubuntu/.openclaw/agents/agent%d/sessions/%s.jsonl", agent, sid),
				"dev":  65024, "ino": 11542812 + n, "size": 762, "mod_ns": 1796037058149757487, "offset": 762, "complete": true,
				"head_len": 762, "head_hash": 3274098764719, "tail_len": 762, "tail_hash": 3274098764719,
				"hash": "crc32c", "format": "openclaw", "agent": fmt.Sprintf("agent%d", agent), "session_id": sid,
			})
			bt.Cursors[fmt.Sprintf("file:65024:%d", 11542812+n)] = cur
		}
		batches = append(batches, bt)
	}
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		db, err := Open(filepath.Join(dir, fmt.Sprintf("b%d.db", i)), Options{Location: time.UTC})
		if err != nil {
			b.Fatal(err)
		}
		for _, bt := range batches {
			// Apply normalizes and may reorder what it is given: each run
			// gets its own copy of the records.
			c := *bt
			c.Records = append([]Usage(nil), bt.Records...)
			res, err := db.Apply(&c)
			if err != nil {
				b.Fatal(err)
			}
			if res.Added != perBatch {
				b.Fatalf("added %d of %d", res.Added, perBatch)
			}
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
