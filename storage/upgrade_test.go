package storage_test

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// Every released schema version has a fixture database in
// testdata/schema (vN.db.gz: the trap fixtures of ingest/testdata ingested
// by that version, compacted) and the reports that version printed from
// it (vN-KIND.json). Opened by this version, a file upgrades and gives the
// same reports: every figure the old version printed is unchanged (fields
// added since are not compared). A new schema version adds its fixture.
func TestUpgradeFromEveryVersion(t *testing.T) {
	for v := uint64(1); v <= storage.SchemaVersion; v++ {
		t.Run(fmt.Sprint("schema ", v), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), storage.FileName)
			gunzip(t, filepath.Join("testdata", "schema", fmt.Sprintf("v%d.db.gz", v)), path)
			db, err := storage.Open(path, storage.Options{})
			if err != nil {
				t.Fatalf("open (and upgrade) a schema %d file: %v", v, err)
			}
			defer db.Close()
			if err := db.Check(); err != nil {
				t.Fatal(err)
			}
			for _, kind := range rollup.Kinds() {
				want, err := os.ReadFile(filepath.Join("testdata", "schema", fmt.Sprintf("v%d-%s.json", v, kind)))
				if err != nil {
					t.Fatal(err)
				}
				rep, err := rollup.Build(db, rollup.Query{Kind: kind, Since: rollup.MinDay, Until: rollup.MaxDay})
				if err != nil {
					t.Fatal(err)
				}
				got, _ := json.Marshal(rep)
				var w, g any
				json.Unmarshal(want, &w)
				json.Unmarshal(got, &g)
				if path, ok := covers(g, w, kind); !ok {
					t.Errorf("%s report differs from what schema %d printed at %s", kind, v, path)
				}
			}
		})
	}
}

// covers reports whether got holds every value of want (maps may have
// more keys; lists must match element by element).
func covers(got, want any, at string) (string, bool) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return at, false
		}
		for k, wv := range w {
			if p, ok := covers(g[k], wv, at+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return at, false
		}
		for i := range w {
			if p, ok := covers(g[i], w[i], fmt.Sprintf("%s[%d]", at, i)); !ok {
				return p, false
			}
		}
		return "", true
	}
	return at, reflect.DeepEqual(got, want)
}

func gunzip(t *testing.T, from, to string) {
	t.Helper()
	f, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
