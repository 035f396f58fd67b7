package pricing

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// The expected prices below were read by hand from genaiprices/data.json
// (snapshot 2026-08-21); each case shows its arithmetic in USD, prices per
// million tokens.

func ms(t testing.TB, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixMilli()
}

func loadTable(t testing.TB) *Table {
	t.Helper()
	tb, err := LoadTable()
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// sameCost compares at nano-dollar precision, the precision rollups keep.
func sameCost(got, want storage.Cost) bool {
	n := storage.Nanos
	return n(got.Total) == n(want.Total) && n(got.Input) == n(want.Input) &&
		n(got.Output) == n(want.Output) && n(got.CacheRead) == n(want.CacheRead) &&
		n(got.CacheWrite) == n(want.CacheWrite)
}

func cost(in, out, read, write float64) storage.Cost {
	return storage.Cost{Total: in + out + read + write, Input: in, Output: out, CacheRead: read, CacheWrite: write}
}

type tokens struct{ in, out, read, write, write1h int64 }

func record(provider, model string, ts int64, tk tokens) storage.Usage {
	return storage.Usage{
		TS: ts, Provider: provider, Model: model,
		Input: tk.in, Output: tk.out, CacheRead: tk.read, CacheWrite: tk.write, CacheWrite1h: tk.write1h,
	}
}

func TestApplyTable(t *testing.T) {
	p := NewPricer(loadTable(t), nil)
	aug := "2026-08-01T12:00:00Z"
	cases := []struct {
		name            string
		provider, model string
		at              string
		tk              tokens
		want            storage.Cost
	}{
		{
			// claude-sonnet-4-5: 3 / 15 / 0.3 / 3.75 below 200k prompt.
			// 1000×3 + 500×15 + 10000×0.3 + 2000×3.75 = .003 + .0075 + .003 + .0075
			name: "claude code sonnet 4.5", provider: "anthropic", model: "claude-sonnet-4-5-20250929", at: aug,
			tk:   tokens{in: 1000, out: 500, read: 10000, write: 2000},
			want: cost(0.003, 0.0075, 0.003, 0.0075),
		},
		{
			// prompt = 190000 + 10000 = 200000, not above the tier start: base.
			// 190000×3 + 1000×15 + 10000×0.3
			name: "tier start itself is base", provider: "anthropic", model: "claude-sonnet-4-5-20250929", at: aug,
			tk:   tokens{in: 190000, out: 1000, read: 10000},
			want: cost(0.57, 0.015, 0.003, 0),
		},
		{
			// prompt = 150000 + 50000 + 1 = 200001 > 200000: cliff, every kind
			// at its tier price 6 / 22.5 / 0.6 / 7.5.
			// 150000×6 + 1000×22.5 + 50000×0.6 + 1×7.5
			name: "above 200k all tokens at tier price", provider: "anthropic", model: "claude-sonnet-4-5", at: aug,
			tk:   tokens{in: 150000, out: 1000, read: 50000, write: 1},
			want: cost(0.9, 0.0225, 0.03, 0.0000075),
		},
		{
			// claude-opus-4-5: 5 / 25 / 0.5 / 6.25, 1h writes 10.
			// 100×5 ; (10000-4000)×6.25 + 4000×10 = .0375 + .04
			name: "1h cache writes", provider: "anthropic", model: "claude-opus-4-5-20251101", at: aug,
			tk:   tokens{in: 100, write: 10000, write1h: 4000},
			want: cost(0.0005, 0, 0, 0.0775),
		},
		{
			// prompt 201000 > 200k: input 6, 1h writes at the 1h tier 12.
			// 200000×6 ; 1000×12
			name: "1h cache writes above tier", provider: "anthropic", model: "claude-sonnet-4-5", at: aug,
			tk:   tokens{in: 200000, write: 1000, write1h: 1000},
			want: cost(1.2, 0, 0, 0.012),
		},
		{
			// Vertex's claude-opus-4-7 (google provider): cache write 6.25, no
			// 1h price, so the 1h part costs 6.25 too. 10000×6.25
			name: "no 1h price falls to cache_write", provider: "google-vertex", model: "claude-opus-4-7@20260101", at: aug,
			tk:   tokens{write: 10000, write1h: 4000},
			want: cost(0, 0, 0, 0.0625),
		},
		{
			// gpt-5 (gpt-5-codex): 1.25 / 10 / 0.125.
			// 100000×1.25 + 2000×10 + 50000×0.125
			name: "codex gpt-5-codex", provider: "openai", model: "gpt-5-codex", at: aug,
			tk:   tokens{in: 100000, out: 2000, read: 50000},
			want: cost(0.125, 0.02, 0.00625, 0),
		},
		{
			// openai-codex → openai by provider_match "contains openai";
			// gpt-5.1-codex-max is listed under gpt-5.1: 1.25 / 10.
			name: "openai-codex provider", provider: "openai-codex", model: "gpt-5.1-codex-max", at: aug,
			tk:   tokens{in: 10000, out: 1000},
			want: cost(0.0125, 0.01, 0, 0),
		},
		{
			// o3: 10 / 40 until 2025-06-09, 2 / 8 from 2025-06-10 (UTC date).
			name: "o3 last millisecond of old price", provider: "openai", model: "o3", at: "2025-06-09T23:59:59.999Z",
			tk:   tokens{in: 1000, out: 1000},
			want: cost(0.01, 0.04, 0, 0),
		},
		{
			name: "o3 new price from its start date", provider: "openai", model: "o3-2025-04-16", at: "2025-06-10T00:00:00Z",
			tk:   tokens{in: 1000, out: 1000},
			want: cost(0.002, 0.008, 0, 0),
		},
		{
			// claude-sonnet-4-6: tiered (6 / 22.5 above 200k) until 2026-03-12,
			// flat 3 / 15 from 2026-03-13. 250000×6 + 1000×22.5
			name: "sonnet 4.6 tier before 2026-03-13", provider: "anthropic", model: "claude-sonnet-4-6", at: "2026-03-12T23:00:00Z",
			tk:   tokens{in: 250000, out: 1000},
			want: cost(1.5, 0.0225, 0, 0),
		},
		{
			// 250000×3 + 1000×15
			name: "sonnet 4.6 flat from 2026-03-13", provider: "anthropic", model: "claude-sonnet-4-6", at: "2026-03-13T00:00:00Z",
			tk:   tokens{in: 250000, out: 1000},
			want: cost(0.75, 0.015, 0, 0),
		},
		{
			// deepseek-chat: 0.27 / 1.1 from 00:30 to 16:30 UTC, else 0.135 / 0.55.
			name: "deepseek peak", provider: "deepseek", model: "deepseek-chat", at: "2026-08-01T10:00:00Z",
			tk:   tokens{in: 1_000_000, out: 1_000_000},
			want: cost(0.27, 1.1, 0, 0),
		},
		{
			name: "deepseek off-peak at window end", provider: "deepseek", model: "deepseek-chat", at: "2026-08-01T16:30:00Z",
			tk:   tokens{in: 1_000_000, out: 1_000_000},
			want: cost(0.135, 0.55, 0, 0),
		},
		{
			name: "deepseek peak at window start", provider: "deepseek", model: "deepseek-chat", at: "2026-08-01T00:30:00Z",
			tk:   tokens{in: 1_000_000},
			want: cost(0.27, 0, 0, 0),
		},
		{
			// openrouter lists vendor-prefixed ids: anthropic/claude-sonnet-4.5
			// 3 / 15. 1000×3 + 1000×15
			name: "openrouter prefixed model", provider: "openrouter", model: "anthropic/claude-sonnet-4.5", at: aug,
			tk:   tokens{in: 1000, out: 1000},
			want: cost(0.003, 0.015, 0, 0),
		},
		{
			// amazon-bedrock → aws; the us. inference profile is the regional
			// price 3.3 / 16.5. 1e6×3.3 + 1e5×16.5
			name: "bedrock regional", provider: "amazon-bedrock", model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", at: aug,
			tk:   tokens{in: 1_000_000, out: 100_000},
			want: cost(3.3, 1.65, 0, 0),
		},
		{
			// xai → x-ai (provider_match equals "xai"); grok-4 is grok-4-0709, 3 / 15.
			name: "xai", provider: "xai", model: "grok-4", at: aug,
			tk:   tokens{in: 1_000_000},
			want: cost(3, 0, 0, 0),
		},
		{
			// google has no claude-haiku-4-5 of its own; its
			// fallback_model_providers names anthropic: 1 / 5.
			name: "feed fallback provider", provider: "google-vertex", model: "claude-haiku-4-5@20251001", at: aug,
			tk:   tokens{in: 1_000_000, out: 1_000_000},
			want: cost(1, 5, 0, 0),
		},
		{
			// groq openai/gpt-oss-120b: 0.15 / 0.6.
			name: "groq", provider: "groq", model: "openai/gpt-oss-120b", at: aug,
			tk:   tokens{in: 1_000_000, out: 1_000_000},
			want: cost(0.15, 0.6, 0, 0),
		},
		{
			// Matching ignores case. claude-opus-4-5 input 5.
			name: "case-insensitive", provider: "Anthropic", model: "Claude-Opus-4-5", at: aug,
			tk:   tokens{in: 1_000_000},
			want: cost(5, 0, 0, 0),
		},
		{
			// Our one rule beyond the feed: a prefix naming the record's own
			// vendor is dropped. claude-opus-4-6 is flat 5 from 2026-03-13.
			name: "own vendor prefix", provider: "anthropic", model: "anthropic/claude-opus-4-6", at: aug,
			tk:   tokens{in: 1_000_000},
			want: cost(5, 0, 0, 0),
		},
		{
			// The feed lists it with no prices at all: known and free.
			name: "free model", provider: "mistral", model: "devstral-small:free", at: aug,
			tk:   tokens{in: 1_000_000, out: 1_000_000},
			want: cost(0, 0, 0, 0),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := record(c.provider, c.model, ms(t, c.at), c.tk)
			p.Apply(&u)
			if u.CostSource != storage.CostTable {
				t.Fatalf("cost source %q, want %q", u.CostSource, storage.CostTable)
			}
			if !sameCost(u.Cost, c.want) {
				t.Errorf("cost %+v\nwant %+v", u.Cost, c.want)
			}
		})
	}
}

