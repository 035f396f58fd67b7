package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// checkUsageRow fails unless u's binary row decodes to u exactly, and to
// what its JSON row (the form before schema 3) decodes to wherever JSON
// keeps the value (valid UTF-8). A cost JSON cannot hold is refused by both.
func checkUsageRow(t *testing.T, u *Usage) {
	t.Helper()
	row, err := appendUsageRow(nil, u)
	js, jerr := json.Marshal(u)
	if (err != nil) != (jerr != nil) {
		t.Fatalf("%+v: binary row error %v, JSON error %v", u, err, jerr)
	}
	if err != nil {
		return
	}
	var got Usage
	if err := decodeUsage(row, &got); err != nil {
		t.Fatalf("%+v: decode: %v", u, err)
	}
	if !reflect.DeepEqual(&got, u) && !sameFloats(&got, u) {
		t.Fatalf("binary row of\n%+v\ndecodes to\n%+v", u, &got)
	}
	var fromJSON Usage
	if err := decodeUsage(js, &fromJSON); err != nil {
		t.Fatalf("%+v: decode JSON row: %v", u, err)
	}
	if bytes.Contains(js, []byte(`\ufffd`)) {
		return // invalid UTF-8: the JSON row lost the bytes the binary one keeps
	}
	if !reflect.DeepEqual(&got, &fromJSON) && !sameFloats(&got, &fromJSON) {
		t.Fatalf("binary and JSON rows of %+v differ:\n%+v\n%+v", u, &got, &fromJSON)
	}
	// Every row cut short is refused.
	for i := range row {
		var x Usage
		if decodeUsage(row[:i], &x) == nil {
			t.Fatalf("%+v: a row cut at %d of %d bytes decodes", u, i, len(row))
		}
	}
}

// sameFloats: -0.0 and +0.0 and NaN aside, DeepEqual is the test; costs
// are compared by bits.
func sameFloats(a, b *Usage) bool {
	ca, cb := a.Cost.fields(), b.Cost.fields()
	for i := range ca {
		if math.Float64bits(ca[i]) != math.Float64bits(cb[i]) {
			return false
		}
	}
	a2, b2 := *a, *b
	a2.Cost, b2.Cost = Cost{}, Cost{}
	return reflect.DeepEqual(a2, b2)
}

// TestUsageRowRoundTrip sets each field of Usage and Cost in turn (found
// by reflection: a field added to either without its place in the row
// fails here), then random records.
func TestUsageRowRoundTrip(t *testing.T) {
	checkUsageRow(t, &Usage{})
	base := rec("k", 1775001602000, 20, 199, 0.00354)
	checkUsageRow(t, &base)
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
			t.Fatalf("field of kind %s: teach appendUsageRow and this test", v.Kind())
		}
	}
	ut := reflect.TypeFor[Usage]()
	for i := range ut.NumField() {
		u := base
		set(reflect.ValueOf(&u).Elem().Field(i))
		checkUsageRow(t, &u)
	}
	ct := reflect.TypeFor[Cost]()
	for i := range ct.NumField() {
		u := base
		u.Cost = Cost{}
		set(reflect.ValueOf(&u.Cost).Elem().Field(i))
		checkUsageRow(t, &u)
		r := Cost{}
		set(reflect.ValueOf(&r).Elem().Field(i))
		u.Recorded = &r
		checkUsageRow(t, &u)
	}

	strs := []string{"", "a", "main", "telegram:12345", `q"uote`, `back\slash`, "tab\there", "<b>&amp;</b>", "\x00nul", "\x7f",
		"é", "日本", "\u2028line", "bad\xffutf8", "emoji 🙂", "claude-sonnet-4-6", "anthropic|msg_01", strings.Repeat("long", 100)}
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
		checkUsageRow(t, &u)
	}
}

// FuzzUsageRow: any strings, numbers and floats round-trip, and any bytes
// given as a row decode or are refused without a panic.
func FuzzUsageRow(f *testing.F) {
	f.Add("agent0", "telegram:1", "claude-sonnet-4-6", int64(1775001602000), int64(20), 0.00354, 1e-7, true, []byte{usageBin, 0})
	f.Add("<&>", "\u2028", "\xff", int64(-1), int64(0), -0.0, 1e21, false, []byte("{}"))
	f.Fuzz(func(t *testing.T, agent, user, model string, ts, n int64, cost, part float64, side bool, raw []byte) {
		u := Usage{TS: ts, Source: SourceOpenClaw, Agent: agent, SessionID: agent + user, User: user, UserLabel: model,
			Provider: "anthropic", Model: model, Input: n, Output: -n, CacheWrite1h: n, Sidechain: side,
			Cost: Cost{Total: cost, CacheRead: part}, CostSource: CostTranscript, DedupeKey: model}
		if side {
			u.Recorded = &Cost{Total: part, Tools: cost}
		}
		checkUsageRow(t, &u)
		var x Usage
		_ = decodeUsage(raw, &x)
	})
}

