package appliance

import (
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The Usage page's full load in headless chromium over a generated fleet:
// from the navigation to its last chart drawn, the HTML, every asset and
// every API call included. Cold: no browser cache (each load fetches the
// assets); warm: the hashed assets cached, as a returning browser has
// them. The baseline of the same run is a navigation to /healthz (a few
// bytes of text): what the browser and loopback cost alone.
//
//	FLEETMETER_BENCH_FLEET=/tmp/fleet go test -run '^$' -bench 'PageLoad' -count 6 ./appliance/ | benchstat -
func BenchmarkPageLoad(b *testing.B) {
	base, _, stop := benchServer(b)
	defer stop()
	br := newBrowser(b).ctx
	for _, c := range []struct {
		name, path string
		cold       bool
	}{
		{"baseline-healthz", "/healthz", true},
		{"usage-30d-cold", "/usage?range=30d", true},
		{"usage-30d-warm", "/usage?range=30d", false},
		{"overview-warm", "/", false},
		{"host-7d-warm", "/host?range=7d", false},
	} {
		b.Run(c.name, func(b *testing.B) {
			if _, err := chromedp.Call(br, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: c.cold}); err != nil {
				b.Fatal(err)
			}
			load := func() time.Duration {
				if err := chromedp.Do(br, chromedp.Navigate(base+c.path)); err != nil {
					b.Fatal(err)
				}
				for {
					left, err := chromedp.Run(br, chromedp.Evaluate[int](`document.querySelectorAll('[data-chart]:not([data-drawn])').length`))
					if err != nil {
						b.Fatal(err)
					}
					if left == 0 {
						break
					}
					time.Sleep(2 * time.Millisecond)
				}
				// The page's own clock: navigation start to the last chart
				// drawn (or the load event, for a page without charts).
				ms, err := chromedp.Run(br, chromedp.Evaluate[float64](`Math.max(window.__chartsDrawnAt || 0, performance.getEntriesByType('navigation')[0].loadEventEnd)`))
				if err != nil {
					b.Fatal(err)
				}
				return time.Duration(ms * float64(time.Millisecond))
			}
			load()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				lat = append(lat, load())
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.95), "p95-ms")
		})
	}
}
