package sync

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseDSN(t *testing.T) {
	const pw = "p@ss w0rd/é"
	for _, tc := range []struct {
		name, dsn string
		forHost   bool
		err       string // "" = valid
	}{
		{"key=value", "host=db.example.com port=6543 user=u password='" + pw + "' dbname=postgres sslmode=verify-full binary_parameters=yes", true, ""},
		{"URL", "postgres://u:p%40ss%20w0rd%2F%C3%A9@db.example.com:6543/postgres?sslmode=require&binary_parameters=yes", true, ""},
		{"URL escaped its own way", "postgres://u:p%40ss%20w0rd%2f%c3%a9@db.example.com:6543/postgres?sslmode=require&binary_parameters=yes", true, ""},
		{"admin without binary_parameters", "host=h user=u password='" + pw + "' dbname=d sslmode=require", false, ""},
		{"empty", "", true, "no DSN"},
		{"no sslmode", "host=h user=u password='" + pw + "' dbname=d binary_parameters=yes", true, "sets no sslmode"},
		{"host without binary_parameters", "host=h user=u password='" + pw + "' sslmode=require", true, "binary_parameters=yes"},
		{"bad sslmode", "host=h password='" + pw + "' sslmode=maybe binary_parameters=yes", true, "DSN"},
		{"bad URL", "postgres://u:" + pw + "@h:notaport/d?sslmode=require", true, "DSN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDSN(tc.dsn, tc.forHost)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s := d.String(); strings.Contains(s, "w0rd") || !strings.Contains(s, "u@") {
					t.Errorf("String() = %q", s)
				}
				raw := "" // u:password as written in a URL
				if _, rest, ok := strings.Cut(tc.dsn, "://"); ok {
					raw = rest[:strings.LastIndex(rest, "@")]
				}
				if got := d.redact("failed: " + pw + " in " + tc.dsn + " or " + raw); strings.Contains(got, "w0rd") || strings.Contains(got, "p%40ss") {
					t.Errorf("redact left a secret: %q", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v, want ErrConfig saying %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "w0rd") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// idStore is a Store that only knows its host id (the rest is never called).
type idStore struct {
	Store
	id string
}

func (s idStore) InstanceID() string { return s.id }

// Backoff is full jitter under an exponential ceiling capped at 5 minutes;
// after a success the next round falls on the host's own phase point, which
// differs between hosts.
func TestNextRound(t *testing.T) {
	w := &Worker{cfg: Config{Interval: 5 * time.Minute}, store: idStore{id: "host-a"}}
	w.rng = newRand("host-a")
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for failures, ceiling := range map[int]time.Duration{1: 2 * time.Second, 3: 8 * time.Second, 8: 256 * time.Second, 9: 5 * time.Minute, 50: 5 * time.Minute} {
		var longest time.Duration
		for range 2000 {
			d := w.NextRound(now, failures).Sub(now)
			if d < 0 || d > ceiling {
				t.Fatalf("failures %d: wait %s outside [0, %s]", failures, d, ceiling)
			}
			longest = max(longest, d)
		}
		if longest < ceiling*8/10 {
			t.Errorf("failures %d: longest wait %s of a %s ceiling: not full jitter", failures, longest, ceiling)
		}
	}
	a := w.NextRound(now, 0)
	if a.Sub(now) <= 0 || a.Sub(now) > 5*time.Minute || w.NextRound(a, 0).Sub(a) != 5*time.Minute {
		t.Errorf("phase point %s after %s; the one after it %s", a, now, w.NextRound(a, 0))
	}
	other := &Worker{cfg: w.cfg, store: idStore{id: "host-b"}}
	if b := other.NextRound(now, 0); b.Equal(a) {
		t.Errorf("two hosts share the phase point %s", a)
	}
}
