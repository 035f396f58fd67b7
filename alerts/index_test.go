package alerts

import (
	"strings"
	"testing"
	"time"
)

// The spend index keeps a user or a model apart only when a rule is
// scoped by it, and a daemon with no rule that reads it holds none of it;
// the figures of scoped rolling budgets are the same either way.
func TestSpendIndexKeepsWhatRulesAsk(t *testing.T) {
	f := newFleet(t, time.UTC)
	now := time.Date(2026, 11, 10, 20, 0, 0, 0, time.UTC)
	f.spend("alpha", now.Add(-time.Hour), now, 6, 1) // $6, user telegram:alpha, claude-sonnet-4-6
	f.spend("beta", now.Add(-time.Hour), now, 2, 0.5)
	other := f.call(now.Add(-time.Minute), "alpha", 2) // $2 more for alpha, another model and user
	other.Model, other.User = "claude-opus-4-7", "telegram:zed"
	f.add(other)

	none := f.engine(`
[[alerts]]
name = "cpu"
type = "host"
metric = "cpu"
threshold = 90
`, nil)
	if none.index != nil {
		t.Error("a host rule alone built the spend index")
	}
	step(t, none, now)

	budget := func(name, scope string) string {
		return "\n[[budgets]]\nname = \"" + name + "\"\nscope = \"" + scope + "\"\nperiod = \"rolling\"\nwindow = \"24h\"\namount_usd = 100\n"
	}
	for _, c := range []struct {
		cfg       string
		user, mod bool
		want      map[string]float64
	}{
		{budget("fleet", "host") + budget("alpha", "agent:alpha"), false, false, map[string]float64{"fleet": 9, "alpha": 8}},
		{budget("user", "user:telegram:alpha") + budget("zed", "user:telegram:zed"), true, false, map[string]float64{"user": 6, "zed": 2}},
		{budget("sonnet", "model:anthropic/claude-sonnet-4-6") + budget("fleet", "host"), false, true, map[string]float64{"sonnet": 7, "fleet": 9}},
	} {
		e := f.engine(c.cfg, nil)
		if e.index == nil {
			t.Fatalf("%q: no spend index for rolling budgets", c.cfg)
		}
		snap := step(t, e, now)
		for name, usd := range c.want {
			if got := ruleOf(t, snap, name).Figures.AmountUSD; got == nil || *got != usd {
				t.Errorf("%s: spent %v, want $%v", name, got, usd)
			}
		}
		dims := map[[2]bool]bool{}
		for id := range e.index.Dims() {
			d := e.index.Dim(uint32(id))
			dims[[2]bool{d.User != "", d.Model != ""}] = true
		}
		if len(dims) != 1 || !dims[[2]bool{c.user, c.mod}] {
			t.Errorf("%q: the index kept (user, model) %v, want only %v", c.cfg, dims, [2]bool{c.user, c.mod})
		}
	}
}

// Before its first round the engine lists its rules, none evaluated: the
// Alerts page must not say there are none while the first round runs.
func TestRulesListedBeforeTheFirstRound(t *testing.T) {
	f := newFleet(t, time.UTC)
	e := f.engine(`
[[budgets]]
name = "fleet-day"
period = "day"
amount_usd = 10
`, nil)
	s := e.Snapshot()
	if s.EvaluatedAt != nil || len(s.Rules) == 0 || s.Rules[0].Name != "fleet-day" || s.Rules[0].State != "" {
		t.Fatalf("snapshot before the first round: %+v", s)
	}
	s = step(t, e, time.Date(2026, 11, 10, 20, 0, 0, 0, time.UTC))
	if s.EvaluatedAt == nil || ruleOf(t, s, "fleet-day").State != StateOK {
		t.Fatalf("snapshot after a round: %+v", s)
	}
}

// A budget of a calendar period reads the daily rows, not the index.
func TestCalendarBudgetNeedsNoIndex(t *testing.T) {
	f := newFleet(t, time.UTC)
	e := f.engine("\n[[budgets]]\nname = \"day\"\nperiod = \"day\"\namount_usd = 10\n", nil)
	if e.index != nil {
		t.Error("a daily budget built the spend index")
	}
	now := time.Date(2026, 11, 10, 20, 0, 0, 0, time.UTC)
	f.spend("alpha", now.Add(-time.Hour), now, 4, 1)
	if got := ruleOf(t, step(t, e, now), "day").Figures.AmountUSD; got == nil || *got != 4 {
		t.Errorf("spent %v, want $4", got)
	}
}

// Each kind of rule alone, on a fleet with spend, runs its rounds: a rule
// that reads the spend index without indexNeeds asking for it would find
// none (a nil index) here. New rule types, host metrics and pipeline
// checks come into the table through the lists config.go validates with.
func TestEveryRuleAlone(t *testing.T) {
	f := newFleet(t, time.UTC)
	now := time.Date(2026, 11, 10, 20, 0, 0, 0, time.UTC)
	f.spend("alpha", now.Add(-48*time.Hour), now, 40, 1)
	var cfgs []string
	for _, typ := range append(ruleTypes, TypeProjection) {
		switch typ {
		case TypeBudget:
			for _, p := range []string{"day", "week", "month", "rolling"} {
				c := "[[budgets]]\nname = \"b\"\nperiod = \"" + p + "\"\namount_usd = 10\n"
				if p == "rolling" {
					c += "window = \"24h\"\n"
				}
				cfgs = append(cfgs, c)
			}
		case TypeProjection:
			cfgs = append(cfgs, "[[budgets]]\nname = \"b\"\nperiod = \"day\"\namount_usd = 10\nprojection = true\n")
		case TypeHost, TypePipeline:
			key, values, more := "metric", hostMetrics, map[string]string{"gateway_down": ""}
			if typ == TypePipeline {
				key, values, more = "check", pipelineChecks, map[string]string{"sync_lag": "max_lag = \"6h\"\n"}
			}
			for _, v := range values {
				extra, ok := more[v]
				if !ok && typ == TypeHost {
					extra = "threshold = 90\n"
				}
				cfgs = append(cfgs, "[[alerts]]\nname = \"x\"\ntype = \""+typ+"\"\n"+key+" = \""+v+"\"\n"+extra)
			}
		case TypeSessionCost:
			cfgs = append(cfgs, "[[alerts]]\nname = \"s\"\ntype = \"session_cost\"\namount_usd = 10\n")
		case TypeQuota:
			cfgs = append(cfgs, "[[alerts]]\nname = \"q\"\ntype = \"quota\"\nlimit_tokens = 2000000\n",
				"[[alerts]]\nname = \"q\"\ntype = \"quota\"\nsource = \"codex\"\n")
		default:
			cfgs = append(cfgs, "[[alerts]]\nname = \"x\"\ntype = \""+typ+"\"\n")
		}
	}
	for _, cfg := range cfgs {
		t.Run(strings.ReplaceAll(strings.TrimSpace(cfg), "\n", " "), func(t *testing.T) {
			e := f.engine(cfg, nil)
			step(t, e, now)
			step(t, e, now.Add(time.Minute))
		})
	}
}
