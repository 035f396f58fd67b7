package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/lib/pq"
)

// savedState is what the worker keeps in the database between rounds and
// restarts (storage's sync_state bucket, opaque to storage).
type savedState struct {
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"` // redacted
	ErrorClass  string    `json:"error_class,omitempty"`
	Failures    int       `json:"consecutive_failures"`
	RowsSent    int64     `json:"rows_sent_total"`
	BytesSent   int64     `json:"bytes_sent_total"`
	// IntentRev is the highest change counter this file was about to send,
	// saved before the commit: upstream never saw more from this file's
	// lineage, unless the file was restored from an older backup.
	IntentRev uint64 `json:"intent_rev,omitempty"`
	Zone      string `json:"zone,omitempty"`       // the rollup zone last synced
	ResetDays bool   `json:"reset_days,omitempty"` // a zone change waits to replace the host's days upstream
}

// Progress is how far a long round (a backfill) has come, in outbox entries.
type Progress struct {
	Sent int `json:"entries_done"`
	Of   int `json:"entries_total"`
}

// Status is the sync state for /api/sync, /api/status, `fleetmeter health`,
// `fleetmeter sync status` and /metrics. LastError never holds a secret.
type Status struct {
	Enabled bool   `json:"enabled"`
	State   string `json:"state"` // see the State* constants
	Target  string `json:"target,omitempty"`

	LastAttempt         time.Time `json:"last_attempt,omitzero"`
	LastSuccess         time.Time `json:"last_success,omitzero"`
	NextAttempt         time.Time `json:"next_attempt,omitzero"`
	LastError           string    `json:"last_error,omitempty"`
	ErrorClass          string    `json:"error_class,omitempty"` // see the Class* constants
	ConsecutiveFailures int       `json:"consecutive_failures"`

	PendingRows     int     `json:"pending_rows"`     // outbox entries waiting
	QuarantinedRows int     `json:"quarantined_rows"` // rows upstream rejected for good
	LagSeconds      float64 `json:"lag_seconds"`      // how far behind upstream is: 0 when nothing waits
	RowsSent        int64   `json:"rows_sent_total"`
	BytesSent       int64   `json:"bytes_sent_total"`

	UpstreamSchema int       `json:"upstream_schema_version,omitempty"`
	KnownSchema    int       `json:"known_schema_version"`
	Backfill       *Progress `json:"backfill,omitempty"`
}

// States of Status.
const (
	StateDisabled = "disabled" // no DSN configured
	StateNever    = "not_yet"  // no round finished yet
	StateOK       = "ok"
	StateFailing  = "failing" // the last round failed; retried with backoff
	StateConfig   = "config_error"
	StateSchema   = "schema_mismatch"
)

// Error classes: a closed set, safe as a metric label.
const (
	ClassConfig     = "config"     // the DSN cannot work
	ClassNetwork    = "network"    // upstream unreachable, connection lost
	ClassAuth       = "auth"       // login refused
	ClassPermission = "permission" // the role lacks grants
	ClassSchema     = "schema"     // not migrated, or newer than known
	ClassData       = "data"       // a row rejected (quarantined)
	ClassOther      = "other"
)

// Classes lists the error classes, for metrics.
func Classes() []string {
	return []string{ClassConfig, ClassNetwork, ClassAuth, ClassPermission, ClassSchema, ClassData, ClassOther}
}

// Status is the worker's current status.
func (w *Worker) Status() Status {
	st := ReadStatus(w.store, time.Now(), w.started)
	st.Enabled = true
	st.KnownSchema = w.known
	if w.dsn != nil {
		st.Target = w.dsn.String()
	}
	w.mu.Lock()
	st.NextAttempt = w.next
	st.UpstreamSchema = w.upstream
	if w.progress != nil {
		p := *w.progress
		st.Backfill = &p
	}
	w.mu.Unlock()
	if w.cfgErr != nil {
		st.State, st.LastError, st.ErrorClass = StateConfig, w.cfgErr.Error(), ClassConfig
	}
	return st
}

// ReadStatus builds a status from what the store holds (what `fleetmeter
// sync status` shows when no daemon runs). since is when waiting began if no
// round ever succeeded.
func ReadStatus(store StatusStore, now, since time.Time) Status {
	st := Status{Enabled: true, State: StateNever, KnownSchema: SchemaVersion()}
	var s savedState
	raw, err := store.SyncState()
	if err == nil && raw != nil {
		err = json.Unmarshal(raw, &s)
	}
	if err != nil {
		st.LastError = fmt.Sprintf("cannot read the saved sync state: %v", err)
	}
	st.LastAttempt, st.LastSuccess, st.ConsecutiveFailures = s.LastAttempt, s.LastSuccess, s.Failures
	st.RowsSent, st.BytesSent = s.RowsSent, s.BytesSent
	if s.LastError != "" {
		st.LastError, st.ErrorClass = s.LastError, s.ErrorClass
	}
	switch {
	case s.Failures > 0 && s.ErrorClass == ClassSchema:
		st.State = StateSchema
	case s.Failures > 0 && s.ErrorClass == ClassConfig:
		st.State = StateConfig
	case s.Failures > 0:
		st.State = StateFailing
	case !s.LastSuccess.IsZero():
		st.State = StateOK
	}
	if n, err := store.OutboxPending(); err == nil {
		st.PendingRows = n
	}
	if n, err := store.QuarantineCount(); err == nil {
		st.QuarantinedRows = n
	}
	if st.PendingRows > 0 {
		from := s.LastSuccess
		if from.IsZero() {
			from = since
		}
		st.LagSeconds = max(now.Sub(from).Seconds(), 0)
	}
	return st
}

