//go:build !linux

package storage

import "os"

// adviseRandom: readahead advice is Linux's (see advise_linux.go); other
// systems (darwin, for reports on a laptop) read as they do.
func adviseRandom(*os.File) {}

// dropMapped: resident mapped pages are released on Linux only.
func dropMapped([]byte) error { return nil }
