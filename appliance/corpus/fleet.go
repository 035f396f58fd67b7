package corpus

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// A fleet ledger: the calls a fleet of agents made, as ledger records
// written straight into a database. Transcripts of millions of calls would
// not fit a test run; API and UI benchmarks need the ledger's shape (many
// agents in teams, users who talk to one or two of them, sessions of a
// few minutes to an hour, a working-day rhythm, several providers), not
// the transcript traps the ingest tests need.

// FleetOptions shape a generated fleet ledger.
type FleetOptions struct {
	Seed   uint64
	End    time.Time // exclusive end of the period; zero means DefaultEnd
	Days   int
	Calls  int // ledger records to write
	Agents int
	Users  int
	Models int // models in use, across providers (at most len(fleetModels) + extra "model-N")
	// UnpricedRate is the share of calls to a model no price table knows
	// (cost 0, cost_source unpriced).
	UnpricedRate float64
}

// DefaultFleetOptions is the benchmark fleet: 90 days of 50
// agents, 200 users and 10 models.
func DefaultFleetOptions() FleetOptions {
	return FleetOptions{Seed: 1, End: DefaultEnd, Days: 90, Calls: 400_000, Agents: 50, Users: 200, Models: 10, UnpricedRate: 0.002}
}

// Validate reports the first unusable option.
func (o FleetOptions) Validate() error {
	switch {
	case o.Days < 1 || o.Days > 3660:
		return fmt.Errorf("%w: days %d, want 1..3660", ErrInvalidOptions, o.Days)
	case o.Calls < 0 || o.Agents < 1 || o.Users < 0 || o.Models < 1:
		return fmt.Errorf("%w: calls %d, agents %d, users %d, models %d", ErrInvalidOptions, o.Calls, o.Agents, o.Users, o.Models)
	case !(o.UnpricedRate >= 0 && o.UnpricedRate <= 1):
		return fmt.Errorf("%w: unpriced rate %v", ErrInvalidOptions, o.UnpricedRate)
	}
	return nil
}

// FleetAgent is one agent of a generated fleet, as the config's [[agents]]
// registry would list it.
type FleetAgent struct {
	ID, Name, Team, Owner string
}

// fleetRoles name agents and put them in teams.
var fleetRoles = []struct{ role, name, team string }{
	{"sales", "Sales assistant", "Sales"}, {"support", "Support triage", "Support"},
	{"research", "Research scout", "Innovation"}, {"ops", "Ops runbook", "Operations"},
	{"finance", "Finance clerk", "Finance"}, {"coder", "Code reviewer", "Innovation"},
	{"writer", "Content writer", "Sales"}, {"helpdesk", "IT helpdesk", "Support"},
}

// FleetAgents is the registry of the fleet o generates.
func FleetAgents(o FleetOptions) []FleetAgent {
	out := make([]FleetAgent, o.Agents)
	for i := range out {
		r := fleetRoles[i%len(fleetRoles)]
		n := i/len(fleetRoles) + 1
		out[i] = FleetAgent{
			ID: fmt.Sprintf("%s-%02d", r.role, n), Name: fmt.Sprintf("%s %d", r.name, n), Team: r.team,
			Owner: fmt.Sprintf("%s.lead@example.com", strings.ToLower(r.team)),
		}
	}
	return out
}

// fleetModels are the models a fleet calls, with their list prices (USD
// per 1M tokens) and how often an agent picks one as its primary.
var fleetModels = []struct {
	provider, model string
	price           Price
	weight          int
}{
	{"anthropic", "claude-sonnet-4-6", Price{3, 15, 0.3, 3.75}, 6},
	{"openai", "gpt-5.2", Price{1.75, 14, 0.175, 0}, 4},
	{"anthropic", "claude-haiku-4-5", Price{1, 5, 0.1, 1.25}, 3},
	{"google", "gemini-2.5-pro", Price{1.25, 10, 0.31, 0}, 2},
	{"openai", "gpt-5-mini", Price{0.25, 2, 0.025, 0}, 3},
	{"anthropic", "claude-opus-4-6", Price{5, 25, 0.5, 6.25}, 1},
	{"google", "gemini-2.5-flash", Price{0.3, 2.5, 0.075, 0}, 2},
	{"mistral", "mistral-large-2", Price{2, 6, 0.2, 0}, 1},
	{"deepseek", "deepseek-chat", Price{0.27, 1.1, 0.07, 0}, 1},
	{"xai", "grok-4", Price{3, 15, 0.75, 0}, 1},
}

