package rollup

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// ErrBadQuery marks a query that cannot be answered as asked: an unknown
// report kind, a bad date or zone, a range that ends before it starts.
// The API answers it with 400 and the message; the CLI prints the message.
var ErrBadQuery = errors.New("bad query")

// queryError is a bad query's message, without a prefix: errors.Is(err,
// ErrBadQuery) holds for it.
type queryError string

func (e queryError) Error() string        { return string(e) }
func (e queryError) Is(target error) bool { return target == ErrBadQuery }

func badQuery(format string, a ...any) error { return queryError(fmt.Sprintf(format, a...)) }

// Report kinds and the JSON key their rows go under.
var kinds = map[string]string{
	"daily": "daily", "weekly": "weekly", "monthly": "monthly",
	"session": "sessions", "agent": "agents", "user": "users", "model": "models",
}

// Kinds lists the usage report kinds in a stable order, for help texts.
func Kinds() []string {
	return []string{"daily", "weekly", "monthly", "session", "agent", "user", "model"}
}

// HostKind is the kind of the host report (Reader.HostReport).
const HostKind = "host"

// Query selects a report. Since and Until are inclusive day numbers;
// MinDay/MaxDay leave an end open. TZ is the IANA zone that cuts days;
// empty means the zone of the data (the database's, or the tally's).
type Query struct {
	Kind         string
	Since, Until int32
	TZ           string
	// Limit and Offset page the rows of the session report (most recent
	// first); Limit 0 means every row. Totals cover the whole range.
	Limit, Offset int
	// Filter keeps the calls of one agent, user, model, team or source.
	Filter Filter
	// Top keeps the Top rows of highest cost (0: all); totals still cover
	// every row. Order sorts the rows kept: "asc" or "desc" by the kind's
	// key (the date for series, the cost for leaderboards, the last
	// activity for sessions); "" is the kind's default (series oldest
	// first, the rest highest first).
	Top   int
	Order string
}

// MaxPage is the most session rows one page may ask for.
const MaxPage = 1000

// ParseQuery builds a query from the strings a command line or a URL
// gives: since and until as YYYY-MM-DD or YYYYMMDD (empty: open), tz as an
// IANA zone (empty: the data's; any letter case). Errors are ErrBadQuery.
func ParseQuery(kind, since, until, tz string) (Query, error) {
	return ParseQueryValues(kind, url.Values{"since": {since}, "until": {until}, "tz": {tz}})
}

// ParseQueryValues builds a query from URL parameters: since, until, tz
// (as ParseQuery), agent, user, model, team, source (Filter), top and
// order. Paging (limit, offset) is the caller's. Errors are ErrBadQuery.
func ParseQueryValues(kind string, v url.Values) (Query, error) {
	from, to, err := ParseRange(v.Get("since"), v.Get("until"))
	if err != nil {
		return Query{}, err
	}
	q := Query{Kind: kind, Since: from, Until: to, TZ: v.Get("tz"), Order: v.Get("order"),
		Filter: Filter{Agent: v.Get("agent"), User: v.Get("user"), Model: v.Get("model"), Team: v.Get("team"), Source: v.Get("source")}}
	if q.TZ != "" {
		if q.TZ, err = ZoneName(q.TZ); err != nil {
			return Query{}, badQuery("tz: %v", err)
		}
	}
	if q.Top, err = ParseTop(v.Get("top")); err != nil {
		return Query{}, err
	}
	return q, q.Validate()
}

// ParseTop reads a row limit (?top= or --top): a whole number above 0, or
// "" for every row (0). 0 itself is an error, not "every row": one rule
// for the API and the command line. Errors are ErrBadQuery.
func ParseTop(s string) (int, error) {
	return wholeNumber("top", s, 0, 1, math.MaxInt, "want a whole number above 0")
}

// ParseLimit reads a page size (?limit=): a whole number from 1 to
// MaxPage, def when s is "". 0 is an error, not "every row" (which would
// slip past the cap): one rule with ?top= (ParseTop). Errors are
// ErrBadQuery.
func ParseLimit(s string, def int) (int, error) {
	return wholeNumber("limit", s, def, 1, MaxPage, fmt.Sprintf("want a whole number from 1 to %d", MaxPage))
}

// ParseOffset reads how many rows a page skips (?offset=): a whole
// number, 0 or more; 0 when s is "". Errors are ErrBadQuery.
func ParseOffset(s string) (int, error) {
	return wholeNumber("offset", s, 0, 0, math.MaxInt, "want a whole number, 0 or more")
}

