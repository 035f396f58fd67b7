package ui

import (
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/gin-gonic/gin"
)

// ingestView is /api/ingest: what is read from where and how it goes,
// with each source's pace and the models without a price.
type ingestView struct {
	Sources
	Pace     []rollup.SourcePace    `json:"pace"`
	Unpriced []rollup.UnpricedModel `json:"unpriced_models"`
}

func (h *dash) ingest(c *gin.Context) (ingestView, error) {
	var v ingestView
	if h.d.Sources != nil {
		s, err := h.d.Sources(c)
		if err != nil {
			return v, err
		}
		v.Sources = s
	}
	ov, err := h.db.Overview(c)
	if err != nil {
		return v, err
	}
	v.Pace, v.Unpriced = ov.Sources, ov.Unpriced
	if v.Unpriced == nil {
		v.Unpriced = []rollup.UnpricedModel{}
	}
	return v, nil
}

// GET /api/ingest: the ingest status.
func (h *dash) apiIngest(c *gin.Context) {
	respond(c, h.elog, func() (ingestView, error) { return h.ingest(c) })
}
