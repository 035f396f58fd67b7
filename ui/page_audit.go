package ui

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// auditView mirrors the parts of /api/audit the Audit page shows (ui
// imports no host package).
type auditView struct {
	Configured bool
	Profile    string `json:"profile"`
	Threshold  string `json:"threshold"`
	Failing    int    `json:"failing"`
	Passed     bool   `json:"passed"`
	Report     struct {
		At       time.Time `json:"at"`
		Findings []struct {
			ID       string   `json:"id"`
			Title    string   `json:"title"`
			Severity string   `json:"severity"`
			Status   string   `json:"status"`
			Summary  string   `json:"summary"`
			Evidence []string `json:"evidence"`
			Fix      string   `json:"fix"`
		} `json:"findings"`
	} `json:"report"`
	Profiles []string
}

// auditPage is the host's security audit against a profile.
func (h *dash) auditPage(c *gin.Context) {
	v := auditView{Profiles: []string{"strict", "standard", "relaxed"}}
	if h.d.Audit != nil {
		doc, err := h.d.Audit(c, c.Query("profile"), false)
		if err == nil {
			err = remarshal(doc, &v)
		}
		if err != nil {
			h.pageError(c, "audit", err)
			return
		}
		v.Configured = true
	}
	h.render(c, http.StatusOK, "audit", "Security audit", v)
}