// A ledger upgraded from schema 2 holds JSON rows beside the binary rows
// written since: every read gives the same records from either form, and
// ingest's rules (a duplicate, a larger copy replacing a call) work on a
// JSON row as on a binary one.
func TestLedgerReadsJSONAndBinaryRows(t *testing.T) {
	db := openTest(t, time.UTC)
	base := int64(1775001602000)
	var b Batch
	for i := range 40 {
		u := rec(fmt.Sprint("k", i), base+int64(i)*3_600_000, int64(10+i), int64(100+i), 0.001*float64(i))
		u.SessionID = fmt.Sprint("s", i%4)
		u.User = fmt.Sprint("telegram:", i%3)
		u.Reasoning, u.Cost.Tools = int64(i), 0.0001*float64(i)
		if i%5 == 0 {
			u.CostSource = CostUnpriced
			u.Recorded = &Cost{Total: 1.25}
		}
		b.Records = append(b.Records, u)
	}
	if _, err := db.Apply(&b); err != nil {
		t.Fatal(err)
	}
	type reads struct {
		ledger  []Usage
		facts   []Fact
		calls   []LedgerCall
		session []Usage
		daily   []Row
	}
	read := func() reads {
		var r reads
		if err := db.Ledger(0, math.MaxInt64, func(u *Usage) error { r.ledger = append(r.ledger, *u); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := db.LedgerFacts(0, math.MaxInt64, func(f *Fact) error { r.facts = append(r.facts, *f); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := db.LedgerCalls(0, math.MaxInt64, func(c *LedgerCall) error { r.calls = append(r.calls, *c); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := db.SessionCalls(SourceOpenClaw, "s2", 0, math.MaxInt64, func(u *Usage) bool { r.session = append(r.session, *u); return true }); err != nil {
			t.Fatal(err)
		}
		var err error
		if r.daily, err = db.DailyRows(-1<<30, 1<<30); err != nil {
			t.Fatal(err)
		}
		return r
	}
	binary := read()
	if len(binary.ledger) != 40 || len(binary.session) != 10 {
		t.Fatalf("%d records, %d of session s2; want 40, 10", len(binary.ledger), len(binary.session))
	}
	for i, f := range binary.facts {
		if f.Totals != TotalsOf(&binary.ledger[i]) {
			t.Fatalf("fact %d: %+v, want TotalsOf %+v", i, f.Totals, TotalsOf(&binary.ledger[i]))
		}
	}
	// Every other row back to JSON, as schema 2 wrote it.
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		l := tx.Bucket(bucketLedger)
		c, i := l.Cursor(), 0
		var keys, rows [][]byte
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if i++; i%2 == 0 {
				continue
			}
			var u Usage
			if err := decodeUsage(v, &u); err != nil {
				return err
			}
			js, err := json.Marshal(&u)
			if err != nil {
				return err
			}
			keys, rows = append(keys, bytes.Clone(k)), append(rows, js)
		}
		for i := range keys {
			if err := l.Put(keys[i], rows[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if mixed := read(); !reflect.DeepEqual(mixed, binary) {
		t.Fatalf("reads differ once half the rows are JSON:\n%+v\nwant\n%+v", mixed, binary)
	}
	if err := db.RebuildRollups(); err != nil {
		t.Fatal(err)
	}
	if rebuilt := read(); !reflect.DeepEqual(rebuilt.daily, binary.daily) {
		t.Fatalf("rollups rebuilt from mixed rows:\n%+v\nwant\n%+v", rebuilt.daily, binary.daily)
	}
	// k1 (a JSON row now) again: a duplicate; then a larger copy: replaced.
	dup := binary.ledger[1]
	again := Batch{Records: []Usage{dup}}
	if res, err := db.Apply(&again); err != nil || res.Duplicates != 1 {
		t.Fatalf("a JSON row's call again: %+v, %v; want a duplicate", res, err)
	}
	bigger := dup
	bigger.Output += 50
	again = Batch{Records: []Usage{bigger}}
	if res, err := db.Apply(&again); err != nil || res.Replaced != 1 {
		t.Fatalf("a larger copy of a JSON row's call: %+v, %v; want it replaced", res, err)
	}
	var outputs int64
	if err := db.Ledger(0, math.MaxInt64, func(u *Usage) error { outputs += u.Output; return nil }); err != nil {
		t.Fatal(err)
	}
	if want := sumOutputs(binary.ledger) + 50; outputs != want {
		t.Fatalf("output tokens %d after the replacement, want %d", outputs, want)
	}
}

func sumOutputs(us []Usage) (n int64) {
	for _, u := range us {
		n += u.Output
	}
	return n
}
