// Package corpus generates synthetic OpenClaw state directories for
// benchmarks and crash tests, together with the totals an ingester must
// report for them.
//
// The output is deterministic for a seed: the same Options give the same
// files, byte for byte (math/rand/v2 PCG, no clock, no map iteration in the
// output). Lines follow pi's v3 session format as OpenClaw writes it (see
// shared/reference/openclaw-format.md §3–§6): session headers, model and
// thinking-level changes, model snapshots, user turns carrying OpenClaw's
// untrusted-metadata blocks, assistant calls with usage and cost, long tool
// results, delivery mirrors and aborted calls. Optional traps reproduce the
// ways real hosts duplicate usage: fork files, compaction checkpoints, reset
// archives and transcript rewrites.
//
// Expected is computed from the generator's own bookkeeping while it writes,
// never by re-reading the files; the package test recounts the files
// independently and compares.
package corpus

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// DefaultEnd is the exclusive end of the generated period when Options.End
// is zero: a fixed date, so a corpus never depends on when it was made.
var DefaultEnd = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)

// Options shape a corpus. Rates are probabilities in [0, 1].
type Options struct {
	Seed      uint64
	SizeBytes int64     // generate until about this many bytes are written
	End       time.Time // exclusive end of the period (UTC); zero means DefaultEnd
	Days      int       // length of the period, ending at End
	Agents    int

	// SessionsPerAgentDay is the mean number of sessions an agent starts per
	// day. When SizeBytes is too small for that many sessions, fewer are
	// made; when it is large, sessions grow longer.
	SessionsPerAgentDay float64

	// Per-session behaviour.
	LegacyRate   float64 // sessions written without responseId (pre-2026.4 transports)
	ZeroCostRate float64 // sessions on a subscription/OAuth profile: usage without cost
	// Per-turn behaviour.
	ImageRate  float64 // user turns carrying a ~200 KB base64 image (only in large sessions)
	AbortRate  float64 // model calls aborted with all-zero usage, then retried
	MirrorRate float64 // channel replies followed by a delivery-mirror row

	// Traps: ways the same usage reaches disk twice. Each is per session.
	ForkRate       float64 // a <ts>_<uuid>.jsonl fork copying a prefix, then new turns
	CheckpointRate float64 // a compaction with a <id>.checkpoint.<uuid>.jsonl copy (not counted)
	ResetRate      float64 // a session's file renamed to .jsonl.reset.<ts> when its key starts anew
	RewriteRate    float64 // a transcript rewrite re-appending the last turn with new entry ids
}

// DefaultOptions is a 100 MB, 90-day, 8-agent corpus with every trap on.
func DefaultOptions() Options {
	return Options{
		Seed:                1,
		SizeBytes:           100 << 20,
		End:                 DefaultEnd,
		Days:                90,
		Agents:              8,
		SessionsPerAgentDay: 1.5,
		LegacyRate:          0.15,
		ZeroCostRate:        0.08,
		ImageRate:           0.02,
		AbortRate:           0.02,
		MirrorRate:          0.05,
		ForkRate:            0.05,
		CheckpointRate:      0.05,
		ResetRate:           0.3,
		RewriteRate:         0.04,
	}
}

// NoTraps returns o without the duplicating traps (forks, checkpoints,
// resets, rewrites), for corpora where every row is unique.
func (o Options) NoTraps() Options {
	o.ForkRate, o.CheckpointRate, o.ResetRate, o.RewriteRate = 0, 0, 0, 0
	return o
}

// ErrInvalidOptions is wrapped by Validate's errors.
var ErrInvalidOptions = errors.New("corpus: invalid options")

// Validate reports the first unusable option.
func (o Options) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, a...))
	}
	switch {
	case o.SizeBytes <= 0:
		return bad("size %d bytes", o.SizeBytes)
	case o.Days < 1 || o.Days > 3660:
		return bad("days %d, want 1..3660", o.Days)
	case o.Agents < 1 || o.Agents > 1000:
		return bad("agents %d, want 1..1000", o.Agents)
	case !(o.SessionsPerAgentDay > 0) || o.SessionsPerAgentDay > 1000:
		return bad("sessions per agent-day %v, want (0, 1000]", o.SessionsPerAgentDay)
	}
	rates := []struct {
		name string
		v    float64
	}{
		{"legacy", o.LegacyRate}, {"zero-cost", o.ZeroCostRate}, {"image", o.ImageRate},
		{"abort", o.AbortRate}, {"mirror", o.MirrorRate}, {"fork", o.ForkRate},
		{"checkpoint", o.CheckpointRate}, {"reset", o.ResetRate}, {"rewrite", o.RewriteRate},
	}
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) {
			return bad("%s rate %v, want [0, 1]", r.name, r.v)
		}
	}
	return nil
}

// Totals are sums over counted model calls.
type Totals struct {
	Messages   int64   `json:"messages"`
	Input      int64   `json:"input"`
	Output     int64   `json:"output"`
	CacheRead  int64   `json:"cache_read"`
	CacheWrite int64   `json:"cache_write"`
	Cost       float64 `json:"cost"` // sum of usage.cost.total in USD, summed in generation order
	// CostNanos sums round(cost.total × 1e9) per call, as storage.Nanos
	// does: unlike the float sum it does not depend on summation order, so
	// an ingester's total must match it exactly.
	CostNanos int64 `json:"cost_nanos"`
}

