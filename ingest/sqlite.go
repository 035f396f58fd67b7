package ingest

import "context"

// pollStores reads OpenClaw's SQLite transcript stores (placeholder until
// the SQLite reader lands).
func (in *Ingester) pollStores(ctx context.Context, res StepResult) (StepResult, error) {
	return res, nil
}
