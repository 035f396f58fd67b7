// Package pgtest starts a private PostgreSQL server, and a PgBouncer in
// transaction mode in front of it, on free ports of 127.0.0.1 for tests:
// real servers, never mocks. initdb refuses to run as root, so as root the
// servers run as the `postgres` user (which Debian's packages create).
//
// When the binaries are missing a test skips with a message naming them,
// unless FLEETMETER_TEST_REQUIRE_POSTGRES is set (scripts/test sets it after
// installing them): then it fails, so CI never passes by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"
)

// Role names the clusters carry, as on a Supabase project (authenticated,
// anon) plus the sync role and one login role without any grant.
const (
	SyncRole     = "fleetmeter_sync"
	NoGrantsRole = "fleetmeter_nogrants"
)

// Cluster is a running PostgreSQL (and PgBouncer) owned by a test.
type Cluster struct {
	Dir           string
	Port          int
	BouncerPort   int
	AdminPassword string
	SyncPassword  string

	bin      string // PostgreSQL's bin dir
	cred     *syscall.Credential
	mu       sync.Mutex
	pg       *exec.Cmd
	pgExited chan struct{} // closed when pg has exited
	bouncer  *exec.Cmd
	dbSeq    atomic.Int64
}

// Binaries finds initdb/postgres (the newest installed major version) and
// pgbouncer, or says what is missing.
func Binaries() (pgBin, bouncer string, err error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) < major(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil && major(dirs[i]) >= 15 {
			pgBin = dirs[i]
			break
		}
	}
	if pgBin == "" {
		if p, err := exec.LookPath("initdb"); err == nil {
			pgBin = filepath.Dir(p)
		}
	}
	bouncer, _ = exec.LookPath("pgbouncer")
	if bouncer == "" {
		if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
			bouncer = "/usr/sbin/pgbouncer"
		}
	}
	var missing []string
	if pgBin == "" {
		missing = append(missing, "PostgreSQL ≥ 15 (initdb, postgres)")
	}
	if bouncer == "" {
		missing = append(missing, "pgbouncer")
	}
	if len(missing) > 0 {
		return "", "", fmt.Errorf("%s not installed (scripts/testdeps installs them from Debian)", strings.Join(missing, " and "))
	}
	return pgBin, bouncer, nil
}

func major(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises and starts a cluster and its PgBouncer; Close (also
// registered as a cleanup of tb) stops both and deletes the files.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := start()
	if err != nil {
		skipOrFail(tb, err)
	}
	tb.Cleanup(c.Close)
	return c
}

type missingError struct{ error }

// skipOrFail skips when the servers are not installed (unless the test
// command said they must be), and fails on any other error.
func skipOrFail(tb testing.TB, err error) {
	tb.Helper()
	var missing *missingError
	if errors.As(err, &missing) && os.Getenv("FLEETMETER_TEST_REQUIRE_POSTGRES") == "" {
		tb.Skipf("upstream sync tests need a real PostgreSQL: %v", err)
	}
	tb.Fatalf("start PostgreSQL: %v", err)
}

var (
	sharedOnce sync.Once
	shared     *Cluster
	sharedErr  error
)

// Shared is one cluster for a whole test binary (initdb costs a second or
// two); each test takes its own database with NewDatabase. Call CloseShared
// from TestMain.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	sharedOnce.Do(func() { shared, sharedErr = start() })
	if sharedErr != nil {
		skipOrFail(tb, sharedErr)
	}
	return shared
}

// CloseShared stops the shared cluster, if one was started.
func CloseShared() {
	if shared != nil {
		shared.Close()
	}
}

func start() (*Cluster, error) {
	pgBin, bouncer, err := Binaries()
	if err != nil {
		return nil, &missingError{err}
	}
	c := &Cluster{bin: pgBin, AdminPassword: secret(), SyncPassword: secret()}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, initdb needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	base := "" // TMPDIR
	if c.cred != nil {
		base = "/tmp" // the postgres user must reach it: TMPDIR may be root's own
	}
	if c.Dir, err = os.MkdirTemp(base, "fleetmeter-pg-"); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if c.cred != nil {
		if err := os.Chown(c.Dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return nil, err
		}
	}
	pwfile := filepath.Join(c.Dir, "pw")
	if err := c.writeFile(pwfile, c.AdminPassword+"\n"); err != nil {
		return nil, err
	}
	out, err := c.command(filepath.Join(pgBin, "initdb"), "-D", filepath.Join(c.Dir, "data"), "-U", "postgres",
		"--pwfile", pwfile, "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	if c.Port, err = freePort(); err != nil {
		return nil, err
	}
	if err := c.StartPostgres(); err != nil {
		return nil, err
	}
	if err := c.setupRoles(); err != nil {
		return nil, err
	}
	if c.BouncerPort, err = freePort(); err != nil {
		return nil, err
	}
	if err := c.startBouncer(bouncer); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	// Pdeathsig: a test binary that dies does not leave servers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (c *Cluster) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if c.cred != nil {
		return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
	}
	return nil
}

