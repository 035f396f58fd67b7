package ui

import (
	"fmt"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/gin-gonic/gin"
)

// GET /api/sessions?range=…&agent=&team=&model=&limit=50&offset=0: the
// sessions whose last activity is in the range, most recent first.
func (h *dash) apiSessions(c *gin.Context) {
	l, err := h.sessions(c, 50)
	if err != nil {
		fail(c, h.elog, err)
		return
	}
	export(c, fileName("sessions", l.Range), l, func() ([]string, [][]string) { return sessionsTable(l) })
}

func (h *dash) sessions(c *gin.Context, defLimit int) (rollup.SessionList, error) {
	q, err := h.usageQuery(c, "day")
	if err != nil {
		return rollup.SessionList{}, err
	}
	sq := rollup.SessionQuery{UsageQuery: q}
	if sq.Limit, err = rollup.ParseLimit(c.Query("limit"), defLimit); err != nil {
		return rollup.SessionList{}, err
	}
	if sq.Offset, err = rollup.ParseOffset(c.Query("offset")); err != nil {
		return rollup.SessionList{}, err
	}
	return h.db.Sessions(c, sq)
}

// GET /api/session?source=openclaw&id=…&limit=200&before=<unix ms>: one
// session and its calls, newest first.
func (h *dash) apiSession(c *gin.Context) {
	d, err := h.session(c)
	if err != nil {
		fail(c, h.elog, err)
		return
	}
	export(c, "fleetmeter-session-calls", d, func() ([]string, [][]string) { return callsTable(d) })
}

func (h *dash) session(c *gin.Context) (rollup.SessionDetail, error) {
	limit, err := rollup.ParseLimit(c.Query("limit"), 200)
	if err != nil {
		return rollup.SessionDetail{}, err
	}
	before, err := intParam(c, "before", 0)
	if err == nil && before < 0 {
		err = fmt.Errorf("%w: before %d: want unix milliseconds, 0 or more (0: the latest)", ErrBadRequest, before)
	}
	if err != nil {
		return rollup.SessionDetail{}, err
	}
	return h.db.SessionCalls(c, c.Query("source"), c.Query("id"), int64(before), limit)
}
