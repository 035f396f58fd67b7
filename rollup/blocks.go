package rollup

import (
	"encoding/json"
	"math"
	"sort"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Claude's usage limits reset in 5-hour windows that start with the first
// message after the previous window ended. Blocks computes them from the
// calls as ccusage's `blocks` command does (identifySessionBlocks,
// calculateBurnRate, projectBlockUsage in ccusage's _session-blocks.ts):
//
//   - calls in time order; a block starts at the hour (UTC) of its first
//     call and lasts 5 hours;
//   - a call more than 5 hours after the block's start, or more than 5
//     hours after the block's last call, closes the block and starts a
//     new one; when the pause exceeded 5 hours a gap block covers it
//     (from the last call + 5 hours to the next call);
//   - a block is active while now is before its end and less than 5 hours
//     after its last call;
//   - burn rate: tokens per minute and cost per hour between the block's
//     first and last call; projection: the current totals plus the burn
//     rate until the block's end (tokens rounded, cost to the cent).
const BlockDuration = 5 * time.Hour

// BlockEntry is one call as blocks count it.
type BlockEntry struct {
	TS                                   int64 // unix ms
	Model                                string
	Input, Output, CacheRead, CacheWrite int64
	CostNanos                            int64
}

// BlockTokens are a block's token counts, in ccusage's names.
type BlockTokens struct {
	InputTokens              int64 `json:"inputTokens"`
	OutputTokens             int64 `json:"outputTokens"`
	CacheCreationInputTokens int64 `json:"cacheCreationInputTokens"`
	CacheReadInputTokens     int64 `json:"cacheReadInputTokens"`
}

// Total is the sum of the four kinds.
func (t BlockTokens) Total() int64 {
	return t.InputTokens + t.OutputTokens + t.CacheCreationInputTokens + t.CacheReadInputTokens
}

// BurnRate is a block's pace between its first and last call.
type BurnRate struct {
	TokensPerMinute             float64 `json:"tokensPerMinute"`
	TokensPerMinuteForIndicator float64 `json:"tokensPerMinuteForIndicator"` // input + output only
	CostPerHour                 float64 `json:"costPerHour"`
}

// BlockProjection is where an active block ends at its current pace.
type BlockProjection struct {
	TotalTokens      int64   `json:"totalTokens"`
	TotalCost        float64 `json:"totalCost"`
	RemainingMinutes int64   `json:"remainingMinutes"`
}

// Block is one 5-hour window (or a gap between two). The JSON is the
// shape of `ccusage blocks --json`, so the two can be compared field by
// field.
type Block struct {
	ID            string           `json:"id"`
	StartTime     time.Time        `json:"startTime"`
	EndTime       time.Time        `json:"endTime"`
	ActualEndTime *time.Time       `json:"actualEndTime"`
	IsActive      bool             `json:"isActive"`
	IsGap         bool             `json:"isGap"`
	Entries       int              `json:"entries"`
	TokenCounts   BlockTokens      `json:"tokenCounts"`
	TotalTokens   int64            `json:"totalTokens"`
	CostUSD       float64          `json:"costUSD"`
	Models        []string         `json:"models"`
	BurnRate      *BurnRate        `json:"burnRate"`
	Projection    *BlockProjection `json:"projection"`

	firstTS, lastTS int64
	costNanos       int64
}

// Blocks cuts calls (any order) into 5-hour blocks as of now.
func Blocks(calls []BlockEntry, now time.Time) []Block {
	if len(calls) == 0 {
		return []Block{}
	}
	sorted := make([]BlockEntry, len(calls))
	copy(sorted, calls)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].TS < sorted[j].TS })
	dur := BlockDuration.Milliseconds()
	var out []Block
	start, from := floorHour(sorted[0].TS), 0
	for i := 1; i < len(sorted); i++ {
		ts, prev := sorted[i].TS, sorted[i-1].TS
		if ts-start <= dur && ts-prev <= dur {
			continue
		}
		out = append(out, newBlock(start, sorted[from:i], now))
		if ts-prev > dur {
			gs := time.UnixMilli(prev + dur).UTC()
			out = append(out, Block{ID: "gap-" + isoMillis(gs), StartTime: gs, EndTime: time.UnixMilli(ts).UTC(), IsGap: true,
				Models: []string{}})
		}
		start, from = floorHour(ts), i
	}
	return append(out, newBlock(start, sorted[from:], now))
}

func floorHour(ms int64) int64 { return ms - mod(ms, time.Hour.Milliseconds()) }

