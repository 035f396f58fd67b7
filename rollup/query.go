package rollup

import (
	"errors"
	"fmt"
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
}

// MaxPage is the most session rows one page may ask for.
const MaxPage = 1000

// ParseQuery builds a query from the strings a command line or a URL
// gives: since and until as YYYY-MM-DD (empty: open), tz as an IANA zone
// (empty: the data's). Errors are ErrBadQuery.
func ParseQuery(kind, since, until, tz string) (Query, error) {
	from, to, err := ParseRange(since, until)
	if err != nil {
		return Query{}, err
	}
	q := Query{Kind: kind, Since: from, Until: to, TZ: tz}
	return q, q.Validate()
}

// ParseRange turns --since/--until strings into inclusive day numbers,
// MinDay/MaxDay for an empty end. Errors are ErrBadQuery.
func ParseRange(since, until string) (from, to int32, err error) {
	from, to = MinDay, MaxDay
	if since != "" {
		if from, err = storage.ParseDay(since); err != nil {
			return 0, 0, badQuery("since: %v", err)
		}
	}
	if until != "" {
		if to, err = storage.ParseDay(until); err != nil {
			return 0, 0, badQuery("until: %v", err)
		}
	}
	return from, to, nil
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
	return nil
}

// location is the zone the query cuts days in; def when TZ is empty.
func (q Query) location(def *time.Location) (*time.Location, error) {
	if q.TZ == "" {
		return def, nil
	}
	loc, err := time.LoadLocation(q.TZ)
	if err != nil {
		return nil, badQuery("tz %q is not an IANA zone name (e.g. UTC, Europe/Berlin)", q.TZ)
	}
	return loc, nil
}
