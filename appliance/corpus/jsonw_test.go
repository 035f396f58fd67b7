package corpus

import (
	"encoding/json"
	"testing"
	"time"
)

func TestAppendNumMatchesJavaScript(t *testing.T) {
	// Expected strings are what node prints for String(x).
	cases := []struct {
		name string
		in   float64
		want string
	}{
		{"zero", 0, "0"},
		{"integer", 123, "123"},
		{"small fixed", 0.000012, "0.000012"},
		{"smallest fixed", 0.000001, "0.000001"},
		{"below fixed range", 1.5e-7, "1.5e-7"},
		{"just below 1e-6", 9.99e-7, "9.99e-7"},
		{"rounding noise", 0.0005625000000000001, "0.0005625000000000001"},
		{"sum noise", addFloats(0.1, 0.2), "0.30000000000000004"},
		{"large", 1e21, "1e+21"},
		{"below large", 1e20, "100000000000000000000"},
		{"negative", -0.25, "-0.25"},
		{"negative tiny", -3e-9, "-3e-9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := string(appendNum(nil, c.in))
			if got != c.want {
				t.Fatalf("appendNum(%v) = %q, want %q", c.in, got, c.want)
			}
			var back float64
			if err := json.Unmarshal([]byte(got), &back); err != nil || back != c.in {
				t.Fatalf("%q does not round-trip to %v: %v, %v", got, c.in, back, err)
			}
		})
	}
}

// addFloats adds at run time: Go folds 0.1 + 0.2 exactly at compile time.
func addFloats(a, b float64) float64 { return a + b }

func TestAppendStrMatchesJSONStringify(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"plain", "hello", `"hello"`},
		{"quotes and backslash", `a"b\c`, `"a\"b\\c"`},
		{"controls", "\n\r\t\b\f\x1b\x00", `"\n\r\t\b\f\u001b\u0000"`},
		{"html is not escaped", "<a & b>", `"<a & b>"`},
		{"unicode as is", "café → 🙂", `"café → 🙂"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := string(appendStr(nil, c.in))
			if got != c.want {
				t.Fatalf("appendStr(%q) = %s, want %s", c.in, got, c.want)
			}
			var back string
			if err := json.Unmarshal([]byte(got), &back); err != nil || back != c.in {
				t.Fatalf("%s does not round-trip: %q, %v", got, back, err)
			}
		})
	}
}

func TestFileStamp(t *testing.T) {
	ts := time.Date(2026, 4, 10, 7, 59, 59, 912e6, time.UTC)
	if got, want := fileStamp(ts, false), "2026-04-10T07-59-59.912Z"; got != want {
		t.Errorf("archive stamp %q, want %q", got, want)
	}
	if got, want := fileStamp(ts, true), "2026-04-10T07-59-59-912Z"; got != want {
		t.Errorf("fork stamp %q, want %q", got, want)
	}
}

func TestCostMatchesPiCalculateCost(t *testing.T) {
	// The reference's v3 example line: sonnet 4.6, input 4, output 60,
	// cacheRead 12760, cacheWrite 150.
	p := Prices()["anthropic/claude-sonnet-4-6"]
	c := p.cost(usage{input: 4, output: 60, cacheRead: 12760, cacheWrite: 150})
	var got []byte
	for i, f := range c {
		if i > 0 {
			got = append(got, ',')
		}
		got = appendNum(got, f)
	}
	if want := "0.000012,0.0009,0.003828,0.0005625000000000001,0.0053025"; string(got) != want {
		t.Fatalf("cost = %s, want %s", got, want)
	}
}
