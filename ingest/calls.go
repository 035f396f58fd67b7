package ingest

// The seam every format goes through. A reader (OpenClaw JSONL, OpenClaw
// SQLite, Claude Code, Codex) turns its source into model calls and skip
// counts in a calls value, together with the position that covers them (a
// file cursor, a store cursor). Everything after that is shared:
//
//   - record: writer corrections and pricing, once per call, in the reader's
//     goroutine (pricing is the costly part and runs in parallel);
//   - commit: the one path to the ledger. It applies the retention horizon,
//     resolves Codex thread families, applies the batch in one transaction
//     and, once it is durable, adopts the cursors it carried.

import (
	"strings"

	"github.com/fleetmeter/fleetmeter/storage"
)

// calls is what a reader produced since its last hand-over: records (priced)
// and skip counts, plus what it learned on the way that the committer must
// know before it applies them.
type calls struct {
	records []storage.Usage
	skips   storage.Skips
	// threads are Codex thread → parent thread links seen in session_meta
	// lines, so the committer can put a spawned thread's calls in its
	// family's dedupe namespace (see codexFamily).
	threads map[string]string
	// drift are usage-shaped fields no reader understands, by "source field".
	drift map[string]int64
}

// record prices one call and appends it. (The pricer also replaces an
// implausible transcript cost; corrections of token counts are the
// readers', which know the fields the writer recorded.)
func (in *Ingester) record(out *calls, u storage.Usage) {
	out.records = append(out.records, u)
	// Priced where it lies: &u would escape to the heap through the
	// interface, a copy of the record per call.
	in.pricer.Apply(&out.records[len(out.records)-1])
}

// slabRecords is how many records a reader's slab holds.
const slabRecords = 512

// recordSlab is where a reader's chunks keep their records: consecutive
// pieces of one block, never re-copied. A ledger may keep the records it
// is handed (the in-memory tally does), so a piece is never handed out
// again; a block is dropped when full and left to the collector once no
// chunk of it is referenced.
type recordSlab struct {
	block []storage.Usage
	used  int
}

// room is where the next chunk's records go: the rest of the block, as an
// empty slice whose appends stay in place (a chunk that outgrows it is
// copied by append, as any slice).
func (s *recordSlab) room() []storage.Usage {
	if len(s.block)-s.used < 16 {
		s.block, s.used = make([]storage.Usage, slabRecords), 0
	}
	return s.block[s.used:s.used:len(s.block)]
}

// took marks recs (a chunk's records, from room) used.
func (s *recordSlab) took(recs []storage.Usage) {
	if len(recs) == 0 {
		return
	}
	if s.used < len(s.block) && &recs[0] == &s.block[s.used] {
		s.used += len(recs)
	} else {
		s.used = len(s.block) // outgrown: this block is done
	}
}

// unrecognized counts a usage-shaped field of a source no reader
// understands (format drift): the day a writer adds a token field or a
// record type, it shows as unrecognized_usage instead of a silent undercount.
func (out *calls) unrecognized(source, field string) {
	out.skips.UnrecognizedUsage++
	if out.drift == nil {
		out.drift = map[string]int64{}
	}
	out.drift[source+" "+field]++
}

// link remembers a Codex thread's parent.
func (out *calls) link(thread, parent string) {
	if thread == "" || parent == "" || thread == parent {
		return
	}
	if out.threads == nil {
		out.threads = map[string]string{}
	}
	out.threads[thread] = parent
}

// take moves c into the batch: records, skips, and what was learned.
func (in *Ingester) take(b *storage.Batch, c *calls) {
	for t, p := range c.threads {
		in.learnThread(b, t, p)
	}
	for k, n := range c.drift {
		in.noteDrift(k, n)
	}
	if len(c.records) > 0 {
		b.Chunks = append(b.Chunks, c.records) // handed over, not copied
	}
	b.Skips.Add(c.skips)
	*c = calls{}
}

