package rollup

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// tableWidths are the two terminals every table is checked at: a wide
// one and an 80-column one (the compact layout).
var tableWidths = []int{160, 80}

func sums(calls, in, out int64, cost float64, unpricedCalls, unpricedTokens int64) Sums {
	return Sums{Messages: calls, InputTokens: in, OutputTokens: out, CacheReadTokens: in * 10, CacheWriteTokens: in / 2,
		TotalTokens: in*11 + out + in/2, CostUSD: cost, UnpricedMessages: unpricedCalls, UnpricedTokens: unpricedTokens}
}

// sampleReports are one report of every kind, with wide characters
// (CJK, emoji) in names and an unpriced row.
func sampleReports() []Report {
	pct := 12.5
	skipped := storage.Skips{Duplicate: 4, Malformed: 1, TooOld: 2, Unsupported: 1}
	unpriced := sums(3, 900, 200, 0, 3, 1100)
	total := sums(1234, 1_536_000, 420_000, 1536.53, 3, 1100)
	return []Report{
		{Kind: "daily", TZ: "Europe/Berlin", Skipped: skipped, Totals: total, Rows: []DailyRow{
			{Date: "2026-11-01", Sums: sums(1000, 1_500_000, 400_000, 1536.53, 0, 0), Models: []string{"anthropic/claude-sonnet-4-6", "openai/gpt-5"}},
			{Date: "2026-11-02", Sums: unpriced, Models: []string{"mystery/模型-🚀"}},
		}},
		{Kind: "weekly", TZ: "UTC", Totals: total, Rows: []WeeklyRow{
			{WeekStart: "2026-10-26", Sums: sums(1000, 1_500_000, 400_000, 1536.53, 0, 0), Models: []string{"anthropic/claude-sonnet-4-6"}, CostChangePct: &pct},
			{WeekStart: "2026-11-02", Sums: unpriced, Models: []string{"mystery/模型-🚀"}},
		}},
		{Kind: "monthly", TZ: "UTC", Totals: total, Rows: []MonthlyRow{
			{Month: "2026-11", Sums: total, Models: []string{"anthropic/claude-sonnet-4-6", "mystery/模型-🚀"}},
		}},
		{Kind: "session", TZ: "UTC", Totals: total, Rows: []SessionRow{
			{SessionID: "s1", SessionKey: "agent:客服:telegram:direct:42", Agent: "客服", LastActivity: "2026-11-02T09:30:00Z", Sums: unpriced, Models: []string{"mystery/模型-🚀"}},
			{SessionID: "s2", Agent: "🤖 ops", LastActivity: "2026-11-01T23:59:00Z", Sums: sums(1000, 1_500_000, 400_000, 1536.53, 0, 0), Models: []string{"anthropic/claude-sonnet-4-6"}},
		}},
		{Kind: "agent", TZ: "UTC", Totals: total, Rows: []AgentRow{
			{Agent: "客服机器人", Source: "openclaw", Sums: sums(1000, 1_500_000, 400_000, 1536.53, 0, 0)},
			{Agent: "🤖 ops\x1b[31m", Source: "claude", Sums: unpriced},
		}},
		{Kind: "user", TZ: "UTC", Totals: total, Rows: []UserRow{
			{User: "telegram:42", UserLabel: "Zoë 🎉", Sums: sums(1000, 1_500_000, 400_000, 1536.53, 0, 0)},
			{User: "", Sums: unpriced},
		}},
		{Kind: "model", TZ: "UTC", Totals: total, Rows: []ModelRow{
			{Provider: "anthropic", Model: "claude-sonnet-4-6", Sums: sums(1000, 1_500_000, 400_000, 1536.53, 0, 0)},
			{Provider: "mystery", Model: "模型-🚀", Sums: unpriced},
		}},
	}
}

// Every usage table, at a wide and a narrow terminal, against its golden
// file: columns line up by display width, money and tokens carry
// separators, an unpriced row shows "–" and the total says what it
// leaves out.
func TestReportTables(t *testing.T) {
	q := Query{Since: storage.DayOfDate(2026, 11, 1), Until: storage.DayOfDate(2026, 11, 7)}
	for _, rep := range sampleReports() {
		for _, width := range tableWidths {
			var b bytes.Buffer
			if err := WriteReport(&b, rep, TextOptions{Width: width, Query: q}); err != nil {
				t.Fatal(err)
			}
			golden(t, fmt.Sprintf("table/%s-%d.txt", rep.Kind, width), b.Bytes())
			checkAligned(t, rep.Kind, b.String(), width)
		}
	}
}

// checkAligned checks what the golden files show: every line of the table
// block fits the width, and the table's lines are all as wide as its rule.
func checkAligned(t *testing.T, name, text string, width int) {
	t.Helper()
	lines := strings.Split(text, "\n")
	rule := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "─") {
			rule = i
			break
		}
	}
	if rule < 1 {
		t.Fatalf("%s: no rule under a header:\n%s", name, text)
	}
	ruleWidth := textWidth(lines[rule])
	if width > 0 && ruleWidth > width {
		t.Errorf("%s at %d columns: the table is %d wide", name, width, ruleWidth)
	}
	// Right-aligned numbers: every row ends at the rule's width (a
	// cell's further lines hold only its own column; a total may leave
	// the last column empty).
	for _, l := range lines[rule-1:] {
		if l == "" {
			break
		}
		if !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "Total") && textWidth(l) != ruleWidth {
			t.Errorf("%s at %d: line %q is %d wide, the rule %d", name, width, l, textWidth(l), ruleWidth)
		}
	}
	if strings.Contains(text, "\x1b") {
		t.Errorf("%s: an escape sequence reached the terminal", name)
	}
}

