package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
)

// ErrCorrupt means the database file is damaged: cut short, or with pages
// that do not hold what bbolt wrote there. Every command that meets one
// says so instead of crashing; the file cannot be used as it is.
var ErrCorrupt = errors.New("database file is damaged")

// corruptError says where and how a file is damaged; errors.Is(err,
// ErrCorrupt) holds for it.
type corruptError struct {
	path   string
	detail string
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("database %s is damaged: %s", e.path, e.detail)
}

func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(path, format string, a ...any) error {
	return &corruptError{path: path, detail: fmt.Sprintf(format, a...)}
}

// The on-disk format of bbolt (version 2), read here without bbolt: a
// damaged file makes bbolt panic, sometimes on a goroutine of its own that
// nothing can recover, or fault on pages past the end of a short file.
// Every page starts with a 16-byte header: id u64, flags u16, count u16,
// overflow u32. Pages 0 and 1 are meta pages. Integers are in the byte
// order of the machine that wrote them.
const (
	pageHeaderSize = 16
	elemSize       = 16 // leaf: flags u32, pos u32, ksize u32, vsize u32; branch: pos u32, ksize u32, pgid u64
	bucketHdrSize  = 16 // root pgid u64, sequence u64; root 0 means an inline page follows

	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01

	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	noFreelist     = ^uint64(0)
	metaChecksumAt = 56 // the checksum is an FNV-64a of the meta's first 56 bytes
)

var ne = binary.NativeEndian

// boltMeta is the part of a meta page the checks need.
type boltMeta struct {
	pageSize uint32
	root     uint64 // the root bucket's page
	freelist uint64
	hwm      uint64 // high-water mark: pages [0, hwm) are in use or free
	txid     uint64
}

// parseMeta reads a meta page; ok is false when it is not a valid one.
func parseMeta(page []byte) (boltMeta, bool) {
	if len(page) < pageHeaderSize+metaChecksumAt+8 {
		return boltMeta{}, false
	}
	m := page[pageHeaderSize:]
	h := fnv.New64a()
	h.Write(m[:metaChecksumAt])
	if ne.Uint32(m[0:]) != boltMagic || ne.Uint32(m[4:]) != boltVersion || ne.Uint64(m[metaChecksumAt:]) != h.Sum64() {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: ne.Uint32(m[8:]), root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]), hwm: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}, true
}

// pageReader reads a bbolt file page by page with pread, so a short or
// damaged file gives errors, never a fault.
type pageReader struct {
	path     string
	f        *os.File
	size     int64
	pageSize int
	meta     boltMeta
	lenient  bool
}

// openPages opens path and picks its meta page as bbolt would (the valid
// one with the higher txid), checking that the file holds every page the
// meta says is in use; lenient skips that check (a salvage reads what
// there is).
func openPages(path string, lenient bool) (*pageReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	adviseRandom(f) // see Open
	r := &pageReader{path: path, f: f, size: st.Size(), lenient: lenient}
	if err := r.pickMeta(); err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func (r *pageReader) Close() error { return r.f.Close() }

func (r *pageReader) pickMeta() error {
	if r.size == 0 {
		return corrupt(r.path, "the file is empty")
	}
	buf := make([]byte, 4096)
	n, _ := r.f.ReadAt(buf, 0)
	m0, ok0 := parseMeta(buf[:n])
	pageSize := os.Getpagesize()
	if ok0 {
		pageSize = int(m0.pageSize)
	}
	var m1 boltMeta
	ok1 := false
	if pageSize >= 1024 && pageSize <= 1<<16 {
		n, _ = r.f.ReadAt(buf, int64(pageSize))
		m1, ok1 = parseMeta(buf[:n])
	}
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		r.meta = m1
	case ok0:
		r.meta = m0
	default:
		return corrupt(r.path, "no valid meta page (not a bbolt file, or its first pages are overwritten)")
	}
	r.pageSize = int(r.meta.pageSize)
	if r.pageSize < 1024 || r.pageSize > 1<<16 || r.pageSize&(r.pageSize-1) != 0 {
		return corrupt(r.path, "meta page gives page size %d", r.pageSize)
	}
	if need := int64(r.meta.hwm) * int64(r.pageSize); need > r.size && !r.lenient {
		return corrupt(r.path, "the file is %d bytes, its pages need %d: it was cut short", r.size, need)
	}
	if r.meta.root < 2 || r.meta.root >= r.meta.hwm {
		return corrupt(r.path, "root page %d is out of range", r.meta.root)
	}
	return nil
}

