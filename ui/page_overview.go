package ui

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/gin-gonic/gin"
)

// overview is the Overview page and /api/overview: the figures, the
// advice in brief, the badges and what needs attention, composed here
// from the parts ui reads.
type overview struct {
	rollup.Overview
	Advice    *adviceBrief `json:"advice"`
	Attention []attention  `json:"attention"`
	Alerts    alertBadge   `json:"alerts"`
	Sync      *syncBadge   `json:"sync"` // null when upstream sync is off
}

// adviceCache keeps the overview's advice between polls.
type adviceCache struct {
	mu sync.Mutex
	at time.Time
	v  *adviceBrief
}

type adviceBrief struct {
	Verdict   rollup.Verdict `json:"verdict"`
	Text      string         `json:"verdict_text"`
	Reason    string         `json:"reason"`
	Suggested string         `json:"suggested,omitempty"`
}

type alertBadge struct {
	Configured bool `json:"configured"`
	Firing     int  `json:"firing"`
	Pending    int  `json:"pending"`
}

type syncBadge struct {
	State       string  `json:"state"`
	PendingRows int     `json:"pending_rows"`
	Quarantined int     `json:"quarantined_rows"`
	LagSeconds  float64 `json:"lag_seconds"`
}

// attention is one thing that needs a look.
type attention struct {
	Level string `json:"level"` // error, warn, info
	Text  string `json:"text"`
	Href  string `json:"href"`
}

func (h *dash) overview(ctx context.Context) (overview, error) {
	ov, err := h.db.Overview(ctx)
	if err != nil {
		return overview{}, err
	}
	out := overview{Overview: ov, Attention: []attention{}}
	note := func(level, href, format string, a ...any) {
		out.Attention = append(out.Attention, attention{Level: level, Text: fmt.Sprintf(format, a...), Href: href})
	}
	for _, p := range h.d.Status.Problems() {
		note("error", "/sources", "%s", p)
	}
	if f, p, ok := h.alertCounts(ctx); ok {
		out.Alerts = alertBadge{Configured: true, Firing: f, Pending: p}
		if f > 0 {
			note("error", "/alerts", "%d alert%s firing", f, plural(f))
		}
		if p > 0 {
			note("info", "/alerts", "%d alert%s pending", p, plural(p))
		}
	}
	if s, ok := h.syncState(ctx); ok && s.Enabled {
		out.Sync = &syncBadge{State: s.State, PendingRows: s.PendingRows, Quarantined: s.QuarantinedRows, LagSeconds: s.LagSeconds}
		switch {
		case s.State != "ok" && s.State != "not_yet":
			note("warn", "/sync", "Upstream sync is %s: %s", s.State, firstNonEmpty(s.ErrorClass, "see the Sync page"))
		case s.QuarantinedRows > 0:
			note("warn", "/sync", "%d row%s quarantined by upstream", s.QuarantinedRows, plural(s.QuarantinedRows))
		}
	}
	for _, src := range ov.Sources {
		if src.Stalled {
			note("warn", "/sources", "%s: no call in the last 3 hours (it averaged %.0f an hour this week)", src.Source, src.WeekHourlyAvg)
		}
	}
	if n := len(ov.Unpriced); n > 0 {
		var tokens int64
		for _, u := range ov.Unpriced {
			tokens += u.Tokens
		}
		note("warn", "/sources#unpriced", "%d model%s without a price: %s tokens counted at $0 in the last 30 days", n, plural(n), compact(tokens))
	}
	if h.d.Sources != nil {
		if src, err := h.d.Sources(ctx); err == nil {
			k := src.Skipped
			if bad := k.Malformed + k.OversizeLine + k.UnreadableFile + k.Unsupported + k.UnrecognizedUsage; bad > 0 {
				note("info", "/sources#skipped", "%s line%s or file%s skipped as unreadable or of an unknown format", thousands(bad), plural(int(bad)), plural(int(bad)))
			}
		}
	}
	if a := h.adviceBrief(ctx); a != nil {
		out.Advice = a
		if a.Verdict != rollup.Hold {
			note("info", "/host", "Scaling advice: %s. %s", a.Text, a.Reason)
		}
	}
	return out, nil
}

// adviceEvery is how long the overview's advice is kept: it weighs a
// week of samples (a read of ~10 MB), and a tab left open asks every 15 s.
const adviceEvery = 5 * time.Minute

// adviceBrief is the advice in brief, read at most every adviceEvery.
func (h *dash) adviceBrief(ctx context.Context) *adviceBrief {
	h.advice.mu.Lock()
	defer h.advice.mu.Unlock()
	if h.advice.v != nil && time.Since(h.advice.at) < adviceEvery {
		return h.advice.v
	}
	a, err := h.d.Reports.Advice(ctx, "")
	if err != nil {
		return h.advice.v // the last one known, or none
	}
	b := &adviceBrief{Verdict: a.Verdict, Text: verdictText(a.Verdict), Reason: a.Reason}
	if a.Suggested != nil {
		b.Suggested = a.Suggested.Type
	}
	h.advice.v, h.advice.at = b, time.Now()
	return b
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func (h *dash) overviewPage(c *gin.Context) {
	ov, err := h.overview(c)
	if err != nil {
		h.pageError(c, "overview", err)
		return
	}
	h.render(c, http.StatusOK, "overview", "Overview", ov)
}

func (h *dash) apiOverview(c *gin.Context) {
	respond(c, h.elog, func() (overview, error) { return h.overview(c) })
}
