package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"
)

// Notification is what receivers get. The JSON webhook posts it as is
// (payload version 1, documented in the README); Shoutrrr services get
// Text. Figures that do not apply to the rule are null.
type Notification struct {
	Version  int    `json:"version"` // 1
	Event    string `json:"event"`   // firing, resolved, reminder, test, digest
	Rule     string `json:"rule"`
	Type     string `json:"type"`
	Scope    string `json:"scope"`
	Instance string `json:"instance"` // what in the rule fired: a tier ("80%"), an agent, a session, a model and day, a block
	Severity string `json:"severity"` // warning, critical (a budget crossed, a host or pipeline failure), info (digests, tests, resolves)
	Summary  string `json:"summary"`  // one line, names escaped

	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Unit      string  `json:"unit"` // usd, usd_per_hour, percent, load_per_core, days, tokens, minutes, count

	AmountUSD         *float64   `json:"amount_usd"`          // spent so far (budgets, sessions, runaway: the last hour)
	BudgetUSD         *float64   `json:"budget_usd"`          // the budget
	PercentUsed       *float64   `json:"percent_used"`        // amount / budget × 100
	ProjectedTotalUSD *float64   `json:"projected_total_usd"` // at the current burn rate, by the period's end
	ProjectedAt       *time.Time `json:"projected_at"`        // when the budget (or quota) is crossed at that rate
	Period            string     `json:"period"`              // the budget's period ("2026-04-10", "2026-W15", "2026-04"), a block's start

	Since    time.Time `json:"since"` // when the alert started firing
	At       time.Time `json:"at"`    // when this notification was made
	URL      string    `json:"url"`   // the UI's alerts page
	Host     string    `json:"host"`  // the fleetmeter instance id
	Text     string    `json:"text"`  // the message as chat services show it
	Attempts int       `json:"-"`
}

// title is the first line of a message.
func (n *Notification) title() string {
	tag := map[string]string{"firing": "FIRING", "resolved": "RESOLVED", "reminder": "STILL FIRING", "test": "TEST", "digest": "DIGEST"}[n.Event]
	if n.Event == "digest" {
		return fmt.Sprintf("fleetmeter %s", n.Summary)
	}
	return fmt.Sprintf("[%s] %s", tag, n.Rule)
}

// render fills Text: a title line, the summary, the link.
func (n *Notification) render() {
	var b strings.Builder
	b.WriteString(n.title())
	if n.Event != "digest" {
		b.WriteString("\n")
		b.WriteString(n.Summary)
	}
	if n.Text != "" { // a digest's body
		b.WriteString("\n")
		b.WriteString(n.Text)
	}
	if n.URL != "" {
		b.WriteString("\n")
		b.WriteString(n.URL)
	}
	n.Text = b.String()
}

// Notifier delivers notifications to one receiver.
type Notifier interface {
	Name() string
	// Masked is the receiver for display: scheme and host, no tokens.
	Masked() string
	// Send makes one attempt; it returns when ctx ends. Errors never hold
	// the URL's secrets.
	Send(ctx context.Context, n *Notification) error
}

// NewNotifier builds the notifier of a [[notifiers]] entry whose URL is
// resolved (url_file read).
func NewNotifier(c NotifierConfig) (Notifier, error) {
	if err := checkNotifierURL(c.URL); err != nil {
		return nil, fmt.Errorf("notifier %q: url %w", c.Name, err)
	}
	red := newRedactor(c.URL)
	if target, ok := strings.CutPrefix(c.URL, "json+"); ok {
		return &webhook{name: c.Name, url: target, red: red, client: &http.Client{}}, nil
	}
	return &shoutrrrNotifier{name: c.Name, url: c.URL, red: red}, nil
}

// checkNotifierURL validates a receiver URL without letting it into the
// error.
func checkNotifierURL(raw string) error {
	if raw == "" {
		return errors.New("is empty (set url, or url_file to read it from a file)")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("%s: not a URL", MaskURL(raw))
	}
	if target, ok := strings.CutPrefix(raw, "json+"); ok {
		t, err := url.Parse(target)
		if err != nil || (t.Scheme != "http" && t.Scheme != "https") || t.Host == "" {
			return fmt.Errorf("%s: want json+https://host/path (or json+http://)", MaskURL(raw))
		}
		return nil
	}
	if _, err := (&router.ServiceRouter{}).Locate(raw); err != nil {
		return fmt.Errorf("%s: not a valid Shoutrrr service URL (%s)", MaskURL(raw), newRedactor(raw).clean(err.Error()))
	}
	return nil
}

