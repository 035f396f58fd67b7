package rollup

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s\nwant:\n%s", name, got, want)
	}
}

// threeDays stores samples over three days and returns the DB.
func threeDays(t *testing.T) *storage.DB {
	t.Helper()
	db := openTestDB(t)
	r := rand.New(rand.NewPCG(11, 12))
	sh := shape{memTotal: 8 * gib, cpu: uniform(10, 60), memPct: uniform(20, 30), swapFrac: 0.01,
		diskUsed: func(days float64) uint64 { return uint64((40 + days) * gib) }}
	for at := histStart; at.Before(histStart.Add(3 * 24 * time.Hour)); at = at.Add(10 * time.Minute) {
		if err := db.PutHostSample(sh.sample(r, at)); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func TestReport(t *testing.T) {
	db := threeDays(t)
	from := storage.DayNumber(histStart.UnixMilli(), time.UTC)
	rep, err := LoadHostReport(db, from, from+9)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Host) != 3 || rep.Host[0].Date != "2026-04-01" || rep.Host[2].Date != "2026-04-03" {
		t.Fatalf("rows %+v", rep.Host)
	}
	var sum int64
	for _, r := range rep.Host {
		sum += r.Samples
		if r.Samples != 144 || r.CPUP95Pct < r.CPUAvgPct || r.CPUMaxPct < r.CPUP95Pct || r.GatewayUpPct != 100 {
			t.Errorf("day %s: %+v", r.Date, r)
		}
	}
	if rep.Totals.Samples != sum || rep.Totals.Date != "" || rep.Totals.SessionsMax != 10 {
		t.Errorf("totals %+v", rep.Totals)
	}
	var text bytes.Buffer
	for _, width := range []int{0, 80} {
		text.Reset()
		if err := WriteHostTable(&text, rep, TextOptions{Width: width, Query: Query{Since: from, Until: from + 9}}); err != nil {
			t.Fatal(err)
		}
		golden(t, fmt.Sprintf("report-host-%d.txt", width), text.Bytes())
	}

	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"host": [`, `"totals": {`, `"date": "2026-04-01"`, `"cpu_p95_pct"`, `"mem_used_p95_pct"`, `"sessions_max"`, `"disk_data_used_pct"`} {
		if !bytes.Contains(js, []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
	var back HostReport
	if err := json.Unmarshal(js, &back); err != nil || back.Totals != rep.Totals {
		t.Errorf("JSON round trip: %v", err)
	}

	var empty bytes.Buffer
	WriteHostTable(&empty, BuildHostReport(nil), TextOptions{Query: Query{Since: MinDay, Until: MaxDay}})
	if !strings.Contains(empty.String(), "No host samples in this range: only `fleetmeter serve` samples the host") {
		t.Errorf("empty report: %q", empty.String())
	}
}

func TestAdviceText(t *testing.T) {
	rows, _ := history(shape{memTotal: 16 * gib, cpu: uniform(15, 35), memPct: uniform(78, 80), swapFrac: 0.3,
		diskUsed: func(days float64) uint64 { return uint64((20 + 5*days) * gib) }}, 7*24*time.Hour, 5)
	a := Advise(rows, "m6i.xlarge", DefaultThresholds())
	var text bytes.Buffer
	if err := WriteAdvice(&text, a, 0); err != nil {
		t.Fatal(err)
	}
	golden(t, "advice.txt", text.Bytes())

	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"verdict":"investigate"`, `"suggested":"r6i.xlarge"`, `"disk_data_days_to_full":`, `"mem_per_session_bytes":`, `"findings":[`} {
		if !bytes.Contains(js, []byte(key)) {
			t.Errorf("JSON lacks %s:\n%s", key, js)
		}
	}
}
