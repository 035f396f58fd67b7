package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/gin-gonic/gin"
)

// Dashboard is what the pages and their API read; rollup.Dashboard
// satisfies it.
type Dashboard interface {
	Today() int32
	Location() *time.Location
	Usage(ctx context.Context, q rollup.UsageQuery) (rollup.Usage, error)
	Leaderboard(ctx context.Context, q rollup.UsageQuery, limit int) (rollup.Leaderboard, error)
	Sessions(ctx context.Context, q rollup.SessionQuery) (rollup.SessionList, error)
	SessionCalls(ctx context.Context, source, id string, beforeMillis int64, limit int) (rollup.SessionDetail, error)
	HostSeriesOf(ctx context.Context, rangeName string) (rollup.HostSeries, error)
	Overview(ctx context.Context) (rollup.Overview, error)
	Fleet(ctx context.Context, q rollup.UsageQuery) (rollup.Fleet, error)
}

// Sources is what ingest reads and how it is doing: /api/ingest and the
// Sources page. The appliance fills it (ui imports neither ingest nor
// the price table).
type Sources struct {
	// Roots are the directories read, by source (openclaw, claude, codex).
	Roots []SourceRoot `json:"roots"`
	// Discover says the folders are looked for on every pass.
	Discover bool `json:"discover"`
	// CatchUpPct is how far a long pass (a first read, a catch-up) is, in
	// percent of its bytes; 0 when none runs.
	CatchUpPct   float64   `json:"catch_up_pct,omitempty"`
	Files        int       `json:"files"` // transcript files tracked
	PendingLines int       `json:"pending_partial_lines"`
	RecordsAdded int64     `json:"records_added"` // since the daemon started
	FileErrors   int64     `json:"file_errors"`
	LastStep     time.Time `json:"last_step,omitzero"`
	// LagSeconds is how long ago the last ingest pass finished: what a
	// new line may wait at most before it shows (besides the poll).
	LagSeconds float64 `json:"lag_seconds"`
	LastError  string  `json:"last_error,omitempty"`
	// PollSeconds is the interval between passes.
	PollSeconds  float64             `json:"poll_seconds"`
	Skipped      storage.Skips       `json:"skipped"` // since the database was created
	Corrected    storage.Corrections `json:"corrected"`
	Unrecognized map[string]int64    `json:"unrecognized_usage,omitempty"` // "<source> <field>" → count
	// PriceTableDate is the date of the embedded (or updated) price table;
	// PriceFile the overrides file in use ("" when none).
	PriceTableDate string `json:"price_table_date"`
	PriceFile      string `json:"price_file,omitempty"`
}

// SourceRoot is one directory a source is read from.
type SourceRoot struct {
	Source     string `json:"source"`
	Path       string `json:"path"`
	Discovered bool   `json:"discovered"` // found by discovery, not configured
}

// dash serves the pages and their API.
type dash struct {
	d      Deps
	db     Dashboard
	assets *assets
	pages  map[string]*pageTemplate
	log    *slog.Logger
	elog   *errorLog // API failures, each logged once per while
	advice adviceCache
}

// registerDashboard adds the pages and their API to r (a no-op without a
// Dashboard), and returns the answer for a path that is no page (nil: none).
func registerDashboard(r *gin.Engine, d Deps, elog *errorLog) (gin.HandlerFunc, error) {
	if d.Dashboard == nil {
		r.GET("/", index)
		return nil, nil
	}
	as, err := loadAssets()
	if err != nil {
		return nil, fmt.Errorf("ui assets: %w", err)
	}
	h := &dash{d: d, db: d.Dashboard, assets: as, log: d.Log, elog: elog}
	if h.pages, err = parsePages(as, d.Dashboard.Location()); err != nil {
		return nil, err
	}
	r.GET("/static/*file", as.serve)
	r.GET("/", h.overviewPage)
	r.GET("/usage", h.usagePage)
	r.GET("/usage/session", h.sessionPage)
	r.GET("/host", h.hostPage)
	r.GET("/agents", h.agentsPage)
	r.GET("/sources", h.sourcesPage)
	r.GET("/alerts", h.alertsPage)
	r.GET("/sync", h.syncPage)
	r.GET("/audit", h.auditPage)
	api := r.Group("/api")
	api.GET("/overview", h.apiOverview)
	api.GET("/usage", h.apiUsage)
	api.GET("/leaderboard", h.apiLeaderboard)
	api.GET("/sessions", h.apiSessions)
	api.GET("/session", h.apiSession)
	api.GET("/host", h.apiHost)
	api.GET("/agents", h.apiAgents)
	api.GET("/ingest", h.apiIngest)
	return h.noPage, nil
}

