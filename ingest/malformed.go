package ingest

import "sort"

// MalformedFile is a transcript file with malformed lines (not JSON, or
// JSON of the wrong shape), for `fleetmeter health` to name.
type MalformedFile struct {
	Path  string `json:"path"`
	Lines int64  `json:"lines"`
}

// maxMalformedFiles bounds the files the status names: a host whose every
// file is broken does not grow the status without end.
const maxMalformedFiles = 20

// noteMalformed counts n malformed lines read from path.
func (in *Ingester) noteMalformed(path string, n int64) {
	if n == 0 {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	m := in.stats.malformed
	if m == nil {
		m = map[string]int64{}
		in.stats.malformed = m
	}
	if _, ok := m[path]; !ok && len(m) >= maxMalformedFiles {
		in.stats.MalformedOther += n
		return
	}
	m[path] += n
}

// malformedList is the files of m, the most malformed lines first.
func malformedList(m map[string]int64) []MalformedFile {
	if len(m) == 0 {
		return nil
	}
	out := make([]MalformedFile, 0, len(m))
	for p, n := range m {
		out = append(out, MalformedFile{Path: p, Lines: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Lines != out[j].Lines {
			return out[i].Lines > out[j].Lines
		}
		return out[i].Path < out[j].Path
	})
	return out
}
