package rollup

import (
	"context"
	"slices"
)

// LeaderRow is one row of a leaderboard: a group's figures over the range
// and its cost over the period of the same length just before.
type LeaderRow struct {
	UsageRow
	PreviousCostUSD float64  `json:"previous_cost_usd"`
	CostChangeUSD   float64  `json:"cost_change_usd"`
	CostChangePct   *float64 `json:"cost_change_pct"` // null when the period before cost nothing
	SharePct        float64  `json:"share_pct"`       // of the range's cost
}

// Leaderboard ranks agents, users, models or teams by cost.
type Leaderboard struct {
	Range    Span        `json:"range"`
	Previous Span        `json:"previous"` // the period compared with
	By       string      `json:"by"`
	Filters  Filters     `json:"filters"`
	Totals   Sums        `json:"totals"`
	Rows     []LeaderRow `json:"rows"`
	More     int         `json:"more"` // groups ranked below the rows given
}

// Leaderboards rank by these groupings.
var leaderBy = []string{"agent", "user", "model", "team"}

// Leaderboard ranks q's groups (q.GroupBy: agent, user, model or team) by
// cost over q's range, the top limit of them, each with its change
// against the period of the same length before.
func (d *Dashboard) Leaderboard(ctx context.Context, q UsageQuery, limit int) (Leaderboard, error) {
	if !slices.Contains(leaderBy, q.GroupBy) {
		return Leaderboard{}, badQuery("a leaderboard ranks agent, user, model or team (asked %q)", q.GroupBy)
	}
	if limit <= 0 || limit > MaxPage {
		return Leaderboard{}, badQuery("limit must be 1 to %d", MaxPage)
	}
	cur, err := d.Usage(ctx, q)
	if err != nil {
		return Leaderboard{}, err
	}
	pq := q
	n := q.To - q.From + 1
	pq.From, pq.To, pq.Name = q.From-n, q.From-1, ""
	prev, err := d.Usage(ctx, pq)
	if err != nil {
		return Leaderboard{}, err
	}
	before := map[string]float64{}
	for _, r := range prev.Rows {
		before[r.Key] = r.CostUSD
	}
	out := Leaderboard{Range: cur.Range, Previous: prev.Range, By: q.GroupBy, Filters: q.Filters, Totals: cur.Totals, Rows: []LeaderRow{}}
	for i, r := range cur.Rows {
		if i == limit {
			out.More = len(cur.Rows) - limit
			break
		}
		lr := LeaderRow{UsageRow: r, PreviousCostUSD: before[r.Key], CostChangeUSD: r.CostUSD - before[r.Key]}
		if p := before[r.Key]; p != 0 {
			pct := (r.CostUSD - p) / p * 100
			lr.CostChangePct = &pct
		}
		if cur.Totals.CostUSD > 0 {
			lr.SharePct = r.CostUSD / cur.Totals.CostUSD * 100
		}
		out.Rows = append(out.Rows, lr)
	}
	return out, nil
}
