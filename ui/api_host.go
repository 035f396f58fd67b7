package ui

import (
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/gin-gonic/gin"
)

// GET /api/host?range=6h|24h|7d|30d|90d: the host's series at the
// resolution of the range (raw, 5-minute, daily) with the fleet's cost per
// hour on the same times.
func (h *dash) apiHost(c *gin.Context) {
	respond(c, h.elog, func() (rollup.HostSeries, error) { return h.db.HostSeriesOf(c, hostRange(c)) })
}

func hostRange(c *gin.Context) string {
	if r := c.Query("range"); r != "" {
		return r
	}
	return "24h"
}
