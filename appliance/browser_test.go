package appliance

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The pages in a real browser: Debian's chromium, headless, driven by
// chromedp. scripts/test installs chromium; without it the test skips,
// unless FLEETMETER_TEST_REQUIRE_CHROMIUM is set (CI), where it fails.

// watchScript runs before every page's own scripts: it keeps the page's
// errors, CSP violations and dialogs where the test reads them.
const watchScript = `
window.__problems = [];
addEventListener('error', function (e) {
  window.__problems.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || 'resource'));
}, true);
addEventListener('unhandledrejection', function (e) { window.__problems.push('rejection: ' + e.reason); });
addEventListener('securitypolicyviolation', function (e) {
  window.__problems.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI);
});
(function () {
  var orig = console.error;
  console.error = function () { window.__problems.push('console.error: ' + Array.prototype.join.call(arguments, ' ')); orig.apply(console, arguments); };
})();
window.alert = function (m) { window.__problems.push('alert: ' + m); };
`

// browserSession is a headless chromium with a tab, its console's errors
// collected.
type browserSession struct {
	ctx      context.Context
	t        testing.TB
	mu       sync.Mutex
	logged   []string // browser log entries of level error
	dialogs  []string
	downDir  string
	shotsDir string
}

func newBrowser(t testing.TB) *browserSession {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("FLEETMETER_TEST_REQUIRE_CHROMIUM") != "" {
			t.Fatal("chromium is not installed (scripts/testdeps installs it from Debian)")
		}
		t.Skip("chromium is not installed: the browser tests skip (scripts/testdeps installs it)")
	}
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	b := &browserSession{ctx: ctx, t: t, downDir: t.TempDir(), shotsDir: screenshotDir(t)}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, struct{}{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watchScript}); err != nil {
		t.Fatal(err)
	}
	allow := true
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: b.downDir, EventsEnabled: &allow}); err != nil {
		t.Fatal(err)
	}
	entries := chromedp.Events(ctx, cdplog.EntryAdded)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError {
				b.mu.Lock()
				b.logged = append(b.logged, ev.Entry.Text+" "+ev.Entry.URL)
				b.mu.Unlock()
			}
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Message)
			b.mu.Unlock()
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return b
}

// screenshotDir is where the screenshots go: FLEETMETER_TEST_SCREENSHOTS, else
// a folder in the temp dir; the test says which.
func screenshotDir(t testing.TB) string {
	dir := os.Getenv("FLEETMETER_TEST_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "fleetmeter-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// open loads url and waits for its charts (when it has any) to draw.
func (b *browserSession) open(url string) {
	b.t.Helper()
	ctx, cancel := b.bounded()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
	b.waitCharts(url)
}

func (b *browserSession) waitCharts(what string) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-chart]:not([data-drawn]):not(:has(.chart-empty))').length`))
		if err != nil {
			b.t.Fatalf("%s: %v", what, err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: %d charts did not draw", what, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// problems are the page's errors, CSP violations, dialogs and the
// browser's error log since the last call.
func (b *browserSession) problems() []string {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`window.__problems || []`))
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	got = append(got, b.logged...)
	for _, d := range b.dialogs {
		got = append(got, "dialog: "+d)
	}
	b.logged, b.dialogs = nil, nil
	return got
}

func (b *browserSession) noProblems(what string) {
	b.t.Helper()
	if p := b.problems(); len(p) > 0 {
		b.t.Errorf("%s: %q", what, p)
	}
}

// bounded is b's tab with a deadline: a query for an element that never
// comes fails instead of waiting for the test's timeout.
func (b *browserSession) bounded() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, 10*time.Second)
}

func (b *browserSession) text(sel string) string {
	b.t.Helper()
	ctx, cancel := b.bounded()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browserSession) eval(js string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return s
}

// theme switches prefers-color-scheme.
func (b *browserSession) theme(dark bool) {
	b.t.Helper()
	v := "light"
	if dark {
		v = "dark"
	}
	if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}}}); err != nil {
		b.t.Fatal(err)
	}
}

// viewport sets the window's width and height (a phone: 390 × 844).
func (b *browserSession) viewport(w, h int64, mobile bool) {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: w, Height: h, DeviceScaleFactor: 1, Mobile: mobile}); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browserSession) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shotsDir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// click clicks the element and waits for the page it leads to.
func (b *browserSession) click(sel string) {
	b.t.Helper()
	ctx, cancel := b.bounded()
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		b.t.Fatalf("click %s: %v", sel, err)
	}
	b.waitCharts(sel)
}

// download clicks an export link and returns the file it saved.
func (b *browserSession) download(sel, name string) []byte {
	b.t.Helper()
	ctx, cancel := b.bounded()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("click %s: %v", sel, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(b.downDir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), name) && !strings.HasSuffix(e.Name(), ".crdownload") {
				data, err := os.ReadFile(filepath.Join(b.downDir, e.Name()))
				if err == nil && len(data) > 0 {
					return data
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("no download named %s* after clicking %s", name, sel)
	return nil
}

// canvasPixels counts the painted pixels of every chart canvas: a chart
// that drew nothing has none.
const canvasPixels = `JSON.stringify(Array.from(document.querySelectorAll('[data-chart] canvas')).map(function (c) {
  var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, n = 0;
  for (var i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
  return n;
}))`

func (b *browserSession) paintedCanvases(what string) {
	b.t.Helper()
	var counts []int
	if err := json.Unmarshal([]byte(b.eval(canvasPixels)), &counts); err != nil {
		b.t.Fatal(err)
	}
	if len(counts) == 0 || slices.Contains(counts, 0) {
		b.t.Errorf("%s: charts painted %v pixels (want every canvas painted)", what, counts)
	}
}

func readCSV(t testing.TB, data []byte) [][]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(string(data))).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v\n%s", err, data)
	}
	return rows
}
