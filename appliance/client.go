package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// errNoDaemon: nothing answers on the configured address.
var errNoDaemon = errors.New("no fleetmeter daemon answers")

// daemonGet asks the running daemon's API (the daemon holds the database
// lock, so the CLI reads through it). The token, if configured, is sent;
// it never appears in errors.
func daemonGet(ctx context.Context, cfg Config, path string, q url.Values) ([]byte, error) {
	var buf bytes.Buffer
	if err := daemonStream(ctx, cfg, path, q, &buf, 64<<20); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// daemonStream copies the answer to w; more than limit bytes is an error,
// never a silently cut answer.
func daemonStream(ctx context.Context, cfg Config, path string, q url.Values, w io.Writer, limit int64) error {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %q: %w", cfg.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: path, RawQuery: q.Encode()}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	if cfg.AuthToken != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.AuthToken)
	}
	if b, err := os.ReadFile(localTokenPath(cfg.DataDir)); err == nil {
		req.Header.Set("X-Fleetmeter-Local-Token", strings.TrimSpace(string(b)))
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}} // loopback: never through a proxy
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%w on %s", errNoDaemon, u.Host)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("daemon answered %s for %s: %s", resp.Status, u.Path, firstLine(body))
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", u.Path, err)
	}
	if n > limit {
		return fmt.Errorf("read %s: answer larger than %d bytes", u.Path, limit)
	}
	return nil
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' || i >= 200 {
			return string(b[:i])
		}
	}
	return string(b)
}

// openForReading opens the database read-only. When the daemon holds it,
// ok is false and the caller asks the daemon instead.
func openForReading(cfg Config) (db *storage.DB, daemon bool, err error) {
	loc, err := cfg.Location()
	if err != nil {
		return nil, false, err
	}
	db, err = storage.Open(cfg.DBPath(), storage.Options{Location: loc, ReadOnly: true, LockTimeout: 300 * time.Millisecond})
	if errors.Is(err, storage.ErrLocked) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w (run `fleetmeter ingest --once` or `fleetmeter serve` first, or pass --openclaw-dir)", err)
	}
	return db, false, nil
}
