package ui

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/gin-gonic/gin"
)

// usageView is the Usage page: the range, the filters (a drill-down is a
// filter), the totals, the series, and the leaderboards the filters leave
// meaningful, with sessions once an agent, team or model is chosen.
type usageView struct {
	Q          rollup.UsageQuery
	From, To   string // the range's days, for the custom range form
	Ranges     []string
	Params     url.Values // range and filters: every link and export keeps them
	Series     rollup.Usage
	Agents     *rollup.Leaderboard
	Users      *rollup.Leaderboard
	Models     *rollup.Leaderboard
	Sessions   *rollup.SessionList
	NextOffset int // sessions: the next page's offset, 0 when none
}

const usageTop = 10 // rows of the agent and user leaderboards

// seriesGrouping is hour for a range of two days or less, else day.
func seriesGrouping(q rollup.UsageQuery) string {
	if q.To-q.From < 2 {
		return "hour"
	}
	return "day"
}

func (h *dash) usagePage(c *gin.Context) {
	q, err := h.usageQuery(c, "day")
	if err != nil {
		h.pageError(c, "usage", err)
		return
	}
	v := usageView{Q: q, From: storage.DayString(q.From), To: storage.DayString(q.To), Ranges: rollup.RangeNames(), Params: url.Values{}}
	if q.Name != "" {
		v.Params.Set("range", q.Name)
	} else {
		v.Params.Set("from", v.From)
		v.Params.Set("to", v.To)
	}
	for k, val := range map[string]string{"agent": q.Agent, "user": q.User, "model": q.Model, "team": q.Team} {
		if val != "" {
			v.Params.Set(k, val)
		}
	}
	sq := q
	sq.GroupBy = seriesGrouping(q)
	if v.Series, err = h.db.Usage(c, sq); err != nil {
		h.pageError(c, "usage", err)
		return
	}
	board := func(by string, limit int) (*rollup.Leaderboard, error) {
		lq := q
		lq.GroupBy = by
		l, err := h.db.Leaderboard(c, lq, limit)
		return &l, err
	}
	if q.Agent == "" {
		if v.Agents, err = board("agent", usageTop); err != nil {
			h.pageError(c, "usage", err)
			return
		}
	}
	if q.User == "" {
		if v.Users, err = board("user", usageTop); err != nil {
			h.pageError(c, "usage", err)
			return
		}
	}
	if q.Model == "" {
		if v.Models, err = board("model", rollup.MaxPage); err != nil {
			h.pageError(c, "usage", err)
			return
		}
	}
	if (q.Agent != "" || q.Team != "" || q.Model != "") && q.User == "" {
		l, err := h.sessions(c, sessionsPage)
		if err != nil {
			h.pageError(c, "usage", err)
			return
		}
		v.Sessions = &l
		if next := l.Page.Offset + len(l.Sessions); next < l.Page.Total {
			v.NextOffset = next
		}
	}
	title := "Usage"
	if q.Agent != "" {
		title = "Agent " + q.Agent
	}
	h.render(c, http.StatusOK, "usage", title, v)
}

const sessionsPage = 25

// Link is the page's URL with its range and filters, changed by the
// name/value pairs given ("" removes a parameter).
func (v usageView) Link(path string, kv ...string) template.URL {
	p := url.Values{}
	for k, vals := range v.Params {
		p[k] = vals
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "range" { // a named range replaces a custom one and back
			p.Del("from")
			p.Del("to")
		}
		if kv[i+1] == "" {
			p.Del(kv[i])
		} else {
			p.Set(kv[i], kv[i+1])
		}
	}
	if len(p) == 0 {
		return template.URL(path)
	}
	return template.URL(path + "?" + p.Encode())
}

// Offset formats a sessions offset for a link.
func (v usageView) Offset(n int) string { return strconv.Itoa(n) }