func TestApplyUnpriced(t *testing.T) {
	p := NewPricer(loadTable(t), nil)
	cases := []struct{ name, provider, model string }{
		{"unknown model of a known provider", "anthropic", "claude-nonexistent-9"},
		{"claude under openai", "openai", "claude-sonnet-4-5"},
		{"gpt under anthropic", "anthropic", "gpt-5"},
		{"grok under openai-codex", "openai-codex", "grok-4"},
		{"other vendor's prefix", "openai", "anthropic/claude-opus-4-6"},
		{"prefix not naming the provider", "groq", "meta-llama/llama-3.1-8b-instant"},
		{"unknown provider", "github-copilot", "claude-sonnet-4.5"},
		{"local provider", "ollama", "llama3.1:8b"},
		{"no provider", "", "claude-sonnet-4-5"},
		{"no model", "anthropic", ""},
		{"synthetic message", "anthropic", "<synthetic>"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := record(c.provider, c.model, ms(t, "2026-08-01T00:00:00Z"), tokens{in: 10, out: 20, read: 30, write: 40, write1h: 5})
			u.Cost = storage.Cost{Input: 0.5} // parts without a total: not a transcript cost
			p.Apply(&u)
			if u.CostSource != storage.CostUnpriced || u.Cost != (storage.Cost{}) {
				t.Fatalf("got %q %+v, want unpriced and zero cost", u.CostSource, u.Cost)
			}
			if u.Input != 10 || u.Output != 20 || u.CacheRead != 30 || u.CacheWrite != 40 || u.CacheWrite1h != 5 {
				t.Errorf("tokens changed: %+v", u)
			}
			if _, _, ok := p.Lookup(c.provider, c.model, time.Now()); ok {
				t.Error("Lookup found a price")
			}
		})
	}
}

