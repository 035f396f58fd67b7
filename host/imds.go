package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// DefaultIMDSEndpoint is EC2's link-local instance metadata service.
const DefaultIMDSEndpoint = "http://169.254.169.254"

// ErrIMDS wraps every failure to learn the instance type from metadata.
var ErrIMDS = errors.New("instance metadata")

// IMDSConfig configures the opt-in metadata lookup. The zero value is off:
// nothing is ever sent unless Enabled is set.
type IMDSConfig struct {
	Enabled  bool
	Endpoint string        // default DefaultIMDSEndpoint
	Timeout  time.Duration // whole lookup (token + query); default 2 s
}

// IMDS is an IMDSv2 client: a session token from PUT /latest/api/token,
// then GET /latest/meta-data/instance-type with it.
type IMDS struct {
	endpoint string
	timeout  time.Duration
	client   *http.Client
}

// NewIMDS returns a client for cfg.Endpoint. It sends nothing until
// InstanceType is called.
func NewIMDS(cfg IMDSConfig) *IMDS {
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultIMDSEndpoint
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	return &IMDS{
		endpoint: strings.TrimRight(cfg.Endpoint, "/"),
		timeout:  cfg.Timeout,
		client: &http.Client{
			// Metadata is never fetched through a proxy (HTTP_PROXY would
			// send it off the box), and a redirect is a broken endpoint.
			Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: cfg.Timeout, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return errors.New("redirect refused")
			},
			Timeout: cfg.Timeout,
		},
	}
}

// tokenTTL is how long the session token lives; one lookup needs seconds.
const tokenTTL = "60"

var (
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9-]+$`)
	// At most 512 bytes, checked apart: a {1,512} repetition compiles
	// into a 512-state program at every start (1 ms and 350 KB for each
	// command, IMDS or not).
	tokenRE = regexp.MustCompile(`^[A-Za-z0-9+/=_.-]+$`)
)

// InstanceType asks the metadata service for the instance type
// ("t3.large"). A hanging, refusing or garbage-speaking endpoint gives an
// error wrapping ErrIMDS within the timeout.
func (c *IMDS) InstanceType(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	token, err := c.do(ctx, http.MethodPut, "/latest/api/token", http.Header{"X-Aws-Ec2-Metadata-Token-Ttl-Seconds": {tokenTTL}})
	if err != nil {
		return "", fmt.Errorf("%w token from %s: %w", ErrIMDS, c.endpoint, err)
	}
	if len(token) > 512 || !tokenRE.MatchString(token) {
		return "", fmt.Errorf("%w token from %s: not a token (%q)", ErrIMDS, c.endpoint, clip(token))
	}
	typ, err := c.do(ctx, http.MethodGet, "/latest/meta-data/instance-type", http.Header{"X-Aws-Ec2-Metadata-Token": {token}})
	if err != nil {
		return "", fmt.Errorf("%w instance-type from %s: %w", ErrIMDS, c.endpoint, err)
	}
	if !instanceTypeRE.MatchString(typ) {
		return "", fmt.Errorf("%w instance-type from %s: not an instance type (%q)", ErrIMDS, c.endpoint, clip(typ))
	}
	return typ, nil
}

// do sends one request and returns the trimmed body of a 200 answer, read
// up to 1 KiB (both answers are short; anything longer is garbage).
func (c *IMDS) do(ctx context.Context, method, path string, h http.Header) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint+path, nil)
	if err != nil {
		return "", err
	}
	req.Header = h
	resp, err := c.client.Do(req)
	if err != nil {
		if timedOut(ctx, err) {
			return "", fmt.Errorf("no answer within %s", c.timeout)
		}
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1025))
	if err != nil {
		if timedOut(ctx, err) {
			return "", fmt.Errorf("no answer within %s", c.timeout)
		}
		return "", fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	if len(body) > 1024 {
		return "", fmt.Errorf("answer longer than 1 KiB")
	}
	return strings.TrimSpace(string(body)), nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ResolveInstanceType picks the instance type advice works with: the
// configured one when set, else the metadata service's when the lookup is
// enabled, else none. source says which ("config", "imds" or "").
func ResolveInstanceType(ctx context.Context, configured string, cfg IMDSConfig) (typ, source string, err error) {
	if t := strings.TrimSpace(configured); t != "" {
		return strings.ToLower(t), "config", nil
	}
	if !cfg.Enabled {
		return "", "", nil
	}
	t, err := NewIMDS(cfg).InstanceType(ctx)
	if err != nil {
		return "", "", err
	}
	return t, "imds", nil
}

// timedOut: the context's deadline or the transport's own timer, whichever
// fired first (they are set to the same duration).
func timedOut(ctx context.Context, err error) bool {
	var ne net.Error
	return ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout()
}
