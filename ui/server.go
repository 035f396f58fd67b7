// Package ui serves fleetmeter's local HTTP interface: the JSON API under
// /api, Prometheus text at /metrics, /healthz, and the browser login. It
// answers on two kinds of listener: TCP (loopback by default), where a
// browser needs a login session and a script the bearer token, and the
// unix socket in the runtime dir, whose file permissions decide who may
// ask (the CLI talks to the daemon there). It reads everything through the
// small interfaces below, which the appliance satisfies.
package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
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
	Advice(ctx context.Context, instanceType string) (rollup.Advice, error)
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
	// Healthy is false while anything in Problems holds.
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems"`
	// Ingest and Host are the ingester's and the host sampler's own
	// status, as they marshal it (ui imports neither).
	Ingest    any                 `json:"ingest"`
	Host      any                 `json:"host,omitempty"`
	Database  storage.Stats       `json:"database"`
	Skipped   storage.Skips       `json:"skipped"`
	Corrected storage.Corrections `json:"corrected"`
	Pricing   string              `json:"pricing"` // fingerprint of the prices the daemon applies
	Sync      any                 `json:"sync"`    // the upstream sync's status (ui does not import sync)
}

// StatusSource reports the daemon's status; the appliance satisfies it.
type StatusSource interface {
	Status(ctx context.Context) (Status, error)
	// Problems says what is wrong right now (empty when healthy); cheap,
	// for /healthz.
	Problems() []string
}

// Deps are the handler's dependencies.
type Deps struct {
	Reports Reports
	Status  StatusSource
	// Metrics writes Prometheus text exposition.
	Metrics func(w io.Writer)
	// Backup writes a verified consistent copy of the database into a new
	// file and returns its path; the handler streams it, then removes it.
	Backup func() (path string, err error)
	// Sync returns the upstream sync status for /api/sync (nil: no route).
	Sync func(ctx context.Context) (any, error)
	// Alerts serves /api/alerts (nil: no route).
	Alerts Alerts
	// Audit serves /api/audit: the host's latest security audit against
	// a profile (strict, standard, relaxed; "" is standard), run anew
	// when refresh asks (nil: no route).
	Audit func(ctx context.Context, profile string, refresh bool) (any, error)
	// Token, when set, is accepted as "Authorization: Bearer <token>" on
	// TCP, for scripts and for what listens beyond loopback.
	Token string
	// Logins holds the browser login sessions. Nil is the explicit opt-out
	// of single-user boxes: loopback clients need no login.
	Logins *Logins
	// LoginURL mints a one-time login URL (for `fleetmeter login`, asked
	// over the socket).
	LoginURL func() (string, error)
	// Listen is the configured address; Host headers naming anything else
	// than it, localhost or a loopback IP are refused (DNS rebinding).
	Listen string
	Log    *slog.Logger

	// Dashboard answers the pages and their API (nil: neither is served).
	Dashboard Dashboard
	// Sources describes what ingest reads (nil: the Sources page says less).
	Sources func(ctx context.Context) (Sources, error)
	// Demo marks a demo daemon: every page says its data is made up.
	Demo bool
	// Observe records each request's duration by route template (nil: not recorded).
	Observe func(route, method string, status int, d time.Duration)
}