// OffStatus is the status with no upstream configured: sync is off,
// PendingRows is what waits to be sent once it is on, the saved history
// (rows sent, last success) stays and an error from when it was on does
// not; there is no upstream schema to report.
func OffStatus(store StatusStore, now time.Time) Status {
	st := ReadStatus(store, now, now)
	st.Enabled, st.State = false, StateDisabled
	st.LastError, st.ErrorClass, st.ConsecutiveFailures, st.LagSeconds = "", "", 0, 0
	return st
}

func (w *Worker) setProgress(p *Progress) {
	w.mu.Lock()
	w.progress = p
	w.mu.Unlock()
}

// finish records a round's outcome, saves it and logs it (a repeated error
// at most every 30 s).
func (w *Worker) finish(now time.Time, res Result, err error) {
	// A round cut by shutdown is not a failure: what it committed counts,
	// the rest goes in the next run.
	canceled := errors.Is(err, context.Canceled)
	w.mu.Lock()
	w.progress = nil
	w.st.LastAttempt = now
	w.st.RowsSent += int64(res.Sent)
	w.st.BytesSent += res.Bytes
	switch {
	case canceled:
	case err == nil:
		w.st.LastSuccess, w.st.LastError, w.st.ErrorClass, w.st.Failures = now, "", "", 0
	default:
		w.st.LastError, w.st.ErrorClass = w.dsn.redact(err.Error()), classify(err)
		w.st.Failures++
	}
	w.mu.Unlock()
	if serr := w.save(); serr != nil {
		w.log.Error("cannot save the sync state", "err", serr)
	}
	switch {
	case canceled:
	case err != nil:
		w.logFailure(now, err)
	case res.Sent > 0 || res.Quarantined > 0:
		w.log.Info("synced", "rows", res.Sent, "batches", res.Batches, "bytes", res.Bytes,
			"quarantined", res.Quarantined, "pending", res.Pending, "duration", time.Since(now).Round(time.Millisecond))
	}
}

func (w *Worker) logFailure(now time.Time, err error) {
	msg := w.dsn.redact(err.Error())
	w.mu.Lock()
	if msg == w.logged.msg && now.Sub(w.logged.at) < errorLogEvery {
		w.logged.suppressed++
		w.mu.Unlock()
		return
	}
	repeated := w.logged.suppressed
	w.logged.msg, w.logged.at, w.logged.suppressed = msg, now, 0
	failures := w.st.Failures
	w.mu.Unlock()
	w.log.Warn("sync failed; local data is kept and sent later", "err", msg, "class", classify(err),
		"consecutive_failures", failures, "repeats_not_logged", repeated)
}

func (w *Worker) save() error {
	w.mu.Lock()
	raw, err := json.Marshal(w.st)
	w.mu.Unlock()
	if err != nil {
		return err
	}
	return w.store.PutSyncState(raw)
}

// explain wraps an upstream error with what was being done and, for the
// common causes, what to do about it. The text never holds the DSN.
func (d *DSN) explain(op string, err error) error {
	hint := ""
	var pqErr *pq.Error
	var netErr net.Error
	switch {
	case errors.As(err, &pqErr):
		switch {
		case pqErr.Code.Class() == "28":
			hint = " (check the user and password of the DSN)"
		case pqErr.Code == "42501":
			hint = " (the sync role lacks a grant: run `fleetmeter migrate` and see the README's role SQL)"
		case pqErr.Code == "42P01" || pqErr.Code == "3F000":
			hint = " (run `fleetmeter migrate --dsn ADMIN_DSN` once for the project)"
		case pqErr.Code == "3D000":
			hint = " (check dbname in the DSN)"
		}
	case errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded):
		hint = fmt.Sprintf(" (cannot reach %s:%d; local data is kept)", d.cfg.Host, d.cfg.Port)
	}
	return d.redactErr(fmt.Errorf("upstream %s: %w%s", op, err, hint))
}

// classify sorts an error into the closed set of classes.
func classify(err error) string {
	var pqErr *pq.Error
	var netErr net.Error
	switch {
	case errors.Is(err, ErrConfig):
		return ClassConfig
	case errors.Is(err, ErrSchema):
		return ClassSchema
	case errors.As(err, &pqErr):
		switch c := pqErr.Code; {
		case c.Class() == "28":
			return ClassAuth
		case c == "42501":
			return ClassPermission
		case c == "42P01" || c == "42703" || c == "3F000" || c == "3D000":
			return ClassSchema
		case isRowError(err):
			return ClassData
		case c.Class() == "08" || c.Class() == "57":
			return ClassNetwork
		}
	case errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded):
		return ClassNetwork
	}
	return ClassOther
}

// isRowError reports whether upstream rejected the data itself (a value it
// cannot store, a broken constraint, a key too long for its index): errors
// that retrying the same row never fixes. Those rows are quarantined;
// everything else is retried.
func isRowError(err error) bool {
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) {
		return false
	}
	switch pqErr.Code.Class() {
	case "21", "22", "23", "54":
		return true
	}
	return false
}
