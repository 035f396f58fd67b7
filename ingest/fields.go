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

func num(v *fastjson.Value, key string) float64 {
	f := v.GetFloat64(key)
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
	if t, err := time.Parse(time.RFC3339Nano, string(b)); err == nil {
		return t.UnixMilli()
	}
	if f, err := strconv.ParseFloat(string(b), 64); err == nil {
		return epochMillis(f)
	}
	return 0
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
