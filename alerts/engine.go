// Package alerts watches budgets, spend, the host and the pipeline, and
// tells people: budgets per day, week, month or rolling window with
// tiers, burn-rate projections, runaway agents, expensive sessions,
// Claude's 5-hour quota windows, unpriced models, host and pipeline
// failures, and daily or weekly digests. It is advisory (it never stops an
// agent), opt-in (no rule without configuration) and quiet: an instance
// fires once, resolves with hysteresis, reminds at a set interval, waits
// through quiet hours and snoozes, and its state lives in bbolt so a
// restart neither repeats nor loses a notification. Notifications go out
// through Shoutrrr service URLs or a plain JSON webhook, from an outbox,
// with retries; a slow receiver never holds up evaluation.
//
// The Engine is a worker: Step(ctx, now) evaluates every rule once, Run
// is a ticker around it. It reads through rollup (the spend index, 5-hour
// blocks, reports) and storage.
package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// Data is what the rules read; *storage.DB satisfies it.
type Data interface {
	rollup.SpendSource
	rollup.HostSlotReader
	rollup.HostDailyReader
	HostSamples(fromMillis, toMillis int64, fn func(*storage.HostSample) error) error
	SessionsByKey(keys []storage.SessionKey) ([]storage.Session, error)
	Skips() (storage.Skips, error)
}

// StateStore keeps alert state and the outbox; *storage.DB satisfies it.
type StateStore interface {
	OutboxStore
	AlertStates() (map[string][]byte, error)
	CommitAlerts(storage.AlertChange) ([]uint64, error)
}

// Pipeline reports how fleetmeter's own parts are doing. Nil functions
// are unknown: their checks never fire.
type Pipeline struct {
	// IngestError is the last ingest step's error, "" when it went well.
	IngestError func() string
	// SyncLag is how far upstream sync is behind; ok is false when sync
	// is not configured.
	SyncLag func() (lag time.Duration, ok bool)
	// DBSize is the database file's size and its cap in bytes (0: none).
	DBSize func() (size, limit int64)
	// Audit is the latest security audit as seen by a profile; ok is
	// false until the first audit has run.
	Audit func(profile string) (AuditResult, bool)
}

// Deps are the engine's dependencies.
type Deps struct {
	Data      Data
	State     StateStore
	Reports   rollup.Reader // digests; nil: no digests
	Teams     Teams
	Notifiers map[string]Notifier // by name, from NewNotifier
	Pipeline  Pipeline
	// RateLimits are the providers' own usage windows, newest report of
	// each (Codex's 5-hour and weekly windows); nil: none known.
	RateLimits func() []RateLimit
	// InstanceID names this host in notifications.
	InstanceID string
	// UIURL is the default link to the alerts page.
	UIURL string
	Log   *slog.Logger
}

// RateLimit is a provider's usage window as its logs last reported it.
type RateLimit struct {
	Source        string // "codex"
	Window        string // "primary", "secondary"
	UsedPercent   float64
	WindowMinutes int64
	ResetsAt      time.Time // zero when not reported
}

// Engine evaluates the rules and keeps their state.
type Engine struct {
	c     *compiled
	d     Deps
	loc   *time.Location
	index *rollup.SpendIndex // nil when no rule reads it
	disp  *dispatcher

	mu      sync.Mutex // guards states, snoozes and snap (HTTP handlers read them)
	loaded  bool
	states  map[string]map[string]*AlertState // rule id → instance key → state
	snoozes map[string]time.Time
	digests map[string]digestMark
	snap    Snapshot

	sessions  map[storage.SessionKey]sessionCost // session rules' cache
	drift     driftWatch
	diskAt    time.Time
	diskDays  *float64
	lastRound time.Duration
}