// NewHandler builds the HTTP handler for both listeners (ServeTCP and
// ServeSocket mark which one a request came through).
func NewHandler(d Deps) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	_ = r.SetTrustedProxies(nil) // no proxy: ClientIP is the peer
	a := &access{token: d.Token, logins: d.Logins, log: d.Log}
	elog := newErrorLog(d.Log)
	r.Use(observe(d.Observe), recovery(d.Log), securityHeaders, refuseCrossSite, checkHost(d.Listen), a.check)
	// A wrong method is 405 (with Allow), not 404: the path is there.
	r.HandleMethodNotAllowed = true
	r.NoMethod(func(c *gin.Context) { c.JSON(http.StatusMethodNotAllowed, gin.H{"error": "method not allowed"}) })
	healthz := func(c *gin.Context) {
		if p := d.Status.Problems(); len(p) > 0 {
			c.String(http.StatusServiceUnavailable, "unhealthy: %s\n", strings.Join(p, "; "))
			return
		}
		c.String(http.StatusOK, "ok\n")
	}
	r.GET("/healthz", healthz)
	r.HEAD("/healthz", healthz) // load balancers and uptime checkers probe with HEAD
	r.GET("/metrics", func(c *gin.Context) {
		c.Header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		d.Metrics(c.Writer)
	})
	if err := registerDashboard(r, d, elog); err != nil {
		d.Log.Error("the pages cannot be served", "err", err) // embedded files: a test catches this first
	}
	a.routes(r, d, elog)
	api := r.Group("/api")
	api.GET("/status", func(c *gin.Context) { respond(c, elog, func() (Status, error) { return d.Status.Status(c) }) })
	api.GET("/report/:kind", func(c *gin.Context) {
		q, err := parseQuery(c)
		if err != nil {
			fail(c, elog, err)
			return
		}
		if q.Kind == rollup.HostKind {
			respond(c, elog, func() (rollup.HostReport, error) { return d.Reports.HostReport(c, q) })
			return
		}
		respond(c, elog, func() (rollup.Report, error) { return d.Reports.Report(c, q) })
	})
	api.GET("/advice", func(c *gin.Context) {
		respond(c, elog, func() (rollup.Advice, error) { return d.Reports.Advice(c, c.Query("instance_type")) })
	})
	api.GET("/backup", func(c *gin.Context) {
		// The whole database: for who may read its file (the socket) or
		// holds the token, not for a browser session.
		if !viaSocket(c) && !a.bearer(c) {
			c.JSON(http.StatusForbidden, gin.H{"error": "a backup is taken through the daemon's socket (`fleetmeter backup FILE`) or with the auth token"})
			return
		}
		path, err := d.Backup()
		if err != nil {
			fail(c, elog, err)
			return
		}
		defer os.Remove(path)
		if err := streamFile(c, path); err != nil {
			d.Log.Warn("backup download ended early", "err", err) // headers are gone: the client sees a short body
		}
	})
	if d.Sync != nil {
		api.GET("/sync", func(c *gin.Context) { respond(c, elog, func() (any, error) { return d.Sync(c) }) })
	}
	if d.Alerts != nil {
		// GET: every rule with its value and state (?view=blocks: Claude's
		// 5-hour blocks); POST {"action":"ack"|"snooze"|"test","rule":…,"for":"2h"}.
		api.Match([]string{http.MethodGet, http.MethodPost}, "/alerts", func(c *gin.Context) {
			if c.Request.Method == http.MethodGet {
				respond(c, elog, func() (any, error) { return d.Alerts.Alerts(c, c.Query("view")) })
				return
			}
			var act AlertAction
			if err := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 4096)).Decode(&act); err != nil {
				fail(c, elog, fmt.Errorf("%w: want a JSON body {\"action\":…,\"rule\":…}", ErrBadRequest))
				return
			}
			respond(c, elog, func() (any, error) { return d.Alerts.AlertAction(c, act) })
		})
	}
	if d.Audit != nil {
		api.GET("/audit", func(c *gin.Context) {
			respond(c, elog, func() (any, error) { return d.Audit(c, c.Query("profile"), c.Query("refresh") == "1") })
		})
	}
	r.NoRoute(func(c *gin.Context) { c.JSON(http.StatusNotFound, gin.H{"error": "not found"}) })
	// Cross-origin browser requests that change state are refused.
	return http.NewCrossOriginProtection().Handler(r)
}

// defaultPage is the session rows the API sends when a query names no
// limit: a page, not the whole history.
const defaultPage = 200

