package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// A step with much to read reports its progress as it goes (files and
// bytes done, a rate) and clears it at the end; a small one stays silent.
func TestProgress(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	for i := range progressMinFiles + 10 {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("s%d.jsonl", i)),
			headerLine(fmt.Sprint("s", i), t0)+assistantLine("a", fmt.Sprint("rp", i), t0+int64(i), 1, 0, 0, 0, 0.001))
	}
	var seen []Progress
	db := openDB(t)
	in := New(Config{OpenClawDirs: []string{root}, OnProgress: func(p Progress) { seen = append(seen, p) }}, db)
	step(t, in)
	if len(seen) < 2 {
		t.Fatalf("%d progress reports, want one per file at least", len(seen))
	}
	// The first pass over many files stats none (see planLazy): its
	// progress is in files, its bytes not known.
	last := seen[len(seen)-1]
	if last.Files != progressMinFiles+10 || last.FilesDone != last.Files || last.Bytes != 0 || last.BytesDone == 0 {
		t.Errorf("last progress %+v, want every file done, bytes read and none known", last)
	}
	checkProgress := func(seen []Progress) {
		t.Helper()
		for i := 1; i < len(seen); i++ {
			if seen[i].BytesDone < seen[i-1].BytesDone || seen[i].FilesDone < seen[i-1].FilesDone {
				t.Fatalf("progress went back: %+v after %+v", seen[i], seen[i-1])
			}
		}
		if st := in.Status(); st.Progress != nil {
			t.Errorf("progress still set after the step: %+v", st.Progress)
		}
	}
	checkProgress(seen)
	// Many new files once some are known: stat'ed, their bytes known.
	seen = nil
	for i := range progressMinFiles + 10 {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("n%d.jsonl", i)),
			headerLine(fmt.Sprint("n", i), t0)+assistantLine("a", fmt.Sprint("rn", i), t0+int64(i), 1, 0, 0, 0, 0.001))
	}
	step(t, in)
	if len(seen) < 2 {
		t.Fatalf("%d progress reports, want one per file at least", len(seen))
	}
	if last := seen[len(seen)-1]; last.Files != progressMinFiles+10 || last.FilesDone != last.Files || last.BytesDone != last.Bytes || last.Bytes == 0 {
		t.Errorf("last progress %+v, want every file and byte done", last)
	}
	checkProgress(seen)
	// A poll with one new call is not a catch-up.
	seen = nil
	appendFile(t, filepath.Join(dir, "s0.jsonl"), assistantLine("b", "rp-new", t0+1000, 1, 0, 0, 0, 0.001))
	step(t, in)
	if len(seen) != 0 {
		t.Errorf("a small poll reported progress %+v", seen)
	}
}

// A cold ingest stats its files before reading them only when they are
// few: its progress (a few large files) is then told in bytes; many files
// are read without a stat first, and a one-shot report never stats first.
func TestFirstPlanStatsFewFiles(t *testing.T) {
	for _, tc := range []struct {
		files   int
		final   bool
		statted bool
	}{
		{3, false, true},
		{progressMinFiles, false, false},
		{3, true, false},
	} {
		root := t.TempDir()
		dir := sessionsDir(t, root, "main")
		for i := range tc.files {
			appendFile(t, filepath.Join(dir, fmt.Sprintf("s%d.jsonl", i)),
				headerLine(fmt.Sprint("s", i), t0)+assistantLine("a", fmt.Sprint("r", i), t0+int64(i), 1, 0, 0, 0, 0.001))
		}
		in := New(Config{OpenClawDirs: []string{root}, Final: tc.final}, openDB(t))
		if err := in.load(); err != nil {
			t.Fatal(err)
		}
		items, err := in.plan(&storage.Batch{Cursors: map[string][]byte{}, SessionMeta: map[string][]byte{}})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != tc.files {
			t.Fatalf("%d files, final %v: %d items", tc.files, tc.final, len(items))
		}
		for _, it := range items {
			if it.statted != tc.statted || tc.statted && it.size <= 0 {
				t.Fatalf("%d files, final %v: %s statted %v (size %d), want %v", tc.files, tc.final, it.name, it.statted, it.size, tc.statted)
			}
		}
	}
}

// countingLedger counts the batches committed and the most files (cursors)
// one of them held.
type countingLedger struct {
	*storage.DB
	commits, mostFiles int
}

func (c *countingLedger) Apply(b *storage.Batch) (storage.ApplyResult, error) {
	c.commits++
	c.mostFiles = max(c.mostFiles, len(b.Cursors))
	return c.DB.Apply(b)
}

