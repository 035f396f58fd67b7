package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Process scan: the process count and the gateway processes, read straight
// from /proc (two small files per process, a third and fourth for the
// matches). Reading is split from parsing so the parsers run on fixtures.

// GatewayMatcher reports whether a process is an agent gateway, from its
// name (/proc/<pid>/comm) and argv.
type GatewayMatcher func(name string, argv []string) bool

// DefaultGatewayName is what MatchGateway looks for by default.
const DefaultGatewayName = "openclaw"

// MatchGateway matches processes whose name contains substr
// (case-insensitive), whose argv[0] file name does, or a JavaScript runtime
// (node, bun, deno) whose script path does ("node …/openclaw/dist/index.js
// gateway"). Arguments further on are not looked at: `vim ~/.openclaw/x` or
// `fleetmeter --openclaw-dir …` are not gateways.
func MatchGateway(substr string) GatewayMatcher {
	substr = strings.ToLower(substr)
	return func(name string, argv []string) bool {
		if strings.Contains(strings.ToLower(name), substr) {
			return true
		}
		if len(argv) == 0 {
			return false
		}
		if strings.Contains(strings.ToLower(filepath.Base(argv[0])), substr) {
			return true
		}
		switch strings.TrimSuffix(filepath.Base(argv[0]), ".exe") {
		case "node", "nodejs", "bun", "deno":
			for _, a := range argv[1:] {
				if strings.HasPrefix(a, "-") {
					continue // runtime flags before the script
				}
				return strings.Contains(strings.ToLower(a), substr)
			}
		}
		return false
	}
}

// procTimes is what the sampler keeps of a gateway process between steps.
type procTimes struct {
	ticks uint64 // utime + stime, in clock ticks
	start uint64 // start time after boot, in clock ticks: tells a reused pid
	rss   uint64 // bytes
}

// scanProcs counts the processes under root and reads the gateway ones
// (matched by match, never self).
func scanProcs(root string, self int, match GatewayMatcher, pageSize uint64) (count int, gateways map[int]procTimes, err error) {
	d, err := os.Open(root)
	if err != nil {
		return 0, nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, nil, err
	}
	gateways = map[int]procTimes{}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		count++
		if pid == self {
			continue
		}
		dir := filepath.Join(root, name)
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil {
			continue // exited since the listing
		}
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		if !match(strings.TrimSpace(string(comm)), parseCmdline(cmdline)) {
			continue
		}
		pt, err := readProc(dir, pageSize)
		if err != nil {
			continue
		}
		gateways[pid] = pt
	}
	return count, gateways, nil
}

func readProc(dir string, pageSize uint64) (procTimes, error) {
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return procTimes{}, err
	}
	ticks, start, err := parseProcStat(stat)
	if err != nil {
		return procTimes{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	statm, err := os.ReadFile(filepath.Join(dir, "statm"))
	if err != nil {
		return procTimes{}, err
	}
	rss, err := parseStatm(statm, pageSize)
	if err != nil {
		return procTimes{}, fmt.Errorf("%s/statm: %w", dir, err)
	}
	return procTimes{ticks: ticks, start: start, rss: rss}, nil
}

// parseCmdline splits /proc/<pid>/cmdline (NUL-separated, NUL-terminated).
func parseCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

var errProcFormat = errors.New("unexpected format")

// parseProcStat returns utime+stime and starttime from /proc/<pid>/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseProcStat(b []byte) (ticks, start uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errProcFormat
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15, starttime 22.
	if len(f) < 20 {
		return 0, 0, errProcFormat
	}
	var v [3]uint64
	for k, idx := range []int{14, 15, 22} {
		if v[k], err = strconv.ParseUint(f[idx-3], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("field %d: %w", idx, err)
		}
	}
	return v[0] + v[1], v[2], nil
}

// parseStatm returns the resident set in bytes (second field, in pages).
func parseStatm(b []byte, pageSize uint64) (uint64, error) {
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, errProcFormat
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * pageSize, nil
}