// parseQuery reads a report query from the URL: since, until, tz, and for
// sessions limit and offset.
func parseQuery(c *gin.Context) (rollup.Query, error) {
	q, err := rollup.ParseQueryValues(c.Param("kind"), c.Request.URL.Query())
	if err != nil {
		return q, err
	}
	def := 0 // every row: the other reports are not paged
	if q.Kind == "session" {
		def = defaultPage
	}
	if q.Limit, err = rollup.ParseLimit(c.Query("limit"), def); err != nil {
		return q, err
	}
	if q.Offset, err = rollup.ParseOffset(c.Query("offset")); err != nil {
		return q, err
	}
	return q, q.Validate()
}

// errorLog logs what requests fail with, the same failure of the same
// path at most every 30 s: a dashboard polling a daemon whose disk is full
// must not fill the log.
type errorLog struct {
	log  *slog.Logger
	mu   sync.Mutex
	last map[string]time.Time
}

const errorLogEvery = 30 * time.Second

func newErrorLog(log *slog.Logger) *errorLog {
	return &errorLog{log: log, last: map[string]time.Time{}}
}

func (l *errorLog) Error(path string, err error) {
	key := path + "\x00" + err.Error()
	l.mu.Lock()
	at, seen := l.last[key]
	if seen && time.Since(at) < errorLogEvery {
		l.mu.Unlock()
		return
	}
	if len(l.last) > 1000 {
		clear(l.last) // many distinct failures: forget, rather than grow
	}
	l.last[key] = time.Now()
	l.mu.Unlock()
	l.log.Error("api request failed", "path", path, "err", err)
}

