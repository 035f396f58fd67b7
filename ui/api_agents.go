package ui

import (
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/gin-gonic/gin"
)

// GET /api/agents?range=30d: every agent found or configured, with its
// status, last call, sessions and cost over the range, and cost by team.
func (h *dash) apiAgents(c *gin.Context) {
	q, err := h.usageQuery(c, "agent")
	if err != nil {
		fail(c, h.elog, err)
		return
	}
	respond(c, h.elog, func() (rollup.Fleet, error) { return h.db.Fleet(c, q) })
}
