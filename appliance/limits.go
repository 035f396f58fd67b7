package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// What keeps a daemon that runs for months within bounds: the log (a
// repeated warning or error is written at most every 30 s, whichever part
// logs it) and the database file (a size cap, see cappedLedger).

// logRepeatEvery is how often the same warning or error may be logged.
const logRepeatEvery = 30 * time.Second

// limitState is shared by a handler and its WithAttrs/WithGroup children.
type limitState struct {
	mu   sync.Mutex
	seen map[string]*logSeen
}

type logSeen struct {
	last       time.Time
	suppressed int
}

// maxLogKeys bounds the remembered messages (keys hold untrusted text:
// paths, errors).
const maxLogKeys = 4096

// limitedHandler drops a warning or error identical (message and
// attributes, times and durations aside) to one written less than every
// ago; the next one written says how many were dropped (repeated=N).
// Info and debug records always pass.
type limitedHandler struct {
	next  slog.Handler
	every time.Duration
	now   func() time.Time
	state *limitState
	scope string // attributes and groups added by With, part of the key
}

func newLimitedHandler(next slog.Handler, every time.Duration, now func() time.Time) *limitedHandler {
	return &limitedHandler{next: next, every: every, now: now, state: &limitState{seen: map[string]*logSeen{}}}
}

func (h *limitedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	var key strings.Builder
	key.WriteString(h.scope)
	key.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		switch a.Value.Kind() {
		case slog.KindTime, slog.KindDuration:
			return true // when it happened, or when it is retried: not what happened
		}
		fmt.Fprintf(&key, "\x00%s=%s", a.Key, a.Value)
		return true
	})
	now := h.now()
	s := h.state
	s.mu.Lock()
	e, ok := s.seen[key.String()]
	if ok && now.Sub(e.last) < h.every && !now.Before(e.last) {
		e.suppressed++
		s.mu.Unlock()
		return nil
	}
	suppressed := 0
	if ok {
		suppressed = e.suppressed
	}
	if len(s.seen) >= maxLogKeys {
		for k, v := range s.seen {
			if now.Sub(v.last) >= h.every {
				delete(s.seen, k)
			}
		}
		if len(s.seen) >= maxLogKeys {
			clear(s.seen)
		}
	}
	s.seen[key.String()] = &logSeen{last: now}
	s.mu.Unlock()
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", suppressed))
	}
	return h.next.Handle(ctx, r)
}

func (h *limitedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	var b strings.Builder
	b.WriteString(h.scope)
	for _, a := range as {
		fmt.Fprintf(&b, "%s=%s\x00", a.Key, a.Value)
	}
	c.scope = b.String()
	return &c
}

func (h *limitedHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.scope = h.scope + name + ".\x00"
	return &c
}

// errDBFull: the database file reached db_max_mb.
var errDBFull = errors.New("the database reached its size cap (db_max_mb)")

// cappedLedger is the ledger ingest writes through: once the file is at
// its cap, batches that add records are refused (the step fails, cursors
// stay, the same lines are read again when there is room), so a host
// left alone for months never fills its disk with the database.
type cappedLedger struct {
	*storage.DB
	max int64 // bytes; 0: no cap
}

func capLedger(db *storage.DB, cfg Config) cappedLedger {
	return cappedLedger{DB: db, max: cfg.DBMaxMB << 20}
}

// Apply refuses new records at the cap.
func (l cappedLedger) Apply(b *storage.Batch) (storage.ApplyResult, error) {
	if l.max > 0 && b.Len() > 0 {
		if size := fileSize(l.Path()); size >= l.max {
			return storage.ApplyResult{}, fmt.Errorf("%w: %s is %d MiB, the cap %d MiB: raise db_max_mb, shorten [retention] and run fleetmeter compact, or move the data dir",
				errDBFull, l.Path(), size>>20, l.max>>20)
		}
	}
	return l.DB.Apply(b)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
