package pricing

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// clauseOp is one kind of the feed's match clauses (data.schema.json,
// Clause*): five leaf tests on a string and two combinators.
type clauseOp uint8

const (
	opEquals clauseOp = iota
	opStartsWith
	opEndsWith
	opContains
	opRegex
	opOr
	opAnd
)

var clauseOps = map[string]clauseOp{
	"equals":      opEquals,
	"starts_with": opStartsWith,
	"ends_with":   opEndsWith,
	"contains":    opContains,
	"regex":       opRegex,
	"or":          opOr,
	"and":         opAnd,
}

// clause is a parsed match rule. Matching follows the feed's reference
// implementation (genai-prices, Python): the text is lower-cased by the
// caller, the literal of equals/starts_with/ends_with/contains is lower-cased
// here, and a regex is an unanchored search used as written.
type clause struct {
	op  clauseOp
	lit string
	re  *regexp.Regexp
	sub []clause
}

// parseClause decodes one clause object: exactly one key naming the
// operator. Anything else is an error rather than a silent non-match, so a
// feed with a construct we do not know fails LoadTable (and the tests).
func parseClause(raw json.RawMessage) (clause, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return clause{}, fmt.Errorf("match clause: %w", err)
	}
	if len(m) != 1 {
		return clause{}, fmt.Errorf("match clause: want exactly one operator, got %d keys", len(m))
	}
	var name string
	var arg json.RawMessage
	for name, arg = range m { // the only entry
	}
	op, ok := clauseOps[name]
	if !ok {
		return clause{}, fmt.Errorf("match clause: unknown operator %q", name)
	}
	if op == opOr || op == opAnd {
		var items []json.RawMessage
		if err := json.Unmarshal(arg, &items); err != nil {
			return clause{}, fmt.Errorf("match clause %s: %w", name, err)
		}
		// An empty "and" would match every model; refuse it.
		if len(items) == 0 {
			return clause{}, fmt.Errorf("match clause %s: empty list", name)
		}
		c := clause{op: op, sub: make([]clause, 0, len(items))}
		for _, it := range items {
			s, err := parseClause(it)
			if err != nil {
				return clause{}, err
			}
			c.sub = append(c.sub, s)
		}
		return c, nil
	}
	var s string
	if err := json.Unmarshal(arg, &s); err != nil {
		return clause{}, fmt.Errorf("match clause %s: %w", name, err)
	}
	if op == opRegex {
		// RE2 is not Python's re; every regex of the snapshot compiles
		// (LoadTable would fail otherwise) and uses only the common subset.
		re, err := regexp.Compile(s)
		if err != nil {
			return clause{}, fmt.Errorf("match clause regex %q: %w", s, err)
		}
		return clause{op: op, re: re}, nil
	}
	return clause{op: op, lit: strings.ToLower(s)}, nil
}

// match reports whether the lower-cased text satisfies the clause.
func (c *clause) match(text string) bool {
	switch c.op {
	case opEquals:
		return text == c.lit
	case opStartsWith:
		return strings.HasPrefix(text, c.lit)
	case opEndsWith:
		return strings.HasSuffix(text, c.lit)
	case opContains:
		return strings.Contains(text, c.lit)
	case opRegex:
		return c.re.MatchString(text)
	case opOr:
		for i := range c.sub {
			if c.sub[i].match(text) {
				return true
			}
		}
		return false
	case opAnd:
		for i := range c.sub {
			if !c.sub[i].match(text) {
				return false
			}
		}
		return true
	}
	return false
}

// resolve finds the feed model for a transcript's provider and model. It
// never guesses across vendors: the provider must resolve (by id, then by
// provider_match) and the model is searched only in that provider, plus the
// providers that the feed itself names in fallback_model_providers (one
// step, as the reference implementation does: Vertex serves Anthropic's
// models, Azure OpenAI's). nil means unpriced.
//
// Two rules beyond the feed's match data, both keeping to the vendor the
// record names:
//   - provider "litellm" with model "vendor/name" is read as provider
//     "vendor", model "name" (the reference implementation does the same);
//   - a model "vendor/name" that does not match as written is retried as
//     "name" when "vendor" resolves to the same feed provider as the record's
//     provider (an "anthropic/claude-opus-4-6" recorded under "anthropic").
//     Under a reseller such as openrouter the prefixed form is what the feed
//     lists, so it matches as written.
func (t *Table) resolve(providerID, modelRef string) *model {
	if t == nil {
		return nil
	}
	pid := strings.ToLower(strings.TrimSpace(providerID))
	ref := strings.ToLower(modelRef)
	if pid == "litellm" {
		if vendor, name, ok := strings.Cut(ref, "/"); ok && vendor != "" {
			pid, ref = vendor, name
		}
	}
	if pid == "" || ref == "" {
		return nil
	}
	p := t.provider(pid)
	if p == nil {
		return nil
	}
	if m := p.findModel(ref, true); m != nil {
		return m
	}
	if vendor, name, ok := strings.Cut(ref, "/"); ok && name != "" && t.provider(vendor) == p {
		return p.findModel(name, true)
	}
	return nil
}

// provider maps a lower-cased transcript provider id to a feed provider:
// id equality first, then the first provider (in feed order) whose
// provider_match accepts it ("openai-codex" → openai, "amazon-bedrock" →
// aws, "xai" → x-ai, "google-vertex" → google).
func (t *Table) provider(pid string) *provider {
	if p, ok := t.byID[pid]; ok {
		return p
	}
	for _, p := range t.providers {
		if p.match != nil && p.match.match(pid) {
			return p
		}
	}
	return nil
}

// findModel returns the first model of p, in feed order, that matches ref,
// then tries the fallback providers (without their own fallbacks).
func (p *provider) findModel(ref string, fallback bool) *model {
	models, _ := p.list() // a provider whose models do not parse prices nothing
	for _, m := range models {
		if m.match.match(ref) {
			return m
		}
	}
	if fallback {
		for _, f := range p.fallback {
			if m := f.findModel(ref, false); m != nil {
				return m
			}
		}
	}
	return nil
}
