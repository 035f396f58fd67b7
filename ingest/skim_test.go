package ingest

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
)

// skimMatches reports whether the skimmer's path of openclawLine gives
// what the reference path gives for line, and both results.
func skimMatches(line []byte) (ok bool, quick, ref parsedLine, quickMal, refMal int64) {
	var a, b lineParser
	refMal = a.reference(bytes.Clone(line), &ref)
	if !b.quick(line, &quick) {
		quickMal = b.reference(line, &quick)
	}
	return quick == ref && quickMal == refMal, quick, ref, quickMal, refMal
}

// openclawTestLines collects the lines of every OpenClaw transcript the
// tests have: fixtures, field cases, the upstream excerpt, and a generated
// corpus in pi's key order, in alphabetical order and with Python's
// separators.
func openclawTestLines(t testing.TB) [][]byte {
	t.Helper()
	var lines [][]byte
	add := func(b []byte) {
		for _, l := range bytes.SplitAfter(b, []byte("\n")) {
			lines = append(lines, bytes.TrimSuffix(l, []byte("\n")))
		}
	}
	walk := func(root string) { eachTranscript(t, root, add) }
	walk("testdata/openclaw")
	walk("testdata/upstream")
	cases, _ := filepath.Glob("testdata/field/*/input/openclaw")
	for _, c := range cases {
		walk(c)
	}
	dir := t.TempDir()
	opts := corpus.DefaultOptions()
	opts.SizeBytes = 1 << 20
	opts.Seed = 11
	if _, err := corpus.Generate(filepath.Join(dir, "pi"), opts); err != nil {
		t.Fatal(err)
	}
	if err := sortKeysTree(filepath.Join(dir, "pi"), filepath.Join(dir, "sorted")); err != nil {
		t.Fatal(err)
	}
	if err := spacedTree(filepath.Join(dir, "pi"), filepath.Join(dir, "spaced")); err != nil {
		t.Fatal(err)
	}
	walk(dir)
	return lines
}

// eachTranscript calls fn with the bytes of every JSONL transcript (plain
// or rotated) under root.
func eachTranscript(t testing.TB, root string, fn func([]byte)) {
	t.Helper()
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.Contains(fi.Name(), ".jsonl") {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			fn(b)
		}
		return nil
	})
}

