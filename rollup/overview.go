package rollup

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Overview is the dashboard's first screen: what the fleet cost today,
// this week and this month against the same stretch of the period before,
// where the month is heading, the host right now, and what needs a look.
// It reads the cheap projections only (and the hour index), since a tab
// left open asks for it every few seconds.
type Overview struct {
	At    time.Time  `json:"at"`
	TZ    string     `json:"tz"`
	Today PeriodCost `json:"today"`
	Week  PeriodCost `json:"week"`
	Month PeriodCost `json:"month"`
	// ProjectedMonthUSD is the month so far plus its remaining days at the
	// daily rate of the last 7 whole days.
	ProjectedMonthUSD float64 `json:"projected_month_usd"`
	DailyRateUSD      float64 `json:"daily_rate_usd"` // that rate
	// TodayByHour is today's cost per hour so far (USD), for a sparkline.
	TodayByHour Series      `json:"today_by_hour"`
	Host        *HostGlance `json:"host"` // null before the first sample
	// Unpriced lists models whose calls got no price in the last 30 days.
	Unpriced []UnpricedModel `json:"unpriced_models"`
	// Sources are the sources seen in the last week with their recent pace.
	Sources []SourcePace `json:"sources"`
}

// PeriodCost is a period so far against the same stretch of the one before.
type PeriodCost struct {
	From            string   `json:"from"` // first day
	CostUSD         float64  `json:"cost_usd"`
	Tokens          int64    `json:"total_tokens"`
	Messages        int64    `json:"messages"`
	PreviousCostUSD float64  `json:"previous_cost_usd"` // the period before, up to the same point
	ChangePct       *float64 `json:"change_pct"`        // null when the period before cost nothing
}

// HostGlance is the latest host sample.
type HostGlance struct {
	At          time.Time `json:"at"`
	CPUPct      float64   `json:"cpu_pct"`
	StealPct    float64   `json:"steal_pct"`
	MemUsedPct  float64   `json:"mem_used_pct"`
	DiskDataPct float64   `json:"disk_data_used_pct"`
	LoadPerCore float64   `json:"load_per_core"`
	Sessions    int       `json:"active_sessions"`
}

// UnpricedModel is a model calls were made to without a price.
type UnpricedModel struct {
	Model    string `json:"model"` // provider/model
	Messages int64  `json:"messages"`
	Tokens   int64  `json:"tokens"`
	LastDay  string `json:"last_day"`
}

// SourcePace is a source's calls lately: the last 3 hours against its
// hourly average over the week before, so a source that went quiet stands out.
type SourcePace struct {
	Source        string  `json:"source"`
	LastHours     int64   `json:"calls_last_3h"`
	WeekHourlyAvg float64 `json:"calls_per_hour_week_avg"`
	LastCall      *int64  `json:"last_call,omitempty"` // unix seconds, to the hour: the last hour with a call
	Stalled       bool    `json:"stalled"`             // quiet for 3 hours while it averaged 2 or more calls an hour
}

