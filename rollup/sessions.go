package rollup

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// SessionSource is what the session index reads; *storage.DB satisfies it.
type SessionSource interface {
	EachSession(fn func(*storage.Session) error) error
	SessionsByKey(keys []storage.SessionKey) ([]storage.Session, error)
	LedgerCalls(fromMillis, toMillis int64, fn func(*storage.LedgerCall) error) error
	LedgerSequence() (uint64, error)
	SessionCalls(source, sessionID string, fromMillis, toMillis int64, fn func(*storage.Usage) bool) error
	Location() *time.Location
}

// sessionIndex lists the sessions active in the cube's window by their
// last activity, with their agent and models, so that a page of "the
// sessions of agent X in the last 30 days" is a pass over small entries
// and a read of the page's summaries, not a decode of every session
// (182k sessions take 0.5 s). It is built from the session summaries,
// then follows the ledger: the calls added since the last look extend
// their sessions. It is rebuilt after maxAge and let go after idle.
type sessionIndex struct {
	src    SessionSource
	now    func() time.Time
	maxAge time.Duration

	mu      sync.Mutex
	names   cubeNames // agents and models
	entries []sessEntry
	byKey   map[uint64]int32 // hash of source and id → entry (a collision falls back to a scan)
	seq     uint64
	built   time.Time
	last    time.Time // last look at the ledger
	idler
}

type sessEntry struct {
	id          string
	first, last int64  // unix ms
	agent       uint32 // the agent number carries the source
	models      uint64 // bit i: model number i (bit 63: a model numbered 63 or more)
}

func (x *sessionIndex) key(e *sessEntry) storage.SessionKey {
	return storage.SessionKey{Source: x.names.agents[e.agent].source, SessionID: e.id}
}

// sessHash hashes a session's source and id (FNV-1a).
func sessHash(source, id string) uint64 {
	h := uint64(14695981039346656037)
	for _, s := range []string{source, "\x00", id} {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * 1099511628211
		}
	}
	return h
}

func newSessionIndex(src SessionSource, now func() time.Time) *sessionIndex {
	return &sessionIndex{src: src, now: now, maxAge: cubeMaxAge, idler: idler{idle: cubeIdle}}
}

func modelBit(i uint32) uint64 { return 1 << min(i, 63) }

func (x *sessionIndex) add(source, id, agent string, first, last int64, models []string) {
	h := sessHash(source, id)
	i, ok := x.byKey[h]
	if ok && (x.entries[i].id != id || x.names.agents[x.entries[i].agent].source != source) {
		ok = false // a collision: find it the slow way, rare enough
		for j := range x.entries {
			if x.entries[j].id == id && x.names.agents[x.entries[j].agent].source == source {
				i, ok = int32(j), true
				break
			}
		}
	}
	if !ok {
		i = int32(len(x.entries))
		x.entries = append(x.entries, sessEntry{id: id, first: first, last: last, agent: x.names.agent(source, agent)})
		if _, taken := x.byKey[h]; !taken {
			x.byKey[h] = i
		}
	}
	e := &x.entries[i]
	e.first, e.last = min(e.first, first), max(e.last, last)
	for _, m := range models {
		e.models |= modelBit(intern(&x.names.models, &x.names.modelIdx, m))
	}
}

// refresh brings the index up to the ledger. x.mu is held.
func (x *sessionIndex) refresh() error {
	now := x.now()
	seq, err := x.src.LedgerSequence()
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	loc := x.src.Location()
	horizon := storage.DayStartMillis(storage.DayNumber(now.UnixMilli(), loc)-cubeWindow+1, loc)
	if x.entries == nil || now.Sub(x.built) > x.maxAge {
		x.entries, x.byKey, x.names = []sessEntry{}, map[uint64]int32{}, cubeNames{}
		err := x.src.EachSession(func(s *storage.Session) error {
			if s.LastTS < horizon {
				return nil
			}
			models := make([]string, 0, len(s.Models))
			for m := range s.Models {
				models = append(models, m)
			}
			sort.Strings(models) // numbered in a stable order
			x.add(s.Source, s.SessionID, s.Agent, s.FirstTS, s.LastTS, models)
			return nil
		})
		if err != nil {
			x.entries = nil
			return fmt.Errorf("sessions: %w", err)
		}
		x.seq, x.built, x.last = seq, now, now
		return nil
	}
	if seq == x.seq {
		return nil
	}
	// Calls added since the last look (ingest records calls some minutes
	// after they happen, hence the slack), up to the ledger's end.
	err = x.src.LedgerCalls(x.last.Add(-tailSlack).UnixMilli(), 1<<62, func(c *storage.LedgerCall) error {
		x.add(c.Source, c.SessionID, c.Agent, c.TS, c.TS, []string{c.Provider + "/" + c.Model})
		return nil
	})
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	x.seq, x.last = seq, now
	return nil
}