// StartPostgres starts the server (again, after Kill or Stop) and waits
// until it answers.
func (c *Cluster) StartPostgres() error {
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		logf, err := os.OpenFile(filepath.Join(c.Dir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		// fsync off for speed: a killed server still loses nothing the OS
		// holds. synchronous_commit stays on: a commit is written out before
		// it returns, as on Supabase, or a SIGKILL would lose acknowledged rows.
		cmd := c.command(filepath.Join(c.bin, "postgres"), "-D", filepath.Join(c.Dir, "data"),
			"-p", strconv.Itoa(c.Port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+c.Dir,
			"-c", "fsync=off", "-c", "full_page_writes=off",
			"-c", "max_connections=60", "-c", "shared_buffers=32MB", "-c", "log_min_messages=warning")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start postgres: %w", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(exited) }()
		c.mu.Lock()
		c.pg, c.pgExited = cmd, exited
		c.mu.Unlock()
		// A server killed a moment ago may leave backends holding its shared
		// memory: the new one exits, and we try again.
		for time.Now().Before(deadline) {
			select {
			case <-exited:
			default:
				if c.ping() == nil {
					return nil
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not start within 30s (see %s)", filepath.Join(c.Dir, "postgres.log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) ping() error {
	db, err := sql.Open("postgres", c.AdminDSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// Kill SIGKILLs the postmaster (a crash); StartPostgres brings it back
// through crash recovery.
func (c *Cluster) Kill() {
	c.signal(syscall.SIGKILL)
}

// Stop shuts the server down cleanly (fast mode: open sessions are cut).
func (c *Cluster) Stop() {
	c.signal(syscall.SIGINT)
}

func (c *Cluster) signal(sig syscall.Signal) {
	c.mu.Lock()
	cmd, exited := c.pg, c.pgExited
	c.pg = nil
	c.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

func (c *Cluster) setupRoles() error {
	db, err := sql.Open("postgres", c.AdminDSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range []string{
		"create role authenticated nologin noinherit",
		"create role anon nologin noinherit",
		fmt.Sprintf("create role %s login noinherit password %s", SyncRole, pq.QuoteLiteral(c.SyncPassword)),
		fmt.Sprintf("create role %s login noinherit password %s", NoGrantsRole, pq.QuoteLiteral(c.SyncPassword)),
	} {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

func (c *Cluster) startBouncer(bin string) error {
	users := fmt.Sprintf("%q %q\n%q %q\n%q %q\n", "postgres", c.AdminPassword, SyncRole, c.SyncPassword, NoGrantsRole, c.SyncPassword)
	if err := c.writeFile(filepath.Join(c.Dir, "userlist.txt"), users); err != nil {
		return err
	}
	ini := fmt.Sprintf(`[databases]
* = host=127.0.0.1 port=%d
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = transaction
default_pool_size = 2
min_pool_size = 0
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
server_tls_sslmode = disable
logfile = %s
`, c.Port, c.BouncerPort, filepath.Join(c.Dir, "userlist.txt"), filepath.Join(c.Dir, "pgbouncer.log"))
	conf := filepath.Join(c.Dir, "pgbouncer.ini")
	if err := c.writeFile(conf, ini); err != nil {
		return err
	}
	cmd := c.command(bin, conf)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pgbouncer: %w", err)
	}
	go cmd.Wait()
	c.bouncer = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.BouncerPort), time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(c.Dir, "pgbouncer.log"))
	return fmt.Errorf("pgbouncer did not listen within 10s: %s", log)
}

// Close stops PgBouncer and PostgreSQL and deletes the cluster's files.
func (c *Cluster) Close() {
	if c.bouncer != nil && c.bouncer.Process != nil {
		c.bouncer.Process.Signal(syscall.SIGKILL)
	}
	c.Kill()
	if c.Dir != "" {
		os.RemoveAll(c.Dir)
	}
}

// AdminDSN connects to database db as the superuser, directly.
func (c *Cluster) AdminDSN(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=%s sslmode=disable connect_timeout=5", c.Port, c.AdminPassword, db)
}

// SyncDSN connects as the sync role, directly, the way hosts do
// (binary_parameters=yes, sslmode explicit).
func (c *Cluster) SyncDSN(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable binary_parameters=yes connect_timeout=5", c.Port, SyncRole, c.SyncPassword, db)
}

// BouncerDSN connects as the sync role through PgBouncer in transaction
// mode (Supabase's port 6543 behaves so).
func (c *Cluster) BouncerDSN(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable binary_parameters=yes connect_timeout=5", c.BouncerPort, SyncRole, c.SyncPassword, db)
}

// NewDatabase creates an empty database with Supabase's `auth` schema (a
// users table holding something the sync role must never read) and
// returns its name.
func (c *Cluster) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%s", c.dbSeq.Add(1), secret()[:6])
	admin, err := sql.Open("postgres", c.AdminDSN("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("create database " + name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	db := c.Open(tb, c.AdminDSN(name))
	for _, q := range []string{
		"create schema auth",
		"create table auth.users (id uuid primary key, email text not null)",
		"insert into auth.users values ('00000000-0000-0000-0000-000000000001', 'ceo@example.com')",
		"create schema private",
		"create table private.secrets (name text, value text)",
		"create table public.customers (id int primary key, name text)",
	} {
		if _, err := db.Exec(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	return name
}

// Open opens dsn with database/sql and closes it at the end of the test.
func (c *Cluster) Open(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func secret() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
