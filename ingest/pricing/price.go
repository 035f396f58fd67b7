package pricing

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Price is a set of prices in USD per million tokens.
//
// CacheWrite1h is the price of cache writes with a one-hour TTL (Anthropic
// bills them at 2× input instead of 1.25×). Zero means the model has no
// separate one-hour price: one-hour writes then cost CacheWrite.
type Price struct {
	Input        float64 `json:"input"`
	Output       float64 `json:"output"`
	CacheRead    float64 `json:"cache_read"`
	CacheWrite   float64 `json:"cache_write"`
	CacheWrite1h float64 `json:"cache_write_1h,omitempty"`
	// OutputReasoning is the price of reasoning output tokens where a
	// provider bills them apart (0: at the output price).
	OutputReasoning float64 `json:"output_reasoning,omitempty"`
	// WebSearchPer1k is USD per 1,000 server-side web search requests.
	WebSearchPer1k float64 `json:"web_search_per_1k,omitempty"`
}

// cost prices one call. u.CacheWrite1h is the part of u.CacheWrite written
// with a one-hour TTL, u.Reasoning the part of u.Output that is reasoning.
// Negative counts (a broken transcript) are priced as zero rather than
// producing a negative cost.
func (p *Price) cost(u *storage.Usage) storage.Cost {
	in, out := nonNeg(u.Input), nonNeg(u.Output)
	read, write := nonNeg(u.CacheRead), nonNeg(u.CacheWrite)
	hour := min(nonNeg(u.CacheWrite1h), write)
	rate1h := p.CacheWrite1h
	if rate1h == 0 {
		rate1h = p.CacheWrite
	}
	output := out * p.Output
	if p.OutputReasoning > 0 {
		reasoning := min(nonNeg(u.Reasoning), out)
		output = (out-reasoning)*p.Output + reasoning*p.OutputReasoning
	}
	c := storage.Cost{
		Input:      in * p.Input / 1e6,
		Output:     output / 1e6,
		CacheRead:  read * p.CacheRead / 1e6,
		CacheWrite: ((write-hour)*p.CacheWrite + hour*rate1h) / 1e6,
		Tools:      nonNeg(u.WebSearches) * p.WebSearchPer1k / 1e3,
	}
	c.Total = c.Input + c.Output + c.CacheRead + c.CacheWrite + c.Tools
	return c
}

func nonNeg(n int64) float64 { return float64(max(n, 0)) }

// rate is one price of the feed: a number, or a base with tiers.
//
// Tiers follow the feed's "cliff" model (data.schema.json, TieredPrices):
// when the call's prompt (all its input tokens: uncached + cache read +
// cache write) is above a tier's start, that tier's price applies to ALL
// tokens of this kind, output included, not just those above the threshold.
// A prompt of exactly the start stays at the lower price.
type rate struct {
	base  float64
	tiers []tier // ascending start
}

type tier struct {
	start int64
	price float64
}

func (r *rate) at(prompt int64) float64 {
	for i := len(r.tiers) - 1; i >= 0; i-- {
		if prompt > r.tiers[i].start {
			return r.tiers[i].price
		}
	}
	return r.base
}

func (r *rate) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var raw struct {
			Base  *float64 `json:"base"`
			Tiers []struct {
				Start *int64   `json:"start"`
				Price *float64 `json:"price"`
			} `json:"tiers"`
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		if raw.Base == nil {
			return fmt.Errorf("tiered price without base")
		}
		r.base = *raw.Base
		for _, t := range raw.Tiers {
			if t.Start == nil || t.Price == nil {
				return fmt.Errorf("tier without start or price")
			}
			r.tiers = append(r.tiers, tier{*t.Start, *t.Price})
		}
		// The reference implementation sorts too; the schema only asks for it.
		slices.SortFunc(r.tiers, func(a, b tier) int { return cmp.Compare(a.start, b.start) })
		return nil
	}
	return json.Unmarshal(b, &r.base)
}

// priceSet is one ModelPrice of the feed, reduced to the prices a usage
// record can use: text tokens, reasoning output where it is billed apart,
// and web search requests. Audio, image and video prices are ignored: the
// ledger carries only text token counts. A price the feed leaves out costs
// zero, as in the reference implementation (an OpenAI model has no
// cache-write price; "free" models have none at all).
type priceSet struct {
	input, output, cacheRead, cacheWrite, cacheWrite1h, reasoning rate
	has1h                                                         bool
	webSearches                                                   float64 // USD per 1,000
}

type rawPriceSet struct {
	Input        *rate    `json:"input_mtok"`
	Output       *rate    `json:"output_mtok"`
	CacheRead    *rate    `json:"cache_read_mtok"`
	CacheWrite   *rate    `json:"cache_write_mtok"`
	CacheWrite5m *rate    `json:"cache_write_5m_mtok"`
	CacheWrite1h *rate    `json:"cache_write_1h_mtok"`
	Reasoning    *rate    `json:"output_reasoning_mtok"`
	WebSearches  *float64 `json:"web_searches_kcount"`
}

func (r *rawPriceSet) set() priceSet {
	var s priceSet
	take := func(dst *rate, src *rate) {
		if src != nil {
			*dst = *src
		}
	}
	take(&s.input, r.Input)
	take(&s.output, r.Output)
	take(&s.cacheRead, r.CacheRead)
	// cache_write_5m_mtok is the schema's explicit name for the default
	// (five-minute) write price; the generic one wins when both are given.
	take(&s.cacheWrite, r.CacheWrite5m)
	take(&s.cacheWrite, r.CacheWrite)
	if r.CacheWrite1h != nil {
		s.cacheWrite1h, s.has1h = *r.CacheWrite1h, true
	}
	take(&s.reasoning, r.Reasoning)
	if r.WebSearches != nil {
		s.webSearches = *r.WebSearches
	}
	return s
}