// use locks the index brought up to the ledger; the caller unlocks x.mu.
func (x *sessionIndex) use() error {
	x.mu.Lock()
	x.touch(x.drop)
	if err := x.refresh(); err != nil {
		x.mu.Unlock()
		return err
	}
	return nil
}

func (x *sessionIndex) drop() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.idleNow() {
		return
	}
	x.entries, x.byKey, x.names = nil, nil, cubeNames{}
}

// SessionQuery selects sessions: those whose last activity falls in the
// days From..To, of the agent, team or model given, most recent first.
type SessionQuery struct {
	UsageQuery
	Limit, Offset int
}

// SessionList is a page of sessions.
type SessionList struct {
	Range    Span         `json:"range"`
	Filters  Filters      `json:"filters"`
	Sessions []SessionRow `json:"sessions"`
	Page     Page         `json:"page"`
}

// Sessions lists a page of q's sessions with their totals.
func (d *Dashboard) Sessions(ctx context.Context, q SessionQuery) (SessionList, error) {
	q.GroupBy = "day" // not used; keeps Validate happy
	if err := q.Validate(); err != nil {
		return SessionList{}, err
	}
	if q.User != "" {
		return SessionList{}, badQuery("sessions can be filtered by agent, team and model, not user")
	}
	if q.Limit <= 0 || q.Limit > MaxPage || q.Offset < 0 {
		return SessionList{}, badQuery("limit must be 1 to %d and offset not negative", MaxPage)
	}
	reg := d.registry()
	if err := checkTeam(reg, q.Team); err != nil {
		return SessionList{}, err
	}
	loc := d.src.Location()
	var hits []sessHit
	var err error
	if q.From < d.Today()-cubeWindow+1 {
		hits, err = d.scanSessions(ctx, q, reg) // older than the index holds
	} else {
		hits, err = d.indexedSessions(q, reg)
	}
	if err != nil {
		return SessionList{}, err
	}
	out := SessionList{Range: spanOf(q.From, q.To, q.Name, loc), Filters: q.Filters, Sessions: []SessionRow{},
		Page: Page{Offset: q.Offset, Limit: q.Limit, Total: len(hits)}}
	var keys []storage.SessionKey
	for _, h := range hits[min(q.Offset, len(hits)):min(q.Offset+q.Limit, len(hits))] {
		keys = append(keys, h.key)
	}
	summaries, err := d.src.SessionsByKey(keys)
	if err != nil {
		return SessionList{}, fmt.Errorf("sessions: %w", err)
	}
	byKey := map[storage.SessionKey]*storage.Session{}
	for i := range summaries {
		byKey[storage.SessionKey{Source: summaries[i].Source, SessionID: summaries[i].SessionID}] = &summaries[i]
	}
	var keep func(string) bool
	if q.Model != "" {
		keep = func(m string) bool { return m == q.Model }
	}
	for _, k := range keys {
		if s := byKey[k]; s != nil {
			out.Sessions = append(out.Sessions, sessionRow(s, loc, keep))
		}
	}
	return out, nil
}

// sessHit is a session a query selects, by its last activity.
type sessHit struct {
	key  storage.SessionKey
	last int64 // unix ms
}

// sortHits orders sessions most recent first, then by id.
func sortHits(hits []sessHit) {
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].last != hits[j].last {
			return hits[i].last > hits[j].last
		}
		return hits[i].key.SessionID < hits[j].key.SessionID
	})
}

// indexedSessions selects q's sessions from the session index, which
// holds the last cubeWindow days.
func (d *Dashboard) indexedSessions(q SessionQuery, reg map[string]storage.AgentInfo) ([]sessHit, error) {
	loc := d.src.Location()
	from, to := storage.DayStartMillis(q.From, loc), storage.DayStartMillis(q.To+1, loc)
	x := d.sess
	if err := x.use(); err != nil {
		return nil, err
	}
	defer x.mu.Unlock()
	m := &matcher{f: Filters{Agent: q.Agent, Team: q.Team}, reg: reg, names: &x.names}
	modelIdx, hasModel := x.names.modelIdx[q.Model]
	hits := []sessHit{}
	for i := range x.entries {
		e := &x.entries[i]
		if e.last < from || e.last >= to || !m.match(&cubeRow{agent: e.agent}) {
			continue
		}
		if q.Model != "" && (!hasModel || e.models&modelBit(modelIdx) == 0) {
			continue
		}
		hits = append(hits, sessHit{key: x.key(e), last: e.last})
	}
	sortHits(hits)
	return hits, nil
}

