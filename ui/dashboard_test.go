package ui

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// The dashboard's API over a real listener and a seeded database: what
// the pages show must add up with itself and with the reports.

// seededServer serves the pages and their API over a generated fleet of
// 30 days ending now, loopback needing no login.
func seededServer(t *testing.T) (base string, o corpus.FleetOptions) {
	t.Helper()
	d, o := seededDeps(t)
	return serveBoth(t, d).base, o
}

// seededDeps are the handler's parts over a generated fleet.
func seededDeps(t *testing.T) (Deps, corpus.FleetOptions) {
	t.Helper()
	end := time.Now().UTC().Truncate(time.Hour)
	return seededDepsAt(t, end, end.Add(-time.Minute), 8000)
}

// seededDepsAt are the handler's parts over a generated fleet of 30 days
// and calls calls ending at end, seen at now.
func seededDepsAt(t *testing.T, end, at time.Time, calls int) (Deps, corpus.FleetOptions) {
	t.Helper()
	o := corpus.DefaultFleetOptions()
	o.End, o.Days, o.Calls, o.Agents, o.Users, o.Models = end, 30, calls, 8, 24, 5
	db, err := storage.Open(filepath.Join(t.TempDir(), storage.FileName), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := corpus.GenerateFleet(o, 5000, func(r []storage.Usage) error { _, err := db.Apply(&storage.Batch{Records: r}); return err }); err != nil {
		t.Fatal(err)
	}
	h := corpus.DefaultHostOptions()
	h.End, h.Days, h.Recent = o.End, o.Days, 2*time.Hour
	if err := corpus.HostHistory(h, db.PutHostSamples); err != nil {
		t.Fatal(err)
	}
	reg := []storage.AgentInfo{}
	for _, a := range corpus.FleetAgents(o) {
		reg = append(reg, storage.AgentInfo{ID: a.ID, Name: a.Name, Team: a.Team, Owner: a.Owner})
	}
	now := func() time.Time { return at }
	reader := rollup.NewReader(db, rollup.ReaderConfig{Host: db, Now: now})
	dash := rollup.NewDashboard(db, rollup.DashboardConfig{Registry: func() []storage.AgentInfo { return reg }, Now: now, Advice: reader.OwnAdvice})
	return Deps{Reports: reader, Dashboard: dash}, o
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	code, _, body := get(t, u, nil)
	if code != http.StatusOK {
		t.Fatalf("%s: %d %s", u, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
}

// near compares amounts in USD summed in different orders.
func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func sameSums(t *testing.T, what string, got, want rollup.Sums) {
	t.Helper()
	if got.Messages != want.Messages || got.TotalTokens != want.TotalTokens || got.InputTokens != want.InputTokens ||
		got.CacheReadTokens != want.CacheReadTokens || got.UnpricedTokens != want.UnpricedTokens ||
		!near(got.CostUSD, want.CostUSD) || !near(got.InputCostUSD, want.InputCostUSD) || !near(got.CacheWriteCost, want.CacheWriteCost) {
		t.Errorf("%s: %+v, want %+v", what, got, want)
	}
}

func sumRows(rows []rollup.UsageRow) rollup.Sums {
	var s rollup.Sums
	for _, r := range rows {
		s.Messages += r.Messages
		s.TotalTokens += r.TotalTokens
		s.InputTokens += r.InputTokens
		s.CacheReadTokens += r.CacheReadTokens
		s.UnpricedTokens += r.UnpricedTokens
		s.CostUSD += r.CostUSD
		s.InputCostUSD += r.InputCostUSD
		s.CacheWriteCost += r.CacheWriteCost
	}
	return s
}

func TestUsageAgreesWithReportsAndItself(t *testing.T) {
	base, o := seededServer(t)
	for _, r := range rollup.RangeNames() {
		var u rollup.Usage
		getJSON(t, base+"/api/usage?range="+r, &u)
		var rep struct{ Totals rollup.Sums }
		getJSON(t, base+"/api/report/daily?since="+u.Range.From+"&until="+u.Range.To, &rep)
		sameSums(t, "range "+r+" against report daily", u.Totals, rep.Totals)
		if u.Range.TZ != "UTC" || u.Range.Name != r || len(u.Rows) != u.Range.Days {
			t.Errorf("range %s: %+v with %d day rows", r, u.Range, len(u.Rows))
		}
		sameSums(t, "range "+r+" day rows", sumRows(u.Rows), u.Totals)
		for _, g := range []string{"week", "agent", "user", "model", "team"} {
			var by rollup.Usage
			getJSON(t, base+"/api/usage?range="+r+"&group_by="+g, &by)
			sameSums(t, "range "+r+" by "+g, sumRows(by.Rows), u.Totals)
		}
	}
	// Hours add up to their days (cost and calls: the hour index does not
	// split reasoning tokens or tool cost, which this fleet has none of).
	var days, hours rollup.Usage
	getJSON(t, base+"/api/usage?range=7d", &days)
	getJSON(t, base+"/api/usage?range=7d&group_by=hour", &hours)
	if len(hours.Rows) != 7*24 {
		t.Errorf("%d hour rows for 7 days", len(hours.Rows))
	}
	sameSums(t, "7d by hour", sumRows(hours.Rows), days.Totals)

	// Filters: an agent's figures are the same whichever way they are cut.
	agent := corpus.FleetAgents(o)[1]
	var byAgent rollup.Usage
	getJSON(t, base+"/api/usage?range=30d&group_by=agent", &byAgent)
	var row rollup.UsageRow
	for _, r := range byAgent.Rows {
		if r.Key == agent.ID {
			row = r
		}
	}
	if row.Label != agent.Name || row.Team != agent.Team || row.Source != "openclaw" {
		t.Errorf("agent row %+v, want the registry's name and team", row)
	}
	for _, g := range []string{"day", "user", "model", "hour"} {
		rng := "range=30d"
		if g == "hour" {
			rng = "range=7d"
		}
		var f rollup.Usage
		getJSON(t, base+"/api/usage?"+rng+"&group_by="+g+"&agent="+url.QueryEscape(agent.ID), &f)
		if g == "hour" {
			var d rollup.Usage
			getJSON(t, base+"/api/usage?range=7d&agent="+url.QueryEscape(agent.ID), &d)
			sameSums(t, "agent by hour", sumRows(f.Rows), d.Totals)
			continue
		}
		sameSums(t, "agent filter by "+g, f.Totals, row.Sums)
		sameSums(t, "agent filter rows by "+g, sumRows(f.Rows), row.Sums)
	}
	// A team is its agents.
	var team, teams rollup.Usage
	getJSON(t, base+"/api/usage?range=30d&team="+url.QueryEscape(agent.Team), &team)
	getJSON(t, base+"/api/usage?range=30d&group_by=team", &teams)
	for _, r := range teams.Rows {
		if r.Key == agent.Team {
			sameSums(t, "team filter", team.Totals, r.Sums)
		}
	}
	// A user and a model filter meet in the rows of both.
	var users rollup.Usage
	getJSON(t, base+"/api/usage?range=30d&group_by=user&agent="+url.QueryEscape(agent.ID), &users)
	user := users.Rows[0]
	var um rollup.Usage
	getJSON(t, base+"/api/usage?range=30d&group_by=model&user="+url.QueryEscape(user.Key)+"&agent="+url.QueryEscape(agent.ID), &um)
	sameSums(t, "user of the agent by model", um.Totals, user.Sums)
}

func TestLeaderboardsAndDrillDown(t *testing.T) {
	base, _ := seededServer(t)
	var lb rollup.Leaderboard
	getJSON(t, base+"/api/leaderboard?by=agent&range=7d&limit=3", &lb)
	var cur, prev rollup.Usage
	getJSON(t, base+"/api/usage?range=7d&group_by=agent", &cur)
	getJSON(t, base+"/api/usage?from="+lb.Previous.From+"&to="+lb.Previous.To+"&group_by=agent", &prev)
	if len(lb.Rows) != 3 || lb.More != len(cur.Rows)-3 || lb.Previous.Days != 7 {
		t.Fatalf("leaderboard %d rows, %d more (of %d), previous %+v", len(lb.Rows), lb.More, len(cur.Rows), lb.Previous)
	}
	for i, r := range lb.Rows {
		if r.Key != cur.Rows[i].Key || !near(r.CostUSD, cur.Rows[i].CostUSD) {
			t.Errorf("leaderboard row %d %s %v, usage row %s %v", i, r.Key, r.CostUSD, cur.Rows[i].Key, cur.Rows[i].CostUSD)
		}
		for _, p := range prev.Rows {
			if p.Key == r.Key && (!near(p.CostUSD, r.PreviousCostUSD) || r.CostChangePct == nil ||
				math.Abs(*r.CostChangePct-(r.CostUSD-p.CostUSD)/p.CostUSD*100) > 1e-6) {
				t.Errorf("%s: previous %v change %v, the period before cost %v", r.Key, r.PreviousCostUSD, r.CostChangePct, p.CostUSD)
			}
		}
	}
	// Agent → its sessions → one session's calls.
	top := lb.Rows[0].Key
	var sl rollup.SessionList
	getJSON(t, base+"/api/sessions?range=7d&limit=5&agent="+url.QueryEscape(top), &sl)
	if len(sl.Sessions) != 5 || sl.Page.Total < 5 {
		t.Fatalf("sessions of %s: %d (of %d)", top, len(sl.Sessions), sl.Page.Total)
	}
	for i, s := range sl.Sessions {
		if s.Agent != top || (i > 0 && s.LastActivity > sl.Sessions[i-1].LastActivity) {
			t.Errorf("session %d: %+v", i, s)
		}
	}
	var all rollup.SessionList
	getJSON(t, base+"/api/sessions?range=7d&limit=1000&agent="+url.QueryEscape(top), &all)
	var calls int64
	for _, s := range all.Sessions {
		calls += s.Messages
	}
	if all.Page.Total != len(all.Sessions) || calls < lb.Rows[0].Messages {
		t.Errorf("%d sessions with %d calls; the agent made %d calls in the range", len(all.Sessions), calls, lb.Rows[0].Messages)
	}
	s := sl.Sessions[0]
	var d rollup.SessionDetail
	getJSON(t, base+"/api/session?source="+s.Source+"&id="+url.QueryEscape(s.SessionID), &d)
	if int64(len(d.Calls)) != s.Messages {
		t.Fatalf("session %s: %d calls, its row says %d", s.SessionID, len(d.Calls), s.Messages)
	}
	var cs rollup.Sums
	for _, c := range d.Calls {
		cs.Messages++
		cs.TotalTokens += c.TotalTokens
		cs.InputTokens += c.InputTokens
		cs.CacheReadTokens += c.CacheReadTokens
		cs.UnpricedTokens += c.UnpricedTokens
		cs.CostUSD += c.CostUSD
		cs.InputCostUSD += c.InputCostUSD
		cs.CacheWriteCost += c.CacheWriteCost
	}
	sameSums(t, "a session's calls", cs, s.Sums)
	// Paging the calls: two at a time, back to the first.
	var paged []rollup.CallRow
	before := ""
	for range 100 {
		var p rollup.SessionDetail
		getJSON(t, base+"/api/session?limit=2&source="+s.Source+"&id="+url.QueryEscape(s.SessionID)+before, &p)
		paged = append(paged, p.Calls...)
		if p.Before == nil {
			break
		}
		before = fmt.Sprintf("&before=%d", *p.Before)
	}
	if len(paged) != len(d.Calls) {
		t.Errorf("paged: %d calls, whole: %d", len(paged), len(d.Calls))
	}
}

func TestBadQueriesSayWhy(t *testing.T) {
	base, _ := seededServer(t)
	for _, c := range []struct{ path, want string }{
		{"/api/usage?range=13d", "range \"13d\""},
		{"/api/usage?group_by=colour", "group_by \"colour\""},
		{"/api/usage?from=2026-13-01", "want YYYY-MM-DD"},
		{"/api/usage?from=2026-05-02&to=2026-05-01", "is after"},
		{"/api/usage?from=2020-01-01&to=2026-01-01", "at most 400 days"},
		{"/api/usage?range=14d&group_by=hour", "at most 7 days"},
		{"/api/usage?range=30d&team=Nope", "not in the agent registry"},
		{"/api/usage?model=nomodel", "want provider/model"},
		{"/api/leaderboard?by=day", "ranks agent, user, model or team"},
		{"/api/leaderboard?limit=ten", `limit "ten": want a whole number from 1 to 1000`},
		{"/api/leaderboard?limit=0", `limit "0": want a whole number from 1 to 1000`},
		{"/api/sessions?limit=0", `limit "0"`},
		{"/api/sessions?limit=1001", `limit "1001"`},
		{"/api/sessions?offset=-1", `offset "-1"`},
		{"/api/session?source=openclaw&id=x&limit=0", `limit "0"`},
		{"/api/session?source=openclaw&id=x&before=-3", "before -3"},
		{"/api/sessions?user=x", "not user"},
		{"/api/session?source=openclaw", "named by source and id"},
		{"/api/host?range=1y", "range \"1y\""},
		{"/api/usage?format=xml", "want csv or json"},
	} {
		code, _, body := get(t, base+c.path, nil)
		var e struct{ Error string }
		json.Unmarshal([]byte(body), &e)
		if code != http.StatusBadRequest || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s: %d %s, want 400 saying %q", c.path, code, body, c.want)
		}
	}
	if code, _, body := get(t, base+"/api/session?source=openclaw&id=nope", nil); code != http.StatusNotFound {
		t.Errorf("unknown session: %d %s", code, body)
	}
	// A page says it too, as a page.
	if code, _, body := get(t, base+"/usage?range=13d", nil); code != http.StatusBadRequest || !strings.Contains(body, "range &#34;13d&#34;") {
		t.Errorf("usage page with a bad range: %d", code)
	}
}

func TestExportsAreTheRows(t *testing.T) {
	base, _ := seededServer(t)
	var lb rollup.Leaderboard
	getJSON(t, base+"/api/leaderboard?by=model&range=30d", &lb)
	code, h, body := get(t, base+"/api/leaderboard?by=model&range=30d&format=csv", nil)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Disposition"), `attachment; filename="fleetmeter-top-model-`) {
		t.Fatalf("csv: %d %v", code, h)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != len(lb.Rows)+1 || rows[0][0] != "model" || rows[0][12] != "cost_usd" {
		t.Fatalf("csv %v %q", err, rows[0])
	}
	for i, r := range lb.Rows {
		if rows[i+1][0] != r.Key || rows[i+1][12] != fmt.Sprint(r.CostUSD) {
			t.Errorf("csv row %d %q, json %s %v", i, rows[i+1][:13], r.Key, r.CostUSD)
		}
	}
	if code, h, _ := get(t, base+"/api/usage?range=7d&format=json", nil); code != 200 || !strings.Contains(h.Get("Content-Disposition"), ".json") {
		t.Errorf("json export: %d %v", code, h)
	}
	if got := cell("=HYPERLINK(\"x\")"); got != "'=HYPERLINK(\"x\")" {
		t.Errorf("a formula-like name exports as %q", got)
	}
}

// Every page renders, with hashed assets the browser may keep forever.
func TestPagesAndAssets(t *testing.T) {
	base, _ := seededServer(t)
	assetRef := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`)
	seen := map[string]bool{}
	for _, p := range []string{"/", "/usage?range=7d", "/usage?range=30d&agent=sales-01", "/usage?range=today", "/host", "/host?range=90d", "/agents", "/sources", "/alerts", "/sync", "/audit"} {
		code, h, body := get(t, base+p, nil)
		if code != http.StatusOK || !strings.Contains(h.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", p, code, body)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		for _, m := range assetRef.FindAllStringSubmatch(body, -1) {
			seen[m[1]] = true
		}
	}
	if len(seen) < 5 {
		t.Fatalf("pages reference %d static files", len(seen))
	}
	for u := range seen {
		code, h, body := get(t, base+u, map[string]string{"Accept-Encoding": "gzip"})
		if code != 200 || h.Get("Cache-Control") != "public, max-age=31536000, immutable" || (strings.HasSuffix(u, ".js") && h.Get("Content-Encoding") != "gzip") {
			t.Errorf("%s: %d %v (%d bytes)", u, code, h, len(body))
		}
	}
	as, err := loadAssets()
	if err != nil {
		t.Fatal(err)
	}
	if n := as.compressedSize(); n > 150<<10 {
		t.Errorf("the served assets are %d KB compressed, over the 150 KB budget", n>>10)
	} else {
		t.Logf("served assets: %.1f KB compressed", float64(n)/1024)
	}
	if code, _, _ := get(t, base+"/static/app.0000000000.js", nil); code != http.StatusNotFound {
		t.Errorf("an unknown static file: %d", code)
	}
}

// The templates and scripts hold no inline script, style or event handler
// (the CSP would refuse them), and the scripts never write HTML.
func TestNoInlineCode(t *testing.T) {
	inline := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=`)
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(p, "vendor/") {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".html") && inline.Match(b) {
			t.Errorf("%s has inline code: %q", p, inline.Find(b))
		}
		if strings.HasSuffix(p, ".js") {
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
				if strings.Contains(string(b), bad) {
					t.Errorf("%s uses %s", p, bad)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The pages sit behind the login like the API: a browser without a
// session is sent to it.
func TestPagesNeedLogin(t *testing.T) {
	d, _ := seededDeps(t)
	d.Logins = NewLogins(nil)
	s := serveBoth(t, d)
	code, h, _ := get(t, s.base+"/usage", map[string]string{"Accept": "text/html"})
	if code != http.StatusSeeOther || h.Get("Location") != "/login" {
		t.Errorf("/usage without a session: %d → %s", code, h.Get("Location"))
	}
	for _, p := range []string{"/api/usage", "/api/overview", "/static/app.js"} {
		if code, _, _ := get(t, s.base+p, nil); code != http.StatusUnauthorized {
			t.Errorf("%s without a session: %d", p, code)
		}
	}
}

// A range older than the session index's window (100 days) is answered
// from the database: the same sessions, in the same order and with the
// same totals, as the session report's, and paged the same.
func TestOldSessionsAreTheReports(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Hour)
	d, _ := seededDepsAt(t, now.AddDate(0, 0, -140), now, 2000)
	base := serveBoth(t, d).base
	from, to := storage.DayString(storage.DayNumber(now.AddDate(0, 0, -160).UnixMilli(), time.UTC)),
		storage.DayString(storage.DayNumber(now.AddDate(0, 0, -150).UnixMilli(), time.UTC))
	var rep struct {
		Rows []rollup.SessionRow `json:"sessions"`
	}
	getJSON(t, base+"/api/report/session?limit=1000&since="+from+"&until="+to, &rep)
	if len(rep.Rows) < 20 {
		t.Fatalf("the report lists %d sessions from %s to %s; the fleet should have more", len(rep.Rows), from, to)
	}
	var got []rollup.SessionRow
	for offset := 0; offset < 1000; offset += 7 {
		var sl rollup.SessionList
		getJSON(t, fmt.Sprintf("%s/api/sessions?from=%s&to=%s&limit=7&offset=%d", base, from, to, offset), &sl)
		if sl.Page.Total != len(rep.Rows) {
			t.Fatalf("offset %d: total %d, the report lists %d", offset, sl.Page.Total, len(rep.Rows))
		}
		got = append(got, sl.Sessions...)
		if len(sl.Sessions) < 7 {
			break
		}
	}
	if len(got) != len(rep.Rows) {
		t.Fatalf("%d sessions paged, the report lists %d", len(got), len(rep.Rows))
	}
	for i, r := range rep.Rows {
		if got[i].SessionID != r.SessionID || got[i].LastActivity != r.LastActivity {
			t.Fatalf("session %d: %s at %s, the report's %s at %s", i, got[i].SessionID, got[i].LastActivity, r.SessionID, r.LastActivity)
		}
		sameSums(t, "session "+r.SessionID, got[i].Sums, r.Sums)
	}
	// An agent filter keeps that agent's sessions.
	agent := rep.Rows[0].Agent
	var sl rollup.SessionList
	getJSON(t, base+"/api/sessions?limit=1000&from="+from+"&to="+to+"&agent="+url.QueryEscape(agent), &sl)
	want := 0
	for _, r := range rep.Rows {
		if r.Agent == agent {
			want++
		}
	}
	if sl.Page.Total != want || len(sl.Sessions) != want {
		t.Errorf("agent %s: %d sessions (total %d), the report has %d", agent, len(sl.Sessions), sl.Page.Total, want)
	}
}

// With a model asked for, a session's figures in the sessions list are
// that model's, as the session report counts them (--model), both in the
// days the session index holds and before them.
func TestSessionsOfAModelAreTheReports(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Hour)
	day := func(daysAgo int) string {
		return storage.DayString(storage.DayNumber(now.AddDate(0, 0, -daysAgo).UnixMilli(), time.UTC))
	}
	for _, c := range []struct {
		endsAgo  int // the fleet's 30 days end so many days ago
		from, to string
	}{{140, day(160), day(150)}, {0, day(20), day(0)}} {
		d, _ := seededDepsAt(t, now.AddDate(0, 0, -c.endsAgo), now, 2000)
		base := serveBoth(t, d).base
		from, to := c.from, c.to
		var all struct {
			Rows []rollup.SessionRow `json:"sessions"`
		}
		getJSON(t, base+"/api/report/session?limit=1000&since="+from+"&until="+to, &all)
		model := ""
		for _, row := range all.Rows {
			if len(row.Models) > 1 {
				model = row.Models[0]
				break
			}
		}
		if model == "" {
			t.Fatalf("%s..%s: no session with two models among %d", from, to, len(all.Rows))
		}
		var rep struct {
			Rows []rollup.SessionRow `json:"sessions"`
		}
		getJSON(t, base+"/api/report/session?limit=1000&since="+from+"&until="+to+"&model="+url.QueryEscape(model), &rep)
		var sl rollup.SessionList
		getJSON(t, base+"/api/sessions?limit=1000&from="+from+"&to="+to+"&model="+url.QueryEscape(model), &sl)
		if len(sl.Sessions) != len(rep.Rows) || len(rep.Rows) == 0 {
			t.Fatalf("%s..%s, %s: %d sessions listed, the report has %d", from, to, model, len(sl.Sessions), len(rep.Rows))
		}
		for i, r := range rep.Rows {
			if sl.Sessions[i].SessionID != r.SessionID || !slices.Equal(sl.Sessions[i].Models, []string{model}) {
				t.Fatalf("%s..%s: session %d: %s %v, the report's %s %v", from, to, i, sl.Sessions[i].SessionID, sl.Sessions[i].Models, r.SessionID, r.Models)
			}
			sameSums(t, "session "+r.SessionID+" of "+model, sl.Sessions[i].Sums, r.Sums)
		}
	}
}

// The session page splits its tokens into the same four kinds as the
// Usage page: input, output, cache read and cache write.
func TestSessionPageShowsEveryTokenKind(t *testing.T) {
	base, _ := seededServer(t)
	var sl rollup.SessionList
	getJSON(t, base+"/api/sessions?range=7d&limit=1", &sl)
	s := sl.Sessions[0]
	if s.CacheWriteTokens == 0 {
		t.Fatalf("session %s has no cache writes: pick a fleet that has", s.SessionID)
	}
	code, _, body := get(t, base+"/usage/session?source="+s.Source+"&id="+url.QueryEscape(s.SessionID), nil)
	if code != http.StatusOK {
		t.Fatalf("session page: %d %s", code, body)
	}
	want := fmt.Sprintf("input %s · output %s · cache read %s · cache write %s",
		compact(s.InputTokens), compact(s.OutputTokens), compact(s.CacheReadTokens), compact(s.CacheWriteTokens))
	if !strings.Contains(body, want) {
		t.Errorf("the session page does not say %q", want)
	}
}

// emptyDeps are the handler's parts over a database with nothing in it.
func emptyDeps(t *testing.T) (Deps, *storage.DB) {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), storage.FileName), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reader := rollup.NewReader(db, rollup.ReaderConfig{Host: db})
	return Deps{Reports: reader, Dashboard: rollup.NewDashboard(db, rollup.DashboardConfig{Advice: reader.OwnAdvice})}, db
}

// On an empty install no period is "new": $0 against $0 is no change.
func TestEmptyOverviewShowsNoChange(t *testing.T) {
	d, _ := emptyDeps(t)
	base := serveBoth(t, d).base
	code, _, body := get(t, base+"/", nil)
	if code != http.StatusOK {
		t.Fatalf("overview: %d %s", code, body)
	}
	for _, p := range []string{"yesterday", "last week", "last month"} {
		if strings.Contains(body, ">new</span> vs "+p) || !strings.Contains(body, ">–</span> vs "+p) {
			t.Errorf("the overview's change vs %s is not \"–\" on an empty install", p)
		}
	}
	one := 12.5
	for _, c := range []struct {
		p         *float64
		cur       float64
		text, cls string
	}{{nil, 0, "–", "flat"}, {nil, 0.01, "new", "new"}, {&one, 3, "▲ 12.5 %", "up"}} {
		if got, cls := change(c.p, c.cur), changeClass(c.p, c.cur); got != c.text || cls != c.cls {
			t.Errorf("change(%v, %v) = %q %q, want %q %q", c.p, c.cur, got, cls, c.text, c.cls)
		}
	}
}

// A host sampled for minutes: the advice's reason and its evidence give
// the same figure for the hours sampled.
func TestHostPageSampledHours(t *testing.T) {
	d, db := emptyDeps(t)
	now := time.Now()
	var samples []storage.HostSample
	for at := now.Add(-7 * time.Minute); at.Before(now); at = at.Add(15 * time.Second) {
		samples = append(samples, storage.HostSample{TS: at.UnixMilli(), CPUPct: 20, CPUCount: 2, MemTotal: 8 << 30, MemUsed: 2 << 30})
	}
	if err := db.PutHostSamples(samples); err != nil {
		t.Fatal(err)
	}
	base := serveBoth(t, d).base
	code, _, body := get(t, base+"/host", nil)
	if code != http.StatusOK {
		t.Fatalf("host page: %d %s", code, body)
	}
	reason := regexp.MustCompile(`Only ([0-9.]+) hours of host samples`).FindStringSubmatch(body)
	sampled := regexp.MustCompile(`<dt>Sampled</dt><dd>([0-9.]+) h</dd>`).FindStringSubmatch(body)
	if reason == nil || sampled == nil || reason[1] != sampled[1] || reason[1] == "0" || reason[1] == "0.0" {
		t.Errorf("the host page says %q and %q: want one figure above 0", reason, sampled)
	}
}

// A path that is no page answers a 404 page in the pages' layout, its
// path escaped; the API keeps answering JSON.
func TestUnknownPathIsAPage(t *testing.T) {
	d, _ := emptyDeps(t)
	base := serveBoth(t, d).base
	code, h, body := get(t, base+"/session", nil)
	if code != http.StatusNotFound || !strings.Contains(h.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "no page at /session") || !strings.Contains(body, `<nav aria-label="Pages">`) {
		t.Errorf("/session: %d %s\n%s", code, h.Get("Content-Type"), body)
	}
	if code, _, body = get(t, base+"/x%3Cb%3Ey", nil); code != http.StatusNotFound || strings.Contains(body, "x<b>y") || !strings.Contains(body, "x&lt;b&gt;y") {
		t.Errorf("a path with markup: %d\n%s", code, body)
	}
	for _, p := range []string{"/api/nope", "/api"} {
		if code, h, body := get(t, base+p, nil); code != http.StatusNotFound || !strings.Contains(h.Get("Content-Type"), "application/json") || body != `{"error":"not found"}` {
			t.Errorf("%s: %d %s %s", p, code, h.Get("Content-Type"), body)
		}
	}
}
