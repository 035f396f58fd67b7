package alerts

import (
	"encoding/json"
	"strings"
	"time"
)

// Alert states.
const (
	StateOK       = "ok"
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Observation is what a rule sees in one round for one instance (a budget
// tier, an agent, a session, …).
type Observation struct {
	Key     string // the instance; "" when the rule has one
	Firing  bool   // the condition holds
	Pending bool   // it holds, not yet long enough
	// Clear says the condition is gone far enough to resolve (below the
	// threshold less the hysteresis); an instance firing and neither
	// Firing nor Clear stays as it is.
	Clear bool
	// Event instances (a tier in a period, a session, a model's day) fire
	// once and resolve without a message; with a Period they stay fired
	// until the period changes, whatever their value does meanwhile.
	Event  bool
	Period string
	Figures
}

// Figures are what a notification and the alerts listing show.
type Figures struct {
	Value             float64    `json:"value"`
	Threshold         float64    `json:"threshold"`
	Unit              string     `json:"unit"`
	Summary           string     `json:"summary"`
	AmountUSD         *float64   `json:"amount_usd,omitempty"`
	BudgetUSD         *float64   `json:"budget_usd,omitempty"`
	PercentUsed       *float64   `json:"percent_used,omitempty"`
	ProjectedTotalUSD *float64   `json:"projected_total_usd,omitempty"`
	ProjectedAt       *time.Time `json:"projected_at,omitempty"`
}

// AlertState is one instance's stored state (the alerts bucket, JSON).
type AlertState struct {
	Rule         string     `json:"rule"`
	Key          string     `json:"key"`
	State        string     `json:"state"` // pending, firing, resolved
	Since        time.Time  `json:"since"` // entered State
	FiringSince  *time.Time `json:"firing_since,omitempty"`
	ResolvedAt   *time.Time `json:"resolved_at,omitempty"`
	Period       string     `json:"period,omitempty"`
	Event        bool       `json:"event,omitempty"`
	Told         string     `json:"told,omitempty"` // the last state receivers were told: "", firing, resolved
	ToldPeriod   string     `json:"told_period,omitempty"`
	LastNotified *time.Time `json:"last_notified,omitempty"`
	Acked        bool       `json:"acked,omitempty"`
	Figures
}

// Marks that are not alert instances share the bucket under these ids.
const (
	snoozePrefix = "snooze\x00" // + rule id → snoozeMark
	digestPrefix = "digest\x00" // + daily|weekly → digestMark
	statePrefix  = "alert\x00"  // + rule id + NUL + instance key → AlertState
)

type snoozeMark struct {
	Until time.Time `json:"until"`
}

type digestMark struct {
	Period string `json:"period"` // the day or week last sent
}

func stateID(rule, key string) string { return statePrefix + rule + "\x00" + key }

// historyKept is how long resolved instances stay listed.
const historyKept = 7 * 24 * time.Hour

// transition applies one observation to an instance's state at now and
// reports whether its state or period changed (what must be stored).
func transition(st *AlertState, ob *Observation, holdFor time.Duration, now time.Time) bool {
	prev := *st
	fire := func() {
		t := now
		st.State, st.Since, st.FiringSince, st.ResolvedAt, st.Acked, st.Period = StateFiring, now, &t, nil, false, ob.Period
	}
	resolve := func() {
		t := now
		st.State, st.Since, st.ResolvedAt = StateResolved, now, &t
	}
	switch firing := st.State == StateFiring; {
	case firing && st.Event && st.Period != ob.Period:
		// An event of a past period is over; the new period's may fire anew.
		if ob.Firing {
			fire()
		} else {
			resolve()
		}
	case firing && st.Event && st.Period != "":
		// An event fired in a period stays fired through that period.
	case firing && (ob.Firing || !ob.Clear):
		// stays firing (hysteresis: not yet clear)
	case firing:
		resolve()
	case ob.Firing && holdFor > 0 && st.State != StatePending:
		st.State, st.Since = StatePending, now
	case ob.Firing && (holdFor == 0 || now.Sub(st.Since) >= holdFor):
		fire()
	case ob.Firing:
		// pending, not yet long enough
	case ob.Pending:
		if st.State != StatePending {
			st.State, st.Since = StatePending, now
		}
	case st.State == StatePending:
		resolve() // never fired: nothing to tell
	}
	if st.State != StateFiring {
		st.Period = ob.Period
	}
	st.Event = ob.Event
	st.Figures = ob.Figures
	// Figures alone are not written: they are recomputed every round, and
	// a budget's spend changes with every call.
	return st.State != prev.State || st.Period != prev.Period
}

func encodeState(st *AlertState) []byte {
	b, _ := json.Marshal(st)
	return b
}

// splitStateID undoes stateID.
func splitStateID(id string) (rule, key string, ok bool) {
	rest, ok := strings.CutPrefix(id, statePrefix)
	if !ok {
		return "", "", false
	}
	rule, key, ok = strings.Cut(rest, "\x00")
	return rule, key, ok
}
