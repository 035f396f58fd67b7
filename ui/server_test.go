package ui

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

type fakeReports struct{}

func (fakeReports) Report(ctx context.Context, q rollup.Query) (rollup.Report, error) {
	switch q.Kind {
	case "monthly":
		return rollup.Report{}, errors.New("disk on fire at /secret/path")
	case "weekly":
		return rollup.Report{}, rollup.ErrBusy
	case "session":
		// The page asked for comes back as the session id.
		return rollup.Report{Kind: "session", Rows: []rollup.SessionRow{{SessionID: "limit " + itoa(q.Limit) + " offset " + itoa(q.Offset)}}}, nil
	}
	// The range comes back as a row's date; the model name is hostile.
	return rollup.Report{Kind: "daily", Rows: []rollup.DailyRow{{Date: storage.DayString(q.Since), Models: []string{`<script>alert(1)</script>`}}}}, nil
}
func (fakeReports) HostReport(ctx context.Context, q rollup.Query) (rollup.HostReport, error) {
	return rollup.HostReport{Host: []rollup.HostDayRow{{Date: "2026-04-01", Samples: 7}}}, nil
}
func (fakeReports) Advice(ctx context.Context, instanceType string) (rollup.Advice, error) {
	return rollup.Advice{Verdict: rollup.Hold}, nil
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

type fakeStatus struct{ problems []string }

func (f fakeStatus) Status(ctx context.Context) (Status, error) {
	return Status{Version: "1", Healthy: len(f.problems) == 0, Problems: f.problems}, nil
}
func (f fakeStatus) Problems() []string { return f.problems }

// served is a handler running on a real loopback listener and a real unix
// socket.
type served struct {
	base   string       // http://127.0.0.1:port
	socket *http.Client // talks to the socket; any URL host
}

// serveBoth runs the handler on both listeners until the test ends.
func serveBoth(t *testing.T, d Deps) served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "fmui")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	sln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if d.Listen == "" {
		d.Listen = ln.Addr().String()
	}
	if d.Reports == nil {
		d.Reports = fakeReports{}
	}
	if d.Status == nil {
		d.Status = fakeStatus{}
	}
	d.Log = slog.New(slog.DiscardHandler)
	d.Metrics = func(w io.Writer) { io.WriteString(w, "fleetmeter_up 1\n") }
	if d.Backup == nil {
		d.Backup = func() (string, error) { return tempFile(t, []byte("BOLTDB")), nil }
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := NewHandler(d)
	done := make(chan error, 2)
	go func() { done <- ServeTCP(ctx, ln, h, d.Log) }()
	go func() { done <- ServeSocket(ctx, sln, h, d.Log) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
	})
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	return served{base: "http://" + ln.Addr().String(), socket: client}
}

