package host

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses: fields count from the last ')'.
	stat := []byte("4242 (node (openclaw) x) S 1 4242 4242 0 -1 4194560 123 0 0 0 1500 250 0 0 20 0 11 0 987654 1234567 5000 18446744073709551615\n")
	ticks, start, err := parseProcStat(stat)
	if err != nil || ticks != 1750 || start != 987654 {
		t.Fatalf("ticks %d start %d err %v, want 1750 987654", ticks, start, err)
	}
	for _, bad := range []string{"", "42 (x) S 1 2", "42 (x) S 1 2 3 4 5 6 7 8 9 10 x 1 0 0 20 0 1 0 5 6"} {
		if _, _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	rss, err := parseStatm([]byte("120000 3000 500 10 0 9000 0\n"), 4096)
	if err != nil || rss != 3000*4096 {
		t.Fatalf("rss %d err %v", rss, err)
	}
	if _, err := parseStatm([]byte("12"), 4096); err == nil {
		t.Error("short statm: no error")
	}
	if got := parseCmdline([]byte("node\x00/opt/openclaw/dist/index.js\x00gateway\x00")); !reflect.DeepEqual(got, []string{"node", "/opt/openclaw/dist/index.js", "gateway"}) {
		t.Errorf("cmdline %q", got)
	}
	if got := parseCmdline(nil); got != nil {
		t.Errorf("empty cmdline %q", got)
	}
}

func TestMatchGateway(t *testing.T) {
	m := MatchGateway(DefaultGatewayName)
	cases := []struct {
		name string
		comm string
		argv []string
		want bool
	}{
		{"process title", "openclaw-gatewa", []string{"openclaw-gateway"}, true},
		{"binary", "oc", []string{"/usr/local/bin/OpenClaw", "gateway"}, true},
		{"node script", "node", []string{"/usr/bin/node", "--max-old-space-size=4096", "/usr/lib/node_modules/openclaw/dist/index.js", "gateway"}, true},
		{"bun script", "bun", []string{"bun", "/srv/openclaw/main.ts"}, true},
		{"other node app", "node", []string{"node", "/srv/app/server.js", "--config", "/root/.openclaw/x"}, false},
		{"editor on its config", "vim", []string{"vim", "/root/.openclaw/openclaw.json"}, false},
		{"fleetmeter pointed at it", "fleetmeter", []string{"fleetmeter", "serve", "--openclaw-dir", "/root/.openclaw"}, false},
		{"kernel thread", "kworker/0:1", nil, false},
	}
	for _, tc := range cases {
		if got := m(tc.comm, tc.argv); got != tc.want {
			t.Errorf("%s: match %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestScanProcsFixture runs the scan over a hand-made /proc.
func TestScanProcsFixture(t *testing.T) {
	root := t.TempDir()
	write := func(pid, name, content string) {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	proc := func(pid, comm, cmdline string, utime, stime, rssPages string) {
		write(pid, "comm", comm+"\n")
		write(pid, "cmdline", cmdline)
		write(pid, "stat", pid+" ("+comm+") S 1 1 1 0 -1 0 0 0 0 0 "+utime+" "+stime+" 0 0 20 0 1 0 777 1000 10\n")
		write(pid, "statm", "1000 "+rssPages+" 0 0 0 0 0\n")
	}
	proc("10", "openclaw-gatewa", "openclaw-gateway\x00", "100", "20", "50")
	proc("11", "node", "node\x00/opt/openclaw/index.js\x00", "5", "5", "25")
	proc("12", "bash", "bash\x00", "1", "1", "1")
	proc("13", "openclaw", "openclaw\x00", "1", "1", "1") // ourselves: never counted
	write("self", "comm", "x")                            // not a pid
	write("99", "status", "")                             // exited: no comm

	count, gws, err := scanProcs(root, 13, MatchGateway(DefaultGatewayName), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if count != 5 {
		t.Errorf("count %d, want 5 pid dirs", count)
	}
	want := map[int]procTimes{10: {ticks: 120, start: 777, rss: 50 * 4096}, 11: {ticks: 10, start: 777, rss: 25 * 4096}}
	if !reflect.DeepEqual(gws, want) {
		t.Errorf("gateways %+v, want %+v", gws, want)
	}
	if _, _, err := scanProcs(filepath.Join(root, "missing"), 0, MatchGateway("x"), 4096); err == nil {
		t.Error("missing proc root: no error")
	}
}
