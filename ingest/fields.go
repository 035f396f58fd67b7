package ingest

// Helpers every format reader uses: reading numbers and times from JSON
// values, naming projects. Kept apart from any one format.

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fastjson"
)

func firstTokens(v *fastjson.Value, paths ...[]string) int64 {
	for _, p := range paths {
		if v.Exists(p...) {
			return tokens(v, p...)
		}
	}
	return 0
}

// tokens reads a count that may be written as an integer or a float.
func tokens(v *fastjson.Value, keys ...string) int64 {
	return countOf(v.GetFloat64(keys...))
}

// count reads a count that is x itself.
func count(x *fastjson.Value) int64 {
	f, _ := x.Float64()
	return countOf(f)
}

func countOf(f float64) int64 {
	if f <= 0 || math.IsNaN(f) || math.IsInf(f, 0) || f > 1e15 {
		return 0
	}
	return int64(math.Round(f))
}

// num is a cost member: NaN, infinities and negatives are 0.
func num(v interface{ number(string) float64 }, key string) float64 { return costOf(v.number(key)) }

// costOf is a cost as num reads it.
func costOf(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0
	}
	return f
}

// parseTimestamp accepts an ISO-8601 string or epoch milliseconds (a
// number or a numeric string) and returns unix ms, 0 when absent or bad.
func parseTimestamp(v *fastjson.Value) int64 {
	if v == nil {
		return 0
	}
	switch v.Type() {
	case fastjson.TypeNumber:
		f, _ := v.Float64()
		return epochMillis(f)
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return parseTimeString(b)
	}
	return 0
}

func parseTimeString(b []byte) int64 {
	if ms, ok := parseUTCMillis(b); ok {
		return ms
	}
	if t, err := time.Parse(time.RFC3339Nano, string(b)); err == nil {
		return t.UnixMilli()
	}
	if f, err := strconv.ParseFloat(string(b), 64); err == nil {
		return epochMillis(f)
	}
	return 0
}

// parseUTCMillis reads the form transcript writers use,
// "2026-04-10T08:31:20.480Z" (UTC, milliseconds), as time.Parse would; ok
// is false for any other form and any field out of range (time.Parse then
// decides). Every call's time is one: time.Parse costs a string and a
// general parser each.
func parseUTCMillis(b []byte) (int64, bool) {
	if len(b) != 24 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != '.' || b[23] != 'Z' {
		return 0, false
	}
	n := func(i, j int) int {
		v := 0
		for _, c := range b[i:j] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := n(0, 4), n(5, 7), n(8, 10)
	hour, minute, sec, ms := n(11, 13), n(14, 16), n(17, 19), n(20, 23)
	if year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 || ms < 0 {
		return 0, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, ms*1e6, time.UTC)
	if t.Day() != day {
		return 0, false // no such day in that month
	}
	return t.UnixMilli(), true
}

// epochMillis takes seconds or milliseconds (values below 1e11 are seconds:
// that is the year 5138 in seconds and 1973 in milliseconds).
func epochMillis(f float64) int64 {
	switch {
	case f <= 0 || math.IsNaN(f) || math.IsInf(f, 0):
		return 0
	case f < 1e11:
		return int64(f * 1000)
	case f < 1e14:
		return int64(f)
	}
	return 0
}

// cwdName is the project's readable name: the last element of its
// working directory (either slash: Claude Code on Windows writes C:\...).
func cwdName(cwd string) string {
	cwd = strings.TrimRight(cwd, `/\`)
	if i := strings.LastIndexAny(cwd, `/\`); i >= 0 {
		cwd = cwd[i+1:]
	}
	return cwd
}

// unknownField names the first non-zero number in a usage object under a
// key that known does not list ("field <key>"), or "": a token kind the
// writer started to report and no reader counts yet.
func unknownField(usage *fastjson.Value, known map[string]bool) string {
	obj, err := usage.Object()
	if err != nil {
		return ""
	}
	var drift string
	obj.Visit(func(k []byte, x *fastjson.Value) {
		if drift == "" && !known[string(k)] && x.Type() == fastjson.TypeNumber && x.GetFloat64() != 0 {
			drift = "field " + string(k)
		}
	})
	return drift
}
