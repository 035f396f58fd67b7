package rollup

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Reader is the read model: everything fleetmeter shows about usage and
// the host, as typed results. LocalReader answers from the database (or
// from an in-memory Tally); the CLI's remote reader asks a running daemon
// the same questions over its API, so every command has one code path.
type Reader interface {
	// Report is a usage report: a series (daily, weekly, monthly), a
	// leaderboard (agent, user, model) or the sessions.
	Report(ctx context.Context, q Query) (Report, error)
	// HostReport is the host's history by day over q's range.
	HostReport(ctx context.Context, q Query) (HostReport, error)
	// Advice is the scaling advice over the last week, for instanceType
	// (an EC2 type such as t3.large; "" means the one the reader knows).
	Advice(ctx context.Context, instanceType string) (Advice, error)
}

// OwnAdvice is Advice for the configured instance type.
func (r *LocalReader) OwnAdvice(ctx context.Context) (Advice, error) { return r.Advice(ctx, "") }

// ValidInstanceType reports whether s may name an EC2 instance type
// (family.size, lower case; "" too): an unknown type is still advice
// without a next size, but no arbitrary text reaches a cache key or a page.
func ValidInstanceType(s string) bool {
	if len(s) > 40 {
		return false
	}
	family, size, ok := strings.Cut(s, ".")
	if s == "" {
		return true
	}
	word := func(w string) bool {
		for _, c := range w {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
		return w != ""
	}
	return ok && word(family) && word(size)
}

// HostStore is what host reports and advice read; *storage.DB satisfies it.
type HostStore interface {
	HostDailyReader
	HostSlotReader
}

// ReaderConfig holds a LocalReader's dependencies.
type ReaderConfig struct {
	// Host holds the host history; nil when there is none (a report read
	// straight from transcripts).
	Host HostStore
	// Now ends the advice window; nil means time.Now.
	Now func() time.Time
	// InstanceType names the EC2 type for the advice; nil or "" means unknown.
	InstanceType func() string
	// Thresholds of the advice rules; zero means DefaultThresholds().
	Thresholds Thresholds
	// MaxHeavy bounds the reports computed at once (0: no bound); a read
	// that waits BusyWait for a turn fails with ErrBusy. Results are kept
	// per data version of a versioned source (the database) either way.
	MaxHeavy int
	BusyWait time.Duration
	// MaxStale, when set, lets a query be answered from the data version
	// before the newest for at most this long while its result for the
	// newest is computed (a busy daemon); zero always answers the newest.
	MaxStale time.Duration
	// Teams is the agent registry (agent → team), for Filter.Team.
	Teams map[string]string
}

// LocalReader answers queries from a Source in this process. It is safe
// for concurrent use.
type LocalReader struct {
	src   Source
	cfg   ReaderConfig
	cache *resultCache
	cuts  zoneCuts
}

var _ Reader = (*LocalReader)(nil)

// NewReader reads usage from src and host history from cfg.Host.
func NewReader(src Source, cfg ReaderConfig) *LocalReader {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.InstanceType == nil {
		cfg.InstanceType = func() string { return "" }
	}
	if cfg.Thresholds == (Thresholds{}) {
		cfg.Thresholds = DefaultThresholds()
	}
	return &LocalReader{src: src, cfg: cfg, cache: newResultCache(cfg.MaxHeavy, cfg.BusyWait, cfg.MaxStale)}
}

// Report builds a usage report. A query in another zone than the source's
// rollups recuts days from the ledger (ErrBadQuery when the source has
// none). A query with a Limit gets that page of the session rows.
func (r *LocalReader) Report(ctx context.Context, q Query) (Report, error) {
	if err := q.validate(true); err != nil {
		return Report{}, err
	}
	loc, err := q.location(r.src.Location())
	if err != nil {
		return Report{}, err
	}
	src, ln := r.src, laneDefault
	if loc.String() != src.Location().String() {
		cs, ok := src.(CutSource)
		if !ok {
			return Report{}, badQuery("days are cut in %s here; this source cannot recut them in %s", src.Location(), loc)
		}
		src, ln = zoned{cs, loc, &r.cuts}, laneRecut
	}
	if q.Filter, err = q.Filter.withTeam(r.cfg.Teams); err != nil {
		return Report{}, err
	}
	whole := q
	whole.Limit, whole.Offset, whole.Top, whole.Order = 0, 0, 0, ""
	f := q.Filter
	key := fmt.Sprintf("report|%s|%d|%d|%s|%q", q.Kind, q.Since, q.Until, loc, []string{f.Agent, f.User, f.Model, f.Team, f.Source})
	rep, err := cached(ctx, r.cache, r.src, key, ln, func() (Report, error) { return Build(src, whole) })
	if err != nil {
		return Report{}, err
	}
	return paged(shaped(rep, q), q), nil
}

// Location is the zone the reader's data is cut in (a query without TZ
// gets its days).
func (r *LocalReader) Location() *time.Location { return r.src.Location() }

// HostReport reads the daily host rows of q's range.
func (r *LocalReader) HostReport(ctx context.Context, q Query) (HostReport, error) {
	if err := q.validate(false); err != nil {
		return HostReport{}, err
	}
	if r.cfg.Host == nil {
		return HostReport{}, badQuery("host reports read the database, not transcripts")
	}
	key := fmt.Sprintf("host|%d|%d", q.Since, q.Until)
	rep, err := cached(ctx, r.cache, r.cfg.Host, key, laneDefault, func() (HostReport, error) {
		return LoadHostReport(r.cfg.Host, q.Since, q.Until)
	})
	rep.TZ = r.src.Location().String()
	return rep, err
}

// Advice applies the advice rules to the week before Now, for
// instanceType or, when it is "", the configured one.
func (r *LocalReader) Advice(ctx context.Context, instanceType string) (Advice, error) {
	if r.cfg.Host == nil {
		return Advice{}, badQuery("advice reads the database, not transcripts")
	}
	if !ValidInstanceType(instanceType) {
		return Advice{}, badQuery("instance type %q: want an EC2 type such as t3.large", instanceType)
	}
	now, typ := r.cfg.Now(), instanceType
	if typ == "" {
		typ = r.cfg.InstanceType()
	}
	// The window moves with the clock: a result is kept for its minute.
	key := fmt.Sprintf("advice|%d|%s", now.Unix()/60, typ)
	return cached(ctx, r.cache, r.cfg.Host, key, laneDefault, func() (Advice, error) {
		return AdviseFrom(r.cfg.Host, now, typ, r.cfg.Thresholds)
	})
}
