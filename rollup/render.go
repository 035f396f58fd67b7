package rollup

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/rivo/uniseg"
)

// Every table fleetmeter prints for people goes through Table.Render: text
// columns left, numbers right, headers in sentence case, a rule under the
// header and above the totals, cells aligned by display width, and a
// compact layout on a narrow terminal: the least useful columns are hidden
// first, then long names are cut with "…" (never inside a character), and
// the notes are wrapped, so no line is wider than the terminal while a
// column can still give. Widths are those of grapheme clusters as
// terminals draw them (rivo/uniseg: CJK, an emoji, an emoji with its
// presentation selector, a flag take two columns, a combining accent
// none); counting code points instead misaligns every line after such a
// name.

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
	// HideLast drops the column only when hiding the Hide ones and cutting
	// the shrinkable ones to minShrunk was not enough (the figures a
	// compact layout keeps longest: input and output beside the cost).
	HideLast bool
	// Shrink lets a narrow terminal cut the column's text with "…".
	Shrink bool
	// KeepEnd cuts a shrunk cell at its start ("…:direct:42"): for keys
	// that share a prefix and differ at the end (session keys).
	KeepEnd bool
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

// minShrunk is the narrowest a shrinkable column gets while a column can
// still be hidden or shrunk elsewhere; then down to its header.
const minShrunk = 8

// textWidth is the display width of s in a terminal.
func textWidth(s string) int { return uniseg.StringWidth(s) }

// truncate cuts s to at most w columns with "…" (at the end, or at the
// start with keepEnd), between grapheme clusters.
func truncate(s string, w int, keepEnd bool) string {
	if textWidth(s) <= w {
		return s
	}
	var clusters []string
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		clusters = append(clusters, g.Str())
	}
	if keepEnd {
		slices.Reverse(clusters)
	}
	var kept []string
	used := 1 // the "…"
	for _, c := range clusters {
		if used+textWidth(c) > w {
			break
		}
		kept = append(kept, c)
		used += textWidth(c)
	}
	if keepEnd {
		slices.Reverse(kept)
		return "…" + strings.Join(kept, "")
	}
	return strings.Join(kept, "") + "…"
}

// wrap breaks a note into lines of at most width columns at spaces (a
// word wider than that keeps its own line).
func wrap(s string, width int) []string {
	if width <= 0 || textWidth(s) <= width {
		return []string{s}
	}
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = word
		case textWidth(line)+1+textWidth(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	return append(lines, line)
}

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
		widths[i] = textWidth(c.Head)
		for _, r := range append(rows, total) {
			if r == nil {
				continue
			}
			for _, line := range r[i] {
				widths[i] = max(widths[i], textWidth(line))
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
		s = truncate(s, widths[i], t.Columns[i].KeepEnd)
		fill := strings.Repeat(" ", max(widths[i]-textWidth(s), 0))
		if t.Columns[i].Right {
			return fill + s
		}
		return s + fill
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
		for _, l := range wrap(Clean(n), width) {
			b.WriteString(l + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fit makes the table fit width, each step only while it does not: it
// hides the Hide columns (highest first, the rightmost of a rank first),
// cuts the shrinkable ones to minShrunk, hides the HideLast ones
// (rightmost first), then cuts the shrinkable ones to their headers. It
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
	hide := func(rank func(c Column) int) {
		for total() > width {
			pick := -1
			for i := len(t.Columns) - 1; i >= 0; i-- {
				if shown[i] && rank(t.Columns[i]) > 0 && (pick < 0 || rank(t.Columns[i]) > rank(t.Columns[pick])) {
					pick = i
				}
			}
			if pick < 0 {
				return
			}
			shown[pick] = false
		}
	}
	// Shrink the widest shrinkable column first, down to least.
	shrink := func(least func(c Column) int) {
		for over := total() - width; over > 0; over = total() - width {
			pick := -1
			for i, c := range t.Columns {
				if shown[i] && c.Shrink && widths[i] > least(c) && (pick < 0 || widths[i] > widths[pick]) {
					pick = i
				}
			}
			if pick < 0 {
				return
			}
			widths[pick] = max(least(t.Columns[pick]), widths[pick]-over)
		}
	}
	hide(func(c Column) int { return c.Hide })
	shrink(func(c Column) int { return max(minShrunk, textWidth(c.Head)) })
	hide(func(c Column) int {
		if c.HideLast {
			return 1
		}
		return 0
	})
	shrink(func(c Column) int { return max(textWidth(c.Head), 2) })
	var hidden []string
	for i, c := range t.Columns {
		if !shown[i] {
			hidden = append(hidden, strings.ToLower(c.Head))
		}
	}
	return hidden
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
