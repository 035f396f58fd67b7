package appliance

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/fleetmeter/fleetmeter/rollup"
)

// dollars reads an amount as the pages show it: $1,234.56.
func dollars(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(strings.NewReplacer("$", "", ",", "").Replace(s), 64)
	if err != nil {
		t.Fatalf("amount %q: %v", s, err)
	}
	return v
}

// Every page, light and dark, in a real browser, behind the login: no
// console error, no CSP violation, charts painted; the range selector
// changes the figures; drill-down reaches one session's calls; an agent
// named as markup shows as text; an export downloads the rows shown.
func TestPagesInABrowser(t *testing.T) {
	b := newBrowser(t)
	app, _ := uiDaemon(t)
	base := "http://" + app.Addr().String()

	// Without a session the pages send the browser to the login page.
	b.open(base + "/usage")
	if !strings.Contains(b.eval(`location.pathname`), "/login") {
		t.Fatalf("without a login the usage page showed %s", b.eval(`location.href`))
	}
	u, err := app.loginURL()
	if err != nil {
		t.Fatal(err)
	}
	b.open(u)
	if got := b.eval(`location.pathname`); got != "/" {
		t.Fatalf("after the login URL the browser is at %s", got)
	}
	b.problems()

	// The figures the pages draw live read as the server and the CLI
	// print them: the JS money rule is rollup.USD, step by step.
	for _, v := range []float64{0, 0.125, 1.005, 0.0042, 0.00996, 0.00004, 0.999, 1234.5, 1234567.891, -3.2, -0.004, 0.015, 2.675} {
		if got, want := b.eval(fmt.Sprintf(`window.fleetmeterFormat.usd(%v)`, v)), rollup.USD(v); got != want {
			t.Errorf("the pages' usd(%v) = %s, rollup.USD = %s", v, got, want)
		}
	}

	pages := []struct{ name, path, heading string }{
		{"overview", "/", "Overview"},
		{"usage", "/usage?range=30d", "Usage"},
		{"usage-today", "/usage?range=today", "Usage"},
		{"host", "/host?range=7d", "Host"},
		{"agents", "/agents?range=30d", "Agents"},
		{"sources", "/sources", "Sources"},
		{"alerts", "/alerts", "Alerts"},
		{"sync", "/sync", "Upstream sync"},
		{"audit", "/audit", "Security audit"},
	}
	for _, dark := range []bool{false, true} {
		b.theme(dark)
		for _, p := range pages {
			b.open(base + p.path)
			if h := b.text("h1"); h != p.heading {
				t.Errorf("%s: heading %q, want %q", p.path, h, p.heading)
			}
			if b.eval(`String(document.querySelectorAll('[data-chart]').length)`) != "0" {
				b.paintedCanvases(p.path)
			}
			b.noProblems(p.path)
			name := p.name
			if dark {
				name += "-dark"
			}
			b.screenshot(name)
		}
	}
	b.theme(false)

	// The range selector changes the figures.
	b.open(base + "/usage?range=90d")
	cost90 := b.text("#total-cost")
	b.click(`nav.ranges a[href*="range=7d"]`)
	cost7 := b.text("#total-cost")
	if cost7 == cost90 || !strings.Contains(b.eval(`location.search`), "range=7d") {
		t.Errorf("the 7d range shows %s, the 90d %s", cost7, cost90)
	}

	// Drill-down: the top agent, its sessions, one session's calls.
	b.click(`#agents tbody tr:nth-child(2) td.name a`)
	if !strings.HasPrefix(b.text("h1"), "Agent ") || b.text("#sessions tbody tr:first-child td:nth-child(2)") == "" {
		t.Fatalf("drill-down to an agent: %q", b.text("main"))
	}
	b.screenshot("usage-agent")
	b.click(`#sessions tbody tr:first-child td:nth-child(2) a`)
	if !strings.HasPrefix(b.text("h1"), "Session") || b.eval(`String(document.querySelectorAll('#calls tbody tr').length)`) == "0" {
		t.Fatalf("drill-down to a session: %q", b.text("main"))
	}
	b.noProblems("drill-down")
	b.screenshot("session")

	// A name that is markup is text everywhere.
	for _, path := range []string{"/usage?range=30d", "/agents?range=30d", "/usage?range=30d&agent=" + xssAgent} {
		b.open(base + strings.ReplaceAll(path, xssAgent, "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"))
		if !strings.Contains(b.text("main"), xssAgent) {
			t.Errorf("%s does not show the agent named %s as text", path, xssAgent)
		}
		if n := b.eval(`String(document.querySelectorAll('img[src="x"]').length)`); n != "0" {
			t.Errorf("%s: the name became %s img elements", path, n)
		}
		b.noProblems(path)
	}

	// The export downloads the rows shown.
	b.open(base + "/usage?range=30d")
	shown := strings.Split(b.eval(`Array.from(document.querySelectorAll('#agents tbody tr')).map(function (r) {
		return r.querySelector('td.name a').textContent.trim() + '|' + r.querySelector('td:nth-child(3)').textContent.trim(); }).join('\n')`), "\n")
	rows := readCSV(t, b.download(`#agents .exports a[href*="format=csv"]`, "fleetmeter-top-agent"))
	if len(rows) != len(shown)+1 {
		t.Fatalf("the CSV has %d rows for %d shown", len(rows)-1, len(shown))
	}
	for i, r := range rows[1:] {
		name, cost, _ := strings.Cut(shown[i], "|")
		csvCost, err := strconv.ParseFloat(r[12], 64)
		if err != nil || !strings.Contains(name, strings.TrimPrefix(r[0], "'")) || math.Abs(dollars(t, cost)-math.Round(csvCost*100)/100) > 0.005 {
			t.Errorf("CSV row %d %q %s, shown %q %s", i, r[0], r[12], name, cost)
		}
	}

	// By keyboard: the first Tab reaches the skip link, which leads to the
	// page's content; the next ones walk the navigation.
	b.open(base + "/usage?range=7d")
	if err := chromedp.Do(b.ctx, chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	if got := b.eval(`document.activeElement.textContent`); got != "Skip to content" {
		t.Errorf("the first Tab focuses %q", got)
	}
	if err := chromedp.Do(b.ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	if got := b.eval(`document.activeElement.id`); got != "main" {
		t.Errorf("the skip link leads to %q", got)
	}
	var order []string
	b.eval(`document.querySelector('.skip').focus(), ''`)
	for range 4 {
		if err := chromedp.Do(b.ctx, chromedp.KeyEvent("\t")); err != nil {
			t.Fatal(err)
		}
		order = append(order, b.eval(`document.activeElement.textContent.trim()`))
	}
	if strings.Join(order, ",") != "fleetmeter,Overview,Usage,Host" {
		t.Errorf("Tab walks %q", order)
	}

	// A phone through an SSH tunnel: the pages fit 390 pixels.
	b.viewport(390, 844, true)
	for _, p := range []struct{ name, path string }{{"phone-overview", "/"}, {"phone-usage", "/usage?range=7d"}} {
		b.open(base + p.path)
		if w := b.eval(`String(document.documentElement.scrollWidth)`); w != "390" {
			t.Errorf("%s is %s pixels wide on a 390-pixel phone", p.path, w)
		}
		b.noProblems(p.path)
		b.screenshot(p.name)
	}
}
