package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"

	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
	"github.com/fleetmeter/fleetmeter/rollup"
)

// The benchmarks read one generated OpenClaw corpus (90 days, 8 agents,
// every trap). FLEETMETER_BENCH_MB sets its size (default 100);
// FLEETMETER_BENCH_DIR reads an existing OpenClaw state dir instead (another
// shape, many small files), FLEETMETER_BENCH_CLAUDE an existing Claude Code
// config dir (the Claude benchmarks generate one otherwise). Compare:
//
//	go test -run '^$' -bench 'Corpus' -count 6 ./ingest/ | benchstat -
//
// BenchmarkCorpusCat (reading the bytes) and BenchmarkCorpusJSONLoop (a
// plain encoding/json line loop) are the baselines the others are read against.

var benchCorpus = sync.OnceValues(func() (string, error) {
	if dir := os.Getenv("FLEETMETER_BENCH_DIR"); dir != "" {
		return dir, nil
	}
	mb := 100
	if v, err := strconv.Atoi(os.Getenv("FLEETMETER_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	dir, err := os.MkdirTemp("", "fleetmeter-bench-corpus")
	if err != nil {
		return "", err
	}
	opts := corpus.DefaultOptions()
	opts.SizeBytes = int64(mb) << 20
	_, err = corpus.Generate(dir, opts)
	return dir, err
})

func corpusDir(b *testing.B) (string, []string, int64) {
	b.Helper()
	dir, err := benchCorpus()
	if err != nil {
		b.Fatal(err)
	}
	return listCorpus(dir)
}

// listCorpus lists the transcripts of an OpenClaw state dir, and their bytes.
func listCorpus(dir string) (string, []string, int64) {
	var files []string
	var size int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && classify(fi.Name()) != kindIgnore {
			files = append(files, p)
			size += fi.Size()
		}
		return nil
	})
	return dir, files, size
}

// BenchmarkCorpusCat reads every transcript: the floor.
func BenchmarkCorpusCat(b *testing.B) {
	_, files, size := corpusDir(b)
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	for b.Loop() {
		for _, p := range files {
			f, _ := os.Open(p)
			for {
				if _, err := f.Read(buf); err != nil {
					break
				}
			}
			f.Close()
		}
	}
}

// BenchmarkCorpusJSONLoop is the naive reader: every line through
// encoding/json on one core.
func BenchmarkCorpusJSONLoop(b *testing.B) {
	_, files, size := corpusDir(b)
	b.SetBytes(size)
	for b.Loop() {
		var tokens int64
		for _, p := range files {
			f, _ := os.Open(p)
			r := bufio.NewReaderSize(f, 1<<20)
			for {
				line, err := r.ReadBytes('\n')
				if len(line) > 0 {
					var e struct {
						Message struct {
							Usage struct{ Input, Output int64 } `json:"usage"`
						} `json:"message"`
					}
					if json.Unmarshal(line, &e) == nil {
						tokens += e.Message.Usage.Input + e.Message.Usage.Output
					}
				}
				if err != nil {
					break
				}
			}
			f.Close()
		}
		if tokens == 0 {
			b.Fatal("no tokens")
		}
	}
}

