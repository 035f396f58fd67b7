package ingest

import (
	"bytes"
	"errors"
	"io"
)

// MaxLineBytes caps one transcript line. Lines carry base64 images and long
// tool output (10 MB+ is seen); longer lines are skipped and counted, never
// held in memory whole.
const MaxLineBytes = 64 << 20

// initialBuffer is a line reader's first buffer; it doubles while one
// line does not fit. Most transcripts are small: a megabyte per reader
// was more fresh memory (page faults) than many reports read.
const initialBuffer = 256 << 10

// lineReader yields complete "\n"-terminated lines from r, which is
// positioned at byte offset start of its file. bufio.Scanner's 64 KB token
// limit would fail on real transcripts, so this keeps its own buffer that
// grows up to MaxLineBytes.
type lineReader struct {
	r   io.Reader
	buf []byte
	lo  int   // start of unread data in buf
	hi  int   // end of data in buf
	off int64 // file offset of buf[lo]
	eof bool
	err error

	oversize int // lines skipped for being longer than MaxLineBytes
	skipping bool

	// expect, when above 0, is how many bytes a stat promised: once they
	// are read, a short read is the end (no further read to hear it: a
	// small file costs one read, not two). Growth after the stat is read
	// on as always; a read that stops short of expect continues, and an
	// over-long line is left to fill, which skips it.
	expect, got int64
}

func newLineReader(r io.Reader, start int64, buf []byte) *lineReader {
	lr := new(lineReader)
	lr.reset(r, start, buf)
	return lr
}

// reset readies lr for r (as newLineReader), keeping nothing else.
func (lr *lineReader) reset(r io.Reader, start int64, buf []byte) {
	if cap(buf) < initialBuffer {
		buf = make([]byte, initialBuffer)
	}
	*lr = lineReader{r: r, buf: buf[:cap(buf)], off: start}
}

// next returns the next complete line without its "\n" and the file offset
// just past it. ok is false at EOF or on error; then tail() holds any
// unterminated rest. The line is valid until the next call.
func (lr *lineReader) next() (line []byte, end int64, ok bool) {
	for {
		if i := bytes.IndexByte(lr.buf[lr.lo:lr.hi], '\n'); i >= 0 {
			line = lr.buf[lr.lo : lr.lo+i]
			lr.lo += i + 1
			lr.off += int64(i + 1)
			if lr.skipping {
				lr.skipping = false
				continue
			}
			return line, lr.off, true
		}
		if lr.eof || lr.err != nil {
			return nil, lr.off, false
		}
		lr.fill()
	}
}

// fill reads more data into the free end of the buffer, first moving the
// pending bytes to the front, or growing the buffer when one line fills it.
func (lr *lineReader) fill() {
	pending := lr.hi - lr.lo
	switch {
	case lr.skipping:
		// Discard an over-long line's bytes as they come.
		lr.off += int64(pending)
		lr.lo, lr.hi = 0, 0
	case pending >= MaxLineBytes:
		lr.oversize++
		lr.skipping = true
		lr.off += int64(pending)
		lr.lo, lr.hi = 0, 0
	case lr.lo > 0 && lr.hi == len(lr.buf):
		copy(lr.buf, lr.buf[lr.lo:lr.hi])
		lr.lo, lr.hi = 0, pending
	}
	if lr.hi == len(lr.buf) { // one line fills the buffer
		grown := make([]byte, min(2*len(lr.buf), MaxLineBytes+initialBuffer))
		copy(grown, lr.buf[lr.lo:lr.hi])
		lr.buf = grown
		lr.lo, lr.hi = 0, pending
	}
	want := len(lr.buf) - lr.hi
	n, err := lr.r.Read(lr.buf[lr.hi:])
	lr.hi += n
	lr.got += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		lr.eof = true
	case err != nil:
		lr.err = err
	case lr.expect > 0 && !lr.skipping && lr.hi-lr.lo < MaxLineBytes && lr.got >= lr.expect && n < want:
		lr.eof = true
	}
}

// tail is the unterminated rest after next returned false.
func (lr *lineReader) tail() []byte {
	if lr.skipping {
		return nil
	}
	return lr.buf[lr.lo:lr.hi]
}
