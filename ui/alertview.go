package ui

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"
)

// alertsView mirrors the parts of the alerts snapshot (/api/alerts) the
// page shows; ui reads it through JSON, as it imports no alerts package.
type alertsView struct {
	Configured  bool
	EvaluatedAt *time.Time `json:"evaluated_at"`
	// Firing and Pending count rules, not the snapshot's instances: a
	// budget past its 50, 80 and 100 % tiers is one rule firing.
	Firing  int `json:"-"`
	Pending int `json:"-"`
	Rules   []struct {
		Name         string     `json:"name"`
		Type         string     `json:"type"`
		Scope        string     `json:"scope"`
		State        string     `json:"state"`
		Notify       []string   `json:"notify"`
		SnoozedUntil *time.Time `json:"snoozed_until"`
		Error        string     `json:"error"`
		Summary      string     `json:"summary"`
		Value        float64    `json:"value"`
		Threshold    float64    `json:"threshold"`
		Unit         string     `json:"unit"`
		Instances    []struct {
			Key     string    `json:"key"`
			State   string    `json:"state"`
			Since   time.Time `json:"since"`
			Summary string    `json:"summary"`
			Acked   bool      `json:"acked"`
		} `json:"instances"`
	} `json:"rules"`
	Notifiers []struct {
		Name      string `json:"name"`
		Receiver  string `json:"receiver"`
		Delivered int64  `json:"delivered"`
		Failed    int64  `json:"failed_attempts"`
		GaveUp    int64  `json:"gave_up"`
		Pending   int    `json:"pending"`
	} `json:"notifiers"`
}

// alerts reads the alerts snapshot (ui does not import alerts) with its
// rules counted and each rule's tiers ordered highest first.
func (h *dash) alerts(ctx context.Context) (alertsView, error) {
	var v alertsView
	snap, err := h.d.Alerts.Alerts(ctx, "")
	if err != nil {
		return v, err
	}
	if err := remarshal(snap, &v); err != nil {
		return v, err
	}
	v.Configured = len(v.Rules) > 0
	for i := range v.Rules {
		r := &v.Rules[i]
		switch r.State {
		case "firing":
			v.Firing++
		case "pending":
			v.Pending++
		}
		sort.SliceStable(r.Instances, func(a, b int) bool {
			pa, okA := tierPct(r.Instances[a].Key)
			pb, okB := tierPct(r.Instances[b].Key)
			return okA && okB && pa > pb
		})
	}
	return v, nil
}

// tierPct reads a budget tier's key ("80%"), ok false for another key.
func tierPct(key string) (float64, bool) {
	n, found := strings.CutSuffix(key, "%")
	if !found {
		return 0, false
	}
	v, err := strconv.ParseFloat(n, 64)
	return v, err == nil
}

// firingRules names the firing rules, a budget with its highest firing
// tier: "fleet-roll (100% tier)".
func (v alertsView) firingRules() []string {
	var out []string
	for _, r := range v.Rules {
		if r.State != "firing" {
			continue
		}
		name := r.Name
		for _, in := range r.Instances { // highest tier first
			if _, ok := tierPct(in.Key); ok && in.State == "firing" {
				name += " (" + in.Key + " tier)"
				break
			}
		}
		out = append(out, name)
	}
	return out
}
