package ingest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/fleetmeter/fleetmeter/storage"
)

// OpenClawRoots returns the OpenClaw state dirs on this host: explicit dirs
// when given (they always win), else $OPENCLAW_STATE_DIR, ~/.openclaw,
// ~/.openclaw-<profile> and the legacy ~/.clawdbot, ~/.moltbot; as root, the
// same under every home directory in /etc/passwd. Only dirs that hold an
// agents/ folder are returned.
func OpenClawRoots(explicit []string, env func(string) string, homes []string) []string {
	if len(explicit) > 0 {
		return dedupePaths(explicit)
	}
	var candidates []string
	if d := env("OPENCLAW_STATE_DIR"); d != "" {
		candidates = append(candidates, d)
	}
	if d := env("CLAWDBOT_STATE_DIR"); d != "" {
		candidates = append(candidates, d)
	}
	for _, home := range homes {
		candidates = append(candidates,
			filepath.Join(home, ".openclaw"), filepath.Join(home, ".clawdbot"), filepath.Join(home, ".moltbot"))
		profiles, _ := filepath.Glob(filepath.Join(home, ".openclaw-*"))
		sort.Strings(profiles)
		candidates = append(candidates, profiles...)
	}
	var roots []string
	for _, c := range dedupePaths(candidates) {
		if st, err := os.Stat(filepath.Join(c, "agents")); err == nil && st.IsDir() {
			roots = append(roots, c)
		}
	}
	return roots
}

// Homes lists the home directories to search: the user's own, and when
// running as root every home in /etc/passwd (agents often run as another
// user than the one that installs fleetmeter).
func Homes() []string {
	var homes []string
	if h, err := os.UserHomeDir(); err == nil {
		homes = append(homes, h)
	}
	if os.Geteuid() != 0 {
		return homes
	}
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return homes
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 6 && strings.HasPrefix(fields[5], "/") && fields[5] != "/" {
			homes = append(homes, fields[5])
		}
	}
	return dedupePaths(homes)
}

