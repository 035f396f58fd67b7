package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
	"github.com/fleetmeter/fleetmeter/ingest/pricing"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// Report goldens: every report kind, in three zones and four date ranges,
// as JSON and as the table, read straight from transcripts as `report
// --openclaw-dir/--claude-dir/--codex-dir` does (an in-memory tally in the
// zone asked for, the embedded price table), must be byte-identical to
// testdata/golden/reports/<corpus>.txt.gz. Those files were written by the
// build before the speed work (issue 8; their tables rewritten twice since,
// when the CLI's renderer and then its money format changed, every JSON
// section kept byte for byte), so a faster reader must give the very bytes
// the old one gave; `go test -update` rewrites them.
//
// The corpora: the project's generated OpenClaw corpus (every duplication
// trap), the same bytes re-serialised with alphabetically ordered keys and
// with Python's separators (", " and ": ", the writer's key order): other
// writers' shapes, which must give the very same reports; a
// generated Claude Code corpus, and every hand-made fixture (field cases,
// traps, Claude Code and Codex samples) read together.

// goldenCorpus is one corpus of the golden reports.
type goldenCorpus struct {
	name   string
	cfg    Config // dirs only
	ranges [][2]string
}

var goldenZones = []string{"UTC", "America/Los_Angeles", "Asia/Kolkata"}

// goldenNow is the "now" of the blocks report (an active block depends on it).
var goldenNow = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

var goldenCorpora = sync.OnceValues(func() ([]goldenCorpus, error) {
	root, err := os.MkdirTemp("", "fleetmeter-golden")
	if err != nil {
		return nil, err
	}
	oc := filepath.Join(root, "openclaw")
	opts := corpus.DefaultOptions()
	opts.SizeBytes = 3 << 20
	opts.Seed = 7
	if _, err := corpus.Generate(oc, opts); err != nil {
		return nil, err
	}
	sorted := filepath.Join(root, "openclaw-sorted")
	if err := sortKeysTree(oc, sorted); err != nil {
		return nil, err
	}
	spaced := filepath.Join(root, "openclaw-spaced")
	if err := spacedTree(oc, spaced); err != nil {
		return nil, err
	}
	cc := filepath.Join(root, "claude")
	if _, err := writeClaudeCorpus(cc, defaultClaudeCorpus(2<<20)); err != nil {
		return nil, err
	}
	fixtures, err := fixtureDirs()
	if err != nil {
		return nil, err
	}
	ocRanges := [][2]string{{"", ""}, {"2026-05-15", ""}, {"", "2026-05-14"}, {"2026-04-20", "2026-06-10"}}
	return []goldenCorpus{
		{name: "openclaw", cfg: Config{OpenClawDirs: []string{oc}}, ranges: ocRanges},
		{name: "openclaw-sorted", cfg: Config{OpenClawDirs: []string{sorted}}, ranges: ocRanges},
		{name: "openclaw-spaced", cfg: Config{OpenClawDirs: []string{spaced}}, ranges: ocRanges},
		{name: "claude", cfg: Config{ClaudeDirs: []string{cc}},
			ranges: [][2]string{{"", ""}, {"2026-05-21", ""}, {"", "2026-05-20"}, {"2026-05-14", "2026-05-27"}}},
		{name: "fixtures", cfg: fixtures,
			ranges: [][2]string{{"", ""}, {"2026-04-11", ""}, {"", "2026-04-10"}, {"2026-03-01", "2026-05-31"}}},
	}, nil
})

// sameAs names the golden a corpus must reproduce: a reshaped copy of the
// generated OpenClaw corpus reports what the original reports.
func sameAs(corpus string) string {
	return strings.TrimSuffix(strings.TrimSuffix(corpus, "-sorted"), "-spaced")
}

// fixtureDirs names every hand-made transcript tree in testdata.
func fixtureDirs() (Config, error) {
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	cfg := Config{
		OpenClawDirs: []string{abs("testdata/openclaw/traps")},
		ClaudeDirs:   []string{abs("testdata/claude")},
		CodexDirs:    []string{abs("testdata/codex")},
	}
	cases, err := filepath.Glob("testdata/field/*/input/*")
	if err != nil {
		return cfg, err
	}
	for _, d := range cases {
		switch filepath.Base(d) {
		case "openclaw":
			cfg.OpenClawDirs = append(cfg.OpenClawDirs, abs(d))
		case "claude":
			cfg.ClaudeDirs = append(cfg.ClaudeDirs, abs(d))
		case "codex":
			cfg.CodexDirs = append(cfg.CodexDirs, abs(d))
		}
	}
	return cfg, nil
}