// commit is the one path from readers to the ledger: prepare, then apply.
// On failure the attribution the batch carried is forgotten, so it is
// learned (and put in a batch) again. b is reset either way. (process
// runs the two halves apart, to read on while a batch is applied.)
func (in *Ingester) commit(b *storage.Batch, files map[fileKey]*fileCursor) (storage.ApplyResult, error) {
	defer func() {
		*b = storage.Batch{Cursors: map[string][]byte{}, SessionMeta: map[string][]byte{}}
		clear(files)
	}()
	in.prepare(b)
	ar, err := in.apply(b, files)
	if err != nil {
		in.forget(b)
	}
	return ar, err
}

// prepare drops the calls older than the horizon and puts Codex calls in
// their thread family's dedupe namespace: the committer's part of commit
// (it reads what the readers' chunks taught, in.threads).
func (in *Ingester) prepare(b *storage.Batch) {
	if oldest := in.oldest(); oldest > 0 {
		var kept []storage.Usage
		b.Each(func(u *storage.Usage) error {
			if u.TS < oldest {
				b.Skips.TooOld++
			} else {
				kept = append(kept, *u)
			}
			return nil
		})
		b.Records, b.Chunks = kept, nil
	}
	b.Each(func(u *storage.Usage) error {
		if u.Source == storage.SourceCodex {
			u.DedupeKey = in.codexFamilyKey(u.DedupeKey)
		}
		return nil
	})
}

// apply applies a prepared batch in one transaction and, once it is
// durable, adopts its cursors: file cursors from files (decoded already),
// the rest as raw values. It may run beside the committer (see process):
// it touches the ledger, the cursors and the stats (under mu) only.
func (in *Ingester) apply(b *storage.Batch, files map[fileKey]*fileCursor) (storage.ApplyResult, error) {
	if b.Empty() {
		for id, c := range files { // a one-shot read's cursors are not in b
			in.setCursor(id, c)
		}
		return storage.ApplyResult{}, nil
	}
	ar, err := in.ledger.Apply(b)
	if err != nil {
		return ar, err
	}
	for id, c := range files {
		in.setCursor(id, c)
	}
	for id, v := range b.Cursors {
		key, isFile := parseCursorID(id)
		switch {
		case isFile:
			if v == nil {
				in.setCursor(key, nil)
			} else if files[key] == nil {
				var c fileCursor
				if decodeCursor(v, &c) == nil {
					in.setCursor(key, &c)
				}
			}
		case v == nil:
			delete(in.otherCursors, id)
		default:
			in.otherCursors[id] = v
		}
	}
	in.mu.Lock()
	in.stats.Added += int64(ar.Added)
	in.stats.Replaced += int64(ar.Replaced)
	skips := b.Skips
	skips.Duplicate += int64(ar.Duplicates)
	in.stats.Skips.Add(skips)
	in.stats.Corrected.Add(ar.Corrected)
	in.mu.Unlock()
	return ar, nil
}

// forget drops what a batch that was not committed taught: attribution
// and thread links, so they are learned (and put in a batch) again, and
// the store stamps that would skip re-reading them.
func (in *Ingester) forget(b *storage.Batch) {
	if len(b.SessionMeta) == 0 {
		return
	}
	for id := range b.SessionMeta {
		if t, ok := strings.CutPrefix(id, threadMetaPrefix); ok {
			delete(in.threads, t)
		} else {
			delete(in.meta, id)
		}
	}
	clear(in.stores)
}

// oldest is the horizon in unix ms (0: keep everything).
func (in *Ingester) oldest() int64 {
	if in.cfg.Horizon <= 0 {
		return 0
	}
	return in.now().Add(-in.cfg.Horizon).UnixMilli()
}

// noteDrift counts a usage-shaped field no reader understands and logs it
// the first time it is seen, naming the source and the field: the day an
// upstream format changes, the log says so instead of reports quietly
// dropping what they cannot read.
func (in *Ingester) noteDrift(key string, n int64) {
	in.mu.Lock()
	if in.stats.Unrecognized == nil {
		in.stats.Unrecognized = map[string]int64{}
	}
	first := in.stats.Unrecognized[key] == 0
	in.stats.Unrecognized[key] += n
	in.mu.Unlock()
	if first {
		source, field, _ := strings.Cut(key, " ")
		in.log.Warn("usage in a shape fleetmeter does not read; its tokens are not counted (unrecognized_usage)",
			"source", source, "what", field)
	}
}
