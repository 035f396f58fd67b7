package ui

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

type fakeReports struct{}

func (fakeReports) Report(ctx context.Context, q rollup.Query) (rollup.Report, error) {
	if q.Kind == "monthly" {
		return rollup.Report{}, errors.New("disk on fire at /secret/path")
	}
	// The range comes back as a row's date; the agent name is hostile.
	return rollup.Report{Kind: "daily", Rows: []rollup.DailyRow{{Date: storage.DayString(q.Since), Models: []string{`<script>alert(1)</script>`}}}}, nil
}
func (fakeReports) HostReport(ctx context.Context, q rollup.Query) (rollup.HostReport, error) {
	return rollup.HostReport{Host: []rollup.HostDayRow{{Date: "2026-04-01", Samples: 7}}}, nil
}
func (fakeReports) Advice(ctx context.Context) (rollup.Advice, error) {
	return rollup.Advice{Verdict: rollup.Hold}, nil
}

type fakeStatus struct{}

func (fakeStatus) Status(ctx context.Context) (Status, error) { return Status{Version: "1"}, nil }

// serve runs the handler on a real loopback listener.
func serve(t *testing.T, d Deps) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if d.Listen == "" {
		d.Listen = ln.Addr().String()
	}
	d.Reports, d.Status = fakeReports{}, fakeStatus{}
	d.Log = slog.New(slog.DiscardHandler)
	d.Metrics = func(w io.Writer) { io.WriteString(w, "fleetmeter_up 1\n") }
	d.Backup = func(w io.Writer) (int64, error) { n, err := io.WriteString(w, "BOLTDB"); return int64(n), err }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, NewHandler(d), d.Log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestAPI(t *testing.T) {
	base := serve(t, Deps{LocalToken: "l0cal"})
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
		{"/api/report/monthly", nil, 500, "internal error"},
		{"/api/report/host", nil, 200, `"samples":7`},
		{"/api/advice", nil, 200, `"verdict":"hold"`},
		{"/api/nothing", nil, 404, "not found"},
		{"/metrics", nil, 200, "fleetmeter_up 1"},
		{"/api/backup", nil, 403, "local token"},
		{"/api/backup", map[string]string{"X-Fleetmeter-Local-Token": "wrong"}, 403, "local token"},
		{"/api/backup", map[string]string{"X-Fleetmeter-Local-Token": "l0cal"}, 200, "BOLTDB"},
		{"/api/status", map[string]string{"Host": "evil.example:8767"}, 421, "unexpected Host"},
		{"/api/status", map[string]string{"Host": "localhost:8767"}, 200, `"version":"1"`},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			code, h, body := get(t, base+tc.path, tc.header)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("%s: %d %q, want %d containing %q", tc.path, code, body, tc.code, tc.body)
			}
			if strings.Contains(body, "/secret/path") {
				t.Error("internal error detail leaked")
			}
			if h.Get("Content-Security-Policy") == "" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("security headers missing")
			}
		})
	}
}

func TestToken(t *testing.T) {
	base := serve(t, Deps{Token: "t0ken"})
	if code, _, _ := get(t, base+"/healthz", nil); code != 200 {
		t.Errorf("healthz needs no token: %d", code)
	}
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"Authorization": "t0ken"}} {
		if code, _, body := get(t, base+"/api/status", h); code != 401 || strings.Contains(body, "t0ken") {
			t.Errorf("header %v: %d %q, want 401 without the token in it", h, code, body)
		}
	}
	if code, _, _ := get(t, base+"/api/status", map[string]string{"Authorization": "Bearer t0ken"}); code != 200 {
		t.Errorf("right token: %d", code)
	}
	if code, _, _ := get(t, base+"/metrics", nil); code != 401 {
		t.Errorf("/metrics without token: %d", code)
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
	h := NewHandler(Deps{Reports: fakeReports{}, Status: fakeStatus{}, Log: log, Listen: ln.Addr().String(), LocalToken: "t",
		Metrics: func(io.Writer) {},
		Backup: func(w io.Writer) (int64, error) {
			close(started)
			select {} // a transaction that never ends, as with a client that never reads
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, log) }()
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/api/backup", nil)
	req.Header.Set("X-Fleetmeter-Local-Token", "t")
	go http.DefaultClient.Do(req)
	<-started
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
