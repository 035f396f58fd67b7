package alerts

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Snapshot is the last round as `fleetmeter alerts` and /api/alerts show
// it: every rule with its current value and state.
type Snapshot struct {
	EvaluatedAt *time.Time       `json:"evaluated_at"` // null before the first round
	RoundMillis float64          `json:"round_ms"`
	Firing      int              `json:"firing"` // instances firing
	Pending     int              `json:"pending"`
	Rules       []RuleStatus     `json:"rules"`
	Notifiers   []NotifierStatus `json:"notifiers"`
}

// RuleStatus is one rule: its headline figures, its state (the worst of
// its instances) and the instances fired, pending or resolved lately.
type RuleStatus struct {
	Name         string     `json:"name"`
	Type         string     `json:"type"`
	Scope        string     `json:"scope"`
	State        string     `json:"state"` // ok, pending, firing
	Notify       []string   `json:"notify"`
	SnoozedUntil *time.Time `json:"snoozed_until,omitempty"`
	Error        string     `json:"error,omitempty"` // the rule could not be evaluated
	Figures
	Instances []AlertState `json:"instances"`
}

// NotifierStatus is one receiver, masked.
type NotifierStatus struct {
	Name     string `json:"name"`
	Receiver string `json:"receiver"` // scheme and host only
	DeliveryStats
}

// Snapshot returns the last round's state.
func (e *Engine) Snapshot() Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.snap
	if s.EvaluatedAt == nil {
		// Before the first round (it runs at start): the rules as
		// configured, none evaluated yet, so no page says there are none.
		s.Rules = make([]RuleStatus, 0, len(e.c.rules))
		for _, ru := range e.c.rules {
			s.Rules = append(s.Rules, RuleStatus{Name: ru.id, Type: ru.Type, Scope: ru.scope.String(), Notify: ru.notify,
				Figures: Figures{Summary: "Not evaluated yet: the first round runs at start."}, Instances: []AlertState{}})
		}
	}
	s.Notifiers = e.notifierStatus() // deliveries go on between rounds
	return s
}

// ruleStatus fills in the state and instances of st. e.mu is held.
func (e *Engine) ruleStatus(ru *rule, st RuleStatus, now time.Time) RuleStatus {
	st.State = StateOK
	st.Instances = []AlertState{}
	for _, a := range e.states[ru.id] {
		if a.State == StateOK {
			continue
		}
		st.Instances = append(st.Instances, *a)
		switch {
		case a.State == StateFiring:
			st.State = StateFiring
		case a.State == StatePending && st.State == StateOK:
			st.State = StatePending
		}
	}
	sort.Slice(st.Instances, func(i, j int) bool { return st.Instances[i].Key < st.Instances[j].Key })
	if until, ok := e.snoozes[ru.id]; ok && now.Before(until) {
		u := until
		st.SnoozedUntil = &u
	}
	return st
}

func (e *Engine) snapshot(rules []RuleStatus, now time.Time) Snapshot {
	t := now
	s := Snapshot{EvaluatedAt: &t, RoundMillis: float64(e.lastRound.Microseconds()) / 1000, Rules: rules}
	for _, r := range rules {
		for _, in := range r.Instances {
			switch in.State {
			case StateFiring:
				s.Firing++
			case StatePending:
				s.Pending++
			}
		}
	}
	s.Notifiers = e.notifierStatus()
	return s
}

func (e *Engine) notifierStatus() []NotifierStatus {
	stats := e.disp.Stats()
	out := make([]NotifierStatus, 0, len(e.d.Notifiers))
	for name, n := range e.d.Notifiers {
		out = append(out, NotifierStatus{Name: name, Receiver: n.Masked(), DeliveryStats: stats[name]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// TestResult is one receiver's answer to a test message.
type TestResult struct {
	Notifier string `json:"notifier"`
	Receiver string `json:"receiver"`
	Error    string `json:"error,omitempty"`
}

// Test sends a test message for rule to each of its receivers now, once,
// bypassing quiet hours, snoozes and the outbox; it waits for the
// answers (each bounded by the configured timeout).
func (e *Engine) Test(ctx context.Context, rule string, now time.Time) ([]TestResult, error) {
	return sendTest(ctx, e.c, e.d.Notifiers, rule, e.d.InstanceID, now)
}

// SendTest is Test without an engine (the CLI): it validates s and sends
// through notifiers.
func SendTest(ctx context.Context, s Settings, teams Teams, notifiers map[string]Notifier, rule, instanceID, uiURL string, now time.Time) ([]TestResult, error) {
	c, err := s.compile(teams)
	if err != nil {
		return nil, err
	}
	if c.opts.UIURL == "" {
		c.opts.UIURL = uiURL
	}
	return sendTest(ctx, c, notifiers, rule, instanceID, now)
}

func sendTest(ctx context.Context, c *compiled, notifiers map[string]Notifier, rule, instanceID string, now time.Time) ([]TestResult, error) {
	ru := c.rule(rule)
	if ru == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownRule, rule)
	}
	if len(ru.notify) == 0 {
		return nil, fmt.Errorf("rule %q has no notifiers (set notify, or [alerting] notify)", rule)
	}
	n := &Notification{Version: 1, Event: "test", Rule: ru.id, Type: ru.Type, Scope: ru.scope.String(), Severity: "info",
		Summary: fmt.Sprintf("A test message for rule %s (%s, %s): receivers are reachable.", ru.id, ru.Type, ru.scope),
		At:      now.UTC(), Since: now.UTC(), URL: c.opts.UIURL, Host: instanceID}
	n.render()
	out := make([]TestResult, len(ru.notify))
	done := make(chan struct{})
	for i, name := range ru.notify {
		nf := notifiers[name]
		if nf == nil {
			return nil, fmt.Errorf("notifier %q: not built", name)
		}
		out[i] = TestResult{Notifier: name, Receiver: nf.Masked()}
		go func() {
			defer func() { done <- struct{}{} }()
			actx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
			defer cancel()
			if err := nf.Send(actx, n); err != nil {
				out[i].Error = err.Error()
			}
		}()
	}
	for range ru.notify {
		<-done
	}
	return out, nil
}
