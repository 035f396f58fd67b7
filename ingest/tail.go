package ingest

import (
	"bytes"
	"context"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fastjson"
)

// fileCursor is how far a transcript file was read, and enough of its
// bytes' fingerprint to notice a rewrite. It is stored as JSON in the
// cursors bucket under "file:<dev>:<ino>", so it follows renames.
type fileCursor struct {
	Path    string `json:"path"`
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`   // size and mtime when last read: equal means unchanged
	ModNano int64  `json:"mod_ns"` //
	Offset  int64  `json:"offset"` // bytes consumed (complete lines only)
	// Complete: the file was read to its end when it had Size and ModNano.
	// A cursor committed mid-file (a large file, or a crash between
	// batches) is not complete, so the next poll goes on reading it.
	Complete bool `json:"complete"`

	// Fingerprints of the first bytes and of the bytes just before Offset.
	// If either differs, the file was rewritten in place and is re-read.
	// Hash says how they were taken: "crc32c" (CRC-32C, which the CPU
	// computes at several GB/s), or "" for FNV-1a (cursors written before
	// crc32c, verified as they were written).
	HeadLen  int    `json:"head_len"`
	HeadHash uint64 `json:"head_hash"`
	TailLen  int    `json:"tail_len"`
	TailHash uint64 `json:"tail_hash"`
	Hash     string `json:"hash,omitempty"`

	// Partial is how many bytes from Offset on are known to hold no "\n":
	// a line still being written. When the file grows, only the bytes after
	// them are searched for its end; the line is read once, when complete.
	Partial int64 `json:"partial,omitempty"`
	// Skipping: Offset is inside a line longer than MaxLineBytes (counted
	// once already); its bytes are discarded up to its "\n".
	Skipping bool `json:"skipping,omitempty"`

	Format    string `json:"format"` // which reader: openclaw, claude, codex
	Agent     string `json:"agent"`
	SessionID string `json:"session_id"`
	Pending   bool   `json:"pending,omitempty"`

	// Per-format reading state, carried from one poll to the next.
	Sender sender      `json:"sender"`          // openclaw: who spoke last, for the next calls
	Codex  *codexState `json:"codex,omitempty"` // codex: running totals and model

	// The file's skips found by the read from its start and counted
	// before it, so a re-read counts none twice (see rereads.go).
	rereadSkips
}

const fingerprintLen = 4096

func cursorID(dev, ino uint64) string {
	b := make([]byte, 0, 48)
	b = append(b, "file:"...)
	b = strconv.AppendUint(b, dev, 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, ino, 10)
	return string(b)
}

// fileItem is one file to read in a step.
type fileItem struct {
	candidate
	dev, ino uint64 // the plan's stat
	size     int64
	modNano  int64
	uid      uint32
	statted  bool        // the plan stat'ed the file
	group    int         // the plan's listing it came in (see plan's order)
	forkedAt string      // for new fork files: when the fork was made (see plan's order)
	keyed    bool        // for new files: the session's key is known (see plan's order)
	known    bool        // a cursor is stamped for the file
	cur      *fileCursor // nil for a file never seen (or whose cursor could not be had)
	// replaced is the cursor of the file this new one replaced under the
	// same name (a temp file renamed over it), for its skips counted.
	replaced *fileCursor
}

// chunk is a piece of a file's progress: records and skips since the last
// chunk, and the cursor that covers them.
type chunk struct {
	calls
	cursor fileCursor
	id     string
	bytes  int64
	err    error // the file could not be read; the cursor is not advanced
}

// readAt reads n bytes at off (n may be 0).
func readAt(f io.ReaderAt, off int64, n int) ([]byte, error) {
	buf := make([]byte, n)
	if n == 0 {
		return buf, nil
	}
	_, err := f.ReadAt(buf, off)
	return buf, err
}

// fingerprintHash is how new cursors fingerprint bytes.
const fingerprintHash = "crc32c"

// hashBytes fingerprints the bytes a then b with the named hash (see
// fileCursor.Hash): their length and CRC-32C, or FNV-1a for cursors
// written before.
func hashBytes(hash string, a, b []byte) uint64 {
	if hash == fingerprintHash {
		sum := crc32.Update(crc32.Checksum(a, castagnoli), castagnoli, b)
		return uint64(len(a)+len(b))<<32 | uint64(sum)
	}
	h := fnv.New64a()
	h.Write(a)
	h.Write(b)
	return h.Sum64()
}

// fingerprinter keeps the first and the last fingerprintLen bytes a read
// consumed, so a cursor's fingerprints describe the bytes that were read,
// not what the file holds by the time the chunk is emitted (an in-place
// rewrite during the read must still be noticed at the next poll). The
// tail is a ring: each line costs its own length, not a 4 KiB shift. A
// reader keeps one and resets it per file: nothing is allocated per file.
type fingerprinter struct {
	head  [fingerprintLen]byte // the file's bytes from 0
	headN int                  // how many of them
	ring  [fingerprintLen]byte
	pos   int // where the next byte goes
	n     int // bytes held, up to fingerprintLen
}

func (fp *fingerprinter) reset() { fp.headN, fp.pos, fp.n = 0, 0, 0 }

// start resets fp to a file whose first bytes are head and whose bytes
// consumed last are tail.
func (fp *fingerprinter) start(head, tail []byte) {
	fp.reset()
	fp.consumed(tail)
	fp.headN = copy(fp.head[:], head)
}

func (fp *fingerprinter) consumed(p []byte) {
	if fp.headN < fingerprintLen {
		fp.headN += copy(fp.head[fp.headN:], p)
	}
	if len(p) >= fingerprintLen {
		copy(fp.ring[:], p[len(p)-fingerprintLen:])
		fp.pos, fp.n = 0, fingerprintLen
		return
	}
	k := copy(fp.ring[fp.pos:], p)
	copy(fp.ring[:], p[k:])
	fp.pos = (fp.pos + len(p)) % fingerprintLen
	fp.n = min(fp.n+len(p), fingerprintLen)
}

// tail returns the last bytes consumed, in order, as two pieces of the ring.
func (fp *fingerprinter) tail() (a, b []byte) {
	start := (fp.pos - fp.n + fingerprintLen) % fingerprintLen
	if start+fp.n <= fingerprintLen {
		return fp.ring[start : start+fp.n], nil
	}
	return fp.ring[start:], fp.ring[:fp.n-(fingerprintLen-start)]
}

func (fp *fingerprinter) set(cur *fileCursor) {
	a, b := fp.tail()
	cur.Hash = fingerprintHash
	cur.HeadLen, cur.HeadHash = fp.headN, hashBytes(cur.Hash, fp.head[:fp.headN], nil)
	cur.TailLen, cur.TailHash = len(a)+len(b), hashBytes(cur.Hash, a, b)
}

// fileReader reads one file from its cursor on, emitting chunks.
type fileReader struct {
	in     *Ingester
	parser lineParser
	buf    []byte
	fp     fingerprinter // of the file being read
	dir    dirHandle     // the folder of the files being read (see openFile)
	lr     lineReader
	owner  localUser  // the file's owner: the user of Claude Code and Codex calls
	slab   recordSlab // where chunks keep their records
	pl     parsedLine // the line being handled
	// The Claude Code reader's: the project folder of the file projectOf,
	// the session id of the last call, and the records of the chunk
	// latestFor by dedupe key (see latestOf).
	projectOf, project, session string
	latest                      map[string]int
	latestFor                   *chunk
}

// newChunk starts a chunk whose records go into the reader's slab.
func (r *fileReader) newChunk() *chunk {
	return &chunk{calls: calls{records: r.slab.room()}}
}

// read reads item and sends its chunks to out. Errors that concern only
// this file end up in a chunk; the step goes on with other files.
func (r *fileReader) read(ctx context.Context, item *fileItem, out chan<- *chunk) {
	// A one-shot read trusts the plan's stat of a moment ago: the file's
	// size and times only go into cursors no one keeps. The daemon checks
	// the file it opened, which may have been replaced since; so does any
	// read whose plan stat'ed nothing (see planLazy).
	f, err := openFile(&r.dir, item.path, item.link)
	if err != nil {
		out <- &chunk{err: err}
		return
	}
	defer f.Close()
	st := fileStat{dev: item.dev, ino: item.ino, size: item.size, modNano: item.modNano, uid: item.uid}
	if !r.in.final || !item.statted {
		if st, err = f.stat(); err != nil {
			out <- &chunk{err: &os.PathError{Op: "stat", Path: item.path, Err: err}}
			return
		}
		if !st.regular {
			return // a FIFO or device under a transcript's name: left alone, as the plan leaves one
		}
	}
	dev, ino := st.dev, st.ino
	r.owner = localUser{}
	if item.format != formatOpenClaw {
		r.owner = r.in.ownerOf(st.uid)
	}
	cur := fileCursor{Path: item.path, Dev: dev, Ino: ino, Format: item.format, Agent: item.agent, SessionID: item.sessionID}
	fp := &r.fp // what was read before, when resuming
	fp.reset()
	resumed, before := false, item.replaced
	if item.cur != nil && item.cur.Dev == dev && item.cur.Ino == ino && item.cur.Format == item.format {
		ok, err := r.unchangedPrefix(f, item.cur, st.size)
		if err != nil {
			out <- &chunk{err: err}
			return
		} else if ok {
			cur = *item.cur
			cur.Path = item.path
		}
		// else: rewritten in place or truncated: read again from the start;
		// the dedupe keys keep the calls already counted from counting
		// twice, the skips counted before the skips.
		resumed, before = ok, item.cur
	}
	if !resumed {
		cur.fromStart(before)
	}
	cur.Size, cur.ModNano = st.size, st.modNano

	var src io.Reader = f
	compressed := strings.HasSuffix(item.name, ".zst")
	// At most budget bytes of this file in one step (0: no bound), so one
	// huge file cannot hold the others back; what is left is read in the
	// next step. Archives are read whole: they cannot be resumed midway.
	budget := r.in.cfg.FileBudget
	if !compressed && cur.Partial > 0 {
		done, lineEnd := r.resumePartial(ctx, f, &cur, budget, out)
		if done {
			return
		}
		if budget > 0 {
			budget = max(budget, lineEnd-cur.Offset) // the complete line, in this step
		}
	}
	if compressed {
		// Archives are immutable: always read whole, never resumed.
		cur.Offset = 0
		dec, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			out <- &chunk{err: err}
			return
		}
		defer dec.Close()
		src = dec
	} else if cur.Offset > 0 {
		if _, err := f.Seek(cur.Offset, io.SeekStart); err != nil {
			out <- &chunk{err: err}
			return
		}
	}
	var limited *io.LimitedReader
	if budget > 0 && !compressed {
		limited = &io.LimitedReader{R: f, N: budget}
		src = limited
	}
	r.scan(ctx, f, src, compressed, limited, &cur, fp, out)
}

// resumePartial goes on looking for the end of the unterminated line at
// cur.Offset, in the bytes after the cur.Partial already searched, reading
// at most budget of them (0: to the end). Without an end it moves
// cur.Partial on, or starts skipping a line grown past MaxLineBytes, emits
// the cursor and returns done. With one, it returns the file offset just
// past it, and the caller reads the line whole from cur.Offset.
func (r *fileReader) resumePartial(ctx context.Context, f io.ReaderAt, cur *fileCursor, budget int64, out chan<- *chunk) (done bool, lineEnd int64) {
	from := cur.Offset + cur.Partial
	if cur.Size < from {
		cur.Partial = 0 // shrunk: rewritten, read from the cursor again
		return false, 0
	}
	if cap(r.buf) < initialBuffer {
		r.buf = make([]byte, initialBuffer)
	}
	buf := r.buf[:cap(r.buf)]
	var searched int64
	cut := false
	for {
		if budget > 0 && searched >= budget {
			cut = true
			break
		}
		n, err := f.ReadAt(buf, from+searched)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return false, from + searched + int64(i) + 1
		}
		searched += int64(n)
		if err == io.EOF {
			break
		} else if err != nil {
			out <- &chunk{err: err}
			return true, 0
		}
	}
	c := &chunk{bytes: searched}
	cur.Partial += searched
	if cur.Partial > MaxLineBytes {
		// Too long to ever be read: skip it from here on, counted once.
		c.skips.OversizeLine++
		cur.Offset += cur.Partial
		cur.Partial, cur.Skipping = 0, true
		if err := r.fingerprintsFromFile(f, cur); err != nil {
			out <- &chunk{err: err}
			return true, 0
		}
	}
	cur.Complete, cur.Pending = !cut, true
	cur.settle(&c.calls)
	c.cursor, c.id = *cur, cursorID(cur.Dev, cur.Ino)
	select {
	case out <- c:
	case <-ctx.Done():
	}
	return true, 0
}

// unchangedPrefix checks the fingerprints of what was read before and,
// when they hold, resumes r.fp from them.
func (r *fileReader) unchangedPrefix(f io.ReaderAt, c *fileCursor, size int64) (bool, error) {
	if size < c.Offset || c.HeadLen > fingerprintLen || c.TailLen > fingerprintLen {
		return false, nil // truncated, or a cursor we cannot have written
	}
	head, err := readAt(f, 0, c.HeadLen)
	if err != nil {
		return false, err
	}
	tail, err := readAt(f, c.Offset-int64(c.TailLen), c.TailLen)
	if err != nil {
		return false, err
	}
	if hashBytes(c.Hash, head, nil) != c.HeadHash || hashBytes(c.Hash, tail, nil) != c.TailHash {
		return false, nil
	}
	// Resume the ring from the verified tail; the head is complete or
	// grows from exactly these bytes.
	r.fp.start(head, tail)
	return true, nil
}

// scan parses lines from src (positioned at cur.Offset) to EOF, or to the
// end of limited (the file's budget for this step; nil: none).
func (r *fileReader) scan(ctx context.Context, f io.ReaderAt, src io.Reader, compressed bool, limited *io.LimitedReader, cur *fileCursor, fp *fingerprinter, out chan<- *chunk) {
	lr := &r.lr // one per reader: nothing allocated per file
	lr.reset(src, cur.Offset, r.buf)
	lr.skipping = cur.Skipping // inside an over-long line since the last step
	if cur.Offset == 0 && !cur.Skipping {
		cur.fromStart(cur) // an archive read again whole, or a file from its start
	}
	if !compressed && limited == nil {
		lr.expect = cur.Size - cur.Offset // the stat's size: what is there to read
	}
	defer func() { r.buf = lr.buf[:0] }()
	c := r.newChunk()
	pl := &r.pl
	start := cur.Offset
	skippedOversize := cur.Skipping
	emit := func(final bool) bool {
		cur.Complete = final
		cur.Skipping = lr.skipping
		c.skips.OversizeLine += int64(lr.oversize)
		skippedOversize = skippedOversize || lr.oversize > 0 || lr.skipping
		lr.oversize = 0
		switch {
		case compressed:
			cur.HeadLen, cur.TailLen = 0, 0 // size and mtime alone guard an archive
		case skippedOversize:
			// The skipped bytes never passed through fp: take the
			// fingerprints from the file instead.
			if err := r.fingerprintsFromFile(f, cur); err != nil {
				out <- &chunk{err: err}
				return false
			}
		default:
			fp.set(cur)
		}
		cur.settle(&c.calls)
		c.cursor = *cur
		if !r.in.final { // a one-shot read's ledger keeps no cursors: no id
			c.id = cursorID(cur.Dev, cur.Ino)
		}
		c.bytes = cur.Offset - start
		start = cur.Offset
		r.slab.took(c.records)
		select {
		case out <- c:
		case <-ctx.Done():
			return false
		}
		if !final {
			c = r.newChunk()
		}
		return true
	}
	for {
		line, end, ok := lr.next()
		if !ok {
			cur.Offset = end // past over-long lines skipped at the end, or in part
			break
		}
		r.handleLine(line, cur, c, pl)
		if !compressed {
			fp.consumed(line)
			fp.consumed(newline)
		}
		cur.Offset = end
		if len(c.records) >= r.in.chunkRecords || cur.Offset-start >= r.in.chunkBytes {
			if compressed {
				continue // a compressed archive commits once: it cannot be resumed midway
			}
			if !emit(false) {
				return
			}
		}
	}
	if lr.err != nil {
		out <- &chunk{err: lr.err}
		return
	}
	// The budget ran out: the file is not read to its end.
	cut := limited != nil && limited.N == 0
	cur.Pending, cur.Partial = false, 0
	if tail := lr.tail(); len(bytes.TrimSpace(tail)) > 0 {
		// A complete object without its "\n" (the writer cut between the
		// two) is a whole line; anything else is a line still being written,
		// whose bytes need not be searched again.
		if !cut && tail[0] == '{' && fastjson.ValidateBytes(tail) == nil {
			r.handleLine(tail, cur, c, pl)
			fp.consumed(tail)
			cur.Offset += int64(len(tail))
		} else {
			cur.Pending, cur.Partial = true, int64(len(tail))
			if r.in.final && !cut {
				c.skips.PartialLine++
			}
		}
	}
	emit(!cut)
}

// handleLine folds one line into the chunk and the file's state, with the
// reader of the file's format.
func (r *fileReader) handleLine(line []byte, cur *fileCursor, c *chunk, pl *parsedLine) {
	switch cur.Format {
	case formatClaude:
		r.claudeLine(line, cur, c)
	case formatCodex:
		r.codexLine(line, cur, c)
	default:
		r.openclawLine(line, cur, c, pl)
	}
}

// openclawLine handles a pi/OpenClaw line. A line that holds the start of
// another entry is a torn write followed by the next append: the fragment
// is malformed, the entry after it is kept.
func (r *fileReader) openclawLine(line []byte, cur *fileCursor, c *chunk, pl *parsedLine) {
	if !r.parser.quick(line, pl) {
		c.skips.Malformed += r.parser.reference(line, pl)
	}
	r.in.openclawEntry(pl, cur.Agent, &cur.SessionID, &cur.Sender, &c.calls)
}

// reference is the reference path of openclawLine: a torn write (a line
// that holds the start of another entry) is cut off and counted as
// malformed (returned), then the rest is parsed.
func (lp *lineParser) reference(line []byte, pl *parsedLine) (malformed int64) {
	for len(line) > 1 {
		i := indexPair(line[1:], entryStart, messageValue)
		if i < 0 || fastjson.ValidateBytes(line) == nil {
			break
		}
		malformed++
		line = line[i+1:]
	}
	lp.parse(line, pl)
	return malformed
}

var newline = []byte{'\n'}

// fingerprintsFromFile reads the head and tail fingerprints at the cursor
// from the file: for reads that skipped over-long lines.
func (r *fileReader) fingerprintsFromFile(f io.ReaderAt, cur *fileCursor) error {
	n := int(min(cur.Offset, fingerprintLen))
	head, err := readAt(f, 0, n)
	if err != nil {
		return err
	}
	tail, err := readAt(f, cur.Offset-int64(n), n)
	if err != nil {
		return err
	}
	var fp fingerprinter
	fp.start(head, tail)
	fp.set(cur)
	return nil
}
