package ingest

import (
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"

	"github.com/fleetmeter/fleetmeter/storage"
)

// What the ingester keeps in memory of the files it has read. A fleet's
// host holds 100k transcripts and more: a whole cursor per file (path,
// session id, fingerprints, sender: ~450 bytes with the map) was most of
// an idle daemon's heap. Between polls the plan needs only whether a file
// changed, whether it was renamed and where it lives: a stamp of 40 bytes.
// The whole cursor is read back from the ledger for the few files that
// changed; files left half read (a line being written, a budget cut) keep
// theirs in memory. (A one-shot read's ledger keeps no cursors: stepped
// again, it reads a changed file from its start, and dedupe keeps the
// calls from counting twice.)

// fileKey names a file by device and inode: a cursor follows renames.
type fileKey struct{ dev, ino uint64 }

func (k fileKey) id() string { return cursorID(k.dev, k.ino) }

// parseCursorID reads a file cursor id ("file:<dev>:<ino>").
func parseCursorID(id string) (fileKey, bool) {
	rest, ok := strings.CutPrefix(id, "file:")
	if !ok {
		return fileKey{}, false
	}
	d, i, ok := strings.Cut(rest, ":")
	dev, err1 := strconv.ParseUint(d, 10, 64)
	ino, err2 := strconv.ParseUint(i, 10, 64)
	return fileKey{dev, ino}, ok && err1 == nil && err2 == nil
}

// stamp is what the plan keeps of a file it has a cursor for.
type stamp struct {
	size, modNano     int64
	path              uint64 // hash of the cursor's path: a rename shows
	dir               int32  // index in the ingester's dirs
	complete, pending bool
}

// cursorMemory holds the stamps, the whole cursors kept in memory, and the
// directory names stamps share.
type cursorMemory struct {
	stamps map[fileKey]stamp
	// open are the whole cursors of unfinished files (read again soon).
	open       map[fileKey]*fileCursor
	unfinished map[fileKey]int32 // → dir: files not read to their end
	dirs       []string
	dirIndex   map[string]int32
	seed       maphash.Seed
}

func newCursorMemory() cursorMemory {
	return cursorMemory{
		stamps: map[fileKey]stamp{}, open: map[fileKey]*fileCursor{}, unfinished: map[fileKey]int32{},
		dirIndex: map[string]int32{}, seed: maphash.MakeSeed(),
	}
}

func (m *cursorMemory) dir(path string) int32 {
	d := dirOf(path)
	if i, ok := m.dirIndex[d]; ok {
		return i
	}
	i := int32(len(m.dirs))
	m.dirs = append(m.dirs, d)
	m.dirIndex[d] = i
	return i
}

func (m *cursorMemory) pathHash(path string) uint64 { return maphash.String(m.seed, path) }

// setCursor adopts a file cursor (nil: the file is gone) and keeps the
// set of unfinished files up to date.
func (in *Ingester) setCursor(key fileKey, c *fileCursor) {
	m := &in.mem
	if c == nil {
		delete(m.stamps, key)
		delete(m.open, key)
		delete(m.unfinished, key)
		return
	}
	st := stamp{size: c.Size, modNano: c.ModNano, path: m.pathHash(c.Path), dir: m.dir(c.Path),
		complete: c.Complete, pending: c.Pending}
	m.stamps[key] = st
	if !c.Complete || c.Pending {
		m.unfinished[key] = st.dir
		m.open[key] = c
	} else {
		delete(m.unfinished, key)
		delete(m.open, key)
	}
}

// unfinishedIn reports whether a file of dir is not read to its end.
func (in *Ingester) unfinishedIn(dir string) bool {
	i, ok := in.mem.dirIndex[dir]
	if !ok {
		return false
	}
	for _, d := range in.mem.unfinished {
		if d == i {
			return true
		}
	}
	return false
}

// pendingTails counts the files whose last line is being written.
func (in *Ingester) pendingTails() int {
	n := 0
	for _, st := range in.mem.stamps {
		if st.pending {
			n++
		}
	}
	return n
}