func TestApplyOrder(t *testing.T) {
	table := loadTable(t)
	overrides := Overrides{
		"Anthropic/Claude-Sonnet-4-6":      {Input: 1, Output: 2, CacheRead: 0.1, CacheWrite: 1.5},
		"github-copilot/claude-sonnet-4.5": {Input: 0.5, Output: 1, CacheWrite: 2, CacheWrite1h: 4},
	}
	p := NewPricer(table, overrides)
	ts := ms(t, "2026-08-01T00:00:00Z")
	transcript := storage.Cost{Total: 4.2, Input: 1, Output: 3, CacheRead: 0.2}
	cases := []struct {
		name            string
		provider, model string
		arrives         storage.Cost
		tk              tokens
		wantSource      string
		want            storage.Cost
	}{
		{
			// 1e6×1 + 1e6×2 + 1e6×0.1 + 1e6×1.5 ; the transcript's 0.42 is replaced.
			name: "override beats transcript", provider: "anthropic", model: "claude-sonnet-4-6", arrives: transcript,
			tk:         tokens{in: 1e6, out: 1e6, read: 1e6, write: 1e6},
			wantSource: storage.CostOverride, want: cost(1, 2, 0.1, 1.5),
		},
		{
			// No 1h price in the override: 1h writes at cache_write 1.5. 1e6×1.5
			name: "override 1h defaults to cache_write", provider: "ANTHROPIC", model: "claude-sonnet-4-6",
			tk:         tokens{write: 1e6, write1h: 4e5},
			wantSource: storage.CostOverride, want: cost(0, 0, 0, 1.5),
		},
		{
			// Prices a pair the table does not know. 6e5×2 + 4e5×4 ; 1e6×0.5
			name: "override of an unpriced pair with 1h price", provider: "github-copilot", model: "claude-sonnet-4.5",
			tk:         tokens{in: 1e6, write: 1e6, write1h: 4e5},
			wantSource: storage.CostOverride, want: cost(0.5, 0, 0, 2.8),
		},
		{
			// $4.20 against the table's $30: within an order of magnitude.
			name: "transcript beats table", provider: "anthropic", model: "claude-opus-4-5", arrives: transcript,
			tk:         tokens{in: 1e6, out: 1e6},
			wantSource: storage.CostTranscript, want: transcript,
		},
		{
			// $0.42 against $30 (71× off): the writer got it wrong.
			name: "implausible transcript cost is replaced", provider: "anthropic", model: "claude-opus-4-5",
			arrives:    storage.Cost{Total: 0.42},
			tk:         tokens{in: 1e6, out: 1e6},
			wantSource: storage.CostTable, want: cost(5, 25, 0, 0),
		},
		{
			// 11× the table: too high is as implausible as too low.
			name: "too high transcript cost is replaced", provider: "anthropic", model: "claude-opus-4-5",
			arrives:    storage.Cost{Total: 330.01},
			tk:         tokens{in: 1e6, out: 1e6},
			wantSource: storage.CostTable, want: cost(5, 25, 0, 0),
		},
		{
			name: "transcript cost of an unknown model", provider: "github-copilot", model: "gpt-4.1", arrives: transcript,
			tk:         tokens{in: 1e6},
			wantSource: storage.CostTranscript, want: transcript,
		},
		{
			// claude-opus-4-5 5 / 25. 1e6×5 + 1e6×25
			name: "zero transcript cost falls to table", provider: "anthropic", model: "claude-opus-4-5",
			arrives:    storage.Cost{Total: 0, Input: 0},
			tk:         tokens{in: 1e6, out: 1e6},
			wantSource: storage.CostTable, want: cost(5, 25, 0, 0),
		},
		{
			name: "negative transcript cost falls to table", provider: "anthropic", model: "claude-opus-4-5",
			arrives:    storage.Cost{Total: -1},
			tk:         tokens{in: 1e6},
			wantSource: storage.CostTable, want: cost(5, 0, 0, 0),
		},
		{
			name: "infinite transcript cost falls to table", provider: "anthropic", model: "claude-opus-4-5",
			arrives:    storage.Cost{Total: math.Inf(1)},
			tk:         tokens{in: 1e6},
			wantSource: storage.CostTable, want: cost(5, 0, 0, 0),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := record(c.provider, c.model, ts, c.tk)
			u.Cost = c.arrives
			p.Apply(&u)
			if u.CostSource != c.wantSource {
				t.Fatalf("cost source %q, want %q", u.CostSource, c.wantSource)
			}
			if !sameCost(u.Cost, c.want) {
				t.Errorf("cost %+v\nwant %+v", u.Cost, c.want)
			}
		})
	}

	// Without a table, only overrides and transcripts price anything.
	bare := NewPricer(nil, nil)
	u := record("anthropic", "claude-opus-4-5", ts, tokens{in: 1})
	bare.Apply(&u)
	if u.CostSource != storage.CostUnpriced {
		t.Errorf("nil table: cost source %q", u.CostSource)
	}
}

