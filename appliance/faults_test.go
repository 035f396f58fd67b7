package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

const traps = "../ingest/testdata/openclaw/traps"

// runBin runs the binary with a runtime dir of the test's own and returns
// its exit code and output; it fails the test past timeout.
func runBin(t *testing.T, bin string, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	return runBinEnv(t, bin, nil, timeout, args...)
}

// runBinEnv is runBin with env added (the last value of a name wins).
func runBinEnv(t *testing.T, bin string, env []string, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), "FLEETMETER_RUNTIME_DIR="+shortTempDir(t)), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v did not end within %s:\n%s", args, timeout, errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// A damaged database file: every command says so in one line, with what
// to do, and exits 65 (serve too: systemd's unit does not restart it in a
// loop); a backup leaves no copy; repair keeps the file aside, salvages and
// reads the transcripts again, after which the reports are whole. Before,
// a file cut short crashed every command with SIGBUS, damaged pages with a
// bbolt panic, and backup copied the damage and exited 0.
func TestDamagedDatabase(t *testing.T) {
	bin := binary(t)
	clean := t.TempDir()
	if code, _, stderr := runBin(t, bin, time.Minute, "ingest", "--once", "--openclaw-dir", traps, "--data-dir", clean); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	_, golden, _ := runBin(t, bin, time.Minute, "report", "daily", "--json", "--data-dir", clean)
	original, err := os.ReadFile(filepath.Join(clean, storage.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, damage := range []struct {
		name string
		fn   func([]byte) []byte
	}{
		{"cut short", func(b []byte) []byte { return b[:3*4096] }},
		{"bytes flipped", func(b []byte) []byte {
			for p := 2; p < len(b)/4096; p++ {
				b[p*4096+8] ^= 0x40 // the page's flags: no longer a branch or leaf
			}
			return b
		}},
	} {
		t.Run(damage.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, storage.FileName)
			if err := os.WriteFile(db, damage.fn(append([]byte(nil), original...)), 0o600); err != nil {
				t.Fatal(err)
			}
			backup := filepath.Join(t.TempDir(), "copy.db")
			for _, args := range [][]string{
				{"serve", "--listen", "127.0.0.1:0", "--openclaw-dir", traps},
				{"report", "daily"},
				{"report", "session", "--json"},
				{"advise"},
				{"ingest", "--once", "--openclaw-dir", traps},
				{"rollup", "rebuild"},
				{"compact"},
				{"backup", backup},
				{"doctor", "--openclaw-dir", traps},
			} {
				code, out, stderr := runBin(t, bin, 30*time.Second, append(args, "--data-dir", dir)...)
				if args[0] == "doctor" {
					// The damage is told once, in the database check.
					_, detail, _ := strings.Cut(out, "FAIL  database")
					detail, _, _ = strings.Cut(strings.TrimSpace(detail), "\n")
					if detail == "" || strings.Count(out+stderr, detail) != 1 {
						t.Errorf("doctor tells the damage %d times:\n%s%s", strings.Count(out+stderr, detail), out, stderr)
					}
				}
				lines := strings.Split(strings.TrimSpace(stderr), "\n")
				last := lines[len(lines)-1]
				if code != exitDamaged || !strings.Contains(last, "is damaged") || !strings.Contains(last, "fleetmeter repair") {
					t.Errorf("%v: exit %d, last line %q; want %d saying the file is damaged and what to do", args, code, last, exitDamaged)
				}
				if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") || strings.Contains(stderr, "SIGBUS") {
					t.Errorf("%v: a crash instead of a message:\n%s", args, stderr)
				}
			}
			if _, err := os.Stat(backup); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a backup of the damaged file was written")
			}
			code, out, stderr := runBin(t, bin, time.Minute, "repair", "--openclaw-dir", traps, "--data-dir", dir)
			if code != 0 || !strings.Contains(out, "kept the damaged file as") {
				t.Fatalf("repair: exit %d\n%s%s", code, out, stderr)
			}
			aside, _ := filepath.Glob(db + ".damaged-*")
			if len(aside) != 1 {
				t.Errorf("damaged file kept aside: %v", aside)
			}
			if code, got, stderr := runBin(t, bin, time.Minute, "report", "daily", "--json", "--data-dir", dir); code != 0 || got != golden {
				t.Errorf("after repair: exit %d %s\n%s\nwant\n%s", code, stderr, got, golden)
			}
		})
	}
}

