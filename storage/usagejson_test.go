package storage

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// checkUsageJSON fails when marshalUsage and json.Marshal disagree on u
// (bytes, or whether it is an error).
func checkUsageJSON(t *testing.T, u *Usage) {
	t.Helper()
	want, werr := json.Marshal(u)
	got, gerr := marshalUsage(u)
	if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("marshalUsage(%+v)\n got %s (%v)\nwant %s (%v)", u, got, gerr, want, werr)
	}
}

// TestUsageJSONIsMarshal sets each field of Usage and Cost in turn (found
// by reflection: a field added to either without its line in appendUsage
// fails here) and then random records, and compares with json.Marshal.
func TestUsageJSONIsMarshal(t *testing.T) {
	checkUsageJSON(t, &Usage{})
	base := rec("k", 1775001602000, 20, 199, 0.00354)
	checkUsageJSON(t, &base)
	set := func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Int64:
			v.SetInt(7)
		case reflect.Float64:
			v.SetFloat(0.25)
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Pointer:
			v.Set(reflect.ValueOf(&Cost{Total: 1.5, Tools: 0.01}))
		case reflect.Struct: // Cost: its fields one by one below
		default:
			t.Fatalf("field of kind %s: teach appendUsage and this test", v.Kind())
		}
	}
	ut := reflect.TypeFor[Usage]()
	for i := range ut.NumField() {
		u := base
		set(reflect.ValueOf(&u).Elem().Field(i))
		checkUsageJSON(t, &u)
	}
	ct := reflect.TypeFor[Cost]()
	for i := range ct.NumField() {
		u := base
		u.Cost = Cost{}
		set(reflect.ValueOf(&u.Cost).Elem().Field(i))
		checkUsageJSON(t, &u)
		r := Cost{}
		set(reflect.ValueOf(&r).Elem().Field(i))
		u.Recorded = &r
		checkUsageJSON(t, &u)
	}

	strs := []string{"", "a", "main", "telegram:12345", `q"uote`, `back\slash`, "tab\there", "<b>&amp;</b>", "\x00nul", "\x7f",
		"é", "日本", "\u2028line", "bad\xffutf8", "emoji 🙂", "claude-sonnet-4-6", "anthropic|msg_01"}
	floats := []float64{0, -0.0, 1, 0.1, 1e-6, 9.99e-7, 1e-7, 1.5e-10, 1e20, 1e21, 123456789.123, -3.75, 5e-324, math.MaxFloat64,
		math.NaN(), math.Inf(1), math.Inf(-1)}
	ints := []int64{0, 1, -1, 42, math.MaxInt64, math.MinInt64}
	r := rand.New(rand.NewPCG(1, 2))
	pickS := func() string { return strs[r.IntN(len(strs))] }
	pickF := func() float64 { return floats[r.IntN(len(floats))] }
	pickI := func() int64 { return ints[r.IntN(len(ints))] }
	for range 20000 {
		u := Usage{
			TS: pickI(), Source: pickS(), Agent: pickS(), SessionID: pickS(), SessionKey: pickS(), Channel: pickS(),
			User: pickS(), UserLabel: pickS(), Provider: pickS(), Model: pickS(),
			Input: pickI(), Output: pickI(), CacheRead: pickI(), CacheWrite: pickI(), CacheWrite1h: pickI(),
			Reasoning: pickI(), WebSearches: pickI(), WebFetches: pickI(),
			Modifier: pickS(), Corrected: pickS(), MirrorOf: pickS(), Sidechain: r.IntN(2) == 0,
			Cost:       Cost{Total: pickF(), Input: pickF(), Output: pickF(), CacheRead: pickF(), CacheWrite: pickF(), Tools: pickF()},
			CostSource: pickS(), DedupeKey: pickS(),
		}
		if r.IntN(3) == 0 {
			u.Recorded = &Cost{Total: pickF(), CacheWrite: pickF()}
		}
		checkUsageJSON(t, &u)
	}
}

// FuzzUsageJSON: any strings, numbers and floats give json.Marshal's bytes.
func FuzzUsageJSON(f *testing.F) {
	f.Add("agent0", "telegram:1", "claude-sonnet-4-6", int64(1775001602000), int64(20), 0.00354, 1e-7, true)
	f.Add("<&>", "\u2028", "\xff", int64(-1), int64(0), -0.0, 1e21, false)
	f.Fuzz(func(t *testing.T, agent, user, model string, ts, n int64, cost, part float64, side bool) {
		u := Usage{TS: ts, Source: SourceOpenClaw, Agent: agent, SessionID: agent + user, User: user, UserLabel: model,
			Provider: "anthropic", Model: model, Input: n, Output: -n, CacheWrite1h: n, Sidechain: side,
			Cost: Cost{Total: cost, CacheRead: part}, CostSource: CostTranscript, DedupeKey: model}
		if side {
			u.Recorded = &Cost{Total: part, Tools: cost}
		}
		checkUsageJSON(t, &u)
	})
}
