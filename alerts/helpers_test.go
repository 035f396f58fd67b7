package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// fleet is a database in a temp dir with helpers to write history.
type fleet struct {
	t  testing.TB
	db *storage.DB
	n  int
}

func newFleet(t testing.TB, loc *time.Location) *fleet {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "f.db"), storage.Options{Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("integrity check: %v", err)
		}
		db.Close()
	})
	return &fleet{t: t, db: db}
}

// call is one priced model call.
func (f *fleet) call(ts time.Time, agent string, usd float64) storage.Usage {
	f.n++
	return storage.Usage{TS: ts.UnixMilli(), Source: storage.SourceOpenClaw, Agent: agent, SessionID: "s-" + agent,
		User: "telegram:" + agent, Provider: "anthropic", Model: "claude-sonnet-4-6", Input: 1000, Output: 100,
		Cost: storage.Cost{Total: usd}, CostSource: storage.CostTranscript, DedupeKey: fmt.Sprintf("k%d", f.n)}
}

func (f *fleet) add(calls ...storage.Usage) {
	f.t.Helper()
	if _, err := f.db.Apply(&storage.Batch{Records: calls}); err != nil {
		f.t.Fatal(err)
	}
}

// spend writes n calls of usd each for agent, evenly spread over [from, to).
func (f *fleet) spend(agent string, from, to time.Time, n int, usd float64) {
	f.t.Helper()
	var calls []storage.Usage
	step := to.Sub(from) / time.Duration(n)
	for i := range n {
		calls = append(calls, f.call(from.Add(time.Duration(i)*step), agent, usd))
	}
	f.add(calls...)
}

// receiver is a loopback stand-in for a notification service: it records
// every request. failures makes the next requests answer 500; hang makes
// them wait until released (or the client gives up).
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	reqs     []request
	failures int
	failIf   func(body string) bool
	hang     chan struct{}
	arrived  chan struct{}
}

type request struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{arrived: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		hang, fail := r.hang, r.failures > 0 || (r.failIf != nil && r.failIf(string(body)))
		if r.failures > 0 {
			r.failures--
		}
		r.reqs = append(r.reqs, request{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Clone(), string(body)})
		r.mu.Unlock()
		select {
		case r.arrived <- struct{}{}:
		default:
		}
		if hang != nil {
			select {
			case <-hang:
			case <-req.Context().Done():
				return
			}
		}
		if fail {
			http.Error(w, "receiver failure", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		// What Gotify and Mattermost answer; ntfy and webhooks ignore it.
		io.WriteString(w, `{"id":1}`)
	}))
	t.Cleanup(func() {
		r.mu.Lock()
		if r.hang != nil {
			close(r.hang)
			r.hang = nil
		}
		r.mu.Unlock()
		r.srv.Close()
	})
	return r
}

func (r *receiver) url() string { return r.srv.URL } // http://127.0.0.1:port

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

// notifications decodes the JSON webhook bodies received.
func (r *receiver) notifications(t testing.TB) []Notification {
	t.Helper()
	var out []Notification
	for _, q := range r.requests() {
		var n Notification
		if err := json.Unmarshal([]byte(q.Body), &n); err != nil {
			t.Fatalf("webhook body %q: %v", q.Body, err)
		}
		out = append(out, n)
	}
	return out
}

// events lists "event rule instance" of the notifications received.
func (r *receiver) events(t testing.TB) []string {
	var out []string
	for _, n := range r.notifications(t) {
		out = append(out, strings.TrimSpace(n.Event+" "+n.Rule+" "+n.Instance))
	}
	return out
}

// engine builds an engine from TOML settings on f's database. "HOOK" in
// the TOML is replaced by the receiver's URL.
func (f *fleet) engine(cfg string, hook *receiver, deps ...func(*Deps)) *Engine {
	f.t.Helper()
	if hook != nil {
		cfg = strings.ReplaceAll(cfg, "HOOK", hook.url())
	}
	var s Settings
	md, err := toml.Decode(cfg, &s)
	if err != nil {
		f.t.Fatal(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		f.t.Fatalf("undecoded keys %v", und)
	}
	d := Deps{Data: f.db, State: f.db, Notifiers: map[string]Notifier{}, InstanceID: "test-host", UIURL: "http://127.0.0.1:8767/alerts",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, n := range s.Notifiers {
		nf, err := NewNotifier(n)
		if err != nil {
			f.t.Fatal(err)
		}
		d.Notifiers[n.Name] = nf
	}
	for _, fn := range deps {
		fn(&d)
	}
	e, err := New(s, d)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// step runs one round and waits for its deliveries.
func step(t testing.TB, e *Engine, now time.Time) Snapshot {
	t.Helper()
	if err := e.Step(context.Background(), now); err != nil {
		t.Fatalf("step at %s: %v", now, err)
	}
	e.WaitDeliveries()
	return e.Snapshot()
}

// rule finds a rule in a snapshot.
func ruleOf(t testing.TB, s Snapshot, name string) RuleStatus {
	t.Helper()
	for _, r := range s.Rules {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no rule %q in %+v", name, s.Rules)
	return RuleStatus{}
}

func instance(r RuleStatus, key string) *AlertState {
	for i := range r.Instances {
		if r.Instances[i].Key == key {
			return &r.Instances[i]
		}
	}
	return nil
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// logBuffer captures a logger's output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const hookNotifier = `
[[notifiers]]
name = "hook"
url = "json+HOOK/alerts"
`

// reportsOf is the read model over db, for digests.
func reportsOf(db *storage.DB) rollup.Reader {
	return rollup.NewReader(db, rollup.ReaderConfig{Host: db})
}
