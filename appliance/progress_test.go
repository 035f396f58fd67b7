package appliance

import (
	"encoding/json"
	"testing"

	"github.com/fleetmeter/fleetmeter/ingest"
)

// A catch-up is told in bytes when they are known, in files when not (a
// first pass over many files stats none), wherever it is shown: health,
// the doctor (which reads it back from /api/status) and the dashboard.
func TestCatchUpSaysFilesWhenBytesAreUnknown(t *testing.T) {
	for _, tc := range []struct {
		p    ingest.Progress
		want string
		pct  float64
	}{
		{ingest.Progress{Files: 10, FilesDone: 3, Bytes: 4e6, BytesDone: 1.2e6}, "3 of 10 files, 1.2 of 4.0 MB (30%)", 30},
		{ingest.Progress{Files: 10, FilesDone: 4, BytesDone: 1.2e6}, "4 of 10 files (40%), 1.2 MB", 40},
		{ingest.Progress{}, "0 of 0 files (0%), 0.0 MB", 0},
	} {
		if got := catchUp(&tc.p); got != tc.want {
			t.Errorf("catchUp(%+v) = %q, want %q", tc.p, got, tc.want)
		}
		if got := catchUpPct(&tc.p); got != tc.pct {
			t.Errorf("catchUpPct(%+v) = %v, want %v", tc.p, got, tc.pct)
		}
		// The doctor reads the daemon's status back: files done included.
		raw, err := json.Marshal(map[string]any{"ingest": map[string]any{"progress": tc.p}})
		if err != nil {
			t.Fatal(err)
		}
		var st daemonStatus
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		if st.Ingest.Progress == nil || *st.Ingest.Progress != tc.p {
			t.Errorf("the doctor read %+v back as %+v", tc.p, st.Ingest.Progress)
		}
	}
}
