// Package sync replicates fleetmeter's rollups to an upstream PostgreSQL,
// typically a Supabase project that a fleet of hosts shares: daily usage
// rows, session snapshots, daily host metrics, the agent registry and the
// host's own row. It is a resumable replicator in the Litestream style: a
// synchronous Step that reads the local outbox in key order, sends absolute
// rows as one multi-row upsert per table in one transaction, commits, and
// only then acknowledges the outbox entries that did not change meanwhile;
// and a thin Run loop around it with capped, jittered backoff.
//
// Importers alias it: upstream "github.com/fleetmeter/fleetmeter/sync".
package sync

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	gosync "sync"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Store is what the worker reads and writes locally; *storage.DB has it.
type Store interface {
	InstanceID() string
	Generation() string
	Location() *time.Location
	PendingChanges(after []byte, limit int) ([]storage.Change, error)
	AckChanges(changes []storage.Change) (int, error)
	QuarantineChanges(changes []storage.Change, reason string, at time.Time) (int, error)
	QueueHostDays() (int, error)
	QueueAgents(agents []storage.AgentInfo) (int, error)
	RequeueAll(minCounter uint64) error
	ChangeCounter() (uint64, error)
	StatusStore
}

// StatusStore is what a status needs; `fleetmeter sync status` reads it
// from the file when no daemon runs.
type StatusStore interface {
	OutboxPending() (int, error)
	QuarantineCount() (int, error)
	SyncState() ([]byte, error)
	PutSyncState(v []byte) error
}

// Config is the worker's settings.
type Config struct {
	DSN      string        // the host's DSN: sslmode explicit, binary_parameters=yes
	Interval time.Duration // between rounds; default 5 minutes
	// BatchRows is how many outbox entries go in one transaction (default
	// 5,000: a backfill of months goes in many such batches).
	BatchRows int
	Agents    []storage.AgentInfo // the registry from the config

	Hostname        string
	Version         string        // fleetmeter's
	InstanceType    func() string // may be nil
	OpenClawVersion func() string // may be nil
	Logger          *slog.Logger
	// StatementTimeout bounds each upstream statement (default 60 s).
	StatementTimeout time.Duration
	// Dialer overrides how connections are dialled (tests point its
	// resolver at loopback); nil is a default dialer.
	Dialer *net.Dialer
}

// DefaultInterval is the time between rounds when nothing fails.
const DefaultInterval = 5 * time.Minute

// Backoff after failures: full jitter over an exponential ceiling.
const (
	backoffBase = 2 * time.Second
	backoffCap  = 5 * time.Minute
	// errorLogEvery limits how often one repeated error is logged.
	errorLogEvery = 30 * time.Second
)

// Worker syncs one local database upstream.
type Worker struct {
	cfg    Config
	store  Store
	log    *slog.Logger
	dsn    *DSN
	cfgErr error // a DSN that cannot work: no round is tried
	wire   wireStats
	db     *sql.DB
	known  int // the schema version this binary writes

	mu       gosync.Mutex
	st       savedState
	upstream int // schema version seen upstream in the last round
	// zoneAsked is the local zone whose name upstream was asked about;
	// zoneUpstream what fleet_instances.tz gets for it.
	zoneAsked, zoneUpstream string
	next                    time.Time
	progress                *Progress
	started                 time.Time
	rng                     *rand.Rand
	logged                  struct {
		msg        string
		at         time.Time
		suppressed int
	}
}

// New builds a worker. A bad DSN is not an error here: the worker then
// reports it in its status and tries nothing, and the local side works on.
func New(cfg Config, store Store) *Worker {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = 5000
	}
	if cfg.StatementTimeout <= 0 {
		cfg.StatementTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Worker{cfg: cfg, store: store, log: cfg.Logger, known: SchemaVersion(), started: time.Now(),
		rng: newRand(store.InstanceID())}
	w.wire.Dialer = cfg.Dialer
	if raw, err := store.SyncState(); err == nil && raw != nil {
		_ = json.Unmarshal(raw, &w.st) // a state we cannot read is a fresh start, not an error
	}
	w.dsn, w.cfgErr = ParseDSN(cfg.DSN, true)
	if w.cfgErr == nil {
		w.db, w.cfgErr = w.dsn.open(&w.wire)
	}
	if w.db != nil {
		// One connection at a time, kept through a backfill's batches and
		// closed between rounds: a fleet does not hold a pooler's client
		// slots while it idles.
		w.db.SetMaxOpenConns(1)
		w.db.SetMaxIdleConns(1)
		w.db.SetConnMaxIdleTime(time.Minute)
		w.db.SetConnMaxLifetime(30 * time.Minute)
	}
	return w
}