func dedupePaths(paths []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		p = filepath.Clean(p)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// fileKind says what a file in a sessions dir is to us.
type fileKind int

const (
	kindIgnore     fileKind = iota
	kindTranscript          // live <id>.jsonl, fork and topic files
	kindArchive             // .jsonl.reset.<ts>, .jsonl.deleted.<ts>: renamed transcripts, never appended to
)

// isArchive matches reset/delete archives, plain or zstd-compressed:
// <id>.jsonl.reset.<ts>, <id>.jsonl.deleted.<ts>[.zst], ts like
// 2026-04-10T07-59-59.912Z. (By hand, not a regexp: it runs for every
// file on every poll.)
func isArchive(name string) bool {
	for _, mark := range []string{".jsonl.reset.", ".jsonl.deleted."} {
		i := strings.Index(name, mark)
		if i < 0 {
			continue
		}
		ts := strings.TrimSuffix(name[i+len(mark):], ".zst")
		if ts == "" {
			return false
		}
		for _, r := range ts {
			if !(r >= '0' && r <= '9' || r == 'T' || r == 'Z' || r == ':' || r == '.' || r == '-') {
				return false
			}
		}
		return true
	}
	return false
}

// classify decides from the name alone. Checkpoint copies duplicate their
// session (openclaw#70686), trajectory sidecars repeat usage, and .bak,
// .lock and .tmp files are writer leftovers: none of them are read.
func classify(name string) fileKind {
	switch {
	case strings.Contains(name, ".checkpoint."), strings.Contains(name, ".trajectory"),
		strings.Contains(name, ".bak"), strings.HasSuffix(name, ".lock"), strings.HasSuffix(name, ".tmp"),
		strings.Contains(name, ".tmp."), strings.Contains(name, "-tmp"):
		return kindIgnore
	case strings.HasSuffix(name, ".jsonl"):
		return kindTranscript
	case isArchive(name):
		return kindArchive
	}
	return kindIgnore
}

// sessionIDFromName takes the session id from a transcript file name:
// "<id>.jsonl", "<id>-topic-<n>.jsonl", "<ts>_<id>.jsonl" (forks), and the
// archive forms. The header line's id wins when there is one.
// forkTime is the time a fork file was made, from its name
// (<ISO time with dashes>_<session id>.jsonl: "2026-04-11T10-00-00-000Z"),
// or "" for a file that is not a fork.
func forkTime(name string) string {
	i := strings.IndexByte(name, '_')
	if i < len("2006-01-02T") || name[4] != '-' || name[10] != 'T' {
		return ""
	}
	return name[:i]
}

func sessionIDFromName(name string) string {
	base := name
	if i := strings.Index(base, ".jsonl"); i >= 0 {
		base = base[:i]
	}
	if i := strings.LastIndexByte(base, '_'); i >= 0 {
		base = base[i+1:]
	}
	return base
}

// agentDir is one agents/<agentId> folder of a state root.
type agentDir struct {
	agent       string
	sessionsDir string
}

// agentDirs lists agents/<id>/sessions folders under a state root. An
// agents/<id> that is a symlink to a directory is followed (agents moved to
// another disk); real folders come first, so when a link names a folder
// that is also listed, the folder's own name is the agent that keeps its
// files (the same file is read once, by inode).
func agentDirs(root string) ([]agentDir, error) {
	agents := filepath.Join(root, "agents")
	f, err := openDir(agents)
	if err != nil {
		return nil, err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	var out, linked []agentDir
	for _, e := range entries {
		ad := agentDir{agent: e.Name(), sessionsDir: filepath.Join(agents, e.Name(), "sessions")}
		switch {
		case e.IsDir():
			out = append(out, ad)
		case e.Type()&fs.ModeSymlink != 0:
			if st, err := os.Stat(filepath.Join(agents, e.Name())); err == nil && st.IsDir() {
				linked = append(linked, ad)
			}
		}
	}
	return append(out, linked...), nil
}

// candidates lists every transcript file of every configured source,
// stat'ed when stat is set, and the directories that were listed
// completely (only there may a missing file's cursor be dropped). Agents'
// sessions folders are listed on every core while this goroutine reads
// their sessions.json, and their files stat'ed as their listings come in
// (see workPool).
func (in *Ingester) candidates(batch *storage.Batch, stat bool) ([]candGroup, map[string]bool, error) {
	listed := map[string]bool{}
	roots, err := in.openclawRoots()
	if err != nil {
		return nil, nil, err
	}
	in.links = linkGuard{roots: slices.Concat(roots, in.claudeRoots(), in.codexRoots())}
	var pool workPool
	defer pool.wait()
	type sessionsList struct {
		ad    agentDir
		cands []candidate
		err   error
		done  chan struct{}
	}
	var lists []*sessionsList
	for _, root := range roots {
		dirs, err := agentDirs(root)
		if err != nil {
			in.log.Warn("cannot list agents", "root", root, "err", err)
			continue
		}
		for _, ad := range dirs {
			in.learnSessions(ad, batch)
			if in.skipDir(ad.sessionsDir) {
				continue
			}
			// A sessions dir has no subdirectories to walk: its listing is
			// not kept (a clean one is skipped whole, a dirty one listed again).
			in.watch.addOne(ad.sessionsDir) // before listing: a file made after it is an event
			l := &sessionsList{ad: ad, done: make(chan struct{})}
			lists = append(lists, l)
			pool.do(func(*dirHandle) {
				defer close(l.done)
				var entries []dirEntry
				if entries, l.err = listDir(ad.sessionsDir); l.err == nil {
					l.cands = sessionCandidates(ad, entries)
				}
			})
		}
	}
	var out []candGroup
	for _, l := range lists {
		<-l.done
		if l.err != nil {
			if !errors.Is(l.err, fs.ErrNotExist) {
				in.log.Warn("cannot list sessions", "dir", l.ad.sessionsDir, "err", l.err)
			}
			continue
		}
		in.dirFiles[l.ad.sessionsDir] = len(l.cands)
		out = append(out, pool.stat(l.cands, stat))
		listed[l.ad.sessionsDir] = true
	}
	claude, claudeFound, err := in.claudeCandidates(listed)
	if err != nil {
		return nil, nil, err
	}
	codex, codexFound, err := in.codexCandidates(listed)
	if err != nil {
		return nil, nil, err
	}
	out = append(out, pool.stat(claude, stat), pool.stat(codex, stat))
	var sources []Source
	for _, f := range []struct {
		kind  string
		paths []string
	}{{formatOpenClaw, roots}, {formatClaude, claudeFound}, {formatCodex, codexFound}} {
		for _, p := range f.paths {
			sources = append(sources, Source{Kind: f.kind, Path: p})
		}
	}
	in.mu.Lock()
	changed := !in.sourcesLogged || !slices.Equal(in.stats.Sources, sources)
	in.stats.Roots, in.stats.Sources = roots, sources
	in.mu.Unlock()
	if changed {
		in.sourcesLogged = true
		in.logSources(roots, claudeFound, codexFound, len(out))
	}
	return out, listed, nil
}

// Source is one folder transcripts are read from.
type Source struct {
	Kind string `json:"kind"` // openclaw, claude, codex
	Path string `json:"path"` // an OpenClaw state dir, a Claude Code projects/ dir, a Codex home
}

// logSources says what was found, when it changes: an empty list on a host
// that runs agents is the first thing a user needs to see, so then it
// warns with every place searched and how to point at the data.
func (in *Ingester) logSources(openclaw, claude, codex []string, files int) {
	level := slog.LevelInfo
	if in.final {
		level = slog.LevelDebug // a one-shot report prints its own result
	}
	if len(openclaw)+len(claude)+len(codex) == 0 {
		if !in.final {
			in.log.Warn("no transcripts found; point at them with --openclaw-dir, --claude-dir or --codex-dir (openclaw_dirs, claude_dirs, codex_dirs in the config)",
				"searched", in.searched())
		}
		return
	}
	in.log.Log(context.Background(), level, "transcript sources",
		"openclaw", openclaw, "claude", claude, "codex", codex, "transcript_files", files)
}

// searched lists every folder looked in for transcripts.
func (in *Ingester) searched() []string {
	var out []string
	if len(in.cfg.OpenClawDirs) > 0 || in.cfg.Discover {
		homes := in.cfg.Homes
		if homes == nil && in.cfg.Discover {
			homes = Homes()
		}
		if len(in.cfg.OpenClawDirs) > 0 {
			out = append(out, in.cfg.OpenClawDirs...)
		} else {
			for _, v := range []string{"OPENCLAW_STATE_DIR", "CLAWDBOT_STATE_DIR"} {
				if d := in.cfg.Env(v); d != "" {
					out = append(out, d)
				}
			}
			for _, h := range homes {
				out = append(out, filepath.Join(h, ".openclaw"), filepath.Join(h, ".openclaw-*"), filepath.Join(h, ".clawdbot"), filepath.Join(h, ".moltbot"))
			}
		}
	}
	return slices.Concat(out, in.claudeRoots(), in.codexRoots())
}

// sessionCandidates are the transcripts among the entries of an agent's
// sessions dir (entries that are not are dropped from it): regular files
// (or links to one) with a transcript's name.
func sessionCandidates(ad agentDir, entries []dirEntry) []candidate {
	n := 0
	for _, e := range entries {
		if e.regular && classify(e.name) != kindIgnore {
			entries[n] = e
			n++
		}
	}
	cands := make([]candidate, n)
	for i, e := range entries[:n] {
		cands[i] = candidate{
			path: ad.sessionsDir + string(filepath.Separator) + e.name, name: e.name, agent: ad.agent,
			sessionID: sessionIDFromName(e.name), format: formatOpenClaw, link: e.link,
		}
	}
	return cands
}

// dirEntry is a name in a directory listing.
type dirEntry struct {
	name    string
	dir     bool // a directory, or a symlink to one
	regular bool // a regular file, or a symlink to one: what can be a transcript
	link    bool // a symlink: a directory behind it is walked only if linkGuard allows
}

// readDir lists dir, unsorted (order does not matter here, and sorting is
// a measurable part of an idle poll). With the daemon's watcher on and no
// event in dir since, the last listing stands: no syscall at all.
func (in *Ingester) readDir(dir string) ([]dirEntry, error) {
	if cached, ok := in.listings[dir]; ok && in.dirty != nil && !in.dirty[dir] {
		return cached, nil
	}
	in.watch.addOne(dir) // before listing: a file made after it is an event
	out, err := listDir(dir)
	if err != nil {
		delete(in.listings, dir)
		return nil, err
	}
	in.listings[dir] = out
	return out, nil
}

// listDir lists dir, unsorted; safe for concurrent use.
func listDir(dir string) ([]dirEntry, error) {
	f, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]dirEntry, len(entries))
	for i, e := range entries {
		out[i] = dirEntry{name: e.Name(), dir: e.IsDir(), regular: e.Type().IsRegular()}
		if e.Type()&fs.ModeSymlink != 0 {
			// Rare, so the stat is affordable: a symlinked project or
			// session folder must not be skipped as a file, and a link to
			// a device or FIFO must never be opened.
			st, err := os.Stat(dir + string(filepath.Separator) + e.Name())
			out[i].link, out[i].dir, out[i].regular = true, err == nil && st.IsDir(), err == nil && st.Mode().IsRegular()
		}
	}
	return out, nil
}

