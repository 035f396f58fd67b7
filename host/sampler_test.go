package host

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// burnEnv makes the test binary spin instead of running tests: the
// CPU-burning child of TestStepSeesCPUBurn.
const burnEnv = "FLEETMETER_TEST_BURN"

func TestMain(m *testing.M) {
	if os.Getenv(burnEnv) == "1" {
		deadline := time.Now().Add(20 * time.Second) // killed long before
		x := 0
		for time.Now().Before(deadline) {
			for i := range 1_000_000 {
				x += i
			}
		}
		os.Exit(x & 0)
	}
	os.Exit(m.Run())
}

func openTestDB(t testing.TB) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "f.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("integrity check: %v", err)
		}
		db.Close()
	})
	return db
}

func newTestSampler(t testing.TB, cfg SamplerConfig) *Sampler {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	s, err := NewSampler(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sessionsFrom(db *storage.DB) ActiveSessionsFunc {
	return func(now time.Time) (int, map[string]int, error) {
		return db.ActiveSessions(now.UnixMilli(), SessionWindow)
	}
}

func checkPlausible(t *testing.T, s storage.HostSample) {
	t.Helper()
	for name, v := range map[string]float64{
		"cpu": s.CPUPct, "user": s.CPUUserPct, "system": s.CPUSystemPct, "iowait": s.CPUIowaitPct, "steal": s.CPUStealPct,
	} {
		if !(v >= 0 && v <= 100) {
			t.Errorf("%s = %v, want 0–100 %%", name, v)
		}
	}
	for name, v := range map[string]float64{
		"swap in": s.SwapInBps, "swap out": s.SwapOutBps, "net in": s.NetInBps, "net out": s.NetOutBps,
		"gateway cpu": s.GatewayCPUPct, "load1": s.Load1, "load per core": s.LoadPerCore,
	} {
		if !(v >= 0) || math.IsInf(v, 0) {
			t.Errorf("%s = %v, want a finite rate ≥ 0", name, v)
		}
	}
	if s.MemTotal == 0 || s.MemUsed+s.MemAvailable != s.MemTotal {
		t.Errorf("memory total %d used %d available %d", s.MemTotal, s.MemUsed, s.MemAvailable)
	}
	if s.RootDisk.Total == 0 || s.RootDisk.Used > s.RootDisk.Total {
		t.Errorf("root disk %+v", s.RootDisk)
	}
	if s.Procs < 1 || s.CPUCount < 1 {
		t.Errorf("processes %d, cpus %d", s.Procs, s.CPUCount)
	}
}

func TestStepPlausible(t *testing.T) {
	db := openTestDB(t)
	s := newTestSampler(t, SamplerConfig{Store: db, ActiveSessions: sessionsFrom(db)})
	// Straight after construction: too little time for a share of its own,
	// so the share since boot, never a made-up 0 %.
	first, err := s.Step(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	checkPlausible(t, first)
	if first.CPUPct <= 0 {
		t.Errorf("first CPU reading %v %%, want the share since boot (> 0)", first.CPUPct)
	}
	if len(first.Errors) != 0 {
		t.Errorf("errors on a healthy host: %v", first.Errors)
	}
	if first.DataDisk.Total == 0 {
		t.Errorf("data disk %+v", first.DataDisk)
	}
	time.Sleep(300 * time.Millisecond) // counters need time to move
	second, err := s.Step(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	checkPlausible(t, second)
	got, ok, err := db.LatestHostSample()
	if err != nil || !ok || got.TS != second.TS || got.CPUPct != second.CPUPct {
		t.Fatalf("stored %+v ok %v err %v, want the second sample", got, ok, err)
	}
}

// TestStepSeesCPUBurn starts one spinning child per CPU, named like a
// gateway, and checks that the host CPU figure rises and that the gateway
// figures see them.
func TestStepSeesCPUBurn(t *testing.T) {
	if testing.Short() {
		t.Skip("burns CPU for two seconds")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "openclaw-gateway")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	s := newTestSampler(t, SamplerConfig{})
	time.Sleep(time.Second)
	idle, err := s.Step(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}

	n := min(runtime.NumCPU(), 4)
	var cmds []*exec.Cmd
	for range n {
		cmd := exec.Command(link, "-test.run=^$")
		cmd.Env = append(os.Environ(), burnEnv+"=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	s.Step(context.Background(), time.Now()) // start the window with the burners running
	time.Sleep(2 * time.Second)
	busy, err := s.Step(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	checkPlausible(t, busy)
	t.Logf("cpu idle %.1f %%, burning %.1f %%; gateways %d at %.0f %% of a core, rss %d", idle.CPUPct, busy.CPUPct, busy.GatewayProcs, busy.GatewayCPUPct, busy.GatewayRSS)
	if busy.CPUPct < idle.CPUPct+20 && busy.CPUPct < 90 {
		t.Errorf("CPU %.1f %% with %d burners, %.1f %% before: no rise", busy.CPUPct, n, idle.CPUPct)
	}
	if busy.GatewayProcs < n {
		t.Errorf("%d gateway processes, want at least the %d burners", busy.GatewayProcs, n)
	}
	if busy.GatewayCPUPct < 50 {
		t.Errorf("gateway CPU %.0f %% of a core with %d spinning gateways", busy.GatewayCPUPct, n)
	}
	if busy.GatewayRSS == 0 {
		t.Error("gateway RSS 0")
	}
}

// syncBuffer is a log sink safe for the race detector.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestStepMissingDataDir(t *testing.T) {
	db := openTestDB(t)
	var logs syncBuffer
	gone := filepath.Join(t.TempDir(), "unmounted", "data")
	s := newTestSampler(t, SamplerConfig{
		DataDir: gone, Store: db, ActiveSessions: sessionsFrom(db),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	smp, err := s.Step(context.Background(), time.Now())
	if err != nil {
		t.Fatalf("step: %v (sampling must go on without the data dir)", err)
	}
	msg := smp.Errors[storage.HostFieldDiskData]
	if !strings.Contains(msg, gone) || !strings.Contains(msg, "no such file") {
		t.Errorf("data disk error %q, want the path and the reason", msg)
	}
	if smp.DataDisk != (storage.DiskStat{}) {
		t.Errorf("data disk %+v, want zero", smp.DataDisk)
	}
	if len(smp.Errors) != 1 {
		t.Errorf("errors %v, want only the data disk", smp.Errors)
	}
	checkPlausible(t, smp) // the rest was read
	if _, err := s.Step(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "host sample field unavailable"); n != 1 {
		t.Errorf("the repeated error was logged %d times, want once:\n%s", n, logs.String())
	}
	// Stored, and left out of the disk rollup only.
	rows, err := db.HostRollups5m(0, math.MaxInt64/2)
	if err != nil || len(rows) == 0 {
		t.Fatalf("rollups %v err %v", rows, err)
	}
	var samples, disk, cpu int64
	for _, r := range rows {
		samples += r.Samples
		disk += r.DataUsed.N
		cpu += r.CPU.N
	}
	if samples != 2 || disk != 0 || cpu != 2 {
		t.Errorf("rollups: %d samples, %d with disk, %d with cpu; want 2, 0, 2", samples, disk, cpu)
	}
	// The filesystem comes back.
	if err := os.MkdirAll(gone, 0o700); err != nil {
		t.Fatal(err)
	}
	smp, _ = s.Step(context.Background(), time.Now())
	if !smp.Has(storage.HostFieldDiskData) || smp.DataDisk.Total == 0 {
		t.Errorf("after the dir came back: %+v errors %v", smp.DataDisk, smp.Errors)
	}
	if !strings.Contains(logs.String(), "readable again") {
		t.Error("recovery not logged")
	}
}

// A clock that steps back: the samples stamped before the newest stored
// one are dropped and counted (their slots already hold that time: they
// would count twice), until the clock catches up. A clock that was years
// ahead, then corrected, does not stop sampling for years.
func TestStepClockBackwards(t *testing.T) {
	db := openTestDB(t)
	wall := time.Date(2026, 4, 10, 12, 0, 0, 0, time.UTC)
	s := newTestSampler(t, SamplerConfig{Store: db, ActiveSessions: sessionsFrom(db), Now: func() time.Time { return wall }})
	steps := []struct {
		at     time.Time
		stored bool
	}{
		{wall, true}, {wall.Add(-time.Hour), false}, {wall.Add(-time.Hour), false}, {wall.Add(5 * time.Minute), true},
		{wall.Add(5 * 365 * 24 * time.Hour), true}, // the clock jumps five years ahead…
		{wall.Add(6 * time.Minute), true},          // …and is corrected: sampling goes on
		{wall.Add(5*time.Minute + 30*time.Second), false},
	}
	for i, st := range steps {
		before := s.Status()
		smp, err := s.Step(context.Background(), st.at)
		if err != nil {
			t.Fatalf("step %d at %s: %v", i, st.at, err)
		}
		if smp.TS != st.at.UnixMilli() {
			t.Errorf("step %d stamped %d, want %d", i, smp.TS, st.at.UnixMilli())
		}
		checkPlausible(t, smp)
		after := s.Status()
		if stored := after.Stored > before.Stored; stored != st.stored || after.Dropped+after.Stored != before.Dropped+before.Stored+1 {
			t.Errorf("step %d at %s: stored %v (status %+v), want stored %v", i, st.at, stored, after, st.stored)
		}
		if latest, ok := s.Latest(); !ok || latest.TS != smp.TS {
			t.Errorf("step %d: latest sample %d, want the one just taken", i, latest.TS)
		}
	}
	// No monotonic time at all between two steps: rates are 0, not NaN or Inf.
	s.mono = func() time.Duration { return time.Hour }
	s.Step(context.Background(), wall.Add(7*time.Minute))
	smp, err := s.Step(context.Background(), wall.Add(7*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	checkPlausible(t, smp)
	if smp.NetInBps != 0 || smp.SwapInBps != 0 || smp.GatewayCPUPct != 0 {
		t.Errorf("rates over zero time: net %v swap %v gateway %v", smp.NetInBps, smp.SwapInBps, smp.GatewayCPUPct)
	}
	var n int
	db.HostSamples(0, math.MaxInt64/2, func(*storage.HostSample) error { n++; return nil })
	if st := s.Status(); n != 6 || st.Stored != 6 || st.Dropped != 3 {
		t.Errorf("%d samples stored (status %+v), want 6 stored and 3 dropped", n, st)
	}
	if rows, _ := db.HostRollups5m(wall.Add(-2*time.Hour).UnixMilli(), wall.UnixMilli()); len(rows) != 0 {
		t.Errorf("the hour the clock stepped back into has rows: %+v", rows)
	}
	// A new sampler on the same store knows the newest sample.
	db2 := openTestDB(t)
	if err := db2.PutHostSample(storage.HostSample{TS: wall.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	s2 := newTestSampler(t, SamplerConfig{Store: db2, ActiveSessions: sessionsFrom(db2)})
	if _, err := s2.Step(context.Background(), wall.Add(-time.Minute)); err != nil || s2.Status().Dropped != 1 {
		t.Errorf("a restarted sampler behind the newest sample: err %v, status %+v", err, s2.Status())
	}
}

// chanStore hands stored samples to the test.
type chanStore chan storage.HostSample

func (c chanStore) PutHostSample(s storage.HostSample) error { c <- s; return nil }

func TestRunStepsUntilCancelled(t *testing.T) {
	store := make(chanStore, 16)
	s := newTestSampler(t, SamplerConfig{Store: store, ActiveSessions: func(time.Time) (int, map[string]int, error) { return 0, nil, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, 20*time.Millisecond) }()
	for range 2 {
		select {
		case <-store:
		case <-time.After(10 * time.Second):
			t.Fatal("no sample from Run")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v on shutdown, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestNewSamplerNeedsDataDir(t *testing.T) {
	if _, err := NewSampler(context.Background(), SamplerConfig{}); err == nil {
		t.Fatal("no error without a data dir")
	}
}

func BenchmarkSamplerStep(b *testing.B) {
	b.Run("stored", func(b *testing.B) {
		db := openTestDB(b)
		s := newTestSampler(b, SamplerConfig{Store: db, ActiveSessions: sessionsFrom(db)})
		now := time.Now()
		for i := 0; b.Loop(); i++ {
			if _, err := s.Step(context.Background(), now.Add(time.Duration(i)*DefaultInterval)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read only", func(b *testing.B) {
		s := newTestSampler(b, SamplerConfig{ActiveSessions: func(time.Time) (int, map[string]int, error) { return 0, nil, nil }})
		for b.Loop() {
			s.Step(context.Background(), time.Now())
		}
	})
}

// failingStore fails to store until told to work, with a message that
// differs every time (as a real one does: it names the sample's time).
type failingStore struct {
	mu    sync.Mutex
	fail  bool
	calls int
}

func (f *failingStore) PutHostSample(s storage.HostSample) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail {
		return fmt.Errorf("put host sample at %d: %w", s.TS, syscall.ENOSPC)
	}
	return nil
}

// A store that keeps failing (a full disk) is logged once, not at every
// sample, and the status says so until a sample is stored again.
func TestStoreFailuresLoggedOnce(t *testing.T) {
	var logs syncBuffer
	store := &failingStore{fail: true}
	s := newTestSampler(t, SamplerConfig{Store: store, ActiveSessions: func(time.Time) (int, map[string]int, error) { return 0, nil, nil },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, 5*time.Millisecond) }()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		store.mu.Lock()
		n := store.calls
		store.mu.Unlock()
		if n >= 10 {
			break
		}
	}
	if st := s.Status(); !strings.Contains(st.LastError, "no space left") {
		t.Errorf("status while failing: %+v", st)
	}
	store.mu.Lock()
	store.fail = false
	store.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	if n := strings.Count(logs.String(), "host sample not stored"); n != 1 {
		t.Errorf("%d log lines for one lasting failure, want 1:\n%s", n, logs.String())
	}
	if st := s.Status(); st.LastError != "" || st.Stored == 0 {
		t.Errorf("status after recovery: %+v", st)
	}
}
