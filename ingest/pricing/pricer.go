package pricing

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// maxCached bounds the resolution cache. Real fleets use tens of
// provider/model pairs; the bound only matters if transcripts carry junk
// model names, which are then resolved on every call instead of growing
// the map without limit.
const maxCached = 4096

// Pricer prices usage records. It is safe for concurrent use.
type Pricer struct {
	table     *Table
	overrides map[string]Price

	// Resolving a pair lower-cases strings and runs match rules (regexes
	// included) over up to hundreds of models; the result depends only on
	// the pair, so it is done once per pair. The key is the pair as
	// recorded, so the hot path allocates nothing.
	mu    sync.RWMutex
	cache map[pair]resolution
}

type pair struct{ provider, model string }

type resolution struct {
	override *Price // the user's price, or nil
	model    *model // the table's model, or nil
}

// NewPricer builds a Pricer. table may be nil (overrides and transcript
// costs only); overrides may be nil.
func NewPricer(table *Table, overrides Overrides) *Pricer {
	return &Pricer{
		table:     table,
		overrides: overrides.normalized(),
		cache:     make(map[pair]resolution),
	}
}

// Apply sets u.Cost and u.CostSource, in the order of DESIGN §3:
//  1. the user's override for u.Provider/u.Model ("override");
//  2. the transcript's own cost, when u.Cost.Total arrives above zero
//     (and finite): kept as it is ("transcript"), unless it is more than
//     an order of magnitude away from what the table prices the same
//     tokens at: the writer got it wrong, the table price is used and the
//     record is marked (Corrected = implausible_cost); a record whose
//     token counts a reader corrected is priced from the table as well;
//  3. the embedded table, at the price in force on the UTC date (and time,
//     for time-of-day prices) of u.TS ("table");
//  4. otherwise cost zero ("unpriced"); the tokens are left untouched.
//
// Override and table prices are standard rates: the multiple of the call's
// modifier (u.Modifier: fast mode, a service tier; see Modifiers) is
// applied on top. A modifier the table does not know leaves the call
// without a price. Server tools add their per-request price (Cost.Tools).
func (p *Pricer) Apply(u *storage.Usage) {
	recorded := u.Cost
	p.apply(u)
	if recorded.Total > 0 && u.CostSource != storage.CostTranscript {
		u.Recorded = &recorded // what the transcript said, for a later reprice
	} else {
		u.Recorded = nil
	}
}

func (p *Pricer) apply(u *storage.Usage) {
	u.Modifier = NormalizeModifier(u.Modifier)
	price, source, ok := p.standard(u)
	if ok && u.Modifier != "" {
		k, known := modifierFor(p.modifierProvider(u), p.modifierModel(u), u.Modifier, u.TS)
		ok = known
		price = price.times(k)
	}
	transcript := u.Cost.Total > 0 && !math.IsInf(u.Cost.Total, 0) && !math.IsNaN(u.Cost.Total)
	switch {
	case ok && source == storage.CostOverride:
		u.Cost, u.CostSource = price.cost(u), storage.CostOverride
	case transcript:
		u.CostSource = storage.CostTranscript
		if !ok {
			return
		}
		switch c := price.cost(u); {
		case implausible(u.Cost.Total, c.Total):
			u.Cost, u.CostSource, u.Corrected = c, storage.CostTable, storage.CorrectedImplausibleCost
		case u.Corrected != "":
			// The writer's cost came from the token counts it got wrong.
			u.Cost, u.CostSource = c, storage.CostTable
		}
	case ok:
		u.Cost, u.CostSource = price.cost(u), storage.CostTable
	default:
		u.Cost, u.CostSource = storage.Cost{}, storage.CostUnpriced
	}
}

// standard is the call's price at the standard rate: the override, else
// the table's price in force at u.TS for the call's prompt size.
func (p *Pricer) standard(u *storage.Usage) (Price, string, bool) {
	r := p.resolve(u.Provider, u.Model)
	switch {
	case r.override != nil:
		return *r.override, storage.CostOverride, true
	case r.model != nil:
		return r.model.setAt(u.TS).at(prompt(u)), storage.CostTable, true
	}
	return Price{}, "", false
}

// modifierProvider and modifierModel name the call for the modifier table:
// the matched table provider and model id, else the recorded names.
func (p *Pricer) modifierProvider(u *storage.Usage) string {
	if r := p.resolve(u.Provider, u.Model); r.model != nil {
		return r.model.provider
	}
	return strings.ToLower(u.Provider)
}

func (p *Pricer) modifierModel(u *storage.Usage) string {
	if r := p.resolve(u.Provider, u.Model); r.model != nil {
		return r.model.id
	}
	return strings.ToLower(u.Model)
}

// implausible reports whether a transcript's cost is more than an order of
// magnitude away from the price of its tokens. A zero price (a free model)
// says nothing.
func implausible(recorded, priced float64) bool {
	if priced <= 0 {
		return false
	}
	ratio := recorded / priced
	return ratio > 10 || ratio < 0.1
}

// rulesVersion changes whenever Apply prices the same record differently
// for the same table, overrides and modifiers (a new rule, a fixed one):
// it is part of the fingerprint, so such a change reprices the ledger.
const rulesVersion = "3"

// Fingerprint identifies everything Apply's result depends on: the price
// table, the overrides, the modifier table and the pricing rules. A ledger
// priced under another fingerprint is repriced (storage.DB.Reprice).
func (p *Pricer) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "rules %s\n", rulesVersion)
	if p.table != nil {
		fmt.Fprintf(h, "table %s\n", p.table.version)
	}
	keys := make([]string, 0, len(p.overrides))
	for k := range p.overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "override %q %+v\n", k, p.overrides[k])
	}
	for _, m := range Modifiers {
		fmt.Fprintf(h, "modifier %+v\n", m)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// tableProvider maps the provider names of CLI backends to the API they
// bill through: OpenClaw's claude-cli runtime runs Claude Code against
// Anthropic's API, codex-cli runs Codex against OpenAI's.
func tableProvider(provider string) string {
	switch strings.ToLower(provider) {
	case "claude-cli":
		return "anthropic"
	case "codex-cli":
		return "openai"
	}
	return provider
}

// prompt is the call's whole input, the size that selects a price tier.
func prompt(u *storage.Usage) int64 {
	return max(u.Input, 0) + max(u.CacheRead, 0) + max(u.CacheWrite, 0)
}

// Lookup returns the price Apply would use for provider and model at the
// given instant (ignoring any cost the transcript carries), with the
// matched model: the feed's model id, or the override key when the user's
// price applies. Tiered table prices are given at their base tier (a
// prompt below the first threshold). ok is false when the pair is unpriced.
func (p *Pricer) Lookup(provider, model string, at time.Time) (Price, string, bool) {
	r := p.resolve(provider, model)
	switch {
	case r.override != nil:
		return *r.override, strings.ToLower(provider + "/" + model), true
	case r.model != nil:
		return r.model.setAt(at.UnixMilli()).at(0), r.model.id, true
	}
	return Price{}, "", false
}

func (p *Pricer) resolve(provider, model string) resolution {
	k := pair{provider, model}
	p.mu.RLock()
	r, ok := p.cache[k]
	p.mu.RUnlock()
	if ok {
		return r
	}
	if o, ok := p.overrides[strings.ToLower(provider+"/"+model)]; ok {
		r.override = &o
	}
	r.model = p.table.resolve(tableProvider(provider), model)
	p.mu.Lock()
	if len(p.cache) < maxCached {
		p.cache[k] = r
	}
	p.mu.Unlock()
	return r
}
