package storage

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openHostTestDB opens a real bbolt file in a temp dir, checked for
// integrity and closed at cleanup.
func openHostTestDB(t testing.TB, loc *time.Location) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "f.db"), Options{Location: loc})
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

// synthSample is a plausible sample at ts, varying with i.
func synthSample(rng *rand.Rand, ts int64, i int) HostSample {
	sessions := rng.IntN(12)
	used := uint64(2<<30) + uint64(sessions)*300*mib + uint64(rng.IntN(64))*mib
	s := HostSample{
		TS:           ts,
		CPUPct:       rng.Float64() * 100,
		CPUUserPct:   rng.Float64() * 60,
		CPUSystemPct: rng.Float64() * 20,
		CPUIowaitPct: rng.Float64() * 3,
		CPUStealPct:  rng.Float64() * 5,
		CPUCount:     2,
		MemTotal:     8 << 30, MemUsed: used, MemAvailable: 8<<30 - used,
		SwapTotal: 1 << 30, SwapUsed: uint64(rng.IntN(100)) * mib,
		SwapInBps: float64(rng.IntN(3)) * 4096, SwapOutBps: 0,
		Load1: rng.Float64() * 3, Load5: 1, Load15: 0.5,
		DataDisk:       DiskStat{Total: 100 << 30, Used: 40<<30 + uint64(i)*mib, Free: 60<<30 - uint64(i)*mib},
		RootDisk:       DiskStat{Total: 100 << 30, Used: 40 << 30, Free: 60 << 30},
		NetInBps:       rng.Float64() * 1e6,
		NetOutBps:      rng.Float64() * 1e5,
		Procs:          150 + rng.IntN(20),
		GatewayProcs:   rng.IntN(2),
		GatewayCPUPct:  rng.Float64() * 30,
		GatewayRSS:     uint64(300+rng.IntN(200)) * mib,
		ActiveSessions: sessions,
	}
	s.LoadPerCore = s.Load1 / 2
	if sessions > 0 {
		s.SessionsByAgent = map[string]int{"main": sessions}
	}
	if i%50 == 7 { // a data dir that vanished now and then
		s.DataDisk = DiskStat{}
		s.Errors = map[string]string{HostFieldDiskData: "data dir /x: no such file or directory"}
	}
	return s
}

func TestHostSampleRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	s := synthSample(rng, -1234, 7) // before 1970, with an error field
	s.SessionsByAgent = map[string]int{"b": 2, "a": 1, "": 3}
	q := s.Quantized()
	got, err := decodeHostSample(appendHostSample(nil, &q))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, q) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, q)
	}
	if math.Abs(q.CPUPct-s.CPUPct) > 1.0/2048 {
		t.Errorf("quantized cpu %v too far from %v", q.CPUPct, s.CPUPct)
	}
	for _, bad := range [][]byte{nil, {2}, {1}, appendHostSample(nil, &q)[:20], append(appendHostSample(nil, &q), 0)} {
		if _, err := decodeHostSample(bad); err == nil {
			t.Errorf("decode %x: no error", bad)
		}
	}
}