// header reads the 16-byte header of page id.
func (r *pageReader) header(id uint64) ([]byte, error) {
	if id < 2 || id >= r.meta.hwm {
		return nil, corrupt(r.path, "page %d is out of range [2, %d)", id, r.meta.hwm)
	}
	hdr := make([]byte, pageHeaderSize)
	if _, err := r.f.ReadAt(hdr, int64(id)*int64(r.pageSize)); err != nil {
		return nil, corrupt(r.path, "page %d: %v", id, err)
	}
	if got := ne.Uint64(hdr); got != id {
		return nil, corrupt(r.path, "page %d says it is page %d", id, got)
	}
	return hdr, nil
}

// page reads page id with its overflow pages.
func (r *pageReader) page(id uint64) ([]byte, error) {
	hdr, err := r.header(id)
	if err != nil {
		return nil, err
	}
	overflow := uint64(ne.Uint32(hdr[12:]))
	if id+overflow >= r.meta.hwm {
		return nil, corrupt(r.path, "page %d overflows past the last page", id)
	}
	buf := make([]byte, (overflow+1)*uint64(r.pageSize))
	if _, err := r.f.ReadAt(buf, int64(id)*int64(r.pageSize)); err != nil && !errors.Is(err, io.EOF) {
		return nil, corrupt(r.path, "page %d: %v", id, err)
	}
	return buf, nil
}

// walker visits every page reachable from the root bucket once, checking
// that page kinds, element bounds and key order are sound. kv sees every
// key/value of a bucket (bucket is the path of bucket names, nil for the
// root). bad sees each damaged subtree; returning false stops the walk.
type walker struct {
	r    *pageReader
	seen []uint64 // bitset of visited pages
	kv   func(bucket [][]byte, k, v []byte)
	bad  func(err error) bool
	stop bool
}

func (w *walker) fail(err error) {
	if !w.bad(err) {
		w.stop = true
	}
}

// bucket walks the bucket whose header is hdr (and whose inline page, if
// any, follows it).
func (w *walker) bucket(path [][]byte, hdr []byte) {
	if len(hdr) < bucketHdrSize {
		w.fail(corrupt(w.r.path, "bucket %q: header cut short", path))
		return
	}
	root := ne.Uint64(hdr)
	if root == 0 {
		w.pageData(path, hdr[bucketHdrSize:], 0, 0, nil, nil)
		return
	}
	w.visit(path, root, 0, nil, nil)
}

// visit checks page id and its subtree, whose keys must lie in
// [minKey, maxKey) (nil: open), as bbolt's own check demands; it returns
// the largest key of the subtree.
func (w *walker) visit(path [][]byte, id uint64, depth int, minKey, maxKey []byte) []byte {
	if w.stop {
		return nil
	}
	if depth > 64 {
		w.fail(corrupt(w.r.path, "page %d: tree deeper than 64 levels", id))
		return nil
	}
	p, err := w.r.page(id)
	if err != nil {
		w.fail(err)
		return nil
	}
	for i := id; i <= id+uint64(ne.Uint32(p[12:])); i++ {
		if w.seen[i/64]&(1<<(i%64)) != 0 {
			w.fail(corrupt(w.r.path, "page %d is reachable twice", i))
			return nil
		}
		w.seen[i/64] |= 1 << (i % 64)
	}
	return w.pageData(path, p, id, depth, minKey, maxKey)
}