// unpricedModel is what UnpricedRate calls go to.
const unpricedModel = "inhouse/mystery-1"

// Activity is the fleet's relative activity at t (1 is an average hour of
// an average day): a working-day rhythm peaking late morning UTC, quieter
// weekends, growth over the period and a busy week two weeks before end.
// The host history follows it, so cost and load line up.
func Activity(t, end time.Time) float64 {
	h := float64(t.UTC().Hour()) + float64(t.UTC().Minute())/60
	day := 0.25 + 1.9*math.Exp(-math.Pow((h-11)/4.5, 2))
	if wd := t.UTC().Weekday(); wd == time.Saturday || wd == time.Sunday {
		day *= 0.45
	}
	age := end.Sub(t).Hours() / 24
	growth := 1 + 0.3*math.Max(0, 1-age/90)
	if age >= 14 && age < 21 {
		growth *= 1.7 // the busy week
	}
	return day * growth
}

// FleetTotals are what a generated fleet ledger holds.
type FleetTotals struct {
	Calls     int64
	CostNanos int64
	Tokens    int64
	Sessions  int
}

type fleetUser struct {
	id, label string
	agents    []int
}

// GenerateFleet makes o's records and hands them to emit in batches of
// about batch records, each batch in time order (a day's calls). It is
// deterministic for o.
func GenerateFleet(o FleetOptions, batch int, emit func([]storage.Usage) error) (FleetTotals, error) {
	if err := o.Validate(); err != nil {
		return FleetTotals{}, err
	}
	end := DefaultEnd
	if !o.End.IsZero() {
		end = o.End.UTC()
	}
	start := end.Add(-time.Duration(o.Days) * 24 * time.Hour)
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	agents := FleetAgents(o)
	type agentModels struct{ primary, secondary int }
	am := make([]agentModels, o.Agents)
	var weights []int
	for i := range min(o.Models, len(fleetModels)) {
		weights = append(weights, fleetModels[i].weight)
	}
	pick := func() int {
		total := 0
		for _, w := range weights {
			total += w
		}
		n := rng.IntN(total)
		for i, w := range weights {
			if n < w {
				return i
			}
			n -= w
		}
		return 0
	}
	for i := range am {
		am[i] = agentModels{pick(), rng.IntN(o.Models)}
	}
	users := make([]fleetUser, o.Users)
	byAgent := make([][]int, o.Agents)
	channels := []string{"telegram", "slack", "discord", "whatsapp"}
	for i := range users {
		ch := channels[rng.IntN(len(channels))]
		u := fleetUser{id: fmt.Sprintf("%s:%d", ch, 100000+i*7919%900000), label: fmt.Sprintf("%s %s", firstNames[i%len(firstNames)], lastNames[(i/len(firstNames))%len(lastNames)])}
		u.agents = []int{i % o.Agents}
		if rng.Float64() < 0.2 {
			u.agents = append(u.agents, rng.IntN(o.Agents))
		}
		for _, a := range u.agents {
			byAgent[a] = append(byAgent[a], i)
		}
		users[i] = u
	}
	// Calls per day follow the day's activity.
	dayWeight := make([]float64, o.Days)
	var sum float64
	for d := range dayWeight {
		for h := 0; h < 24; h += 3 {
			dayWeight[d] += Activity(start.Add(time.Duration(d)*24*time.Hour+time.Duration(h)*time.Hour), end)
		}
		sum += dayWeight[d]
	}
	var tot FleetTotals
	var out []storage.Usage
	seq := 0
	left := o.Calls
	for d := 0; d < o.Days && left > 0; d++ {
		want := int(math.Round(float64(o.Calls) * dayWeight[d] / sum))
		if d == o.Days-1 {
			want = left
		}
		want = min(want, left)
		dayStart := start.Add(time.Duration(d) * 24 * time.Hour)
		var day []storage.Usage
		for len(day) < want {
			// A session: an agent, a user (or none: cron), a start in the
			// working-day rhythm, a few to a hundred calls a minute or two apart.
			a := rng.IntN(o.Agents)
			user, label, channel := "", "", "cron"
			if len(byAgent[a]) > 0 && rng.Float64() > 0.15 {
				u := users[byAgent[a][rng.IntN(len(byAgent[a]))]]
				user, label = u.id, u.label
				channel, _, _ = strings.Cut(u.id, ":")
			}
			at := dayStart
			for {
				at = dayStart.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
				if rng.Float64()*2.2 < Activity(at, end) {
					break
				}
			}
			n := min(want-len(day), 3+int(rng.ExpFloat64()*25))
			tot.Sessions++
			sid := fmt.Sprintf("fs-%d-%06d", o.Seed, tot.Sessions)
			key := fmt.Sprintf("agent:%s:%s", agents[a].ID, channel)
			if user != "" {
				key += ":direct:" + user[strings.IndexByte(user, ':')+1:]
			}
			ctx := int64(2000 + rng.IntN(8000))
			for j := range n {
				if j > 0 && !at.Before(end) {
					break // a session of the last evening ends with the period
				}
				m := am[a].primary
				if rng.Float64() < 0.25 {
					m = am[a].secondary
				}
				md := fleetModels[m%len(fleetModels)]
				provider, model := md.provider, md.model
				if m >= len(fleetModels) {
					model = fmt.Sprintf("model-%d", m)
				}
				in, outT := int64(200+rng.IntN(3000)), int64(80+rng.IntN(1500))
				cr, cw := ctx, int64(0)
				if j == 0 || rng.Float64() < 0.1 {
					cw, cr = ctx, 0
				}
				ctx += in + outT
				u := storage.Usage{
					TS: at.UnixMilli(), Source: storage.SourceOpenClaw, Agent: agents[a].ID, SessionID: sid, SessionKey: key,
					Channel: channel, User: user, UserLabel: label, Provider: provider, Model: model,
					Input: in, Output: outT, CacheRead: cr, CacheWrite: cw, DedupeKey: fmt.Sprintf("fleet|%d|%d", o.Seed, seq),
				}
				if rng.Float64() < o.UnpricedRate {
					u.Provider, u.Model, _ = strings.Cut(unpricedModel, "/")
					u.CostSource = storage.CostUnpriced
				} else {
					p := md.price
					c := [4]float64{p.Input / 1e6 * float64(in), p.Output / 1e6 * float64(outT), p.CacheRead / 1e6 * float64(cr), p.CacheWrite / 1e6 * float64(cw)}
					u.Cost = storage.Cost{Total: c[0] + c[1] + c[2] + c[3], Input: c[0], Output: c[1], CacheRead: c[2], CacheWrite: c[3]}
					u.CostSource = storage.CostTable
				}
				seq++
				tot.Calls++
				tot.CostNanos += storage.Nanos(u.Cost.Total)
				tot.Tokens += u.TotalTokens()
				day = append(day, u)
				at = at.Add(time.Duration(20+rng.IntN(150)) * time.Second)
			}
		}
		left -= len(day)
		slices.SortStableFunc(day, func(a, b storage.Usage) int { return int(a.TS - b.TS) })
		for len(day) > 0 {
			n := min(len(day), max(batch, 1))
			out = append(out[:0], day[:n]...)
			day = day[n:]
			if err := emit(out); err != nil {
				return tot, err
			}
		}
	}
	if left > 0 {
		return tot, errors.New("corpus: fleet generation stopped early")
	}
	return tot, nil
}
