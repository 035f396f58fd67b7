package storage

import (
	"encoding/json"
	"math"
	"strconv"
)

// The ledger's rows are a Usage as encoding/json marshals it. Marshalling
// by reflection was a tenth of a cold ingest's commit (10k small files),
// so Insert writes the same bytes itself: the fields in declaration order,
// omitempty as tagged, floats in encoding/json's format. Strings that
// need escaping (quotes, control bytes, <, >, &, non-ASCII) and floats
// that are not finite (json.Marshal's error) go to json.Marshal whole, so
// there is no second escaping rule to keep. TestUsageJSONIsMarshal and
// FuzzUsageJSON hold the two to the same bytes, field by field.

// marshalUsage is json.Marshal(u), faster.
func marshalUsage(u *Usage) ([]byte, error) {
	if b, ok := appendUsage(make([]byte, 0, 384), u); ok {
		return b, nil
	}
	return json.Marshal(u)
}

// appendUsage appends u's JSON to b; ok is false when u holds a string or
// float it leaves to encoding/json.
func appendUsage(b []byte, u *Usage) (_ []byte, ok bool) {
	e := jsonAppender{b: b, ok: true}
	e.b = append(e.b, '{')
	e.int("ts", u.TS, false)
	e.str("source", u.Source, false)
	e.str("agent", u.Agent, false)
	e.str("session_id", u.SessionID, false)
	e.str("session_key", u.SessionKey, true)
	e.str("channel", u.Channel, true)
	e.str("user", u.User, true)
	e.str("user_label", u.UserLabel, true)
	e.str("provider", u.Provider, false)
	e.str("model", u.Model, false)
	e.int("input_tokens", u.Input, false)
	e.int("output_tokens", u.Output, false)
	e.int("cache_read_tokens", u.CacheRead, false)
	e.int("cache_write_tokens", u.CacheWrite, false)
	e.int("cache_write_1h_tokens", u.CacheWrite1h, true)
	e.int("reasoning_tokens", u.Reasoning, true)
	e.int("web_search_requests", u.WebSearches, true)
	e.int("web_fetch_requests", u.WebFetches, true)
	e.str("price_modifier", u.Modifier, true)
	e.str("corrected", u.Corrected, true)
	e.str("mirror_of", u.MirrorOf, true)
	if u.Sidechain {
		e.key("sidechain")
		e.b = append(e.b, "true"...)
	}
	e.cost("cost", &u.Cost)
	e.str("cost_source", u.CostSource, false)
	if u.Recorded != nil {
		e.cost("recorded_cost", u.Recorded)
	}
	e.str("dedupe_key", u.DedupeKey, false)
	e.b = append(e.b, '}')
	return e.b, e.ok
}

// jsonAppender appends an object's members; ok turns false at the first
// value it cannot write as encoding/json would.
type jsonAppender struct {
	b  []byte
	ok bool
}

// key appends a member's key (a separator first unless the object has
// just begun). Keys are the tags above: plain ASCII.
func (e *jsonAppender) key(k string) {
	if c := e.b[len(e.b)-1]; c != '{' {
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

func (e *jsonAppender) int(k string, v int64, omitEmpty bool) {
	if omitEmpty && v == 0 {
		return
	}
	e.key(k)
	e.b = strconv.AppendInt(e.b, v, 10)
}

func (e *jsonAppender) str(k, v string, omitEmpty bool) {
	if omitEmpty && v == "" {
		return
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			e.ok = false
			return
		}
	}
	e.key(k)
	e.b = append(e.b, '"')
	e.b = append(e.b, v...)
	e.b = append(e.b, '"')
}

// float appends v as encoding/json does: the shortest decimal that reads
// back as v, in exponent form below 1e-6 and from 1e21, with a one-digit
// negative exponent written without its leading zero (1e-7, not 1e-07).
func (e *jsonAppender) float(k string, v float64, omitEmpty bool) {
	if omitEmpty && v == 0 {
		return
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		e.ok = false
		return
	}
	e.key(k)
	format := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	e.b = strconv.AppendFloat(e.b, v, format, -1, 64)
	if format == 'e' {
		if n := len(e.b); n >= 4 && e.b[n-4] == 'e' && e.b[n-3] == '-' && e.b[n-2] == '0' {
			e.b[n-2] = e.b[n-1]
			e.b = e.b[:n-1]
		}
	}
}

func (e *jsonAppender) cost(k string, c *Cost) {
	e.key(k)
	e.b = append(e.b, '{')
	e.float("total", c.Total, false)
	e.float("input", c.Input, true)
	e.float("output", c.Output, true)
	e.float("cache_read", c.CacheRead, true)
	e.float("cache_write", c.CacheWrite, true)
	e.float("tools", c.Tools, true)
	e.b = append(e.b, '}')
}
