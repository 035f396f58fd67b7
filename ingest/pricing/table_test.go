package pricing

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestLoadTable(t *testing.T) {
	tb := loadTable(t)
	if n := len(tb.providers); n != 36 {
		t.Errorf("%d providers, want the snapshot's 36", n)
	}
	models := 0
	for _, p := range tb.providers {
		list, err := p.list() // the snapshot parses whole
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range list {
			models++
			if len(m.prices) == 0 {
				t.Errorf("%s/%s has no price set", p.id, m.id)
			}
		}
	}
	if models != 1466 {
		t.Errorf("%d models parsed, want the snapshot's 1466", models)
	}
	if got := tb.byID["google"].fallback; len(got) != 1 || got[0].id != "anthropic" {
		t.Errorf("google fallback providers %v, want [anthropic]", got)
	}
	if !strings.Contains(TableLicense(), "MIT License") {
		t.Error("embedded licence missing")
	}
}

// Transcript provider ids map to feed providers by id, then provider_match.
func TestProviderMapping(t *testing.T) {
	tb := loadTable(t)
	cases := map[string]string{
		"anthropic":         "anthropic",
		"openai":            "openai",
		"openai-codex":      "openai",
		"google":            "google",
		"google-vertex":     "google",
		"google-gemini-cli": "google",
		"openrouter":        "openrouter",
		"amazon-bedrock":    "aws",
		"mistral":           "mistral",
		"xai":               "x-ai",
		"x-ai":              "x-ai",
		"groq":              "groq",
		"deepseek":          "deepseek",
		" DeepSeek ":        "deepseek",
		"together-ai":       "together",
		"huggingface-groq":  "huggingface_groq",
		"github-copilot":    "",
		"huggingface":       "",
		"ollama":            "",
		"vercel-ai-gateway": "",
		"openclaw":          "",
	}
	for in, want := range cases {
		got := ""
		if p := tb.provider(strings.ToLower(strings.TrimSpace(in))); p != nil {
			got = p.id
		}
		if got != want {
			t.Errorf("provider %q → %q, want %q", in, got, want)
		}
	}
}

func TestClauses(t *testing.T) {
	cases := []struct {
		clause string
		yes    []string
		no     []string
	}{
		{`{"equals": "GPT-4o"}`, []string{"gpt-4o"}, []string{"gpt-4o-mini", "xgpt-4o"}},
		{`{"starts_with": "claude-3"}`, []string{"claude-3-opus"}, []string{"xclaude-3"}},
		{`{"ends_with": "gemini-2.0-flash"}`, []string{"models/gemini-2.0-flash"}, []string{"gemini-2.0-flash-lite"}},
		{`{"contains": "sonnet"}`, []string{"claude-sonnet-4"}, []string{"claude-opus-4"}},
		{`{"regex": "^o[134]"}`, []string{"o3-mini", "o1"}, []string{"gpt-o3", "o2"}},
		{`{"regex": "(?:mi|code|dev)stral"}`, []string{"mistralai/devstral-2"}, []string{"mixtral"}},
		{`{"or": [{"equals": "a"}, {"starts_with": "b"}]}`, []string{"a", "bc"}, []string{"ab", "c"}},
		{`{"and": [{"contains": "huggingface"}, {"contains": "groq"}]}`, []string{"huggingface-groq"}, []string{"groq", "huggingface"}},
	}
	for _, c := range cases {
		cl, err := parseClause([]byte(c.clause))
		if err != nil {
			t.Fatalf("%s: %v", c.clause, err)
		}
		for _, s := range c.yes {
			if !cl.match(s) {
				t.Errorf("%s should match %q", c.clause, s)
			}
		}
		for _, s := range c.no {
			if cl.match(s) {
				t.Errorf("%s should not match %q", c.clause, s)
			}
		}
	}
}

