// Package host watches the machine fleetmeter runs on: a sampler that
// reads CPU, memory, swap, load, disks, network, processes, the agent
// gateway and active sessions every few seconds and stores the sample (with
// its 5-minute and daily rollups) through storage, and the opt-in IMDSv2
// lookup of the instance type. What the samples say (the host report and
// the scaling advice) is rollup's: host only touches the machine.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	psnet "github.com/shirou/gopsutil/v4/net"
)

// DefaultInterval is the sampling period.
const DefaultInterval = 15 * time.Second

// SessionWindow is how recent a model call must be for its session to count
// as active.
const SessionWindow = 15 * time.Minute

// SampleStore keeps samples; *storage.DB satisfies it.
type SampleStore interface {
	PutHostSample(storage.HostSample) error
}

// ActiveSessionsFunc returns the sessions active at now, in total and per
// agent. The appliance wires it to storage.DB.ActiveSessions.
type ActiveSessionsFunc func(now time.Time) (total int, perAgent map[string]int, err error)

// SamplerConfig holds the sampler's dependencies.
type SamplerConfig struct {
	DataDir        string             // its filesystem is the one the disk figures watch
	Store          SampleStore        // nil: samples are taken but not stored
	ActiveSessions ActiveSessionsFunc // nil: the sessions field reports an error
	Gateway        GatewayMatcher     // nil: MatchGateway(DefaultGatewayName)
	Logger         *slog.Logger       // nil: discard
	Now            func() time.Time   // nil: time.Now
	// ProcRoot is where processes are listed; empty means $HOST_PROC or /proc
	// (gopsutil honours HOST_PROC too).
	ProcRoot string
}

// Sampler takes host samples. It keeps the previous counters (CPU ticks,
// network and swap bytes, gateway CPU time) to turn them into shares and
// rates; a Sampler is safe for use by one Run and occasional Steps.
type Sampler struct {
	cfg      SamplerConfig
	log      *slog.Logger
	now      func() time.Time
	mono     func() time.Duration // monotonic time since construction: rates never see wall-clock steps
	ncpu     int
	self     int
	pageSize uint64

	mu       sync.Mutex
	prevAt   time.Duration
	prevCPU  cpu.TimesStat
	haveCPU  bool
	prevNet  map[string][2]uint64 // interface → bytes in, out
	prevSwap [2]uint64            // bytes swapped in, out
	haveSwap bool
	prevGW   map[int]procTimes
	errLog   map[string]loggedError

	lastTS int64              // the newest stored sample's time (unix ms), 0 before the first
	latest storage.HostSample // the last sample taken, stored or not
	status Status
}

// Status is what the sampler has done, for health output and metrics.
type Status struct {
	Stored  int64 `json:"samples_stored"`
	Dropped int64 `json:"samples_dropped_clock_behind"`
	// LastSample is when the last sample was taken (its stamp).
	LastSample time.Time `json:"last_sample"`
	// LastError is why the last sample could not be stored; empty once one is.
	LastError string `json:"last_error,omitempty"`
}

// maxClockLag is how far back the clock may step and samples still be
// dropped until it catches up. A sample stamped before the newest stored
// one lands in slots that already hold that time, and would count twice.
// Beyond this lag the clock that stamped the newest samples was wrong (a
// clock years ahead, then corrected): sampling resumes at once rather than
// stopping for years; the future-dated rows stay in their own slots.
const maxClockLag = 7 * 24 * time.Hour

// latestStore is a store that can say what it holds newest.
type latestStore interface {
	LatestHostSample() (storage.HostSample, bool, error)
}

type loggedError struct {
	msg string
	at  time.Duration
}

// minCPUWindow is the least wall time, per core, a CPU share is computed over.
const minCPUWindow = 100 * time.Millisecond

// errorLogEvery bounds how often one field's unchanged error is logged.
const errorLogEvery = 5 * time.Minute