// respond runs fn and answers its result as JSON, or its error.
func respond[T any](c *gin.Context, log *errorLog, fn func() (T, error)) {
	v, err := fn()
	if err != nil {
		fail(c, log, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// fail maps an error to a status and a safe message, in one place: the
// request's own faults say what is wrong; a busy daemon says to retry;
// anything else is a 500 whose detail goes to the log only.
func fail(c *gin.Context, log *errorLog, err error) {
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, rollup.ErrBadQuery):
		c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
	case errors.Is(err, ErrNotFound), errors.Is(err, rollup.ErrNotFound):
		c.JSON(http.StatusNotFound, gin.H{"error": err.Error()})
	case errors.Is(err, rollup.ErrBusy):
		c.Header("Retry-After", "1")
		c.JSON(http.StatusServiceUnavailable, gin.H{"error": rollup.ErrBusy.Error()})
	case errors.Is(err, storage.ErrCorrupt):
		log.Error(c.FullPath(), err)
		c.JSON(http.StatusInternalServerError, gin.H{"error": "the database file is damaged (see the fleetmeter log; `fleetmeter repair` recovers it)"})
	default:
		log.Error(c.FullPath(), err)
		c.JSON(http.StatusInternalServerError, gin.H{"error": "internal error (see the fleetmeter log)"})
	}
}

// stallLimit is how long a stream may make no progress before it is cut.
const stallLimit = 30 * time.Second

// streamFile sends a file of any size, without the server's write timeout,
// but cuts a client that reads nothing for stallLimit.
func streamFile(c *gin.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	c.Header("Content-Type", "application/octet-stream")
	c.Header("Content-Disposition", `attachment; filename="fleetmeter.db"`)
	c.Header("Content-Length", strconv.FormatInt(st.Size(), 10))
	c.Status(http.StatusOK)
	rc := http.NewResponseController(c.Writer)
	buf := make([]byte, 256<<10)
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			if err := rc.SetWriteDeadline(time.Now().Add(stallLimit)); err != nil {
				return err
			}
			if _, err := c.Writer.Write(buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
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
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// checkHost refuses Host headers that are not ours: a page on another
// site that rebinds its name to 127.0.0.1 must not read the API. The
// header is parsed whole (hostOf): the name must be exactly localhost, a
// loopback address or the listen host, in any letter case, with a
// numeric port or none ("localhost:8767.evil.com" is not localhost).
func checkHost(listen string) gin.HandlerFunc {
	listenHost, _, _ := net.SplitHostPort(listen)
	listenHost = strings.ToLower(strings.Trim(listenHost, "[]"))
	return func(c *gin.Context) {
		if viaSocket(c) {
			c.Next() // no browser reaches the socket
			return
		}
		host, valid := hostOf(c.Request.Host)
		ip := net.ParseIP(host)
		ok := valid && (host == "localhost" || (ip != nil && ip.IsLoopback()) || (host != "" && host == listenHost))
		// Listening on every address: any IP literal the box answers on is fine.
		if !ok && valid && ip != nil && (listenHost == "" || listenHost == "0.0.0.0" || listenHost == "::") {
			ok = true
		}
		if !ok {
			c.AbortWithStatusJSON(http.StatusMisdirectedRequest, gin.H{"error": "unexpected Host header"})
			return
		}
		c.Next()
	}
}

// hostOf is the host of a Host header, lower-cased: "name", "name:port",
// "[v6]" or "[v6]:port", the port 1 to 65535 in digits. valid is false
// for anything else: an empty name or port, a port that is not a number,
// a bare IPv6 address, text after the brackets.
func hostOf(h string) (host string, valid bool) {
	port, hasPort := "", false
	switch {
	case strings.HasPrefix(h, "["):
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", false
		}
		host, rest := h[1:end], h[end+1:]
		if rest != "" {
			if port, hasPort = strings.CutPrefix(rest, ":"); !hasPort {
				return "", false
			}
		}
		h = host
	case strings.Count(h, ":") > 1:
		return "", false // IPv6 without brackets
	default:
		h, port, hasPort = strings.Cut(h, ":")
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.TrimLeft(port, "0123456789") != "" {
			return "", false
		}
	}
	return strings.ToLower(h), h != ""
}

// refuseCrossSite refuses what a page of another site makes a browser
// send, on every path and method: the safe methods too, since a read of
// the API leaks names and costs. Fetch metadata says where a request came
// from (same-origin, or none for a typed address); an Origin header must
// name this very host.
func refuseCrossSite(c *gin.Context) {
	if site := c.GetHeader("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "cross-site request refused: open fleetmeter's address directly"})
		return
	}
	if origin := c.GetHeader("Origin"); origin != "" && !strings.EqualFold(origin, "http://"+c.Request.Host) && !strings.EqualFold(origin, "https://"+c.Request.Host) {
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "cross-origin request refused"})
		return
	}
	c.Next()
}

func index(c *gin.Context) {
	c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>fleetmeter</title></head>
<body><h1>fleetmeter</h1><p>JSON API: <a href="/api/status">/api/status</a>, <a href="/api/report/daily">/api/report/daily</a>,
<a href="/api/report/agent">agent</a>, <a href="/api/report/user">user</a>, <a href="/api/report/model">model</a>,
<a href="/api/report/host">host</a>, <a href="/api/advice">/api/advice</a>; <a href="/metrics">/metrics</a>.</p>
<form method="post" action="/logout"><button type="submit">Log out</button></form></body></html>`))
}

// connKind marks, in a connection's context, the listener it came through.
type connKind struct{}

// viaSocket reports a request that came through the unix socket.
func viaSocket(c *gin.Context) bool {
	v, _ := c.Request.Context().Value(connKind{}).(string)
	return v == "socket"
}

// ServeTCP runs the handler on a TCP listener until ctx ends.
func ServeTCP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	return serve(ctx, ln, h, "tcp", log)
}

// ServeSocket runs the handler on the unix socket until ctx ends; who can
// connect may do everything (the socket's permissions decide who can).
func ServeSocket(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	return serve(ctx, ln, h, "socket", log)
}

// serve runs the handler on a listener until ctx ends, then shuts down
// within a bounded time.
func serve(ctx context.Context, ln net.Listener, h http.Handler, kind string, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connKind{}, kind)
		},
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
