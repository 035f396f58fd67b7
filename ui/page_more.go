package ui

import (
	"net/http"
	"strconv"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/gin-gonic/gin"
)

// The Session, Host, Agents, Sources, Alerts and Sync pages.

type sessionView struct {
	rollup.SessionDetail
	Source, ID string
	Older      string // the next page's before, "" when none
}

func (h *dash) sessionPage(c *gin.Context) {
	d, err := h.session(c)
	if err != nil {
		h.pageError(c, "usage", err)
		return
	}
	v := sessionView{SessionDetail: d, Source: c.Query("source"), ID: c.Query("id")}
	if d.Before != nil {
		v.Older = strconv.FormatInt(*d.Before, 10)
	}
	h.render(c, http.StatusOK, "session", "Session", v)
}

type hostView struct {
	Range  string
	Ranges []string
	Advice *rollup.Advice
}

func (h *dash) hostPage(c *gin.Context) {
	v := hostView{Range: hostRange(c), Ranges: rollup.HostRangeNames()}
	if _, err := h.db.HostSeriesOf(c, v.Range); err != nil { // a bad range says so here, not in the chart
		h.pageError(c, "host", err)
		return
	}
	if a, err := h.d.Reports.Advice(c, ""); err == nil {
		v.Advice = &a
	} else {
		h.log.Warn("advice for the host page", "err", err)
	}
	h.render(c, http.StatusOK, "host", "Host", v)
}

type agentsView struct {
	rollup.Fleet
	MultiSource bool // agents come from more than one source: say which
	Q           rollup.UsageQuery
	Ranges      []string
	RangeName   string
}

func (h *dash) agentsPage(c *gin.Context) {
	q, err := h.usageQuery(c, "agent")
	if err != nil {
		h.pageError(c, "agents", err)
		return
	}
	f, err := h.db.Fleet(c, q)
	if err != nil {
		h.pageError(c, "agents", err)
		return
	}
	v := agentsView{Fleet: f, Q: q, Ranges: rollup.RangeNames(), RangeName: q.Name}
	seen := map[string]bool{}
	for _, a := range f.Agents {
		for _, s := range a.Sources {
			seen[s] = true
		}
	}
	v.MultiSource = len(seen) > 1
	h.render(c, http.StatusOK, "agents", "Agents", v)
}

func (h *dash) sourcesPage(c *gin.Context) {
	v, err := h.ingest(c)
	if err != nil {
		h.pageError(c, "sources", err)
		return
	}
	h.render(c, http.StatusOK, "sources", "Sources", v)
}

// alertsView mirrors the parts of the alerts snapshot (/api/alerts) the
// page shows; ui reads it through JSON, as it imports no alerts package.
type alertsView struct {
	Configured  bool
	EvaluatedAt *time.Time `json:"evaluated_at"`
	Firing      int        `json:"firing"`
	Pending     int        `json:"pending"`
	Rules       []struct {
		Name         string     `json:"name"`
		Type         string     `json:"type"`
		Scope        string     `json:"scope"`
		State        string     `json:"state"`
		Notify       []string   `json:"notify"`
		SnoozedUntil *time.Time `json:"snoozed_until"`
		Error        string     `json:"error"`
		Summary      string     `json:"summary"`
		Value        float64    `json:"value"`
		Threshold    float64    `json:"threshold"`
		Unit         string     `json:"unit"`
		Instances    []struct {
			Key     string    `json:"key"`
			State   string    `json:"state"`
			Since   time.Time `json:"since"`
			Summary string    `json:"summary"`
			Acked   bool      `json:"acked"`
		} `json:"instances"`
	} `json:"rules"`
	Notifiers []struct {
		Name      string `json:"name"`
		Receiver  string `json:"receiver"`
		Delivered int64  `json:"delivered"`
		Failed    int64  `json:"failed_attempts"`
		GaveUp    int64  `json:"gave_up"`
		Pending   int    `json:"pending"`
	} `json:"notifiers"`
}

func (h *dash) alertsPage(c *gin.Context) {
	var v alertsView
	if h.d.Alerts != nil {
		snap, err := h.d.Alerts.Alerts(c, "")
		if err == nil {
			err = remarshal(snap, &v)
		}
		if err != nil {
			h.pageError(c, "alerts", err)
			return
		}
		v.Configured = len(v.Rules) > 0
	}
	h.render(c, http.StatusOK, "alerts", "Alerts", v)
}

func (h *dash) syncPage(c *gin.Context) {
	s, ok := h.syncState(c)
	if !ok {
		s = syncView{State: "disabled"}
	}
	h.render(c, http.StatusOK, "sync", "Upstream sync", s)
}