// scanSessions selects q's sessions from every session summary in the
// database (the read of the session report), for a range that begins
// before the index's window. The scan is a heavy read: it takes a slot of
// the result cache, and its selection is kept for the pages after the
// first.
func (d *Dashboard) scanSessions(ctx context.Context, q SessionQuery, reg map[string]storage.AgentInfo) ([]sessHit, error) {
	loc := d.src.Location()
	from, to := storage.DayStartMillis(q.From, loc), storage.DayStartMillis(q.To+1, loc)
	key := fmt.Sprintf("sessionscan|%d|%d|%s", q.From, q.To, q.Filters.describe())
	return cached(ctx, d.cache, d.src, key, laneDefault, func() ([]sessHit, error) {
		hits := []sessHit{}
		err := d.src.EachSession(func(s *storage.Session) error {
			if s.LastTS < from || s.LastTS >= to ||
				(q.Agent != "" && s.Agent != q.Agent) || (q.Team != "" && teamOf(reg, s.Agent) != q.Team) {
				return nil
			}
			if _, ok := s.Models[q.Model]; q.Model != "" && !ok {
				return nil
			}
			hits = append(hits, sessHit{key: storage.SessionKey{Source: s.Source, SessionID: s.SessionID}, last: s.LastTS})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
		sortHits(hits)
		return hits, nil
	})
}

// sessionRow is a session summary as a report row, of the models keep
// keeps ("provider/model"; nil: every one): with a model asked for, a
// session's figures are that model's, in the session report and the
// sessions list alike.
func sessionRow(s *storage.Session, loc *time.Location, keep func(model string) bool) SessionRow {
	var t storage.Totals
	models := make([]string, 0, len(s.Models))
	for m, mt := range s.Models {
		if keep != nil && !keep(m) {
			continue
		}
		t.Add(mt)
		models = append(models, m)
	}
	sort.Strings(models)
	return SessionRow{
		SessionID: s.SessionID, SessionKey: s.SessionKey, Source: s.Source, Agent: s.Agent, Channel: s.Channel,
		FirstActivity: time.UnixMilli(s.FirstTS).In(loc).Format(time.RFC3339),
		LastActivity:  time.UnixMilli(s.LastTS).In(loc).Format(time.RFC3339),
		Sums:          SumsOf(t), Models: models, lastTS: s.LastTS, totals: t,
	}
}

// CallRow is one model call of a session.
type CallRow struct {
	TS        string `json:"ts"`   // RFC 3339 in the dashboard's zone
	Unix      int64  `json:"unix"` // unix ms
	User      string `json:"user"`
	UserLabel string `json:"user_label,omitempty"`
	Provider  string `json:"provider"`
	Model     string `json:"model"`
	Sums
	CostSource string `json:"cost_source"`
}

// SessionDetail is one session and a page of its calls, newest first.
type SessionDetail struct {
	Session SessionRow `json:"session"`
	Calls   []CallRow  `json:"calls"`
	// Before, when set, asks for the older calls (unix ms): a page holds
	// at most a limit of calls and a day of the ledger.
	Before *int64 `json:"next_before,omitempty"`
}

// sessionCallsSpan is the most ledger one page of a session's calls reads.
const sessionCallsSpan = 24 * time.Hour

// SessionCalls returns the session (source, id) and its calls before
// beforeMillis (0: the latest), at most limit.
func (d *Dashboard) SessionCalls(ctx context.Context, source, id string, beforeMillis int64, limit int) (SessionDetail, error) {
	if source == "" || id == "" {
		return SessionDetail{}, badQuery("a session is named by source and id")
	}
	if limit <= 0 || limit > MaxPage {
		return SessionDetail{}, badQuery("limit must be 1 to %d", MaxPage)
	}
	found, err := d.src.SessionsByKey([]storage.SessionKey{{Source: source, SessionID: id}})
	if err != nil {
		return SessionDetail{}, fmt.Errorf("session: %w", err)
	}
	if len(found) == 0 {
		return SessionDetail{}, fmt.Errorf("session %s %q: %w", source, id, ErrNotFound)
	}
	s := &found[0]
	loc := d.src.Location()
	out := SessionDetail{Session: sessionRow(s, loc, nil), Calls: []CallRow{}}
	end := s.LastTS + 1
	if beforeMillis > 0 {
		end = min(end, beforeMillis)
	}
	start := max(s.FirstTS, end-sessionCallsSpan.Milliseconds())
	oldest := end
	err = d.src.SessionCalls(source, id, start, end, func(u *storage.Usage) bool {
		if len(out.Calls) == limit {
			return false
		}
		t := storage.TotalsOf(u)
		out.Calls = append(out.Calls, CallRow{
			TS: time.UnixMilli(u.TS).In(loc).Format(time.RFC3339), Unix: u.TS, User: u.User, UserLabel: u.UserLabel,
			Provider: u.Provider, Model: u.Model, Sums: SumsOf(t), CostSource: u.CostSource,
		})
		oldest = u.TS
		return true
	})
	if err != nil {
		return SessionDetail{}, fmt.Errorf("session calls: %w", err)
	}
	if len(out.Calls) == limit || start > s.FirstTS {
		next := start
		if len(out.Calls) == limit {
			next = oldest
		}
		if next > s.FirstTS {
			out.Before = &next
		}
	}
	return out, nil
}