// NewSampler takes the baseline counters, so the first Step reports the
// CPU share since construction, not 0 %. It starts nothing.
func NewSampler(ctx context.Context, cfg SamplerConfig) (*Sampler, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("host sampler: no data dir")
	}
	if cfg.Gateway == nil {
		cfg.Gateway = MatchGateway(DefaultGatewayName)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
		if p := os.Getenv("HOST_PROC"); p != "" {
			cfg.ProcRoot = p
		}
	}
	born := time.Now()
	s := &Sampler{
		cfg:      cfg,
		log:      cfg.Logger,
		now:      cfg.Now,
		mono:     func() time.Duration { return time.Since(born) },
		self:     os.Getpid(),
		pageSize: uint64(os.Getpagesize()),
		errLog:   map[string]loggedError{},
	}
	if n, err := cpu.CountsWithContext(ctx, true); err == nil && n > 0 {
		s.ncpu = n
	} else {
		s.ncpu = runtime.NumCPU()
	}
	if ls, ok := cfg.Store.(latestStore); ok {
		last, found, err := ls.LatestHostSample()
		if err != nil {
			return nil, fmt.Errorf("host sampler: %w", err)
		}
		if found {
			s.lastTS = last.TS
		}
	}
	// Baseline: one silent step's worth of counters.
	var scratch storage.HostSample
	errs := map[string]string{}
	s.prevAt = s.mono()
	s.readCPU(ctx, &scratch, errs)
	s.readSwap(ctx, &scratch, errs, 0)
	s.readNet(ctx, &scratch, errs, 0)
	s.readProcs(&scratch, errs, 0)
	return s, nil
}

// Run samples every interval (DefaultInterval when ≤ 0) until ctx ends.
// Shutdown is not an error.
func (s *Sampler) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := s.Step(ctx, s.now()); err != nil {
				// The cause, not the stamped message: a full disk is one
				// problem, logged every few minutes, not every sample.
				cause := err
				for u := errors.Unwrap(cause); u != nil; u = errors.Unwrap(cause) {
					cause = u
				}
				s.logError("store", cause)
			}
		}
	}
}

// Step takes one sample stamped now, stores it and returns it (as stored:
// quantized). A field that cannot be read is left zero with its reason in
// the sample's Errors (logged, at most every few minutes while it repeats);
// the rest is still taken. The error is only about storing.
func (s *Sampler) Step(ctx context.Context, now time.Time) (storage.HostSample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	smp := storage.HostSample{TS: now.UnixMilli(), CPUCount: s.ncpu}
	errs := map[string]string{}
	at := s.mono()
	dt := (at - s.prevAt).Seconds() // monotonic: never negative, whatever the wall clock did
	s.prevAt = at

	s.readCPU(ctx, &smp, errs)
	s.readMemory(ctx, &smp, errs)
	s.readSwap(ctx, &smp, errs, dt)
	s.readLoad(ctx, &smp, errs)
	smp.DataDisk = s.readDisk(ctx, s.cfg.DataDir, "data dir", storage.HostFieldDiskData, errs)
	smp.RootDisk = s.readDisk(ctx, "/", "root filesystem", storage.HostFieldDiskRoot, errs)
	s.readNet(ctx, &smp, errs, dt)
	s.readProcs(&smp, errs, dt)
	s.readSessions(now, &smp, errs)

	if len(errs) > 0 {
		smp.Errors = errs
	}
	s.logFieldErrors(errs)
	smp = smp.Quantized()
	s.latest = smp
	s.status.LastSample = time.UnixMilli(smp.TS).UTC()
	if s.cfg.Store == nil {
		return smp, nil
	}
	if behind := s.lastTS - smp.TS; behind > 0 {
		if behind <= maxClockLag.Milliseconds() {
			s.status.Dropped++
			s.logErrorLocked("clock", fmt.Sprintf("the clock is behind the newest sample (%s): samples are dropped until it catches up", time.Duration(behind)*time.Millisecond))
			return smp, nil
		}
		s.log.Warn("the newest host samples are dated far ahead of the clock: the clock that stamped them was wrong; sampling resumes", "ahead", time.Duration(behind)*time.Millisecond)
	}
	if err := s.cfg.Store.PutHostSample(smp); err != nil {
		err = fmt.Errorf("host sample at %s: %w", now.UTC().Format(time.RFC3339), err)
		s.status.LastError = err.Error()
		return smp, err
	}
	s.lastTS = smp.TS
	s.status.Stored++
	s.status.LastError = ""
	return smp, nil
}