// Close releases the upstream connection.
func (w *Worker) Close() error {
	if w.db != nil {
		return w.db.Close()
	}
	return nil
}

// Result says what one Step did.
type Result struct {
	Sent        int   // upstream rows written (a session counts once per model)
	Acked       int   // outbox entries acknowledged
	Quarantined int   // outbox entries moved to the quarantine
	Pending     int   // outbox entries left after the round
	Batches     int   // transactions committed
	Bytes       int64 // bytes written to the server
}

// Step runs one round: it queues host days and registry changes, then sends
// the outbox in key order, a batch per transaction, until it has passed
// over every entry. Rows that change during the round keep their entries
// for the next one. An upstream failure stops the round (what was
// committed is acknowledged); a row upstream rejects for good is
// quarantined and the rest goes on.
func (w *Worker) Step(ctx context.Context, now time.Time) (Result, error) {
	res, err := w.step(ctx, now)
	if err != nil && errors.Is(ctx.Err(), context.Canceled) && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w: %w", context.Canceled, err) // the driver's own words for a cancel vary
	}
	w.finish(now, res, err)
	return res, err
}

func (w *Worker) step(ctx context.Context, now time.Time) (res Result, err error) {
	if w.cfgErr != nil {
		return res, w.cfgErr
	}
	bytes0 := w.wire.bytes.Load()
	defer func() { res.Bytes = w.wire.bytes.Load() - bytes0 }()
	if _, err := w.store.QueueHostDays(); err != nil {
		return res, err
	}
	if _, err := w.store.QueueAgents(w.cfg.Agents); err != nil {
		return res, err
	}
	if err := w.checkZone(); err != nil {
		return res, err
	}
	total, err := w.store.OutboxPending()
	if err != nil {
		return res, err
	}
	var after []byte
	restarted := false
	for {
		chs, err := w.store.PendingChanges(after, w.cfg.BatchRows+1)
		if err != nil {
			return res, err
		}
		last := len(chs) <= w.cfg.BatchRows
		if !last {
			chs = chs[:w.cfg.BatchRows]
		}
		pendingAfter := max(total-res.Acked-res.Quarantined-len(chs), 0)
		err = w.sendIsolating(ctx, now, chs, last, pendingAfter, &res)
		var restored *restoredError
		if errors.As(err, &restored) && !restarted {
			// Upstream saw higher counters from this file's lineage than it
			// ever sent: it was restored from a backup, and its new changes
			// may carry counters upstream already saw. Re-mark every row
			// above them and start over, so the local state wins.
			w.log.Warn("upstream holds newer changes than this database sent (restored from a backup?): sending every row again",
				"upstream_rev", restored.upstreamRev, "local_rev", restored.localRev)
			if err := w.store.RequeueAll(restored.upstreamRev + 1); err != nil {
				return res, err
			}
			w.mu.Lock()
			w.st.IntentRev = restored.upstreamRev // what upstream has seen is now known
			w.mu.Unlock()
			restarted, after = true, nil
			if total, err = w.store.OutboxPending(); err != nil {
				return res, err
			}
			continue
		}
		if err != nil {
			return res, err
		}
		if total > w.cfg.BatchRows {
			w.setProgress(&Progress{Sent: res.Acked + res.Quarantined, Of: total})
			w.log.Info("sync backfill", "entries_done", res.Acked+res.Quarantined, "of", total, "rows_sent", res.Sent)
		}
		if last {
			break
		}
		after = chs[len(chs)-1].Key
	}
	res.Pending, err = w.store.OutboxPending()
	return res, err
}

// restoredError stops a round whose upstream saw higher change counters
// than the local file has.
type restoredError struct{ upstreamRev, localRev uint64 }

func (e *restoredError) Error() string {
	return fmt.Sprintf("upstream holds changes up to %d, this database sent only up to %d", e.upstreamRev, e.localRev)
}

// checkZone handles a change of the rollup zone: the days were recut, so
// every row is queued again and the host's old day rows are deleted
// upstream in the first batch (a pending reset survives a restart).
func (w *Worker) checkZone() error {
	zone := w.store.Location().String()
	w.mu.Lock()
	old := w.st.Zone
	w.mu.Unlock()
	if old == zone {
		return nil
	}
	if old != "" {
		w.log.Warn("the rollup zone changed: replacing this host's daily rows upstream", "from", old, "to", zone)
		if err := w.store.RequeueAll(0); err != nil {
			return err
		}
	}
	w.mu.Lock()
	w.st.Zone, w.st.ResetDays = zone, old != "" || w.st.ResetDays
	w.mu.Unlock()
	return w.save()
}

