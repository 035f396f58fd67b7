package pricing

import (
	"strings"
)

// A Modifier is a multiple of the standard rates that a call is billed at
// for something besides its model: Anthropic's fast mode (usage.speed),
// OpenAI's service tiers (service_tier: priority above the standard rate,
// flex and batch below it). The multiple applies to every token price of
// the call (cache reads and writes included), on top of the table's or the
// override's standard price.
type Modifier struct {
	Provider string  `json:"provider"` // the table provider it applies to: "anthropic", "openai"
	Value    string  `json:"value"`    // the recorded speed or tier: "fast", "priority", "flex", "batch"
	Models   string  `json:"models"`   // model id prefix of the family it applies to; "" any model
	Multiple float64 `json:"multiple"` // × the standard rates
	Since    string  `json:"since"`    // first day it applied (UTC); calls before it take the next older entry
	Source   string  `json:"source"`   // where the multiple is published
}

// Modifiers is the table of known modifiers, one place for all of them.
// The first entry matching provider, value, model family and date wins;
// ModifiersDate is when it was last checked against its sources.
//
// A modifier that is recorded but not in this table (fast mode on a model
// family not listed, an unknown tier) is never guessed: the call is
// unpriced, its tokens kept, and `fleetmeter prices` lists it.
var Modifiers = []Modifier{
	{Provider: "anthropic", Value: "fast", Models: "claude-opus-4-6", Multiple: 6, Since: "2026-02-05",
		Source: "Anthropic fast mode (research preview) $30/$150 per MTok on Opus 4.6; LiteLLM provider_specific_entry.fast 6.0; ccusage PR #886"},
	{Provider: "anthropic", Value: "fast", Models: "claude-opus-4-7", Multiple: 6, Since: "2026-04-16",
		Source: "LiteLLM provider_specific_entry.fast 6.0; genai-prices openrouter anthropic/claude-opus-4.7-fast"},
	{Provider: "anthropic", Value: "fast", Models: "claude-opus-4-8", Multiple: 2, Since: "2026-05-28",
		Source: "Anthropic pricing: fast mode $10/$50 per MTok on Opus 4.8; genai-prices openrouter anthropic/claude-opus-4.8-fast"},
	{Provider: "anthropic", Value: "fast", Models: "claude-opus-5", Multiple: 2, Since: "2026-07-23",
		Source: "Anthropic pricing: fast mode $10/$50 per MTok on Opus 5; genai-prices openrouter anthropic/claude-opus-5-fast"},
	{Provider: "anthropic", Value: "batch", Multiple: 0.5, Since: "2024-10-08",
		Source: "Anthropic Message Batches API: 50% of standard prices"},
	{Provider: "openai", Value: "priority", Multiple: 2, Since: "2025-04-01",
		Source: "OpenAI priority processing (Codex fast mode): 2x every token class; tokscale#1347"},
	{Provider: "openai", Value: "flex", Multiple: 0.5, Since: "2025-04-16",
		Source: "OpenAI flex processing: Batch API rates, 50% of standard"},
	{Provider: "openai", Value: "batch", Multiple: 0.5, Since: "2024-04-15",
		Source: "OpenAI Batch API: 50% of standard prices"},
}

// ModifiersDate is when the modifier table was last checked.
const ModifiersDate = "2026-11-30"

// standardValue reports whether a recorded speed or tier means the
// standard rate.
func standardValue(v string) bool {
	switch v {
	case "", "standard", "default", "auto", "on_demand", "scale":
		return true
	}
	return false
}

// NormalizeModifier lower-cases a recorded speed or tier and maps every
// spelling of the standard rate to "".
func NormalizeModifier(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if standardValue(v) {
		return ""
	}
	return v
}

// modifierFor finds the multiple of value for a call priced by table
// provider prov and model id (the matched table model, or the recorded
// name), on the UTC day tsMillis falls in. ok is false when no entry knows
// it: the call is then unpriced.
func modifierFor(prov, model, value string, tsMillis int64) (float64, bool) {
	if value == "" {
		return 1, true
	}
	day := floorDiv(tsMillis, msPerDay)
	for _, m := range Modifiers {
		if m.Provider != prov || m.Value != value || !strings.HasPrefix(model, m.Models) {
			continue
		}
		if since, err := dayOf(m.Since); err == nil && day < since {
			continue
		}
		return m.Multiple, true
	}
	return 0, false
}

func (p Price) times(k float64) Price {
	return Price{
		Input: p.Input * k, Output: p.Output * k, CacheRead: p.CacheRead * k,
		CacheWrite: p.CacheWrite * k, CacheWrite1h: p.CacheWrite1h * k,
		OutputReasoning: p.OutputReasoning * k,
		WebSearchPer1k:  p.WebSearchPer1k, // per request, not per token: no multiple
	}
}
