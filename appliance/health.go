package appliance

import (
	"cmp"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/storage"
	upstream "github.com/fleetmeter/fleetmeter/sync"
)

// minFreeBytes is the free space on the data dir's filesystem below which
// the daemon reports itself degraded (or a twentieth of a smaller
// filesystem): bbolt grows its file in steps, and a commit that cannot
// grow it fails.
const minFreeBytes = 64 << 20

// problems says what is wrong right now, each in one sentence; empty when
// healthy. Health, /healthz, /api/status and /metrics all read it, so they
// agree, and reflect a failing step at once.
func (a *App) problems() []string {
	var p []string
	st := a.ingest.Status()
	if st.LastError != "" {
		p = append(p, "ingest is failing: "+st.LastError)
	}
	if st.Files == 0 && !st.LastStep.IsZero() && (hasSourceDirs(a.cfg) || !a.cfg.NoDiscover) {
		// A pass ran and found nothing to read: a daemon that counts
		// nothing is not a healthy one (the agents' data is elsewhere).
		// One told to read nothing (--no-discover, no dirs) is as asked.
		what, fix := noTranscripts(st.Sources)
		p = append(p, what+": "+fix)
	}
	if n := len(st.UnreadableFiles) + st.UnreadableOther; n > 0 {
		// Their calls are missing from every report until they can be read.
		f := st.UnreadableFiles[0]
		more := ""
		if n > 1 {
			more = fmt.Sprintf(" (and %d more)", n-1)
		}
		p = append(p, fmt.Sprintf("%d transcript file(s) cannot be read, their calls are not counted: %s: %s%s", n, f.Path, f.Error, more))
	}
	if st := a.sampler.Status(); st.LastError != "" {
		p = append(p, "host samples are not stored: "+st.LastError)
	}
	if free, total, err := diskSpace(a.cfg.DataDir); err != nil {
		p = append(p, fmt.Sprintf("the data dir cannot be read: %v", err))
	} else if free < min(minFreeBytes, total/20) {
		p = append(p, fmt.Sprintf("the data dir's filesystem is full (%d MiB free): new calls and host samples may not be stored until space is freed", free>>20))
	}
	if p2 := syncProblem(a.syncStatus(), a.Now()); p2 != "" {
		p = append(p, p2)
	}
	a.mu.Lock()
	if a.retentionErr != nil {
		p = append(p, "retention failed: "+a.retentionErr.Error())
	}
	a.mu.Unlock()
	return p
}

// noTranscripts says that the sources hold no transcript file, and what
// to do.
func noTranscripts(src []ingest.Source) (what, fix string) {
	what = "no transcript files found: no agent dirs were found"
	if len(src) > 0 {
		dirs := make([]string, len(src))
		for i, s := range src {
			dirs[i] = s.Path
		}
		what = "no transcript files found under " + strings.Join(dirs, ", ")
	}
	return what, "point --openclaw-dir, --claude-dir or --codex-dir (openclaw_dirs, claude_dirs, codex_dirs in the config) at the agents' data"
}

// syncFailingFor is how long upstream sync may fail before health says so:
// a network blip retried with backoff is not a problem, an afternoon is.
const syncFailingFor = time.Hour

// syncProblem is upstream sync's problem, if it has one: a setting that
// cannot work (the DSN, the schema) at once, failing rounds once nothing
// has been sent for syncFailingFor. The error is the sync's own sanitised
// text: no DSN, no password.
func syncProblem(st upstream.Status, now time.Time) string {
	switch {
	case st.State == upstream.StateConfig || st.State == upstream.StateSchema:
		return fmt.Sprintf("upstream sync cannot work (%s): %s", st.State, st.LastError)
	case st.State == upstream.StateFailing && !st.LastSuccess.IsZero() && now.Sub(st.LastSuccess) >= syncFailingFor,
		st.State == upstream.StateFailing && st.LastSuccess.IsZero() && st.ConsecutiveFailures >= 12:
		return fmt.Sprintf("upstream sync is failing (%s error, %d rounds in a row, %d rows waiting): %s",
			st.ErrorClass, st.ConsecutiveFailures, st.PendingRows, st.LastError)
	}
	return ""
}

// diskSpace is what unprivileged writers may still use on dir's
// filesystem, and its size.
func diskSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// statsCache keeps the database counts: counting reads the page headers
// of whole buckets (0.2 s for a million calls), so a status poll gets the
// last counts while they are younger than statsTTL, or while the data has
// not changed since; otherwise it counts again and waits for it (one count
// at a time: concurrent polls share it). An idle daemon nobody asks never
// counts, and no answer is older than statsTTL. Before, a poll got the
// counts the poll before it had started in the background: a rare poll
// always got an old count.
type statsCache struct {
	mu      sync.Mutex // held while counting
	at      time.Time  // when stats were known current
	version uint64     // the data version they count
	stats   storage.Stats
	ttl     time.Duration // zero: statsTTL
}

const statsTTL = 10 * time.Second

// countSource is what statsCache counts.
type countSource interface {
	DataVersion() (uint64, error)
	CountStats() (storage.Stats, error)
}

func (c *statsCache) get(db countSource) (storage.Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ttl := cmp.Or(c.ttl, statsTTL)
	if !c.at.IsZero() && time.Since(c.at) < ttl {
		return c.stats, nil
	}
	v, err := db.DataVersion() // before the count: a commit meanwhile is counted again next time
	if err != nil {
		return storage.Stats{}, err
	}
	if !c.at.IsZero() && v == c.version {
		c.at = time.Now()
		return c.stats, nil
	}
	st, err := db.CountStats()
	if err != nil {
		return st, err
	}
	c.stats, c.at, c.version = st, time.Now(), v
	return st, nil
}