// pageData checks one branch or leaf page (id 0: an inline page) and
// returns its subtree's largest key.
func (w *walker) pageData(path [][]byte, p []byte, id uint64, depth int, minKey, maxKey []byte) []byte {
	if len(p) < pageHeaderSize {
		w.fail(corrupt(w.r.path, "page %d of bucket %q: cut short", id, path))
		return nil
	}
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	if flags != branchPageFlag && flags != leafPageFlag {
		w.fail(corrupt(w.r.path, "page %d of bucket %q has flags %#x, not a branch or leaf", id, path, flags))
		return nil
	}
	if id == 0 && flags != leafPageFlag {
		w.fail(corrupt(w.r.path, "inline page of bucket %q is not a leaf", path))
		return nil
	}
	if pageHeaderSize+count*elemSize > len(p) {
		w.fail(corrupt(w.r.path, "page %d of bucket %q: %d elements do not fit", id, path, count))
		return nil
	}
	keyAt := func(i int) ([]byte, bool) {
		at := pageHeaderSize + i*elemSize
		if flags == branchPageFlag {
			return span(p, at+int(ne.Uint32(p[at:])), int(ne.Uint32(p[at+4:])))
		}
		return span(p, at+int(ne.Uint32(p[at+4:])), int(ne.Uint32(p[at+8:])))
	}
	var last []byte
	running := minKey
	for i := 0; i < count && !w.stop; i++ {
		at := pageHeaderSize + i*elemSize
		key, ok := keyAt(i)
		if !ok {
			w.fail(corrupt(w.r.path, "page %d of bucket %q: element %d points outside the page", id, path, i))
			return nil
		}
		if running != nil && (bytes.Compare(running, key) > 0 || i > 0 && bytes.Equal(running, key)) || maxKey != nil && bytes.Compare(key, maxKey) >= 0 {
			w.fail(corrupt(w.r.path, "page %d of bucket %q: key %d out of order", id, path, i))
			return nil
		}
		last = key
		if flags == branchPageFlag {
			next := maxKey
			if i+1 < count {
				if next, ok = keyAt(i + 1); !ok {
					w.fail(corrupt(w.r.path, "page %d of bucket %q: element %d points outside the page", id, path, i+1))
					return nil
				}
			}
			last = w.visit(path, ne.Uint64(p[at+8:]), depth+1, key, next)
			running = last
			continue
		}
		running = key
		val, ok := span(p, at+int(ne.Uint32(p[at+4:]))+len(key), int(ne.Uint32(p[at+12:])))
		if !ok {
			w.fail(corrupt(w.r.path, "page %d of bucket %q: value %d points outside the page", id, path, i))
			return nil
		}
		if ne.Uint32(p[at:])&bucketLeafFlag != 0 {
			w.bucket(append(path[:len(path):len(path)], key), val)
		} else {
			w.kv(path, key, val)
		}
	}
	return last
}

// span is p[at:at+n] when it lies within p.
func span(p []byte, at, n int) ([]byte, bool) {
	if at < 0 || n < 0 || at > len(p) || n > len(p)-at {
		return nil, false
	}
	return p[at : at+n], true
}

// walkFile walks the file at path. The caller keeps writers out (holds
// the lock, or the file is a copy).
func walkFile(path string, lenient bool, kv func(bucket [][]byte, k, v []byte), bad func(error) bool) error {
	r, err := openPages(path, lenient)
	if err != nil {
		return err
	}
	defer r.Close()
	w := &walker{r: r, seen: make([]uint64, r.meta.hwm/64+1), kv: kv, bad: bad}
	w.visit(nil, r.meta.root, 0, nil, nil)
	if w.stop {
		return nil
	}
	if fl := r.meta.freelist; fl != noFreelist {
		p, err := r.page(fl)
		if err != nil {
			w.fail(err)
		} else if flags := ne.Uint16(p[8:]); flags != freelistPageFlag {
			w.fail(corrupt(path, "freelist page %d has flags %#x", fl, flags))
		}
	}
	return nil
}

// Verify reads every page of the bbolt file at path that its root
// reaches, and every value a salvage would keep (see salvaged: a ledger
// row cut short or overwritten in place is intact to bbolt, yet no read
// can use it), and reports the first damage found (ErrCorrupt), or nil.
// No other process may write the file meanwhile. It is the check of
// `doctor` and `repair`; opening a file and a backup's copy walk the pages
// only (verifyPages): decoding every row of a large ledger at every start
// would cost seconds.
func Verify(path string) error {
	return verify(path, true)
}

// verifyPages is Verify without the values: every page the root reaches
// is read and checked, as bbolt would need them.
func verifyPages(path string) error {
	return verify(path, false)
}

func verify(path string, values bool) error {
	var first error
	bad := func(err error) bool {
		if first == nil {
			first = err
		}
		return false
	}
	err := walkFile(path, false, func(b [][]byte, k, v []byte) {
		if !values || first != nil || len(b) != 1 {
			return
		}
		if ok, kept := salvaged[string(b[0])]; kept && !ok(k, v) {
			bad(corrupt(path, "bucket %q: the value of key %x cannot be read", b[0], k))
		}
	}, bad)
	if err != nil {
		return err
	}
	return first
}

// guard turns a panic or a memory fault inside fn (bbolt reading a
// damaged page, or a page past the end of a file cut short under it)
// into ErrCorrupt. bbolt reads pages in the caller's goroutine, so this
// covers every View and Update.
func guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corrupt(path, "%v", r)
		}
	}()
	return fn()
}