// noPage answers a browser's request for a path that is no page: a 404
// page in the pages' layout, not the API's JSON.
func (h *dash) noPage(c *gin.Context) {
	h.pageError(c, "", fmt.Errorf("there is no page at %s: %w", c.Request.URL.Path, ErrNotFound))
}

// observe times each request under its route template (a closed set: an
// unknown path is "unmatched"), for /metrics.
func observe(fn func(route, method string, status int, d time.Duration)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if fn == nil {
			c.Next()
			return
		}
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		method := c.Request.Method
		switch method {
		case http.MethodGet, http.MethodPost, http.MethodHead:
		default:
			method = "other" // a client may send any word
		}
		fn(route, method, c.Writer.Status(), time.Since(start))
	}
}

// usageQuery reads a usage query from the URL: range or from/to, group_by
// (def when absent) and the filters.
func (h *dash) usageQuery(c *gin.Context, def string) (rollup.UsageQuery, error) {
	f := rollup.Filters{Agent: c.Query("agent"), User: c.Query("user"), Model: c.Query("model"), Team: c.Query("team")}
	return rollup.ParseUsageQuery(c.Query("range"), c.Query("from"), c.Query("to"), c.Query("group_by"), def, f, h.db.Today())
}

// intParam reads a whole number from the URL, def when absent.
func intParam(c *gin.Context, name string, def int) (int, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a whole number", ErrBadRequest, name, v)
	}
	return n, nil
}

// badges are the counts the navigation shows on every page.
type badges struct {
	Firing, Pending int
	SyncState       string // "" when sync is off
	SyncProblem     bool
}

// alertCounts counts the firing and pending alert rules.
func (h *dash) alertCounts(ctx context.Context) (firing, pending int, ok bool) {
	v, ok := h.alertRules(ctx)
	return v.Firing, v.Pending, ok
}

// alertRules reads the alerts for the badge and the overview; ok false
// when there are none to read.
func (h *dash) alertRules(ctx context.Context) (alertsView, bool) {
	if h.d.Alerts == nil {
		return alertsView{}, false
	}
	v, err := h.alerts(ctx)
	if err != nil {
		h.log.Warn("alerts for the badge", "err", err)
		return alertsView{}, false
	}
	return v, true
}

// syncView is the part of the upstream sync status the pages show.
type syncView struct {
	Enabled             bool      `json:"enabled"`
	State               string    `json:"state"`
	Target              string    `json:"target"`
	LastAttempt         time.Time `json:"last_attempt"`
	LastSuccess         time.Time `json:"last_success"`
	NextAttempt         time.Time `json:"next_attempt"`
	LastError           string    `json:"last_error"`
	ErrorClass          string    `json:"error_class"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	PendingRows         int       `json:"pending_rows"`
	QuarantinedRows     int       `json:"quarantined_rows"`
	LagSeconds          float64   `json:"lag_seconds"`
	RowsSent            int64     `json:"rows_sent_total"`
	Backfill            *struct {
		Done  int `json:"entries_done"`
		Total int `json:"entries_total"`
	} `json:"backfill"`
	Quarantine []struct {
		Row   string    `json:"row"`
		Error string    `json:"error"`
		At    time.Time `json:"at"`
	} `json:"quarantine"`
}

func (h *dash) syncState(ctx context.Context) (syncView, bool) {
	if h.d.Sync == nil {
		return syncView{}, false
	}
	v, err := h.d.Sync(ctx)
	if err != nil {
		h.log.Warn("sync status for the page", "err", err)
		return syncView{}, false
	}
	var s syncView
	if err := remarshal(v, &s); err != nil {
		return syncView{}, false
	}
	return s, true
}

func (h *dash) badges(ctx context.Context) badges {
	var b badges
	b.Firing, b.Pending, _ = h.alertCounts(ctx)
	if s, ok := h.syncState(ctx); ok && s.Enabled {
		b.SyncState = s.State
		b.SyncProblem = s.State != "ok" && s.State != "not_yet"
	}
	return b
}

// remarshal copies v into dst through JSON: how ui reads the documents of
// parts it does not import.
func remarshal(v, dst any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

// notFound is the answer for a page that needs a part this daemon lacks.
func notFound(c *gin.Context) { c.JSON(http.StatusNotFound, gin.H{"error": "not found"}) }
