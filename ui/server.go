// Package ui serves fleetmeter's local HTTP interface: the JSON API under
// /api, Prometheus text at /metrics and /healthz. It binds to loopback by
// default; anywhere else needs a bearer token. It reads everything through
// the small interfaces below, which the appliance satisfies.
package ui

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/gin-gonic/gin"
)

// ErrBadRequest marks errors caused by the request: they become 400 with
// their message (as rollup.ErrBadQuery does); anything else is a 500 with a
// generic message, the detail only in the log.
var ErrBadRequest = errors.New("bad request")

// ErrNotFound marks a request for something that does not exist.
var ErrNotFound = errors.New("not found")

// Reports is what the API reads; rollup.Reader satisfies it.
type Reports interface {
	Report(ctx context.Context, q rollup.Query) (rollup.Report, error)
	HostReport(ctx context.Context, q rollup.Query) (rollup.HostReport, error)
	Advice(ctx context.Context) (rollup.Advice, error)
}

// Alerts is what /api/alerts reads and changes; the appliance satisfies it.
type Alerts interface {
	Alerts(ctx context.Context, view string) (any, error)
	AlertAction(ctx context.Context, act AlertAction) (any, error)
}

// AlertAction is a POST to /api/alerts.
type AlertAction struct {
	Action string `json:"action"` // ack, snooze, test
	Rule   string `json:"rule"`
	For    string `json:"for,omitempty"` // snooze: a duration; "0" lifts it
}

// Status is /api/status: what the daemon is and how its parts are doing.
type Status struct {
	Version      string `json:"version"`
	InstanceID   string `json:"instance_id"`
	InstanceType string `json:"instance_type,omitempty"`
	DataDir      string `json:"data_dir"`
	TZ           string `json:"tz"`
	// Ingest is the ingester's own status, as it marshals it (ui does not
	// import ingest).
	Ingest    any                 `json:"ingest"`
	Database  storage.Stats       `json:"database"`
	Skipped   storage.Skips       `json:"skipped"`
	Corrected storage.Corrections `json:"corrected"`
	Pricing   string              `json:"pricing"` // fingerprint of the prices the daemon applies
	Sync      any                 `json:"sync"`    // the upstream sync's status (ui does not import sync)
}

// StatusSource reports the daemon's status; the appliance satisfies it.
type StatusSource interface {
	Status(ctx context.Context) (Status, error)
}

// Deps are the handler's dependencies.
type Deps struct {
	Reports Reports
	Status  StatusSource
	// Metrics writes Prometheus text exposition.
	Metrics func(w io.Writer)
	// Backup streams a consistent copy of the database.
	Backup func(w io.Writer) (int64, error)
	// Sync returns the upstream sync status for /api/sync (nil: no route).
	Sync func(ctx context.Context) (any, error)
	// Alerts serves /api/alerts (nil: no route).
	Alerts Alerts
	// Audit serves /api/audit: the host's latest security audit against
	// a profile (strict, standard, relaxed; "" is standard), run anew
	// when refresh asks (nil: no route).
	Audit func(ctx context.Context, profile string, refresh bool) (any, error)
	// LocalToken guards /api/backup when no Token is set: loopback is open
	// to every local user, the database file is not (mode 0600). The daemon
	// writes it to a 0600 file in its data dir; only who may read the
	// database may read the token. Sent as X-Fleetmeter-Local-Token.
	LocalToken string
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// everything but /healthz.
	Token string
	// Listen is the configured address; Host headers naming anything else
	// than it, localhost or a loopback IP are refused (DNS rebinding).
	Listen string
	Log    *slog.Logger
}

