package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Who may do what over TCP. Loopback is open to every account on the host,
// the agents included (they run code that chat messages ask for), so on TCP:
//   - /healthz and /metrics answer loopback clients (Prometheus scrapes
//     them); others need the bearer token;
//   - /login answers everyone (it is how a browser gets a session);
//   - everything else needs a login session cookie or the bearer token,
//     unless Logins is nil (the explicit opt-out of a single-user box) and
//     no token is set, where loopback clients need neither to read (GET,
//     HEAD): a change (acknowledging or snoozing an alert) still needs the
//     token, else an agent could silence its own budget alert.
// The unix socket is not checked here: its file permissions decide.

// Logins are the browser login sessions: one-time tokens (printed by
// `fleetmeter serve` on a terminal, or by `fleetmeter login`) that a browser
// trades for a session cookie. Held in memory: a restart asks for a new
// login. Safe for concurrent use.
type Logins struct {
	mu       sync.Mutex
	once     map[[32]byte]time.Time // sha256 of a one-time token → its expiry
	sessions map[[32]byte]time.Time // sha256 of a session id → its expiry
	now      func() time.Time
}

const (
	loginTokenTTL = time.Hour
	sessionTTL    = 30 * 24 * time.Hour
	maxSessions   = 256 // the oldest go first: a flood of logins cannot grow memory
	cookieName    = "fleetmeter_session"
)

// NewLogins makes an empty set; now is the clock (nil: time.Now).
func NewLogins(now func() time.Time) *Logins {
	if now == nil {
		now = time.Now
	}
	return &Logins{once: map[[32]byte]time.Time{}, sessions: map[[32]byte]time.Time{}, now: now}
}

// NewToken mints a one-time login token, valid for an hour.
func (l *Logins) NewToken() string {
	t := randomToken()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire()
	l.once[sha256.Sum256([]byte(t))] = l.now().Add(loginTokenTTL)
	return t
}

// redeem uses up a one-time token; ok is false for an unknown, used or
// expired one.
func (l *Logins) redeem(token string) bool {
	h := sha256.Sum256([]byte(token))
	l.mu.Lock()
	defer l.mu.Unlock()
	exp, ok := l.once[h]
	delete(l.once, h)
	return ok && l.now().Before(exp)
}

// newSession starts a session and returns its id.
func (l *Logins) newSession() string {
	id := randomToken()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire()
	for len(l.sessions) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, exp := range l.sessions {
			if at.IsZero() || exp.Before(at) {
				oldest, at = k, exp
			}
		}
		delete(l.sessions, oldest)
	}
	l.sessions[sha256.Sum256([]byte(id))] = l.now().Add(sessionTTL)
	return id
}

func (l *Logins) valid(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	exp, ok := l.sessions[sha256.Sum256([]byte(id))]
	return ok && l.now().Before(exp)
}

func (l *Logins) end(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.sessions, sha256.Sum256([]byte(id)))
}