// sendIsolating sends a batch; when upstream rejects a row for good it
// splits the batch in halves until the bad rows stand alone, quarantines
// them and sends the rest.
func (w *Worker) sendIsolating(ctx context.Context, now time.Time, chs []storage.Change, last bool, pendingAfter int, res *Result) error {
	sent, err := w.send(ctx, now, chs, last, pendingAfter)
	if err == nil {
		n, err := w.store.AckChanges(chs)
		res.Sent += sent
		res.Acked += n
		res.Batches++
		return err
	}
	if !isRowError(err) {
		return err
	}
	if len(chs) == 1 {
		reason := w.dsn.redact(err.Error())
		n, qerr := w.store.QuarantineChanges(chs, reason, now)
		if qerr != nil {
			return qerr
		}
		res.Quarantined += n
		w.log.Warn("upstream rejected a row: quarantined", "row", storage.DescribeOutboxKey(chs[0].Key), "err", reason)
		return nil
	}
	half := len(chs) / 2
	if err := w.sendIsolating(ctx, now, chs[:half], false, pendingAfter+len(chs)-half, res); err != nil {
		return err
	}
	return w.sendIsolating(ctx, now, chs[half:], last, pendingAfter, res)
}

// send writes one batch in one transaction: the round's opening statement
// (schema version, what upstream knows of this host), an upsert per table
// that has rows, the host's own row; then commit. It returns the rows
// written.
func (w *Worker) send(ctx context.Context, now time.Time, chs []storage.Change, last bool, pendingAfter int) (int, error) {
	localRev, err := w.store.ChangeCounter()
	if err != nil {
		return 0, err
	}
	today := storage.DayNumber(now.UnixMilli(), w.store.Location())
	var b batch
	for i := range chs {
		ch := &chs[i]
		switch ch.Table {
		case storage.OutboxDaily:
			b.daily.add(ch, today)
		case storage.OutboxSession:
			b.sessions.add(ch)
		case storage.OutboxHost:
			if !ch.Gone {
				b.host.add(ch, today)
			}
		case storage.OutboxAgent:
			b.agents.add(ch)
		}
	}
	quarantined, err := w.store.QuarantineCount()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.StatementTimeout+30*time.Second)
	defer cancel()
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, w.dsn.explain("connect", err)
	}
	defer tx.Rollback()
	host, gen := w.store.InstanceID(), w.store.Generation()
	var version int
	var prev, ignored string
	var zoneKnown sql.NullString
	zone := w.store.Location().String()
	w.mu.Lock()
	checkZone := w.zoneAsked != zone
	w.mu.Unlock()
	err = tx.QueryRowContext(ctx, roundStart, host, fmt.Sprintf("%dms", w.cfg.StatementTimeout.Milliseconds()), zone, checkZone).
		Scan(&version, &prev, &ignored, &zoneKnown)
	if err != nil {
		return 0, w.dsn.explain("check the upstream schema", err)
	}
	w.mu.Lock()
	w.upstream = version
	if checkZone {
		// A zone PostgreSQL does not know (Go's "Local") would break the
		// views for every reader: upstream gets UTC instead.
		w.zoneAsked, w.zoneUpstream = zone, cmp.Or(zoneKnown.String, "UTC")
	}
	zoneUpstream := w.zoneUpstream
	w.mu.Unlock()
	if err := w.checkVersion(version); err != nil {
		return 0, err
	}
	if prev != "" {
		var p struct {
			Generation string `json:"generation"`
			LastRev    uint64 `json:"last_rev"`
		}
		w.mu.Lock()
		intent := w.st.IntentRev
		w.mu.Unlock()
		if json.Unmarshal([]byte(prev), &p) == nil && p.Generation == gen && p.LastRev > intent {
			return 0, &restoredError{upstreamRev: p.LastRev, localRev: intent}
		}
	}
	w.mu.Lock()
	reset := w.st.ResetDays
	w.mu.Unlock()
	if reset {
		if _, err := tx.ExecContext(ctx, deleteHostDays, host); err != nil {
			return 0, w.dsn.explain("replace the host's days", err)
		}
	}
	for _, s := range []struct {
		table string
		n     int
		sql   string
		args  func(host, generation string) []any
	}{
		{"fleet_agents", len(b.agents.id), upsertAgents, b.agents.args},
		{"token_usage_daily", len(b.daily.day), upsertDaily, b.daily.args},
		{"host_metrics_daily", len(b.host.day), upsertHost, b.host.args},
		{"token_usage", len(b.sessions.sessionID), upsertSessions, b.sessions.args},
	} {
		if s.n == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, s.sql, s.args(host, gen)...); err != nil {
			return 0, w.dsn.explain("upsert "+s.table, err)
		}
	}
	typ, ocv := "", ""
	if w.cfg.InstanceType != nil {
		typ = w.cfg.InstanceType()
	}
	if w.cfg.OpenClawVersion != nil {
		ocv = w.cfg.OpenClawVersion()
	}
	_, err = tx.ExecContext(ctx, upsertInstance, host, pgText(w.cfg.Hostname), pgText(typ), w.cfg.Version, pgText(ocv),
		zoneUpstream, gen, int64(localRev), int64(pendingAfter), int64(quarantined), last && pendingAfter == 0)
	if err != nil {
		return 0, w.dsn.explain("upsert fleet_instances", err)
	}
	if err := w.saveIntent(localRev); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, w.dsn.explain("commit", err)
	}
	if reset {
		w.mu.Lock()
		w.st.ResetDays = false
		w.mu.Unlock()
		if err := w.save(); err != nil {
			return 0, err
		}
	}
	return b.rows(), nil
}

