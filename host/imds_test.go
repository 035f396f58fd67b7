package host

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// metadataServer is a stand-in IMDSv2 on 127.0.0.1 (httptest listens on
// loopback only) answering instanceType.
func metadataServer(t *testing.T, instanceType string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				http.Error(w, "missing ttl", http.StatusBadRequest)
				return
			}
			w.Write([]byte("AQAEAFakeToken_1234=="))
		case r.Method == http.MethodGet && r.URL.Path == "/latest/meta-data/instance-type":
			if r.Header.Get("X-aws-ec2-metadata-token") != "AQAEAFakeToken_1234==" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			w.Write([]byte(instanceType))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestIMDSInstanceType(t *testing.T) {
	srv, hits := metadataServer(t, "t3.large\n")
	typ, src, err := ResolveInstanceType(context.Background(), "", IMDSConfig{Enabled: true, Endpoint: srv.URL + "/"})
	if err != nil || typ != "t3.large" || src != "imds" {
		t.Fatalf("got %q from %q, err %v", typ, src, err)
	}
	if hits.Load() != 2 {
		t.Errorf("%d requests, want token + instance-type", hits.Load())
	}
}

func TestIMDSOptIn(t *testing.T) {
	srv, hits := metadataServer(t, "t3.large")
	typ, src, err := ResolveInstanceType(context.Background(), "", IMDSConfig{Endpoint: srv.URL})
	if err != nil || typ != "" || src != "" {
		t.Fatalf("disabled lookup: %q %q %v", typ, src, err)
	}
	typ, src, err = ResolveInstanceType(context.Background(), " M6I.Large ", IMDSConfig{Enabled: true, Endpoint: srv.URL})
	if err != nil || typ != "m6i.large" || src != "config" {
		t.Fatalf("configured type: %q %q %v", typ, src, err)
	}
	if hits.Load() != 0 {
		t.Fatalf("metadata contacted %d times without need", hits.Load())
	}
}

func TestIMDSBadServers(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"hangs", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, "no answer within"},
		{"hangs mid-body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("AQAE"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, "no answer within"},
		{"html token", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("<html><body>captive portal</body></html>"))
		}, "not a token"},
		{"garbage instance type", func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				w.Write([]byte("tok"))
				return
			}
			w.Write([]byte("\x00\xff{\"oops\": true}"))
		}, "not an instance type"},
		{"huge answer", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(strings.Repeat("a", 5000)))
		}, "longer than 1 KiB"},
		{"IMDSv1 only", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "forbidden", http.StatusForbidden)
		}, "403"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
		}, "redirect refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			start := time.Now()
			_, err := NewIMDS(IMDSConfig{Enabled: true, Endpoint: srv.URL, Timeout: 300 * time.Millisecond}).InstanceType(context.Background())
			if err == nil || !errors.Is(err, ErrIMDS) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrIMDS saying %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), srv.URL) {
				t.Errorf("error %q does not name the endpoint", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s with a 300 ms timeout", d)
			}
		})
	}
}

func TestIMDSRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	_, err := NewIMDS(IMDSConfig{Endpoint: url, Timeout: time.Second}).InstanceType(context.Background())
	if !errors.Is(err, ErrIMDS) {
		t.Fatalf("err %v, want ErrIMDS", err)
	}
}
