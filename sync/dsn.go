package sync

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// DSN is a parsed upstream connection string. It never prints its secret:
// String gives a description without the password, and every error that
// leaves this package passes through redactErr.
type DSN struct {
	cfg     pq.Config
	secrets []string // the password as written and as parsed, and the whole DSN
}

// ErrConfig marks a DSN or setting that cannot work: retrying does not help.
var ErrConfig = errors.New("upstream config")

// ParseDSN checks an upstream DSN (key=value or postgres:// URL). The TLS
// mode must be explicit: lib/pq's default is changing from require to
// prefer, which silently falls back to plaintext. A host's DSN (forHost)
// must also set binary_parameters=yes: through a transaction-mode pooler
// (Supabase's port 6543) lib/pq otherwise sends a parameterised query in
// two round trips that can land on different server connections, and gets
// another client's results without an error.
func ParseDSN(dsn string, forHost bool) (*DSN, error) {
	d := &DSN{secrets: []string{dsn}}
	if dsn == "" {
		return nil, fmt.Errorf("%w: no DSN (set supabase_dsn, FLEETMETER_SUPABASE_DSN or FLEETMETER_SUPABASE_DSN_FILE)", ErrConfig)
	}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			d.secrets = append(d.secrets, p, url.QueryEscape(p), url.PathEscape(p), u.User.String())
		}
		// The password as written, in whatever escaping the user chose.
		if _, rest, ok := strings.Cut(dsn, "://"); ok {
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				if _, raw, ok := strings.Cut(rest[:at], ":"); ok {
					d.secrets = append(d.secrets, raw)
				}
			}
		}
	}
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, d.redactErr(fmt.Errorf("%w: DSN: %v", ErrConfig, err))
	}
	if cfg.Password != "" {
		d.secrets = append(d.secrets, cfg.Password)
	}
	d.cfg = cfg
	if cfg.SSLMode == "" {
		return nil, fmt.Errorf("%w: the DSN sets no sslmode: say it explicitly, e.g. sslmode=verify-full sslrootcert=/etc/fleetmeter/supabase-ca.crt (sslmode=disable only for a server on this machine)", ErrConfig)
	}
	if forHost && !cfg.BinaryParameters {
		return nil, fmt.Errorf("%w: the DSN lacks binary_parameters=yes, without which lib/pq is not safe behind a transaction-mode pooler such as Supabase's port 6543", ErrConfig)
	}
	if cfg.ConnectTimeout == 0 {
		d.cfg.ConnectTimeout = 10 * time.Second
	}
	return d, nil
}

// String describes the target without secrets: user@host:port/db (sslmode).
func (d *DSN) String() string {
	return fmt.Sprintf("%s@%s:%d/%s (sslmode=%s)", d.cfg.User, d.cfg.Host, d.cfg.Port, d.cfg.Database, d.cfg.SSLMode)
}

// redact removes the DSN and its password from s.
func (d *DSN) redact(s string) string {
	if d == nil {
		return s
	}
	for _, sec := range d.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "********")
		}
	}
	return s
}

// redactErr is err with its text redacted; errors.Is still sees ErrConfig
// and ErrSchema.
func (d *DSN) redactErr(err error) error {
	if err == nil {
		return nil
	}
	msg := d.redact(err.Error())
	if msg == err.Error() {
		return err
	}
	for _, sentinel := range []error{ErrConfig, ErrSchema} {
		if errors.Is(err, sentinel) {
			return &redactedError{msg: msg, is: sentinel}
		}
	}
	return &redactedError{msg: msg}
}

type redactedError struct {
	msg string
	is  error
}

func (e *redactedError) Error() string        { return e.msg }
func (e *redactedError) Is(target error) bool { return e.is != nil && target == e.is }

// open makes a database/sql handle with the counting dialer. No connection
// is made until first use.
func (d *DSN) open(wire *wireStats) (*sql.DB, error) {
	c, err := pq.NewConnectorConfig(d.cfg)
	if err != nil {
		return nil, err
	}
	if wire == nil {
		wire = &wireStats{}
	}
	c.Dialer(wire)
	return sql.OpenDB(c), nil
}

// wireStats dials connections that count what is written to the server:
// bytes, and writes, which for lib/pq are round trips (each message batch
// is one write, then it waits for the answer).
type wireStats struct {
	Dialer *net.Dialer // nil: a default one
	bytes  atomic.Int64
	writes atomic.Int64
}

func (w *wireStats) dialer() *net.Dialer {
	if w.Dialer != nil {
		return w.Dialer
	}
	return &net.Dialer{KeepAlive: 30 * time.Second}
}

func (w *wireStats) Dial(network, address string) (net.Conn, error) {
	return w.DialContext(context.Background(), network, address)
}

func (w *wireStats) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return w.DialContext(ctx, network, address)
}

func (w *wireStats) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := w.dialer().DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, w: w}, nil
}

type countingConn struct {
	net.Conn
	w *wireStats
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w.bytes.Add(int64(n))
	c.w.writes.Add(1)
	return n, err
}
