package ingest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
)

// File cursors are stored in binary: a cold ingest writes one per file
// (10k small files: 397 → 194 bytes each, and the committer encoded them
// with encoding/json at a tenth of its CPU), and the daemon decodes every
// one at start. Cursors written before are JSON (a fileCursor as
// encoding/json marshals it) and still decode: decodeCursor tells them
// apart by their first byte ('{' or cursorBin).
//
// The layout, in this order:
//
//	cursorBin (1 byte)
//	flags (1 byte: see below)
//	path hash format agent session_id sender.id sender.label
//	    (each a uvarint length, then the bytes)
//	dev ino head_len head_hash tail_len tail_hash (uvarints)
//	size mod_ns offset partial (varints)
//	extras: a uvarint length, then that many bytes of JSON holding the
//	    Codex state and the re-read skips ({"codex":…,"skipped":…,
//	    "counted":…}), 0 when there are none (most files)
const cursorBin = 0x01

// Flags of a binary cursor.
const (
	cursorComplete = 1 << iota
	cursorSkipping
	cursorPending
	cursorSenderSystem
	cursorFlags = cursorComplete | cursorSkipping | cursorPending | cursorSenderSystem
)

var errBadCursor = errors.New("bad file cursor")

// cursorExtras are the parts of a cursor few files have.
type cursorExtras struct {
	Codex *codexState `json:"codex,omitempty"`
	rereadSkips
}

// appendCursor appends c's binary form to b.
func appendCursor(b []byte, c *fileCursor) ([]byte, error) {
	var flags byte
	for _, f := range [...]struct {
		on  bool
		bit byte
	}{{c.Complete, cursorComplete}, {c.Skipping, cursorSkipping}, {c.Pending, cursorPending}, {c.Sender.System, cursorSenderSystem}} {
		if f.on {
			flags |= f.bit
		}
	}
	b = append(b, cursorBin, flags)
	for _, s := range [...]string{c.Path, c.Hash, c.Format, c.Agent, c.SessionID, c.Sender.ID, c.Sender.Label} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, n := range [...]uint64{c.Dev, c.Ino, uint64(c.HeadLen), c.HeadHash, uint64(c.TailLen), c.TailHash} {
		b = binary.AppendUvarint(b, n)
	}
	for _, n := range [...]int64{c.Size, c.ModNano, c.Offset, c.Partial} {
		b = binary.AppendVarint(b, n)
	}
	if c.Codex == nil && c.Skipped == nil && c.Counted == nil {
		return append(b, 0), nil
	}
	extras, err := json.Marshal(cursorExtras{c.Codex, c.rereadSkips})
	if err != nil {
		return nil, err
	}
	b = binary.AppendUvarint(b, uint64(len(extras)))
	return append(b, extras...), nil
}

// encodeCursor is c's stored form.
func encodeCursor(c *fileCursor) ([]byte, error) {
	return appendCursor(make([]byte, 0, 96+len(c.Path)+len(c.Agent)+len(c.SessionID)), c)
}

// decodeCursor decodes a stored cursor of either form into c.
func decodeCursor(v []byte, c *fileCursor) error {
	*c = fileCursor{}
	if len(v) > 0 && v[0] == '{' {
		return json.Unmarshal(v, c)
	}
	if len(v) < 2 || v[0] != cursorBin || v[1]&^cursorFlags != 0 {
		return errBadCursor
	}
	flags, p := v[1], v[2:]
	c.Complete, c.Skipping, c.Pending = flags&cursorComplete != 0, flags&cursorSkipping != 0, flags&cursorPending != 0
	c.Sender.System = flags&cursorSenderSystem != 0
	for _, s := range [...]*string{&c.Path, &c.Hash, &c.Format, &c.Agent, &c.SessionID, &c.Sender.ID, &c.Sender.Label} {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return errBadCursor
		}
		*s, p = string(p[k:k+int(n)]), p[k+int(n):]
	}
	var u [6]uint64
	for i := range u {
		n, k := binary.Uvarint(p)
		if k <= 0 {
			return errBadCursor
		}
		u[i], p = n, p[k:]
	}
	c.Dev, c.Ino, c.HeadLen, c.HeadHash, c.TailLen, c.TailHash = u[0], u[1], int(u[2]), u[3], int(u[4]), u[5]
	for _, n := range [...]*int64{&c.Size, &c.ModNano, &c.Offset, &c.Partial} {
		x, k := binary.Varint(p)
		if k <= 0 {
			return errBadCursor
		}
		*n, p = x, p[k:]
	}
	n, k := binary.Uvarint(p)
	if k <= 0 || n != uint64(len(p)-k) {
		return errBadCursor
	}
	if n == 0 {
		return nil
	}
	var x cursorExtras
	if err := json.Unmarshal(p[k:], &x); err != nil {
		return err
	}
	c.Codex, c.rereadSkips = x.Codex, x.rereadSkips
	return nil
}