// Status returns a copy of the sampler's counters.
func (s *Sampler) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Latest returns the last sample taken (false before the first): what
// /metrics shows, whatever the stored rows' timestamps say.
func (s *Sampler) Latest() (storage.HostSample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest, s.latest.TS != 0
}

// readCPU sets the CPU shares since the previous reading. When too little
// CPU time has passed to mean anything (less than minCPUWindow per core:
// a Step right after NewSampler, or two Steps in a row) it reports the
// shares since boot instead of a coarse 0 % or 100 %, and keeps the older
// baseline so the next reading spans the whole time.
func (s *Sampler) readCPU(ctx context.Context, smp *storage.HostSample, errs map[string]string) {
	ts, err := cpu.TimesWithContext(ctx, false)
	if err == nil && len(ts) == 0 {
		err = errors.New("no cpu line in /proc/stat")
	}
	if err != nil {
		errs[storage.HostFieldCPU] = "cpu times: " + err.Error()
		return
	}
	cur := ts[0]
	base := cpu.TimesStat{}
	if s.haveCPU {
		base = s.prevCPU
	}
	// Counters can step back (iowait does): a field that fell counts 0.
	d := func(c, p float64) float64 { return max(c-p, 0) }
	user := d(cur.User, base.User) + d(cur.Nice, base.Nice) // user includes guest time
	system := d(cur.System, base.System) + d(cur.Irq, base.Irq) + d(cur.Softirq, base.Softirq)
	idle := d(cur.Idle, base.Idle)
	iowait := d(cur.Iowait, base.Iowait)
	steal := d(cur.Steal, base.Steal)
	total := user + system + idle + iowait + steal
	if total < minCPUWindow.Seconds()*float64(max(s.ncpu, 1)) && s.haveCPU {
		base = cpu.TimesStat{}
		user = cur.User + cur.Nice
		system = cur.System + cur.Irq + cur.Softirq
		idle, iowait, steal = cur.Idle, cur.Iowait, cur.Steal
		total = user + system + idle + iowait + steal
	} else {
		s.prevCPU, s.haveCPU = cur, true
	}
	if total <= 0 {
		errs[storage.HostFieldCPU] = "cpu times: all counters zero"
		return
	}
	pct := func(v float64) float64 { return clampPct(100 * v / total) }
	smp.CPUUserPct = pct(user)
	smp.CPUSystemPct = pct(system)
	smp.CPUIowaitPct = pct(iowait)
	smp.CPUStealPct = pct(steal)
	smp.CPUPct = pct(user + system + steal)
}

func clampPct(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return min(max(v, 0), 100)
}

func (s *Sampler) readMemory(ctx context.Context, smp *storage.HostSample, errs map[string]string) {
	vm, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		errs[storage.HostFieldMemory] = "memory: " + err.Error()
		return
	}
	smp.MemTotal = vm.Total
	smp.MemAvailable = min(vm.Available, vm.Total)
	smp.MemUsed = vm.Total - smp.MemAvailable
}

func (s *Sampler) readSwap(ctx context.Context, smp *storage.HostSample, errs map[string]string, dt float64) {
	sw, err := mem.SwapMemoryWithContext(ctx)
	if err != nil {
		errs[storage.HostFieldSwap] = "swap: " + err.Error()
		return
	}
	smp.SwapTotal, smp.SwapUsed = sw.Total, sw.Used
	if s.haveSwap {
		smp.SwapInBps = rate(sw.Sin, s.prevSwap[0], dt)
		smp.SwapOutBps = rate(sw.Sout, s.prevSwap[1], dt)
	}
	s.prevSwap, s.haveSwap = [2]uint64{sw.Sin, sw.Sout}, true
}

// rate is (cur − prev)/dt, 0 when the counter reset or no time passed.
func rate(cur, prev uint64, dt float64) float64 {
	if cur < prev || dt <= 0 {
		return 0
	}
	return float64(cur-prev) / dt
}

