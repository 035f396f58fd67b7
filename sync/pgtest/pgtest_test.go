package pgtest

import "testing"

// The helper's servers answer directly and through PgBouncer, and the
// server comes back after a SIGKILL.
func TestClusterStartKillRestart(t *testing.T) {
	c := Start(t)
	name := c.NewDatabase(t)
	for _, dsn := range []string{c.SyncDSN(name), c.BouncerDSN(name)} {
		var n int
		if err := c.Open(t, dsn).QueryRow("select $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
			t.Fatalf("%d, %v", n, err)
		}
	}
	c.Kill()
	if err := c.StartPostgres(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c.Open(t, c.BouncerDSN(name)).QueryRow("select 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
}
