package rollup

import (
	"math"
	"slices"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Tally is an in-memory ledger for reports read straight from transcripts:
// the same rules (storage.ApplyRecord) and the same rows as
// storage.DB.Apply, with no file.
type Tally struct {
	loc         *time.Location
	seen        map[string]*storage.Usage // live records by dedupe key; nil: known, gone
	daily       map[dayDim]storage.Totals
	sessions    map[[2]string]*tallySession
	labels      map[string]string
	skips       storage.Skips
	corrections storage.Corrections

	claimed map[string]bool
	mirrors map[string][]string // group → dedupe keys
	aliases map[[3]string]string
	bare    map[[3]string][]string // source, agent, bare id → dedupe keys
}

type dayDim struct {
	day int32
	storage.Dim
}

// tallySession is a session's summary with its sums per model in a short
// list (storage.Session's map costs a kilobyte a session, and most
// sessions call one or two models).
type tallySession struct {
	storage.Session // Models unset: see models
	models          []modelSums
}

type modelSums struct {
	provider, model string
	storage.Totals
}

// model returns the sums of a session's model, added when new.
func (s *tallySession) model(provider, model string) *modelSums {
	for i := range s.models {
		if m := &s.models[i]; m.provider == provider && m.model == model {
			return m
		}
	}
	s.models = append(s.models, modelSums{provider: provider, model: model})
	return &s.models[len(s.models)-1]
}

// drop removes the models whose sums are zero, as storage does.
func (s *tallySession) drop() {
	s.models = slices.DeleteFunc(s.models, func(m modelSums) bool { return m.IsZero() })
}

// NewTally makes an empty tally cutting days in loc.
func NewTally(loc *time.Location) *Tally {
	return &Tally{
		loc:      loc,
		seen:     map[string]*storage.Usage{},
		daily:    map[dayDim]storage.Totals{},
		sessions: map[[2]string]*tallySession{},
		labels:   map[string]string{},
		claimed:  map[string]bool{},
		mirrors:  map[string][]string{},
		aliases:  map[[3]string]string{},
		bare:     map[[3]string][]string{},
	}
}

// Apply folds a batch in, under the rules storage applies. The tally
// keeps the batch's records themselves (no copy): the caller must not
// reuse b.Records and b.Chunks afterwards.
func (t *Tally) Apply(b *storage.Batch) (storage.ApplyResult, error) {
	var res storage.ApplyResult
	err := b.Each(func(u *storage.Usage) error {
		u.Normalize()
		rr, err := storage.ApplyRecord(t, u)
		res.Count(rr, u)
		return err
	})
	if err != nil {
		return res, err
	}
	t.skips.Add(b.Skips)
	t.skips.Duplicate += int64(res.Duplicates)
	t.corrections.Add(res.Corrected)
	return res, nil
}

// Lookup implements storage.RecordStore.
func (t *Tally) Lookup(key string) (*storage.Usage, bool, error) {
	u, known := t.seen[key]
	return u, known && u == nil, nil
}

// Insert implements storage.RecordStore. The tally keeps u itself, not a
// copy: the records of an applied batch are the tally's (see Apply).
func (t *Tally) Insert(u *storage.Usage) error {
	t.seen[u.DedupeKey] = u
	t.add(u, +1)
	return nil
}

// Remove implements storage.RecordStore.
func (t *Tally) Remove(u *storage.Usage) error {
	if old := t.seen[u.DedupeKey]; old != nil {
		t.add(old, -1)
	}
	t.seen[u.DedupeKey] = nil
	return nil
}

// Claimed implements storage.RecordStore.
func (t *Tally) Claimed(group string) (bool, error) { return t.claimed[group], nil }

// Claim implements storage.RecordStore.
func (t *Tally) Claim(group string) ([]storage.Usage, error) {
	t.claimed[group] = true
	out := t.live(t.mirrors[group])
	delete(t.mirrors, group)
	return out, nil
}

// IndexMirror implements storage.RecordStore.
func (t *Tally) IndexMirror(u *storage.Usage) error {
	t.mirrors[u.MirrorOf] = append(t.mirrors[u.MirrorOf], u.DedupeKey)
	return nil
}

// Alias implements storage.RecordStore.
func (t *Tally) Alias(source, agent, bare string) (string, error) {
	return t.aliases[[3]string{source, agent, bare}], nil
}

// SetAlias implements storage.RecordStore.
func (t *Tally) SetAlias(source, agent, bare, user string) error {
	t.aliases[[3]string{source, agent, bare}] = user
	return nil
}

// IndexBare implements storage.RecordStore.
func (t *Tally) IndexBare(u *storage.Usage) error {
	k := [3]string{u.Source, u.Agent, u.User}
	t.bare[k] = append(t.bare[k], u.DedupeKey)
	return nil
}

// TakeBare implements storage.RecordStore.
func (t *Tally) TakeBare(source, agent, bare string) ([]storage.Usage, error) {
	k := [3]string{source, agent, bare}
	out := t.live(t.bare[k])
	delete(t.bare, k)
	return out, nil
}

// live copies the live records of keys.
func (t *Tally) live(keys []string) []storage.Usage {
	var out []storage.Usage
	for _, k := range keys {
		if u := t.seen[k]; u != nil {
			out = append(out, *u)
		}
	}
	return out
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
	sk := [2]string{u.Source, u.SessionID}
	s := t.sessions[sk]
	if sign < 0 {
		// A removed record: take its sums out of the session too.
		if s != nil {
			s.model(u.Provider, u.Model).Sub(tot)
			s.drop()
		}
		return
	}
	if s == nil {
		s = &tallySession{Session: storage.Session{Source: u.Source, SessionID: u.SessionID}}
		t.sessions[sk] = s
	}
	s.model(u.Provider, u.Model).Add(tot)
	s.drop()
	storage.NoteActivity(&s.Session, u)
	if u.User != "" && u.UserLabel != "" {
		t.labels[u.User] = u.UserLabel
	}
}

// Cursors implements ingest.Ledger: a tally starts from nothing.
func (t *Tally) Cursors() (map[string][]byte, error) { return nil, nil }

// CursorsOf implements ingest.Ledger: a tally keeps no cursors.
func (t *Tally) CursorsOf([]string) (map[string][]byte, error) { return nil, nil }

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

// Sessions returns the session summaries (a session whose every record
// was removed is gone, as in storage).
func (t *Tally) Sessions() ([]storage.Session, error) {
	out := make([]storage.Session, 0, len(t.sessions))
	for _, s := range t.sessions {
		if len(s.models) > 0 {
			c := s.Session
			c.Models = make(map[string]storage.Totals, len(s.models))
			for _, m := range s.models {
				c.Models[m.provider+"/"+m.model] = m.Totals
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// Corrections returns how many records carry a writer correction.
func (t *Tally) Corrections() (storage.Corrections, error) { return t.corrections, nil }

// Skips returns what was skipped.
func (t *Tally) Skips() (storage.Skips, error) { return t.skips, nil }

// UserLabels returns the latest label of each user.
func (t *Tally) UserLabels() (map[string]string, error) { return t.labels, nil }

// The widest day range, for reports without --since or --until.
const (
	MinDay int32 = math.MinInt32
	MaxDay int32 = math.MaxInt32
)
