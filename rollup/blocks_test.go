package rollup

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Blocks as ccusage cuts them, worked by hand: a block starts at the hour
// of its first call and lasts 5 hours; a call past its end or 5 hours
// after the last one starts the next; a pause over 5 hours leaves a gap
// block; the active block has a burn rate and a projection.
func TestBlocksByHand(t *testing.T) {
	at := func(h, m int) int64 { return time.Date(2026, 11, 20, h, m, 0, 0, time.UTC).UnixMilli() }
	call := func(ts int64, model string) BlockEntry {
		return BlockEntry{TS: ts, Model: model, Input: 100, Output: 10, CacheRead: 5, CacheWrite: 5, CostNanos: 1e9}
	}
	calls := []BlockEntry{
		call(at(20, 30), "b"), call(at(9, 10), "a"), call(at(14, 5), "a"), call(at(10, 0), "b"), call(at(20, 0), "a"), // any order
	}
	now := time.Date(2026, 11, 20, 21, 0, 0, 0, time.UTC)
	blocks := Blocks(calls, now)
	type want struct {
		id      string
		entries int
		gap     bool
		active  bool
	}
	wants := []want{
		{"2026-11-20T09:00:00.000Z", 2, false, false}, // 09:10 and 10:00
		{"2026-11-20T14:00:00.000Z", 1, false, false}, // 14:05 is past 09:00 + 5 h
		{"gap-2026-11-20T19:05:00.000Z", 0, true, false},
		{"2026-11-20T20:00:00.000Z", 2, false, true},
	}
	if len(blocks) != len(wants) {
		t.Fatalf("%d blocks: %+v", len(blocks), blocks)
	}
	for i, w := range wants {
		b := blocks[i]
		if b.ID != w.id || b.Entries != w.entries || b.IsGap != w.gap || b.IsActive != w.active {
			t.Errorf("block %d: %s entries %d gap %v active %v; want %+v", i, b.ID, b.Entries, b.IsGap, b.IsActive, w)
		}
	}
	first := blocks[0]
	if first.TotalTokens != 240 || first.CostUSD != 2 || strings.Join(first.Models, ",") != "a,b" || first.BurnRate != nil ||
		!first.EndTime.Equal(time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC)) || !first.ActualEndTime.Equal(time.UnixMilli(at(10, 0))) {
		t.Errorf("first block %+v", first)
	}
	if g := blocks[2]; !g.EndTime.Equal(time.UnixMilli(at(20, 0))) || g.ActualEndTime != nil {
		t.Errorf("gap %+v", g)
	}
	last := blocks[3]
	// 240 tokens and $2 in 30 minutes: 8 tokens and $0.0667 a minute; 240 minutes left.
	if br := last.BurnRate; br == nil || math.Abs(br.TokensPerMinute-8) > 1e-9 || math.Abs(br.CostPerHour-4) > 1e-9 ||
		math.Abs(br.TokensPerMinuteForIndicator-220.0/30) > 1e-9 {
		t.Errorf("burn rate %+v", last.BurnRate)
	}
	if p := last.Projection; p == nil || p.TotalTokens != 240+8*240 || p.TotalCost != 18 || p.RemainingMinutes != 240 {
		t.Errorf("projection %+v", last.Projection)
	}
	raw, err := json.Marshal(BlockReport{Blocks: blocks[:1]})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"id":"2026-11-20T09:00:00.000Z"`, `"startTime":"2026-11-20T09:00:00.000Z"`, `"endTime":"2026-11-20T14:00:00.000Z"`,
		`"actualEndTime":"2026-11-20T10:00:00.000Z"`, `"tokenCounts":{"inputTokens":200,"outputTokens":20,"cacheCreationInputTokens":10,"cacheReadInputTokens":10}`,
		`"totalTokens":240`, `"costUSD":2`, `"models":["a","b"]`, `"burnRate":null`, `"projection":null`, `"isGap":false`, `"entries":2`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("JSON lacks %s:\n%s", want, raw)
		}
	}
	if got := Blocks(nil, now); got == nil || len(got) != 0 {
		t.Errorf("no calls: %v, want an empty list", got)
	}
}

// Blocks read the same from the database and from an in-memory tally.
func TestLoadBlocksDatabaseAndTally(t *testing.T) {
	db := openTestDB(t)
	tally := NewTally(time.UTC)
	var b storage.Batch
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for i := range 30 {
		b.Records = append(b.Records, storage.Usage{TS: t0.Add(time.Duration(i*i) * 7 * time.Minute).UnixMilli(), Source: storage.SourceClaude,
			Agent: "p", SessionID: "s", Provider: "anthropic", Model: "claude-opus-4-6", Input: int64(i), Output: 3,
			Cost: storage.Cost{Total: 0.01}, CostSource: storage.CostTable, DedupeKey: string(rune('a' + i))})
	}
	b.Records = append(b.Records, storage.Usage{TS: t0.UnixMilli(), Source: storage.SourceOpenClaw, Agent: "o", SessionID: "x",
		Provider: "anthropic", Model: "m", Input: 5, DedupeKey: "other"}) // not Claude Code: not in blocks
	tb := b
	tb.Records = append([]storage.Usage(nil), b.Records...)
	if _, err := db.Apply(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := tally.Apply(&tb); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(100 * time.Hour)
	fromDB, err := LoadBlocks(db, 0, math.MaxInt64/2, now)
	if err != nil {
		t.Fatal(err)
	}
	fromTally, err := LoadBlocks(tally, 0, math.MaxInt64/2, now)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(fromDB)
	c, _ := json.Marshal(fromTally)
	if string(a) != string(c) || len(fromDB.Blocks) < 3 {
		t.Errorf("database %s\ntally %s", a, c)
	}
	entries := 0
	for _, bl := range fromDB.Blocks {
		entries += bl.Entries
	}
	if entries != 30 {
		t.Errorf("%d entries in blocks, want the 30 Claude Code calls", entries)
	}
}