// expire drops what has expired; l.mu is held.
func (l *Logins) expire() {
	now := l.now()
	for _, m := range []map[[32]byte]time.Time{l.once, l.sessions} {
		for k, exp := range m {
			if !now.Before(exp) {
				delete(m, k)
			}
		}
	}
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// access checks each request against the rules above.
type access struct {
	token  string
	logins *Logins
	log    *slog.Logger
}

// bearer reports a request with the configured token.
func (a *access) bearer(c *gin.Context) bool {
	if a.token == "" {
		return false
	}
	scheme, got, _ := strings.Cut(c.GetHeader("Authorization"), " ")
	return strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1
}

func (a *access) session(c *gin.Context) bool {
	if a.logins == nil {
		return false
	}
	id, err := c.Cookie(cookieName)
	return err == nil && a.logins.valid(id)
}

func loopbackPeer(c *gin.Context) bool {
	host, _, err := net.SplitHostPort(c.Request.RemoteAddr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// mayChange is the context key set on a request allowed to change state.
const mayChange = "fleetmeter_may_change"

// readOnlyLoopback says why a change over open loopback is refused.
const readOnlyLoopback = "browser_login = false lets every local account read, not change: acknowledge and snooze on the host with `fleetmeter alerts ack|snooze` (the daemon's socket), or send the auth token"

func (a *access) check(c *gin.Context) {
	path := c.Request.URL.Path
	switch {
	case viaSocket(c), a.bearer(c), a.session(c):
		c.Set(mayChange, true)
	case path == "/login", path == "/logout":
	case path == "/healthz" || path == "/metrics":
		if !loopbackPeer(c) {
			a.refuse(c)
			return
		}
	case a.logins == nil && a.token == "" && loopbackPeer(c):
		if m := c.Request.Method; m != http.MethodGet && m != http.MethodHead {
			c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": readOnlyLoopback})
			return
		}
	default:
		a.refuse(c)
		return
	}
	c.Next()
}

// refuse sends a browser to the login page and tells a script what it lacks.
func (a *access) refuse(c *gin.Context) {
	if c.Request.Method == http.MethodGet && strings.Contains(c.GetHeader("Accept"), "text/html") {
		c.Redirect(http.StatusSeeOther, "/login")
		c.Abort()
		return
	}
	if a.token != "" {
		c.Header("WWW-Authenticate", `Bearer realm="fleetmeter"`)
	}
	c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "log in first: open the URL `fleetmeter login` prints, or send the bearer token"})
}

// routes adds the login and logout pages, and the socket's way to mint a
// login URL.
func (a *access) routes(r *gin.Engine, d Deps, elog *errorLog) {
	login := func(c *gin.Context, token string) {
		if a.logins == nil {
			c.Redirect(http.StatusSeeOther, "/") // no login needed here
			return
		}
		if token != "" && a.logins.redeem(token) {
			c.SetSameSite(http.SameSiteStrictMode)
			c.SetCookie(cookieName, a.logins.newSession(), int(sessionTTL.Seconds()), "/", "", false, true)
			a.log.Info("browser logged in", "peer", c.Request.RemoteAddr)
			c.Redirect(http.StatusSeeOther, "/")
			return
		}
		msg := ""
		if token != "" {
			msg = "That login token is unknown, used or expired: run `fleetmeter login` for a new one."
		}
		code := http.StatusOK
		if token != "" {
			code = http.StatusUnauthorized
		}
		c.Status(code)
		c.Header("Content-Type", "text/html; charset=utf-8")
		if err := loginPage.Execute(c.Writer, msg); err != nil {
			a.log.Warn("login page", "err", err)
		}
	}
	r.GET("/login", func(c *gin.Context) { login(c, c.Query("token")) })
	r.POST("/login", func(c *gin.Context) { login(c, c.PostForm("token")) })
	r.POST("/logout", func(c *gin.Context) {
		if id, err := c.Cookie(cookieName); err == nil && a.logins != nil {
			a.logins.end(id)
		}
		c.SetSameSite(http.SameSiteStrictMode)
		c.SetCookie(cookieName, "", -1, "/", "", false, true)
		c.Redirect(http.StatusSeeOther, "/login")
	})
	r.POST("/api/login-url", func(c *gin.Context) {
		if !viaSocket(c) || d.LoginURL == nil {
			c.JSON(http.StatusForbidden, gin.H{"error": "login URLs are handed out on the daemon's socket only (`fleetmeter login`)"})
			return
		}
		respond(c, elog, func() (gin.H, error) {
			u, err := d.LoginURL()
			return gin.H{"url": u}, err
		})
	})
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>fleetmeter: log in</title></head>
<body><main><h1>fleetmeter</h1>
{{if .}}<p role="alert">{{.}}</p>{{end}}
<p>Open the login URL that <code>fleetmeter serve</code> printed, or run <code>fleetmeter login</code> on the host
and open the URL it prints. Or paste its token here:</p>
<form method="post" action="/login"><label for="token">Login token</label>
<input id="token" name="token" type="password" autocomplete="off" required autofocus>
<button type="submit">Log in</button></form>
</main></body></html>
`))