// BenchmarkCorpusReport is `report --openclaw-dir`: both cores, in memory.
func BenchmarkCorpusReport(b *testing.B) {
	dir, _, size := corpusDir(b)
	b.SetBytes(size)
	for b.Loop() {
		tally := rollup.NewTally(time.UTC)
		in := New(Config{OpenClawDirs: []string{dir}, Final: true}, tally)
		if _, err := in.Step(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCorpusColdIngest is `ingest --once` into a fresh bbolt file.
func BenchmarkCorpusColdIngest(b *testing.B) {
	dir, _, size := corpusDir(b)
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		db := openDB(b)
		b.StartTimer()
		in := New(Config{OpenClawDirs: []string{dir}}, db)
		if _, err := in.Step(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCorpusPollUnchanged is one daemon poll over ingested, unchanged
// history: it must cost a stat per file, not a read.
func BenchmarkCorpusPollUnchanged(b *testing.B) {
	dir, files, _ := corpusDir(b)
	db := openDB(b)
	in := New(Config{OpenClawDirs: []string{dir}}, db)
	if _, err := in.Step(context.Background()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := in.Step(context.Background())
		if err != nil || res.Read != 0 {
			b.Fatalf("poll read %d files: %v", res.Read, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(files)), "ns/file")
}

// BenchmarkCorpusPollWatched is the daemon's poll with the directory
// watcher and no events: a listing per directory, no stat per file.
func BenchmarkCorpusPollWatched(b *testing.B) {
	dir, files, _ := corpusDir(b)
	in := New(Config{OpenClawDirs: []string{dir}}, openDB(b))
	w := in.startWatching()
	defer w.close()
	for range 3 { // the first polls stat everything while watches are added
		if _, err := in.stepWatched(context.Background(), w); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		w.polls = 3 // stay clear of the periodic full scan
		res, err := in.stepWatched(context.Background(), w)
		if err != nil || res.Read != 0 {
			b.Fatalf("poll read %d files: %v", res.Read, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(files)), "ns/file")
}

// BenchmarkParseAssistantLine is the line parser alone on a realistic
// line: the reference path (a full fastjson parse) and the skimmer.
func BenchmarkParseAssistantLine(b *testing.B) {
	line := []byte(`{"type":"message","id":"4e5f6a7b","parentId":"3d4e5f6a","timestamp":"2026-04-10T08:31:20.480Z","message":{"role":"assistant","content":[{"type":"thinking","thinking":"` +
		string(bytes.Repeat([]byte("Let me think about this step by step. "), 100)) +
		`"},{"type":"text","text":"Done: the dentist is now at 16:00."}],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":4,"output":60,"cacheRead":12760,"cacheWrite":150,"totalTokens":12974,"cost":{"input":0.000012,"output":0.0009,"cacheRead":0.003828,"cacheWrite":0.0005625000000000001,"total":0.0053025}},"stopReason":"stop","timestamp":1775809875002,"responseId":"msg_01Kd6qXr9Zn4Sg7Ua3Le0Yoc"}}`)
	var lp lineParser
	var pl parsedLine
	b.Run("reference", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			lp.parse(line, &pl)
			if pl.kind != lineUsage {
				b.Fatal("not parsed")
			}
		}
	})
	b.Run("skim", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			if !lp.quick(line, &pl) || pl.kind != lineUsage {
				b.Fatal("not parsed")
			}
		}
	})
}

// Other shapes (FLEETMETER_BENCH_MB sets the first one's size too):
//
//   - sorted: another writer's, long lines (a ~200 KB image in 3 user turns
//     of 10) and every object's keys in alphabetical order;
//
//   - tiny: a fleet's, FLEETMETER_BENCH_FILES (10,000) transcripts of one
//     call each.
//
//     go test -run '^$' -bench 'Shapes' -count 6 ./ingest/ | benchstat -
var benchShapes = sync.OnceValues(func() (map[string]string, error) {
	root, err := os.MkdirTemp("", "fleetmeter-bench-shapes")
	if err != nil {
		return nil, err
	}
	mb := 100
	if v, err := strconv.Atoi(os.Getenv("FLEETMETER_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	opts := corpus.DefaultOptions()
	opts.SizeBytes, opts.Seed, opts.ImageRate = int64(mb)<<20, 2, 0.3
	if _, err := corpus.Generate(filepath.Join(root, "pi"), opts); err != nil {
		return nil, err
	}
	if err := sortKeysTree(filepath.Join(root, "pi"), filepath.Join(root, "sorted")); err != nil {
		return nil, err
	}
	files := 10_000
	if v, err := strconv.Atoi(os.Getenv("FLEETMETER_BENCH_FILES")); err == nil && v > 0 {
		files = v
	}
	if err := writeTinyCorpus(filepath.Join(root, "tiny"), files); err != nil {
		return nil, err
	}
	return map[string]string{"sorted": filepath.Join(root, "sorted"), "tiny": filepath.Join(root, "tiny")}, nil
})

// writeTinyCorpus writes n one-call transcripts over 20 agents, with a
// session key for one session in ten, as a fleet of small agents leaves them.
func writeTinyCorpus(root string, n int) error {
	const agents = 20
	for a := range agents {
		dir := filepath.Join(root, "agents", fmt.Sprintf("agent%02d", a), "sessions")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		store := map[string]any{}
		for i := a; i < n; i += agents {
			id := fmt.Sprintf("%02d%06d-0000-4000-8000-000000000000", a, i)
			ts := t0 + int64(i)*60_000
			body := headerLine(id, ts) +
				`{"type":"message","id":"u1","parentId":null,"timestamp":"` + time.UnixMilli(ts+1000).UTC().Format("2006-01-02T15:04:05.000Z") +
				`","message":{"role":"user","content":[{"type":"text","text":"hello there"}],"timestamp":` + strconv.FormatInt(ts+1000, 10) + "}}\n" +
				assistantLine("a1", fmt.Sprintf("msg_%d_%d", a, i), ts+2000, 10, 20, 100, 0, 0.0004)
			if err := os.WriteFile(filepath.Join(dir, id+".jsonl"), []byte(body), 0o644); err != nil {
				return err
			}
			if i%10 == 0 {
				store[fmt.Sprintf("agent:agent%02d:telegram:direct:%d", a, i)] = map[string]any{"sessionId": id, "updatedAt": ts, "chatType": "direct", "channel": "telegram"}
			}
		}
		b, err := json.Marshal(store)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "sessions.json"), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkShapes is `report --openclaw-dir` on the other shapes, each next
// to cat (one buffer reused over the same files), the floor.
func BenchmarkShapes(b *testing.B) {
	shapes, err := benchShapes()
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"sorted", "tiny"} {
		dir, files, size := listCorpus(shapes[name])
		b.Run(name+"/report", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				tally := rollup.NewTally(time.UTC)
				if _, err := New(Config{OpenClawDirs: []string{dir}, Final: true}, tally).Step(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/cat", func(b *testing.B) { catFiles(b, files, size) })
	}
}

// BenchmarkFleetMemory is the daemon's state per file after a first pass
// over a fleet's small transcripts (FLEETMETER_BENCH_FILES, 10,000) and an
// idle poll: the heap it keeps between polls (the budget: 50 MB idle at
// 100k files, the database's mapped pages included).
func BenchmarkFleetMemory(b *testing.B) {
	shapes, err := benchShapes()
	if err != nil {
		b.Fatal(err)
	}
	_, files, _ := listCorpus(shapes["tiny"])
	var perFile float64
	for b.Loop() {
		b.StopTimer()
		db := openDB(b)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		in := New(Config{OpenClawDirs: []string{shapes["tiny"]}}, db)
		if _, err := in.Step(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if res, err := in.Step(context.Background()); err != nil || res.Read != 0 {
			b.Fatalf("an idle poll read %d files: %v", res.Read, err)
		}
		runtime.GC()
		runtime.GC() // pools (buffers, bbolt's pages) are dropped by the second
		runtime.ReadMemStats(&after)
		perFile = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(files))
		runtime.KeepAlive(in)
		b.StartTimer()
	}
	b.ReportMetric(perFile, "heap-B/file")
}