func TestLookup(t *testing.T) {
	p := NewPricer(loadTable(t), Overrides{"openai/gpt-5": {Input: 9, Output: 9}})
	cases := []struct {
		provider, model, at string
		wantID              string
		want                Price
	}{
		// Tiered prices are reported at their base tier.
		{"anthropic", "claude-sonnet-4-5-20250929", "2026-08-01T00:00:00Z", "claude-sonnet-4-5",
			Price{Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75, CacheWrite1h: 6, WebSearchPer1k: 10}},
		{"openai", "o3", "2025-01-01T00:00:00Z", "o3", Price{Input: 10, Output: 40, CacheRead: 0.5}},
		{"openai", "o3", "2026-01-01T00:00:00Z", "o3", Price{Input: 2, Output: 8, CacheRead: 0.5}},
		// claude-sonnet-5 has a price that starts after the snapshot date.
		{"anthropic", "claude-sonnet-5", "2026-08-31T23:59:59Z", "claude-sonnet-5",
			Price{Input: 2, Output: 10, CacheRead: 0.2, CacheWrite: 2.5, CacheWrite1h: 4, WebSearchPer1k: 10}},
		{"anthropic", "claude-sonnet-5", "2026-09-01T00:00:00Z", "claude-sonnet-5",
			Price{Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75, CacheWrite1h: 6, WebSearchPer1k: 10}},
		// An override reports its key.
		{"OpenAI", "GPT-5", "2026-08-01T00:00:00Z", "openai/gpt-5", Price{Input: 9, Output: 9}},
	}
	for _, c := range cases {
		t.Run(c.provider+"/"+c.model+"@"+c.at, func(t *testing.T) {
			at, _ := time.Parse(time.RFC3339, c.at)
			got, id, ok := p.Lookup(c.provider, c.model, at)
			if !ok || id != c.wantID || got != c.want {
				t.Errorf("got %+v %q %v, want %+v %q", got, id, ok, c.want, c.wantID)
			}
		})
	}
}

