package sync

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// The upstream schema: embedded, numbered SQL files (migrations/NNNN_name.sql),
// each applied once, in its own transaction, recorded in
// public.fleetmeter_schema_migrations. `fleetmeter migrate` applies them with
// an admin DSN, once per project; hosts only check the version.

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// migrationLock is the pg_advisory_xact_lock key that serialises migrate
// runs (an arbitrary constant: "fleetmeter" in ASCII, cut to 63 bits).
const migrationLock = 0x666c6565746d6574 >> 1

const versionTable = "public.fleetmeter_schema_migrations"

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && out[len(out)-1].Version != v-1 || len(out) == 0 && v != 1 {
			return nil, fmt.Errorf("migration %s: versions must run 1, 2, 3… without gaps", e.Name())
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	return out, nil
}

// SchemaVersion is the upstream schema version this fleetmeter writes: the
// highest embedded migration.
func SchemaVersion() int {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// Migrate applies the migrations the database behind adminDSN lacks, each
// in one transaction under pg_advisory_xact_lock (two concurrent runs apply
// each migration once; a transaction-level lock also works behind a
// pooler). It returns the versions it applied and the version now in force.
// Errors never carry the DSN.
func Migrate(ctx context.Context, adminDSN string) (applied []int, version int, err error) {
	dsn, err := ParseDSN(adminDSN, false)
	if err != nil {
		return nil, 0, err
	}
	db, err := dsn.open(nil)
	if err != nil {
		return nil, 0, dsn.redactErr(err)
	}
	defer db.Close()
	ms, err := Migrations()
	if err != nil {
		return nil, 0, err
	}
	for _, m := range ms {
		did, v, err := applyMigration(ctx, db, m)
		if err != nil {
			return applied, v, dsn.redactErr(fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err))
		}
		if did {
			applied = append(applied, m.Version)
		}
		version = v
	}
	return applied, version, nil
}

// UpstreamVersion connects and reads the upstream schema version (0: the
// version table is empty), writing nothing: what `fleetmeter doctor`
// checks. Errors are explained as the worker's are and never carry the
// DSN or its password.
func (d *DSN) UpstreamVersion(ctx context.Context) (int, error) {
	db, err := d.open(nil)
	if err != nil {
		return 0, d.redactErr(err)
	}
	defer db.Close()
	var version int
	if err := db.QueryRowContext(ctx, "select coalesce(max(version), 0) from "+versionTable).Scan(&version); err != nil {
		return 0, d.explain("check the upstream schema", err)
	}
	return version, nil
}

func applyMigration(ctx context.Context, db *sql.DB, m Migration) (bool, int, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "select pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
		return false, 0, err
	}
	if _, err := tx.ExecContext(ctx, `create table if not exists `+versionTable+` (
		version    integer primary key,
		name       text not null,
		applied_at timestamptz not null default now())`); err != nil {
		return false, 0, err
	}
	var current int
	if err := tx.QueryRowContext(ctx, "select coalesce(max(version), 0) from "+versionTable).Scan(&current); err != nil {
		return false, 0, err
	}
	if current >= m.Version {
		return false, current, tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, current, err
	}
	if _, err := tx.ExecContext(ctx, "insert into "+versionTable+" (version, name) values ($1, $2)", m.Version, m.Name); err != nil {
		return false, current, err
	}
	if err := tx.Commit(); err != nil {
		return false, current, err
	}
	return true, m.Version, nil
}

// ErrSchema marks an upstream whose schema this fleetmeter cannot write:
// not migrated, behind, or newer than it knows.
var ErrSchema = errors.New("upstream schema")
