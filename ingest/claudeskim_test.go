package ingest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// The Claude Code reader's three ways to read a line that mentions usage:
// whole (the reference), the skimmer's small copy, and straight from the
// skimmed members (claudeLine takes the last it can).
var claudePaths = []struct {
	name string
	read func(r *fileReader, line []byte, cur *fileCursor, c *chunk)
}{
	{"reference", func(r *fileReader, line []byte, cur *fileCursor, c *chunk) {
		if line = claudeMaybeCall(line, c); line != nil {
			r.claudeEntry(line, cur, c)
		}
	}},
	{"small", func(r *fileReader, line []byte, cur *fileCursor, c *chunk) {
		if line = claudeMaybeCall(line, c); line != nil {
			if r.claudeSkim(line) {
				line = r.claudeSmall()
			}
			r.claudeEntry(line, cur, c)
		}
	}},
	{"claudeLine", (*fileReader).claudeLine},
}

// readClaudeLines reads lines as one chunk of a file in project "-home-u-app"
// and returns what the reader made of them: records, skips, drift and the
// file's agent (a cwd renames it).
func readClaudeLines(lines [][]byte, read func(r *fileReader, line []byte, cur *fileCursor, c *chunk)) string {
	r := &fileReader{in: New(Config{}, nil)}
	cur := fileCursor{Path: filepath.Join("/c", "projects", "-home-u-app", "s0.jsonl"), Format: formatClaude, Agent: "-home-u-app", SessionID: "s0"}
	c := r.newChunk()
	for _, l := range lines {
		read(r, l, &cur, c)
	}
	// %+v prints NaN as NaN: a NaN equals itself here.
	return fmt.Sprintf("records %+v\nskips %+v\ndrift %v\nagent %q", c.records, c.skips, c.drift, cur.Agent)
}

// claudeMatches reports how the skim paths' results differ from the
// reference's on lines ("" when they do not).
func claudeMatches(lines ...[]byte) string {
	ref := readClaudeLines(lines, claudePaths[0].read)
	for _, p := range claudePaths[1:] {
		if got := readClaudeLines(lines, p.read); got != ref {
			return fmt.Sprintf("%s:\n%s\nreference:\n%s", p.name, got, ref)
		}
	}
	return ""
}

