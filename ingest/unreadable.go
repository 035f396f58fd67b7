package ingest

import (
	"errors"
	"io/fs"
	"os"
	"sort"
)

// UnreadableFile is a transcript that cannot be read now (permissions, an
// I/O error): its calls are missing from every report until it can be.
type UnreadableFile struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// maxUnreadableFiles bounds the files the status names.
const maxUnreadableFiles = 20

// noteUnreadable records that path could not be read, with why.
func (in *Ingester) noteUnreadable(path string, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.unreadable == nil {
		in.unreadable = map[string]string{}
	}
	if _, ok := in.unreadable[path]; ok || len(in.unreadable) < maxUnreadableFiles {
		in.unreadable[path] = err.Error()
	} else {
		in.unreadableOther[path] = true
	}
	in.unreadableN.Store(int32(len(in.unreadable) + len(in.unreadableOther)))
}

// readable forgets that path could not be read: it just was.
func (in *Ingester) readable(path string) {
	if in.unreadableN.Load() == 0 {
		return // the common case: nothing to forget, no lock per file
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.unreadable, path)
	delete(in.unreadableOther, path)
	in.unreadableN.Store(int32(len(in.unreadable) + len(in.unreadableOther)))
}

// pruneUnreadable forgets the unreadable files that are gone (a file that
// vanished costs no report anything). Few entries: a stat each.
func (in *Ingester) pruneUnreadable() {
	if in.unreadableN.Load() == 0 {
		return
	}
	in.mu.Lock()
	paths := make([]string, 0, len(in.unreadable)+len(in.unreadableOther))
	for p := range in.unreadable {
		paths = append(paths, p)
	}
	for p := range in.unreadableOther {
		paths = append(paths, p)
	}
	in.mu.Unlock()
	for _, p := range paths {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			in.readable(p)
		}
	}
}

// unreadableList is the status's view, by path; mu must be held.
func (in *Ingester) unreadableList() ([]UnreadableFile, int) {
	if len(in.unreadable) == 0 {
		return nil, len(in.unreadableOther)
	}
	out := make([]UnreadableFile, 0, len(in.unreadable))
	for p, e := range in.unreadable {
		out = append(out, UnreadableFile{Path: p, Error: e})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, len(in.unreadableOther)
}
