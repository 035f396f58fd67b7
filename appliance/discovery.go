package appliance

import (
	"fmt"
	"strings"
)

// notDiscovered is a kind of agent data that discovery would find but
// that is not read, because a source dir was named: naming any of
// --openclaw-dir, --claude-dir, --codex-dir (or their config keys or
// variables) turns discovery off for every kind, by design (the named
// dirs are then exactly what is read). It is told at start-up and by the
// doctor, so it is not a silent gap.
type notDiscovered struct {
	Kind  string   // "Claude Code"
	Dirs  []string // what discovery finds
	Given string   // what turned discovery off: "--openclaw-dir", "FLEETMETER_OPENCLAW_DIRS", "openclaw_dirs in FILE"
	Flag  string   // the flag that would add them: "--claude-dir"
}

func (n notDiscovered) String() string {
	return fmt.Sprintf("%s at %s not read: %s given", n.Kind, strings.Join(n.Dirs, ", "), n.Given)
}

// Fix says how to read them.
func (n notDiscovered) Fix() string {
	add := make([]string, len(n.Dirs))
	for i, d := range n.Dirs {
		add[i] = n.Flag + " " + d
	}
	return fmt.Sprintf("add %s, or drop the source flags to discover every kind", strings.Join(add, " "))
}

// undiscovered lists the kinds that cfg's named source dirs keep from
// being discovered and that discovery (as ingest does it, for getenv and
// homes; nil: ingest.Homes()) would find; none when no dir is named or
// --no-discover asks for exactly the named dirs.
func undiscovered(cfg Config, getenv func(string) string, homes []string) []notDiscovered {
	if !hasSourceDirs(cfg) || cfg.NoDiscover {
		return nil
	}
	given := ""
	for _, k := range []string{"openclaw_dirs", "claude_dirs", "codex_dirs"} {
		if o := cfg.Origin(k); o != "" {
			given = strings.TrimPrefix(o, "flag ")
			break
		}
	}
	if given == "" {
		given = "a source dir" // set in code (tests)
	}
	found := ingestSources(getenv, homes)
	var out []notDiscovered
	for _, k := range []struct {
		kind, flag string
		named      []string
		found      []string
	}{
		{"OpenClaw", "--openclaw-dir", cfg.OpenClawDirs, found.OpenClaw},
		{"Claude Code", "--claude-dir", cfg.ClaudeDirs, found.Claude},
		{"Codex", "--codex-dir", cfg.CodexDirs, found.Codex},
	} {
		if len(k.named) == 0 && len(k.found) > 0 {
			out = append(out, notDiscovered{Kind: k.kind, Dirs: k.found, Given: given, Flag: k.flag})
		}
	}
	return out
}
