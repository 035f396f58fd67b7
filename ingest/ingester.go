// Package ingest reads agent transcripts incrementally and turns each model
// call into one deduplicated usage record. It follows files across renames,
// notices rewrites and truncation, keeps partial lines for later, and
// commits records with the cursor that covers them, so a kill -9 at any
// instant neither loses nor doubles a call.
package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Ledger is where records go: the bbolt database, or an in-memory tally
// when a report reads transcripts directly. Apply may keep the batch's
// record slices: the ingester never reuses them.
type Ledger interface {
	Apply(*storage.Batch) (storage.ApplyResult, error)
	Cursors() (map[string][]byte, error)
	// CursorsOf returns the stored cursors of ids (absent ones left out).
	CursorsOf(ids []string) (map[string][]byte, error)
	SessionMeta() (map[string][]byte, error)
}

// Pricer sets a record's cost and cost source.
type Pricer interface {
	Apply(*storage.Usage)
}

// TranscriptCost is the pricer used when no price table is configured: the
// transcript's own cost when it has one, else unpriced.
type TranscriptCost struct{}

// Apply implements Pricer.
func (TranscriptCost) Apply(u *storage.Usage) {
	if u.Cost.Total > 0 {
		u.CostSource = storage.CostTranscript
	} else {
		u.Cost = storage.Cost{}
		u.CostSource = storage.CostUnpriced
	}
}

// Config configures an Ingester.
type Config struct {
	// OpenClawDirs are explicit OpenClaw state dirs (each holds agents/),
	// ClaudeDirs Claude Code config dirs (each holds projects/), CodexDirs
	// Codex homes (each holds sessions/). When a list is empty and Discover
	// is set, the usual places are searched.
	OpenClawDirs []string
	ClaudeDirs   []string
	CodexDirs    []string
	Discover     bool
	// Env and Homes drive discovery; nil means the process environment
	// and Homes().
	Env   func(string) string
	Homes []string

	// Final marks a one-shot read (reports) into a ledger that keeps no
	// cursors (an in-memory tally): an unterminated last line is then
	// counted as a partial line instead of waiting for its end, file
	// cursors are kept in memory only (not encoded into batches), and
	// files are read as the step's plan found them (one stat per file).
	Final bool
	// Workers parse files in parallel; commits stay in order. 0 = 2.
	Workers int
	// FileBudget bounds the bytes one step reads of one file (0: no
	// bound, as a one-shot read wants). The daemon sets it so that one huge
	// file, or one line without an end, cannot hold back every other file;
	// a file cut short is read on by the next step, which Run starts at once.
	FileBudget int64
	// BatchBytes, BatchRecords and BatchFiles (cursors) bound one
	// transaction. 0 = defaults (64 MiB, 50,000, 2,000). Each commit
	// rewrites the pages its keys fall in, all over the file for the
	// dedupe keys and sessions, so fewer, larger ones write less; a
	// batch's pages are held in memory until its commit.
	BatchBytes   int64
	BatchRecords int
	BatchFiles   int

	// Horizon drops calls older than this. 0 (the default, and what
	// fleetmeter uses) keeps all: the ledger keeps the dedupe keys of
	// pruned calls, so a re-read transcript cannot count one twice.
	Horizon time.Duration

	Pricer Pricer
	Logger *slog.Logger
	// Now is the clock (time.Now when nil): the horizon and status times.
	Now func() time.Time
	// OnProgress, when set, is told how a step that reads a lot comes
	// along (see Progress), from the committing goroutine.
	OnProgress func(Progress)
}

// batchFiles bounds the files (cursors) one transaction commits.
const batchFiles = 2000

// A one-shot read's batches are smaller: nothing is written or synced per
// batch, and the last one is applied after the last file is read, with
// one core idle (a report of 1,000 small files waited 2 ms for it).
const (
	finalBatchFiles   = 256
	finalBatchRecords = 4096
	finalBatchBytes   = 8 << 20
)

