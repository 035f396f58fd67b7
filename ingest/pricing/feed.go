package pricing

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
)

// The embedded table ages: `fleetmeter prices update` fetches a newer feed
// (never on its own), validates it against the feed's JSON schema and its
// own parser, and keeps it in the data dir, where it then replaces the
// embedded snapshot. A broken or foreign file never replaces a good table.

// FeedURL is where the genai-prices v2 feed is published.
const FeedURL = "https://raw.githubusercontent.com/pydantic/genai-prices/main/prices/new_data/v2/data.json"

// MaxFeedBytes bounds a feed download or file (the 2026-08 feed is 380 KB).
const MaxFeedBytes = 32 << 20

//go:embed genaiprices/data.schema.json
var feedSchemaJSON []byte

// feedSchema is the embedded schema, resolved (its $refs) for validation.
// Made per call: a feed is validated once in a long while.
func feedSchema() (*jsonschema.Resolved, error) {
	var s jsonschema.Schema
	if err := json.Unmarshal(feedSchemaJSON, &s); err != nil {
		return nil, err
	}
	return s.Resolve(nil)
}

// ErrInvalidFeed is wrapped by every error about a feed's content.
var ErrInvalidFeed = errors.New("invalid price feed")

// FeedInfo describes a price table kept in the data dir.
type FeedInfo struct {
	Source    string    `json:"source"`     // URL or file it came from
	FetchedAt time.Time `json:"fetched_at"` // when it was taken (its date)
	SHA256    string    `json:"sha256"`
	Providers int       `json:"providers"`
	Models    int       `json:"models"`
}

// feed file names inside the data dir's prices/ folder.
const (
	feedFile     = "genai-prices.json"
	feedInfoFile = "genai-prices.info.json"
)

// FeedDir is the folder of the data dir that holds an updated table.
func FeedDir(dataDir string) string { return filepath.Join(dataDir, "prices") }

// ValidateFeed checks a feed against the genai-prices JSON schema and
// parses it the way pricing will, so a feed that validates also prices.
func ValidateFeed(data []byte) (*Table, error) {
	if len(data) > MaxFeedBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidFeed, len(data), MaxFeedBytes)
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%w: not JSON", ErrInvalidFeed)
	}
	schema, err := feedSchema()
	if err != nil {
		return nil, fmt.Errorf("pricing: embedded feed schema: %w", err)
	}
	var instance any
	if err := json.Unmarshal(data, &instance); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidFeed, err)
	}
	if err := schema.Validate(instance); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidFeed, err)
	}
	t, err := parseTable(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidFeed, err)
	}
	if len(t.providers) == 0 {
		return nil, fmt.Errorf("%w: no providers", ErrInvalidFeed)
	}
	return t, nil
}

// SaveFeed validates data and keeps it in dataDir as the table to use,
// replacing any earlier one atomically. It returns what was saved.
func SaveFeed(dataDir string, data []byte, source string, now time.Time) (FeedInfo, error) {
	t, err := ValidateFeed(data)
	if err != nil {
		return FeedInfo{}, err
	}
	sum := sha256.Sum256(data)
	info := FeedInfo{Source: source, FetchedAt: now.UTC(), SHA256: hex.EncodeToString(sum[:]), Providers: len(t.providers)}
	for _, p := range t.providers {
		list, _ := p.list() // parsed whole by ValidateFeed
		info.Models += len(list)
	}
	dir := FeedDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return FeedInfo{}, fmt.Errorf("save price table: %w", err)
	}
	meta, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return FeedInfo{}, err
	}
	// The info first: a table without its info is ignored, never used
	// under another table's date.
	for _, f := range []struct {
		name string
		data []byte
	}{{feedInfoFile, meta}, {feedFile, data}} {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return FeedInfo{}, fmt.Errorf("save price table: %w", err)
		}
	}
	return info, nil
}

// LoadFeed loads the table kept in dataDir by SaveFeed. ok is false when
// there is none (the embedded snapshot applies).
func LoadFeed(dataDir string) (t *Table, info FeedInfo, ok bool, err error) {
	dir := FeedDir(dataDir)
	data, err := os.ReadFile(filepath.Join(dir, feedFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, FeedInfo{}, false, nil
	}
	if err != nil {
		return nil, FeedInfo{}, false, fmt.Errorf("price table %s: %w", dir, err)
	}
	meta, err := os.ReadFile(filepath.Join(dir, feedInfoFile))
	if err != nil {
		return nil, FeedInfo{}, false, fmt.Errorf("price table %s: no %s beside it (run `fleetmeter prices update` again): %w", dir, feedInfoFile, err)
	}
	if err := json.Unmarshal(meta, &info); err != nil {
		return nil, FeedInfo{}, false, fmt.Errorf("price table %s: %s: %w", dir, feedInfoFile, err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != info.SHA256 {
		return nil, FeedInfo{}, false, fmt.Errorf("price table %s does not match its %s (run `fleetmeter prices update` again)", dir, feedInfoFile)
	}
	if t, err = parseTable(data); err != nil {
		return nil, FeedInfo{}, false, fmt.Errorf("price table %s: %w", dir, err)
	}
	t.version, t.date = "sha256:"+info.SHA256, info.FetchedAt.Format(time.DateOnly)
	return t, info, true, nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
