package appliance

import (
	"bufio"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
)

// The field cases (ingest/testdata/field) through the whole program: a
// one-shot report, `ingest --once` and a live daemon that watches the
// files grow line by line (sometimes half a line per poll) all give the
// hand-worked totals of each case.
func TestFieldCasesEndToEnd(t *testing.T) {
	cases, err := filepath.Glob("../ingest/testdata/field/*/expected.json")
	if err != nil || len(cases) < 14 {
		t.Fatalf("%d field cases (%v)", len(cases), err)
	}
	for _, exp := range cases {
		var c struct {
			Name    string         `json:"case"`
			Command []string       `json:"command"`
			Totals  map[string]any `json:"totals"`
		}
		b, _ := os.ReadFile(exp)
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		t.Run(c.Name, func(t *testing.T) {
			caseDir := filepath.Dir(exp)
			args := append([]string(nil), c.Command...)
			kind := args[1]
			for i, a := range args {
				if strings.HasSuffix(a, "-dir") {
					args[i+1] = filepath.Join(caseDir, args[i+1])
				}
			}
			oneShot := cliReport(t, nil, kind, args...)
			checkFieldTotals(t, "report", c.Totals, oneShot)

			data := t.TempDir()
			env := map[string]string{"FLEETMETER_DATA_DIR": data}
			ingestArgs := append([]string{"ingest", "--once"}, args[3:]...) // the source flags
			if code, _, stderr := cli(t, env, ingestArgs...); code != 0 {
				t.Fatalf("ingest --once: %s", stderr)
			}
			fromDB := cliReport(t, env, kind, "report", kind, "--json")
			sameFieldTotals(t, "ingest --once", fromDB, oneShot)

			live := liveAppend(t, caseDir, args, kind, oneShot)
			sameFieldTotals(t, "serve", live, oneShot)
		})
	}
}

