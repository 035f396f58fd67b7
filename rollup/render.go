package rollup

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/mattn/go-runewidth"
)

// Every table fleetmeter prints for people goes through Table.Render: text
// columns left, numbers right, headers in sentence case, a rule under the
// header and above the totals, cells aligned by display width (CJK and
// emoji take two columns: go-runewidth knows the Unicode tables, we do
// not), and a compact layout on a narrow terminal: the least useful
// columns are hidden first, then long names are cut with "…".

// Table is one table for a terminal.
type Table struct {
	// Title is the line above the table (what, which range, which zone).
	Title   string
	Columns []Column
	// Rows are the cells, one string per column. A cell of a Lines column
	// takes a line per "\n" (the models of a day, one per line: each item
	// Cleaned first); in any other cell "\n" is text like any other and is
	// printed escaped, so a name cannot split its row or imitate one.
	Rows [][]string
	// Total is the totals row, under a rule; nil for none.
	Total []string
	// Notes are printed under the table, one per line.
	Notes []string
}

// Column is a table column.
type Column struct {
	Head  string
	Right bool // numbers are right-aligned
	// Hide orders the columns a narrow terminal drops: 0 never, the
	// highest first.
	Hide int
	// Shrink lets a narrow terminal cut the column's text with "…".
	Shrink bool
	// Lines: a cell holds one item a line, joined with "\n" (see Lines).
	Lines bool
}

// Lines joins items into a cell of a Lines column, each Cleaned (a "\n"
// inside an item is escaped, not a new line).
func Lines(items []string) string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = Clean(s)
	}
	return strings.Join(out, "\n")
}

// gap is the space between columns.
const gap = 2

// minShrunk is the narrowest a shrinkable column gets.
const minShrunk = 8

// Render writes the table for a terminal width columns wide (0: no limit,
// as for a pipe). Untrusted text in cells is escaped here (Clean), so a
// name cannot move the cursor, reorder the line or start another.
func (t Table) Render(w io.Writer, width int) error {
	cells := func(row []string) [][]string {
		out := make([][]string, len(t.Columns))
		for i, c := range t.Columns {
			switch {
			case i >= len(row):
			case c.Lines:
				for _, line := range strings.Split(row[i], "\n") {
					out[i] = append(out[i], Clean(line))
				}
			default:
				out[i] = []string{Clean(row[i])}
			}
		}
		return out
	}
	rows := make([][][]string, len(t.Rows))
	for i, r := range t.Rows {
		rows[i] = cells(r)
	}
	var total [][]string
	if t.Total != nil {
		total = cells(t.Total)
	}
	widths := make([]int, len(t.Columns))
	for i, c := range t.Columns {
		widths[i] = runewidth.StringWidth(c.Head)
		for _, r := range append(rows, total) {
			if r == nil {
				continue
			}
			for _, line := range r[i] {
				widths[i] = max(widths[i], runewidth.StringWidth(line))
			}
		}
	}
	shown := make([]bool, len(t.Columns))
	for i := range shown {
		shown[i] = true
	}
	var hidden []string
	if width > 0 {
		hidden = t.fit(widths, shown, width)
	}

	var b strings.Builder
	line := func(parts []string) {
		b.WriteString(strings.TrimRight(strings.Join(parts, strings.Repeat(" ", gap)), " "))
		b.WriteByte('\n')
	}
	pad := func(i int, s string) string {
		s = runewidth.Truncate(s, widths[i], "…")
		if t.Columns[i].Right {
			return runewidth.FillLeft(s, widths[i])
		}
		return runewidth.FillRight(s, widths[i])
	}
	writeRow := func(r [][]string) {
		height := 1
		for i := range r {
			if shown[i] {
				height = max(height, len(r[i]))
			}
		}
		for l := range height {
			var parts []string
			for i := range t.Columns {
				if !shown[i] {
					continue
				}
				s := ""
				if l < len(r[i]) {
					s = r[i][l]
				}
				parts = append(parts, pad(i, s))
			}
			line(parts)
		}
	}
	rule := func() {
		var parts []string
		for i := range t.Columns {
			if shown[i] {
				parts = append(parts, strings.Repeat("─", widths[i]))
			}
		}
		line(parts)
	}
	if t.Title != "" {
		b.WriteString(Clean(t.Title) + "\n\n")
	}
	var head []string
	for i, c := range t.Columns {
		if shown[i] {
			head = append(head, pad(i, c.Head))
		}
	}
	line(head)
	rule()
	for _, r := range rows {
		writeRow(r)
	}
	if total != nil {
		rule()
		writeRow(total)
	}
	notes := t.Notes
	if len(hidden) > 0 {
		notes = append([]string{fmt.Sprintf("Compact layout for a %d-column terminal: %s hidden (a wider terminal, --json or --csv shows them).", width, strings.Join(hidden, ", "))}, notes...)
	}
	if len(notes) > 0 {
		b.WriteByte('\n')
	}
	for _, n := range notes {
		b.WriteString(Clean(n) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fit hides columns (highest Hide first, the rightmost of a rank first)
// and then shrinks the shrinkable ones until the table fits width. It
// returns the heads of the hidden columns, in table order.
func (t Table) fit(widths []int, shown []bool, width int) []string {
	total := func() int {
		n, sum := 0, 0
		for i, w := range widths {
			if shown[i] {
				n++
				sum += w
			}
		}
		return sum + gap*max(n-1, 0)
	}
	for total() > width {
		pick := -1
		for i := len(t.Columns) - 1; i >= 0; i-- {
			if shown[i] && t.Columns[i].Hide > 0 && (pick < 0 || t.Columns[i].Hide > t.Columns[pick].Hide) {
				pick = i
			}
		}
		if pick < 0 {
			break
		}
		shown[pick] = false
	}
	for over := total() - width; over > 0; over = total() - width {
		pick := -1
		for i, c := range t.Columns {
			floor := max(minShrunk, runewidth.StringWidth(c.Head))
			if shown[i] && c.Shrink && widths[i] > floor && (pick < 0 || widths[i] > widths[pick]) {
				pick = i
			}
		}
		if pick < 0 {
			break
		}
		floor := max(minShrunk, runewidth.StringWidth(t.Columns[pick].Head))
		widths[pick] = max(floor, widths[pick]-over)
	}
	var hidden []string
	for i, c := range t.Columns {
		if !shown[i] {
			hidden = append(hidden, strings.ToLower(c.Head))
		}
	}
	return hidden
}

// USD formats money for people: cents with thousands separators
// ("$1,536.53"); an amount above zero that rounds to no cent is "<$0.01".
func USD(v float64) string {
	cents := math.Round(v * 100)
	if cents == 0 && v > 0 {
		return "<$0.01"
	}
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	whole := int64(cents) / 100
	return fmt.Sprintf("%s$%s.%02d", sign, Count(whole), int64(cents)%100)
}

// Rate formats a price (USD per 1M tokens) with the digits it has, at
// least cents: "$3.00", "$0.30", "$0.075".
func Rate(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	whole, frac, _ := strings.Cut(s, ".")
	for len(frac) < 2 {
		frac += "0"
	}
	n, _ := strconv.ParseInt(whole, 10, 64)
	return "$" + Count(n) + "." + frac
}

// Count formats an integer with thousands separators ("2,920").
func Count(n int64) string { return count(n) }

// NoValue stands in a cell for "no such figure" (no price, no trend).
const NoValue = "–"
