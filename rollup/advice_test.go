package rollup

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

const (
	gib = 1 << 30
	mib = 1 << 20
)

var histStart = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)

// shape describes a synthetic host; each func gets the sample index, the
// days since the start and a seeded generator.
type shape struct {
	memTotal uint64
	cpu      func(r *rand.Rand) float64
	steal    func(r *rand.Rand) float64
	memPct   func(r *rand.Rand) float64 // used share before sessions
	swapFrac float64                    // share of samples that swap
	load     func(r *rand.Rand) float64 // per core
	diskUsed func(days float64) uint64  // of a 100 GiB data disk
	sessions int                        // at most (default 10)
	// sessionMiB is what each session adds to used memory (default 250);
	// negative: used memory falls as sessions rise.
	sessionMiB int
}

func uniform(lo, hi float64) func(*rand.Rand) float64 {
	return func(r *rand.Rand) float64 { return lo + r.Float64()*(hi-lo) }
}

func (sh shape) sample(r *rand.Rand, at time.Time) storage.HostSample {
	days := at.Sub(histStart).Hours() / 24
	steal := 0.0
	if sh.steal != nil {
		steal = sh.steal(r)
	}
	cpuPct := sh.cpu(r)
	maxSessions := sh.sessions
	if maxSessions == 0 {
		maxSessions = 10
	}
	sessions := r.IntN(maxSessions + 1)
	perSession := cmp.Or(sh.sessionMiB, 250)
	used := uint64(sh.memPct(r)/100*float64(sh.memTotal)) + uint64(int64(sessions*perSession)*mib) + uint64(r.IntN(32))*mib
	used = min(used, sh.memTotal)
	diskUsed := uint64(40 * gib)
	if sh.diskUsed != nil {
		diskUsed = sh.diskUsed(days)
	}
	s := storage.HostSample{
		TS: at.UnixMilli(), CPUPct: cpuPct, CPUUserPct: cpuPct * 0.7, CPUSystemPct: cpuPct*0.3 - steal*0.3, CPUStealPct: steal,
		CPUCount: 2, MemTotal: sh.memTotal, MemUsed: used, MemAvailable: sh.memTotal - used,
		SwapTotal: 2 * gib, DataDisk: storage.DiskStat{Total: 100 * gib, Used: diskUsed, Free: 100*gib - diskUsed},
		RootDisk: storage.DiskStat{Total: 30 * gib, Used: 10 * gib, Free: 20 * gib},
		Procs:    180, ActiveSessions: sessions, GatewayProcs: 1, GatewayRSS: 600 * mib,
	}
	if sh.load != nil {
		s.LoadPerCore = sh.load(r)
	} else {
		s.LoadPerCore = cpuPct / 100
	}
	s.Load1 = s.LoadPerCore * 2
	if r.Float64() < sh.swapFrac {
		s.SwapUsed, s.SwapInBps, s.SwapOutBps = 700*mib, 2e6, 3e6
	}
	return s
}

// history folds samples every 75 s over the given duration into 5-minute
// rollups, as PutHostSample would, and returns them with the raw CPU values.
func history(sh shape, d time.Duration, seed uint64) ([]storage.HostRollup, []float64) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	slots := map[int64]*storage.HostRollup{}
	var cpu []float64
	for at := histStart; at.Before(histStart.Add(d)); at = at.Add(75 * time.Second) {
		s := sh.sample(r, at).Quantized()
		start := storage.SlotStart(s.TS)
		if slots[start] == nil {
			row := storage.NewHostRollup()
			row.Start = start
			slots[start] = &row
		}
		slots[start].Add(&s)
		cpu = append(cpu, s.CPUPct)
	}
	var out []storage.HostRollup
	for _, k := range slices.Sorted(func(yield func(int64) bool) {
		for k := range slots {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, *slots[k])
	}
	return out, cpu
}