func cliReport(t *testing.T, env map[string]string, kind string, args ...string) rollup.Report {
	t.Helper()
	code, out, stderr := cli(t, env, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, stderr)
	}
	rep, err := rollup.DecodeReport(kind, []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func checkFieldTotals(t *testing.T, what string, want map[string]any, rep rollup.Report) {
	t.Helper()
	var got map[string]any
	b, _ := json.Marshal(rep.Totals)
	json.Unmarshal(b, &got)
	for k, v := range want {
		w, g := v.(float64), got[k].(float64)
		if math.Abs(w-g) > 1e-9+1e-6*math.Abs(w) {
			t.Errorf("%s: %s = %v, want %v", what, k, g, w)
		}
	}
}

func sameFieldTotals(t *testing.T, what string, got, want rollup.Report) {
	t.Helper()
	g, w := got.Totals, want.Totals
	if math.Abs(g.CostUSD-w.CostUSD) > 1e-9 {
		t.Errorf("%s: cost %.9f, want %.9f", what, g.CostUSD, w.CostUSD)
	}
	g.CostUSD, w.CostUSD = 0, 0
	g.InputCostUSD, w.InputCostUSD, g.OutputCostUSD, w.OutputCostUSD = 0, 0, 0, 0
	g.CacheReadCostUSD, w.CacheReadCostUSD, g.CacheWriteCost, w.CacheWriteCost, g.ToolsCostUSD, w.ToolsCostUSD = 0, 0, 0, 0, 0, 0
	if g != w {
		t.Errorf("%s: totals\n%+v\nwant\n%+v", what, g, w)
	}
	if !equalJSON(got.Rows, want.Rows) && !roughlySameRows(got.Rows, want.Rows) {
		gj, _ := json.Marshal(got.Rows)
		wj, _ := json.Marshal(want.Rows)
		t.Errorf("%s: rows\n%s\nwant\n%s", what, gj, wj)
	}
}

// roughlySameRows compares rows with money rounded to the nano-dollar:
// a float sum in JSON may print its last digit differently.
func roughlySameRows(a, b any) bool {
	round := func(v any) string {
		j, _ := json.Marshal(v)
		var x any
		json.Unmarshal(j, &x)
		var walk func(any) any
		walk = func(x any) any {
			switch y := x.(type) {
			case map[string]any:
				for k, v := range y {
					y[k] = walk(v)
				}
			case []any:
				for i, v := range y {
					y[i] = walk(v)
				}
			case float64:
				return math.Round(y * 1e9)
			}
			return x
		}
		out, _ := json.Marshal(walk(x))
		return string(out)
	}
	return round(a) == round(b)
}

// liveAppend runs the daemon on empty copies of the case's dirs and writes
// the case's files into them line by line, round robin across files,
// sometimes cutting a line across polls; it returns the report once the
// daemon has the one-shot report's calls (or the deadline passed).
func liveAppend(t *testing.T, caseDir string, args []string, kind string, want rollup.Report) rollup.Report {
	t.Helper()
	root := t.TempDir()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RuntimeDir = shortTempDir(t) // never the machine's /run/fleetmeter, where a real daemon may run
	cfg.PollInterval = 5 * time.Millisecond
	cfg.Listen = "127.0.0.1:0"
	cfg.NoDiscover = true
	type file struct {
		dst   string
		lines []string
	}
	var files []*file
	for i := 2; i < len(args); i++ {
		if !strings.HasSuffix(args[i], "-dir") {
			continue
		}
		src := args[i+1]
		dst := filepath.Join(root, strings.TrimPrefix(src, caseDir))
		switch args[i] {
		case "--openclaw-dir":
			cfg.OpenClawDirs = append(cfg.OpenClawDirs, dst)
		case "--claude-dir":
			cfg.ClaudeDirs = append(cfg.ClaudeDirs, dst)
		case "--codex-dir":
			cfg.CodexDirs = append(cfg.CodexDirs, dst)
		}
		filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			out := filepath.Join(dst, strings.TrimPrefix(p, src))
			if fi.IsDir() {
				return os.MkdirAll(out, 0o755)
			}
			if fi.Name() == "sessions.json" { // the session store exists before its transcripts
				b, _ := os.ReadFile(p)
				return os.WriteFile(out, b, 0o644)
			}
			f := &file{dst: out}
			in, _ := os.Open(p)
			defer in.Close()
			sc := bufio.NewScanner(in)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				f.lines = append(f.lines, sc.Text()+"\n")
			}
			files = append(files, f)
			return nil
		})
		i++
	}
	sort.Slice(files, func(i, j int) bool { return files[i].dst < files[j].dst })
	app := runDaemon(t, cfg)
	rng := rand.New(rand.NewPCG(1, uint64(len(files))))
	for round := 0; ; round++ {
		wrote := false
		for _, f := range files {
			if round >= len(f.lines) {
				continue
			}
			wrote = true
			fh, err := os.OpenFile(f.dst, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			line := f.lines[round]
			cut := rng.IntN(len(line))
			fh.WriteString(line[:cut])
			if rng.IntN(3) == 0 {
				time.Sleep(8 * time.Millisecond) // a poll sees half a line
			}
			fh.WriteString(line[cut:])
			fh.Close()
			time.Sleep(2 * time.Millisecond)
		}
		if !wrote {
			break
		}
	}
	var got rollup.Report
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, err = rollup.Build(app.db, rollup.Query{Kind: kind, Since: rollup.MinDay, Until: rollup.MaxDay}); err != nil {
			t.Fatal(err)
		}
		if got.Totals.Messages == want.Totals.Messages && math.Abs(got.Totals.CostUSD-want.Totals.CostUSD) < 1e-9 {
			// One more poll: nothing must change after the files are complete.
			time.Sleep(30 * time.Millisecond)
			got, _ = rollup.Build(app.db, rollup.Query{Kind: kind, Since: rollup.MinDay, Until: rollup.MaxDay})
			break
		}
	}
	return got
}
