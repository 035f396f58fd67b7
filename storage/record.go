package storage

import (
	"math"
	"unicode/utf8"
)

// Sources of usage records.
const (
	SourceOpenClaw = "openclaw"
	SourceClaude   = "claude"
	SourceCodex    = "codex"
)

// Where a record's cost came from, in the pricing order of DESIGN §3.
const (
	CostOverride   = "override"   // the user's price file
	CostTranscript = "transcript" // the transcript's own cost.total (> 0)
	CostTable      = "table"      // the embedded price table
	CostUnpriced   = "unpriced"   // no price known: tokens kept, cost 0
)

// Usage is one deduplicated model call: a row of the ledger.
// Token counts follow the OpenClaw convention: Input excludes cache reads.
type Usage struct {
	TS         int64  `json:"ts"` // unix milliseconds, UTC
	Source     string `json:"source"`
	Agent      string `json:"agent"`
	SessionID  string `json:"session_id"`
	SessionKey string `json:"session_key,omitempty"`
	Channel    string `json:"channel,omitempty"`
	User       string `json:"user,omitempty"`
	UserLabel  string `json:"user_label,omitempty"`
	Provider   string `json:"provider"`
	Model      string `json:"model"`

	Input        int64 `json:"input_tokens"`
	Output       int64 `json:"output_tokens"`
	CacheRead    int64 `json:"cache_read_tokens"`
	CacheWrite   int64 `json:"cache_write_tokens"`
	CacheWrite1h int64 `json:"cache_write_1h_tokens,omitempty"` // part of CacheWrite priced at the 1-hour rate
	// Reasoning is the part of Output the format reports as reasoning
	// (Codex reasoning_output_tokens). Providers bill it as output; it is
	// shown apart, never added to the total.
	Reasoning int64 `json:"reasoning_tokens,omitempty"`
	// Server tools billed per request (Anthropic server_tool_use).
	WebSearches int64 `json:"web_search_requests,omitempty"`
	WebFetches  int64 `json:"web_fetch_requests,omitempty"`

	// Modifier is what, besides the model, the call was billed by: a
	// service tier or speed ("fast", "priority", "flex", "batch"), as the
	// transcript recorded it. The pricer applies the multiple of its
	// modifier table; "" is the standard rate.
	Modifier string `json:"price_modifier,omitempty"`
	// Corrected names a fix applied to what the writer recorded (see the
	// Corrected* constants); "" when the record is as written.
	Corrected string `json:"corrected,omitempty"`
	// MirrorOf names the fuller transcript a summary row mirrors
	// ("claude:<session id>" for an OpenClaw claude-cli row): once calls of
	// that transcript are recorded, the mirror is dropped (see Mirrors).
	MirrorOf string `json:"mirror_of,omitempty"`
	// Sidechain marks a Claude Code sidechain copy (isSidechain): a replay
	// of a main-chain message that loses to the main-chain copy.
	Sidechain bool `json:"sidechain,omitempty"`

	Cost       Cost   `json:"cost"`
	CostSource string `json:"cost_source"`
	// Recorded is the transcript's own cost when pricing replaced it (an
	// override, an implausible value), kept so that a later reprice
	// starts from what the transcript said. Nil when Cost is the
	// transcript's, or the transcript had none.
	Recorded *Cost `json:"recorded_cost,omitempty"`

	// DedupeKey identifies the model call across files, forks, rewrites and
	// archives (DESIGN §2). Two records with the same key are one call.
	DedupeKey string `json:"dedupe_key"`
}

// Cost is in USD.
type Cost struct {
	Total      float64 `json:"total"`
	Input      float64 `json:"input,omitempty"`
	Output     float64 `json:"output,omitempty"`
	CacheRead  float64 `json:"cache_read,omitempty"`
	CacheWrite float64 `json:"cache_write,omitempty"`
	Tools      float64 `json:"tools,omitempty"` // server tools billed per request (web search)
}

// Corrections to what a transcript's writer recorded (Usage.Corrected).
const (
	// CorrectedImplausibleCost: a positive cost.total more than an order of
	// magnitude away from tokens × the table price; the table price is used.
	CorrectedImplausibleCost = "implausible_cost"
	// CorrectedCacheInInput: an adapter counted cache reads inside input
	// (input + output == totalTokens while cacheRead > 0); input is reduced.
	CorrectedCacheInInput = "cache_in_input"
)