// sortKeysTree copies the tree at from to to, every JSON line (and
// sessions.json) re-serialised with its keys in alphabetical order at
// every level, numbers as written.
func sortKeysTree(from, to string) error { return rewriteTree(from, to, sortKeys) }

// spacedTree copies the tree at from to to, every JSON line (and
// sessions.json) re-serialised with Python's json.dumps separators (", "
// and ": "), keys in the writer's order, numbers as written.
func spacedTree(from, to string) error { return rewriteTree(from, to, spaceSeparators) }

// rewriteTree copies the tree at from to to, each JSON document (a JSONL
// line, or a whole .json file) rewritten by fn, file times kept. fn
// returns a value that is not JSON (torn writes, garbage) as it is; an
// unterminated last line is copied as it is.
func rewriteTree(from, to string, fn func([]byte) []byte) error {
	return filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(to, strings.TrimPrefix(p, from))
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var out bytes.Buffer
		if strings.HasSuffix(p, ".json") {
			out.Write(fn(bytes.TrimSpace(src)))
		} else {
			for len(src) > 0 {
				line, rest, found := bytes.Cut(src, []byte("\n"))
				src = rest
				if !found {
					out.Write(line) // unterminated: as it is
					break
				}
				out.Write(fn(line))
				out.WriteByte('\n')
			}
		}
		if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
			return err
		}
		return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
	})
}

// sortKeys re-serialises one JSON value with sorted keys (Go encodes maps
// in key order), or returns line as it is when it is not JSON.
func sortKeys(line []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return line
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return line
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// spaceSeparators rewrites one compact JSON value as Python's json.dumps
// writes it by default: a space after every comma and colon outside
// strings, everything else as written. A line that is not JSON is
// returned as it is.
func spaceSeparators(line []byte) []byte {
	if !json.Valid(line) {
		return line
	}
	out := make([]byte, 0, len(line)+len(line)/8)
	inString, escaped := false, false
	for _, c := range line {
		out = append(out, c)
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ',' || c == ':'):
			out = append(out, ' ')
		}
	}
	return out
}

// goldenPricer is the CLI's pricer: the embedded table, no overrides.
func goldenPricer(t testing.TB) Pricer {
	t.Helper()
	table, err := pricing.LoadTable()
	if err != nil {
		t.Fatal(err)
	}
	return pricing.NewPricer(table, nil)
}

// reportText renders a report as the CLI prints it: indented JSON or the table.
func reportText(t testing.TB, rep any, asJSON bool, q rollup.Query) string {
	t.Helper()
	var b bytes.Buffer
	if asJSON {
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			t.Fatal(err)
		}
	} else if err := rollup.WriteReport(&b, rep.(rollup.Report), rollup.TextOptions{Query: q}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// goldenReports renders every kind, zone, range and format from readers
// (one per zone), in a fixed order, each under a header line naming it.
func goldenReports(t testing.TB, c goldenCorpus, readerIn func(zone string) (rollup.Reader, rollup.BlockLedger)) []goldenSection {
	t.Helper()
	var out []goldenSection
	for _, zone := range goldenZones {
		r, ledger := readerIn(zone)
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		for _, rg := range c.ranges {
			from, to, err := rollup.ParseRange(rg[0], rg[1])
			if err != nil {
				t.Fatal(err)
			}
			args := "--tz " + zone
			if rg[0] != "" {
				args += " --since " + rg[0]
			}
			if rg[1] != "" {
				args += " --until " + rg[1]
			}
			for _, kind := range rollup.Kinds() {
				q := rollup.Query{Kind: kind, Since: from, Until: to, TZ: zone}
				rep, err := r.Report(context.Background(), q)
				if err != nil {
					t.Fatalf("%s %s %s: %v", c.name, kind, args, err)
				}
				out = append(out,
					goldenSection{fmt.Sprintf("report %s --json %s", kind, args), reportText(t, rep, true, q)},
					goldenSection{fmt.Sprintf("report %s %s", kind, args), reportText(t, rep, false, q)})
			}
			// Blocks: Claude Code's 5-hour windows, cut from the records.
			fromMs, toMs := int64(math.MinInt64/2), int64(math.MaxInt64/2)
			if from != rollup.MinDay {
				fromMs = storage.DayStartMillis(from, loc)
			}
			if to != rollup.MaxDay {
				toMs = storage.DayStartMillis(to+1, loc)
			}
			blocks, err := rollup.LoadBlocks(ledger, fromMs, toMs, goldenNow)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, goldenSection{"report blocks --json " + args, reportText(t, blocks, true, rollup.Query{})})
		}
	}
	return out
}

