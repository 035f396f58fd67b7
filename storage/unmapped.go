package storage

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Scans that read pages with pread instead of through bbolt's mapping.
// Each page fault on the mapping maps its neighbours too (the kernel's
// fault-around: 64 KiB, or the whole large folio the page cache holds the
// page in), so a report that walks a bucket whose pages lie scattered over
// a large file leaves many times the bucket's size resident: 400 MB for
// 32 MB of session rows, measured. Inside a read
// transaction the pages reachable from its roots are never reused (bbolt
// frees a page only once no older transaction is open), so reading them
// with pread is as consistent as reading the mapping.

// errStopScan ends a scan early without an error.
var errStopScan = errors.New("stop scan")

// txPages reads the pages of tx's snapshot.
func (db *DB) txPages(tx *bolt.Tx) *pageReader {
	ps := db.bolt.Info().PageSize
	return &pageReader{path: db.path, f: db.file, pageSize: ps, meta: boltMeta{hwm: uint64(tx.Size()) / uint64(ps)}}
}

// scanUnmapped calls fn for each key of bucket name in [from, to) (nil
// ends are open), in key order. k and v are valid during the call only.
func (db *DB) scanUnmapped(tx *bolt.Tx, name, from, to []byte, fn func(k, v []byte) error) error {
	b := tx.Bucket(name)
	if b == nil {
		return fmt.Errorf("no bucket %q", name)
	}
	if root := uint64(b.Root()); root != 0 {
		err := scanPage(db.txPages(tx), root, from, to, fn, 0)
		if errors.Is(err, errStopScan) {
			return nil
		}
		return err
	}
	// An inline bucket lives inside its parent's page: a few keys.
	c := b.Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	for ; k != nil && (to == nil || bytes.Compare(k, to) < 0); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// scanPage visits the subtree under page id. A branch element's child
// holds the keys from its key up to the next element's key.
func scanPage(r *pageReader, id uint64, from, to []byte, fn func(k, v []byte) error, depth int) error {
	if depth > 64 {
		return corrupt(r.path, "page %d: tree deeper than 64 levels", id)
	}
	p, err := r.page(id)
	if err != nil {
		return err
	}
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	if pageHeaderSize+count*elemSize > len(p) || flags != branchPageFlag && flags != leafPageFlag {
		return corrupt(r.path, "page %d: not a branch or leaf page", id)
	}
	elem := func(i int) (key, val []byte, child uint64, bucket bool, err error) {
		at := pageHeaderSize + i*elemSize
		ok := true
		if flags == branchPageFlag {
			key, ok = span(p, at+int(ne.Uint32(p[at:])), int(ne.Uint32(p[at+4:])))
			child = ne.Uint64(p[at+8:])
		} else {
			pos, ks := at+int(ne.Uint32(p[at+4:])), int(ne.Uint32(p[at+8:]))
			if key, ok = span(p, pos, ks); ok {
				val, ok = span(p, pos+ks, int(ne.Uint32(p[at+12:])))
			}
			bucket = ne.Uint32(p[at:])&bucketLeafFlag != 0
		}
		if !ok {
			err = corrupt(r.path, "page %d: element %d points outside the page", id, i)
		}
		return key, val, child, bucket, err
	}
	for i := range count {
		key, val, child, bucket, err := elem(i)
		if err != nil {
			return err
		}
		if to != nil && bytes.Compare(key, to) >= 0 {
			return errStopScan
		}
		if flags == leafPageFlag {
			if bucket || from != nil && bytes.Compare(key, from) < 0 {
				continue
			}
			if err := fn(key, val); err != nil {
				return err
			}
			continue
		}
		if i+1 < count && from != nil {
			next, _, _, _, err := elem(i + 1)
			if err != nil {
				return err
			}
			if bytes.Compare(next, from) <= 0 {
				continue // the whole child lies before from
			}
		}
		if err := scanPage(r, child, from, to, fn, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// countUnmapped counts the keys of bucket name in tx's snapshot, reading
// branch pages whole and only the 16-byte header of each leaf (which holds
// its element count): a tenth of a full scan's reads. Nested buckets are
// counted as keys; the buckets counted here hold none.
func (db *DB) countUnmapped(tx *bolt.Tx, name []byte) (int, error) {
	b := tx.Bucket(name)
	if b == nil {
		return 0, fmt.Errorf("no bucket %q", name)
	}
	root := uint64(b.Root())
	if root == 0 { // inline: a few keys inside its parent's page
		n, c := 0, b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		return n, nil
	}
	return countPage(db.txPages(tx), root, 0)
}

func countPage(r *pageReader, id uint64, depth int) (int, error) {
	if depth > 64 {
		return 0, corrupt(r.path, "page %d: tree deeper than 64 levels", id)
	}
	hdr, err := r.header(id)
	if err != nil {
		return 0, err
	}
	flags, count := ne.Uint16(hdr[8:]), int(ne.Uint16(hdr[10:]))
	switch flags {
	case leafPageFlag:
		return count, nil
	case branchPageFlag:
	default:
		return 0, corrupt(r.path, "page %d: not a branch or leaf page", id)
	}
	p, err := r.page(id)
	if err != nil {
		return 0, err
	}
	if pageHeaderSize+count*elemSize > len(p) {
		return 0, corrupt(r.path, "page %d: %d elements do not fit", id, count)
	}
	n := 0
	for i := range count {
		c, err := countPage(r, ne.Uint64(p[pageHeaderSize+i*elemSize+8:]), depth+1)
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// ScanDimRows is DimRows read without mapping the file's pages (see
// above); rows share their name strings.
func (db *DB) ScanDimRows(kind byte, from, to int32) ([]Row, error) {
	var out []Row
	var names interner
	err := db.bolt.View(func(tx *bolt.Tx) error {
		end := prefixEnd(append([]byte{kind}, periodKey(to)...)) // the days are inclusive
		return db.scanUnmapped(tx, bucketDailyDims, append([]byte{kind}, periodKey(from)...), end, func(k, v []byte) error {
			period, dim, err := decodeRowKey(k[1:])
			if err != nil {
				return fmt.Errorf("daily_dims row %x: %w", k, err)
			}
			for _, f := range []*string{&dim.Source, &dim.Agent, &dim.User, &dim.Provider, &dim.Model} {
				*f = names.intern(*f)
			}
			t, err := decodeTotals(v)
			if err != nil {
				return fmt.Errorf("daily_dims row %x: %w", k, err)
			}
			out = append(out, Row{Period: period, Dim: dim, Totals: t})
			return nil
		})
	})
	return out, err
}

// prefixEnd is the first key after every key that starts with p (nil: no
// such key, the scan runs to the end).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i]++; end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
