package rollup

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The one way each kind of figure is written for people: CLI tables and
// lines, alert and digest text, the pages (ui uses these; the pages' JS,
// ui/static/app.js, repeats USD step by step so that a figure rendered
// live reads the same).

// USD formats money: rounded half away from zero to the cent, with
// thousands separators ("$1,536.53", "-$3.20", "$0.00"). An amount under
// a cent keeps four decimals ("$0.0042"), since one call costs that, and
// one under a hundredth of a cent is "<$0.0001".
func USD(v float64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	switch {
	case v == 0 || math.IsNaN(v):
		return "$0.00"
	case v < 0.01:
		n := math.Round(v * 1e4)
		if n == 0 {
			return sign + "<$0.0001"
		}
		return fmt.Sprintf("%s$0.%04d", sign, int64(n))
	}
	cents := math.Round(v * 100)
	return fmt.Sprintf("%s$%s.%02d", sign, Count(int64(cents/100)), int64(math.Mod(cents, 100)))
}

// Duration formats a duration in Go's units without the zero ones
// ("168h", "2h30m", "1m30s", "10s", "500ms", "0s"): short for people, and
// what fleetmeter's duration settings read back (config, flags,
// FLEETMETER_*). It is exact: round first where precision is noise (Ago).
func Duration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	sign := ""
	if d < 0 {
		if d == math.MinInt64 {
			return d.String()
		}
		sign, d = "-", -d
	}
	if d < time.Second {
		return sign + d.String() // 500ms, 1.5µs
	}
	var b strings.Builder
	b.WriteString(sign)
	if h := d / time.Hour; h > 0 {
		b.WriteString(strconv.FormatInt(int64(h), 10) + "h")
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		b.WriteString(strconv.FormatInt(int64(m), 10) + "m")
		d -= m * time.Minute
	}
	if d > 0 {
		b.WriteString(strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s")
	}
	return b.String()
}

// Ago formats an elapsed time as people read it, in Duration's form at the
// precision that matters: to the second under a minute, to the minute
// under two days, to the hour beyond ("42s", "3m", "2h30m", "74h"). A
// negative one (a clock behind) is "0s".
func Ago(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Minute:
		return Duration(d.Round(time.Second))
	case d < 48*time.Hour:
		return Duration(d.Round(time.Minute))
	}
	return Duration(d.Round(time.Hour))
}
