package corpus

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// HostOptions shape a generated host history: the samples a host sampler
// would have stored for a host running the fleet of Activity.
type HostOptions struct {
	Seed uint64
	End  time.Time // exclusive end; zero means DefaultEnd
	Days int
	// Every is the sample interval of the span; the last Recent of it is
	// sampled every RecentEvery (the daemon's raw samples), so a history
	// of months stays small while the last days have full detail.
	Every, RecentEvery, Recent time.Duration
	CPUs                       int
	MemTotal                   uint64
	// Steal is an episode of CPU steal (a burstable instance out of
	// credits) of StealFor, starting StealAgo before End; zero: none.
	StealAgo, StealFor time.Duration
}

// DefaultHostOptions is 90 days of a 2-core, 8 GiB host: 5-minute samples,
// the last 3 days every 15 s, a 6-hour steal episode 4 days before End.
func DefaultHostOptions() HostOptions {
	return HostOptions{
		Seed: 1, End: DefaultEnd, Days: 90, Every: 5 * time.Minute, RecentEvery: 15 * time.Second, Recent: 72 * time.Hour,
		CPUs: 2, MemTotal: 8 << 30, StealAgo: 4*24*time.Hour - 3*time.Hour, StealFor: 6 * time.Hour,
	}
}

// HostHistory makes o's samples in time order and hands them to emit in
// batches. Load, memory, sessions and network follow Activity, so they
// line up with a fleet ledger of the same End.
func HostHistory(o HostOptions, emit func([]storage.HostSample) error) error {
	end := DefaultEnd
	if !o.End.IsZero() {
		end = o.End.UTC()
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x4057))
	start := end.Add(-time.Duration(o.Days) * 24 * time.Hour)
	stealFrom, stealTo := end.Add(-o.StealAgo), end.Add(-o.StealAgo+o.StealFor)
	cpus := max(o.CPUs, 1)
	var batch []storage.HostSample
	for at := start; at.Before(end); {
		act := Activity(at, end)
		noise := func(scale float64) float64 { return 1 + scale*(rng.Float64()*2-1) }
		busy := math.Min(97, (6+28*act)*noise(0.25))
		steal := 0.2 * rng.Float64()
		if !at.Before(stealFrom) && at.Before(stealTo) {
			steal = 18 + 17*rng.Float64()
			busy = math.Min(99, busy+steal)
		}
		iowait := 0.5 + 2*rng.Float64()*act
		sessions := int(math.Round(math.Max(0, 9*act*noise(0.3))))
		memUsed := uint64(float64(2300<<20)+float64(sessions)*180*(1<<20)*noise(0.05)) + uint64(rng.IntN(64<<20))
		memUsed = min(memUsed, o.MemTotal-(256<<20))
		age := end.Sub(at).Hours() / 24
		dataUsed := uint64((46 - 10*age/90) * (1 << 30))
		load := busy / 100 * float64(cpus) * 1.15 * noise(0.15)
		var swap uint64
		if memUsed > o.MemTotal*85/100 {
			swap = (memUsed - o.MemTotal*85/100) / 3
		}
		batch = append(batch, storage.HostSample{
			TS: at.UnixMilli(), CPUPct: busy, CPUUserPct: (busy - steal) * 0.72, CPUSystemPct: (busy - steal) * 0.28,
			CPUIowaitPct: iowait, CPUStealPct: steal, CPUCount: cpus,
			MemTotal: o.MemTotal, MemUsed: memUsed, MemAvailable: o.MemTotal - memUsed, SwapTotal: 2 << 30, SwapUsed: swap,
			Load1: load, Load5: load * 0.95, Load15: load * 0.9, LoadPerCore: load / float64(cpus),
			DataDisk:  storage.DiskStat{Total: 100 << 30, Used: dataUsed, Free: 100<<30 - dataUsed},
			RootDisk:  storage.DiskStat{Total: 30 << 30, Used: 11 << 30, Free: 19 << 30},
			NetInBps:  (20e3 + 180e3*act) * noise(0.4),
			NetOutBps: (8e3 + 60e3*act) * noise(0.4),
			Procs:     150 + rng.IntN(40), GatewayProcs: 1, GatewayCPUPct: busy * 0.6, GatewayRSS: uint64(600<<20) + uint64(sessions)*(40<<20),
			ActiveSessions: sessions,
		})
		if len(batch) == 5000 {
			if err := emit(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
		step := o.Every
		if end.Sub(at) <= o.Recent && o.RecentEvery > 0 {
			step = o.RecentEvery
		}
		at = at.Add(max(step, time.Second))
	}
	if len(batch) > 0 {
		return emit(batch)
	}
	return nil
}
