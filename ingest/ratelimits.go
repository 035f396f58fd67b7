package ingest

import (
	"time"

	"github.com/valyala/fastjson"
)

// RateLimit is a usage window a provider enforces on the account, as the
// newest transcript line reported it: Codex writes its plan's 5-hour
// ("primary") and weekly ("secondary") windows on token_count events.
// Alerts warn before one is exhausted.
type RateLimit struct {
	Source        string    `json:"source"` // "codex"
	Window        string    `json:"window"` // "primary", "secondary"
	UsedPercent   float64   `json:"used_percent"`
	WindowMinutes int64     `json:"window_minutes"`
	ResetsAt      time.Time `json:"resets_at"` // zero when not reported
	SeenAt        time.Time `json:"seen_at"`   // the time of the line that reported it
}

// noteRateLimits keeps the newest report of each Codex window (by the
// line's time: a replayed or older rollout never wins over a newer one).
// Called from the reading goroutines.
func (in *Ingester) noteRateLimits(v *fastjson.Value, tsMillis int64) {
	if v == nil || v.Type() != fastjson.TypeObject || tsMillis == 0 {
		return
	}
	seen := time.UnixMilli(tsMillis).UTC()
	for _, window := range []string{"primary", "secondary"} {
		w := v.Get(window)
		if w == nil || w.Type() != fastjson.TypeObject {
			continue
		}
		rl := RateLimit{Source: "codex", Window: window, UsedPercent: w.GetFloat64("used_percent"),
			WindowMinutes: w.GetInt64("window_minutes"), SeenAt: seen}
		if at := w.GetInt64("resets_at"); at > 0 {
			rl.ResetsAt = time.Unix(at, 0).UTC()
		} else if in := w.GetInt64("resets_in_seconds"); in > 0 {
			rl.ResetsAt = seen.Add(time.Duration(in) * time.Second)
		}
		key := rl.Source + " " + window
		in.mu.Lock()
		if old, ok := in.rateLimits[key]; !ok || old.SeenAt.Before(seen) {
			if in.rateLimits == nil {
				in.rateLimits = map[string]RateLimit{}
			}
			in.rateLimits[key] = rl
		}
		in.mu.Unlock()
	}
}

// RateLimits returns the newest report of each window, in a stable order.
func (in *Ingester) RateLimits() []RateLimit {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.rateLimitsLocked()
}

func (in *Ingester) rateLimitsLocked() []RateLimit {
	var out []RateLimit
	for _, k := range []string{"codex primary", "codex secondary"} {
		if rl, ok := in.rateLimits[k]; ok {
			out = append(out, rl)
		}
	}
	return out
}
