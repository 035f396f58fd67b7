package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// digest sends the daily and weekly summaries when their hour has come
// and this period's was not sent yet (a mark in the alerts bucket, so a
// restart does not send one twice).
func (e *Engine) digest(ctx context.Context, r *round, ch *change) error {
	if e.d.Reports == nil {
		return nil
	}
	local := r.now.In(r.loc)
	minute := local.Hour()*60 + local.Minute()
	for _, d := range []struct {
		kind string
		at   *digestTime
	}{{"daily", e.c.daily}, {"weekly", e.c.weekly}} {
		if d.at == nil || minute < d.at.minute || (!d.at.daily && local.Weekday() != d.at.weekday) {
			continue
		}
		key := storage.DayString(r.today)
		if !d.at.daily {
			y, w := local.ISOWeek()
			key = fmt.Sprintf("%d-W%02d", y, w)
		}
		e.mu.Lock()
		sent := e.digests[d.kind].Period == key
		e.mu.Unlock()
		if sent {
			continue
		}
		n, err := e.buildDigest(ctx, r, d.kind)
		if err != nil {
			return fmt.Errorf("%s digest: %w", d.kind, err)
		}
		e.enqueue(n, e.c.digestTo, r.now, ch)
		mark := digestMark{Period: key}
		ch.put[digestPrefix+d.kind], _ = json.Marshal(mark)
		e.mu.Lock()
		e.digests[d.kind] = mark
		e.mu.Unlock()
	}
	return nil
}

// buildDigest summarises yesterday (daily) or last week (weekly): cost and
// its trend, the top agents and users, the advice, open alerts.
func (e *Engine) buildDigest(ctx context.Context, r *round, kind string) (*Notification, error) {
	rep := e.d.Reports
	var b strings.Builder
	from, to := r.today-1, r.today-1
	var cost float64
	if kind == "daily" {
		q := rollup.Query{Kind: "daily", Since: r.today - 2, Until: r.today - 1}
		daily, err := rep.Report(ctx, q)
		if err != nil {
			return nil, err
		}
		var prev float64
		for _, row := range daily.Rows.([]rollup.DailyRow) {
			if row.Date == storage.DayString(r.today-1) {
				cost = row.CostUSD
			} else {
				prev = row.CostUSD
			}
		}
		fmt.Fprintf(&b, "%s: %s%s.", storage.DayString(r.today-1), rollup.USD(cost), trend(cost, prev, "the day before"))
	} else {
		from = storage.WeekStart(r.today) - 7
		to = from + 6
		weekly, err := rep.Report(ctx, rollup.Query{Kind: "weekly", Since: from, Until: to})
		if err != nil {
			return nil, err
		}
		var prev float64
		if rows := weekly.Rows.([]rollup.WeeklyRow); len(rows) > 0 {
			cost, prev = rows[0].CostUSD, rows[0].PreviousWeekCostUSD
		}
		fmt.Fprintf(&b, "Week of %s: %s%s.", storage.DayString(from), rollup.USD(cost), trend(cost, prev, "the week before"))
	}
	agents, err := rep.Report(ctx, rollup.Query{Kind: "agent", Since: from, Until: to})
	if err != nil {
		return nil, err
	}
	var top []string
	for i, a := range agents.Rows.([]rollup.AgentRow) {
		if i == 5 {
			break
		}
		top = append(top, fmt.Sprintf("%s %s", rollup.Clean(a.Agent), rollup.USD(a.CostUSD)))
	}
	fmt.Fprintf(&b, "\nTop agents: %s", listOrNone(top))
	users, err := rep.Report(ctx, rollup.Query{Kind: "user", Since: from, Until: to})
	if err != nil {
		return nil, err
	}
	top = top[:0]
	for _, u := range users.Rows.([]rollup.UserRow) {
		if len(top) == 5 {
			break
		}
		if u.User == "" {
			continue // calls with no human behind them
		}
		name := u.User
		if u.UserLabel != "" {
			name += " (" + u.UserLabel + ")"
		}
		top = append(top, fmt.Sprintf("%s %s", rollup.Clean(name), rollup.USD(u.CostUSD)))
	}
	fmt.Fprintf(&b, "\nTop users: %s", listOrNone(top))
	if adv, err := rep.Advice(ctx, ""); err == nil {
		fmt.Fprintf(&b, "\nHost: %s. %s", adv.Verdict, adv.Reason)
	}
	var open []string
	e.mu.Lock()
	for _, rule := range e.states {
		for _, st := range rule {
			if st.State != StateFiring {
				continue
			}
			name := st.Rule
			if st.Key != "" {
				name += " " + rollup.Clean(st.Key)
			}
			open = append(open, name)
		}
	}
	e.mu.Unlock()
	sort.Strings(open)
	fmt.Fprintf(&b, "\nOpen alerts: %d%s", len(open), map[bool]string{true: " (" + strings.Join(open, ", ") + ")", false: ""}[len(open) > 0])
	n := &Notification{Version: 1, Event: "digest", Rule: kind + "_digest", Type: "digest", Scope: ScopeHost, Severity: "info",
		Summary: kind + " digest", Value: cost, Unit: "usd", AmountUSD: ptr(cost), Period: storage.DayString(from),
		At: r.now.UTC(), Since: r.now.UTC(), URL: e.c.opts.UIURL, Host: e.d.InstanceID, Text: b.String()}
	n.render()
	return n, nil
}

func trend(cur, prev float64, than string) string {
	if prev == 0 {
		return ""
	}
	return fmt.Sprintf(", %+.0f%% on %s (%s)", (cur-prev)/prev*100, than, rollup.USD(prev))
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