// New validates s and builds the engine. It starts nothing.
func New(s Settings, d Deps) (*Engine, error) {
	if d.Teams == nil {
		d.Teams = NoTeams{}
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	c, err := s.compile(d.Teams)
	if err != nil {
		return nil, err
	}
	for name := range c.notifiers {
		if d.Notifiers[name] == nil {
			return nil, fmt.Errorf("notifier %q: not built", name)
		}
	}
	if c.opts.UIURL == "" {
		c.opts.UIURL = d.UIURL
	}
	var index *rollup.SpendIndex
	if need, keep := indexNeeds(c.rules); need {
		index = rollup.NewSpendIndex(d.Data, 8*24*time.Hour, keep)
	}
	e := &Engine{c: c, d: d, loc: d.Data.Location(), index: index,
		sessions: map[storage.SessionKey]sessionCost{}, states: map[string]map[string]*AlertState{}, snoozes: map[string]time.Time{}, digests: map[string]digestMark{}}
	e.disp = newDispatcher(d.State, d.Notifiers, c.opts.Timeout, c.opts.Attempts, d.Log)
	return e, nil
}

// indexNeeds says whether a rule reads the spend index (rolling spend,
// burn rates, hourly baselines, sessions, Claude calls, the last call of
// a source), and what it must keep: the user and the model apart only
// for rules scoped by them, Claude calls for quotas, sessions for session
// costs. The index holds 8 days of the ledger in memory; a daemon with
// no such rule holds none of it.
func indexNeeds(rules []*rule) (need bool, keep rollup.SpendDims) {
	for _, ru := range rules {
		switch ru.Type {
		case TypeProjection, TypeRunaway, TypeSessionCost, TypeQuota:
		case TypeBudget: // a calendar period is read from the daily rows
			if ru.Period != "rolling" {
				continue
			}
		case TypePipeline:
			if ru.Check != "source_silent" {
				continue
			}
		default:
			continue
		}
		need = true
		switch ru.scope.kind {
		case ScopeUser:
			keep.User = true
		case ScopeModel, ScopeProvider:
			keep.Model = true
		}
		switch ru.Type {
		case TypeQuota:
			keep.ClaudeCalls = ru.Source != "codex" // Claude's 5-hour blocks (Codex's limits come with its calls)
		case TypeSessionCost:
			keep.Sessions = max(keep.Sessions, ru.Window)
		}
	}
	return need, keep
}

// Interval is the configured time between rounds.
func (e *Engine) Interval() time.Duration { return e.c.opts.Interval }

// Rules is the number of rules (a budget's projection counts apart).
func (e *Engine) Rules() int { return len(e.c.rules) }

// Run evaluates every Interval until ctx ends; errors are logged, not
// fatal. It waits for deliveries in flight before it returns.
func (e *Engine) Run(ctx context.Context, now func() time.Time) error {
	t := time.NewTicker(e.c.opts.Interval)
	defer t.Stop()
	var lastErr string
	var lastLog time.Time
	for {
		if err := e.Step(ctx, now()); err != nil && ctx.Err() == nil {
			// Repeated errors are logged at most every 5 minutes.
			if err.Error() != lastErr || time.Since(lastLog) > 5*time.Minute {
				e.d.Log.Error("alert round failed", "err", err)
				lastErr, lastLog = err.Error(), time.Now()
			}
		}
		select {
		case <-ctx.Done():
			e.disp.Wait()
			return nil
		case <-t.C:
		}
	}
}

// Step evaluates every rule at now, records what changed with the
// notifications it causes (one transaction), and starts the deliveries
// that are due. It does not wait for receivers.
func (e *Engine) Step(ctx context.Context, now time.Time) error {
	start := time.Now()
	if err := e.load(); err != nil {
		return err
	}
	if e.index != nil {
		read := e.index.DaysRead
		if err := e.index.Refresh(now); err != nil {
			return err
		}
		if e.index.DaysRead-read > 1 {
			// Days of the ledger were read (the first round, a reprice):
			// hand the heap they churned back, as ingest does after a
			// catch-up, rather than keep it until the scavenger gets to it.
			debug.FreeOSMemory()
		}
	}
	r := newRound(e, now)
	statuses := make([]RuleStatus, 0, len(e.c.rules))
	var errs []error
	e.mu.Lock()
	ch := newChange()
	for rule, states := range e.states {
		if e.rule(rule) == nil { // a rule no longer configured
			for key := range states {
				ch.del = append(ch.del, stateID(rule, key))
			}
			delete(e.states, rule)
		}
	}
	for _, ru := range e.c.rules {
		obs, head, err := r.evaluate(ru)
		st := RuleStatus{Name: ru.id, Type: ru.Type, Scope: ru.scope.String(), Notify: ru.notify, Figures: head}
		if err != nil {
			st.Error = err.Error()
			errs = append(errs, fmt.Errorf("rule %s: %w", ru.id, err))
			statuses = append(statuses, st)
			continue // its instances keep their state
		}
		e.apply(ru, obs, now, ch)
		statuses = append(statuses, e.ruleStatus(ru, st, now))
	}
	e.mu.Unlock()
	if err := e.digest(ctx, r, ch); err != nil {
		errs = append(errs, err)
	}
	if err := e.commit(ch); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := e.disp.Step(ctx, now); err != nil {
		errs = append(errs, err)
	}
	e.lastRound = time.Since(start)
	e.mu.Lock()
	e.snap = e.snapshot(statuses, now)
	e.mu.Unlock()
	return errors.Join(errs...)
}

// change collects one round's writes.
type change struct {
	put     map[string][]byte
	del     []string
	enqueue [][]byte
}

func newChange() *change { return &change{put: map[string][]byte{}} }

func (e *Engine) commit(ch *change) error {
	_, err := e.d.State.CommitAlerts(storage.AlertChange{Put: ch.put, Delete: ch.del, Enqueue: ch.enqueue})
	return err
}

// load reads the stored states once; afterwards the engine's copy is the
// truth and every change is written through.
func (e *Engine) load() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loaded {
		return nil
	}
	raw, err := e.d.State.AlertStates()
	if err != nil {
		return err
	}
	for id, v := range raw {
		switch {
		case len(id) > len(snoozePrefix) && id[:len(snoozePrefix)] == snoozePrefix:
			var m snoozeMark
			if json.Unmarshal(v, &m) == nil {
				e.snoozes[id[len(snoozePrefix):]] = m.Until
			}
		case len(id) > len(digestPrefix) && id[:len(digestPrefix)] == digestPrefix:
			var m digestMark
			if json.Unmarshal(v, &m) == nil {
				e.digests[id[len(digestPrefix):]] = m
			}
		default:
			var st AlertState
			if err := json.Unmarshal(v, &st); err != nil {
				e.d.Log.Warn("dropping an unreadable alert state", "err", err)
				continue
			}
			e.instances(st.Rule)[st.Key] = &st
		}
	}
	e.loaded = true
	return nil
}

