package rollup

import (
	"path/filepath"
	"testing"

	"github.com/fleetmeter/fleetmeter/storage"
)

// openTestDB opens a database in a temp dir and checks its integrity when
// the test ends.
func openTestDB(t testing.TB) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "f.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("integrity check: %v", err)
		}
		db.Close()
	})
	return db
}
