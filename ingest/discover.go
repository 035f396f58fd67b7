package ingest

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
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

// archiveRE matches reset/delete archives, plain or zstd-compressed.
var archiveRE = regexp.MustCompile(`\.jsonl\.(reset|deleted)\.[0-9TZ:.\-]+(\.zst)?$`)

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
	case archiveRE.MatchString(name):
		return kindArchive
	}
	return kindIgnore
}

// sessionIDFromName takes the session id from a transcript file name:
// "<id>.jsonl", "<id>-topic-<n>.jsonl", "<ts>_<id>.jsonl" (forks), and the
// archive forms. The header line's id wins when there is one.
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

// agentDirs lists agents/<id>/sessions folders under a state root.
func agentDirs(root string) ([]agentDir, error) {
	entries, err := os.ReadDir(filepath.Join(root, "agents"))
	if err != nil {
		return nil, err
	}
	var out []agentDir
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		out = append(out, agentDir{agent: e.Name(), sessionsDir: filepath.Join(root, "agents", e.Name(), "sessions")})
	}
	return out, nil
}