// BatchFiles bounds the files one commit holds (ingest --once takes more
// than the daemon's default): a first pass over 300 files commits in
// batches of at most that many, ramped up from an eighth of it.
func TestBatchFilesBoundsCommits(t *testing.T) {
	root := t.TempDir()
	dir := sessionsDir(t, root, "main")
	for i := range 300 {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("s%d.jsonl", i)),
			headerLine(fmt.Sprint("s", i), t0)+assistantLine("a", fmt.Sprint("r", i), t0+int64(i), 1, 0, 0, 0, 0.001))
	}
	for _, tc := range []struct{ batchFiles, commits int }{
		{0, 2},    // the default, 2,000: 250 files, then the rest
		{80, 6},   // 10, 20, 40, 80, 80, 70
		{4000, 1}, // 500 at first: all at once
	} {
		l := &countingLedger{DB: openDB(t)}
		step(t, New(Config{OpenClawDirs: []string{root}, BatchFiles: tc.batchFiles}, l))
		if l.commits != tc.commits || tc.batchFiles > 0 && l.mostFiles > tc.batchFiles {
			t.Errorf("BatchFiles %d: %d commits of at most %d files, want %d", tc.batchFiles, l.commits, l.mostFiles, tc.commits)
		}
		if got := totalsOf(t, l.DB).Sums.Messages; got != 300 {
			t.Errorf("BatchFiles %d: %d calls stored, want 300", tc.batchFiles, got)
		}
	}
}

// With the bytes not known, the time left is guessed from the rate of
// files, and only once enough are done: the first file of 12k said "22m".
func TestTimeLeftInFiles(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	var last Progress
	in := New(Config{Now: func() time.Time { return now }, OnProgress: func(p Progress) { last = p }}, rollup.NewTally(time.UTC))
	items := make([]*fileItem, 1000)
	for i := range items {
		items[i] = &fileItem{size: -1} // not stat'ed (see planLazy)
	}
	tr := in.trackProgress(items)
	for n := 1; n <= 100; n++ {
		now = now.Add(time.Second)
		tr.read(1000, true)
		switch {
		case last.Bytes != 0 || last.FilesDone != n:
			t.Fatalf("after %d files: %+v", n, last)
		case n < etaMinFiles && last.Left != 0:
			t.Fatalf("time left guessed from %d files: %v", n, last.Left)
		case n >= etaMinFiles && (last.Left-time.Duration(1000-n)*time.Second).Abs() > time.Millisecond:
			t.Fatalf("after %d files at one a second: %v left, want %v", n, last.Left, time.Duration(1000-n)*time.Second)
		}
	}
}

// A cold pass over many files (a plan that stats none) reads each file
// once whatever its names, and says so: a second root holding hard links
// of the first's files adds no file, no read and no call.
func TestColdPassCountsAFileOnce(t *testing.T) {
	root, second := t.TempDir(), t.TempDir()
	linkedSessions(t, sessionsDir(t, root, "main"), sessionsDir(t, second, "main"), progressMinFiles)
	db := openDB(t)
	res, err := New(Config{OpenClawDirs: []string{root, second}}, db).Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != progressMinFiles || res.Read != progressMinFiles || res.Added != progressMinFiles {
		t.Errorf("step %+v: want %d files, read and added", res, progressMinFiles)
	}
	if got := totalsOf(t, db).Sums.Messages; got != progressMinFiles {
		t.Errorf("%d calls stored, want %d", got, progressMinFiles)
	}
}

// A file hard-linked under another agent's name in a second root belongs
// to the first root's agent (roots as configured), whether the plan stats
// the files first (a few) or not (many): the two plans keep one name alike.
func TestSecondRootLinkKeepsFirstRootsAgent(t *testing.T) {
	for _, files := range []int{3, progressMinFiles} {
		// The first root's path sorts after the second's.
		base := t.TempDir()
		first, second := filepath.Join(base, "z-first"), filepath.Join(base, "a-second")
		linkedSessions(t, sessionsDir(t, first, "zother"), sessionsDir(t, second, "sales"), files)
		for _, final := range []bool{false, true} {
			var ledger Ledger = rollup.NewTally(time.UTC)
			if !final {
				ledger = openDB(t)
			}
			if _, err := New(Config{OpenClawDirs: []string{first, second}, Final: final}, ledger).Step(context.Background()); err != nil {
				t.Fatal(err)
			}
			rep, err := rollup.Build(ledger.(rollup.Source), rollup.Query{Kind: "agent", Since: rollup.MinDay, Until: rollup.MaxDay})
			if err != nil {
				t.Fatal(err)
			}
			rows := rep.Rows.([]rollup.AgentRow)
			if len(rows) != 1 || rows[0].Agent != "zother" || rows[0].Messages != int64(files) {
				t.Errorf("%d files, final %v: agents %+v, want all %d calls in zother", files, final, rows, files)
			}
		}
	}
}

// linkedSessions writes n one-call sessions into dir and hard-links each
// into dir2 (skipping the test where hard links cannot be made).
func linkedSessions(t *testing.T, dir, dir2 string, n int) {
	t.Helper()
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("s%d.jsonl", i))
		appendFile(t, p, headerLine(fmt.Sprint("s", i), t0)+assistantLine("a", fmt.Sprint("r", i), t0+int64(i), 1, 0, 0, 0, 0.001))
		if err := os.Link(p, filepath.Join(dir2, fmt.Sprintf("s%d.jsonl", i))); err != nil {
			t.Skip("no hard links here:", err)
		}
	}
}
