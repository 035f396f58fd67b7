package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/gin-gonic/gin"
)

// The pages are html/template, parsed once: a layout (navigation, badges,
// the demo note) around each page's "content". Every name from the data
// (agents, users, models, sessions) is untrusted text: the templates
// escape it, and the JS only ever sets textContent.

var pageNames = []string{"overview", "usage", "session", "host", "agents", "sources", "alerts", "sync", "audit", "error"}

type pageTemplate struct{ t *template.Template }

func parsePages(as *assets, loc *time.Location) (map[string]*pageTemplate, error) {
	funcs := template.FuncMap{
		"asset":     as.url,
		"usd":       usd,
		"compact":   compact,
		"thousands": func(n any) string { return thousands(toInt64(n)) },
		"pct":       pct,
		"change":    change,
		"changeCls": changeClass,
		"bytes":     bytesIEC,
		"when":      when(loc),
		"ago":       ago(time.Now),
		"link":      link,
		"verdict":   verdictText,
		"dur":       func(s float64) string { return rollup.Ago(time.Duration(s * float64(time.Second))) },
		"share": func(part, whole float64) string {
			if whole <= 0 {
				return "0"
			}
			return fmt.Sprintf("%.1f", 100*part/whole)
		},
		"add":  func(a, b int) int { return a + b },
		"u64":  func(f float64) uint64 { return uint64(max(f, 0)) },
		"unix": func(sec int64) time.Time { return time.Unix(sec, 0) },
		"f64": func(p *float64) float64 {
			if p == nil {
				return 0
			}
			return *p
		},
		"stamp":    stamp(loc),
		"syncWord": syncWord,
		"skips":    skipRows,
		"floats": func(s rollup.Series) string {
			parts := make([]string, len(s))
			for i, v := range s {
				parts[i] = strconv.FormatFloat(v, 'f', -1, 64)
			}
			return strings.Join(parts, ",")
		},
		"overrides": overrideLines,
		"divf": func(a float64, b int64) float64 {
			if b == 0 {
				return 0
			}
			return a / float64(b)
		},
		"dict": func(kv ...any) (map[string]any, error) {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("dict key %v is not a string", kv[i])
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
		// maxCost is the cost of a leaderboard's first (largest) row: bars
		// are drawn against it.
		"maxCost": func(l *rollup.Leaderboard) float64 {
			if l == nil || len(l.Rows) == 0 {
				return 0
			}
			return l.Rows[0].CostUSD
		},
	}
	out := map[string]*pageTemplate{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui template %s: %w", name, err)
		}
		out[name] = &pageTemplate{t: t}
	}
	return out, nil
}

func toInt64(n any) int64 {
	switch v := n.(type) {
	case int:
		return int64(v)
	case int64:
		return v
	case float64:
		return int64(v)
	}
	return 0
}

// page is what the layout reads; Data is the page's own.
type page struct {
	Title string
	Nav   string
	Demo  bool
	Login bool // a login session exists: offer to log out
	// MayChange: this request may change state (acknowledge, snooze);
	// false for a reader on open loopback (browser_login = false).
	MayChange   bool
	ReadOnlyWhy string
	Badges      badges
	TZ          string
	Data        any
}

// render executes a page into a buffer first, so that a template error is
// a clean 500 and not half a page.
func (h *dash) render(c *gin.Context, status int, name, title string, data any) {
	p := page{Title: title, Nav: name, Demo: h.d.Demo, Login: h.d.Logins != nil, Badges: h.badges(c), TZ: h.db.Location().String(), Data: data,
		MayChange: c.GetBool(mayChange), ReadOnlyWhy: readOnlyLoopback}
	var b bytes.Buffer
	if err := h.pages[name].t.Execute(&b, p); err != nil {
		h.log.Error("page failed", "page", name, "err", err)
		c.Data(http.StatusInternalServerError, "text/html; charset=utf-8", []byte("<!doctype html><title>fleetmeter</title><p>This page failed; see the fleetmeter log.</p>"))
		return
	}
	c.Data(status, "text/html; charset=utf-8", b.Bytes())
}

// pageError shows what went wrong: a bad query says why (400), anything
// else is a 500 whose detail goes to the log only.
func (h *dash) pageError(c *gin.Context, nav string, err error) {
	status, msg := http.StatusInternalServerError, "Something failed reading the data; the fleetmeter log says what."
	switch {
	case errors.Is(err, rollup.ErrBadQuery), errors.Is(err, ErrBadRequest):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, rollup.ErrNotFound), errors.Is(err, ErrNotFound):
		status, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, rollup.ErrBusy):
		status, msg = http.StatusServiceUnavailable, "The daemon is busy computing other reports: reload in a moment."
	default:
		h.log.Error("page failed", "page", nav, "err", err)
	}
	p := page{Title: "Error", Nav: nav, Demo: h.d.Demo, Login: h.d.Logins != nil, TZ: h.db.Location().String(), Data: msg}
	var b bytes.Buffer
	if err := h.pages["error"].t.Execute(&b, p); err != nil {
		c.String(status, "%s\n", msg)
		return
	}
	c.Data(status, "text/html; charset=utf-8", b.Bytes())
}

// skipRow is one skip reason on the Sources page.
type skipRow struct {
	Name, Meaning string
	N             int64
	Bad           bool // worth a look when not zero
}

func skipRows(k storage.Skips) []skipRow {
	return []skipRow{
		{"duplicate", "a copy of a call already counted (forks, checkpoints, rewrites, archives)", k.Duplicate, false},
		{"not_model_call", "delivery mirrors and injected messages (provider openclaw)", k.NotModelCall, false},
		{"zero_usage", "calls with no tokens at all (errors, aborts)", k.ZeroUsage, false},
		{"partial_line", "a last line without its end, in a one-shot read", k.PartialLine, false},
		{"malformed", "lines that are not valid JSON or lack what a call needs", k.Malformed, true},
		{"oversize_line", "lines over the size cap (huge images), not read", k.OversizeLine, true},
		{"unreadable_file", "files that could not be opened or read", k.UnreadableFile, true},
		{"unsupported", "stores or lines of a format this version does not read", k.Unsupported, true},
		{"unrecognized_usage", "usage fields no reader understands (format drift)", k.UnrecognizedUsage, true},
		{"too_old", "calls older than the ledger's retention", k.TooOld, false},
	}
}

// overrideLines is the price-file entries to fill in for unpriced models.
func overrideLines(models []rollup.UnpricedModel) string {
	var b strings.Builder
	b.WriteString("{\n")
	for i, m := range models {
		name, _ := json.Marshal(m.Model)
		fmt.Fprintf(&b, `  %s: {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0}`, name)
		if i < len(models)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}")
	return b.String()
}

// stamp shows an RFC 3339 time of the API as people read it, in loc:
// 2026-11-30 07:12:05.
func stamp(loc *time.Location) func(s string) string {
	return func(s string) string {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return s
		}
		return t.In(loc).Format(time.DateTime)
	}
}

// syncWord says a sync state in words.
func syncWord(state string) string {
	switch state {
	case "not_yet":
		return "not run yet"
	case "config_error":
		return "configuration error"
	case "schema_mismatch":
		return "schema mismatch"
	}
	return state
}

// verdictText says an advice verdict in words.
func verdictText(v rollup.Verdict) string {
	switch v {
	case rollup.ScaleUp:
		return "Scale up"
	case rollup.ScaleDown:
		return "Scale down"
	case rollup.Investigate:
		return "Investigate"
	case rollup.Hold:
		return "Hold"
	}
	return string(v)
}
