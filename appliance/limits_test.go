package appliance

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/storage"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestRepeatedWarningsAtMostEvery30s(t *testing.T) {
	var buf bytes.Buffer
	clock := &fakeClock{time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)}
	log := slog.New(newLimitedHandler(slog.NewTextHandler(&buf, nil), logRepeatEvery, clock.now)).With("component", "ingest")
	for range 61 { // a minute of the same failure every second
		log.Warn("cannot list agents", "root", "/home/ana/.openclaw", "err", "permission denied", "next_attempt", clock.t.Add(time.Minute))
		log.Info("step done") // info is never held back
		clock.t = clock.t.Add(time.Second)
	}
	log.Warn("cannot list agents", "root", "/home/bob/.openclaw", "err", "permission denied") // another root: its own line
	log.Error("ingest step failed", "err", "disk full")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var warns []string
	infos := 0
	for _, l := range lines {
		switch {
		case strings.Contains(l, "level=INFO"):
			infos++
		default:
			warns = append(warns, l)
		}
	}
	if infos != 61 {
		t.Errorf("%d info lines, want 61", infos)
	}
	// t=0, t=30 (29 held back), t=60 (29 held back), bob, the error.
	if len(warns) != 5 {
		t.Fatalf("%d warning lines, want 5:\n%s", len(warns), strings.Join(warns, "\n"))
	}
	if !strings.Contains(warns[1], "repeated=29") || !strings.Contains(warns[2], "repeated=29") || strings.Contains(warns[0], "repeated") {
		t.Errorf("held-back counts not reported:\n%s", strings.Join(warns, "\n"))
	}
	if !strings.Contains(warns[3], "/home/bob") || !strings.Contains(warns[4], "disk full") {
		t.Errorf("distinct messages held back:\n%s", strings.Join(warns, "\n"))
	}
}

// A real per-poll warning: an OpenClaw dir whose agents/ cannot be listed
// warns on every poll; through the daemon's logger it is written once per
// 30 s however often ingest polls.
func TestPerPollWarningBounded(t *testing.T) {
	oc := t.TempDir()
	os.WriteFile(filepath.Join(oc, "agents"), []byte("not a dir"), 0o644) // listing fails every poll
	db, err := storage.Open(filepath.Join(t.TempDir(), storage.FileName), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var buf bytes.Buffer
	clock := &fakeClock{time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)}
	log := slog.New(newLimitedHandler(slog.NewTextHandler(&buf, nil), logRepeatEvery, clock.now))
	in := ingest.New(ingest.Config{OpenClawDirs: []string{oc}, Logger: log.With("component", "ingest"), Pricer: ingest.TranscriptCost{}}, db)
	for range 30 { // 5 minutes of polls every 10 s
		in.Step(context.Background())
		clock.t = clock.t.Add(10 * time.Second)
	}
	n := strings.Count(buf.String(), "cannot list agents")
	if n == 0 {
		t.Fatalf("the failure was never logged:\n%s", buf.String())
	}
	if n > 10 {
		t.Errorf("%d lines in 5 minutes, want at most 10 (one per 30 s):\n%s", n, buf.String())
	}
}

// At the cap ingest writes nothing and loses nothing: with room again,
// the same step takes every call.
func TestDBSizeCapStopsIngestWithoutLoss(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), storage.FileName), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := ingest.Config{OpenClawDirs: []string{"../ingest/testdata/openclaw/traps"}, Pricer: ingest.TranscriptCost{}}
	full := cappedLedger{DB: db, max: fileSize(db.Path())}
	_, err = ingest.New(cfg, full).Step(context.Background())
	if !errors.Is(err, errDBFull) || !strings.Contains(err.Error(), "raise db_max_mb") {
		t.Fatalf("at the cap: %v, want errDBFull saying what to do", err)
	}
	if st, _ := db.Stats(); st.LedgerRecords != 0 {
		t.Fatalf("%d records written past the cap", st.LedgerRecords)
	}
	res, err := ingest.New(cfg, cappedLedger{DB: db, max: 1 << 40}).Step(context.Background())
	if err != nil || res.Added == 0 {
		t.Fatalf("with room: added %d, %v", res.Added, err)
	}
	if st, _ := db.Stats(); st.LedgerRecords != res.Added {
		t.Errorf("ledger %d, step added %d", st.LedgerRecords, res.Added)
	}
	if code, _, stderr := cli(t, map[string]string{"FLEETMETER_DB_MAX_MB": "-1"}, "config"); code != 2 || !strings.Contains(stderr, "FLEETMETER_DB_MAX_MB -1 is negative") {
		t.Errorf("negative cap: exit %d %q", code, stderr)
	}
}
