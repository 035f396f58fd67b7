package ingest

import (
	"slices"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Skips of a file (or a stored session) read again from its start. A
// file rewritten in place (its fingerprints differ), truncated, or
// replaced by another with the same name (a temp file renamed over it: a
// new inode) is read again from byte 0; so is a stored session rewritten
// or reset into an archive. Its calls are deduplicated by their keys, but its skips have no
// key: counted again, the ledger's and the status's skip counters would
// grow with every rewrite of the same lines. So a file's cursor carries
// what it has counted: Skipped, the skips the current read from byte 0
// has found, and Counted, what was counted for the file before that read,
// where it is more. A chunk counts only the skips of a kind beyond both,
// and a read from the start begins with Skipped at zero and Counted at the
// most either said. Duplicates are not kept so: they are the dedupe's
// verdict on each read, and a re-read's calls are duplicates indeed.

// fileSkips are one file's counts of the skip kinds a re-read finds again.
// Most files have none or one kind: the zero kinds are left out of the
// cursor's JSON, and a cursor without any holds no fileSkips at all.
type fileSkips struct {
	NotModelCall      int64 `json:"not_model_call,omitempty"`
	ZeroUsage         int64 `json:"zero_usage,omitempty"`
	Malformed         int64 `json:"malformed,omitempty"`
	PartialLine       int64 `json:"partial_line,omitempty"`
	OversizeLine      int64 `json:"oversize_line,omitempty"`
	UnrecognizedUsage int64 `json:"unrecognized_usage,omitempty"`
}

// kinds are the counts of f and the same kinds of s, in one order.
func (f *fileSkips) kinds() [6]*int64 {
	return [6]*int64{&f.NotModelCall, &f.ZeroUsage, &f.Malformed, &f.PartialLine, &f.OversizeLine, &f.UnrecognizedUsage}
}

func skipKinds(s *storage.Skips) [6]*int64 {
	return [6]*int64{&s.NotModelCall, &s.ZeroUsage, &s.Malformed, &s.PartialLine, &s.OversizeLine, &s.UnrecognizedUsage}
}

// rereadSkips is what a cursor carries of its file's (or stored
// session's) skips: Skipped, found by the read from the start, and
// Counted, counted before that read where it is more. nil: none. It is
// embedded in fileCursor and storeCursor (their JSON holds its keys).
type rereadSkips struct {
	Skipped *fileSkips `json:"skipped,omitempty"`
	Counted *fileSkips `json:"counted,omitempty"`
}

// counted is how many skips of each kind were counted for the file: the
// most of Counted and Skipped.
func (c *rereadSkips) counted() fileSkips {
	var out fileSkips
	if c.Counted != nil {
		out = *c.Counted
	}
	if c.Skipped != nil {
		o, s := out.kinds(), c.Skipped.kinds()
		for i := range o {
			*o[i] = max(*o[i], *s[i])
		}
	}
	return out
}

// fromStart readies c for a read from byte 0 of a file of which before
// counted skips (before may be c itself, or nil: nothing counted).
func (c *fileCursor) fromStart(before *fileCursor) {
	var b *rereadSkips
	if before != nil {
		b = &before.rereadSkips
	}
	c.rereadSkips.fromStart(b)
}

// fromStart readies c for a read from the start of what before counted
// skips of (before may be c itself, or nil: nothing counted).
func (c *rereadSkips) fromStart(before *rereadSkips) {
	if before == nil || before.Skipped == nil && before.Counted == nil {
		c.Skipped, c.Counted = nil, nil // nothing counted: nothing allocated
		return
	}
	counted := new(fileSkips)
	*counted = before.counted()
	c.Skipped, c.Counted = nil, counted
}

// settle takes the skips a chunk of c's file found into c, and leaves in
// out only those not counted for the file yet. The fileSkips c points to
// are never changed (chunks and memory share them): new ones are made.
func (c *rereadSkips) settle(out *calls) {
	s := skipKinds(&out.skips)
	found := false
	for _, n := range s {
		found = found || *n > 0
	}
	if !found {
		return
	}
	counted := c.counted()
	var seen fileSkips
	if c.Skipped != nil {
		seen = *c.Skipped
	}
	cn, sn := counted.kinds(), seen.kinds()
	drift := out.skips.UnrecognizedUsage
	for i, n := range s {
		*sn[i] += *n
		*n = max(0, *sn[i]-*cn[i])
		*cn[i] = max(*cn[i], *sn[i])
	}
	c.Skipped = &seen
	c.Counted = nil
	if counted != seen {
		c.Counted = &counted
	}
	if kept := out.skips.UnrecognizedUsage; kept < drift {
		out.drift = keepDrift(out.drift, kept)
	}
}

// keepDrift trims the per-field counts of unrecognized usage to n in all,
// the fields in name order, when a re-read found fields counted before.
func keepDrift(drift map[string]int64, n int64) map[string]int64 {
	if n == 0 {
		return nil
	}
	keys := make([]string, 0, len(drift))
	for k := range drift {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		drift[k] = min(drift[k], n)
		n -= drift[k]
		if drift[k] == 0 {
			delete(drift, k)
		}
	}
	return drift
}
