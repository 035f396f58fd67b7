package ingest

import (
	"context"
	"log/slog"
	"time"
)

// Progress is how far a step that reads a lot (the first pass over months
// of history, a catch-up after downtime) has come. Status carries it while
// such a step runs; the daemon logs it at intervals and `ingest --once`
// draws it on a terminal. Reports and the API answer meanwhile, from what
// is committed so far.
type Progress struct {
	Files     int `json:"files"` // files with something to read
	FilesDone int `json:"files_done"`
	// Bytes to read (what their cursors have not covered): 0 when not
	// known, on the first pass over many files, whose plan stats none
	// (see planLazy); its progress is then told in files.
	Bytes     int64     `json:"bytes"`
	BytesDone int64     `json:"bytes_done"`
	Started   time.Time `json:"started"`
	// RateBytes is bytes read per second so far; Left the time left at
	// that rate, or at the rate of files when Bytes is not known (0 until
	// a rate is known).
	RateBytes float64       `json:"rate_bytes_per_second"`
	Left      time.Duration `json:"left_ns"`
}

// A step is tracked (Status.Progress, the log) when it has at least this
// much to read: polls of a running daemon stay silent.
const (
	progressMinFiles = 200
	// Time left is guessed from the rate of files only once this many,
	// and 2 % of them, are done (the first file of 12k said "22m").
	etaMinFiles      = 20
	progressMinBytes = 64 << 20
	progressLogEvery = 15 * time.Second
	// Status and OnProgress hear of it at most this often (a fleet's first
	// pass commits 100k chunks).
	progressPublishEvery = 100 * time.Millisecond
)

// progressTracker follows one step's reading. Not safe for concurrent use:
// the committer owns it (it sees every chunk, in order).
type progressTracker struct {
	in      *Ingester
	p       Progress
	on      bool
	level   slog.Level // Info for the daemon; a one-shot report prints its own result
	lastLog time.Time
	lastPub time.Time
}

func (in *Ingester) trackProgress(items []*fileItem) *progressTracker {
	t := &progressTracker{in: in, p: Progress{Files: len(items), Started: in.now()}}
	for _, it := range items {
		if !it.statted {
			// Not stat'ed (a first step over many files, see planLazy):
			// its size is not known, nor the step's bytes.
			t.p.Bytes = 0
			break
		}
		n := it.size
		if it.cur != nil && it.cur.Offset <= it.size {
			n -= it.cur.Offset
		}
		t.p.Bytes += n
	}
	t.on = t.p.Files >= progressMinFiles || t.p.Bytes >= progressMinBytes
	t.level = slog.LevelInfo
	if in.final {
		t.level = slog.LevelDebug
	}
	if t.on {
		t.lastLog = t.p.Started
		in.log.Log(context.Background(), t.level, "catching up", "files", t.p.Files, "bytes", t.p.Bytes)
		t.publish()
	}
	return t
}

// read counts bytes read; file counts a finished file.
func (t *progressTracker) read(bytes int64, file bool) {
	if !t.on {
		return
	}
	t.p.BytesDone += bytes
	if file {
		t.p.FilesDone++
	}
	now := t.in.now()
	if secs := now.Sub(t.p.Started).Seconds(); secs > 0 {
		t.p.RateBytes = float64(t.p.BytesDone) / secs
		switch {
		case t.p.RateBytes > 0 && t.p.Bytes > 0:
			t.p.Left = time.Duration(float64(max(t.p.Bytes-t.p.BytesDone, 0)) / t.p.RateBytes * float64(time.Second))
		case t.p.Bytes == 0 && t.p.FilesDone >= max(etaMinFiles, t.p.Files/50):
			// Files differ in size: no guess from the first few.
			t.p.Left = time.Duration(float64(t.p.Files-t.p.FilesDone) / float64(t.p.FilesDone) * secs * float64(time.Second))
		}
	}
	if now.Sub(t.lastPub) >= progressPublishEvery || t.p.FilesDone == t.p.Files {
		t.lastPub = now
		t.publish()
	}
	if now.Sub(t.lastLog) >= progressLogEvery {
		t.lastLog = now
		t.in.log.Log(context.Background(), t.level, "catching up", "files_done", t.p.FilesDone, "files", t.p.Files,
			"bytes_done", t.p.BytesDone, "bytes", t.p.Bytes, "mb_per_second", int(t.p.RateBytes/1e6),
			"left", t.p.Left.Round(time.Second).String())
	}
}

func (t *progressTracker) publish() {
	p := t.p
	t.in.mu.Lock()
	t.in.stats.Progress = &p
	t.in.mu.Unlock()
	if f := t.in.cfg.OnProgress; f != nil {
		f(p)
	}
}

// done ends the step's tracking.
func (t *progressTracker) done(err error) {
	if !t.on {
		return
	}
	t.in.mu.Lock()
	t.in.stats.Progress = nil
	t.in.mu.Unlock()
	if err == nil {
		t.in.log.Log(context.Background(), t.level, "caught up", "files", t.p.Files, "bytes", t.p.BytesDone,
			"took", t.in.now().Sub(t.p.Started).Round(time.Millisecond).String())
	}
}
