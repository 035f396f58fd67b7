package storage

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// adviseRandom tells the kernel f's pages are read one at a time (as
// bbolt's mapping reads them, with MADV_RANDOM): no readahead, which would
// also fill the page cache with large folios that a page fault on the
// mapping maps whole. Advice only: an error changes nothing.
func adviseRandom(f *os.File) { _ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM) }

// dropMapped unmaps b's pages from the process (they stay in the page
// cache; the next read maps them again).
func dropMapped(b []byte) error { return syscall.Madvise(b, syscall.MADV_DONTNEED) }