// loadCursors adopts stored file cursors, and keeps the other ones raw.
func (in *Ingester) loadCursors(raw map[string][]byte) {
	for id, v := range raw {
		key, ok := parseCursorID(id)
		if !ok {
			in.otherCursors[id] = v // SQLite sessions and other non-file sources
			continue
		}
		var c fileCursor
		if err := decodeCursor(v, &c); err != nil {
			in.log.Warn("dropping unreadable cursor", "id", id, "err", err)
			continue
		}
		in.setCursor(key, &c)
	}
}

// resumeCursors gives the known files among items their whole cursors:
// kept in memory, else read back from the ledger (one read for all), and
// the new files that replace a vanished one (replacing: item → the
// vanished file) that one's cursor. A cursor that cannot be had leaves
// the file to be read from its start (dedupe keeps its calls from
// counting twice).
func (in *Ingester) resumeCursors(items, renamed []*fileItem, replacing map[*fileItem]fileKey, batch *storage.Batch) error {
	var ids []string
	want := func(key fileKey) *fileCursor {
		if c := in.mem.open[key]; c != nil {
			return c
		}
		ids = append(ids, key.id())
		return nil
	}
	for _, list := range [][]*fileItem{items, renamed} {
		for _, it := range list {
			if it.known {
				it.cur = want(fileKey{it.dev, it.ino})
			}
		}
	}
	for it, key := range replacing {
		it.replaced = want(key)
	}
	var raw map[string][]byte
	if len(ids) > 0 {
		var err error
		if raw, err = in.ledger.CursorsOf(ids); err != nil {
			return fmt.Errorf("load cursors: %w", err)
		}
	}
	stored := func(key fileKey) *fileCursor {
		v := raw[key.id()]
		var c fileCursor
		if v == nil || decodeCursor(v, &c) != nil {
			return nil
		}
		return &c
	}
	for _, list := range [][]*fileItem{items, renamed} {
		for _, it := range list {
			if it.known && it.cur == nil {
				it.cur = stored(fileKey{it.dev, it.ino})
			}
		}
	}
	for it, key := range replacing {
		if it.replaced == nil {
			it.replaced = stored(key)
		}
		if c := it.replaced; c != nil && (c.Path != it.path || c.Format != it.format) {
			it.replaced = nil // another file whose path hashed alike
		}
	}
	for _, it := range renamed {
		// Renamed (reset/delete archive): same bytes, new name.
		if it.cur == nil {
			continue
		}
		moved := *it.cur
		moved.Path = it.path
		if v, err := encodeCursor(&moved); err == nil && !in.final {
			batch.Cursors[moved.id()] = v
		}
		// In memory at once, so the next poll does not write it again.
		in.setCursor(fileKey{it.dev, it.ino}, &moved)
	}
	return nil
}

// vanished are the files with a cursor that the plan's listing did not
// find in a folder it listed.
func (in *Ingester) vanished(seen map[fileKey]bool, listed map[string]bool) []fileKey {
	var out []fileKey
	for key, st := range in.mem.stamps {
		if !seen[key] && listed[in.mem.dirs[st.dir]] {
			out = append(out, key)
		}
	}
	return out
}

// replacements pairs the new files among items with the vanished files
// that had their name: a temp file renamed over a transcript is a new
// inode under the old name.
func (in *Ingester) replacements(items []*fileItem, vanished []fileKey) map[*fileItem]fileKey {
	if len(vanished) == 0 {
		return nil
	}
	byPath := make(map[uint64]fileKey, len(vanished))
	for _, key := range vanished {
		byPath[in.mem.stamps[key].path] = key
	}
	var out map[*fileItem]fileKey
	for _, it := range items {
		if it.known {
			continue
		}
		if key, ok := byPath[in.mem.pathHash(it.path)]; ok {
			if out == nil {
				out = map[*fileItem]fileKey{}
			}
			out[it] = key
		}
	}
	return out
}

func (c *fileCursor) id() string { return cursorID(c.Dev, c.Ino) }
