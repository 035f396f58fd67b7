package pricing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// ErrInvalidOverrides is wrapped by every error about the content of a price
// override file (not about reading it).
var ErrInvalidOverrides = errors.New("invalid price overrides")

// Overrides are the user's prices, keyed "provider/model" in lower case
// (the model may itself contain "/": "openrouter/anthropic/claude-sonnet-4.5").
// They match a record's provider and model exactly, ignoring case, and
// win over both the transcript's cost and the embedded table.
type Overrides map[string]Price

// overrideFields are the accepted keys of one price object.
var overrideFields = []string{"input", "output", "cache_read", "cache_write", "cache_write_1h", "output_reasoning", "web_search_per_1k"}

// LoadOverrides reads a JSON price file:
//
//	{"anthropic/claude-sonnet-4-6": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}}
//
// Prices are USD per million tokens. A price left out is zero, except
// cache_write_1h, which then defaults to cache_write. Unknown fields,
// non-numeric or negative prices, keys that are not "provider/model" and
// keys given twice (ignoring case) are rejected with an error naming the
// file and the key.
func LoadOverrides(path string) (Overrides, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read price overrides: %w", err)
	}
	o, err := parseOverrides(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidOverrides, path, err)
	}
	return o, nil
}

func parseOverrides(data []byte) (Overrides, error) {
	// A token walk rather than a map decode, so that a key written twice is
	// reported instead of silently keeping the last one.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf(`want an object {"provider/model": {"input": …}, …}`)
	}
	o := Overrides{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %w", err)
		}
		key := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		norm := strings.ToLower(key)
		prov, mod, ok := strings.Cut(norm, "/")
		if !ok || prov == "" || mod == "" {
			return nil, fmt.Errorf(`key %q: want "provider/model"`, key)
		}
		if _, dup := o[norm]; dup {
			return nil, fmt.Errorf("key %q: given twice (keys ignore case)", key)
		}
		p, err := parseOverridePrice(raw)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		o[norm] = p
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the object")
	}
	return o, nil
}

func parseOverridePrice(raw json.RawMessage) (Price, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return Price{}, fmt.Errorf("want an object of prices (%s)", strings.Join(overrideFields, ", "))
	}
	if len(fields) == 0 {
		return Price{}, fmt.Errorf("no prices given")
	}
	var p Price
	dst := map[string]*float64{
		"input": &p.Input, "output": &p.Output, "cache_read": &p.CacheRead,
		"cache_write": &p.CacheWrite, "cache_write_1h": &p.CacheWrite1h,
		"output_reasoning": &p.OutputReasoning, "web_search_per_1k": &p.WebSearchPer1k,
	}
	for name, v := range fields {
		d, ok := dst[name]
		if !ok {
			return Price{}, fmt.Errorf("unknown field %q (want %s)", name, strings.Join(overrideFields, ", "))
		}
		v = bytes.TrimSpace(v)
		if len(v) == 0 || !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
			return Price{}, fmt.Errorf("%s: %s is not a number", name, v)
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return Price{}, fmt.Errorf("%s: %s is not a usable number", name, v)
		}
		if f < 0 {
			return Price{}, fmt.Errorf("%s: negative price %s", name, v)
		}
		*d = f
	}
	return p, nil
}

// normalized returns o with lower-cased keys, so that a map built in code
// (not by LoadOverrides) matches the same way.
func (o Overrides) normalized() map[string]Price {
	out := make(map[string]Price, len(o))
	for k, v := range o {
		out[strings.ToLower(k)] = v
	}
	return out
}
