package rollup

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/fleetmeter/fleetmeter/storage"
)

// TextOptions say how a report is printed for people.
type TextOptions struct {
	// Width is the terminal's width in columns (0: no limit).
	Width int
	// Query is what was asked: its range and filter name the report in
	// its title.
	Query Query
	// Transcripts says the report was read straight from transcripts:
	// skips were counted in this read, not since the database was made.
	Transcripts bool
}

// reportTitles name each kind of report.
var reportTitles = map[string]string{
	"daily": "Daily usage", "weekly": "Weekly usage (ISO weeks)", "monthly": "Monthly usage",
	"session": "Sessions", "agent": "Usage by agent", "user": "Usage by user", "model": "Usage by model",
}

// Title is a report's first line: what, which days, which zone, which
// filter ("Daily usage · 2026-11-01 to 2026-11-07 · Europe/Berlin").
func Title(kind string, q Query, tz string) string {
	parts := []string{reportTitles[kind], RangeText(q.Since, q.Until)}
	if kind == HostKind {
		parts[0] = "Host by day"
	}
	if tz != "" {
		parts = append(parts, tz)
	}
	if f := q.Filter.String(); f != "" {
		parts = append(parts, f)
	}
	return strings.Join(parts, " · ")
}

// RangeText says which days a range covers.
func RangeText(since, until int32) string {
	switch {
	case since == MinDay && until == MaxDay:
		return "all days"
	case since == MinDay:
		return "until " + storage.DayString(until)
	case until == MaxDay:
		return "since " + storage.DayString(since)
	case since == until:
		return storage.DayString(since)
	}
	return storage.DayString(since) + " to " + storage.DayString(until)
}

// WriteReport prints a usage report for people: a title, one line per row
// (the models of a day one per line), the totals, then what the totals
// leave out and what was skipped. An empty report says so and where the
// data is instead of printing a zero row.
func WriteReport(w io.Writer, r Report, o TextOptions) error {
	title := Title(r.Kind, o.Query, r.TZ)
	skips := skipLines(r.Skipped, r.Corrected, o.Transcripts)
	if rowCount(r.Rows) == 0 {
		_, err := fmt.Fprintf(w, "%s\n\n%s\n\n%s\n", title, emptyText(r, o.Query), strings.Join(skips, "\n"))
		return err
	}
	t, err := reportTable(r)
	if err != nil {
		return err
	}
	t.Title = title
	if r.Top != nil {
		t.Notes = append(t.Notes, fmt.Sprintf("The %d rows of highest cost of %d; the total covers all %d.", r.Top.Rows, r.Top.Of, r.Top.Of))
	}
	if r.Kind == "session" {
		t.Notes = append(t.Notes, "Sessions whose last call falls in the range, each with its whole totals (calls before the range included).")
	}
	if u := r.Totals.UnpricedTokens; u > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("The cost leaves out %s tokens of %s no price is known for: `fleetmeter prices` lists their models and how to price them.",
			count(u), plural(r.Totals.UnpricedMessages, "call")))
	}
	t.Notes = append(t.Notes, skips...)
	return t.Render(w, o.Width)
}

// emptyText says that a report found nothing, and where the data is.
func emptyText(r Report, q Query) string {
	what := "No usage"
	if f := q.Filter.String(); f != "" {
		what += " for " + f
	}
	switch {
	case q.Since == MinDay && q.Until == MaxDay:
		what += " recorded"
	case q.Since == q.Until:
		what += " on " + storage.DayString(q.Since)
	case q.Since == MinDay:
		what += " until " + storage.DayString(q.Until)
	case q.Until == MaxDay:
		what += " since " + storage.DayString(q.Since)
	default:
		what += " between " + storage.DayString(q.Since) + " and " + storage.DayString(q.Until)
	}
	c := r.Coverage
	switch {
	case c == nil:
		return what + "."
	case c.FirstDay == "":
		return what + "; the data holds no usage yet."
	case c.FirstDay == c.LastDay:
		return fmt.Sprintf("%s; the data covers %s.", what, c.FirstDay)
	}
	return fmt.Sprintf("%s; the data covers %s to %s.", what, c.FirstDay, c.LastDay)
}

// sumColumns are the usage figures every report shows, in a narrow
// terminal's order of giving them up (ccusage's compact layout keeps
// input, output and cost).
func sumColumns(unpriced bool) []Column {
	cols := []Column{
		{Head: "Calls", Right: true, Hide: 3},
		{Head: "Input", Right: true, HideLast: true},
		{Head: "Output", Right: true, HideLast: true},
		{Head: "Cache read", Right: true, Hide: 5},
		{Head: "Cache write", Right: true, Hide: 5},
		{Head: "Total tokens", Right: true, Hide: 4},
		{Head: "Cost", Right: true},
	}
	if unpriced {
		cols = append(cols, Column{Head: "Unpriced tokens", Right: true, Hide: 2})
	}
	return cols
}

func sumCells(s Sums, unpriced bool) []string {
	cost := USD(s.CostUSD)
	if s.Messages > 0 && s.UnpricedMessages == s.Messages {
		cost = NoValue // nothing in it could be priced: not a $0.00
	}
	out := []string{count(s.Messages), count(s.InputTokens), count(s.OutputTokens), count(s.CacheReadTokens),
		count(s.CacheWriteTokens), count(s.TotalTokens), cost}
	if unpriced {
		out = append(out, count(s.UnpricedTokens))
	}
	return out
}

// modelList is a Models cell: one model a line, without its provider.
func modelList(models []string) string {
	out := make([]string, len(models))
	for i, m := range models {
		if _, name, ok := strings.Cut(m, "/"); ok && name != "" {
			m = name
		}
		out[i] = m
	}
	return Lines(out)
}

