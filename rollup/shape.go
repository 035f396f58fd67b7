package rollup

import (
	"reflect"
	"sort"

	"github.com/fleetmeter/fleetmeter/storage"
)

// rowCount is the number of rows of a report's row slice.
func rowCount(rows any) int {
	if rows == nil {
		return 0
	}
	v := reflect.ValueOf(rows)
	if v.Kind() != reflect.Slice {
		return 0
	}
	return v.Len()
}

// coverage is the first and last day with usage in src, whatever a query
// asked for: an empty report says where the data is. A zone recut reads
// the source's own days first (no pass over the ledger for a report that
// found nothing), then cuts only the days around each end in the zone: a
// day of one zone is within a day of the same day in another.
func coverage(src Source) (*Coverage, error) {
	own := src
	z, recut := src.(zoned)
	if recut {
		own = z.CutSource
	}
	first, last, err := dayBounds(own, MinDay, MaxDay)
	if err != nil || first > last {
		return &Coverage{}, err
	}
	if recut {
		f, _, err := dayBounds(z, first-1, first+1)
		if err != nil {
			return nil, err
		}
		_, l, err := dayBounds(z, last-1, last+1)
		if err != nil {
			return nil, err
		}
		// The usage of the source's first day falls on a zone's day
		// within one of it, so both cuts find some.
		if f <= first+1 {
			first = f
		}
		if l >= last-1 {
			last = l
		}
	}
	return &Coverage{FirstDay: storage.DayString(first), LastDay: storage.DayString(last)}, nil
}

// dayBounds is the first and last day with usage in src between from and
// to (first > last: none).
func dayBounds(src Source, from, to int32) (first, last int32, err error) {
	rows, err := dimRows(src, storage.DimModel, from, to)
	if err != nil {
		return 0, 0, err
	}
	first, last = MaxDay, MinDay
	for _, r := range rows {
		first, last = min(first, r.Period), max(last, r.Period)
	}
	return first, last, nil
}

// shaped applies q's Top and Order to rep's rows; rep's own slice is not
// changed (it may be a cached result). Totals keep covering every row.
func shaped(rep Report, q Query) Report {
	n := rowCount(rep.Rows)
	if n == 0 || (q.Top == 0 && q.Order == "") {
		return rep
	}
	v := reflect.ValueOf(rep.Rows)
	rows := reflect.MakeSlice(v.Type(), n, n)
	reflect.Copy(rows, v)
	sums := func(i int) Sums { return rows.Index(i).FieldByName("Sums").Interface().(Sums) }
	if q.Top > 0 && q.Top < n {
		sort.SliceStable(rows.Interface(), func(i, j int) bool { return byCost(sums(i), sums(j)) < 0 })
		rows = rows.Slice(0, q.Top)
		rep.Top = &Top{Rows: q.Top, Of: n}
	}
	key, series := orderKey(rep.Kind)
	desc := !series
	if q.Order != "" {
		desc = q.Order == "desc"
	}
	out := rows.Interface()
	sort.SliceStable(out, func(i, j int) bool {
		a, b := key(rows.Index(i)), key(rows.Index(j))
		if desc {
			return a.after(b)
		}
		return b.after(a)
	})
	rep.Rows = out
	return rep
}

// sortKey orders rows: by text (dates), by an instant, or by cost.
type sortKey struct {
	text string
	at   int64
	sums Sums
	cost bool
}

func (a sortKey) after(b sortKey) bool {
	if a.cost {
		return byCost(a.sums, b.sums) < 0
	}
	if a.at != b.at {
		return a.at > b.at
	}
	return a.text > b.text
}

// orderKey is the key a kind's rows are ordered by, and whether the kind
// is a series (oldest first by default).
func orderKey(kind string) (func(reflect.Value) sortKey, bool) {
	switch kind {
	case "daily", "weekly", "monthly":
		field := map[string]string{"daily": "Date", "weekly": "WeekStart", "monthly": "Month"}[kind]
		return func(v reflect.Value) sortKey { return sortKey{text: v.FieldByName(field).String()} }, true
	case "session":
		return func(v reflect.Value) sortKey {
			r := v.Interface().(SessionRow)
			return sortKey{at: r.lastTS, text: r.LastActivity}
		}, false
	}
	return func(v reflect.Value) sortKey {
		return sortKey{cost: true, sums: v.FieldByName("Sums").Interface().(Sums)}
	}, false
}
