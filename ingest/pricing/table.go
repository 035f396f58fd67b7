// Package pricing turns a usage record's tokens into USD.
//
// Prices come, in the order of DESIGN §3, from the user's override file,
// from the transcript's own cost.total when it is above zero, from an
// embedded snapshot of the pydantic/genai-prices v2 feed (the price in force
// on the call's UTC date), or not at all: the record is then "unpriced",
// cost zero and tokens kept.
//
// The snapshot is matched with the feed's own rules only: the transcript's
// provider is mapped to a feed provider (id, then provider_match), and the
// model is looked up in that provider alone (plus the providers the feed
// lists in fallback_model_providers). A model name of one vendor under
// another provider, or any name the feed does not list, stays unpriced:
// reporting no cost is better than reporting a wrong one.
package pricing

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"
)

// TableDate is the date of the embedded price snapshot: prices published
// after it are not known. Show it wherever table prices are shown.
const TableDate = "2026-08-21"

// TableCommit is the pydantic/genai-prices commit of the snapshot.
const TableCommit = "47df840a5ab10bbcffb8e5ac01b9899032245d1b"

// The feed and its licence, unmodified (see genaiprices/README.md).
var (
	//go:embed genaiprices/data.json
	feedJSON []byte
	//go:embed genaiprices/LICENSE
	feedLicense string
	// feedIndex says where each provider's models lie in the embedded
	// feed, and the rest of what splitTable reads of it (written by
	// `go test -run TestFeedIndex -update`, which checks it in every run):
	// reading the feed's 380 KB to find its 36 providers took 2.5 ms of
	// every command's way to its first file.
	//go:embed feedindex.json
	feedIndex []byte
)

// TableLicense is the MIT licence of the embedded price data, to be shown
// with it (e.g. by a "licenses" command).
func TableLicense() string { return feedLicense }

// Table is the parsed price feed. It is immutable once built and safe for
// concurrent use.
type Table struct {
	providers []*provider // feed order: provider_match is first-match
	byID      map[string]*provider
	// version identifies the feed: the embedded snapshot's commit, or the
	// digest of a feed file (see Pricer.Fingerprint). date is its date.
	version, date string
}

// Date is the day the table's prices were published or fetched.
func (t *Table) Date() string { return t.date }

type provider struct {
	id       string
	match    *clause // provider_match; nil when the feed gives none
	fallback []*provider

	// models in feed order (model match is first-match), parsed from raw
	// on first use (list).
	once   sync.Once
	raw    json.RawMessage // the feed's "models", until list parsed it
	models []*model
	err    error
}

// LoadTable loads the embedded snapshot. Providers are read at once (from
// feedIndex), each provider's models on first use: a report touches two or
// three of the feed's 36 providers, and parsing all 1,466 models took 9 ms
// of every command's start-up. The snapshot is known to parse whole (its
// tests).
func LoadTable() (*Table, error) {
	raw, err := indexedProviders(feedIndex, feedJSON)
	var t *Table
	if err == nil {
		t, err = providersTable(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("pricing: embedded genai-prices %s: %w", TableDate, err)
	}
	t.version, t.date = "genai-prices@"+TableCommit, TableDate
	return t, nil
}

// parseTable decodes a v2 feed whole: every model, so that a feed that
// loads prices. Fields pricing does not use (names, descriptions,
// extractors, api_pattern, model_match) are ignored so that a newer feed
// still loads; a match rule, constraint or price it cannot read is an
// error naming the provider and model.
func parseTable(data []byte) (*Table, error) {
	t, err := splitTable(data)
	if err != nil {
		return nil, err
	}
	for _, p := range t.providers {
		if _, err := p.list(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// rawProvider is a feed's provider with its models as raw JSON.
type rawProvider struct {
	ID            string          `json:"id"`
	ProviderMatch json.RawMessage `json:"provider_match"`
	Fallback      []string        `json:"fallback_model_providers"`
	Models        json.RawMessage `json:"models"`
}

// splitTable reads the providers of a feed and keeps each one's models as
// raw JSON, parsed by provider.list on first use.
func splitTable(data []byte) (*Table, error) {
	var raw []rawProvider
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	return providersTable(raw)
}

// indexedProvider is a feed's provider as feedIndex keeps it: what
// splitTable reads, its models as their byte range in the feed.
type indexedProvider struct {
	ID            string          `json:"id"`
	ProviderMatch json.RawMessage `json:"provider_match,omitempty"`
	Fallback      []string        `json:"fallback_model_providers,omitempty"`
	Models        [2]int          `json:"models"`
}

// indexedProviders are the providers of feed as index says.
func indexedProviders(index, feed []byte) ([]rawProvider, error) {
	var ix []indexedProvider
	if err := json.Unmarshal(index, &ix); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	raw := make([]rawProvider, len(ix))
	for i, p := range ix {
		lo, hi := p.Models[0], p.Models[1]
		if lo < 0 || lo > hi || hi > len(feed) {
			return nil, fmt.Errorf("index: provider %s: models at %d–%d of %d bytes", p.ID, lo, hi, len(feed))
		}
		raw[i] = rawProvider{ID: p.ID, ProviderMatch: p.ProviderMatch, Fallback: p.Fallback}
		if lo < hi {
			raw[i].Models = feed[lo:hi:hi]
		}
	}
	return raw, nil
}

// providersTable makes the table of a feed's providers.
func providersTable(raw []rawProvider) (*Table, error) {
	t := &Table{byID: make(map[string]*provider, len(raw))}
	for _, rp := range raw {
		if rp.ID == "" {
			return nil, fmt.Errorf("provider without id")
		}
		p := &provider{id: rp.ID, raw: rp.Models}
		if len(rp.ProviderMatch) > 0 && string(rp.ProviderMatch) != "null" {
			c, err := parseClause(rp.ProviderMatch)
			if err != nil {
				return nil, fmt.Errorf("provider %s: provider_match: %w", rp.ID, err)
			}
			p.match = &c
		}
		t.providers = append(t.providers, p)
		t.byID[p.id] = p
	}
	// Fallbacks name providers by id; one the feed does not define is
	// skipped, as the reference implementation does.
	for i, rp := range raw {
		for _, id := range rp.Fallback {
			if f, ok := t.byID[id]; ok && f != t.providers[i] {
				t.providers[i].fallback = append(t.providers[i].fallback, f)
			}
		}
	}
	return t, nil
}

// list returns the provider's models, parsing them the first time. Safe
// for concurrent use.
func (p *provider) list() ([]*model, error) {
	p.once.Do(func() {
		var raw []struct {
			ID     string          `json:"id"`
			Match  json.RawMessage `json:"match"`
			Prices json.RawMessage `json:"prices"`
		}
		if len(p.raw) > 0 && string(p.raw) != "null" {
			if p.err = json.Unmarshal(p.raw, &raw); p.err != nil {
				p.err = fmt.Errorf("provider %s: models: %w", p.id, p.err)
				return
			}
		}
		for _, rm := range raw {
			c, err := parseClause(rm.Match)
			if err != nil {
				p.err = fmt.Errorf("provider %s model %s: %w", p.id, rm.ID, err)
				return
			}
			prices, err := parsePrices(rm.Prices)
			if err != nil {
				p.err = fmt.Errorf("provider %s model %s: %w", p.id, rm.ID, err)
				return
			}
			p.models = append(p.models, &model{id: rm.ID, provider: p.id, match: c, prices: prices})
		}
		p.raw = nil
	})
	return p.models, p.err
}
