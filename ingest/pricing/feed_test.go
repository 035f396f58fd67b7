package pricing

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFeedValidateSaveLoad(t *testing.T) {
	if _, err := ValidateFeed(feedJSON); err != nil {
		t.Fatalf("the embedded feed does not validate: %v", err)
	}
	for name, bad := range map[string]string{
		"not JSON":           `[{"id": "x",`,
		"wrong shape":        `{"providers": []}`,
		"schema violation":   `[{"id": "acme", "name": "Acme", "api_pattern": "x", "models": "none"}]`,
		"unparsable price":   `[{"id": "acme", "name": "Acme", "api_pattern": "x", "models": [{"id": "m", "match": {"equals": "m"}, "prices": {"input_mtok": "cheap"}}]}]`,
		"empty list of them": `[]`,
	} {
		if _, err := ValidateFeed([]byte(bad)); !errors.Is(err, ErrInvalidFeed) {
			t.Errorf("%s: err = %v, want ErrInvalidFeed", name, err)
		}
	}

	// A feed the parser would take but the schema does not (a provider
	// member it does not know): the schema is checked.
	extra := bytes.Replace(feedJSON, []byte(`"id":`), []byte(`"unknown_member": 1, "id":`), 1)
	if _, err := ValidateFeed(extra); !errors.Is(err, ErrInvalidFeed) || !strings.Contains(err.Error(), "unknown_member") {
		t.Errorf("a provider member the schema does not allow: err = %v", err)
	}

	dir := t.TempDir()
	if _, _, ok, err := LoadFeed(dir); ok || err != nil {
		t.Fatalf("no saved feed: ok %v err %v", ok, err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	info, err := SaveFeed(dir, feedJSON, "test", now)
	if err != nil {
		t.Fatal(err)
	}
	if info.Providers != 36 || info.Models < 500 {
		t.Errorf("info %+v", info)
	}
	tbl, got, ok, err := LoadFeed(dir)
	if err != nil || !ok || got.SHA256 != info.SHA256 || tbl.Date() != "2026-11-30" {
		t.Fatalf("load: %v %v %+v date %q", ok, err, got, tbl.Date())
	}
	// A saved table prices like the embedded one, under another fingerprint.
	emb, _ := LoadTable()
	a, b := NewPricer(emb, nil), NewPricer(tbl, nil)
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("the saved table has the embedded table's fingerprint")
	}
	pa, _, _ := a.Lookup("anthropic", "claude-opus-4-6", now)
	pb, _, _ := b.Lookup("anthropic", "claude-opus-4-6", now)
	if pa != pb {
		t.Errorf("prices differ: %+v vs %+v", pa, pb)
	}
	// A file changed behind fleetmeter's back is refused, not used.
	if err := os.WriteFile(filepath.Join(FeedDir(dir), feedFile), []byte(`[]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := LoadFeed(dir); err == nil {
		t.Error("a tampered table loads")
	}
	// A broken feed never replaces a good one.
	if _, err := SaveFeed(dir, []byte(`not json`), "test", now); err == nil {
		t.Error("a broken feed was saved")
	}
}
