package rollup

import (
	"context"
	"math"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
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
	// Advice is the scaling advice over the last week.
	Advice(ctx context.Context) (Advice, error)
}

// HostStore is what host reports and advice read; *storage.DB satisfies it.
type HostStore interface {
	HostDailyReader
	HostSlotReader
}

// LedgerSource is a Source that can also stream its ledger, so days can be
// recut in another zone than its rollups were; *storage.DB satisfies it.
type LedgerSource interface {
	Source
	Ledger(fromMillis, toMillis int64, fn func(*storage.Usage) error) error
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
}

// LocalReader answers queries from a Source in this process.
type LocalReader struct {
	src Source
	cfg ReaderConfig
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
	return &LocalReader{src: src, cfg: cfg}
}

// Report builds a usage report. A query in another zone than the source's
// rollups recuts days from the ledger (ErrBadQuery when the source has none).
func (r *LocalReader) Report(ctx context.Context, q Query) (Report, error) {
	if err := q.validate(true); err != nil {
		return Report{}, err
	}
	loc, err := q.location(r.src.Location())
	if err != nil {
		return Report{}, err
	}
	src := r.src
	if loc.String() != src.Location().String() {
		ls, ok := src.(LedgerSource)
		if !ok {
			return Report{}, badQuery("days are cut in %s here; this source cannot recut them in %s", src.Location(), loc)
		}
		src = recut{ls, loc}
	}
	return Build(src, q)
}

// HostReport reads the daily host rows of q's range.
func (r *LocalReader) HostReport(ctx context.Context, q Query) (HostReport, error) {
	if err := q.validate(false); err != nil {
		return HostReport{}, err
	}
	if r.cfg.Host == nil {
		return HostReport{}, badQuery("host reports read the database, not transcripts")
	}
	return LoadHostReport(r.cfg.Host, q.Since, q.Until)
}

// Advice applies the advice rules to the week before Now.
func (r *LocalReader) Advice(ctx context.Context) (Advice, error) {
	if r.cfg.Host == nil {
		return Advice{}, badQuery("advice reads the database, not transcripts")
	}
	return AdviseFrom(r.cfg.Host, r.cfg.Now(), r.cfg.InstanceType(), r.cfg.Thresholds)
}

// recut is a source whose days are cut in loc, recomputed from the ledger.
type recut struct {
	LedgerSource
	loc *time.Location
}

func (s recut) Location() *time.Location { return s.loc }

func (s recut) DimRows(kind byte, from, to int32) ([]storage.Row, error) {
	tally := NewTally(s.loc)
	fromMs, toMs := int64(math.MinInt64), int64(math.MaxInt64)
	if from != MinDay {
		fromMs = storage.DayStartMillis(from-1, time.UTC) // a day of slack either side for zone offsets
	}
	if to != MaxDay {
		toMs = storage.DayStartMillis(to+2, time.UTC)
	}
	var batch storage.Batch
	err := s.LedgerSource.Ledger(fromMs, toMs, func(u *storage.Usage) error {
		batch.Records = append(batch.Records, *u)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := tally.Apply(&batch); err != nil {
		return nil, err
	}
	return tally.DimRows(kind, from, to)
}