// claudeTestFiles collects every Claude Code transcript the tests have,
// file by file: fixtures, field cases, and a generated corpus as written,
// with its keys sorted and with Python's separators.
func claudeTestFiles(t testing.TB, size int64) [][][]byte {
	t.Helper()
	var files [][][]byte
	walk := func(root string) {
		eachTranscript(t, root, func(b []byte) {
			files = append(files, bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")))
		})
	}
	walk("testdata/claude")
	cases, _ := filepath.Glob("testdata/field/*/input/claude")
	for _, c := range cases {
		walk(c)
	}
	if size > 0 {
		dir := t.TempDir()
		gen := filepath.Join(dir, "claude")
		if _, err := writeClaudeCorpus(gen, defaultClaudeCorpus(size)); err != nil {
			t.Fatal(err)
		}
		if err := sortKeysTree(gen, filepath.Join(dir, "sorted")); err != nil {
			t.Fatal(err)
		}
		if err := spacedTree(gen, filepath.Join(dir, "spaced")); err != nil {
			t.Fatal(err)
		}
		walk(dir)
	}
	return files
}

// The skim paths read every test transcript, file by file and line by
// line, and every damaged copy of its lines (cut short, blanks, a byte
// changed, dropped or escaped, a member repeated), as the reference does;
// and claudeLine takes the direct path for nearly every call.
func TestClaudeSkimMatchesEntry(t *testing.T) {
	files := claudeTestFiles(t, 1<<20)
	rng := rand.New(rand.NewPCG(9, 9))
	var lines [][]byte
	for _, f := range files {
		if d := claudeMatches(f...); d != "" {
			t.Fatalf("a file read differs: %s", d)
		}
		lines = append(lines, f...)
	}
	check := func(line []byte, what string) {
		t.Helper()
		if d := claudeMatches(line); d != "" {
			t.Fatalf("%s line differs:\n%.400q\n%s", what, line, d)
		}
	}
	calls, direct, mutations := 0, 0, 0
	for _, line := range lines {
		check(line, "test")
		var c chunk
		if l := claudeMaybeCall(line, &c); l != nil && bytes.Contains(l, []byte(`"assistant"`)) {
			calls++
			r := &fileReader{in: New(Config{}, nil)}
			if r.claudeSkim(l) && r.claudeDirect(&fileCursor{}, &c) {
				direct++
			}
		}
		if len(line) == 0 {
			continue
		}
		for range 8 {
			check(damageClaudeLine(rng, line, lines), "damaged")
			mutations++
		}
	}
	t.Logf("%d lines (%d assistant lines, %d read directly) and %d damaged copies agree", len(lines), calls, direct, mutations)
	if direct < calls*9/10 {
		t.Errorf("only %d of %d assistant lines read directly: the fast path is not taken", direct, calls)
	}
}

// damageClaudeLine returns a damaged copy of line.
func damageClaudeLine(rng *rand.Rand, line []byte, lines [][]byte) []byte {
	m := bytes.Clone(line)
	i := rng.IntN(len(m))
	insert := func(s string) []byte { return append(m[:i:i], append([]byte(s), m[i:]...)...) }
	switch rng.IntN(9) {
	case 0:
		return m[:i] // cut short (a torn write)
	case 1:
		return insert(" ")
	case 2:
		m[i] = `"\{}[],:0at `[rng.IntN(12)]
		return m
	case 3:
		return append(m[:i:i], m[i+1:]...)
	case 4:
		return insert(`\`)
	case 5:
		return append(m[:i:i], lines[rng.IntN(len(lines))]...) // a torn write followed by the next append
	case 6:
		// a member the reader reads, again or first, maybe escaped
		keys := []string{"message", "data", "usage", "model", "id", "sessionId", "cwd", "timestamp", "costUSD",
			"isSidechain", "isApiErrorMessage", "requestId", "uuid", "cache_creation", "server_tool_use",
			"speed", "service_tier", "input_tokens", "mod\\u0065l", "us\\u0061ge"}
		vals := []string{`1`, `"x"`, `true`, `null`, `{}`, `{"usage":{"input_tokens":3}}`, `-2e3`, `NaN`, `"a\"b"`,
			`{"ephemeral_1h_input_tokens":5}`, `{"web_search_requests":2}`, `"2026-05-01T00:00:00.000Z"`, `[1]`}
		j := bytes.IndexByte(m[i:], '{')
		if j < 0 {
			return m
		}
		i += j + 1
		return insert(`"` + keys[rng.IntN(len(keys))] + `":` + vals[rng.IntN(len(vals))] + ",")
	case 7:
		// a string's content escaped
		j := bytes.IndexByte(m[i:], '"')
		if j < 0 || i+j+2 > len(m) {
			return m
		}
		i += j + 1
		return append(m[:i:i], append([]byte(fmt.Sprintf(`\u%04x`, m[i])), m[i+1:]...)...)
	default:
		// a digit changed: numbers of all sizes
		j := bytes.IndexAny(m[i:], "0123456789")
		if j < 0 {
			return m
		}
		m[i+j] = "0123456789.e-"[rng.IntN(13)]
		return m
	}
}

// Shapes the skimmer must send elsewhere or read as the reference does.
func TestClaudeSkimEdgeCases(t *testing.T) {
	const (
		usage = `"usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":20}`
		tail  = `"requestId":"req_1","uuid":"u1","sessionId":"s1","cwd":"/home/u/app","timestamp":"2026-05-01T10:00:00.000Z"`
	)
	for _, line := range []string{
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},` + tail + `}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},` + tail + `,"costUSD":0.5,"isSidechain":true}`,
		`{"message":{"id":"m1","model":"<synthetic>",` + usage + `},` + tail + `}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},` + tail + `,"isApiErrorMessage":true}`,
		`{"message":{"id":"m1","model":"claude-x","usage":{"input_tokens":0}},` + tail + `}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},"uuid":"u1","timestamp":"x"}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},"timestamp":1777629600,"uuid":"u1"}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},"timestamp":1777629600000.5,"uuid":"u1"}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},"timestamp":"1777629600","uuid":"u1"}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},"timestamp":NaN,"uuid":"u1"}`,
		// escapes where members are read, in keys and values
		`{"mess\u0061ge":{"id":"m1","model":"claude-x",` + usage + `},` + tail + `}`,
		`{"message":{"id":"m1","mod\u0065l":"claude-x",` + usage + `},` + tail + `}`,
		`{"message":{"id":"m\u0031","model":"claude-\u0078",` + usage + `},` + tail + `}`,
		`{"message":{"id":"m1","model":"claude-x","usage":{"input_tok\u0065ns":10}},` + tail + `}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},"sessionId":"s\u0031","cwd":"C:\\Users\\u\\app","timestamp":"2026-05-01T10:00:00.000Z"}`,
		`{"message":{"id":"m1","model":"claude-x","usage":{"input_tokens":1,"speed":"f\u0061st","service_tier":"priority"}},` + tail + `}`,
		// members twice: fastjson's Get takes the first, Visit sees all
		`{"message":{"id":"m1","model":"a","model":"b","usage":{"input_tokens":1},"usage":{"input_tokens":2}},"message":{},` + tail + `,"uuid":"u2"}`,
		`{"message":"x","message":{"id":"m1","usage":{"input_tokens":1}},` + tail + `}`,
		`{"message":{"id":"m1","model":"claude-x","usage":{"input_tokens":1,"input_tokens":"7","output_tokens":2.5e1,"output_tokens":-1}},` + tail + `}`,
		`{"message":{"id":"m1","usage":{"input_tokens":1,"cache_creation":{"ephemeral_1h_input_tokens":4,"ephemeral_5m_input_tokens":6},"cache_creation":{"ephemeral_1h_input_tokens":9}}},` + tail + `}`,
		`{"message":{"id":"m1","usage":{"input_tokens":1,"cache_creation":{"ephemeral_1h_input_tokens":4,"ephemeral_1h_input_tokens":8,"ephemeral_5m_input_tokens":6}}},` + tail + `}`,
		`{"message":{"id":"m1","usage":{"input_tokens":1,"cache_creation_input_tokens":3,"cache_creation":{"ephemeral_1h_input_tokens":4}}},` + tail + `}`,
		`{"message":{"id":"m1","usage":{"input_tokens":1,"cache_creation":[1],"server_tool_use":"x"}},` + tail + `}`,
		`{"message":{"id":"m1","usage":{"input_tokens":1,"server_tool_use":{"web_search_requests":2,"web_fetch_requests":1e0}}},` + tail + `}`,
		`{"message":{"id":"m1","usage":{"input_tokens":1,"server_tool_use":{"web_search_requests":2},"server_tool_use":{}}},` + tail + `}`,
		`{"message":{"id":"m1","usage":{"input_tokens":1,"speed":"fast","speed":7,"service_tier":"batch"}},` + tail + `}`,
		`{"message":{"id":"m1","usage":{"input_tokens":1,"speed":"standard","service_tier":"flex"}},` + tail + `}`,
		`{"message":{"id":"m1","usage":{"input_tokens":1,"new_tokens":0,"newer_tokens":"3","newest_tokens":4,"last":5}},` + tail + `}`,
		`{"message":{"id":"m1","usage":{"input_tokens":1,"x":NaN,"y":-Inf}},` + tail + `}`,
		// no message id: the request id, the uuid, the content name the call
		`{"message":{"model":"claude-x",` + usage + `},"requestId":"","uuid":"u9","timestamp":"2026-05-01T10:00:00.000Z"}`,
		`{"message":{"id":7,"model":["claude-x"],` + usage + `},"requestId":{},"timestamp":"2026-05-01T10:00:00.000Z"}`,
		// progress lines: a sub-agent's entry under data.message
		`{"type":"progress","sessionId":"p1","cwd":"/w/proj","data":{"message":{"message":{"id":"m2","model":"claude-x",` + usage + `},"timestamp":"2026-05-01T10:00:00.000Z","sessionId":"sub"}}}`,
		`{"type":"progress","data":{"message":{"message":{"id":"m2",` + usage + `},"timestamp":"2026-05-01T10:00:00.000Z"},"message":{}},"data":{}}`,
		`{"type":"progress","data":{"message":"x","message":{"message":{"id":"m2",` + usage + `}}}}`,
		`{"type":"progress","data":[{"message":{"message":{` + usage + `}}}]}`,
		`{"message":{"usage":[1]},"data":{"message":{"message":{"id":"m3",` + usage + `},"timestamp":"2026-05-01T10:00:00.000Z"}}}`,
		`{"message":{"content":"a \"usage\" quoted"}}`,
		`{"toolUseResult":{"usage":{"input_tokens":5}}}`,
		// not JSON, or not an object
		`{"message":{"usage":{"input_tokens":1}}`, `{"usage"}`, `["usage"]`, `"usage"`, `{"usage":1} x`, ` {"usage":1}`,
		`{"message":{"id":"m1",` + usage + `},` + tail + `}` + "\u00a0",
		`{"a":nul,"usage":1}`, `{"a":tru,"usage":1}`, `{"a":--,"usage":1}`, `{"a":+Inf,"b":nan,"usage":1}`,
		strings.Repeat(`{"a":`, 299) + `{"usage":1}` + strings.Repeat("}", 299),
		strings.Repeat(`{"a":`, 300) + `{"usage":1}` + strings.Repeat("}", 300),
		`{"message":{"id":"m1","model":"` + strings.Repeat(`\\`, 20) + `\"` + strings.Repeat("x", 40) + `",` + usage + `},` + tail + `}`,
		`{"message":{"id":"m1","model":"` + strings.Repeat(`\\`, 20) + `",` + usage + `},` + tail + `}`,
		`{"message":{"id":"m1","model":"` + strings.Repeat("x", 40) + `\\\"` + `",` + usage + `},` + tail + `}`,
		`{"message":{"id":"m1","model":"` + strings.Repeat("x", 40) + `\\\\"` + `,` + usage + `},` + tail + `}`,
		`{"message":{"id":"m1","model":"x\\\"` + strings.Repeat("x", 40) + `\\\"y",` + usage + `},` + tail + `}`,
		`{"usage":1,"k":"` + strings.Repeat("x", 40) + `\\\"}`, `{"usage":1,"k":"x\\\"}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},` + tail + `,"isSidechain":1,"isApiErrorMessage":"true"}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},` + tail + `,"isSidechain":"true","isApiErrorMessage":1}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},` + tail + `,"isSidechain":false,"isSidechain":true,"isApiErrorMessage":null}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},` + tail + `,"costUSD":"0.5"}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},` + tail + `,"costUSD":-1,"costUSD":2}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},` + tail + `,"costUSD":1e400}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},"` + strings.Repeat("k", 40) + `\u0063wd":"/a/b",` + tail + `}`,
		`{"message":{"id":"m1","model":"claude-x",` + usage + `},"` + strings.Repeat("k", 40) + `":"/a/b",` + tail + `}`,
	} {
		if d := claudeMatches([]byte(line)); d != "" {
			t.Errorf("%.300q:\n%s", line, d)
		}
	}
	// A cwd names the file's agent once: one with escapes (a Windows path)
	// matters only until then.
	call := func(id, cwd string) []byte {
		return []byte(`{"message":{"id":"` + id + `","model":"claude-x",` + usage + `},"cwd":"` + cwd + `","timestamp":"2026-05-01T10:00:00.000Z"}`)
	}
	for _, lines := range [][][]byte{
		{call("m1", `C:\\Users\\u\\app`), call("m2", `C:\\Users\\u\\web`), call("m3", "/home/u/x")},
		{call("m1", "/home/u/x"), call("m2", `C:\\Users\\u\\app`)},
		{call("m1", `C:\\`), call("m2", `D:\\w\\app`), call("m3", "/a")},
	} {
		if d := claudeMatches(lines...); d != "" {
			t.Errorf("%q:\n%s", lines, d)
		}
	}
}

func FuzzClaudeSkimMatchesEntry(f *testing.F) {
	for _, file := range claudeTestFiles(f, 64<<10) {
		for _, line := range file {
			f.Add(line)
		}
	}
	f.Add([]byte(`{"type":"progress","data":{"message":{"message":{"id":"m2","usage":{"input_tokens":1}},"timestamp":1}}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		if d := claudeMatches(line); d != "" {
			t.Errorf("%q:\n%s", line, d)
		}
	})
}