func (s *Sampler) readLoad(ctx context.Context, smp *storage.HostSample, errs map[string]string) {
	l, err := load.AvgWithContext(ctx)
	if err != nil {
		errs[storage.HostFieldLoad] = "load average: " + err.Error()
		return
	}
	smp.Load1, smp.Load5, smp.Load15 = l.Load1, l.Load5, l.Load15
	smp.LoadPerCore = l.Load1 / float64(max(s.ncpu, 1))
}

func (s *Sampler) readDisk(ctx context.Context, path, what, field string, errs map[string]string) storage.DiskStat {
	u, err := disk.UsageWithContext(ctx, path)
	if err != nil {
		errs[field] = fmt.Sprintf("%s %s: %v", what, path, err)
		return storage.DiskStat{}
	}
	return storage.DiskStat{Total: u.Total, Used: u.Used, Free: u.Free}
}

func (s *Sampler) readNet(ctx context.Context, smp *storage.HostSample, errs map[string]string, dt float64) {
	nics, err := psnet.IOCountersWithContext(ctx, true)
	if err != nil {
		errs[storage.HostFieldNet] = "network counters: " + err.Error()
		return
	}
	cur := make(map[string][2]uint64, len(nics))
	for _, n := range nics {
		if n.Name == "lo" {
			continue
		}
		cur[n.Name] = [2]uint64{n.BytesRecv, n.BytesSent}
		// An interface that appeared (or was reset) since the last step
		// contributes from the next one on.
		if p, ok := s.prevNet[n.Name]; ok {
			smp.NetInBps += rate(n.BytesRecv, p[0], dt)
			smp.NetOutBps += rate(n.BytesSent, p[1], dt)
		}
	}
	s.prevNet = cur
}

func (s *Sampler) readProcs(smp *storage.HostSample, errs map[string]string, dt float64) {
	count, gws, err := scanProcs(s.cfg.ProcRoot, s.self, s.cfg.Gateway, s.pageSize)
	if err != nil {
		msg := fmt.Sprintf("process list %s: %v", s.cfg.ProcRoot, err)
		errs[storage.HostFieldProcs] = msg
		errs[storage.HostFieldGateway] = msg
		return
	}
	smp.Procs = count
	smp.GatewayProcs = len(gws)
	var ticks float64
	for pid, p := range gws {
		smp.GatewayRSS += p.rss
		if prev, ok := s.prevGW[pid]; ok && prev.start == p.start && p.ticks >= prev.ticks {
			ticks += float64(p.ticks - prev.ticks)
		}
	}
	if dt > 0 {
		smp.GatewayCPUPct = 100 * ticks / cpu.ClocksPerSec / dt
	}
	s.prevGW = gws
}

func (s *Sampler) readSessions(now time.Time, smp *storage.HostSample, errs map[string]string) {
	if s.cfg.ActiveSessions == nil {
		errs[storage.HostFieldSessions] = "active sessions: no ledger wired to the sampler"
		return
	}
	total, per, err := s.cfg.ActiveSessions(now)
	if err != nil {
		errs[storage.HostFieldSessions] = "active sessions: " + err.Error()
		return
	}
	smp.ActiveSessions, smp.SessionsByAgent = total, per
}

// logFieldErrors logs a field's error when it is new or changed, then at
// most every errorLogEvery while it repeats, and says when it cleared.
func (s *Sampler) logFieldErrors(errs map[string]string) {
	for field, le := range s.errLog {
		if _, still := errs[field]; !still && field != "store" && field != "clock" {
			delete(s.errLog, field)
			s.log.Info("host field readable again", "field", field, "error_was", le.msg)
		}
	}
	for field, msg := range errs {
		s.logErrorLocked(field, msg)
	}
}

func (s *Sampler) logError(field string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logErrorLocked(field, err.Error())
}

func (s *Sampler) logErrorLocked(field, msg string) {
	now := s.mono()
	if le, ok := s.errLog[field]; ok && le.msg == msg && now-le.at < errorLogEvery {
		return
	}
	s.errLog[field] = loggedError{msg: msg, at: now}
	if field == "store" || field == "clock" {
		s.log.Warn("host sample not stored", "error", msg)
		return
	}
	s.log.Warn("host sample field unavailable", "field", field, "error", msg)
}