// isoMillis is JavaScript's Date.toISOString: UTC, milliseconds, "Z".
func isoMillis(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func newBlock(start int64, calls []BlockEntry, now time.Time) Block {
	st := time.UnixMilli(start).UTC()
	b := Block{ID: isoMillis(st), StartTime: st, EndTime: st.Add(BlockDuration), Entries: len(calls), Models: []string{}}
	seen := map[string]bool{}
	for _, c := range calls {
		b.TokenCounts.InputTokens += c.Input
		b.TokenCounts.OutputTokens += c.Output
		b.TokenCounts.CacheCreationInputTokens += c.CacheWrite
		b.TokenCounts.CacheReadInputTokens += c.CacheRead
		b.costNanos += c.CostNanos
		if !seen[c.Model] {
			seen[c.Model] = true
			b.Models = append(b.Models, c.Model)
		}
	}
	b.firstTS, b.lastTS = calls[0].TS, calls[len(calls)-1].TS
	end := time.UnixMilli(b.lastTS).UTC()
	b.ActualEndTime = &end
	b.TotalTokens = b.TokenCounts.Total()
	b.CostUSD = storage.USD(b.costNanos)
	nowMs := now.UnixMilli()
	b.IsActive = nowMs-b.lastTS < BlockDuration.Milliseconds() && now.Before(b.EndTime)
	if b.IsActive {
		b.BurnRate = b.burnRate()
		b.Projection = b.project(now)
	}
	return b
}

// burnRate is nil when the block's calls span no time.
func (b *Block) burnRate() *BurnRate {
	minutes := float64(b.lastTS-b.firstTS) / 60000
	if b.Entries == 0 || minutes <= 0 {
		return nil
	}
	return &BurnRate{
		TokensPerMinute:             float64(b.TotalTokens) / minutes,
		TokensPerMinuteForIndicator: float64(b.TokenCounts.InputTokens+b.TokenCounts.OutputTokens) / minutes,
		CostPerHour:                 b.CostUSD / minutes * 60,
	}
}

func (b *Block) project(now time.Time) *BlockProjection {
	br := b.BurnRate
	if br == nil {
		return nil
	}
	remaining := max(0, float64(b.EndTime.Sub(now).Milliseconds())/60000)
	return &BlockProjection{
		TotalTokens:      int64(math.Round(float64(b.TotalTokens) + br.TokensPerMinute*remaining)),
		TotalCost:        math.Round((b.CostUSD+br.CostPerHour/60*remaining)*100) / 100,
		RemainingMinutes: int64(math.Round(remaining)),
	}
}

// MarshalJSON writes times as JavaScript's toISOString does (UTC,
// milliseconds), as ccusage prints them.
func (b Block) MarshalJSON() ([]byte, error) {
	type plain Block
	var actual *string
	if b.ActualEndTime != nil {
		s := isoMillis(*b.ActualEndTime)
		actual = &s
	}
	return json.Marshal(struct {
		plain
		StartTime     string  `json:"startTime"`
		EndTime       string  `json:"endTime"`
		ActualEndTime *string `json:"actualEndTime"`
	}{plain(b), isoMillis(b.StartTime), isoMillis(b.EndTime), actual})
}

// BlockReport is `fleetmeter report blocks --json`: {"blocks":[…]}, as
// ccusage prints it.
type BlockReport struct {
	Blocks []Block `json:"blocks"`
}

// BlockLedger streams ledger records; *storage.DB and *Tally satisfy it.
type BlockLedger interface {
	Ledger(fromMillis, toMillis int64, fn func(*storage.Usage) error) error
}

// LoadBlocks reads the Claude Code calls of [fromMillis, toMillis) and cuts
// them into blocks as of now.
func LoadBlocks(src BlockLedger, fromMillis, toMillis int64, now time.Time) (BlockReport, error) {
	var calls []BlockEntry
	err := src.Ledger(fromMillis, toMillis, func(u *storage.Usage) error {
		if u.Source == storage.SourceClaude {
			calls = append(calls, BlockEntry{TS: u.TS, Model: u.Model, Input: u.Input, Output: u.Output,
				CacheRead: u.CacheRead, CacheWrite: u.CacheWrite, CostNanos: storage.Nanos(u.Cost.Total)})
		}
		return nil
	})
	if err != nil {
		return BlockReport{}, err
	}
	return BlockReport{Blocks: Blocks(calls, now)}, nil
}

// Ledger streams the tally's live records with fromMillis <= ts <
// toMillis in time order, as storage.DB.Ledger does.
func (t *Tally) Ledger(fromMillis, toMillis int64, fn func(*storage.Usage) error) error {
	var recs []*storage.Usage
	for _, u := range t.seen {
		if u != nil && u.TS >= fromMillis && u.TS < toMillis {
			recs = append(recs, u)
		}
	}
	sort.SliceStable(recs, func(i, j int) bool {
		if recs[i].TS != recs[j].TS {
			return recs[i].TS < recs[j].TS
		}
		return recs[i].DedupeKey < recs[j].DedupeKey
	})
	for _, u := range recs {
		c := *u
		if err := fn(&c); err != nil {
			return err
		}
	}
	return nil
}
