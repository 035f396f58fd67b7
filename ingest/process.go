package ingest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/fleetmeter/fleetmeter/storage"
	"golang.org/x/sync/errgroup"
)

// process reads items with parallel workers and commits their chunks in
// item order, batching several files per transaction.
func (in *Ingester) process(ctx context.Context, items []*fileItem, batch *storage.Batch, res StepResult) (StepResult, error) {
	// Files are read by parallel workers and committed in order. A job is
	// a run of consecutive files (one hand-over between goroutines for
	// many small files, each followed by itemDone on the job's channel),
	// and at most window jobs are in flight: each has a small channel of
	// chunks, and making one per file up front cost 2 KB a file (170 MB at
	// 100k files).
	type job struct {
		items []*fileItem
		out   chan *chunk
	}
	// Read ahead: a job holds a megabyte or 64 files at most, and what
	// waits is its records (a tenth of its bytes or less), so the workers
	// go on while a large file or a commit (its fsync above all) holds up
	// the committer.
	window := 32 * in.cfg.Workers
	g, gctx := errgroup.WithContext(ctx)
	ordered := make(chan job, window) // the committer's order, bounded
	next := make(chan job)            // to the workers
	g.Go(func() error {
		defer close(ordered)
		defer close(next)
		for lo := 0; lo < len(items); {
			hi := jobEnd(items, lo)
			// Room for every file's last chunk and itemDone: a worker does
			// not wait for the committer to reach a job of small files.
			j := job{items[lo:hi], make(chan *chunk, 2*(hi-lo)+4)}
			lo = hi
			select {
			case ordered <- j:
			case <-gctx.Done():
				return nil
			}
			select {
			case next <- j:
			case <-gctx.Done():
				close(j.out) // queued for the committer, never read: it must not wait on it
				return nil
			}
		}
		return nil
	})
	for range in.cfg.Workers {
		g.Go(func() error {
			// Readers (buffers, parsers) live from step to step: a
			// daemon's poll allocates nothing it had the step before.
			r, _ := in.readers.Get().(*fileReader)
			if r == nil {
				r = &fileReader{in: in}
			}
			defer in.readers.Put(r)
			for j := range next {
				for _, item := range j.items {
					r.read(gctx, item, j.out)
					select {
					case j.out <- itemDone:
					case <-gctx.Done():
					}
				}
				r.dir.close() // the job's folders: never kept from one job to the next
				close(j.out)
			}
			return nil
		})
	}
	progress := in.trackProgress(items)
	pendingCursors := make(map[fileKey]*fileCursor, min(len(items), in.batchFiles))
	var batchBytes int64
	batchRecords := batch.Len() // kept up as chunks come: Len walks every chunk
	// A full batch is applied by its own goroutine while the committer
	// takes the next chunks: the workers read on during a commit's writes
	// and fsync. Batches are applied one at a time, in order: the next
	// waits for the one before.
	type applied struct {
		ar  storage.ApplyResult
		err error
		b   *storage.Batch
	}
	// The first batches are small (an eighth of the bounds, then a
	// quarter, a half): the first commit starts while most files are still
	// to read, rather than after a whole batch's worth of reading with the
	// committer idle. On 10k small files that was a fifth of the wall time.
	ramp := 3
	var inflight chan applied
	var failed *storage.Batch // applied with an error: its attribution is forgotten at the end
	wait := func() error {
		if inflight == nil {
			return nil
		}
		r := <-inflight
		inflight = nil
		res.Added += r.ar.Added
		res.Skipped += r.ar.Duplicates
		if r.err != nil {
			failed = r.b
		}
		return r.err
	}
	commit := func() error {
		if err := wait(); err != nil {
			return err
		}
		b, files := new(storage.Batch), pendingCursors
		*b = *batch
		*batch = storage.Batch{Cursors: map[string][]byte{}, SessionMeta: map[string][]byte{}}
		pendingCursors, batchBytes, batchRecords = make(map[fileKey]*fileCursor, min(len(items), in.batchFiles)), 0, 0
		ramp = max(ramp-1, 0)
		in.prepare(b)
		ch := make(chan applied, 1)
		inflight = ch
		go func() {
			ar, err := in.apply(b, files)
			ch <- applied{ar, err, b}
		}()
		return nil
	}
	var commitErr error
	// Files the plan did not stat (planLazy) are told apart here: a file
	// read under a second name (a hard link, two roots naming one folder)
	// is dropped, the first name in the plan's order kept.
	var claimed map[fileKey]bool
	secondNames := 0
	for j := range ordered {
		k := 0 // the item of j whose chunks come
		failed, finished, first := false, true, true
		for c := range j.out {
			if c == itemDone {
				res.Read++
				res.More = res.More || !finished && !failed
				k++
				failed, finished, first = false, true, true
				continue
			}
			item := j.items[k]
			if commitErr != nil || failed {
				continue // drain so the worker can finish
			}
			if c.err != nil {
				failed = true
				in.fileError(item, c.err, batch)
				continue
			}
			if first && !item.statted {
				key := fileKey{c.cursor.Dev, c.cursor.Ino}
				if claimed[key] {
					failed = true // not read after all
					secondNames++
					continue
				}
				if claimed == nil {
					claimed = make(map[fileKey]bool, len(items))
				}
				claimed[key] = true
			}
			first = false
			in.readable(item.path)
			in.noteMalformed(item.path, c.calls.skips.Malformed)
			batchRecords += len(c.calls.records)
			in.take(batch, &c.calls)
			cur := &c.cursor
			if !in.final {
				// A copy: the chunk is not kept with it. (A one-shot
				// read keeps the cursors of unfinished files only.)
				cur = new(fileCursor)
				*cur = c.cursor
			}
			pendingCursors[fileKey{cur.Dev, cur.Ino}] = cur
			if !in.final { // a one-shot read's ledger keeps no cursors
				v, err := encodeCursor(cur)
				if err != nil {
					return res, fmt.Errorf("encode cursor of %s: %w", cur.Path, err)
				}
				batch.Cursors[c.id] = v
			}
			batchBytes += c.bytes
			res.Bytes += c.bytes
			progress.read(c.bytes, c.cursor.Complete)
			finished = c.cursor.Complete // the last chunk's says whether the budget cut the file
			// Files count too: a batch of many small files dirties many
			// pages (cursors, sessions), and bbolt holds a buffer per dirty
			// page until the commit (700 MB at 100k files in one batch).
			if batchRecords >= in.cfg.BatchRecords>>ramp || batchBytes >= in.cfg.BatchBytes>>ramp ||
				max(len(batch.Cursors), len(pendingCursors)) >= in.batchFiles>>ramp {
				commitErr = commit()
			}
		}
	}
	werr := g.Wait()
	if commitErr == nil {
		commitErr = commit()
	}
	if err := wait(); commitErr == nil {
		commitErr = err
	}
	if failed != nil {
		in.forget(failed) // now that no reader looks at what it taught
	}
	progress.done(errors.Join(commitErr, werr))
	in.mu.Lock()
	in.stats.PendingTails = in.pendingTails()
	in.stats.Files -= secondNames
	res.Files -= secondNames // counted by the plan, dropped here (and read: not counted twice)
	res.Read -= secondNames
	in.mu.Unlock()
	if commitErr != nil {
		return res, fmt.Errorf("commit: %w", commitErr)
	}
	if werr != nil {
		return res, werr
	}
	return res, ctx.Err()
}

