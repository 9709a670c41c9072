package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// QueueSchema is the schema of the job queue's tables (River).
const QueueSchema = "flows_queue"

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLockKey is the advisory lock held while migrating, so that
// several processes starting at once migrate one at a time.
const migrationLockKey = 0x666c6f7773 // "flows"

// Migration is one numbered schema change.
type Migration struct {
	Version   int
	Name      string
	SQL       string
	AppliedAt *time.Time // nil when pending
}

// Migrations returns the embedded migrations in order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		num, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %q: name must be NNNN_description.sql", name)
		}
		body, err := fs.ReadFile(migrationFS, "migrations/"+name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(rest, ".sql"), SQL: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

const bootstrapSQL = `
CREATE SCHEMA IF NOT EXISTS flows;
CREATE TABLE IF NOT EXISTS flows.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);`

// Migrate applies every pending migration, each in its own transaction,
// under an advisory lock. It returns the migrations it applied. Running it
// again is a no-op.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]Migration, error) {
	return MigrateTo(ctx, pool, math.MaxInt)
}

// MigrateTo is Migrate up to and including version, for tests of a
// migration on data written by the ones before it. The job queue's own
// migrations run only once the flows schema is complete.
func MigrateTo(ctx context.Context, pool *pgxpool.Pool, version int) ([]Migration, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	complete := true
	if i := slices.IndexFunc(all, func(m Migration) bool { return m.Version > version }); i >= 0 {
		all, complete = all[:i], false
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return nil, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", migrationLockKey) //nolint:errcheck
	if _, err := conn.Exec(ctx, bootstrapSQL); err != nil {
		return nil, fmt.Errorf("migrate: bootstrap: %w", err)
	}
	applied, err := appliedVersions(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	var done []Migration
	for _, m := range all {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO flows.schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		now := time.Now().UTC()
		m.AppliedAt = &now
		done = append(done, m)
	}
	if !complete {
		return done, nil
	}
	// The job queue's own migrations, in its schema (created by 0003).
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: QueueSchema})
	if err != nil {
		return done, fmt.Errorf("job queue migrations: %w", err)
	}
	// On the connection holding the advisory lock: concurrent migrators
	// wait on the lock holding pool connections, so asking the pool for
	// another could deadlock.
	// One version per transaction: some of River's versions add enum values
	// that later ones use, which PostgreSQL allows only once committed.
	for {
		var applied int
		err = pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			//lint:ignore SA1019 Migrate would take another pool connection while this one holds the lock (see above); one step per transaction avoids the batching the deprecation warns of.
			res, err := migrator.MigrateTx(ctx, tx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{MaxSteps: 1})
			if res != nil {
				applied = len(res.Versions)
			}
			return err
		})
		if err != nil {
			return done, fmt.Errorf("job queue migrations: %w", err)
		}
		if applied == 0 {
			break
		}
	}
	return done, nil
}

// MigrationStatus lists every known migration with its applied time (nil
// when pending).
func MigrationStatus(ctx context.Context, pool *pgxpool.Pool) ([]Migration, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('flows.schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	if exists {
		applied, err := appliedVersions(ctx, conn.Conn())
		if err != nil {
			return nil, err
		}
		for i := range all {
			if t, ok := applied[all[i].Version]; ok {
				t := t
				all[i].AppliedAt = &t
			}
		}
	}
	return all, nil
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int]time.Time, error) {
	rows, err := conn.Query(ctx, "SELECT version, applied_at FROM flows.schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	applied := map[int]time.Time{}
	for rows.Next() {
		var v int
		var t time.Time
		if err := rows.Scan(&v, &t); err != nil {
			return nil, err
		}
		applied[v] = t.UTC()
	}
	return applied, rows.Err()
}
