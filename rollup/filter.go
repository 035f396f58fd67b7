package rollup

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// Filter keeps the calls of one agent, one user (`telegram:123`), one
// model (`claude-sonnet-4-6` or `anthropic/claude-sonnet-4-6`), the agents
// of one team of the agent registry, or one source (openclaw, claude,
// codex). Empty fields keep everything; set fields must all match.
type Filter struct {
	Agent  string `json:"agent,omitempty"`
	User   string `json:"user,omitempty"`
	Model  string `json:"model,omitempty"`
	Team   string `json:"team,omitempty"`
	Source string `json:"source,omitempty"`

	// teamAgents are the agents of Team, set by the Reader from its
	// registry before a report is built.
	teamAgents map[string]bool
}

// Sources are the transcript sources a Filter may name.
var Sources = []string{storage.SourceOpenClaw, storage.SourceClaude, storage.SourceCodex}

// Empty reports whether f keeps everything.
func (f Filter) Empty() bool {
	return f.Agent == "" && f.User == "" && f.Model == "" && f.Team == "" && f.Source == ""
}

// String names what f keeps, for a report's title ("agent main, model x").
func (f Filter) String() string {
	var parts []string
	for _, p := range [][2]string{{"agent", f.Agent}, {"user", f.User}, {"model", f.Model}, {"team", f.Team}, {"source", f.Source}} {
		if p[1] != "" {
			parts = append(parts, p[0]+" "+p[1])
		}
	}
	return strings.Join(parts, ", ")
}

func (f Filter) validate(kind string) error {
	if f.Source != "" && !contains(Sources, f.Source) {
		return badQuery("source %q: want one of %s", f.Source, strings.Join(Sources, ", "))
	}
	if f.User != "" && kind == "session" {
		return badQuery("the session report cannot keep one user: a session's calls are not kept per user (report user --user %s shows that user's figures)", f.User)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// withTeam resolves f.Team against the registry (agent → team); a team
// no agent belongs to is a bad query, not an empty report.
func (f Filter) withTeam(teams map[string]string) (Filter, error) {
	if f.Team == "" {
		return f, nil
	}
	f.teamAgents = map[string]bool{}
	for agent, team := range teams {
		if team == f.Team {
			f.teamAgents[agent] = true
		}
	}
	if len(f.teamAgents) == 0 {
		known := map[string]bool{}
		for _, t := range teams {
			known[t] = true
		}
		names := make([]string, 0, len(known))
		for t := range known {
			names = append(names, t)
		}
		sort.Strings(names)
		if len(names) == 0 {
			return f, badQuery("team %q: the agent registry ([[agents]] with a team) is empty", f.Team)
		}
		return f, badQuery("team %q: no agent of the registry has it (teams: %s)", f.Team, strings.Join(names, ", "))
	}
	return f, nil
}

// keeps reports whether f keeps the calls of a full dimension.
func (f Filter) keeps(d storage.Dim) bool {
	return (f.Agent == "" || d.Agent == f.Agent) &&
		(f.User == "" || d.User == f.User) &&
		(f.Source == "" || d.Source == f.Source) &&
		(f.Team == "" || f.teamAgents[d.Agent]) &&
		(f.Model == "" || f.keepsModel(d.Provider, d.Model))
}

func (f Filter) keepsModel(provider, model string) bool {
	return f.Model == "" || model == f.Model || provider+"/"+model == f.Model
}

// keepsSession reports whether f keeps a session at all (its models are
// filtered apart).
func (f Filter) keepsSession(s *storage.Session) bool {
	return (f.Agent == "" || s.Agent == f.Agent) &&
		(f.Source == "" || s.Source == f.Source) &&
		(f.Team == "" || f.teamAgents[s.Agent])
}

// filteredRows reads the full daily rows of days from..to that f keeps:
// the projections a plain report reads have lost the other dimensions.
func filteredRows(src Source, f Filter, from, to int32) ([]storage.Row, error) {
	full, ok := src.(interface {
		DailyRows(from, to int32) ([]storage.Row, error)
	})
	if !ok {
		return nil, badQuery("this source cannot filter reports")
	}
	rows, err := full.DailyRows(from, to)
	if err != nil {
		return nil, err
	}
	kept := rows[:0]
	for _, r := range rows {
		if f.keeps(r.Dim) {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// DailyRows are the full rows of a zone recut: read from the ledger each
// time (filtered reports in another zone are rare; the cut cache keeps
// projections only).
func (s zoned) DailyRows(from, to int32) ([]storage.Row, error) {
	start, end := int64(-1<<62), int64(1<<62)
	if from != MinDay {
		start = storage.DayStartMillis(from, s.loc)
	}
	if to != MaxDay {
		end = storage.DayStartMillis(to+1, s.loc)
	}
	sums := map[dayDim]storage.Totals{}
	err := s.LedgerFacts(start, end, func(f *storage.Fact) error {
		k := dayDim{storage.DayNumber(f.TS, s.loc), f.Dim}
		t := sums[k]
		t.Add(f.Totals)
		sums[k] = t
		return nil
	})
	out := make([]storage.Row, 0, len(sums))
	for k, t := range sums {
		out = append(out, storage.Row{Period: k.day, Dim: k.Dim, Totals: t})
	}
	return out, err
}

// LoadZone loads an IANA zone whatever the letter case it is given in
// ("europe/berlin", "utc"): as given, then in the usual capitalisation,
// then by a look through the system's zoneinfo.
func LoadZone(name string) (*time.Location, error) {
	if loc, err := time.LoadLocation(name); err == nil {
		return loc, nil
	}
	bad := fmt.Errorf("tz %q is not an IANA zone name (e.g. UTC, Europe/Berlin)", name)
	if strings.Contains(name, "..") || strings.HasPrefix(name, "/") {
		return nil, bad
	}
	segs := strings.Split(name, "/")
	if len(segs) > 3 {
		return nil, bad
	}
	// Each segment in title case or upper case: "us/pacific" → US/Pacific,
	// "america/new_york" → America/New_York, "etc/utc" → Etc/UTC.
	for mask := 0; mask < 1<<len(segs); mask++ {
		try := make([]string, len(segs))
		for i, s := range segs {
			if mask&(1<<i) != 0 {
				try[i] = strings.ToUpper(s)
			} else {
				try[i] = titleWords(s)
			}
		}
		if loc, err := time.LoadLocation(strings.Join(try, "/")); err == nil {
			return loc, nil
		}
	}
	for _, dir := range []string{os.Getenv("ZONEINFO"), "/usr/share/zoneinfo", "/usr/share/lib/zoneinfo", "/usr/lib/locale/TZ"} {
		if dir == "" {
			continue
		}
		found := ""
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if rel, _ := filepath.Rel(dir, p); !d.IsDir() && strings.EqualFold(rel, name) {
				found = rel
				return filepath.SkipAll
			}
			return nil
		})
		if found != "" {
			if loc, err := time.LoadLocation(found); err == nil {
				return loc, nil
			}
		}
	}
	return nil, bad
}

// ZoneName is the canonical name of a zone given in any letter case.
func ZoneName(name string) (string, error) {
	loc, err := LoadZone(name)
	if err != nil {
		return "", err
	}
	return loc.String(), nil
}

// titleWords capitalises each word of a zone segment ("new_york" →
// "New_York", "port-au-prince" → "Port-Au-Prince").
func titleWords(s string) string {
	b := []byte(strings.ToLower(s))
	for i := range b {
		if (i == 0 || b[i-1] == '_' || b[i-1] == '-') && b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}