// request is one HTTP exchange; header "Host" sets the Host header.
func request(t *testing.T, client *http.Client, method, url string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func get(t *testing.T, url string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	return request(t, nil, http.MethodGet, url, header)
}

// The API on a single-user box that opted out of the browser login:
// loopback clients read without logging in.
func TestAPI(t *testing.T) {
	s := serveBoth(t, Deps{})
	tests := []struct {
		path   string
		header map[string]string
		code   int
		body   string
	}{
		{"/healthz", nil, 200, "ok"},
		{"/api/report/daily?since=2026-04-01", nil, 200, `"date":"2026-04-01"`},
		{"/api/report/daily", nil, 200, `\u003cscript\u003e`}, // untrusted names are escaped in JSON
		{"/api/report/bogus", nil, 400, `unknown report \"bogus\"`},
		{"/api/report/daily?since=2026-13-01", nil, 400, `want YYYY-MM-DD`},
		{"/api/report/daily?since=2026-02-01&until=2026-01-01", nil, 400, `is after`},
		{"/api/report/daily?tz=Mars/Olympus", nil, 400, `not an IANA zone`},
		{"/api/report/session", nil, 200, `"limit 200 offset 0"`}, // a page, not the whole history
		{"/api/report/session?limit=50&offset=100", nil, 200, `"limit 50 offset 100"`},
		{"/api/report/session?limit=5000", nil, 400, `limit \"5000\": want a whole number from 1 to 1000`},
		{"/api/report/session?limit=x", nil, 400, `limit \"x\": want a whole number`},
		{"/api/report/session?limit=0", nil, 400, `limit \"0\": want a whole number from 1 to 1000`}, // not "every row": the cap holds
		{"/api/report/session?limit=-1", nil, 400, `limit \"-1\"`},
		{"/api/report/session?offset=-5", nil, 400, `offset \"-5\": want a whole number, 0 or more`},
		{"/api/report/daily?top=0", nil, 400, `top \"0\": want a whole number above 0`},
		{"/api/report/monthly", nil, 500, "internal error"},
		{"/api/report/weekly", nil, 503, "busy"},
		{"/api/report/host", nil, 200, `"samples":7`},
		{"/api/advice", nil, 200, `"verdict":"hold"`},
		{"/api/nothing", nil, 404, "not found"},
		{"/metrics", nil, 200, "fleetmeter_up 1"},
		{"/api/backup", nil, 403, "socket"}, // the whole database: not for any loopback client
		{"/api/status", map[string]string{"Host": "evil.example:8767"}, 421, "unexpected Host"},
		{"/api/status", map[string]string{"Host": "localhost:8767"}, 200, `"version":"1"`},
		// The Host header parsed whole: exact names in any case, a numeric port.
		{"/api/status?h=suffix", map[string]string{"Host": "localhost:8767.evil.com"}, 421, "unexpected Host"},
		{"/api/status?h=dotted", map[string]string{"Host": "localhost.evil.com:8767"}, 421, "unexpected Host"},
		{"/api/status?h=ip-suffix", map[string]string{"Host": "127.0.0.1.evil.com"}, 421, "unexpected Host"},
		{"/api/status?h=empty-port", map[string]string{"Host": "localhost:"}, 421, "unexpected Host"},
		{"/api/status?h=big-port", map[string]string{"Host": "localhost:99999"}, 421, "unexpected Host"},
		{"/api/status?h=bracket-tail", map[string]string{"Host": "[::1]evil:8767"}, 421, "unexpected Host"},
		{"/api/status?h=upper", map[string]string{"Host": "LOCALHOST:8767"}, 200, `"version":"1"`},
		{"/api/status?h=mixed", map[string]string{"Host": "LocalHost"}, 200, `"version":"1"`},
		{"/api/status?h=v6", map[string]string{"Host": "[::1]:8767"}, 200, `"version":"1"`},
		{"/api/status?h=v4", map[string]string{"Host": "127.0.0.1"}, 200, `"version":"1"`},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			code, h, body := get(t, s.base+tc.path, tc.header)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("%s: %d %q, want %d containing %q", tc.path, code, body, tc.code, tc.body)
			}
			if strings.Contains(body, "/secret/path") {
				t.Error("internal error detail leaked")
			}
			if h.Get("Content-Security-Policy") == "" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("security headers missing")
			}
			if code == 503 && h.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
	// The socket may take a backup: its permissions decided who connects.
	if code, _, body := request(t, s.socket, http.MethodGet, "http://fleetmeter/api/backup", nil); code != 200 || body != "BOLTDB" {
		t.Errorf("backup over the socket: %d %q", code, body)
	}
}

func TestToken(t *testing.T) {
	s := serveBoth(t, Deps{Token: "t0ken"})
	for _, path := range []string{"/healthz", "/metrics"} {
		if code, _, _ := get(t, s.base+path, nil); code != 200 {
			t.Errorf("%s needs no token on loopback: %d", path, code)
		}
	}
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"Authorization": "t0ken"}} {
		if code, _, body := get(t, s.base+"/api/status", h); code != 401 || strings.Contains(body, "t0ken") {
			t.Errorf("header %v: %d %q, want 401 without the token in it", h, code, body)
		}
	}
	bearer := map[string]string{"Authorization": "Bearer t0ken"}
	if code, _, _ := get(t, s.base+"/api/status", bearer); code != 200 {
		t.Errorf("right token: %d", code)
	}
	if code, _, body := get(t, s.base+"/api/backup", bearer); code != 200 || body != "BOLTDB" {
		t.Errorf("backup with the token: %d %q", code, body)
	}
}