// dirOf is filepath.Dir for the clean paths built here, without Clean's cost.
func dirOf(path string) string {
	if i := strings.LastIndexByte(path, filepath.Separator); i > 0 {
		return path[:i]
	}
	return filepath.Dir(path)
}

// openclawRoots resolves the configured or discovered OpenClaw state dirs.
func (in *Ingester) openclawRoots() ([]string, error) {
	if len(in.cfg.OpenClawDirs) == 0 && !in.cfg.Discover {
		return nil, nil
	}
	homes := in.cfg.Homes
	if homes == nil && in.cfg.Discover {
		homes = Homes()
	}
	roots := OpenClawRoots(in.cfg.OpenClawDirs, in.cfg.Env, homes)
	for _, root := range roots {
		if _, err := os.Stat(filepath.Join(root, "agents")); err != nil && len(in.cfg.OpenClawDirs) > 0 {
			return nil, fmt.Errorf("openclaw dir %s: no agents/ folder in it (%w)", root, err)
		}
	}
	return roots, nil
}

// learnSessions reads an agent's sessions.json when it changed and keeps
// what it says about each session id.
func (in *Ingester) learnSessions(ad agentDir, batch *storage.Batch) {
	path := filepath.Join(ad.sessionsDir, "sessions.json")
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	stamp := fileStamp{fi.Size(), fi.ModTime().UnixNano()}
	if in.stores[path] == stamp {
		return
	}
	store, err := readSessionsJSON(path)
	if err != nil {
		in.log.Warn("cannot read session store", "path", path, "err", err)
		return
	}
	in.stores[path] = stamp
	for sid, m := range store {
		id := storage.SessionMetaID(storage.SourceOpenClaw, sid)
		if in.meta[id] == m {
			continue
		}
		in.meta[id] = m
		if v, err := json.Marshal(m); err == nil {
			batch.SessionMeta[id] = v
		}
	}
}