// saveIntent records, before a commit, the highest change counter it
// sends: how a later round tells a file restored from backup (whose intent
// lags what upstream saw) from a crash between commit and acknowledgement.
func (w *Worker) saveIntent(rev uint64) error {
	w.mu.Lock()
	if rev <= w.st.IntentRev {
		w.mu.Unlock()
		return nil
	}
	w.st.IntentRev = rev
	w.mu.Unlock()
	return w.save()
}

func (w *Worker) checkVersion(v int) error {
	switch {
	case v == 0:
		return fmt.Errorf("%w: the upstream database has no fleetmeter schema: run `fleetmeter migrate --dsn ADMIN_DSN` once for the project", ErrSchema)
	case v > w.known:
		return fmt.Errorf("%w: version %d is newer than this fleetmeter knows (%d): upgrade fleetmeter on this host; nothing was sent", ErrSchema, v, w.known)
	case v < w.known:
		return fmt.Errorf("%w: version %d is older than this fleetmeter writes (%d): run `fleetmeter migrate --dsn ADMIN_DSN` with this version", ErrSchema, v, w.known)
	}
	return nil
}

// phaseSeed spreads hosts: each host's rounds fall at its own offset within
// the interval, so a fleet does not sync on the same second.
func phaseSeed(hostID string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(hostID))
	return h.Sum64()
}

// newRand seeds the backoff jitter from the clock and the host id, so hosts
// that fail together do not retry together.
func newRand(hostID string) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), phaseSeed(hostID)))
}

// NextRound is when the round after one at now should start: after a
// success, the host's next phase point; after failures, a full-jitter
// exponential backoff capped at 5 minutes.
func (w *Worker) NextRound(now time.Time, failures int) time.Time {
	if failures > 0 {
		ceiling := backoffCap
		if failures < 20 {
			ceiling = min(backoffCap, backoffBase<<(failures-1))
		}
		w.mu.Lock()
		d := time.Duration(w.rng.Int64N(int64(ceiling) + 1))
		w.mu.Unlock()
		return now.Add(d)
	}
	iv := w.cfg.Interval
	phase := time.Duration(phaseSeed(w.store.InstanceID()) % uint64(iv))
	since := now.Sub(time.Unix(0, 0).Add(phase))
	return now.Add(iv - since%iv)
}

// Run runs rounds until ctx ends: the first soon after start (within 30
// s, jittered), then at the host's phase points, or after a backoff while
// upstream fails. Shutdown is not an error.
func (w *Worker) Run(ctx context.Context) error {
	if w.cfgErr != nil {
		w.finish(time.Now(), Result{}, w.cfgErr)
		<-ctx.Done()
		return nil
	}
	w.mu.Lock()
	first := time.Duration(w.rng.Int64N(int64(min(w.cfg.Interval, 30*time.Second)) + 1))
	w.next = time.Now().Add(first)
	w.mu.Unlock()
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		now := time.Now()
		w.Step(ctx, now)
		if ctx.Err() != nil {
			return nil
		}
		w.mu.Lock()
		failures := w.st.Failures
		w.mu.Unlock()
		next := w.NextRound(time.Now(), failures)
		w.mu.Lock()
		w.next = next
		w.mu.Unlock()
		timer.Reset(time.Until(next))
	}
}