// A step that read this much is a catch-up, after which the daemon hands
// its grown heap back to the system (see Run).
const (
	bigStepFiles = 1000
	bigStepBytes = 32 << 20
)

// Ingester tails transcripts into a Ledger. Step is synchronous; Run is a
// ticker around it. Not safe for concurrent Steps.
type Ingester struct {
	cfg          Config
	ledger       Ledger
	pricer       Pricer
	log          *slog.Logger
	final        bool
	chunkBytes   int64
	chunkRecords int
	batchFiles   int // at most this many files' cursors in one batch

	loaded bool
	mem    cursorMemory           // what is known of the files read (cursors.go)
	meta   map[string]sessionMeta // by storage.SessionMetaID
	stores map[string]fileStamp   // sessions.json and SQLite store stamps: re-read only on change
	warned map[string]string      // path → last error logged, so a bad file is logged once
	// otherCursors are the stored cursors of non-file sources (SQLite
	// stores), by id, as committed.
	otherCursors  map[string][]byte
	sourcesLogged bool // the found sources were logged once

	// Set by Run's directory watcher for one step (see watch.go): the
	// directories with events since the last step; nil means stat every file.
	dirty      map[string]bool
	watch      *dirWatcher           // the watcher during a watched step, else nil
	lastListed map[string]bool       // directories the last plan listed, to watch
	listings   map[string][]dirEntry // directory → its last listing (see readDir)
	// dirFiles is the number of transcripts a directory held when its
	// files were last looked at. A watched step skips a directory with no
	// event and no file left unfinished wholesale: nothing is kept or done
	// per file for it (see skipDir).
	dirFiles map[string]int
	skipped  int  // files of directories skipped this step
	lastFull bool // the last step looked at every file (not watched)
	// threads maps a Codex thread to its parent (forks and spawned
	// sub-agents), learned from session_meta lines and kept in storage.
	threads map[string]string
	links   linkGuard            // which symlinked folders this step's listing follows
	owners  map[uint32]localUser // file owner uid → local user (guarded by mu)
	// unreadable: path → why, for files that failed to read and have not
	// been read since (guarded by mu; see unreadable.go).
	unreadable      map[string]string
	unreadableOther map[string]bool
	unreadableN     atomic.Int32 // len of both: readable's fast path reads it without mu
	// rateLimits are the newest provider usage windows seen (guarded by mu).
	rateLimits map[string]RateLimit
	readers    sync.Pool // *fileReader, kept between steps
	stats      Status
	mu         sync.Mutex // guards stats for Status()
}

type fileStamp struct {
	size    int64
	modNano int64
}

// Status is what the ingester has done, for health output and metrics.
type Status struct {
	Roots        []string      `json:"roots"`   // the OpenClaw state dirs read
	Sources      []Source      `json:"sources"` // every folder read, by kind
	Files        int           `json:"files"`
	PendingTails int           `json:"pending_partial_lines"`
	Added        int64         `json:"records_added"`
	Replaced     int64         `json:"records_replaced"`
	Skips        storage.Skips `json:"skipped"`
	// Corrected counts added records whose writer's numbers were fixed.
	Corrected storage.Corrections `json:"corrected"`
	// Unrecognized counts usage-shaped fields no reader understands, by
	// "<source> <field>" (format drift; see calls.unrecognized).
	Unrecognized map[string]int64 `json:"unrecognized_usage,omitempty"`
	FileErrors   int64            `json:"file_errors"`
	LastStep     time.Time        `json:"last_step"`
	LastError    string           `json:"last_error,omitempty"`
	// Progress is set while a step reads a lot (a first pass, a catch-up).
	Progress *Progress `json:"progress,omitempty"`
	// RateLimits are the providers' own usage windows, newest report of each.
	RateLimits []RateLimit `json:"rate_limits,omitempty"`
	// MalformedFiles are the transcript files with malformed lines (at
	// most maxMalformedFiles, the most lines first); MalformedOther counts
	// the malformed lines of files past that bound.
	MalformedFiles []MalformedFile `json:"malformed_files,omitempty"`
	// UnreadableFiles are the transcripts that cannot be read now (at
	// most maxUnreadableFiles by path); UnreadableOther counts the rest.
	// A file leaves the list once it is read, or is gone.
	UnreadableFiles []UnreadableFile `json:"unreadable_files,omitempty"`
	UnreadableOther int              `json:"unreadable_files_elsewhere,omitempty"`
	MalformedOther  int64            `json:"malformed_lines_elsewhere,omitempty"`
	malformed       map[string]int64
}