// Beyond loopback even /healthz and /metrics need the token.
func TestNonLoopbackPeer(t *testing.T) {
	h := NewHandler(Deps{Reports: fakeReports{}, Status: fakeStatus{}, Token: "t0ken", Listen: "0.0.0.0:8767",
		Log: slog.New(slog.DiscardHandler), Metrics: func(w io.Writer) { io.WriteString(w, "m 1\n") }})
	for _, tc := range []struct {
		path, auth string
		code       int
	}{{"/healthz", "", 401}, {"/metrics", "", 401}, {"/metrics", "Bearer t0ken", 200}, {"/api/status", "", 401}, {"/api/status", "Bearer t0ken", 200}} {
		req := httptest.NewRequest(http.MethodGet, "http://192.0.2.7:8767"+tc.path, nil)
		req.RemoteAddr = "192.0.2.1:40000"
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("%s (auth %q) from a remote peer: %d, want %d", tc.path, tc.auth, rec.Code, tc.code)
		}
	}
}

// The browser login: the API and the page need a session even on
// loopback; a one-time token from the socket buys one; it works once.
func TestLogin(t *testing.T) {
	logins := NewLogins(nil)
	var listen string
	s := serveBoth(t, Deps{Logins: logins, LoginURL: func() (string, error) {
		return "http://" + listen + "/login?token=" + logins.NewToken(), nil
	}})
	listen = strings.TrimPrefix(s.base, "http://")
	if code, _, _ := get(t, s.base+"/api/status", nil); code != 401 {
		t.Errorf("status without a session on loopback: %d", code)
	}
	if code, h, _ := get(t, s.base+"/", map[string]string{"Accept": "text/html"}); code != 303 || h.Get("Location") != "/login" {
		t.Errorf("the page without a session: %d → %q", code, h.Get("Location"))
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if code, _, _ := get(t, s.base+path, nil); code != 200 {
			t.Errorf("%s on loopback needs no login: %d", path, code)
		}
	}
	if code, _, body := get(t, s.base+"/login", nil); code != 200 || !strings.Contains(body, `<form method="post" action="/login">`) {
		t.Errorf("login page: %d %q", code, body)
	}
	// Only the socket hands out login URLs.
	if code, _, _ := request(t, nil, http.MethodPost, s.base+"/api/login-url", nil); code != 401 {
		t.Errorf("login URL over TCP: %d", code)
	}
	code, _, body := request(t, s.socket, http.MethodPost, "http://fleetmeter/api/login-url", nil)
	var minted struct{ URL string }
	if json.Unmarshal([]byte(body), &minted); code != 200 || !strings.HasPrefix(minted.URL, s.base+"/login?token=") {
		t.Fatalf("login URL over the socket: %d %q", code, body)
	}
	code, h, _ := get(t, minted.URL, nil)
	cookie := h.Get("Set-Cookie")
	if code != 303 || !strings.Contains(cookie, cookieName+"=") || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
		t.Fatalf("login: %d, cookie %q", code, cookie)
	}
	session := map[string]string{"Cookie": strings.Split(cookie, ";")[0]}
	if code, _, _ := get(t, s.base+"/api/status", session); code != 200 {
		t.Errorf("status with the session: %d", code)
	}
	if code, _, body := get(t, minted.URL, nil); code != 401 || !strings.Contains(body, "unknown, used or expired") {
		t.Errorf("the token a second time: %d %q", code, body)
	}
	if code, _, _ := get(t, s.base+"/api/status", map[string]string{"Cookie": cookieName + "=forged"}); code != 401 {
		t.Errorf("a forged session: %d", code)
	}
	if code, _, _ := get(t, s.base+"/api/backup", session); code != 403 {
		t.Errorf("backup with a browser session: %d", code)
	}
	if code, _, _ := request(t, nil, http.MethodPost, s.base+"/logout", map[string]string{"Cookie": session["Cookie"], "Sec-Fetch-Site": "same-origin", "Origin": s.base}); code != 303 {
		t.Errorf("logout: %d", code)
	}
	if code, _, _ := get(t, s.base+"/api/status", session); code != 401 {
		t.Errorf("status after logout: %d", code)
	}
}