// The skimmer decides every line of every test transcript, and every
// damaged copy of them (cut short, blanks, a character changed or
// dropped), exactly as the reference path does.
func TestSkimMatchesParse(t *testing.T) {
	lines := openclawTestLines(t)
	rng := rand.New(rand.NewPCG(8, 8))
	check := func(line []byte, what string) {
		t.Helper()
		if ok, q, r, qm, rm := skimMatches(line); !ok {
			t.Fatalf("%s line differs:\n%.300q\nskim      %+v (malformed %d)\nreference %+v (malformed %d)", what, line, q, qm, r, rm)
		}
	}
	mutations, skimmed := 0, 0
	for _, line := range lines {
		check(line, "test")
		var lp lineParser
		var pl parsedLine
		if lp.quick(line, &pl) {
			skimmed++
		}
		if len(line) == 0 {
			continue
		}
		for range 8 {
			m := bytes.Clone(line)
			i := rng.IntN(len(m))
			switch rng.IntN(7) {
			case 0:
				m = m[:i] // cut short (a torn write)
			case 1:
				m = append(m[:i:i], append([]byte(" "), m[i:]...)...)
			case 2:
				m[i] = `"\{}[],:0a `[rng.IntN(11)]
			case 3:
				m = append(m[:i:i], m[i+1:]...)
			case 4:
				start := []string{`{"type":"message"`, `{"type": "message"`, "{\"type\"\t:\n\"message\""}[rng.IntN(3)]
				m = append(m[:i:i], append([]byte(start), m[i:]...)...)
			case 5:
				m = append(m[:i:i], append([]byte(`\`), m[i:]...)...)
			case 6:
				j := rng.IntN(len(lines))
				m = append(m[:i:i], lines[j]...) // a torn write followed by the next append
			}
			check(m, "damaged")
			mutations++
		}
	}
	t.Logf("%d lines (%d decided by the skimmer) and %d damaged copies agree", len(lines), skimmed, mutations)
	if skimmed < len(lines)*9/10 {
		t.Errorf("only %d of %d lines skimmed: the fast path is not taken", skimmed, len(lines))
	}
}

// Cases the structure decides that text searches decide in the reference.
func TestSkimEdgeCases(t *testing.T) {
	for _, line := range []string{
		`{"type":"message","message":{"role":"assistant","provider":"anthropic","model":"m","usage":{"input":1,"output":2},"timestamp":1775809875002}}`,
		`{"message":{"usage":{"input":1,"output":2},"role":"assistant","provider":"a","model":"m","timestamp":1775809875002},"type":"message"}`,
		`{"type":"message","message":{"role":"user","content":"[Telegram Alice] hi"}}`,
		`{"type":"message","message":{"role":"user","content":" [Telegram Alice] hi"}}`,
		`{"type":"message","message":{"role":"user","content":"\n[Telegram Alice] hi"}}`,
		`{"type":"message","message":{"role":"user","content":[{"type":"text","text":"Sender (untrusted metadata):\n` + "```json\\n{\\\"id\\\":\\\"42\\\"}\\n```" + `"}]}}`,
		`{"type":"message","message":{"role":"user","provenance":{"kind":"inter_session"}}}`,
		`{"type":"message","message":{"role":"user","content":[{"type":"image","data":"AAAA"},{"text":"[Signal Bob] hi","type":"text"}]}}`,
		`{"type":"message","message":{"role":"user","content":[1,"x",{"type":"text","text":7},{"type":"text","text":"[Signal Bob] hi"}]}}`,
		`{"type":"message","message":{"role":"user","content":[{"type":"te\u0078t","text":"[Signal Bob] hi"}]}}`,
		`{"type":"message","message":{"role":"user","content":[{"typ\u0065":"text","text":"[Signal Bob] hi"}]}}`,
		`{"type":"message","message":{"role":"user","content":"[Telegram Ann\u00e9] hi"}}`,
		`{"type":"message","message":{"role":"user","content":{"text":"[Telegram Ann] hi"}}}`,
		`{"type":"message","message":{"role":"user","content":[]}}`,
		`{"type":"message","timestamp":"2026-04-10T08:31:20.480Z","message":{"role":"assistant","provider":"anthropic","model":"m","usage":{"input":1},"timestamp":"17758\u00300"}}`,
		`{"type":"message","timestamp":null,"message":{"role":"assistant","provider":"anthropic","model":"m","usage":{"input":1},"timestamp":NaN}}`,
		`{"type":"message","timestamp":-1e12,"message":{"role":"assistant","provider":"open\u0063law","model":"m","usage":{"input":1},"timestamp":"1775809875"}}`,
		`{"type":"message","timestamp":true,"message":{"role":"assistant","provider":1,"model":["m"],"usage":{"input":1,"cost":{"total":"x"}},"timestamp":{}}}`,
		`{"type":"message","message":{"role":"assistant","usage":[1]}}`,
		`{"type":"message","timestamp":"2026-04-10T08:31:20.480Z","message":{"role":"assistant","provider":"p","model":"m","usage":{"input":10,"output":5,"cacheRead":100,"cacheWrite":20,"cacheWrite1h":30,"reasoning":9,"reasoningTokens":1,"totalTokens":15,"cost":{"input":1e-3,"output":"2","cacheRead":-1,"cacheWrite":NaN,"tot\u0061l":0.5}},"timestamp":1775809875002,"responseId":"r1"}}`,
		`{"type":"message","timestamp":"2026-04-10T08:31:20.480Z","message":{"role":"assistant","provider":"p","model":"m","usage":{"output":5,"output":7,"input":"3","newTokens":4,"cost":[1],"cost":{"total":1}},"timestamp":1775809875002}}`,
		`{"type":"message","timestamp":"2026-04-10T08:31:20.480Z","message":{"role":"assistant","provider":"p","model":"m","usage":{"input_tokens":10,"output_tokens":5,"completion_tokens_details":{"reasoning_tokens":2}},"timestamp":1775809875002}}`,
		`{"type":"message","timestamp":"2026-04-10T08:31:20.480Z","message":{"role":"assistant","provider":"p","model":"m","usage":{"input":1,"reasoningTokens":1e400,"cost":{"total":{"a":` + strings.Repeat("[", 292) + strings.Repeat("]", 292) + `}}},"timestamp":1775809875002}}`,
		`{"type":"message","timestamp":"2026-04-10T08:31:20.480Z","message":{"role":"assistant","provider":"p","model":"m","usage":{"input":1,"inp\u0075t":5},"timestamp":1775809875002}}`,
		`{"type":"message","timestamp":"2026-02-29T08:31:20.480Z","message":{"role":"assistant","provider":"p","model":"m","usage":{"input":1},"timestamp":"2026-04-10T24:31:20.480Z"}}`,
		`{"type":"message","timestamp":"2024-02-29T23:59:59.999Z","message":{"role":"assistant","provider":"p","model":"m","usage":{"input":1}}}`,
		`{"type":"message","message":{"role":"assistant","usage":{"inp\u0075t":5},"timestamp":1775809875002}}`,
		`{"type":"message","message":{"role":"user","prov\u0065nance":{"kind":"inter_session"}}}`,
		`{"typ\u0065":"session","id":"x"}`,
		`{"type": "session","id":"x"}`,
		"{\"type\"\t:\r\n\"session\",\"id\":\"x\"}",
		`{"type": "message", "message": {"role": "user", "content": "[Telegram Alice] hi"}}`,
		`{"type": "message", "message": {"role" : "user", "content": [{"type": "text", "text": "Sender (untrusted metadata):\n` + "```json\\n{\\\"id\\\": \\\"42\\\"}\\n```" + `"}]}}`,
		`{"type": "message", "message": {"role": "toolResult", "content": "x"}} {"type": "message", "message": {"role": "user"}}`,
		`{"type":"message","message":{"role":"toolResult","content":"x"}} {"type" : "message","message":{"role":"user"}}`,
		`{"x": "\"role\": \"user\""}`,
		`{"type":"session","id":"x","type":"message"}`,
		`{"type":"message","message":"oops","message":{"role":"assistant"}}`,
		`{"type":"message","x":{"message":{"role":"toolResult"}},"message":{"role":"assistant","usage":{"input":5},"timestamp":1}}`,
		`{"type":"message","x\"message":{"role":"assistant"},"message":{"role":"user"}}`,
		`{"type":"message","message":{"role":"toolResult","content":[{"type":"text","text":"x"}]}} {"type":"message"`,
		`{"type":"message","message":{"role":"custom","usage":{"input":3}}}`,
		`{"type":"turn","usage":{"input":3}}`,
		`{"type":"turn","note":"usage"}`,
		`{"type":"turn","note":"a\"usage"}`,
		`{"a":NaN,"b":-Inf,"c":+1,"d":--,"type":"session"}`,
		`{"a":nul}`, `{"a":tru}`, `{}`, `[]`, `"x"`, `{"a":1}x`, ` {"type":"session"}`,
		`{"type":"message","message":{"role":"assistant"}}` + "\u00a0",
		strings.Repeat(`{"a":`, 301) + "1" + strings.Repeat("}", 301),
		strings.Repeat(`{"a":`, 299) + "1" + strings.Repeat("}", 299),
	} {
		if ok, q, r, qm, rm := skimMatches([]byte(line)); !ok {
			t.Errorf("%.200q:\nskim      %+v (malformed %d)\nreference %+v (malformed %d)", line, q, qm, r, rm)
		}
	}
}

func FuzzSkimMatchesParse(f *testing.F) {
	for _, path := range []string{"testdata/upstream/large-session.head27.jsonl"} {
		fh, err := os.Open(path)
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			f.Add(bytes.Clone(sc.Bytes()))
		}
		fh.Close()
	}
	f.Add([]byte(`{"message":{"content":[],"role":"user"},"type":"message"}`))
	f.Add([]byte(`{"type": "message", "message": {"role": "user", "content": "Sender (untrusted metadata):\n` + "```json\\n{\\\"id\\\": \\\"1\\\"}\\n```" + `"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		if ok, q, r, qm, rm := skimMatches(line); !ok {
			t.Errorf("%q:\nskim      %+v (malformed %d)\nreference %+v (malformed %d)", line, q, qm, r, rm)
		}
	})
}

// The fast path of timestamps reads what time.Parse reads, and leaves it
// whatever else.
func TestParseUTCMillisMatchesTimeParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	check := func(s string) {
		t.Helper()
		got, ok := parseUTCMillis([]byte(s))
		ref, err := time.Parse(time.RFC3339Nano, s)
		if ok && (err != nil || ref.UnixMilli() != got) {
			t.Fatalf("%q: fast %d, time.Parse %v %v", s, got, ref.UnixMilli(), err)
		}
		if !ok && err == nil && len(s) == 24 && s[23] == 'Z' && s[19] == '.' {
			t.Errorf("%q: the fast path declined a canonical time", s)
		}
	}
	for _, s := range []string{"2026-04-10T08:31:20.480Z", "2024-02-29T23:59:59.999Z", "2026-02-29T00:00:00.000Z",
		"0000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "2026-04-31T00:00:00.000Z", "2026-13-01T00:00:00.000Z",
		"2026-00-10T00:00:00.000Z", "2026-04-00T00:00:00.000Z", "2026-04-10T24:00:00.000Z", "2026-04-10T08:60:00.000Z",
		"2026-04-10T08:31:60.000Z", "2026-04-10T08:31:20.48Z", "2026-04-10 08:31:20.480Z", "+026-04-10T08:31:20.480Z",
		"2026-04-10T08:31:20.-80Z", "2026-04-10T08:31:20,480Z", "1900-02-29T00:00:00.000Z", "2000-02-29T00:00:00.000Z"} {
		check(s)
	}
	digits := "0123456789"
	for range 20000 {
		b := []byte("2026-04-10T08:31:20.480Z")
		for k := range 1 + rng.IntN(3) {
			_ = k
			i := rng.IntN(len(b))
			if rng.IntN(4) == 0 {
				b[i] = "-T:.Z+ x"[rng.IntN(8)]
			} else {
				b[i] = digits[rng.IntN(10)]
			}
		}
		check(string(b))
	}
}