// TestHostRollupsMatchRecomputation stores samples over two days in a zone
// off UTC and checks each 5-minute and daily row against a recomputation
// from the raw samples read back, against exact figures, and each day
// against the merge of its slots.
func TestHostRollupsMatchRecomputation(t *testing.T) {
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	db := openHostTestDB(t, loc)
	rng := rand.New(rand.NewPCG(9, 10))
	start := time.Date(2026, 4, 10, 20, 1, 0, 0, loc).UnixMilli()
	const step = 90 * time.Second
	var n int
	for ts := start; ts < start+(20*time.Hour).Milliseconds(); ts += step.Milliseconds() {
		if err := db.PutHostSample(synthSample(rng, ts, n)); err != nil {
			t.Fatal(err)
		}
		n++
	}
	// The clock stepped back: a second sample at an already used millisecond.
	if err := db.PutHostSample(synthSample(rng, start+step.Milliseconds(), n)); err != nil {
		t.Fatal(err)
	}
	n++

	var samples []HostSample
	if err := db.HostSamples(math.MinInt64/2, math.MaxInt64/2, func(s *HostSample) error {
		samples = append(samples, *s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(samples) != n {
		t.Fatalf("read %d samples, stored %d", len(samples), n)
	}

	want5m := map[int64]*HostRollup{}
	wantDay := map[int32]*HostRollup{}
	exactCPU := map[int32][]float64{}
	for i := range samples {
		s := &samples[i]
		slot, day := SlotStart(s.TS), DayNumber(s.TS, loc)
		if want5m[slot] == nil {
			r := NewHostRollup()
			r.Start, r.Day = slot, DayNumber(slot, loc)
			want5m[slot] = &r
		}
		if wantDay[day] == nil {
			r := NewHostRollup()
			r.Start, r.Day = DayStartMillis(day, loc), day
			wantDay[day] = &r
		}
		want5m[slot].Add(s)
		wantDay[day].Add(s)
		exactCPU[day] = append(exactCPU[day], s.CPUPct)
	}

	got5m, err := db.HostRollups5m(math.MinInt64/2, math.MaxInt64/2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got5m) != len(want5m) {
		t.Fatalf("%d 5-minute rows, want %d", len(got5m), len(want5m))
	}
	for _, r := range got5m {
		if w := want5m[r.Start]; !reflect.DeepEqual(&r, w) {
			t.Errorf("5-minute row %d differs from recomputation:\n got %+v\nwant %+v", r.Start, r, w)
		}
	}

	days, err := db.HostRollupsDaily(-1<<30, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 2 {
		t.Fatalf("%d daily rows, want 2 (20 hours from 20:01 cross one midnight)", len(days))
	}
	for _, r := range days {
		if w := wantDay[r.Day]; !reflect.DeepEqual(&r, w) {
			t.Errorf("day %s differs from recomputation", DayString(r.Day))
		}
		// Exact figures from the raw values.
		vals := exactCPU[r.Day]
		slices.Sort(vals)
		var sum float64
		for _, v := range vals {
			sum += v
		}
		if r.Samples != int64(len(vals)) || r.CPU.N != int64(len(vals)) {
			t.Errorf("day %s: %d samples, want %d", DayString(r.Day), r.Samples, len(vals))
		}
		if math.Abs(r.CPU.Mean()-sum/float64(len(vals))) > 1e-9 || r.CPU.Max != vals[len(vals)-1] {
			t.Errorf("day %s: cpu mean %v max %v, want %v %v", DayString(r.Day), r.CPU.Mean(), r.CPU.Max, sum/float64(len(vals)), vals[len(vals)-1])
		}
		if p95 := r.CPUHist.Quantile(0.95); math.Abs(p95-exactQuantile(vals, 0.95)) > layoutPercent.Width {
			t.Errorf("day %s: p95 %v, exact %v", DayString(r.Day), p95, exactQuantile(vals, 0.95))
		}
		if r.DataUsed.N >= r.Samples {
			t.Errorf("day %s: samples without a data disk reading were counted (%d of %d)", DayString(r.Day), r.DataUsed.N, r.Samples)
		}
		// The day is the merge of its slots (5 minutes divide the +5:30 offset).
		merged := NewHostRollup()
		for i := range got5m {
			if got5m[i].Day == r.Day {
				if err := merged.Merge(&got5m[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
		merged.Start, merged.Day = r.Start, r.Day
		if !reflect.DeepEqual(merged, r) {
			t.Errorf("day %s differs from the merge of its 5-minute rows", DayString(r.Day))
		}
	}
	if _, _, _, ok := days[0].MemSessions.Fit(); !ok {
		t.Error("no memory-on-sessions fit from a day of varying sessions")
	}
}

func TestHostSamplesRangeAndLatest(t *testing.T) {
	db := openHostTestDB(t, nil)
	if _, ok, err := db.LatestHostSample(); ok || err != nil {
		t.Fatalf("empty db: ok %v err %v", ok, err)
	}
	for _, ts := range []int64{1000, 2000, 3000, 3000, 4000} {
		if err := db.PutHostSample(HostSample{TS: ts, CPUPct: float64(ts) / 100}); err != nil {
			t.Fatal(err)
		}
	}
	var got []int64
	db.HostSamples(2000, 4000, func(s *HostSample) error { got = append(got, s.TS); return nil })
	if !slices.Equal(got, []int64{2000, 3000, 3000}) {
		t.Fatalf("samples in [2000, 4000): %v", got)
	}
	s, ok, err := db.LatestHostSample()
	if err != nil || !ok || s.TS != 4000 || s.CPUPct != 40 {
		t.Fatalf("latest %+v ok %v err %v", s, ok, err)
	}
}

func TestPruneHost(t *testing.T) {
	db := openHostTestDB(t, nil)
	day := (24 * time.Hour).Milliseconds()
	for d := range int64(5) {
		if err := db.PutHostSample(HostSample{TS: d*day + 1000, CPUPct: 10}); err != nil {
			t.Fatal(err)
		}
	}
	// Enough raw rows to need several chunks, written in one transaction,
	// before 1970 to check the keys sort across it.
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for i := range 12000 {
			s := HostSample{TS: -int64(i) - 1}
			if err := tx.Bucket(bucketHost).Put(hostSampleKey(s.TS, 0), appendHostSample(nil, &s)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.PruneHostSamples(3 * day)
	if err != nil || n != 12000+3 {
		t.Fatalf("pruned %d samples (err %v), want %d", n, err, 12003)
	}
	n, err = db.PruneHostRollups5m(2 * day)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d 5-minute rows (err %v), want 2", n, err)
	}
	var left []int64
	db.HostSamples(math.MinInt64/2, math.MaxInt64/2, func(s *HostSample) error { left = append(left, s.TS); return nil })
	if !slices.Equal(left, []int64{3*day + 1000, 4*day + 1000}) {
		t.Fatalf("samples left %v", left)
	}
	slots, _ := db.HostRollups5m(math.MinInt64/2, math.MaxInt64/2)
	days, _ := db.HostRollupsDaily(-100, 100)
	if len(slots) != 3 || len(days) != 5 {
		t.Fatalf("%d slots and %d days left, want 3 and 5", len(slots), len(days))
	}
}

func TestActiveSessions(t *testing.T) {
	db := openHostTestDB(t, nil)
	now := time.Date(2026, 4, 10, 12, 0, 0, 0, time.UTC).UnixMilli()
	minute := time.Minute.Milliseconds()
	rec := func(ago int64, source, agent, session string) Usage {
		return Usage{
			TS: now - ago*minute, Source: source, Agent: agent, SessionID: session,
			Provider: "anthropic", Model: "claude-sonnet-4", Input: 10, Output: 5,
			CostSource: CostUnpriced, DedupeKey: fmt.Sprintf("%s|%s|%d", source, session, ago),
		}
	}
	_, err := db.Apply(&Batch{Records: []Usage{
		rec(1, SourceOpenClaw, "main", "s1"),
		rec(5, SourceOpenClaw, "main", "s1"), // same session twice
		rec(14, SourceOpenClaw, "ops", "s2"),
		rec(3, SourceClaude, "proj", "s2"), // same id, other source: another session
		rec(16, SourceOpenClaw, "main", "old"),
		rec(-2, SourceOpenClaw, "main", "ahead"), // stamped two minutes ahead of us
		rec(-30, SourceOpenClaw, "main", "far"),  // far in the future: not active now
	}})
	if err != nil {
		t.Fatal(err)
	}
	total, per, err := db.ActiveSessions(now, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"main": 2, "ops": 1, "proj": 1}
	if total != 4 || !reflect.DeepEqual(per, want) {
		t.Fatalf("active %d %v, want 4 %v", total, per, want)
	}
	total, per, err = db.ActiveSessions(now+time.Hour.Milliseconds()*3, 15*time.Minute)
	if err != nil || total != 0 || len(per) != 0 {
		t.Fatalf("three hours later: %d %v %v", total, per, err)
	}
}

// A zone change recuts the daily host rows from the 5-minute rows.
func TestZoneChangeRecutsHostDays(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC)
	for _, at := range []time.Duration{2 * time.Hour, 10 * time.Hour, 23*time.Hour + 30*time.Minute} {
		if err := db.PutHostSample(HostSample{TS: day.Add(at).UnixMilli(), CPUPct: 50, CPUCount: 2}); err != nil {
			t.Fatal(err)
		}
	}
	// An older day that only host_daily still has (its 5-minute rows pruned).
	if err := db.PutHostSample(HostSample{TS: day.AddDate(0, 0, -30).UnixMilli(), CPUPct: 10, CPUCount: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PruneHostRollups5m(day.AddDate(0, 0, -1).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	db, err = Open(path, Options{Location: tokyo})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.HostRollupsDaily(-1<<31, 1<<31-1)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows {
		got[DayString(r.Day)] = r.Samples
	}
	// Tokyo is UTC+9: 02:00 and 10:00 UTC fall on 04-10, 23:30 UTC on 04-11.
	want := map[string]int64{"2026-03-11": 1, "2026-04-10": 2, "2026-04-11": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("host days = %v, want %v", got, want)
	}
}
