package ingest

import (
	"fmt"
	"path/filepath"
	"testing"
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
	last := seen[len(seen)-1]
	if last.Files != progressMinFiles+10 || last.FilesDone != last.Files || last.BytesDone != last.Bytes || last.Bytes == 0 {
		t.Errorf("last progress %+v, want every file and byte done", last)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].BytesDone < seen[i-1].BytesDone || seen[i].FilesDone < seen[i-1].FilesDone {
			t.Fatalf("progress went back: %+v after %+v", seen[i], seen[i-1])
		}
	}
	if st := in.Status(); st.Progress != nil {
		t.Errorf("progress still set after the step: %+v", st.Progress)
	}
	// A poll with one new call is not a catch-up.
	seen = nil
	appendFile(t, filepath.Join(dir, "s0.jsonl"), assistantLine("b", "rp-new", t0+1000, 1, 0, 0, 0, 0.001))
	step(t, in)
	if len(seen) != 0 {
		t.Errorf("a small poll reported progress %+v", seen)
	}
}
