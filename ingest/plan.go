package ingest

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/fleetmeter/fleetmeter/storage"
)

// The plan of a step: which files to read, in which order.

// plan lists the transcript files, learns attribution from sessions.json,
// and returns the files that changed since their cursor, parents first.
func (in *Ingester) plan(batch *storage.Batch) ([]*fileItem, error) {
	if in.dirty == nil {
		clear(in.listings) // a full scan lists afresh; removed dirs drop out
	}
	in.skipped = 0
	in.pruneUnreadable()
	// A first step knows no file (a one-shot read, or a database with no
	// cursor yet: a cold ingest): nothing to compare a stat with, so the
	// readers stat the files they open (see planLazy). A cold ingest of a
	// few files stats them all the same, for its progress: that of many
	// files is told in files, that of a few large ones needs their bytes.
	first := len(in.mem.stamps) == 0
	groups, listed, err := in.candidates(batch, !first)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, g := range groups {
		n += len(g.cands)
	}
	lazy := first && (in.final || n >= progressMinFiles)
	if first && !lazy {
		var pool workPool
		for i, g := range groups {
			groups[i] = pool.stat(g.cands, true)
		}
		pool.wait()
	}
	var items, renamed []*fileItem
	seen := make(map[fileKey]bool, n)
	var slab itemSlab
	for gi, g := range groups {
		for i, c := range g.cands {
			if lazy {
				item := in.planLazy(c, &slab)
				item.group = gi
				items = append(items, item)
				continue
			}
			item, read := in.planFile(c, g.stats[i], seen, &slab)
			if item != nil {
				item.group = gi
			}
			switch {
			case read:
				items = append(items, item)
			case item != nil:
				renamed = append(renamed, item)
			}
		}
	}
	// Files that vanished (retention, deletes) lose their cursor; if the
	// bytes come back under another inode, dedupe keeps them from counting
	// twice, and a new file under a vanished one's name (a temp file
	// renamed over it) takes the skips counted from its cursor.
	vanished := in.vanished(seen, listed)
	if err := in.resumeCursors(items, renamed, in.replacements(items, vanished), batch); err != nil {
		return nil, err
	}
	if len(in.mem.stamps) == 0 {
		// A first pass: room for every file's stamp at once, not grown
		// (and copied) step by step as the batches commit.
		in.mem.stamps = make(map[fileKey]stamp, len(items))
	}
	in.lastListed = listed
	for _, key := range vanished {
		batch.Cursors[key.id()] = nil
	}
	in.mu.Lock()
	in.stats.Files = len(seen) + in.skipped
	if lazy {
		in.stats.Files = n // less the second names of a file, as the committer finds them
	}
	in.mu.Unlock()
	// (slices' generic sort: sort.SliceStable's swaps through reflection
	// were a tenth of a fleet's plan)
	slices.SortStableFunc(items, func(a, b *fileItem) int {
		if (a.cur == nil) != (b.cur == nil) {
			return trueFirst(a.cur != nil) // known files first
		}
		// Sessions whose key is known before those whose key is gone
		// (reset archives, superseded transcripts, forks): the senders the
		// latter name without a channel are then already known with one
		// (storage rule 3), and their calls are stored qualified at once
		// instead of being moved later (a third of a cold ingest's writes on
		// the project's corpus).
		if a.keyed != b.keyed {
			return trueFirst(a.keyed)
		}
		// Forks after the sessions they copy, and in the order they were
		// made: the inherited calls are then first seen in their parent,
		// and keep its session. A fork's name starts with the time it was
		// made, so no file needs opening to order them.
		if c := strings.Compare(a.forkedAt, b.forkedAt); c != 0 {
			return c
		}
		// Files of a format in the order they were listed (roots as
		// configured, an agent's folder before a symlink to one): when a
		// file has a second name (a link to an agent's folder, a hard link
		// in another root), a plan that stat'ed nothing keeps the first it
		// reads (see planLazy), and that must be the one a plan that stat'ed
		// keeps, the first listed (the agent is the folder's, the root's).
		if a.format == b.format && a.group != b.group {
			return cmp.Compare(a.group, b.group)
		}
		return strings.Compare(a.path, b.path)
	})
	return items, nil
}

// trueFirst orders a before b when a is true (a and b differ).
func trueFirst(a bool) int {
	if a {
		return -1
	}
	return 1
}

// candidate is a transcript file found on disk, before its stat.
type candidate struct {
	path      string
	name      string
	agent     string
	sessionID string // from the name; a header line may say better
	format    string
	link      bool // a symlink (to a regular file, when listed): opened through it
}

// Transcript formats.
const (
	formatOpenClaw = "openclaw"
	formatClaude   = "claude"
	formatCodex    = "codex"
)