// MaskURL shows a receiver URL without its secrets: the scheme and host;
// user info, path and query are replaced.
func MaskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "***"
	}
	out := u.Scheme + "://"
	if u.User != nil {
		out += "***@"
	}
	if hostShown(u) {
		out += u.Host
	} else {
		out += "***"
	}
	if u.Path != "" && u.Path != "/" || u.Opaque != "" {
		out += "/***"
	}
	if u.RawQuery != "" {
		out += "?***"
	}
	return out
}

// hostShown says whether a URL's host reads as a server name (a dotted
// name, an IP, localhost) rather than a token: Shoutrrr puts tokens in the
// host of some services (slack://TOKEN/…).
func hostShown(u *url.URL) bool {
	h := u.Hostname()
	return h == "localhost" || net.ParseIP(h) != nil || strings.Contains(h, ".") && !strings.ContainsAny(h, "@")
}

// redactor removes a URL's secret parts from text (errors from HTTP
// clients and Shoutrrr quote URLs).
type redactor struct{ secrets []string }

func newRedactor(raw string) redactor {
	var s []string
	add := func(v string) {
		if len(v) >= 4 {
			s = append(s, v, url.PathEscape(v), url.QueryEscape(v))
		}
	}
	add(raw)
	add(strings.TrimPrefix(raw, "json+"))
	if u, err := url.Parse(strings.TrimPrefix(raw, "json+")); err == nil {
		if u.User != nil {
			add(u.User.String())
			add(u.User.Username())
			p, _ := u.User.Password()
			add(p)
		}
		if !hostShown(u) {
			add(u.Host)
		}
		add(u.EscapedPath())
		add(u.Path)
		for _, seg := range strings.Split(u.Path, "/") {
			add(seg)
		}
		add(u.RawQuery)
		for _, vs := range u.Query() {
			for _, v := range vs {
				add(v)
			}
		}
		add(u.Opaque)
		add(u.Fragment)
	}
	sort.Slice(s, func(i, j int) bool { return len(s[i]) > len(s[j]) }) // the whole before its parts
	return redactor{s}
}

func (r redactor) clean(text string) string {
	for _, s := range r.secrets {
		text = strings.ReplaceAll(text, s, "***")
	}
	return text
}

// webhook posts the Notification as JSON.
type webhook struct {
	name, url string
	red       redactor
	client    *http.Client
}

func (w *webhook) Name() string   { return w.name }
func (w *webhook) Masked() string { return MaskURL("json+" + w.url) }

func (w *webhook) Send(ctx context.Context, n *Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return errors.New(w.red.clean(err.Error()))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fleetmeter-alerts/1")
	resp, err := w.client.Do(req)
	if err != nil {
		return errors.New(w.red.clean(err.Error()))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// shoutrrrNotifier sends Text through a Shoutrrr service. A service is
// made per message: attempts may overlap (a hung one and its retry).
type shoutrrrNotifier struct {
	name, url string
	red       redactor
}

func (s *shoutrrrNotifier) Name() string   { return s.name }
func (s *shoutrrrNotifier) Masked() string { return MaskURL(s.url) }

func (s *shoutrrrNotifier) Send(ctx context.Context, n *Notification) error {
	svc, err := (&router.ServiceRouter{}).Locate(s.url)
	if err != nil {
		return errors.New(s.red.clean(err.Error()))
	}
	// Shoutrrr's Send takes no context: it runs on its own and its
	// services time out by themselves (10 s); we stop waiting at ctx's end.
	done := make(chan error, 1)
	go func() { done <- svc.Send(n.Text, nil) }()
	select {
	case err := <-done:
		if err != nil {
			return errors.New(s.red.clean(err.Error()))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no answer: %w", ctx.Err())
	}
}