// apply moves the rule's instances by this round's observations and
// queues what must be told. e.mu is held.
func (e *Engine) apply(ru *rule, obs []Observation, now time.Time, ch *change) {
	seen := map[string]bool{}
	var resolvedEvents, firedTiers []*AlertState
	handle := func(st *AlertState, ob *Observation) {
		id := stateID(ru.id, st.Key)
		changed := transition(st, ob, ru.holdFor, now)
		var told bool
		if ru.Type == TypeBudget && st.State == StateFiring && st.Told != StateFiring && e.allowed(ru, now) {
			firedTiers = append(firedTiers, st) // told below, the highest only
			told = true
		} else {
			told = e.tell(ru, st, now, ch, &resolvedEvents)
		}
		if changed || told {
			ch.put[id] = encodeState(st)
		}
	}
	states := e.instances(ru.id)
	for i := range obs {
		ob := &obs[i]
		seen[ob.Key] = true
		st := states[ob.Key]
		if st == nil {
			if !ob.Firing && !ob.Pending {
				continue // nothing to remember
			}
			st = &AlertState{Rule: ru.id, Key: ob.Key, State: StateOK, Since: now}
			states[ob.Key] = st
		}
		handle(st, ob)
	}
	for key, st := range states {
		if seen[key] {
			continue
		}
		if st.State == StateFiring || st.State == StatePending {
			// Not observed any more (an agent quiet again, a past day's
			// model, a closed block): resolved.
			handle(st, &Observation{Key: st.Key, Clear: true, Event: st.Event, Period: "\x00gone", Figures: st.Figures})
			continue
		}
		if st.ResolvedAt != nil && now.Sub(*st.ResolvedAt) > historyKept || st.State == StateOK {
			delete(states, key)
			ch.del = append(ch.del, stateID(ru.id, key))
		}
	}
	// Tiers crossed in one round are told once, for the highest: a budget
	// blown at once sends one message, not three.
	if len(firedTiers) > 0 {
		sort.Slice(firedTiers, func(i, j int) bool { return firedTiers[i].Threshold > firedTiers[j].Threshold })
		for _, st := range firedTiers[1:] {
			st.Told, st.ToldPeriod = StateFiring, st.Period
			t := now
			st.LastNotified = &t
		}
		e.notify(ru, firedTiers[0], "firing", now, ch)
		for _, st := range firedTiers {
			ch.put[stateID(ru.id, st.Key)] = encodeState(st)
		}
	}
	// A budget's period reset is told once, for its highest crossed tier.
	if ru.ResetNotice && len(resolvedEvents) > 0 {
		sort.Slice(resolvedEvents, func(i, j int) bool { return resolvedEvents[i].Threshold > resolvedEvents[j].Threshold })
		top := resolvedEvents[0]
		if e.allowed(ru, now) { // in quiet hours or a snooze, a reset goes untold
			e.notify(ru, top, "resolved", now, ch)
			ch.put[stateID(ru.id, top.Key)] = encodeState(top)
		}
	}
}

