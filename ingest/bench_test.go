package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"

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
// every trap). FLEETMETER_BENCH_MB sets its size (default 100). Compare:
//
//	go test -run '^$' -bench 'Corpus' -count 6 ./ingest/ | benchstat -
//
// BenchmarkCorpusCat (reading the bytes) and BenchmarkCorpusJSONLoop (a
// plain encoding/json line loop) are the baselines the others are read against.

var benchCorpus = sync.OnceValues(func() (string, error) {
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

// BenchmarkParseAssistantLine is the parser alone on a realistic line.
func BenchmarkParseAssistantLine(b *testing.B) {
	line := []byte(`{"type":"message","id":"4e5f6a7b","parentId":"3d4e5f6a","timestamp":"2026-04-10T08:31:20.480Z","message":{"role":"assistant","content":[{"type":"thinking","thinking":"` +
		string(bytes.Repeat([]byte("Let me think about this step by step. "), 100)) +
		`"},{"type":"text","text":"Done: the dentist is now at 16:00."}],"api":"anthropic-messages","provider":"anthropic","model":"claude-sonnet-4-6","usage":{"input":4,"output":60,"cacheRead":12760,"cacheWrite":150,"totalTokens":12974,"cost":{"input":0.000012,"output":0.0009,"cacheRead":0.003828,"cacheWrite":0.0005625000000000001,"total":0.0053025}},"stopReason":"stop","timestamp":1775809875002,"responseId":"msg_01Kd6qXr9Zn4Sg7Ua3Le0Yoc"}}`)
	var lp lineParser
	var pl parsedLine
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		lp.parse(line, &pl)
		if pl.kind != lineUsage {
			b.Fatal("not parsed")
		}
	}
}