// candGroup is a run of candidates (most often one folder's) and their
// stats, which are there once the workPool that took them has waited.
type candGroup struct {
	cands []candidate
	stats []fileStat
}

// workPool runs jobs on every core: the plan's listings and stats. A job
// gets the worker's folder handle (see dirHandle), closed after each job:
// a folder may be made again before the next. A job must not wait for
// another. The workers start with the first job: a daemon's poll with
// nothing to list starts none. The zero workPool is ready to use.
type workPool struct {
	jobs chan func(*dirHandle)
	wg   sync.WaitGroup
	done bool
}

// do queues job.
func (p *workPool) do(job func(*dirHandle)) {
	if p.jobs == nil {
		jobs := make(chan func(*dirHandle), 64)
		p.jobs = jobs
		for range runtime.GOMAXPROCS(0) {
			p.wg.Go(func() {
				var dir dirHandle
				for job := range jobs {
					job(&dir)
					dir.close()
				}
			})
		}
	}
	p.jobs <- job
}

// wait lets the workers finish their jobs and go (once; do must not be
// called after).
func (p *workPool) wait() {
	if p.jobs != nil && !p.done {
		p.done = true
		close(p.jobs)
		p.wg.Wait()
	}
}

// statRunFiles bounds a job's stats, so that one big folder is shared.
const statRunFiles = 512

// stat queues the stats of cands (when stat is set), in the returned
// group once wait returns: a stat costs a microsecond, and a fleet has
// 100k files. A job stats a run of consecutive candidates, most of them in
// one folder, by name in it (see dirHandle).
func (p *workPool) stat(cands []candidate, stat bool) candGroup {
	if !stat {
		return candGroup{cands: cands}
	}
	g := candGroup{cands: cands, stats: make([]fileStat, len(cands))}
	for lo := 0; lo < len(cands); lo += statRunFiles {
		run, out := cands[lo:min(lo+statRunFiles, len(cands))], g.stats[lo:]
		p.do(func(dir *dirHandle) {
			for i := range run {
				out[i] = statAt(dir, run[i].path)
			}
		})
	}
	return g
}

// planFile decides about one listed file: read it (read), leave it (nil),
// or only note its new name (item, not read: a complete file renamed).
func (in *Ingester) planFile(c candidate, st fileStat, seen map[fileKey]bool, slab *itemSlab) (item *fileItem, read bool) {
	if !st.ok || !st.regular && !st.dir {
		return nil, false // vanished between listing and stat, or a device/FIFO
	}
	key := fileKey{st.dev, st.ino}
	if seen[key] {
		return nil, false // a hard link or a second root naming the same file
	}
	seen[key] = true
	stamp, known := in.mem.stamps[key]
	unchanged := known && stamp.complete && stamp.size == st.size && stamp.modNano == st.modNano
	if unchanged && stamp.path == in.mem.pathHash(c.path) {
		return nil, false // most files of a poll: nothing allocated for them
	}
	item = slab.next()
	*item = fileItem{
		candidate: c, dev: st.dev, ino: st.ino, uid: st.uid, statted: true,
		size: st.size, modNano: st.modNano, known: known,
	}
	if known {
		return item, !unchanged // unchanged: renamed, its cursor gets the new path
	}
	in.placeNew(item)
	return item, true
}

// planLazy is planFile for a step that knows no file yet, which stats
// nothing before reading: with no file known, a stat could only say that
// a file is there, and the reader learns that from the descriptor it
// opens anyway (fstat: no second path lookup, and no pass over every file
// before the first is read). The committer then keeps one of a file's
// names (hard links, two roots naming one folder): the first in the
// plan's order (see process).
func (in *Ingester) planLazy(c candidate, slab *itemSlab) *fileItem {
	item := slab.next()
	*item = fileItem{candidate: c, size: -1}
	in.placeNew(item)
	return item
}

// placeNew notes what orders a file never read before (see plan's sort).
func (in *Ingester) placeNew(item *fileItem) {
	if item.format == formatOpenClaw {
		item.forkedAt = forkTime(item.name)
		var kb [128]byte
		item.keyed = in.meta[string(storage.AppendSessionMetaID(kb[:0], storage.SourceOpenClaw, item.sessionID))].Key != ""
	} else {
		item.keyed = true // Claude Code and Codex users are the file's owner
	}
}

// itemSlab hands out the plan's items from blocks: one allocation for
// many, and none for the files a poll leaves alone.
type itemSlab struct{ block []fileItem }

func (s *itemSlab) next() *fileItem {
	if len(s.block) == cap(s.block) {
		s.block = make([]fileItem, 0, 256)
	}
	s.block = s.block[:len(s.block)+1]
	return &s.block[len(s.block)-1]
}
