package pricing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadOverrides(t *testing.T) {
	path := writeFile(t, `{
		"anthropic/claude-sonnet-4-6": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75},
		"OpenRouter/Anthropic/Claude-Sonnet-4.5": {"input": 3, "output": 15, "cache_write_1h": 6},
		"ollama/llama3.1:8b": {"input": 0, "output": 0}
	}`)
	o, err := LoadOverrides(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Overrides{
		"anthropic/claude-sonnet-4-6":            {Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75},
		"openrouter/anthropic/claude-sonnet-4.5": {Input: 3, Output: 15, CacheWrite1h: 6},
		"ollama/llama3.1:8b":                     {},
	}
	if len(o) != len(want) {
		t.Fatalf("got %v", o)
	}
	for k, v := range want {
		if o[k] != v {
			t.Errorf("%s: %+v, want %+v", k, o[k], v)
		}
	}
}

func TestLoadOverridesErrors(t *testing.T) {
	cases := []struct {
		name, content string
		want          []string // all must appear in the error
	}{
		{"negative", `{"anthropic/claude-opus-4-6": {"input": -1, "output": 25}}`,
			[]string{`"anthropic/claude-opus-4-6"`, "input", "negative"}},
		{"string price", `{"openai/gpt-5": {"input": "1.25"}}`,
			[]string{`"openai/gpt-5"`, "input", "not a number"}},
		{"null price", `{"openai/gpt-5": {"output": null}}`,
			[]string{`"openai/gpt-5"`, "output", "not a number"}},
		{"unknown field", `{"openai/gpt-5": {"input": 1, "inptu": 2}}`,
			[]string{`"openai/gpt-5"`, `unknown field "inptu"`}},
		{"huge number", `{"openai/gpt-5": {"input": 1e999}}`,
			[]string{`"openai/gpt-5"`, "input"}},
		{"no slash", `{"gpt-5": {"input": 1}}`, []string{`"gpt-5"`, "provider/model"}},
		{"empty model", `{"openai/": {"input": 1}}`, []string{`"openai/"`, "provider/model"}},
		{"twice ignoring case", `{"openai/gpt-5": {"input": 1}, "OpenAI/GPT-5": {"input": 2}}`,
			[]string{`"OpenAI/GPT-5"`, "twice"}},
		{"twice exactly", `{"openai/gpt-5": {"input": 1}, "openai/gpt-5": {"input": 2}}`,
			[]string{`"openai/gpt-5"`, "twice"}},
		{"no prices", `{"openai/gpt-5": {}}`, []string{`"openai/gpt-5"`, "no prices"}},
		{"price not an object", `{"openai/gpt-5": 3}`, []string{`"openai/gpt-5"`, "object"}},
		{"top level array", `[{"input": 1}]`, []string{"object"}},
		{"not json", `{"openai/gpt-5": {"input": 1}`, []string{"JSON"}},
		{"trailing data", `{"openai/gpt-5": {"input": 1}} {}`, []string{"trailing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, c.content)
			_, err := LoadOverrides(path)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidOverrides) {
				t.Errorf("error does not wrap ErrInvalidOverrides: %v", err)
			}
			for _, w := range append(c.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	_, err := LoadOverrides(filepath.Join(t.TempDir(), "missing.json"))
	if err == nil || errors.Is(err, ErrInvalidOverrides) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