// reportTable lays a usage report out as a Table.
func reportTable(r Report) (Table, error) {
	unpriced := r.Totals.UnpricedTokens > 0
	var lead []Column
	var rows [][]string
	models := Column{Head: "Models", Hide: 1, Shrink: true, Lines: true}
	add := func(cells []string, s Sums) { rows = append(rows, append(cells, sumCells(s, unpriced)...)) }
	var tail []Column
	switch rs := r.Rows.(type) {
	case []DailyRow:
		lead = []Column{{Head: "Date"}, models}
		for _, x := range rs {
			add([]string{x.Date, modelList(x.Models)}, x.Sums)
		}
	case []WeeklyRow:
		lead = []Column{{Head: "Week"}, models}
		tail = []Column{{Head: "Vs week before", Right: true, Hide: 2}}
		for _, x := range rs {
			change := NoValue
			if x.CostChangePct != nil {
				change = fmt.Sprintf("%+.1f%%", *x.CostChangePct)
			}
			add([]string{x.WeekStart, modelList(x.Models)}, x.Sums)
			rows[len(rows)-1] = append(rows[len(rows)-1], change)
		}
	case []MonthlyRow:
		lead = []Column{{Head: "Month"}, models}
		for _, x := range rs {
			add([]string{x.Month, modelList(x.Models)}, x.Sums)
		}
	case []SessionRow:
		lead = []Column{{Head: "Last activity"}, {Head: "Agent", Shrink: true}, {Head: "Session", Shrink: true, KeepEnd: true}, {Head: "Models", Hide: 2, Shrink: true, Lines: true}}
		for _, x := range rs {
			name := x.SessionKey
			if name == "" {
				name = x.SessionID
			}
			last := x.LastActivity
			if t, err := time.Parse(time.RFC3339, last); err == nil {
				last = t.Format("2006-01-02 15:04")
			}
			add([]string{last, x.Agent, name, modelList(x.Models)}, x.Sums)
		}
	case []AgentRow:
		lead = []Column{{Head: "Agent", Shrink: true}, {Head: "Source", Hide: 2}}
		for _, x := range rs {
			add([]string{x.Agent, x.Source}, x.Sums)
		}
	case []UserRow:
		lead = []Column{{Head: "User", Shrink: true}, {Head: "Label", Shrink: true, Hide: 2}}
		for _, x := range rs {
			user := x.User
			if user == "" {
				user = "(no human)"
			}
			add([]string{user, x.UserLabel}, x.Sums)
		}
	case []ModelRow:
		lead = []Column{{Head: "Provider", Hide: 2}, {Head: "Model", Shrink: true}}
		for _, x := range rs {
			add([]string{x.Provider, x.Model}, x.Sums)
		}
	default:
		return Table{}, fmt.Errorf("no table layout for %T", r.Rows)
	}
	cols := append(append(lead, sumColumns(unpriced)...), tail...)
	total := make([]string, len(lead))
	total[0] = "Total"
	total = append(total, sumCells(r.Totals, unpriced)...)
	if len(tail) > 0 {
		total = append(total, "")
	}
	return Table{Columns: cols, Rows: rows, Total: total}, nil
}

// skipLines say what was skipped and corrected: every reason that
// counted anything, so none goes unseen (too_old and unsupported
// included), and since when they were counted.
func skipLines(s storage.Skips, c storage.Corrections, transcripts bool) []string {
	var parts []string
	for _, p := range []struct {
		n    int64
		what string
	}{
		{s.Duplicate, "duplicate"}, {s.NotModelCall, "not model calls"}, {s.ZeroUsage, "zero usage"},
		{s.Malformed, "malformed"}, {s.PartialLine, "partial lines"}, {s.OversizeLine, "over-long lines"},
		{s.UnreadableFile, "unreadable files"}, {s.Unsupported, "unsupported stores or lines"},
		{s.TooOld, "too old"}, {s.UnrecognizedUsage, "unrecognized usage (see the log)"},
	} {
		if p.n != 0 {
			parts = append(parts, count(p.n)+" "+p.what)
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing")
	}
	since := "since install"
	if transcripts {
		since = "in this read"
	}
	out := []string{fmt.Sprintf("Skipped %s: %s", since, strings.Join(parts, ", "))}
	var fixed []string
	if c.ImplausibleCost != 0 {
		fixed = append(fixed, count(c.ImplausibleCost)+" implausible transcript costs repriced")
	}
	if c.CacheInInput != 0 {
		fixed = append(fixed, count(c.CacheInInput)+" cached tokens counted inside input")
	}
	if len(fixed) > 0 {
		out = append(out, fmt.Sprintf("Corrected %s: %s", since, strings.Join(fixed, ", ")))
	}
	return out
}

// plural is "1 call", "2 calls".
func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return count(n) + " " + what + "s"
}

// Thousands formats an integer with thousands separators: 1,234,567.
func Thousands(n int64) string { return count(n) }

// count formats an integer with thousands separators.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// CleanLines is Clean for each line of a text of several (an error that
// joins several): the lines stay lines, nothing else passes.
func CleanLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Clean(l)
	}
	return strings.Join(lines, "\n")
}

// Clean makes untrusted text (agent, user and session names) safe for a
// terminal: control characters, escape sequences and bidi overrides become
// visible escapes, and tabs cannot break the table.
func Clean(s string) string {
	ok := true
	for _, r := range s {
		if !unicode.IsGraphic(r) || unicode.Is(unicode.Bidi_Control, r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}