// mountTmpfs mounts a small tmpfs for the test, or skips it saying why.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs to fill needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file into dir until its filesystem is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatal(err)
		}
	}
}

// On a full disk serve starts, says why it is degraded, and health, the
// status and /metrics show a failing ingest step at once; with space
// freed the disk problem clears. Before, serve could not write its token
// file, logged "started" and exited 1.
func TestServeOnFullDisk(t *testing.T) {
	bin := binary(t)
	dataDir := filepath.Join(mountTmpfs(t, "8m"), "data")
	oc := t.TempDir()
	sessions := filepath.Join(oc, "agents", "main", "sessions")
	if err := os.MkdirAll(sessions, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runBin(t, bin, time.Minute, "ingest", "--once", "--openclaw-dir", oc, "--data-dir", dataDir); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	filler := fill(t, filepath.Dir(dataDir))
	rt := shortTempDir(t)
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--openclaw-dir", oc, "--listen", "127.0.0.1:0", "--poll-interval", "200ms")
	cmd.Env = append(os.Environ(), "FLEETMETER_RUNTIME_DIR="+rt, "FLEETMETER_BROWSER_LOGIN=false")
	var log syncBuffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	var base string
	for deadline := time.Now().Add(20 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := listenRE.FindStringSubmatch(log.String()); m != nil {
			base = "http://" + m[1]
		}
	}
	select {
	case <-exited:
		t.Fatalf("serve exited on a full disk (%v):\n%s", exitErr, log.String())
	case <-time.After(time.Second):
	}
	if base == "" || !strings.Contains(log.String(), "degraded") || !strings.Contains(log.String(), "full") {
		t.Fatalf("no start, or no word of the full disk in the log:\n%s", log.String())
	}
	env := map[string]string{"FLEETMETER_DATA_DIR": dataDir, "FLEETMETER_RUNTIME_DIR": rt}
	healthz := func() (int, string) {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := healthz(); code != 503 || !strings.Contains(body, "full") {
		t.Errorf("/healthz on a full disk: %d %q", code, body)
	}
	if code, _, stderr := cli(t, env, "health"); code != 1 || !strings.Contains(stderr, "full") {
		t.Errorf("health on a full disk: exit %d %q", code, stderr)
	}
	// New calls cannot be stored: the failing step shows in health, the
	// status and /metrics at once.
	line := `{"type":"message","timestamp":"2026-04-10T08:00:00.000Z","message":{"role":"assistant","provider":"anthropic","model":"m","usage":{"input":100,"output":10},"timestamp":1775808000000,"responseId":"r%d","content":[{"type":"text","text":"%s"}]}}` + "\n"
	f, err := os.OpenFile(filepath.Join(sessions, "s.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seen bool
	for i, deadline := 0, time.Now().Add(20*time.Second); !seen && time.Now().Before(deadline); i++ {
		fmt.Fprintf(f, line, i, strings.Repeat("x", 100_000))
		_, out, _ := cli(t, env, "health", "--json")
		seen = strings.Contains(out, `"last_error": "`) && strings.Contains(out, "ingest is failing")
		time.Sleep(100 * time.Millisecond)
	}
	if !seen {
		t.Fatalf("a failing ingest step never showed in the status:\n%s", log.String())
	}
	if os.Remove(filler) != nil {
		t.Fatal("cannot free the space")
	}
	var code int
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, body = healthz(); !strings.Contains(body, "full") {
			break
		}
	}
	if strings.Contains(body, "full") {
		t.Errorf("the full disk is still reported after freeing space: %d %q", code, body)
	}
}

// A client that stalls in a backup download does not stall the database:
// the copy is made to a file first, then streamed. Before, the stream held
// a read transaction, and a commit that grew the file waited for it.
func TestStalledBackupClient(t *testing.T) {
	cfg := testConfig(t)
	cfg.PollInterval = time.Hour
	genFleet(t, cfg.DataDir, fleetSpec{days: 30, records: 20_000, agents: 10, users: 20, models: 3}, time.Now())
	app := startApp(t, cfg)
	conn, err := net.Dial("unix", cfg.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/backup HTTP/1.1\r\nHost: fleetmeter\r\n\r\n")
	head := make([]byte, 1024)
	if _, err := io.ReadFull(conn, head); err != nil || !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
		t.Fatalf("backup: %v %q", err, head[:min(len(head), 40)])
	}
	// The client reads no more. Commits that grow the file go on.
	st, _ := os.Stat(cfg.DBPath())
	start := time.Now()
	for i := 0; ; i++ {
		var b storage.Batch
		for j := range 2000 {
			b.Records = append(b.Records, storage.Usage{TS: time.Now().UnixMilli(), Source: storage.SourceOpenClaw, Agent: "a", SessionID: "s",
				Provider: "p", Model: "m", Input: 1, SessionKey: strings.Repeat("k", 500), CostSource: storage.CostUnpriced, DedupeKey: fmt.Sprint("grow", i, j)})
		}
		applied := make(chan error, 1)
		go func() { _, err := app.db.Apply(&b); applied <- err }()
		select {
		case err := <-applied:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("a commit waited 10 s behind a stalled backup client")
		}
		if now, _ := os.Stat(cfg.DBPath()); now.Size() > 2*st.Size() {
			break
		}
	}
	t.Logf("the file grew from %d to past %d MB in %s while the backup client stalled", st.Size()>>20, 2*st.Size()>>20, time.Since(start).Round(time.Millisecond))
	if code, _, stderr := cli(t, map[string]string{"FLEETMETER_DATA_DIR": cfg.DataDir, "FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}, "report", "daily"); code != 0 {
		t.Errorf("a report during the stall: exit %d %s", code, stderr)
	}
}

// A clock five years ahead: retention prunes nothing the newest records
// would keep, and at most a week's worth when the records jumped too;
// /metrics follows the sample just taken, not the future-dated rows.
// Before, the first retention run deleted the whole ledger for good.
func TestClockJump(t *testing.T) {
	cfg := testConfig(t)
	now := time.Now().UTC()
	genFleet(t, cfg.DataDir, fleetSpec{days: 60, records: 6000, agents: 5, users: 10, models: 2}, now)
	app, err := New(cfg, newLogger(Config{LogLevel: "error", LogFormat: "text"}, os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	count := func() int {
		st, err := app.db.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return st.LedgerRecords
	}
	slots := func() int {
		rows, err := app.db.HostRollups5m(0, now.AddDate(10, 0, 0).UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}
	records, slotRows := count(), slots()
	future := now.AddDate(5, 0, 0)
	app.Now = func() time.Time { return future }
	if err := app.retention(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != records {
		t.Errorf("retention with the clock 5 years ahead pruned %d of %d records", records-n, records)
	}
	if n := slots(); n != slotRows {
		t.Errorf("retention with the clock 5 years ahead pruned %d of %d 5-minute host rows", slotRows-n, slotRows)
	}
	// The agents' clock jumped as well: their new calls are dated 2031.
	var b storage.Batch
	for i := range 10 {
		b.Records = append(b.Records, storage.Usage{TS: future.UnixMilli() + int64(i), Source: storage.SourceOpenClaw, Agent: "a", SessionID: "s",
			Provider: "p", Model: "m", Input: 1, CostSource: storage.CostUnpriced, DedupeKey: fmt.Sprint("future", i)})
	}
	if _, err := app.db.Apply(&b); err != nil {
		t.Fatal(err)
	}
	oldest, _, _, _, err := app.db.LedgerSpan()
	if err != nil {
		t.Fatal(err)
	}
	var week int
	if err := app.db.Ledger(0, oldest+retentionStep.Milliseconds(), func(*storage.Usage) error { week++; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := app.retention(); err != nil {
		t.Fatal(err)
	}
	if pruned := records + 10 - count(); pruned > week {
		t.Errorf("one retention run pruned %d records; at most a week's (%d) may go", pruned, week)
	}
	// Future-dated samples do not freeze /metrics once the clock is back.
	if _, err := app.sampler.Step(context.Background(), future); err != nil {
		t.Fatal(err)
	}
	if _, err := app.sampler.Step(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	var m bytes.Buffer
	app.writeMetrics(&m)
	var ts float64
	for _, l := range strings.Split(m.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "fleetmeter_host_sample_timestamp_sec "); ok {
			fmt.Sscan(v, &ts)
		}
	}
	if int64(ts) != now.Unix() {
		t.Errorf("/metrics says the last sample is from %v, want the one just taken (%v)", time.Unix(int64(ts), 0).UTC(), now)
	}
}

// A data dir that belongs to another user is refused, not used as is (the
// database and what lands beside it would end up theirs).
func TestDataDirOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a dir to another user needs root")
	}
	dir := filepath.Join(t.TempDir(), "theirs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"ingest", "--once", "--openclaw-dir", traps}, {"serve", "--openclaw-dir", traps, "--listen", "127.0.0.1:0"}} {
		code, _, stderr := cli(t, nil, append(args, "--data-dir", dir)...)
		if code != 1 || !strings.Contains(stderr, "belongs to uid 65534") {
			t.Errorf("%v: exit %d %q", args, code, stderr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files left in another user's dir: %v", entries)
	}
}

// Whatever listens on the configured TCP port gets nothing from the CLI:
// it talks to the daemon over the socket only. Before, `health` sent the
// auth token there, and `backup` the token that downloads the database.
func TestCLISendsNothingToTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	env := map[string]string{"FLEETMETER_LISTEN": ln.Addr().String(), "FLEETMETER_AUTH_TOKEN": "s3cret", "FLEETMETER_DATA_DIR": t.TempDir()}
	for _, args := range [][]string{{"health"}, {"backup", filepath.Join(t.TempDir(), "b.db")}, {"report", "daily"}, {"advise"}, {"login"}} {
		if code, _, stderr := cli(t, env, args...); code == 0 || strings.Contains(stderr, "s3cret") {
			t.Errorf("%v without a daemon: exit %d %q", args, code, stderr)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the CLI connected %d times to the TCP port", n)
	}
}

// Through the daemon, a report of more session rows than a page holds is
// read page by page and equals the database's.
func TestSessionReportThroughTheDaemon(t *testing.T) {
	cfg := testConfig(t)
	cfg.PollInterval = time.Hour
	cfg.NoDiscover = true // the machine's own transcripts (~/.claude…) would add sessions
	genFleet(t, cfg.DataDir, fleetSpec{days: 60, records: 6000, agents: 25, users: 10, models: 2}, time.Now())
	app := startApp(t, cfg)
	want, err := rollup.Build(app.db, rollup.Query{Kind: "session", Since: rollup.MinDay, Until: rollup.MaxDay})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(want.Rows.([]rollup.SessionRow)); n <= rollup.MaxPage {
		t.Fatalf("only %d sessions: not more than a page", n)
	}
	code, out, stderr := cli(t, map[string]string{"FLEETMETER_DATA_DIR": cfg.DataDir, "FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}, "report", "session", "--json")
	if code != 0 {
		t.Fatalf("exit %d %s", code, stderr)
	}
	got, err := rollup.DecodeReport("session", []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if !equalJSON(got.Rows, want.Rows) || got.Totals != want.Totals {
		t.Errorf("%d sessions through the daemon, %d in the database", len(got.Rows.([]rollup.SessionRow)), len(want.Rows.([]rollup.SessionRow)))
	}
	var status struct{ Healthy bool }
	if code, out, _ := cli(t, map[string]string{"FLEETMETER_RUNTIME_DIR": cfg.RuntimeDir}, "health", "--json"); code != 0 || json.Unmarshal([]byte(out), &status) != nil || !status.Healthy {
		t.Errorf("health: exit %d %s", code, out)
	}
}

// The retention horizon and its clamps, in days before "now".
func TestHorizon(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	day := (24 * time.Hour).Milliseconds()
	at := func(days int) int64 { return now.UnixMilli() - int64(days)*day }
	for _, tc := range []struct {
		name           string
		oldest, newest int64
		want           int64
		held           bool
	}{
		{"a daily run", at(401), at(0) - 60_000, at(400) - 60_000, false},
		{"younger than retention", at(100), at(0), at(400), false},
		{"a clock 5 years ahead: the newest data's age rules", at(5*365 + 300), at(5 * 365), at(5*365 + 400), true},
		{"and the calls stamped by it too: a week at a time", at(5*365 + 300), at(0), at(5*365 + 300 - 7), true},
		{"a month without calls: 400 days before the newest", at(430), at(30), at(430), true},
	} {
		cut, held := horizon(now, 400*24*time.Hour, tc.oldest, tc.newest)
		if cut != tc.want || held != tc.held {
			t.Errorf("%s: cut %d days ago (held %v), want %d (%v)", tc.name, (now.UnixMilli()-cut)/day, held, (now.UnixMilli()-tc.want)/day, tc.held)
		}
	}
}