// A page of another site cannot read anything, on any path, whatever the
// method: the browser's fetch metadata and Origin give it away.
func TestCrossSiteRefused(t *testing.T) {
	s := serveBoth(t, Deps{})
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"}, // another port of localhost is another origin
		{"Origin": "http://evil.example"},
		{"Origin": "null"},
	} {
		for _, path := range []string{"/api/report/user", "/healthz", "/metrics", "/login", "/"} {
			if code, _, _ := get(t, s.base+path, h); code != 403 {
				t.Errorf("%s with %v: %d, want 403", path, h, code)
			}
		}
	}
	for _, h := range []map[string]string{{"Sec-Fetch-Site": "same-origin", "Origin": s.base}, {"Sec-Fetch-Site": "none"}, nil} {
		if code, _, _ := get(t, s.base+"/api/report/user", h); code != 200 {
			t.Errorf("%v: %d, want 200", h, code)
		}
	}
}

// /healthz says what is wrong, with a status a monitor acts on.
func TestHealthzReflectsProblems(t *testing.T) {
	s := serveBoth(t, Deps{Status: fakeStatus{problems: []string{"ingest failing: no space left on device"}}})
	if code, _, body := get(t, s.base+"/healthz", nil); code != 503 || !strings.Contains(body, "no space left") {
		t.Errorf("healthz: %d %q", code, body)
	}
}

// A client stuck in a download does not keep the daemon from stopping, and
// stopping is not an error.
func TestShutdownWithStalledClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	started := make(chan struct{})
	h := NewHandler(Deps{Reports: fakeReports{}, Status: fakeStatus{}, Log: log, Listen: ln.Addr().String(), Token: "t",
		Metrics: func(io.Writer) {},
		Backup: func() (string, error) {
			close(started)
			return tempFile(t, make([]byte, 64<<20)), nil // more than the socket buffers take
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeTCP(ctx, ln, h, log) }()
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/api/backup", nil)
	req.Header.Set("Authorization", "Bearer t")
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			time.Sleep(time.Minute) // a client that never reads the body
			resp.Body.Close()
		}
	}()
	<-started
	time.Sleep(100 * time.Millisecond) // the handler is writing
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
}

// tempFile writes b to a new file the test removes.
func tempFile(t *testing.T, b []byte) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "backup")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return f.Name()
}

// The same failure of the same path is logged once, not at every poll.
func TestRepeatedFailuresLoggedOnce(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	h := NewHandler(Deps{Reports: fakeReports{}, Status: fakeStatus{}, Listen: "127.0.0.1:8767",
		Log:     slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) }), nil)),
		Metrics: func(io.Writer) {}})
	for range 20 {
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8767/api/report/monthly", nil)
		req.RemoteAddr = "127.0.0.1:40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 500 {
			t.Fatalf("code %d", rec.Code)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "api request failed"); n != 1 {
		t.Errorf("%d log lines for 20 identical failures, want 1", n)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// HEAD /healthz answers as GET does (uptime checkers probe with HEAD); a
// method a path does not take is 405 with Allow, not 404.
func TestHealthzMethods(t *testing.T) {
	s := serveBoth(t, Deps{Logins: nil})
	if code, _, body := request(t, http.DefaultClient, http.MethodHead, s.base+"/healthz", nil); code != 200 || body != "" {
		t.Errorf("HEAD /healthz: %d %q", code, body)
	}
	code, h, _ := request(t, http.DefaultClient, http.MethodDelete, s.base+"/healthz", nil)
	if code != 405 || !strings.Contains(h.Get("Allow"), "GET") {
		t.Errorf("DELETE /healthz: %d, Allow %q", code, h.Get("Allow"))
	}
	if code, _, _ := get(t, s.base+"/nope", nil); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

// Report filters, top and order come through the query string.
func TestReportQueryFilters(t *testing.T) {
	q, err := rollup.ParseQueryValues("agent", map[string][]string{"agent": {"main"}, "top": {"3"}, "order": {"asc"}, "since": {"20261101"}, "tz": {"europe/berlin"}})
	if err != nil || q.Filter.Agent != "main" || q.Top != 3 || q.Order != "asc" || q.TZ != "Europe/Berlin" || storage.DayString(q.Since) != "2026-11-01" {
		t.Errorf("%+v %v", q, err)
	}
	s := serveBoth(t, Deps{})
	if code, _, body := request(t, s.socket, http.MethodGet, "http://fleetmeter/api/report/agent?order=sideways", nil); code != 400 || !strings.Contains(body, "want asc or desc") {
		t.Errorf("bad order: %d %q", code, body)
	}
}