// Corrections counts records stored with a correction, by kind.
type Corrections struct {
	ImplausibleCost int64 `json:"implausible_cost"`
	CacheInInput    int64 `json:"cache_in_input"`
}

// Add adds o to c.
func (c *Corrections) Add(o Corrections) {
	c.ImplausibleCost += o.ImplausibleCost
	c.CacheInInput += o.CacheInInput
}

// Count adds one record's correction.
func (c *Corrections) Count(kind string) {
	switch kind {
	case CorrectedImplausibleCost:
		c.ImplausibleCost++
	case CorrectedCacheInInput:
		c.CacheInInput++
	}
}

// MaxNameBytes caps every name a record carries (agent, user, model…):
// they are untrusted text and become parts of bbolt keys, which must stay
// well under bbolt's 32 KiB key limit or the whole batch fails.
const MaxNameBytes = 512

// Normalize cuts over-long names (at a UTF-8 boundary). Apply and the
// in-memory tally call it before any key is built.
func (u *Usage) Normalize() {
	for _, f := range []*string{&u.Source, &u.Agent, &u.SessionID, &u.SessionKey, &u.Channel, &u.User, &u.UserLabel, &u.Provider, &u.Model} {
		if len(*f) > MaxNameBytes {
			cut := MaxNameBytes
			for cut > 0 && !utf8.RuneStart((*f)[cut]) {
				cut--
			}
			*f = (*f)[:cut]
		}
	}
}

// TotalTokens is the sum of the four token kinds.
func (u *Usage) TotalTokens() int64 {
	return u.Input + u.Output + u.CacheRead + u.CacheWrite
}

// Supersedes reports whether candidate should replace existing, two records
// with the same dedupe key. Identical copies (forks, archives, rewrites) never
// replace; a streamed Claude Code response is written several times with a
// growing output count, and the largest copy is the true one; a sidechain
// replay never beats the main-chain copy.
func Supersedes(existing, candidate *Usage) bool {
	if existing.Sidechain != candidate.Sidechain {
		return existing.Sidechain // the main-chain copy wins, whatever its size (ccusage #913)
	}
	return candidate.TotalTokens() > existing.TotalTokens()
}

// AdoptIdentity gives a superseding copy the identity of the call it
// replaces: its time and attribution stay those of the first copy, only the
// counts and cost change. Rollups then do not depend on which copy came first.
func (u *Usage) AdoptIdentity(first *Usage) {
	u.TS = first.TS
	u.Source, u.Agent, u.SessionID, u.SessionKey = first.Source, first.Agent, first.SessionID, first.SessionKey
	u.Channel, u.User, u.UserLabel = first.Channel, first.User, first.UserLabel
}

// Nanos converts USD to integer nano-dollars. Rollups sum integers so that a
// rebuild in ledger order gives byte-identical rows to incremental ingest in
// file order (float sums depend on order).
func Nanos(usd float64) int64 {
	if math.IsNaN(usd) || math.IsInf(usd, 0) {
		return 0
	}
	return int64(math.Round(usd * 1e9))
}

// USD converts nano-dollars back to dollars.
func USD(nanos int64) float64 { return float64(nanos) / 1e9 }

// Totals are the additive facts of a rollup row. Every field is a sum, so
// rows merge by addition and a replaced record is subtracted exactly.
type Totals struct {
	Messages   int64
	Input      int64
	Output     int64
	CacheRead  int64
	CacheWrite int64

	CostNanos           int64
	CostInputNanos      int64
	CostOutputNanos     int64
	CostCacheReadNanos  int64
	CostCacheWriteNanos int64

	UnpricedMessages int64 // calls with cost_source "unpriced"
	UnpricedTokens   int64 // their tokens, the bucket reports show on its own

	Reasoning      int64 // reasoning tokens, a part of Output
	CostToolsNanos int64 // server tools billed per request, a part of CostNanos
}

