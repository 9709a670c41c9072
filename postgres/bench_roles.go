package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ---- flows bench roles: the cost of row-level security (migration
// 0016). Nothing in the service calls these.

// SetRowSecurityForBench turns row-level security, and the triggers 0016
// added for SQL logins and those 0020 added to put each history row's
// ESCO on it, off (on = false) or back on, on every table of the
// flows schema that has it, so that the benchmark can time the owner's
// write path without and with 0016 in the same database. It returns how
// many tables it changed. Only for a private benchmark database: with it
// off, logins would see every ESCO.
func (s *Store) SetRowSecurityForBench(ctx context.Context, on bool) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
			WHERE ns.nspname = 'flows' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
			  AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)`)
		if err != nil {
			return err
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		verb, trig := "DISABLE", "DISABLE"
		if on {
			verb, trig = "ENABLE", "ENABLE"
		}
		for _, t := range tables {
			if _, err := tx.Exec(ctx, `ALTER TABLE `+t+` `+verb+` ROW LEVEL SECURITY`); err != nil {
				return err
			}
		}
		for _, tg := range []string{"meter_shadows_05_sql_login", "meter_shadows_sql_login_scope"} {
			if _, err := tx.Exec(ctx, `ALTER TABLE flows.meter_shadows `+trig+` TRIGGER `+tg); err != nil {
				return err
			}
		}
		// And 0020's: the ESCO put on each history row as it is written,
		// by the fill triggers and inside the shadow's history and register
		// triggers (off: their bodies as 0001 wrote them).
		version := 20
		if !on {
			version = 1
		}
		for _, fn := range []string{"flows.meter_shadows_history()", "flows.meter_shadows_register_read()"} {
			def, err := functionFromMigration(version, fn)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, def); err != nil {
				return err
			}
		}
		for _, t := range tables {
			if _, err := tx.Exec(ctx, `DO $$ BEGIN
				IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '`+t+`'::regclass AND tgname = 'history_esco_fill_insert') THEN
					ALTER TABLE `+t+` `+trig+` TRIGGER history_esco_fill_insert;
					ALTER TABLE `+t+` `+trig+` TRIGGER history_esco_fill_update;
				END IF; END $$`); err != nil {
				return err
			}
		}
		n = len(tables)
		return nil
	})
	return n, translate(err, "row security")
}

// VacuumAnalyzeRegistry vacuums and analyzes the registry (after a bulk
// load, so that the policies' index-only scans are what a settled
// database gets).
func (s *Store) VacuumAnalyzeRegistry(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `VACUUM (ANALYZE) flows.meter_registry`)
	return translate(err, "meter registry")
}

// ExplainAnalyze returns the plan of sql (a query without parameters) as
// it ran, for the benchmark's --explain.
func (s *Store) ExplainAnalyze(ctx context.Context, sql string) (string, error) {
	rows, err := s.pool.Query(ctx, `EXPLAIN (ANALYZE, COSTS OFF) `+sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return "", translate(err, "explain")
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(lines, "\n"), translate(err, "explain")
}

// functionFromMigration returns migration version's definition of the
// function fn (as "flows.name()"), as a CREATE OR REPLACE statement.
func functionFromMigration(version int, fn string) (string, error) {
	ms, err := Migrations()
	if err != nil {
		return "", err
	}
	for _, m := range ms {
		if m.Version != version {
			continue
		}
		for _, create := range []string{"CREATE OR REPLACE FUNCTION " + fn, "CREATE FUNCTION " + fn} {
			if i := strings.Index(m.SQL, create); i >= 0 {
				body := m.SQL[i:]
				end := strings.Index(body, "END $$;")
				if end < 0 {
					break
				}
				return "CREATE OR REPLACE FUNCTION " + fn + body[len(create):end+len("END $$;")], nil
			}
		}
		return "", fmt.Errorf("migration %d does not define %s", version, fn)
	}
	return "", fmt.Errorf("no migration %d", version)
}