func TestAdvise(t *testing.T) {
	week := 7 * 24 * time.Hour
	quiet := shape{memTotal: 8 * gib, cpu: uniform(2, 8), memPct: uniform(10, 12), load: uniform(0.02, 0.1), sessions: 2}
	steady := shape{memTotal: 8 * gib, cpu: uniform(35, 60), memPct: uniform(30, 40)}
	cases := []struct {
		name      string
		typ       string
		shape     shape
		span      time.Duration
		verdict   Verdict
		suggested string
		reason    string
	}{
		{"hot CPU", "m6i.large", shape{memTotal: 8 * gib, cpu: uniform(70, 99), memPct: uniform(30, 40)}, week, ScaleUp, "m6i.xlarge", "CPU is"},
		{"high steal on a t3", "t3.medium", shape{memTotal: 4 * gib, cpu: uniform(40, 70), steal: uniform(12, 30), memPct: uniform(10, 20)}, week, ScaleUp, "m7i.large", "CPU credits run out"},
		{"memory pressure with swap", "m6i.xlarge", shape{memTotal: 16 * gib, cpu: uniform(15, 35), memPct: uniform(78, 80), swapFrac: 0.3}, week, ScaleUp, "r6i.xlarge", "Memory is"},
		{"idle t3.large", "t3.large", quiet, week, ScaleDown, "t3.medium", "t3.medium would run at"},
		{"idle, type unknown", "", quiet, week, ScaleDown, "", "the next size down"},
		{"idle on the smallest size", "m6i.large", quiet, week, Hold, "", "smallest size"},
		{"disk full in 9 days", "m6i.large", shape{memTotal: 8 * gib, cpu: uniform(35, 60), memPct: uniform(30, 40),
			diskUsed: func(days float64) uint64 { return uint64((20 + 5*days) * gib) }}, week, Investigate, "", "fills in about 9 days"},
		{"disk fill outranks hot CPU", "m6i.large", shape{memTotal: 8 * gib, cpu: uniform(80, 99), memPct: uniform(30, 40),
			diskUsed: func(days float64) uint64 { return uint64((20 + 5*days) * gib) }}, week, Investigate, "", "fills in about"},
		{"steady load", "m6i.large", steady, week, Hold, "", "within limits"},
		{"half a day of data", "t3.large", quiet, 12 * time.Hour, Hold, "", "Only 12.0 hours"},
		{"two idle days: too early to scale down", "t3.large", quiet, 48 * time.Hour, Hold, "", "within limits"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rows, cpu := history(tc.shape, tc.span, uint64(i))
			a := Advise(rows, tc.typ, DefaultThresholds())
			if a.Verdict != tc.verdict {
				t.Fatalf("verdict %s (%s), want %s; findings %+v", a.Verdict, a.Reason, tc.verdict, a.Findings)
			}
			if !strings.Contains(a.Reason, tc.reason) {
				t.Errorf("reason %q, want it to say %q", a.Reason, tc.reason)
			}
			got := ""
			if a.Suggested != nil {
				got = a.Suggested.Type
			}
			if got != tc.suggested {
				t.Errorf("suggested %q, want %q", got, tc.suggested)
			}
			slices.Sort(cpu)
			exact := cpu[int(math.Ceil(0.95*float64(len(cpu))))-1]
			if math.Abs(a.Evidence.CPUP95Pct-exact) > 0.5 {
				t.Errorf("evidence cpu p95 %.2f, exact %.2f", a.Evidence.CPUP95Pct, exact)
			}
			if math.Abs(a.Evidence.Hours-tc.span.Hours()) > 0.1 {
				t.Errorf("evidence hours %.1f, want %.1f", a.Evidence.Hours, tc.span.Hours())
			}
		})
	}
}