// TotalsOf is the contribution of one record.
func TotalsOf(u *Usage) Totals {
	t := Totals{
		Messages:            1,
		Input:               u.Input,
		Output:              u.Output,
		CacheRead:           u.CacheRead,
		CacheWrite:          u.CacheWrite,
		CostNanos:           Nanos(u.Cost.Total),
		CostInputNanos:      Nanos(u.Cost.Input),
		CostOutputNanos:     Nanos(u.Cost.Output),
		CostCacheReadNanos:  Nanos(u.Cost.CacheRead),
		CostCacheWriteNanos: Nanos(u.Cost.CacheWrite),
		Reasoning:           u.Reasoning,
		CostToolsNanos:      Nanos(u.Cost.Tools),
	}
	if u.CostSource == CostUnpriced {
		t.UnpricedMessages = 1
		t.UnpricedTokens = u.TotalTokens()
	}
	return t
}

// Add adds o to t.
func (t *Totals) Add(o Totals) {
	t.Messages += o.Messages
	t.Input += o.Input
	t.Output += o.Output
	t.CacheRead += o.CacheRead
	t.CacheWrite += o.CacheWrite
	t.CostNanos += o.CostNanos
	t.CostInputNanos += o.CostInputNanos
	t.CostOutputNanos += o.CostOutputNanos
	t.CostCacheReadNanos += o.CostCacheReadNanos
	t.CostCacheWriteNanos += o.CostCacheWriteNanos
	t.UnpricedMessages += o.UnpricedMessages
	t.UnpricedTokens += o.UnpricedTokens
	t.Reasoning += o.Reasoning
	t.CostToolsNanos += o.CostToolsNanos
}

// Sub subtracts o from t.
func (t *Totals) Sub(o Totals) {
	t.Add(o.negate())
}

func (t Totals) negate() Totals {
	return Totals{
		-t.Messages, -t.Input, -t.Output, -t.CacheRead, -t.CacheWrite,
		-t.CostNanos, -t.CostInputNanos, -t.CostOutputNanos, -t.CostCacheReadNanos, -t.CostCacheWriteNanos,
		-t.UnpricedMessages, -t.UnpricedTokens,
		-t.Reasoning, -t.CostToolsNanos,
	}
}

// TotalTokens is the sum of the four token kinds.
func (t Totals) TotalTokens() int64 { return t.Input + t.Output + t.CacheRead + t.CacheWrite }

// IsZero reports whether the row holds nothing (all its records were removed).
func (t Totals) IsZero() bool { return t == Totals{} }

// Dim is the dimension of a daily or weekly rollup row.
type Dim struct {
	Source   string
	Agent    string
	User     string
	Provider string
	Model    string
}

// Row is one daily or weekly rollup row. Period is a day number (see
// DayNumber); for weekly rows it is the Monday that starts the ISO week.
type Row struct {
	Period int32
	Dim
	Totals
}

// Session is the running summary of one session: what the session report and
// upstream's token_usage table show.
type Session struct {
	Source     string            `json:"source"`
	SessionID  string            `json:"session_id"`
	SessionKey string            `json:"session_key,omitempty"`
	Agent      string            `json:"agent"`
	Channel    string            `json:"channel,omitempty"`
	FirstTS    int64             `json:"first_ts"`
	LastTS     int64             `json:"last_ts"`
	Models     map[string]Totals `json:"models"` // "provider/model" → sums
}

// Skips counts what ingest did not turn into ledger records, by reason.
type Skips struct {
	Duplicate      int64 `json:"duplicate"`
	NotModelCall   int64 `json:"not_model_call"`
	ZeroUsage      int64 `json:"zero_usage"`
	Malformed      int64 `json:"malformed"`
	PartialLine    int64 `json:"partial_line"`
	OversizeLine   int64 `json:"oversize_line"`
	UnreadableFile int64 `json:"unreadable_file"`
	Unsupported    int64 `json:"unsupported"` // stores or lines of a format we do not read
	TooOld         int64 `json:"too_old"`     // calls older than the ledger's retention
	// UnrecognizedUsage: a usage-shaped object or token field no reader
	// understands (a new record type, a new non-zero token field).
	UnrecognizedUsage int64 `json:"unrecognized_usage"`
}

// Add adds o to s.
func (s *Skips) Add(o Skips) {
	s.Duplicate += o.Duplicate
	s.NotModelCall += o.NotModelCall
	s.ZeroUsage += o.ZeroUsage
	s.Malformed += o.Malformed
	s.PartialLine += o.PartialLine
	s.OversizeLine += o.OversizeLine
	s.UnreadableFile += o.UnreadableFile
	s.Unsupported += o.Unsupported
	s.TooOld += o.TooOld
	s.UnrecognizedUsage += o.UnrecognizedUsage
}