// wholeNumber reads parameter name: def when s is "", else a whole number
// from lo to hi; an error says want.
func wholeNumber(name, s string, def, lo, hi int, want string) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, badQuery("%s %q: %s", name, s, want)
	}
	return n, nil
}

// Values is q as URL parameters (ParseQueryValues reads them back).
func (q Query) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Since != MinDay {
		set("since", storage.DayString(q.Since))
	}
	if q.Until != MaxDay {
		set("until", storage.DayString(q.Until))
	}
	set("tz", q.TZ)
	set("agent", q.Filter.Agent)
	set("user", q.Filter.User)
	set("model", q.Filter.Model)
	set("team", q.Filter.Team)
	set("source", q.Filter.Source)
	set("order", q.Order)
	if q.Top > 0 {
		set("top", strconv.Itoa(q.Top))
	}
	if q.Limit > 0 {
		set("limit", strconv.Itoa(q.Limit))
		set("offset", strconv.Itoa(q.Offset))
	}
	return v
}

// ParseRange turns --since/--until strings (YYYY-MM-DD or YYYYMMDD) into
// inclusive day numbers, MinDay/MaxDay for an empty end. Errors are
// ErrBadQuery.
func ParseRange(since, until string) (from, to int32, err error) {
	from, to = MinDay, MaxDay
	if since != "" {
		if from, err = ParseDate(since, 0, false); err != nil {
			return 0, 0, badQuery("since: %v", err)
		}
	}
	if until != "" {
		if to, err = ParseDate(until, 0, false); err != nil {
			return 0, 0, badQuery("until: %v", err)
		}
	}
	return from, to, nil
}

// DateForms says which dates ParseDate reads, for messages and help.
const DateForms = "YYYY-MM-DD, YYYYMMDD, today, yesterday or Nd (N days ago, e.g. 7d)"

// ParseDate reads a day: YYYY-MM-DD or YYYYMMDD, and with relative set
// also "today", "yesterday" and "Nd" (N days before today, a day number in
// the zone the report is cut in).
func ParseDate(s string, today int32, relative bool) (int32, error) {
	if len(s) == 8 && strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) < 0 {
		s = s[:4] + "-" + s[4:6] + "-" + s[6:]
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return storage.DayOfDate(t.Date()), nil
	}
	if relative {
		switch strings.ToLower(s) {
		case "today":
			return today, nil
		case "yesterday":
			return today - 1, nil
		}
		if n, ok := strings.CutSuffix(strings.ToLower(s), "d"); ok {
			if days, err := strconv.Atoi(n); err == nil && days >= 0 && days < 100_000 {
				return today - int32(days), nil
			}
		}
		return 0, fmt.Errorf("date %q: want %s", s, DateForms)
	}
	return 0, fmt.Errorf("date %q: want YYYY-MM-DD or YYYYMMDD", s)
}

// Validate checks the query on its own: a known kind (a usage kind or
// HostKind), a range that does not end before it starts, a known zone and
// a page within MaxPage. Errors are ErrBadQuery.
func (q Query) Validate() error { return q.validate(q.Kind != HostKind) }

// validate checks q; usage says whether the kind must be a usage kind.
func (q Query) validate(usage bool) error {
	if _, ok := kinds[q.Kind]; usage && !ok {
		return badQuery("unknown report %q (want one of %s)", q.Kind, strings.Join(Kinds(), ", "))
	}
	if !usage && q.Kind != HostKind && q.Kind != "" {
		return badQuery("unknown host report %q", q.Kind)
	}
	if q.Since > q.Until {
		return badQuery("since %s is after until %s", storage.DayString(q.Since), storage.DayString(q.Until))
	}
	if _, err := q.location(time.UTC); err != nil {
		return err
	}
	if q.Limit < 0 || q.Offset < 0 || q.Limit > MaxPage {
		return badQuery("limit must be 0 to %d and offset not negative", MaxPage)
	}
	if q.Top < 0 {
		return badQuery("top %d: want a whole number above 0", q.Top)
	}
	if q.Order != "" && q.Order != "asc" && q.Order != "desc" {
		return badQuery("order %q: want asc or desc", q.Order)
	}
	return q.Filter.validate(q.Kind)
}

// location is the zone the query cuts days in; def when TZ is empty.
func (q Query) location(def *time.Location) (*time.Location, error) {
	if q.TZ == "" {
		return def, nil
	}
	loc, err := LoadZone(q.TZ)
	if err != nil {
		return nil, badQuery("%v", err)
	}
	return loc, nil
}
