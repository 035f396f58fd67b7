package ui

import (
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/gin-gonic/gin"
)

// GET /api/usage?range=30d|from=&to=&group_by=day&agent=&user=&model=&team=
// [&format=csv|json]: totals and rows of the range, grouped and filtered.
func (h *dash) apiUsage(c *gin.Context) {
	q, err := h.usageQuery(c, "day")
	if err != nil {
		fail(c, h.elog, err)
		return
	}
	u, err := h.db.Usage(c, q)
	if err != nil {
		fail(c, h.elog, err)
		return
	}
	export(c, fileName("usage-by-"+q.GroupBy, u.Range), u, func() ([]string, [][]string) { return usageTable(u) })
}

// GET /api/leaderboard?by=agent|user|model|team&limit=10 and the range and
// filters of /api/usage: the top groups by cost with their change against
// the period of the same length before.
func (h *dash) apiLeaderboard(c *gin.Context) {
	q, err := h.usageQuery(c, "agent")
	if err == nil && c.Query("by") != "" {
		q.GroupBy = c.Query("by")
	}
	var limit int
	if err == nil {
		limit, err = rollup.ParseLimit(c.Query("limit"), 10)
	}
	var l rollup.Leaderboard
	if err == nil {
		l, err = h.db.Leaderboard(c, q, limit)
	}
	if err != nil {
		fail(c, h.elog, err)
		return
	}
	export(c, fileName("top-"+l.By, l.Range), l, func() ([]string, [][]string) { return leaderTable(l) })
}