// A feed construct pricing cannot read fails the load instead of matching
// nothing (or everything) in silence.
func TestParseTableErrors(t *testing.T) {
	model := func(match, prices string) string {
		return `[{"id": "p", "name": "P", "api_pattern": "x", "models": [{"id": "m", "match": ` + match + `, "prices": ` + prices + `}]}]`
	}
	cases := map[string]string{
		"unknown operator":   model(`{"glob": "a*"}`, `{"input_mtok": 1}`),
		"two operators":      model(`{"equals": "a", "contains": "b"}`, `{"input_mtok": 1}`),
		"empty and":          model(`{"and": []}`, `{"input_mtok": 1}`),
		"bad regex":          model(`{"regex": "(?<=a)b"}`, `{"input_mtok": 1}`),
		"unknown constraint": model(`{"equals": "m"}`, `[{"constraint": {"weekday": "mon"}, "prices": {}}]`),
		"bad start date":     model(`{"equals": "m"}`, `[{"constraint": {"start_date": "2026-13-01"}, "prices": {}}]`),
		"tier without base":  model(`{"equals": "m"}`, `{"input_mtok": {"tiers": []}}`),
		"price is a string":  model(`{"equals": "m"}`, `{"input_mtok": "1"}`),
		"empty price list":   model(`{"equals": "m"}`, `[]`),
	}
	for name, feed := range cases {
		if _, err := parseTable([]byte(feed)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := parseTable([]byte(model(`{"equals": "m"}`, `{"input_mtok": 1, "some_new_mtok": 2}`))); err != nil {
		t.Errorf("unknown price kinds must be ignored: %v", err)
	}
}

func TestTiersAndTimes(t *testing.T) {
	var r rate
	if err := r.UnmarshalJSON([]byte(`{"base": 1, "tiers": [{"start": 500, "price": 3}, {"start": 100, "price": 2}]}`)); err != nil {
		t.Fatal(err)
	}
	for prompt, want := range map[int64]float64{0: 1, 100: 1, 101: 2, 500: 2, 501: 3} {
		if got := r.at(prompt); got != want {
			t.Errorf("prompt %d: price %v, want %v", prompt, got, want)
		}
	}
	for s, want := range map[string]int64{"00:30:00Z": 1800, "16:30:00": 59400, "08:30:00+08:00": 1800, "01:00:00-02:00": 10800} {
		if got, err := secondOfDay(s); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", s, got, err, want)
		}
	}
	// A window across midnight: 22:00 to 02:00 UTC.
	c := conditional{kind: timeOfDay, from: 22 * 3600, to: 2 * 3600}
	for at, want := range map[string]bool{"2026-01-01T23:00:00Z": true, "2026-01-01T01:59:59Z": true, "2026-01-01T02:00:00Z": false, "2026-01-01T12:00:00Z": false} {
		if got := c.active(ms(t, at)); got != want {
			t.Errorf("%s: active %v, want %v", at, got, want)
		}
	}
	// Before 1970 the UTC date still floors correctly.
	d := conditional{kind: fromDate, startDay: -1}
	if !d.active(ms(t, "1969-12-31T00:00:00Z")) || d.active(ms(t, "1969-12-30T23:59:59.999Z")) {
		t.Error("start date before the epoch")
	}
}

var update = flag.Bool("update", false, "rewrite feedindex.json from the embedded feed")

// The embedded feed's index (feedindex.json) gives the table splitTable
// reads from the feed itself: the same providers, match rules, fallbacks,
// and every model and price. -update rewrites it (after the snapshot is
// refreshed).
func TestFeedIndex(t *testing.T) {
	ref, err := splitTable(feedJSON)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		writeFeedIndex(t)
	}
	got, err := LoadTable()
	if err != nil {
		t.Fatalf("%v (run go test ./ingest/pricing -run TestFeedIndex -update)", err)
	}
	if len(got.providers) != len(ref.providers) || len(ref.providers) == 0 {
		t.Fatalf("%d providers, want %d (run go test ./ingest/pricing -run TestFeedIndex -update)", len(got.providers), len(ref.providers))
	}
	for i, r := range ref.providers {
		g := got.providers[i]
		if g.id != r.id || !reflect.DeepEqual(g.match, r.match) || len(g.fallback) != len(r.fallback) {
			t.Errorf("provider %d: %s %+v %d fallbacks, want %s %+v %d", i, g.id, g.match, len(g.fallback), r.id, r.match, len(r.fallback))
			continue
		}
		for j := range r.fallback {
			if g.fallback[j].id != r.fallback[j].id {
				t.Errorf("provider %s fallback %d: %s, want %s", r.id, j, g.fallback[j].id, r.fallback[j].id)
			}
		}
		gm, gerr := g.list()
		rm, rerr := r.list()
		if gerr != nil || rerr != nil || !reflect.DeepEqual(gm, rm) {
			t.Errorf("provider %s: %d models (%v), want %d (%v)", r.id, len(gm), gerr, len(rm), rerr)
		}
	}
}

// writeFeedIndex writes feedindex.json: splitTable's reading of the
// embedded feed, each provider's models as the byte range they have in it.
func writeFeedIndex(t *testing.T) {
	t.Helper()
	var raw []rawProvider
	if err := json.Unmarshal(feedJSON, &raw); err != nil {
		t.Fatal(err)
	}
	ix := make([]indexedProvider, len(raw))
	for i, p := range raw {
		ix[i] = indexedProvider{ID: p.ID, ProviderMatch: p.ProviderMatch, Fallback: p.Fallback}
		if len(p.Models) == 0 {
			continue
		}
		at := bytes.Index(feedJSON, p.Models)
		if at < 0 || bytes.Count(feedJSON, p.Models) != 1 {
			t.Fatalf("provider %s: its models are not found once in the feed", p.ID)
		}
		ix[i].Models = [2]int{at, at + len(p.Models)}
	}
	b, err := json.MarshalIndent(ix, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("feedindex.json", append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	feedIndex = b
}
