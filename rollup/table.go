package rollup

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/fleetmeter/fleetmeter/storage"
)

// WriteTable prints a report for people: one line per row, then totals and
// what was skipped.
func WriteTable(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var head []string
	var lines [][]string
	sums := func(s Sums) []string {
		return []string{
			count(s.Messages), count(s.InputTokens), count(s.OutputTokens), count(s.CacheReadTokens),
			count(s.CacheWriteTokens), count(s.TotalTokens), fmt.Sprintf("$%.4f", s.CostUSD), count(s.UnpricedTokens),
		}
	}
	sumHead := []string{"Calls", "Input", "Output", "Cache read", "Cache write", "Total tokens", "Cost", "Unpriced tok"}
	switch rows := r.Rows.(type) {
	case []DailyRow:
		head = append([]string{"Date"}, sumHead...)
		for _, x := range rows {
			lines = append(lines, append([]string{x.Date}, sums(x.Sums)...))
		}
	case []WeeklyRow:
		head = append(append([]string{"Week"}, sumHead...), "vs prev week")
		for _, x := range rows {
			change := "–"
			if x.CostChangePct != nil {
				change = fmt.Sprintf("%+.1f%%", *x.CostChangePct)
			}
			lines = append(lines, append(append([]string{x.WeekStart}, sums(x.Sums)...), change))
		}
	case []MonthlyRow:
		head = append([]string{"Month"}, sumHead...)
		for _, x := range rows {
			lines = append(lines, append([]string{x.Month}, sums(x.Sums)...))
		}
	case []SessionRow:
		head = append([]string{"Last activity", "Agent", "Session"}, sumHead...)
		for _, x := range rows {
			name := x.SessionKey
			if name == "" {
				name = x.SessionID
			}
			lines = append(lines, append([]string{x.LastActivity, Clean(x.Agent), Clean(name)}, sums(x.Sums)...))
		}
	case []AgentRow:
		head = append([]string{"Agent", "Source"}, sumHead...)
		for _, x := range rows {
			lines = append(lines, append([]string{Clean(x.Agent), x.Source}, sums(x.Sums)...))
		}
	case []UserRow:
		head = append([]string{"User", "Label"}, sumHead...)
		for _, x := range rows {
			user := Clean(x.User)
			if user == "" {
				user = "(no human)"
			}
			lines = append(lines, append([]string{user, Clean(x.UserLabel)}, sums(x.Sums)...))
		}
	case []ModelRow:
		head = append([]string{"Provider", "Model"}, sumHead...)
		for _, x := range rows {
			lines = append(lines, append([]string{Clean(x.Provider), Clean(x.Model)}, sums(x.Sums)...))
		}
	default:
		return fmt.Errorf("no table layout for %T", r.Rows)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, l := range lines {
		fmt.Fprintln(tw, strings.Join(l, "\t")+"\t")
	}
	total := make([]string, len(head))
	total[0] = "Total"
	copy(total[len(head)-len(sumHead)-boolInt(r.Kind == "weekly"):], sums(r.Totals))
	fmt.Fprintln(tw, strings.Join(total, "\t")+"\t")
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeSkips(w, r.Skipped, r.Corrected)
}

// writeSkips prints every skip reason and correction that counted
// anything, so none of them goes unseen (too_old and unsupported included).
func writeSkips(w io.Writer, s storage.Skips, c storage.Corrections) error {
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
	if _, err := fmt.Fprintf(w, "\nSkipped: %s\n", strings.Join(parts, ", ")); err != nil {
		return err
	}
	var fixed []string
	if c.ImplausibleCost != 0 {
		fixed = append(fixed, count(c.ImplausibleCost)+" implausible transcript costs repriced")
	}
	if c.CacheInInput != 0 {
		fixed = append(fixed, count(c.CacheInInput)+" cached tokens counted inside input")
	}
	if len(fixed) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "Corrected: %s\n", strings.Join(fixed, ", "))
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
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
