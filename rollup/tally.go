package rollup

import (
	"math"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Tally is an in-memory ledger for reports read straight from transcripts:
// the same dedupe and the same rows as storage.DB.Apply, with no file.
type Tally struct {
	loc      *time.Location
	seen     map[string]*storage.Usage
	daily    map[dayDim]storage.Totals
	sessions map[[2]string]*storage.Session
	labels   map[string]string
	skips    storage.Skips
}

type dayDim struct {
	day int32
	storage.Dim
}

// NewTally makes an empty tally cutting days in loc.
func NewTally(loc *time.Location) *Tally {
	return &Tally{
		loc:      loc,
		seen:     map[string]*storage.Usage{},
		daily:    map[dayDim]storage.Totals{},
		sessions: map[[2]string]*storage.Session{},
		labels:   map[string]string{},
	}
}

// Apply folds a batch in, deduplicating exactly as storage does.
func (t *Tally) Apply(b *storage.Batch) (storage.ApplyResult, error) {
	var res storage.ApplyResult
	for i := range b.Records {
		u := b.Records[i]
		u.Normalize()
		old, known := t.seen[u.DedupeKey]
		if known {
			if !storage.Supersedes(old, &u) {
				res.Duplicates++
				continue
			}
			u.AdoptIdentity(old)
			t.add(old, -1)
			res.Replaced++
		} else {
			res.Added++
		}
		t.seen[u.DedupeKey] = &u
		t.add(&u, +1)
	}
	t.skips.Add(b.Skips)
	t.skips.Duplicate += int64(res.Duplicates)
	return res, nil
}

func (t *Tally) add(u *storage.Usage, sign int64) {
	k := dayDim{storage.DayNumber(u.TS, t.loc), storage.DimOf(u)}
	tot := storage.TotalsOf(u)
	row := t.daily[k]
	if sign > 0 {
		row.Add(tot)
	} else {
		row.Sub(tot)
	}
	t.daily[k] = row
	if sign < 0 {
		// A replaced copy: remove its sums from the session too.
		if s := t.sessions[[2]string{u.Source, u.SessionID}]; s != nil {
			m := s.Models[u.Provider+"/"+u.Model]
			m.Sub(tot)
			s.Models[u.Provider+"/"+u.Model] = m
		}
		return
	}
	sk := [2]string{u.Source, u.SessionID}
	s := t.sessions[sk]
	if s == nil {
		s = &storage.Session{Source: u.Source, SessionID: u.SessionID, Models: map[string]storage.Totals{}}
		t.sessions[sk] = s
	}
	storage.MergeSession(s, u)
	if u.User != "" && u.UserLabel != "" {
		t.labels[u.User] = u.UserLabel
	}
}

// Cursors implements ingest.Ledger: a tally starts from nothing.
func (t *Tally) Cursors() (map[string][]byte, error) { return nil, nil }

// SessionMeta implements ingest.Ledger.
func (t *Tally) SessionMeta() (map[string][]byte, error) { return nil, nil }

// Location is the zone days are cut in.
func (t *Tally) Location() *time.Location { return t.loc }

// DailyRows returns the rows of days from..to inclusive.
func (t *Tally) DailyRows(from, to int32) ([]storage.Row, error) {
	var out []storage.Row
	for k, v := range t.daily {
		if k.day >= from && k.day <= to && !v.IsZero() {
			out = append(out, storage.Row{Period: k.day, Dim: k.Dim, Totals: v})
		}
	}
	return out, nil
}

// DimRows projects the daily rows as storage.DB.DimRows does.
func (t *Tally) DimRows(kind byte, from, to int32) ([]storage.Row, error) {
	sums := map[dayDim]storage.Totals{}
	for k, v := range t.daily {
		if k.day >= from && k.day <= to {
			p := dayDim{k.day, storage.Project(kind, k.Dim)}
			s := sums[p]
			s.Add(v)
			sums[p] = s
		}
	}
	out := make([]storage.Row, 0, len(sums))
	for k, v := range sums {
		if !v.IsZero() {
			out = append(out, storage.Row{Period: k.day, Dim: k.Dim, Totals: v})
		}
	}
	return out, nil
}

// Sessions returns the session summaries.
func (t *Tally) Sessions() ([]storage.Session, error) {
	out := make([]storage.Session, 0, len(t.sessions))
	for _, s := range t.sessions {
		out = append(out, *s)
	}
	return out, nil
}

// Skips returns what was skipped.
func (t *Tally) Skips() (storage.Skips, error) { return t.skips, nil }

// UserLabels returns the latest label of each user.
func (t *Tally) UserLabels() (map[string]string, error) { return t.labels, nil }

// The widest day range, for reports without --since or --until.
const (
	MinDay int32 = math.MinInt32
	MaxDay int32 = math.MaxInt32
)