// itemDone follows the chunks of each file of a job.
var itemDone = &chunk{}

// Jobs bound their files' bytes and count: a large file is a job of its
// own, so the workers share the reading evenly.
const (
	jobBytes = 1 << 20
	jobFiles = 64
)

// jobEnd is the end of the job that starts at items[lo].
func jobEnd(items []*fileItem, lo int) int {
	var n int64
	hi := lo
	for hi < len(items) && hi-lo < jobFiles && n < jobBytes {
		left := items[hi].size
		if c := items[hi].cur; c != nil {
			left -= c.Offset
		}
		if !items[hi].statted {
			left = jobBytes / 16 // not known: a job of 16 such files at most
		}
		n += max(left, 0)
		hi++
	}
	return hi
}

// fileError logs a file that could not be read and counts it; the step
// goes on, and the file is tried again next time.
func (in *Ingester) fileError(item *fileItem, err error, batch *storage.Batch) {
	if errors.Is(err, fs.ErrNotExist) {
		in.readable(item.path)
		return // vanished mid-read (retention): not an error
	}
	in.noteUnreadable(item.path, err)
	if in.warned[item.path] != err.Error() {
		in.warned[item.path] = err.Error()
		in.log.Warn("cannot read transcript", "path", item.path, "err", err)
	}
	in.mu.Lock()
	in.stats.FileErrors++
	in.mu.Unlock()
	if in.final {
		batch.Skips.UnreadableFile++
	}
}
