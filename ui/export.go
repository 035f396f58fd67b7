package ui

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/gin-gonic/gin"
)

// Exports: an API answer as a download, in the rows and columns the page
// shows. format=csv writes CSV; format=json the JSON answer as a file.

// sumsHeader are the CSV columns of rollup.Sums, in its JSON names.
var sumsHeader = []string{"messages", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens",
	"cost_usd", "input_cost_usd", "output_cost_usd", "cache_read_cost_usd", "cache_write_cost_usd", "unpriced_messages", "unpriced_tokens"}

func sumsCells(s rollup.Sums) []string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return []string{i(s.Messages), i(s.InputTokens), i(s.OutputTokens), i(s.CacheReadTokens), i(s.CacheWriteTokens), i(s.TotalTokens),
		f(s.CostUSD), f(s.InputCostUSD), f(s.OutputCostUSD), f(s.CacheReadCostUSD), f(s.CacheWriteCost), i(s.UnpricedMessages), i(s.UnpricedTokens)}
}

// cell makes an untrusted name safe for a spreadsheet: a value that starts
// like a formula gets a leading quote (OWASP's CSV injection advice).
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// export answers v as the API does, or as a download when format asks:
// csv (header and rows from table) or json.
func export(c *gin.Context, name string, v any, table func() ([]string, [][]string)) {
	switch c.Query("format") {
	case "":
		c.JSON(http.StatusOK, v)
	case "json":
		c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.json"`, name))
		c.JSON(http.StatusOK, v)
	case "csv":
		header, rows := table()
		c.Header("Content-Type", "text/csv; charset=utf-8")
		c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.csv"`, name))
		c.Status(http.StatusOK)
		w := csv.NewWriter(c.Writer)
		w.Write(header)
		for _, r := range rows {
			w.Write(r)
		}
		w.Flush()
	default:
		c.JSON(http.StatusBadRequest, gin.H{"error": fmt.Sprintf("format %q: want csv or json", c.Query("format"))})
	}
}

// fileName names a download after what it holds and its range.
func fileName(what string, r rollup.Span) string {
	return fmt.Sprintf("fleetmeter-%s-%s-%s", what, r.From, r.To)
}

func usageTable(u rollup.Usage) ([]string, [][]string) {
	header := append([]string{u.GroupBy, "label", "source", "team"}, sumsHeader...)
	var rows [][]string
	for _, r := range u.Rows {
		rows = append(rows, append([]string{cell(r.Key), cell(r.Label), r.Source, cell(r.Team)}, sumsCells(r.Sums)...))
	}
	return header, rows
}

func leaderTable(l rollup.Leaderboard) ([]string, [][]string) {
	header := append([]string{l.By, "label", "share_pct", "previous_cost_usd", "cost_change_usd", "cost_change_pct"}, sumsHeader...)
	var rows [][]string
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, r := range l.Rows {
		change := ""
		if r.CostChangePct != nil {
			change = f(*r.CostChangePct)
		}
		rows = append(rows, append([]string{cell(r.Key), cell(r.Label), f(r.SharePct), f(r.PreviousCostUSD), f(r.CostChangeUSD), change}, sumsCells(r.Sums)...))
	}
	return header, rows
}

func sessionsTable(l rollup.SessionList) ([]string, [][]string) {
	header := append([]string{"source", "session_id", "session_key", "agent", "channel", "first_activity", "last_activity", "models"}, sumsHeader...)
	var rows [][]string
	for _, s := range l.Sessions {
		rows = append(rows, append([]string{s.Source, cell(s.SessionID), cell(s.SessionKey), cell(s.Agent), cell(s.Channel),
			s.FirstActivity, s.LastActivity, cell(strings.Join(s.Models, " "))}, sumsCells(s.Sums)...))
	}
	return header, rows
}

func callsTable(d rollup.SessionDetail) ([]string, [][]string) {
	header := append([]string{"ts", "user", "user_label", "provider", "model", "cost_source"}, sumsHeader...)
	var rows [][]string
	for _, r := range d.Calls {
		rows = append(rows, append([]string{r.TS, cell(r.User), cell(r.UserLabel), cell(r.Provider), cell(r.Model), r.CostSource}, sumsCells(r.Sums)...))
	}
	return header, rows
}