// instances are a rule's states (made on first use). e.mu is held.
func (e *Engine) instances(rule string) map[string]*AlertState {
	m := e.states[rule]
	if m == nil {
		m = map[string]*AlertState{}
		e.states[rule] = m
	}
	return m
}

// allowed says whether the rule may notify now (quiet hours, snooze).
func (e *Engine) allowed(ru *rule, now time.Time) bool {
	if ru.quiet.contains(now.In(e.loc)) {
		return false
	}
	return !now.Before(e.snoozes[ru.id])
}

// tell queues the message an instance's state calls for, if any, and
// reports whether it did (or settled Told without a message).
func (e *Engine) tell(ru *rule, st *AlertState, now time.Time, ch *change, resolvedEvents *[]*AlertState) bool {
	switch st.State {
	case StateFiring:
		if st.Told == StateFiring && st.ToldPeriod == st.Period {
			if ru.reminder > 0 && !st.Acked && st.LastNotified != nil && now.Sub(*st.LastNotified) >= ru.reminder && e.allowed(ru, now) {
				e.notify(ru, st, "reminder", now, ch)
				return true
			}
			return false
		}
		if !e.allowed(ru, now) {
			return false // told when quiet hours or the snooze end
		}
		e.notify(ru, st, "firing", now, ch)
		return true
	case StateResolved:
		if st.Told != StateFiring {
			return false
		}
		if st.Event {
			// Events end without a message; a budget with reset_notice
			// tells its period's end once (apply).
			st.Told, st.ToldPeriod = StateResolved, st.Period
			*resolvedEvents = append(*resolvedEvents, st)
			return true
		}
		if !e.allowed(ru, now) {
			return false
		}
		e.notify(ru, st, "resolved", now, ch)
		return true
	}
	return false
}