// The cache must not grow without bound on junk model names, and names past
// the bound must still be priced correctly.
func TestCacheBounded(t *testing.T) {
	p := NewPricer(loadTable(t), nil)
	for i := range maxCached + 100 {
		u := record("anthropic", fmt.Sprintf("claude-opus-4-5-junk-%d", i), 0, tokens{in: 1e6})
		p.Apply(&u)
		if u.CostSource != storage.CostTable || storage.Nanos(u.Cost.Total) != storage.Nanos(5) {
			t.Fatalf("record %d: %q %v", i, u.CostSource, u.Cost.Total)
		}
	}
	if n := len(p.cache); n != maxCached {
		t.Errorf("cache holds %d entries, want %d", n, maxCached)
	}
}

func TestApplyConcurrent(t *testing.T) {
	p := NewPricer(loadTable(t), nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				u := record("anthropic", fmt.Sprintf("claude-haiku-4-5-%d", (g*200+i)%50), 0, tokens{out: 1e6})
				p.Apply(&u)
				if storage.Nanos(u.Cost.Total) != storage.Nanos(5) {
					t.Errorf("cost %v, want 5", u.Cost.Total)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkApply(b *testing.B) {
	p := NewPricer(loadTable(b), Overrides{"anthropic/claude-opus-4-8": {Input: 5, Output: 25}})
	ts := ms(b, "2026-08-01T12:00:00Z")
	recs := []storage.Usage{
		record("anthropic", "claude-sonnet-4-5-20250929", ts, tokens{in: 1200, out: 800, read: 90000, write: 4000, write1h: 1000}),
		record("anthropic", "claude-opus-4-6", ts, tokens{in: 10, out: 400, read: 150000}),
		record("anthropic", "claude-opus-4-8", ts, tokens{in: 10, out: 400, read: 150000}),
		record("openai", "gpt-5.6-luna-2026-08-01", ts, tokens{in: 5000, out: 700, read: 20000}),
		record("openrouter", "anthropic/claude-sonnet-4.5", ts, tokens{in: 5000, out: 700}),
		record("deepseek", "deepseek-chat", ts, tokens{in: 5000, out: 700}),
		record("github-copilot", "claude-sonnet-4.5", ts, tokens{in: 5000, out: 700}),
		record("anthropic", "claude-haiku-4-5", ts, tokens{in: 5000, out: 700}),
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := recs[i%len(recs)]
		p.Apply(&u)
		i++
	}
}