func TestEmptyReportSaysWhereTheDataIs(t *testing.T) {
	q := Query{Since: storage.DayOfDate(2026, 11, 1), Until: storage.DayOfDate(2026, 11, 7), Filter: Filter{Agent: "main"}}
	rep := Report{Kind: "daily", TZ: "UTC", Rows: []DailyRow{}, Coverage: &Coverage{FirstDay: "2026-04-01", LastDay: "2026-04-10"}}
	var b bytes.Buffer
	if err := WriteReport(&b, rep, TextOptions{Query: q}); err != nil {
		t.Fatal(err)
	}
	want := "Daily usage · 2026-11-01 to 2026-11-07 · UTC · agent main\n\nNo usage for agent main between 2026-11-01 and 2026-11-07; the data covers 2026-04-01 to 2026-04-10.\n\nSkipped since install: nothing\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	rep.Coverage = &Coverage{}
	WriteReport(&b, rep, TextOptions{Query: Query{Since: MinDay, Until: MaxDay}, Transcripts: true})
	if !strings.Contains(b.String(), "No usage recorded; the data holds no usage yet.") || !strings.Contains(b.String(), "Skipped in this read: nothing") {
		t.Errorf("no data at all:\n%s", b.String())
	}
}

func TestMoneyAndCounts(t *testing.T) {
	for v, want := range map[float64]string{0: "$0.00", 1536.527: "$1,536.53", 0.004: "$0.0040", 1234567.891: "$1,234,567.89", -3.2: "-$3.20",
		0.125: "$0.13", 0.123: "$0.12", 0.999: "$1.00", 0.00004: "<$0.0001", -0.0042: "-$0.0042", 1234.5: "$1,234.50", 0.01: "$0.01"} {
		if got := USD(v); got != want {
			t.Errorf("USD(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{3: "$3.00", 0.3: "$0.30", 0.075: "$0.075", 1500: "$1,500.00"} {
		if got := Rate(v); got != want {
			t.Errorf("Rate(%v) = %q, want %q", v, got, want)
		}
	}
	if got := Count(1234567); got != "1,234,567" {
		t.Errorf("Count: %q", got)
	}
}

func TestSkipLinesShowEveryReasonThatCounted(t *testing.T) {
	got := skipLines(storage.Skips{TooOld: 3, Unsupported: 2, Malformed: 1}, storage.Corrections{}, false)
	want := "Skipped since install: 1 malformed, 2 unsupported stores or lines, 3 too old"
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Durations read as people write them and as the settings read them back;
// elapsed times at the precision that matters.
func TestDurationForms(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0s", 168 * time.Hour: "168h", 150 * time.Minute: "2h30m", 90 * time.Second: "1m30s",
		10 * time.Second: "10s", 500 * time.Millisecond: "500ms", time.Hour + 30*time.Second: "1h30s", 1500 * time.Millisecond: "1.5s", -5 * time.Minute: "-5m"} {
		got := Duration(d)
		if got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != d {
			t.Errorf("%q reads back as %v, %v", got, back, err)
		}
	}
	for d, want := range map[time.Duration]string{-time.Second: "0s", 42*time.Second + 400*time.Millisecond: "42s", 3*time.Minute + 12*time.Second: "3m",
		150*time.Minute + 20*time.Second: "2h30m", 74*time.Hour + 10*time.Minute: "74h"} {
		if got := Ago(d); got != want {
			t.Errorf("Ago(%v) = %q, want %q", d, got, want)
		}
	}
}

// On a narrow terminal the session table and its notes fit the width
// (hiding, then cutting, then hiding input and output, then cutting to the
// headers), its lines stay aligned by the width terminals draw (an emoji
// with its presentation selector and a flag take two columns), and a
// session key keeps its distinguishing end.
func TestCompactSessionsFit(t *testing.T) {
	rep := sampleReports()[3]
	rows := append([]SessionRow(nil), rep.Rows.([]SessionRow)...)
	rows = append(rows,
		SessionRow{SessionID: "s3", SessionKey: "agent:main:telegram:direct:987654321", Agent: "❤️ support", LastActivity: "2026-11-01T10:00:00Z", Sums: sums(1, 10, 10, 0.125, 0, 0)},
		SessionRow{SessionID: "s4", SessionKey: "agent:main:telegram:direct:123456789", Agent: "🇩🇪 sales", LastActivity: "2026-11-01T09:00:00Z", Sums: sums(1, 10, 10, 0.0042, 0, 0)})
	rep.Rows = rows
	if textWidth("❤️") != 2 || textWidth("🇩🇪") != 2 || textWidth("e\u0301") != 1 {
		t.Fatal("the widths terminals draw are not the ones measured")
	}
	for _, width := range []int{120, 80, 60, 50, 45} { // 43: the least the dates, two names cut to their headers and the cost take
		var b bytes.Buffer
		if err := WriteReport(&b, rep, TextOptions{Width: width, Query: Query{Since: MinDay, Until: MaxDay}}); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		checkAligned(t, "session", out, width)
		for _, l := range strings.Split(out, "\n") {
			if textWidth(l) > width {
				t.Errorf("at %d columns a line is %d wide: %q", width, textWidth(l), l)
			}
		}
		if width >= 60 && (!strings.Contains(out, "7654321") || !strings.Contains(out, "3456789")) {
			t.Errorf("at %d columns the session keys lost their ends:\n%s", width, out)
		}
		if !strings.Contains(out, "$0.13") || !strings.Contains(out, "$0.0042") {
			t.Errorf("at %d columns the cost is gone:\n%s", width, out)
		}
	}
}
