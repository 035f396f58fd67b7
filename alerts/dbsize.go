package alerts

import "fmt"

// dbSize: the database file against its size cap (db_max_mb): fires at
// threshold percent of it (default 80), before the cap stops ingest;
// resolves 5 points under. Without a cap it never fires.
func (r *round) dbSize(ru *rule) ([]Observation, Figures, error) {
	get := r.e.d.Pipeline.DBSize
	if get == nil {
		return nil, Figures{Unit: "percent", Summary: "The database size is not wired in."}, nil
	}
	size, limit := get()
	mb := float64(size) / (1 << 20)
	if limit <= 0 {
		return nil, Figures{Value: mb, Unit: "MiB", Summary: fmt.Sprintf("The database is %.0f MiB; no size cap is set (db_max_mb).", mb)}, nil
	}
	pct := 100 * float64(size) / float64(limit)
	f := Figures{Value: pct, Threshold: ru.Threshold, Unit: "percent",
		Summary: fmt.Sprintf("The database is %.0f MiB, %.0f%% of its %.0f MiB cap.", mb, pct, float64(limit)/(1<<20))}
	if pct >= ru.Threshold {
		f.Summary += " At the cap ingest stops: raise db_max_mb, shorten [retention], or run fleetmeter compact."
	}
	return []Observation{{Firing: pct >= ru.Threshold, Clear: pct < ru.Threshold-5, Figures: f}}, f, nil
}