func TestAdviseEvidence(t *testing.T) {
	sh := shape{memTotal: 8 * gib, cpu: uniform(35, 60), memPct: uniform(30, 30.01),
		diskUsed: func(days float64) uint64 { return uint64((20 + 5*days) * gib) }}
	rows, _ := history(sh, 7*24*time.Hour, 42)
	e := Advise(rows, "m6i.large", DefaultThresholds()).Evidence
	if e.DiskDaysToFull == nil || math.Abs(*e.DiskDaysToFull-9) > 0.1 {
		t.Errorf("days to full %v, want 9", e.DiskDaysToFull)
	}
	if e.DiskGrowthPerDay == nil || math.Abs(*e.DiskGrowthPerDay/gib-5) > 0.01 {
		t.Errorf("growth %v a day, want 5 GiB", e.DiskGrowthPerDay)
	}
	// Each session adds 250 MiB (plus up to 32 MiB of noise).
	if e.MemPerSessionBytes == nil || math.Abs(*e.MemPerSessionBytes/mib-250) > 5 || *e.MemPerSessionR2 < 0.9 {
		t.Errorf("memory per session %v MiB (r² %v), want 250", *e.MemPerSessionBytes/mib, *e.MemPerSessionR2)
	}
	if e.PeakSessions != 10 {
		t.Errorf("peak sessions %d, want 10", e.PeakSessions)
	}
	// p95 used ≈ 30 % of 8 GiB + ~10 sessions × 250 MiB ≈ 60 %: room to 90 % ≈ 2.4 GiB ≈ 9 sessions.
	if e.SessionHeadroom == nil || *e.SessionHeadroom < 7 || *e.SessionHeadroom > 11 {
		t.Errorf("session headroom %v, want about 9", e.SessionHeadroom)
	}
	if e.MemHeadroomPct != 100-e.MemUsedP95Pct || e.SwapActivePct != 0 {
		t.Errorf("headroom %v swap %v", e.MemHeadroomPct, e.SwapActivePct)
	}
}

// Used memory that falls as sessions rise is no negative session cost:
// the figure is 0, says why, and gives no session headroom.
func TestAdviseMemoryPerSessionNeverNegative(t *testing.T) {
	sh := shape{memTotal: 8 * gib, cpu: uniform(35, 60), memPct: uniform(60, 60.01), sessionMiB: -40}
	rows, _ := history(sh, 2*24*time.Hour, 7)
	a := Advise(rows, "m6i.large", DefaultThresholds())
	e := a.Evidence
	if e.MemPerSessionBytes == nil || *e.MemPerSessionBytes != 0 || e.SessionHeadroom != nil || !strings.Contains(e.MemPerSessionNote, "fell as sessions rose") {
		t.Fatalf("memory per session %v, headroom %v, note %q", e.MemPerSessionBytes, e.SessionHeadroom, e.MemPerSessionNote)
	}
	var b strings.Builder
	if err := WriteAdvice(&b, a, 0); err != nil {
		t.Fatal(err)
	}
	line := ""
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "memory per session") {
			line = l
		}
	}
	if !strings.Contains(line, "not estimable: used memory fell as sessions rose (fit -") {
		t.Errorf("advice says: %q\n%s", line, b.String())
	}
}

// TestAdviseFromStore runs the whole path through a real bbolt file: an
// idle t3.large is told to go down to a t3.medium. (host's IMDS tests show
// the instance type coming from a stand-in metadata server.)
func TestAdviseFromStore(t *testing.T) {
	db := openTestDB(t)
	r := rand.New(rand.NewPCG(1, 1))
	sh := shape{memTotal: 8 * gib, cpu: uniform(2, 8), memPct: uniform(10, 12), load: uniform(0.02, 0.1), sessions: 2}
	span := 4 * 24 * time.Hour
	for at := histStart; at.Before(histStart.Add(span)); at = at.Add(5 * time.Minute) {
		if err := db.PutHostSample(sh.sample(r, at)); err != nil {
			t.Fatal(err)
		}
	}
	a, err := AdviseFrom(db, histStart.Add(span), "t3.large", DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	if a.Verdict != ScaleDown || a.Suggested == nil || a.Suggested.Type != "t3.medium" || a.Current.Type != "t3.large" {
		t.Fatalf("advice %s %v → %v: %s", a.Verdict, a.Current, a.Suggested, a.Reason)
	}
	if a.Evidence.Samples != int64(span/(5*time.Minute)) {
		t.Errorf("advice saw %d samples, want %d", a.Evidence.Samples, span/(5*time.Minute))
	}
	// An empty store: hold, not enough data.
	empty, err := AdviseFrom(openTestDB(t), histStart, "t3.large", Thresholds{})
	if err != nil || empty.Verdict != Hold {
		t.Fatalf("empty store: %+v %v", empty, err)
	}
}
