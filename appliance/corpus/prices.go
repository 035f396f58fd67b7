package corpus

// Price is a model's list price in USD per 1M tokens, the unit OpenClaw's
// model catalog uses (models.providers.<p>.models[].cost).
type Price struct {
	Input      float64 `json:"input"`
	Output     float64 `json:"output"`
	CacheRead  float64 `json:"cache_read"`
	CacheWrite float64 `json:"cache_write"`
}

// model is one provider/model the generated agents call.
type model struct {
	provider string
	id       string
	api      string
	price    Price
	weight   int // relative frequency as an agent's primary model
}

// models is the catalog, in a fixed order so that picks are deterministic.
// OpenAI models have no cache-write price: their API reports no cache
// creation tokens, so cacheWrite is always 0 for them.
var models = [...]model{
	{"anthropic", "claude-sonnet-4-6", "anthropic-messages", Price{3, 15, 0.3, 3.75}, 5},
	{"anthropic", "claude-opus-4-6", "anthropic-messages", Price{5, 25, 0.5, 6.25}, 2},
	{"anthropic", "claude-haiku-4-5", "anthropic-messages", Price{1, 5, 0.1, 1.25}, 2},
	{"openai", "gpt-5.2", "openai-responses", Price{1.75, 14, 0.175, 0}, 3},
	{"openai", "gpt-5-mini", "openai-responses", Price{0.25, 2, 0.025, 0}, 2},
}

// Prices returns the price map the generator writes costs from, keyed by
// "provider/model". It is a fresh copy on each call.
func Prices() map[string]Price {
	p := make(map[string]Price, len(models))
	for _, m := range models {
		p[m.provider+"/"+m.id] = m.price
	}
	return p
}

// cost computes usage.cost like pi-ai's calculateCost: (price / 1e6) * tokens
// per kind, total = the sum in that order. Doing the same float operations
// in the same order yields the same float64 values JavaScript would write,
// rounding noise included (0.0005625000000000001).
func (p Price) cost(u usage) [5]float64 {
	in := (p.Input / 1000000) * float64(u.input)
	out := (p.Output / 1000000) * float64(u.output)
	cr := (p.CacheRead / 1000000) * float64(u.cacheRead)
	cw := (p.CacheWrite / 1000000) * float64(u.cacheWrite)
	return [5]float64{in, out, cr, cw, in + out + cr + cw}
}
