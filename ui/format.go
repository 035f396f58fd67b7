package ui

import (
	"html/template"
	"net/url"
	"strconv"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
)

// Numbers for people, as the pages show them. The JS of the pages formats
// the same way (static/app.js, fmt).

// thousands puts commas between groups of three digits.
func thousands(n int64) string { return rollup.Thousands(n) }

// usd formats dollars, as every output does (rollup.USD).
func usd(v float64) string { return rollup.USD(v) }

// compact formats a count with k, M, B: 950, 12.3k, 12.3M, 1.2B.
func compact(n int64) string {
	v := float64(n)
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e9, "B"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= u.div {
			x := v / u.div
			prec := 1
			if x >= 100 {
				prec = 0
			}
			return sign + strconv.FormatFloat(x, 'f', prec, 64) + u.suffix
		}
	}
	return sign + strconv.FormatInt(int64(v), 10)
}

// pct formats a share: 12.3 %.
func pct(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " %" }

// change formats a change in percent with its direction: ▲ 12.3 %, ▼ 3.0 %;
// "new" when there was nothing before.
func change(p *float64) string {
	switch {
	case p == nil:
		return "new"
	case *p >= 0.05:
		return "▲ " + pct(*p)
	case *p <= -0.05:
		return "▼ " + pct(-*p)
	}
	return "= 0.0 %"
}

// changeClass is the CSS class of a change: up (more cost), down, flat.
func changeClass(p *float64) string {
	switch {
	case p == nil:
		return "new"
	case *p >= 0.05:
		return "up"
	case *p <= -0.05:
		return "down"
	}
	return "flat"
}

// bytesIEC formats a byte count: 1.2 GiB.
func bytesIEC(n uint64) string {
	v := float64(n)
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if v < 1024 || u == "TiB" {
			if u == "B" {
				return strconv.FormatFloat(v, 'f', 0, 64) + " B"
			}
			return strconv.FormatFloat(v, 'f', 1, 64) + " " + u
		}
		v /= 1024
	}
	return ""
}

// when formats an instant in the dashboard's zone: 2026-11-30 07:12.
func when(loc *time.Location) func(t time.Time) string {
	return func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.In(loc).Format("2006-01-02 15:04")
	}
}

// ago formats how long ago t was (rollup.Ago): 42s ago, 3m ago, 2h30m ago.
func ago(now func() time.Time) func(t time.Time) string {
	return func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return rollup.Ago(now().Sub(t)) + " ago"
	}
}

// link builds a URL of the pages from a path and name/value pairs, leaving
// out empty values. The values are untrusted names: they are query-escaped
// here, so the result is a safe URL.
func link(path string, kv ...string) template.URL {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return template.URL(path)
	}
	return template.URL(path + "?" + q.Encode())
}
