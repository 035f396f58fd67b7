package ingest

import (
	"context"
	"errors"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// fullScanEvery is how many watched polls pass between two polls that stat
// every file anyway: a safety net for events the kernel dropped or never
// sends (network filesystems). At the default 10 s poll, every 5 minutes.
const fullScanEvery = 30

// dirWatcher tells the daemon's polls which directories had file events
// since the last poll, so a poll stats only the files there. A poll over
// unchanged history then costs a directory listing, not a stat per file:
// stats were 95 % of such a poll. Step, which tests call, never uses it.
type dirWatcher struct {
	w *fsnotify.Watcher // nil: no watching here, every poll stats every file

	mu       sync.Mutex
	dirty    map[string]bool // directories with events since take
	overflow bool            // the kernel dropped events: stat everything once
	watched  map[string]bool // directory → watch added (false: it could not be)
	polls    int
	done     chan struct{}
}

// startWatching starts the watcher goroutine; failure only means polls
// stat every file, as Step does.
func (in *Ingester) startWatching() *dirWatcher {
	d := &dirWatcher{dirty: map[string]bool{}, watched: map[string]bool{}, done: make(chan struct{})}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		in.log.Info("no file events: every poll stats every transcript", "err", err)
		close(d.done)
		return d
	}
	d.w = w
	go func() {
		defer close(d.done)
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				d.mu.Lock()
				d.dirty[filepath.Dir(ev.Name)] = true
				d.dirty[ev.Name] = true // a new subdirectory's own files
				if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
					delete(d.watched, ev.Name) // re-added if it comes back
				}
				d.mu.Unlock()
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				d.mu.Lock()
				d.overflow = true
				d.mu.Unlock()
				if !errors.Is(err, fsnotify.ErrEventOverflow) {
					in.log.Warn("file watcher", "err", err)
				}
			}
		}
	}()
	return d
}

func (d *dirWatcher) close() {
	if d.w != nil {
		d.w.Close()
	}
	<-d.done
}

// take returns the directories to stat in this poll and resets the set;
// nil means stat everything.
func (d *dirWatcher) take() map[string]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.polls++
	full := d.w == nil || d.overflow || d.polls <= 2 || d.polls%fullScanEvery == 0
	dirty := d.dirty
	d.dirty, d.overflow = map[string]bool{}, false
	if full {
		return nil
	}
	for dir, ok := range d.watched {
		if !ok {
			dirty[dir] = true // no watch could be added: always look
		}
	}
	return dirty
}

// add watches directories not watched yet.
func (d *dirWatcher) add(dirs map[string]bool) {
	for dir := range dirs {
		d.addOne(dir)
	}
}

// addOne watches dir if it is not watched yet. Called before a directory
// is listed, so nothing written after the listing goes unnoticed.
func (d *dirWatcher) addOne(dir string) {
	if d == nil || d.w == nil {
		return
	}
	d.mu.Lock()
	_, known := d.watched[dir]
	d.mu.Unlock()
	if known {
		return
	}
	err := d.w.Add(dir) // inotify's watch limit can refuse
	d.mu.Lock()
	d.watched[dir] = err == nil
	d.mu.Unlock()
}

// stepWatched is Step with the watcher's hint. A step that fails gives its
// hint back: the next one retries its directories instead of leaving
// their news to the next full scan.
func (in *Ingester) stepWatched(ctx context.Context, d *dirWatcher) (StepResult, error) {
	in.dirty, in.watch = d.take(), d
	in.lastFull = in.dirty == nil
	defer func() { in.dirty, in.watch = nil, nil }()
	res, err := in.Step(ctx)
	d.add(in.lastListed)
	if err != nil {
		d.giveBack(in.dirty)
	}
	return res, err
}

// giveBack marks the directories of a step that failed dirty again (nil:
// it was a full scan, and so is the next one).
func (d *dirWatcher) giveBack(dirty map[string]bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dirty == nil {
		d.overflow = true
		return
	}
	for dir := range dirty {
		d.dirty[dir] = true
	}
}