// notify records that st was told and queues the message for every
// receiver of the rule.
func (e *Engine) notify(ru *rule, st *AlertState, event string, now time.Time, ch *change) {
	t := now
	st.LastNotified = &t
	if event != "reminder" {
		st.Told, st.ToldPeriod = st.State, st.Period
	}
	n := e.notification(ru, st, event, now)
	e.enqueue(n, ru.notify, now, ch)
}

// enqueue adds one delivery per receiver.
func (e *Engine) enqueue(n *Notification, to []string, now time.Time, ch *change) {
	for _, name := range to {
		v, _ := json.Marshal(delivery{Notifier: name, Notification: n, NextAttempt: now})
		ch.enqueue = append(ch.enqueue, v)
	}
}

func (e *Engine) notification(ru *rule, st *AlertState, event string, now time.Time) *Notification {
	n := &Notification{
		Version: 1, Event: event, Rule: ru.id, Type: ru.Type, Scope: ru.scope.String(), Instance: st.Key,
		Summary: st.Summary, Value: st.Value, Threshold: st.Threshold, Unit: st.Unit,
		AmountUSD: st.AmountUSD, BudgetUSD: st.BudgetUSD, PercentUsed: st.PercentUsed,
		ProjectedTotalUSD: st.ProjectedTotalUSD, ProjectedAt: st.ProjectedAt, Period: st.Period,
		At: now.UTC(), URL: e.c.opts.UIURL, Host: e.d.InstanceID, Severity: "warning",
	}
	if st.FiringSince != nil {
		n.Since = st.FiringSince.UTC()
	}
	switch {
	case event == "resolved":
		n.Severity = "info"
		if st.Event {
			n.Summary = fmt.Sprintf("The %s period is over: %s resets.", ru.Period, ru.id)
		}
	case ru.Type == TypeHost || ru.Type == TypePipeline || ru.Type == TypeAudit:
		n.Severity = "critical"
	case ru.Type == TypeBudget && st.BudgetUSD != nil && st.Threshold >= *st.BudgetUSD:
		n.Severity = "critical"
	}
	n.render()
	return n
}

// Ack acknowledges a rule's firing instances: no reminders until they
// resolve. ErrUnknownRule when no rule has that name.
func (e *Engine) Ack(rule string, now time.Time) (int, error) {
	if e.rule(rule) == nil {
		return 0, fmt.Errorf("%w: %q", ErrUnknownRule, rule)
	}
	if err := e.load(); err != nil {
		return 0, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := newChange()
	n := 0
	for key, st := range e.states[rule] {
		if st.State == StateFiring && !st.Acked {
			st.Acked = true
			ch.put[stateID(rule, key)] = encodeState(st)
			n++
		}
	}
	return n, e.commit(ch)
}

// Snooze holds a rule's notifications until until (a zero time lifts the
// snooze); what fires meanwhile is told when it ends, if still firing.
func (e *Engine) Snooze(rule string, until time.Time) error {
	if e.rule(rule) == nil {
		return fmt.Errorf("%w: %q", ErrUnknownRule, rule)
	}
	if err := e.load(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := newChange()
	if until.IsZero() {
		delete(e.snoozes, rule)
		ch.del = append(ch.del, snoozePrefix+rule)
	} else {
		e.snoozes[rule] = until
		ch.put[snoozePrefix+rule], _ = json.Marshal(snoozeMark{Until: until})
	}
	return e.commit(ch)
}

// ErrUnknownRule marks a rule name that is not configured.
var ErrUnknownRule = errors.New("no such rule")

func (e *Engine) rule(name string) *rule { return e.c.rule(name) }

func (c *compiled) rule(name string) *rule {
	for _, r := range c.rules {
		if r.id == name {
			return r
		}
	}
	return nil
}

// WaitDeliveries blocks until the delivery attempts started so far end.
func (e *Engine) WaitDeliveries() { e.disp.Wait() }