// TotalTokens is the sum of the four token kinds.
func (t Totals) TotalTokens() int64 { return t.Input + t.Output + t.CacheRead + t.CacheWrite }

func (t *Totals) add(c *call) {
	t.Messages++
	t.Input += c.u.input
	t.Output += c.u.output
	t.CacheRead += c.u.cacheRead
	t.CacheWrite += c.u.cacheWrite
	t.Cost += c.cost[4]
	t.CostNanos += nanos(c.cost[4])
}

// nanos matches storage.Nanos, without importing storage.
func nanos(usd float64) int64 { return int64(math.Round(usd * 1e9)) }

// Skips count assistant rows with usage that an ingester must not count,
// once per row per counted file (a delivery mirror copied into a fork is
// skipped twice). Checkpoint files are not read at all, so nothing in them
// is counted here.
type Skips struct {
	Duplicate    int64 `json:"duplicate"`      // same dedupe key as a row already counted
	NotModelCall int64 `json:"not_model_call"` // provider "openclaw" (delivery-mirror)
	ZeroUsage    int64 `json:"zero_usage"`     // aborted calls: all four token counts 0
}

// Files describes what was written.
type Files struct {
	Transcripts   int   `json:"transcripts"`    // <uuid>.jsonl, current and orphaned
	Forks         int   `json:"forks"`          // <ts>_<uuid>.jsonl
	Checkpoints   int   `json:"checkpoints"`    // <uuid>.checkpoint.<uuid>.jsonl, not to be counted
	ResetArchives int   `json:"reset_archives"` // <uuid>.jsonl.reset.<ts>
	Stores        int   `json:"stores"`         // sessions.json
	Lines         int64 `json:"lines"`          // JSONL lines in all transcript files, checkpoints included
	Bytes         int64 `json:"bytes"`          // everything written, sessions.json included
}

// Expected is what an ingester must find in a corpus. A counted call is an
// assistant row with provider != "openclaw", non-zero usage, in a file that
// is not a checkpoint, deduplicated on provider|responseId when present,
// else provider|model|message.timestamp|input|output|cacheRead|cacheWrite.
type Expected struct {
	Totals
	// Unpriced is the part of Totals whose cost.total is 0 in the
	// transcript (subscription sessions): an ingester prices these itself.
	Unpriced Totals            `json:"unpriced"`
	Skips    Skips             `json:"skips"`
	Days     map[string]Totals `json:"days"`   // UTC date (2006-01-02) of the entry timestamp
	Agents   map[string]Totals `json:"agents"` // agent id (directory name)
	Models   map[string]Totals `json:"models"` // "provider/model"
	Sessions int               `json:"sessions"`
	Files    Files             `json:"files"`
}

func newExpected() Expected {
	return Expected{Days: map[string]Totals{}, Agents: map[string]Totals{}, Models: map[string]Totals{}}
}

// usage is a call's four token counts. input excludes cache reads, as in
// OpenClaw transcripts.
type usage struct{ input, output, cacheRead, cacheWrite int64 }

func (u usage) zero() bool { return u == usage{} }

// call is the usage-bearing part of an assistant row.
type call struct {
	provider, model, responseID string
	u                           usage
	cost                        [5]float64 // input, output, cacheRead, cacheWrite, total
	msgTS                       int64      // message.timestamp, unix ms
}

// key is the dedupe key of DESIGN §2 and the reference §5.
func (c *call) key() string {
	if c.responseID != "" {
		return c.provider + "|" + c.responseID
	}
	b := make([]byte, 0, 96)
	b = append(b, c.provider...)
	b = append(b, '|')
	b = append(b, c.model...)
	for _, n := range [...]int64{c.msgTS, c.u.input, c.u.output, c.u.cacheRead, c.u.cacheWrite} {
		b = append(b, '|')
		b = strconv.AppendInt(b, n, 10)
	}
	return string(b)
}

// ledger applies the counting rules to every assistant row as it is
// written to a counted file.
type ledger struct {
	exp  *Expected
	seen map[string]struct{}
}

func newLedger(exp *Expected) *ledger { return &ledger{exp: exp, seen: map[string]struct{}{}} }

func (l *ledger) row(agent, day string, c *call) {
	switch {
	case c.provider == "openclaw":
		l.exp.Skips.NotModelCall++
		return
	case c.u.zero():
		l.exp.Skips.ZeroUsage++
		return
	}
	k := c.key()
	if _, dup := l.seen[k]; dup {
		l.exp.Skips.Duplicate++
		return
	}
	l.seen[k] = struct{}{}
	l.exp.Totals.add(c)
	if c.cost[4] == 0 {
		l.exp.Unpriced.add(c)
	}
	addTo(l.exp.Days, day, c)
	addTo(l.exp.Agents, agent, c)
	addTo(l.exp.Models, c.provider+"/"+c.model, c)
}

func addTo(m map[string]Totals, k string, c *call) {
	t := m[k]
	t.add(c)
	m[k] = t
}