// StepResult summarises one Step.
type StepResult struct {
	Files, Read    int
	Bytes          int64
	Added, Skipped int
	// More: a file was cut short by Config.FileBudget; step again.
	More bool
}

// New makes an Ingester writing to ledger.
func New(cfg Config, ledger Ledger) *Ingester {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 64 << 20
	}
	if cfg.BatchRecords <= 0 {
		cfg.BatchRecords = 50_000
	}
	files := batchFiles
	if cfg.BatchFiles > 0 {
		files = cfg.BatchFiles
	}
	if cfg.Final {
		files = finalBatchFiles
		cfg.BatchRecords = min(cfg.BatchRecords, finalBatchRecords)
		cfg.BatchBytes = min(cfg.BatchBytes, finalBatchBytes)
	}
	if cfg.Pricer == nil {
		cfg.Pricer = TranscriptCost{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Env == nil {
		cfg.Env = os.Getenv
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Ingester{
		cfg: cfg, ledger: ledger, pricer: cfg.Pricer, log: cfg.Logger, final: cfg.Final, batchFiles: files,
		chunkBytes: min(8<<20, cfg.BatchBytes), chunkRecords: min(5000, cfg.BatchRecords),
		mem: newCursorMemory(), meta: map[string]sessionMeta{}, stores: map[string]fileStamp{}, warned: map[string]string{},
		otherCursors: map[string][]byte{}, listings: map[string][]dirEntry{},
		dirFiles: map[string]int{}, threads: map[string]string{},
		unreadableOther: map[string]bool{},
	}
}

func (in *Ingester) now() time.Time { return in.cfg.Now() }

// Status returns a copy of the running counters.
func (in *Ingester) Status() Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := in.stats
	s.Roots = append([]string(nil), s.Roots...)
	s.Sources = append([]Source(nil), s.Sources...)
	s.Unrecognized = maps.Clone(s.Unrecognized)
	s.RateLimits = in.rateLimitsLocked()
	s.MalformedFiles, s.malformed = malformedList(s.malformed), nil
	s.UnreadableFiles, s.UnreadableOther = in.unreadableList()
	if s.Progress != nil {
		p := *s.Progress
		s.Progress = &p
	}
	return s
}

// Run calls Step every interval until ctx ends.
func (in *Ingester) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	w := in.startWatching()
	defer w.close()
	var lastLogged, failingSince time.Time
	failures := 0
	// The first pass (all history, maybe several steps) ends in one line.
	firstPass, started := true, in.now()
	var firstAdded int
	for {
		res, err := in.stepWatched(ctx, w)
		switch {
		case err != nil && ctx.Err() == nil:
			// A database that is down or full: the step's work is retried
			// (stepWatched keeps its directories dirty) after a backoff; log
			// at most every 30 s so a long outage does not flood the log.
			if failures == 0 {
				failingSince = in.now()
			}
			failures++
			if in.now().Sub(lastLogged) > 30*time.Second {
				in.log.Error("ingest step failed", "err", err, "retry_in", retryDelay(interval, failures).String())
				lastLogged = in.now()
			}
		case err == nil:
			if failures > 0 {
				in.log.Info("ingest recovered", "failed_steps", failures, "after", in.now().Sub(failingSince).Round(time.Second).String())
				failures = 0
			}
			firstAdded += res.Added
			if firstPass && !res.More {
				firstPass = false
				st := in.Status()
				in.log.Info("first pass done", "calls", firstAdded, "files", st.Files,
					"took", in.now().Sub(started).Round(time.Millisecond).String(), "sources", len(st.Sources))
			}
		}
		if res.Read >= bigStepFiles || res.Bytes >= bigStepBytes || (in.lastFull && res.Files >= bigStepFiles) {
			// A catch-up (the first pass over months of history), or a full
			// scan of a fleet's files, grew the heap far beyond what an idle
			// daemon needs; the runtime would give it back over minutes.
			// Give it back now: one GC.
			debug.FreeOSMemory()
		}
		if failures > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retryDelay(interval, failures)):
			}
			continue
		}
		if res.More {
			// A file was cut at its budget: go on at once, with every other
			// file's news looked at again first.
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// maxRetryDelay caps the wait between failing steps.
const maxRetryDelay = time.Minute

// retryDelay is how long Run waits after the failures-th failing step in a
// row: the poll interval, doubling per failure up to maxRetryDelay (never
// below the interval).
func retryDelay(interval time.Duration, failures int) time.Duration {
	d := interval
	for i := 1; i < failures && d < maxRetryDelay; i++ {
		d *= 2
	}
	return max(interval, min(d, maxRetryDelay))
}

func (in *Ingester) load() error {
	if in.loaded {
		return nil
	}
	raw, err := in.ledger.Cursors()
	if err != nil {
		return fmt.Errorf("load cursors: %w", err)
	}
	in.loadCursors(raw)
	metas, err := in.ledger.SessionMeta()
	if err != nil {
		return fmt.Errorf("load session attribution: %w", err)
	}
	for id, v := range metas {
		if strings.HasPrefix(id, threadMetaPrefix) {
			in.threads[strings.TrimPrefix(id, threadMetaPrefix)] = string(v)
			continue
		}
		var m sessionMeta
		if json.Unmarshal(v, &m) == nil {
			in.meta[id] = m
		}
	}
	in.loaded = true
	return nil
}

// Step reads everything new in every transcript once and commits it.
func (in *Ingester) Step(ctx context.Context) (StepResult, error) {
	res, err := in.step(ctx)
	in.mu.Lock()
	in.stats.LastStep = in.now()
	in.stats.LastError = ""
	if err != nil {
		in.stats.LastError = err.Error()
	}
	in.mu.Unlock()
	return res, err
}

func (in *Ingester) step(ctx context.Context) (StepResult, error) {
	if err := in.load(); err != nil {
		return StepResult{}, err
	}
	batch := &storage.Batch{Cursors: map[string][]byte{}, SessionMeta: map[string][]byte{}}
	items, err := in.plan(batch)
	if err != nil {
		return StepResult{}, err
	}
	// SQLite-era OpenClaw stores first: they are canonical on current
	// installs and name every session's key, so when leftover JSONL files
	// hold the same calls (a failed import), the store's copy is the one
	// kept and the file's count as duplicates.
	res, err := in.pollStores(ctx, StepResult{Files: in.Status().Files})
	if err == nil && !(len(items) == 0 && batch.Empty()) {
		res, err = in.process(ctx, items, batch, res)
	}
	if err != nil {
		in.forget(batch)
	}
	return res, err
}

// skipDir reports whether a watched step can leave a directory alone: no
// event in it since it was last looked at, and none of its files left
// half read. Its files then count as they were, and nothing is done per
// file. The safety scan every 30 polls (not watched) looks at all.
func (in *Ingester) skipDir(dir string) bool {
	if in.dirty == nil || in.dirty[dir] {
		return false
	}
	n, known := in.dirFiles[dir]
	if !known {
		return false
	}
	if in.unfinishedIn(dir) {
		return false
	}
	in.skipped += n
	return true
}
