package corpus

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// minSessionBytes is about the size of a one-turn session. When the
// target leaves less than this per planned session, planned sessions are
// dropped at random, evenly over the period, rather than the last days
// going empty.
const minSessionBytes = 16 << 10

// ErrExists is returned when the output directory already holds a corpus.
var ErrExists = errors.New("corpus: output directory already has agents/")

// Generate writes an OpenClaw state directory to dir:
// dir/agents/<agentId>/sessions/{<uuid>.jsonl, sessions.json, traps}. dir
// may exist but must not contain agents/. It returns the totals an
// ingester must report for it.
func Generate(dir string, opts Options) (Expected, error) {
	if err := opts.Validate(); err != nil {
		return Expected{}, err
	}
	end := DefaultEnd
	if !opts.End.IsZero() {
		end = opts.End.UTC()
	}
	start := end.AddDate(0, 0, -opts.Days)
	if _, err := os.Stat(filepath.Join(dir, "agents")); err == nil {
		return Expected{}, fmt.Errorf("generate %s: %w", dir, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Expected{}, fmt.Errorf("generate %s: %w", dir, err)
	}

	g := newGen(opts.Seed)
	agents := newAgents(g, opts.Agents)
	slots := schedule(g, agents, opts, start)

	exp := newExpected()
	w := &writer{root: dir, o: &opts, g: g, exp: &exp, led: newLedger(&exp), end: end}
	// Heavy sessions (~450 KB) take at most about a fifth of the target,
	// so that small corpora still spread over every day.
	w.heavyRate = min(0.04, 0.2*float64(opts.SizeBytes)/(float64(max(1, len(slots)))*(450<<10)))
	for _, a := range agents {
		if err := os.MkdirAll(w.sessionsDir(a), 0o700); err != nil {
			return Expected{}, fmt.Errorf("generate %s: %w", dir, err)
		}
	}
	// sessions.json files are written last; keep room for them.
	reserve := int64(0)
	for _, a := range agents {
		reserve += int64(len(a.keys)) * 700
	}
	target := opts.SizeBytes - reserve

	// Each session gets an equal share of what is left, jittered, so the
	// total lands near the target. Sessions overshoot their budgets (a turn
	// is not divisible; forks and checkpoints copy), so budgets are divided
	// by the overshoot seen so far. When the share falls below what a
	// one-turn session weighs, planned sessions are dropped at random,
	// evenly over the period. When the planned sessions run out early
	// (time limits cap their length), extra sessions at random times make
	// up the rest.
	var planned, spent float64
	extra := 0
	for i := 0; ; i++ {
		left := target - exp.Files.Bytes
		var sl slot
		switch {
		case i < len(slots):
			sl = slots[i]
		case left > target/30 && extra < 10000:
			extra++
			d := g.IntN(opts.Days)
			sl = slot{at: start.AddDate(0, 0, d).Add(time.Duration(g.IntN(20*3600)) * time.Second), agent: g.IntN(len(agents))}
		default:
			left = 0
		}
		if left <= 0 {
			break
		}
		over := 1.0
		if planned > 0 {
			over = max(0.5, min(8, spent/planned))
		}
		share := float64(left) / float64(max(1, len(slots)-i))
		budget := share / over * (0.5 + g.rng.Float64())
		if floor := minSessionBytes * over; share < floor {
			if g.rng.Float64()*floor >= share {
				continue
			}
			budget = minSessionBytes
		}
		before := exp.Files.Bytes
		used, err := w.session(agents[sl.agent], sl.at, int64(budget))
		if err != nil {
			return Expected{}, err
		}
		if used > 0 {
			planned += float64(used)
			spent += float64(exp.Files.Bytes - before)
		}
	}
	for _, a := range agents {
		b, err := a.storeJSON()
		if err != nil {
			return Expected{}, err
		}
		p := filepath.Join(w.sessionsDir(a), "sessions.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return Expected{}, fmt.Errorf("generate %s: %w", p, err)
		}
		exp.Files.Stores++
		exp.Files.Bytes += int64(len(b))
	}
	return exp, nil
}

type writer struct {
	root string
	o    *Options
	g    *gen
	exp  *Expected
	led  *ledger
	end  time.Time

	heavyRate float64 // chance that a session is a heavy one
}

func (w *writer) sessionsDir(a *agent) string {
	return filepath.Join(w.root, "agents", a.id, "sessions")
}

// session writes one session on a key the agent picks, with its traps,
// and returns the byte budget it was given (0 if it was not made).
func (w *writer) session(a *agent, at time.Time, budget int64) (int64, error) {
	g, o := w.g, w.o
	k := a.pickKey(g)
	// A key holds one conversation at a time.
	if !k.updatedAt.IsZero() && !at.After(k.updatedAt) {
		at = k.updatedAt.Add(time.Duration(g.between(60, 3600)) * time.Second)
	}
	limit := w.end.Add(-3 * time.Hour)
	if at.After(limit) {
		return 0, nil
	}
	// A new conversation on a key used before: OpenClaw archives the old
	// transcript on /new, /reset and daily resets; older builds and idle
	// expiry leave it in place as an orphan <uuid>.jsonl.
	if k.curFile != "" && g.chance(o.ResetRate) {
		old := filepath.Join(w.sessionsDir(a), k.curFile)
		if err := os.Rename(old, old+".reset."+fileStamp(at, false)); err != nil {
			return 0, fmt.Errorf("generate: reset %s: %w", old, err)
		}
		w.exp.Files.Transcripts--
		w.exp.Files.ResetArchives++
	}

	// A few heavy sessions (browsing, large file reads, photos) carry the
	// 100 KB+ tool outputs and images; the shares of later sessions shrink
	// to make up for them.
	if g.chance(w.heavyRate) {
		budget = max(budget, int64(g.between(300<<10, 600<<10)))
	}
	s := newSession(g, o, a, k, at, limit, budget)
	s.wantCheckpoint = g.chance(o.CheckpointRate)
	s.wantRewrite = g.chance(o.RewriteRate)
	wantFork := g.chance(o.ForkRate)
	s.run(budget)
	if err := w.write(a, s.file, s.entries, true); err != nil {
		return 0, err
	}
	w.exp.Files.Transcripts++
	w.exp.Sessions++
	w.track(k, s)
	if s.checkpoint > 0 {
		name := s.id + ".checkpoint." + g.uuid() + ".jsonl"
		if err := w.write(a, name, s.entries[:s.checkpoint], false); err != nil {
			return 0, err
		}
		w.exp.Files.Checkpoints++
	}

	forkAt := s.t.Add(time.Duration(g.between(60, 6*3600)) * time.Second)
	if !wantFork || forkAt.After(limit) {
		return budget, nil
	}
	a.threads++
	fk := *k
	fk.key = fmt.Sprintf("%s:thread:%d", k.key, a.threads)
	fk.parent, fk.weight = k.key, 0
	fk.curID, fk.curFile, fk.updatedAt = "", "", time.Time{}
	a.keys = append(a.keys, &fk)
	parentPath := a.stateDir + "/agents/" + a.id + "/sessions/" + s.file
	f := s.fork(forkAt, &fk, parentPath)
	for range g.between(1, 2) {
		f.turn()
	}
	if err := w.write(a, f.file, f.entries, true); err != nil {
		return 0, err
	}
	w.exp.Files.Forks++
	w.exp.Sessions++
	w.track(&fk, f)
	return budget, nil
}

// track records the session as its key's current transcript.
func (w *writer) track(k *sessKey, s *session) {
	k.curID, k.curFile, k.updatedAt = s.id, s.file, s.t
	k.lastModel = s.m
	if s.last != nil {
		k.lastUsage = s.last.u
	}
}

// write puts entries in one file and, for counted files, runs every
// assistant row through the ledger. The file's mtime is its last entry's
// time, as on a real host.
func (w *writer) write(a *agent, name string, ents []entry, counted bool) error {
	n := 0
	for i := range ents {
		n += len(ents[i].line)
	}
	buf := make([]byte, 0, n)
	last := ents[0].ts
	for i := range ents {
		buf = append(buf, ents[i].line...)
		if ents[i].ts.After(last) {
			last = ents[i].ts
		}
	}
	p := filepath.Join(w.sessionsDir(a), name)
	if err := os.WriteFile(p, buf, 0o600); err != nil {
		return fmt.Errorf("generate %s: %w", p, err)
	}
	if err := os.Chtimes(p, last, last); err != nil {
		return fmt.Errorf("generate %s: %w", p, err)
	}
	w.exp.Files.Bytes += int64(n)
	w.exp.Files.Lines += int64(len(ents))
	if counted {
		for i := range ents {
			if c := ents[i].call; c != nil {
				w.led.row(a.id, day(ents[i].ts), c)
			}
		}
	}
	return nil
}
