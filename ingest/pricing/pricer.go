package pricing

import (
	"math"
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
//     (and finite): kept as it is ("transcript");
//  3. the embedded table, at the price in force on the UTC date (and time,
//     for time-of-day prices) of u.TS ("table");
//  4. otherwise cost zero ("unpriced"); the tokens are left untouched.
func (p *Pricer) Apply(u *storage.Usage) {
	r := p.resolve(u.Provider, u.Model)
	switch {
	case r.override != nil:
		u.Cost, u.CostSource = r.override.cost(u), storage.CostOverride
	case u.Cost.Total > 0 && !math.IsInf(u.Cost.Total, 0):
		u.CostSource = storage.CostTranscript
	case r.model != nil:
		price := r.model.setAt(u.TS).at(prompt(u))
		u.Cost, u.CostSource = price.cost(u), storage.CostTable
	default:
		u.Cost, u.CostSource = storage.Cost{}, storage.CostUnpriced
	}
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
	r.model = p.table.resolve(provider, model)
	p.mu.Lock()
	if len(p.cache) < maxCached {
		p.cache[k] = r
	}
	p.mu.Unlock()
	return r
}