type goldenSection struct{ name, text string }

// directReader reads c's transcripts into a tally in zone, as the CLI's
// one-shot report does.
func directReader(t testing.TB, c goldenCorpus, zone string) (rollup.Reader, rollup.BlockLedger) {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	tally := rollup.NewTally(loc)
	cfg := c.cfg
	cfg.Final, cfg.Pricer = true, goldenPricer(t)
	if _, err := New(cfg, tally).Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rollup.NewReader(tally, rollup.ReaderConfig{}), tally
}

func goldenPath(name string) string {
	return filepath.Join("testdata", "golden", "reports", name+".txt.gz")
}

func readGolden(t testing.TB, name string) map[string]string {
	t.Helper()
	f, err := os.Open(goldenPath(name))
	if err != nil {
		t.Fatalf("%v (run go test -run TestReportGoldens -update to create it)", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var name0 string
	var text strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		line := sc.Text()
		if h, ok := strings.CutPrefix(line, "=== "); ok {
			if name0 != "" {
				out[name0] = text.String()
			}
			name0 = h
			text.Reset()
			continue
		}
		text.WriteString(line)
		text.WriteByte('\n')
	}
	if name0 != "" {
		out[name0] = text.String()
	}
	return out
}

func writeGolden(t testing.TB, name string, sections []goldenSection) {
	t.Helper()
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	for _, s := range sections {
		fmt.Fprintf(zw, "=== %s\n%s", s.name, s.text)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(goldenPath(name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenPath(name), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// compareSections reports every section of got that differs from want,
// with the first differing line.
func compareSections(t *testing.T, what string, got []goldenSection, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d reports, want %d", what, len(got), len(want))
	}
	bad := 0
	for _, s := range got {
		w, ok := want[s.name]
		if ok && w == s.text {
			continue
		}
		if bad++; bad > 5 {
			continue
		}
		gl, wl := strings.Split(s.text, "\n"), strings.Split(w, "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		at := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(end)"
		}
		t.Errorf("%s: %q differs at line %d:\n got: %s\nwant: %s", what, s.name, i+1, at(gl), at(wl))
	}
	if bad > 5 {
		t.Errorf("%s: %d reports differ in all", what, bad)
	}
}

func TestReportGoldens(t *testing.T) {
	corpora, err := goldenCorpora()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range corpora {
		t.Run(c.name, func(t *testing.T) {
			got := goldenReports(t, c, func(zone string) (rollup.Reader, rollup.BlockLedger) { return directReader(t, c, zone) })
			// The sorted-keys and spaced corpora are the same calls in
			// other shapes: their reports are the original's, byte for byte.
			name := sameAs(c.name)
			if *update && name == c.name {
				writeGolden(t, name, got)
			}
			compareSections(t, c.name, got, readGolden(t, name))
		})
	}
}

// The ledger gives the direct report's bytes: the same corpora ingested
// into a bbolt file (in UTC, as `ingest --once`; other zones recut from
// the ledger) report exactly what reading the transcripts directly
// reports, for every kind, zone and range.
func TestDirectReportEqualsLedger(t *testing.T) {
	corpora, err := goldenCorpora()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range corpora {
		if c.name == "fixtures" {
			continue // hand-made trees hold unterminated lines, which only a one-shot read counts
		}
		t.Run(c.name, func(t *testing.T) {
			db := openDB(t)
			cfg := c.cfg
			cfg.Pricer = goldenPricer(t)
			in := New(cfg, db)
			if _, err := in.Step(context.Background()); err != nil {
				t.Fatal(err)
			}
			if res := step(t, in); res.Read != 0 || res.Added != 0 {
				t.Errorf("a second ingest read %d files and added %d calls", res.Read, res.Added)
			}
			ledger := goldenReports(t, c, func(string) (rollup.Reader, rollup.BlockLedger) {
				return rollup.NewReader(db, rollup.ReaderConfig{}), db
			})
			direct := goldenReports(t, c, func(zone string) (rollup.Reader, rollup.BlockLedger) { return directReader(t, c, zone) })
			want := map[string]string{}
			for _, s := range direct {
				want[s.name] = s.text
			}
			compareSections(t, c.name+" ledger vs direct", ledger, want)
		})
	}
}