// maxWalkDepth bounds the recursive listing of transcript folders (Claude
// Code nests two levels, Codex three): a deeper tree is not a transcript
// store, and a cycle through bind mounts must not hang a poll.
const maxWalkDepth = 6

// walkJSONL calls visit for every *.jsonl (and *.jsonl.zst) file below dir,
// with its path relative to the walk's start split into parts (rel holds
// the parts down to dir). Directories that could be listed whole are marked
// in listed; symlinked directories are followed when in.links allows it.
// It reports whether dir could be listed (also when a watched step left
// its files alone).
func (in *Ingester) walkJSONL(dir string, rel []string, listed map[string]bool, depth int, visit func(path string, rel []string, link bool)) bool {
	entries, err := in.readDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			in.warnOnce(dir, "cannot list transcripts: "+err.Error())
		}
		return false
	}
	// Subdirectories are walked whatever happens (an event deep down
	// marks only its own directory); this directory's files are left
	// alone when it can be skipped.
	skip := in.skipDir(dir)
	if !skip {
		listed[dir] = true
	}
	files := 0
	for _, e := range entries {
		name := e.name
		switch {
		case e.dir:
			sub := filepath.Join(dir, name)
			if depth < maxWalkDepth && (!e.link || in.followLink(sub)) {
				in.walkJSONL(sub, append(rel[:len(rel):len(rel)], name), listed, depth+1, visit)
			}
		case e.regular && (strings.HasSuffix(name, ".jsonl") || strings.HasSuffix(name, ".jsonl.zst")):
			files++
			if !skip {
				visit(filepath.Join(dir, name), append(rel[:len(rel):len(rel)], name), e.link)
			}
		}
	}
	if !skip {
		in.dirFiles[dir] = files
	}
	return true
}

// warnOnce logs a problem with path the first time it is seen (polls run
// every few seconds; a missing folder must not flood the log).
func (in *Ingester) warnOnce(path, msg string) {
	if in.warned[path] == msg {
		return
	}
	in.warned[path] = msg
	in.log.Warn(msg, "path", path)
}

// linkGuard decides which symlinked directories one listing of the
// sources follows. A link is followed when the directory it leads to lies
// outside every source tree and every directory followed before: a link
// back up the tree (a loop) or to a folder that is walked anyway is not,
// so nothing is walked twice and a cycle cannot make a poll explode.
type linkGuard struct {
	roots    []string // the source trees of this listing, as configured
	real     []string // the real paths of roots[:resolved]
	resolved int
	followed []string // real paths of the directories followed so far
}

// followLink reports whether the symlinked directory at path is walked,
// and logs (once) one that is not.
func (in *Ingester) followLink(path string) bool {
	g := &in.links
	real, err := realPath(path)
	if err != nil {
		in.warnOnce(path, "symlinked folder not followed: "+err.Error())
		return false
	}
	// Roots are resolved only now: most hosts have no links at all.
	for ; g.resolved < len(g.roots); g.resolved++ {
		if r, err := realPath(g.roots[g.resolved]); err == nil {
			g.real = append(g.real, r)
		}
	}
	for _, seen := range [][]string{g.real, g.followed} {
		for _, d := range seen {
			if real == d || strings.HasPrefix(real, d+string(filepath.Separator)) {
				in.warnOnce(path, "symlinked folder not followed: it leads to "+real+", which is read already (a loop, or a second name)")
				return false
			}
		}
	}
	g.followed = append(g.followed, real)
	return true
}

// realPath is path with every symlink resolved, absolute: a relative
// source dir and a link to its absolute path must compare equal.
func realPath(path string) (string, error) {
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	return filepath.Abs(p)
}