// Overview answers the overview.
func (d *Dashboard) Overview(ctx context.Context) (Overview, error) {
	loc := d.src.Location()
	now := d.cfg.Now().In(loc)
	today := storage.DayNumber(now.UnixMilli(), loc)
	dayStart := storage.DayStartMillis(today, loc)
	elapsed := now.UnixMilli() - dayStart // of today
	out := Overview{At: now, TZ: loc.String(), Unpriced: []UnpricedModel{}}

	// Days from the start of last month: the month, the week and the
	// days before them, by model (a few hundred rows).
	y, m, _ := now.Date()
	monthStart := storage.DayOfDate(y, m, 1)
	prevMonthStart := storage.DayOfDate(y, m-1, 1)
	weekStart := storage.WeekStart(today)
	first := min(prevMonthStart, weekStart-7)
	rows, err := d.src.DimRows(storage.DimModel, first, today)
	if err != nil {
		return out, fmt.Errorf("overview: %w", err)
	}
	byDay := map[int32]storage.Totals{}
	unpriced := map[string]*UnpricedModel{}
	for _, r := range rows {
		t := byDay[r.Period]
		t.Add(r.Totals)
		byDay[r.Period] = t
		if r.UnpricedTokens > 0 && r.Period > today-30 {
			name := modelName(r.Dim)
			u := unpriced[name]
			if u == nil {
				u = &UnpricedModel{Model: name}
				unpriced[name] = u
			}
			u.Messages += r.UnpricedMessages
			u.Tokens += r.UnpricedTokens
			u.LastDay = max(u.LastDay, storage.DayString(r.Period))
		}
	}
	sum := func(from, to int32) storage.Totals {
		var t storage.Totals
		for d := from; d <= to; d++ {
			t.Add(byDay[d])
		}
		return t
	}
	// Today against yesterday up to the same time, from the hour index.
	hourly := map[int64]int64{}
	if err := d.hours.each(today-1, today, func(h int64, _ agentKey, t *storage.Totals) { hourly[h] += t.CostNanos }); err != nil {
		return out, err
	}
	var yesterdaySoFar int64
	yStart := storage.DayStartMillis(today-1, loc)
	for h, c := range hourly {
		if h >= yStart && h < yStart+elapsed {
			yesterdaySoFar += c
		}
	}
	hour := time.Hour.Milliseconds()
	for h := dayStart; h <= now.UnixMilli(); h += hour {
		out.TodayByHour = append(out.TodayByHour, storage.USD(hourly[h]))
	}
	out.Today = period(today, byDay[today], yesterdaySoFar)
	// The week against last week up to the same instant (its day of today
	// from the hour index); the month against last month's same days, its
	// day of today pro-rated to the time of day.
	var weekAgoSoFar int64
	wStart := storage.DayStartMillis(today-7, loc)
	err = d.hours.each(today-7, today-7, func(h int64, _ agentKey, t *storage.Totals) {
		if h < wStart+elapsed {
			weekAgoSoFar += t.CostNanos
		}
	})
	if err != nil {
		return out, err
	}
	out.Week = period(weekStart, sum(weekStart, today), sum(weekStart-7, today-8).CostNanos+weekAgoSoFar)
	mDays := today - monthStart
	prevMonth := sum(prevMonthStart, monthStart-1).CostNanos // a shorter month: all of it
	if same := prevMonthStart + mDays; same < monthStart {
		frac := float64(elapsed) / float64(storage.DayStartMillis(today+1, loc)-dayStart)
		prevMonth = sum(prevMonthStart, same-1).CostNanos + int64(float64(byDay[same].CostNanos)*frac)
	}
	out.Month = period(monthStart, sum(monthStart, today), prevMonth)
	week := sum(today-7, today-1)
	out.DailyRateUSD = storage.USD(week.CostNanos) / 7
	monthEnd := storage.DayOfDate(y, m+1, 1) - 1
	rest := float64(monthEnd-today) + 1 - float64(elapsed)/float64(storage.DayStartMillis(today+1, loc)-dayStart)
	out.ProjectedMonthUSD = out.Month.CostUSD + out.DailyRateUSD*rest

	for _, u := range unpriced {
		out.Unpriced = append(out.Unpriced, *u)
	}
	sort.Slice(out.Unpriced, func(i, j int) bool { return out.Unpriced[i].Tokens > out.Unpriced[j].Tokens })
	if out.Sources, err = d.sourcePace(now); err != nil {
		return out, err
	}
	s, ok, err := d.src.LatestHostSample()
	if err != nil {
		return out, fmt.Errorf("overview: %w", err)
	}
	if ok {
		g := &HostGlance{At: time.UnixMilli(s.TS).In(loc), CPUPct: s.CPUPct, StealPct: s.CPUStealPct, LoadPerCore: s.LoadPerCore, Sessions: s.ActiveSessions}
		if s.MemTotal > 0 {
			g.MemUsedPct = 100 * float64(s.MemUsed) / float64(s.MemTotal)
		}
		if u, f := s.DataDisk.Used, s.DataDisk.Free; u+f > 0 {
			g.DiskDataPct = 100 * float64(u) / float64(u+f) // as df shows it
		}
		out.Host = g
	}
	return out, nil
}

func period(from int32, t storage.Totals, prevNanos int64) PeriodCost {
	p := PeriodCost{From: storage.DayString(from), CostUSD: storage.USD(t.CostNanos), Tokens: t.TotalTokens(), Messages: t.Messages,
		PreviousCostUSD: storage.USD(prevNanos)}
	if prevNanos != 0 {
		pct := float64(t.CostNanos-prevNanos) / float64(prevNanos) * 100
		p.ChangePct = &pct
	}
	return p
}

// sourcePace counts each source's calls per hour over the last week.
func (d *Dashboard) sourcePace(now time.Time) ([]SourcePace, error) {
	loc := d.src.Location()
	today := storage.DayNumber(now.UnixMilli(), loc)
	hour := time.Hour.Milliseconds()
	recent := now.UnixMilli() - 3*hour
	weekAgo := now.UnixMilli() - 7*24*hour
	pace := map[string]*SourcePace{}
	err := d.hours.each(today-7, today, func(h int64, a agentKey, t *storage.Totals) {
		if h+hour <= weekAgo {
			return
		}
		p := pace[a.source]
		if p == nil {
			p = &SourcePace{Source: a.source}
			pace[a.source] = p
		}
		if h+hour > recent {
			p.LastHours += t.Messages
		} else {
			p.WeekHourlyAvg += float64(t.Messages)
		}
		if p.LastCall == nil || *p.LastCall < h/1000 {
			at := h / 1000
			p.LastCall = &at
		}
	})
	out := []SourcePace{}
	for _, p := range pace {
		p.WeekHourlyAvg /= 7*24 - 3
		p.Stalled = p.LastHours == 0 && p.WeekHourlyAvg >= 2
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out, err
}