// NewHandler builds the HTTP handler.
func NewHandler(d Deps) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	_ = r.SetTrustedProxies(nil) // no proxy: ClientIP is the peer
	r.Use(recovery(d.Log), securityHeaders, checkHost(d.Listen))
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	authed := r.Group("/", requireToken(d.Token))
	authed.GET("/", index)
	authed.GET("/metrics", func(c *gin.Context) {
		c.Header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		d.Metrics(c.Writer)
	})
	api := authed.Group("/api")
	api.GET("/status", func(c *gin.Context) { respond(c, d.Log, func() (Status, error) { return d.Status.Status(c) }) })
	api.GET("/report/:kind", func(c *gin.Context) {
		q, err := rollup.ParseQuery(c.Param("kind"), c.Query("since"), c.Query("until"), c.Query("tz"))
		if err != nil {
			fail(c, d.Log, err)
			return
		}
		if q.Kind == rollup.HostKind {
			respond(c, d.Log, func() (rollup.HostReport, error) { return d.Reports.HostReport(c, q) })
			return
		}
		respond(c, d.Log, func() (rollup.Report, error) { return d.Reports.Report(c, q) })
	})
	api.GET("/backup", func(c *gin.Context) {
		local := c.GetHeader("X-Fleetmeter-Local-Token")
		if d.Token == "" && (d.LocalToken == "" || subtle.ConstantTimeCompare([]byte(local), []byte(d.LocalToken)) != 1) {
			c.JSON(http.StatusForbidden, gin.H{"error": "a backup needs the daemon's local token (readable by the daemon's user) or the auth token"})
			return
		}
		// A large database takes longer than the server's write timeout.
		_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Time{})
		c.Header("Content-Type", "application/octet-stream")
		c.Header("Content-Disposition", `attachment; filename="fleetmeter.db"`)
		if _, err := d.Backup(c.Writer); err != nil {
			d.Log.Error("backup failed", "err", err) // headers are gone: the client sees a short body
		}
	})
	api.GET("/advice", func(c *gin.Context) { respond(c, d.Log, func() (rollup.Advice, error) { return d.Reports.Advice(c) }) })
	if d.Sync != nil {
		api.GET("/sync", func(c *gin.Context) { respond(c, d.Log, func() (any, error) { return d.Sync(c) }) })
	}
	if d.Alerts != nil {
		// GET: every rule with its value and state (?view=blocks: Claude's
		// 5-hour blocks); POST {"action":"ack"|"snooze"|"test","rule":…,"for":"2h"}.
		api.Match([]string{http.MethodGet, http.MethodPost}, "/alerts", func(c *gin.Context) {
			if c.Request.Method == http.MethodGet {
				respond(c, d.Log, func() (any, error) { return d.Alerts.Alerts(c, c.Query("view")) })
				return
			}
			var act AlertAction
			if err := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 4096)).Decode(&act); err != nil {
				fail(c, d.Log, fmt.Errorf("%w: want a JSON body {\"action\":…,\"rule\":…}", ErrBadRequest))
				return
			}
			respond(c, d.Log, func() (any, error) { return d.Alerts.AlertAction(c, act) })
		})
	}
	if d.Audit != nil {
		api.GET("/audit", func(c *gin.Context) {
			respond(c, d.Log, func() (any, error) { return d.Audit(c, c.Query("profile"), c.Query("refresh") == "1") })
		})
	}
	r.NoRoute(func(c *gin.Context) { c.JSON(http.StatusNotFound, gin.H{"error": "not found"}) })
	// Cross-origin browser requests that change state are refused.
	return http.NewCrossOriginProtection().Handler(r)
}

// respond runs fn and answers its result as JSON, or its error.
func respond[T any](c *gin.Context, log *slog.Logger, fn func() (T, error)) {
	v, err := fn()
	if err != nil {
		fail(c, log, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// fail maps an error to a status and a safe message, in one place: the
// request's own faults say what is wrong; anything else is a 500 whose
// detail goes to the log only.
func fail(c *gin.Context, log *slog.Logger, err error) {
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, rollup.ErrBadQuery):
		c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
	case errors.Is(err, ErrNotFound):
		c.JSON(http.StatusNotFound, gin.H{"error": err.Error()})
	default:
		log.Error("api request failed", "path", c.FullPath(), "err", err)
		c.JSON(http.StatusInternalServerError, gin.H{"error": "internal error (see the fleetmeter log)"})
	}
}

func recovery(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, err any) {
		log.Error("panic in handler", "path", c.FullPath(), "err", err)
		c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
	})
}

func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// checkHost refuses Host headers that are not ours: a page on another
// site that rebinds its name to 127.0.0.1 must not read the API.
func checkHost(listen string) gin.HandlerFunc {
	listenHost, _, _ := net.SplitHostPort(listen)
	return func(c *gin.Context) {
		host := c.Request.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		ip := net.ParseIP(host)
		ok := host == "localhost" || (ip != nil && ip.IsLoopback()) || (host != "" && host == listenHost)
		// Listening on every address: any IP literal the box answers on is fine.
		if !ok && ip != nil && (listenHost == "" || listenHost == "0.0.0.0" || listenHost == "::") {
			ok = true
		}
		if !ok {
			c.AbortWithStatusJSON(http.StatusMisdirectedRequest, gin.H{"error": "unexpected Host header"})
			return
		}
		c.Next()
	}
}

func requireToken(token string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if token == "" {
			c.Next()
			return
		}
		scheme, got, _ := strings.Cut(c.GetHeader("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			c.Header("WWW-Authenticate", `Bearer realm="fleetmeter"`)
			c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "missing or wrong bearer token"})
			return
		}
		c.Next()
	}
}

func index(c *gin.Context) {
	c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>fleetmeter</title></head>
<body><h1>fleetmeter</h1><p>JSON API: <a href="/api/status">/api/status</a>, <a href="/api/report/daily">/api/report/daily</a>,
<a href="/api/report/agent">agent</a>, <a href="/api/report/user">user</a>, <a href="/api/report/model">model</a>,
<a href="/api/report/host">host</a>, <a href="/api/advice">/api/advice</a>; <a href="/metrics">/metrics</a>.</p></body></html>`))
}

// Server runs the handler on a listener until ctx ends, then shuts down
// within a bounded time.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// A client that does not read (a stalled backup download) must
		// not hold the daemon: cut what is left. Stopping is not an error.
		log.Warn("closing connections that did not finish in time", "err", err)
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