// at is the flat Price for a call whose prompt has the given size.
func (s *priceSet) at(prompt int64) Price {
	p := Price{
		Input:      s.input.at(prompt),
		Output:     s.output.at(prompt),
		CacheRead:  s.cacheRead.at(prompt),
		CacheWrite: s.cacheWrite.at(prompt),
		// The feed's reasoning price, when it has one (0 otherwise: output).
		OutputReasoning: s.reasoning.at(prompt),
		WebSearchPer1k:  s.webSearches,
	}
	if s.has1h {
		p.CacheWrite1h = s.cacheWrite1h.at(prompt)
	}
	return p
}

// conditional is one entry of a model's list of prices. The feed knows two
// constraints: a start date (a price change) and a daily UTC time window
// (DeepSeek's off-peak discount).
type conditional struct {
	kind     constraintKind
	startDay int64 // days since 1970-01-01 UTC
	from, to int64 // seconds after UTC midnight, [from, to)
	set      priceSet
}

type constraintKind uint8

const (
	always constraintKind = iota
	fromDate
	timeOfDay
)

const (
	msPerDay  = 24 * 60 * 60 * 1000
	secPerDay = 24 * 60 * 60
)

func (c *conditional) active(tsMillis int64) bool {
	switch c.kind {
	case fromDate:
		return floorDiv(tsMillis, msPerDay) >= c.startDay
	case timeOfDay:
		sec := (tsMillis - floorDiv(tsMillis, msPerDay)*msPerDay) / 1000
		if c.from <= c.to {
			return c.from <= sec && sec < c.to
		}
		// A window across midnight (none in the snapshot; the reference
		// implementation would never match one).
		return sec >= c.from || sec < c.to
	}
	return true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// model is one priced model of the feed.
type model struct {
	id       string
	provider string // the feed provider that lists it
	match    clause
	prices   []conditional // one entry when the feed gives a single price set
}

// setAt picks the price set in force at tsMillis: the list is tried last to
// first and the first active entry wins; when none is active, the first
// entry applies (data.schema.json, ModelInfo.prices).
func (m *model) setAt(tsMillis int64) *priceSet {
	for i := len(m.prices) - 1; i >= 0; i-- {
		if m.prices[i].active(tsMillis) {
			return &m.prices[i].set
		}
	}
	return &m.prices[0].set
}

// parsePrices decodes ModelInfo.prices: one price object or a list of
// {constraint, prices}.
func parsePrices(raw json.RawMessage) ([]conditional, error) {
	raw = json.RawMessage(strings.TrimSpace(string(raw)))
	if len(raw) == 0 {
		return nil, fmt.Errorf("no prices")
	}
	if raw[0] != '[' {
		var s rawPriceSet
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("prices: %w", err)
		}
		return []conditional{{kind: always, set: s.set()}}, nil
	}
	var list []struct {
		Constraint *struct {
			StartDate string `json:"start_date"`
			StartTime string `json:"start_time"`
			EndTime   string `json:"end_time"`
		} `json:"constraint"`
		Prices *rawPriceSet `json:"prices"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("empty list of prices")
	}
	out := make([]conditional, 0, len(list))
	for i, e := range list {
		if e.Prices == nil {
			return nil, fmt.Errorf("prices[%d]: no prices", i)
		}
		c := conditional{kind: always, set: e.Prices.set()}
		switch k := e.Constraint; {
		case k == nil:
		case k.StartDate != "":
			day, err := dayOf(k.StartDate)
			if err != nil {
				return nil, fmt.Errorf("prices[%d]: start_date: %w", i, err)
			}
			c.kind, c.startDay = fromDate, day
		case k.StartTime != "" && k.EndTime != "":
			from, err := secondOfDay(k.StartTime)
			if err != nil {
				return nil, fmt.Errorf("prices[%d]: start_time: %w", i, err)
			}
			to, err := secondOfDay(k.EndTime)
			if err != nil {
				return nil, fmt.Errorf("prices[%d]: end_time: %w", i, err)
			}
			c.kind, c.from, c.to = timeOfDay, from, to
		default:
			return nil, fmt.Errorf("prices[%d]: unknown constraint", i)
		}
		out = append(out, c)
	}
	return out, nil
}

// dayOf parses YYYY-MM-DD into days since 1970-01-01 (UTC).
func dayOf(date string) (int64, error) {
	d, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return 0, err
	}
	return floorDiv(d.UnixMilli(), msPerDay), nil
}

// secondOfDay parses an RFC 3339 time ("00:30:00Z", "08:30:00+08:00"; no
// zone means UTC) into seconds after UTC midnight.
func secondOfDay(s string) (int64, error) {
	var t time.Time
	var err error
	if strings.ContainsAny(s, "Zz+-") {
		t, err = time.Parse("15:04:05Z07:00", strings.ToUpper(s))
	} else {
		t, err = time.Parse("15:04:05", s)
	}
	if err != nil {
		return 0, err
	}
	_, off := t.Zone()
	sec := int64(t.Hour()*3600+t.Minute()*60+t.Second()) - int64(off)
	return (sec%secPerDay + secPerDay) % secPerDay, nil
}
