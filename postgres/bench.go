package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// EnableOnlySyncersAt enables the syncers of meter_metrics that run at freq
// and disables every other one (flows bench sync times one frequency's set
// on its own).
func (s *Store) EnableOnlySyncersAt(ctx context.Context, freq flows.Frequency) error {
	_, err := s.pool.Exec(ctx, `UPDATE flows.meter_metrics SET enabled = (run_frequency = $1)`, string(freq))
	return translate(err, "meter metrics")
}

// CountFreshBalances returns how many meter shadows have had their hourly
// set applied: a "csq" key in synced_at (every kind of meter reads its
// signal; three-phase meters have no balance).
func (s *Store) CountFreshBalances(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM flows.meter_shadows WHERE synced_at ? 'csq'`).Scan(&n)
	if err != nil {
		return 0, translate(err, "meter shadows")
	}
	return n, nil
}

// CountFailedUnsynced counts the meters not synced yet whose last sync
// failed: a benchmark waiting for the whole fleet stops waiting for them
// (they are due again at their next slot, not within the wave).
func (s *Store) CountFailedUnsynced(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM flows.meter_shadows ms JOIN flows.meter_sync_state st ON st.meter_id = ms.id
		WHERE NOT (ms.synced_at ? 'csq') AND st.consecutive_failures > 0`).Scan(&n)
	return n, translate(err, "meter sync state")
}

// QueueJobStates summarises the job queue as "state=count" pairs separated
// by spaces ("available=3 running=40"), or "" when the queue is empty.
func (s *Store) QueueJobStates(ctx context.Context) (string, error) {
	var states string
	err := s.pool.QueryRow(ctx, `SELECT coalesce(string_agg(state || '=' || n, ' '), '')
		FROM (SELECT state::text, count(*) n FROM `+QueueSchema+`.river_job GROUP BY 1) x`).Scan(&states)
	if err != nil {
		return "", translate(err, "queue jobs")
	}
	return states, nil
}

// ---- Interval-data benchmarks (flows bench backfill, flows bench
// intervals). Everything below writes or reads a private benchmark
// database in bulk; nothing in the service calls it.

// EnableOnlySyncer enables the syncer called name and disables every
// other one (flows bench backfill runs SyncerProfileLogs alone).
func (s *Store) EnableOnlySyncer(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE flows.meter_metrics SET enabled = (name = $1)
		WHERE EXISTS (SELECT 1 FROM flows.meter_metrics WHERE name = $1)`, name)
	if err == nil && tag.RowsAffected() == 0 {
		return flows.FieldError("syncer", "no syncer is called %q", name)
	}
	return translate(err, "meter metrics")
}

// CommissionRegistersAt sets every register's start_time (the meter's
// commissioning, from which its profile is collected) to at.
func (s *Store) CommissionRegistersAt(ctx context.Context, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE flows.meter_registers SET start_time = $1`, at.UTC())
	return translate(err, "meter registers")
}

// CountSyncedAt returns how many meters have had a scheduled sync at freq.
func (s *Store) CountSyncedAt(ctx context.Context, freq flows.Frequency) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM flows.meter_sync_state WHERE last_run ? $1`, string(freq)).Scan(&n)
	return n, translate(err, "sync state")
}

// ActiveJobs returns how many jobs of the named River queues are yet to
// finish (available, pending, scheduled, running or retryable).
func (s *Store) ActiveJobs(ctx context.Context, queues ...string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+QueueSchema+`.river_job
		WHERE queue = ANY($1) AND state IN ('available', 'pending', 'scheduled', 'running', 'retryable')`, queues).Scan(&n)
	return n, translate(err, "queue jobs")
}

// ProfileCompleteness is how much of a fleet's profile a window holds.
type ProfileCompleteness struct {
	Meters   int   // the meters counted
	Complete int   // those with every record of the window, both logs
	Missing  int64 // half hours of either log missing, over them all
}

// ProfileCompleteness counts, for the meters with the given serials, the
// records in [from, to] (UTC half hours) that both profile logs have
// given (import A and export A, as ProfileGaps counts them), against every
// half hour of the window.
func (s *Store) ProfileCompleteness(ctx context.Context, serials []string, from, to time.Time) (ProfileCompleteness, error) {
	want := int64(to.Sub(from)/(30*time.Minute)) + 1
	var c ProfileCompleteness
	err := s.pool.QueryRow(ctx, `
		SELECT count(*)::int, (count(*) FILTER (WHERE n1 >= $3 AND n2 >= $3))::int, coalesce(sum(($3 - n1) + ($3 - n2)), 0)::int8
		FROM flows.meter_registry r
		CROSS JOIN LATERAL (SELECT count(p.import_a_wh) AS n1, count(p.export_a_wh) AS n2 FROM flows.meter_profile p
		                    WHERE p.meter_id = r.id AND p."timestamp" >= $1 AND p."timestamp" <= $2) c
		WHERE r.serial = ANY($4)`, from.UTC(), to.UTC(), want, serials).Scan(&c.Meters, &c.Complete, &c.Missing)
	return c, translate(err, "profile completeness")
}

// DerivedHalfHours returns the half hours derived for every register over
// the UTC days from's to to's (register_interval_day): a cheap progress
// figure.
func (s *Store) DerivedHalfHours(ctx context.Context, from, to time.Time) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(half_hours), 0) FROM flows.register_interval_day
		WHERE day >= ($1::timestamptz AT TIME ZONE 'UTC')::date AND day <= ($2::timestamptz AT TIME ZONE 'UTC')::date`, from, to).Scan(&n)
	return n, translate(err, "interval days")
}

// benchTables are the tables the benchmarks count and size.
var benchTables = []string{"meter_profile", "register_interval_hh", "register_interval_day", "meter_prepay_balance", benchCopyTable}

// benchCopyTable is flows bench intervals' copy of register_interval_hh's
// shape, which it COPYs into for comparison.
const benchCopyTable = "bench_interval_hh_copy"

func benchTable(table string) (string, error) {
	if !slices.Contains(benchTables, table) {
		return "", flows.FieldError("table", "%q is not one of %s", table, strings.Join(benchTables, ", "))
	}
	return pgx.Identifier{"flows", table}.Sanitize(), nil
}

// CountRows returns how many rows flows.table holds (exactly).
func (s *Store) CountRows(ctx context.Context, table string) (int64, error) {
	name, err := benchTable(table)
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM `+name).Scan(&n)
	return n, translate(err, table)
}

// TableBytes returns the disk space flows.table takes with its indexes
// and TOAST, over all its partitions when it is partitioned.
func (s *Store) TableBytes(ctx context.Context, table string) (int64, error) {
	name, err := benchTable(table)
	if err != nil {
		return 0, err
	}
	var n int64
	// pg_partition_tree has no rows for a table that is not partitioned.
	err = s.pool.QueryRow(ctx, `SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree($1::regclass)),
		pg_total_relation_size($1::regclass))::int8`, name).Scan(&n)
	return n, translate(err, table)
}

// VacuumAnalyze vacuums and analyzes flows.table (after a bulk load, so
// plans and index-only scans are what a settled database gets).
func (s *Store) VacuumAnalyze(ctx context.Context, table string) error {
	name, err := benchTable(table)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `VACUUM (ANALYZE) `+name)
	return translate(err, table)
}

// PrepareMonthPartitions makes, where the history tables are partitioned
// by month (migration 0014), the partitions of the months from from's to
// to's, as a database that has been running that long has them; without
// the partition functions it does nothing.
func (s *Store) PrepareMonthPartitions(ctx context.Context, from, to time.Time) error {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regprocedure('flows.create_month_partitions(text, date[])') IS NOT NULL`).Scan(&ok); err != nil || !ok {
		return translate(err, "partitions")
	}
	var months []time.Time
	for m := monthStart(from); !m.After(to); m = m.AddDate(0, 1, 0) {
		months = append(months, m)
	}
	for _, t := range partitionedTables {
		if _, err := s.pool.Exec(ctx, `SELECT count(*) FROM flows.create_month_partitions($1, $2::date[])`, t, months); err != nil {
			return translate(err, "partitions of "+t)
		}
	}
	return nil
}

// BenchFleet is a generated fleet for the interval benchmarks: its meters
// and registers, with each register's load (Wh per half hour at slot 0 of
// the day; every later slot adds 7 Wh), from which all its data follows.
type BenchFleet struct {
	MeterIDs    []string
	RegisterIDs []string
}

// benchLoad is a register's generated load in Wh in half hour k of a UTC
// day (SQL, over register_id and k).
const benchLoad = `(40 + abs(hashtext(register_id::text)) % 300 + 7 * (k % 48))`

// GenerateBenchFleet registers n active meters in ESCO escoCode (which
// must exist), every twinEvery-th one twin-element (registers A and B;
// none when twinEvery is 0), the others single-element, all commissioned at commissioned. Serials are
// EML followed by first+i, addresses 10.x.y.z from first+i.
func (s *Store) GenerateBenchFleet(ctx context.Context, escoCode string, n, first, twinEvery int, commissioned time.Time) (*BenchFleet, error) {
	esco, err := s.ESCOByCode(ctx, escoCode)
	if err != nil {
		return nil, err
	}
	f := &BenchFleet{}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			INSERT INTO flows.meter_registry (serial, name, ip_address, hardware, mode, esco)
			SELECT 'EML' || lpad(($2::bigint + g)::text, 10, '0'), 'Bench ' || ($2::bigint + g), '10.0.0.0'::inet + ($2::bigint + g),
			       CASE WHEN $3 > 0 AND g % greatest($3, 1) = 1 THEN 'C1.w' ELSE 'EMA1.w' END, 'active', $4
			FROM generate_series(0, $1 - 1) g
			RETURNING id::text`, n, first, twinEvery, esco.ID)
		if err != nil {
			return err
		}
		if f.MeterIDs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			INSERT INTO flows.meter_registers (meter_id, element, start_time)
			SELECT m.id, e.element, $2 FROM flows.meter_registry m
			CROSS JOIN LATERAL unnest(CASE WHEN m.hardware = 'C1.w' THEN '{A,B}' ELSE '{SINGLE}' END::flows.meter_register_element[]) AS e(element)
			WHERE m.id = ANY($1::uuid[])
			RETURNING register_id::text`, f.MeterIDs, commissioned.UTC())
		if err != nil {
			return err
		}
		f.RegisterIDs, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, translate(err, "bench fleet")
	}
	return f, nil
}

// bulkLoad runs statements in one transaction with triggers (and so the
// foreign-key checks) off: the benchmark's generated rows are consistent
// by construction, and checking 50 M of them one by one would take longer
// than the benchmark.
func (s *Store) bulkLoad(ctx context.Context, what string, sql string, args ...any) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	})
	return n, translate(err, what)
}

// GenerateIntervals writes the derived half hours of registers for the
// whole UTC days [from, to) (register_interval_hh, one statement per day,
// each register's day together, as collection writes them) and their per-day totals
// (register_interval_day). It returns the half hours written; dayDone,
// when not nil, is called as each day is written (a progress bar).
func (s *Store) GenerateIntervals(ctx context.Context, registerIDs []string, from, to time.Time, dayDone func()) (int64, error) {
	from, to = from.UTC().Truncate(24*time.Hour), to.UTC().Truncate(24*time.Hour)
	var total int64
	for day := from; day.Before(to); day = day.AddDate(0, 0, 1) {
		n, err := s.bulkLoad(ctx, "generated intervals", `
			INSERT INTO flows.register_interval_hh (register_id, "timestamp", kwh, esco)
			SELECT register_id, $2::timestamptz + k * interval '30 minutes', round(`+benchLoad+`::numeric / 1000, 3), m.esco
			FROM unnest($1::uuid[]) AS r(register_id)
			JOIN flows.meter_registers g USING (register_id) JOIN flows.meter_registry m ON m.id = g.meter_id,
			     generate_series(0, 47) AS k
			ORDER BY register_id, k`, registerIDs, day)
		if err != nil {
			return total, err
		}
		total += n
		if dayDone != nil {
			dayDone()
		}
	}
	_, err := s.GenerateIntervalDays(ctx, registerIDs, from, to)
	return total, err
}

// GenerateIntervalDays writes only the per-day totals GenerateIntervals
// would (register_interval_day, 48 half hours each, for the UTC days
// [from, to)): what the credit forecast reads, without the half hours.
// It returns the register-days written.
func (s *Store) GenerateIntervalDays(ctx context.Context, registerIDs []string, from, to time.Time) (int64, error) {
	from, to = from.UTC().Truncate(24*time.Hour), to.UTC().Truncate(24*time.Hour)
	// 48 half hours a day: 48 × the slot-0 load plus 7 × (0 + 1 + … + 47).
	return s.bulkLoad(ctx, "generated interval days", `
		INSERT INTO flows.register_interval_day (register_id, day, half_hours, kwh, esco)
		SELECT register_id, d::date, 48, round((48 * `+benchLoad+` + 7 * 1128)::numeric / 1000, 3), m.esco
		FROM unnest($1::uuid[]) AS r(register_id)
		JOIN flows.meter_registers g USING (register_id) JOIN flows.meter_registry m ON m.id = g.meter_id,
		     generate_series($2::date, $3::date - 1, interval '1 day') AS d, (VALUES (0)) AS x(k)`,
		registerIDs, from, to)
}

// GenerateProfile writes the raw profile records of meters for [from, to]
// (every half hour, both logs, valid), consistent with GenerateIntervals:
// the difference between consecutive records is the register's load. A
// day of all the meters a statement, each meter's day together, as the
// daily collection writes them (so a meter-month is a month of such
// runs on disk, not one row a page).
func (s *Store) GenerateProfile(ctx context.Context, meterIDs []string, from, to time.Time) (int64, error) {
	from, to = from.UTC().Truncate(24*time.Hour), to.UTC()
	// Cumulative Wh at record k: the loads of half hours 0 … k-1, in
	// closed form (k / 48 whole days and k % 48 half hours of the next).
	cum := func(reg string) string {
		return `(1000000 + (40 + abs(hashtext(` + reg + `::text)) % 300) * k + 7 * (1128 * (k / 48) + (k % 48) * ((k % 48) - 1) / 2))`
	}
	last := int(to.Sub(from) / (30 * time.Minute))
	var total int64
	for k0 := 0; k0 <= last; k0 += 48 {
		n, err := s.bulkLoad(ctx, "generated profile", `
			INSERT INTO flows.meter_profile (meter_id, "timestamp", status, import_a_wh, import_b_wh, export_a_wh, export_b_wh, esco)
			SELECT m.meter_id, $2::timestamptz + k * interval '30 minutes', 32768, `+cum("m.a")+`,
			       CASE WHEN m.b IS NOT NULL THEN `+cum("m.b")+` END, 0, CASE WHEN m.b IS NOT NULL THEN 0 END, m.esco
			FROM (SELECT g.meter_id, mr.esco,
			             (array_agg(register_id) FILTER (WHERE element <> 'B'))[1] AS a, (array_agg(register_id) FILTER (WHERE element = 'B'))[1] AS b
			      FROM flows.meter_registers g JOIN flows.meter_registry mr ON mr.id = g.meter_id
			      WHERE g.meter_id = ANY($1::uuid[]) AND g.status = 'enabled' GROUP BY g.meter_id, mr.esco) m,
			     generate_series($3::int, $4::int) AS k
			ORDER BY m.meter_id, k`, meterIDs, from, k0, min(k0+47, last))
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// GenerateBalanceHistory writes meters' balance history (the seed's
// history queries read it) every step over [from, to].
func (s *Store) GenerateBalanceHistory(ctx context.Context, meterIDs []string, from, to time.Time, step time.Duration) (int64, error) {
	return s.bulkLoad(ctx, "generated balance history", `
		INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance, emergency_credit, esco)
		SELECT m.id, $2::timestamptz + k * $4::interval, round(50 - (k % 500) * 0.0123, 5), 15, r.esco
		FROM unnest($1::uuid[]) AS m(id) JOIN flows.meter_registry r ON r.id = m.id, generate_series(0, $3) AS k`,
		meterIDs, from.UTC(), int(to.Sub(from)/step), step)
}

// CreateIntervalCopyTable makes flows.bench_interval_hh_copy with
// register_interval_hh's shape: columns, checks, keys, indexes and foreign
// keys, and when it is partitioned the same partitions.
func (s *Store) CreateIntervalCopyTable(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var partitioned bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'flows.register_interval_hh'::regclass)`).Scan(&partitioned); err != nil {
			return err
		}
		ddl := `CREATE TABLE flows.` + benchCopyTable + ` (LIKE flows.register_interval_hh INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`
		if partitioned {
			ddl += ` PARTITION BY RANGE ("timestamp")`
		}
		if _, err := tx.Exec(ctx, ddl); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT format('ALTER TABLE flows.%I ADD %s', $1::text, pg_get_constraintdef(oid)) FROM pg_constraint
			WHERE conrelid = 'flows.register_interval_hh'::regclass AND contype = 'f'
			UNION ALL
			SELECT format('CREATE TABLE flows.%I PARTITION OF flows.%I %s', $1::text || '_' || c.relname, $1::text, pg_get_expr(c.relpartbound, c.oid))
			FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'flows.register_interval_hh'::regclass`, benchCopyTable)
		if err != nil {
			return err
		}
		stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, st := range stmts {
			if _, err := tx.Exec(ctx, st); err != nil {
				return fmt.Errorf("%s: %w", st, err)
			}
		}
		return nil
	})
	return translate(err, "interval copy table")
}

// DropIntervalCopyTable drops flows.bench_interval_hh_copy.
func (s *Store) DropIntervalCopyTable(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `DROP TABLE IF EXISTS flows.`+benchCopyTable)
	return translate(err, "interval copy table")
}

// IntervalRows returns the derived half hours of registers as rows of
// register_interval_hh (register_id, timestamp, kwh), to COPY.
func (s *Store) IntervalRows(ctx context.Context, registerIDs []string) ([][]any, error) {
	rows, err := s.pool.Query(ctx, `SELECT register_id, "timestamp", kwh FROM flows.register_interval_hh
		WHERE register_id = ANY($1::uuid[]) ORDER BY register_id, "timestamp"`, registerIDs)
	if err != nil {
		return nil, translate(err, "intervals")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([]any, error) {
		var id [16]byte
		var at time.Time
		var kwh decimal.Decimal
		err := row.Scan(&id, &at, &kwh)
		return []any{id, at, kwh}, err
	})
	return out, translate(err, "intervals")
}

// CopyIntervals writes rows into flows.bench_interval_hh_copy with one
// plain COPY and returns how many it wrote.
func (s *Store) CopyIntervals(ctx context.Context, rows [][]any) (int64, error) {
	n, err := s.pool.CopyFrom(ctx, pgx.Identifier{"flows", benchCopyTable}, []string{"register_id", "timestamp", "kwh"}, pgx.CopyFromRows(rows))
	return n, translate(err, "interval copy")
}

// RegisterMonth is a plain read of one register's half hours over
// [from, to): what a bill's month reads without the profile rule.
func (s *Store) RegisterMonth(ctx context.Context, registerID string, from, to time.Time) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT "timestamp", kwh FROM flows.register_interval_hh
		WHERE register_id = $1 AND "timestamp" >= $2 AND "timestamp" < $3 ORDER BY "timestamp"`, registerID, from, to)
	if err != nil {
		return 0, translate(err, "intervals")
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, translate(rows.Err(), "intervals")
}

// QueryCount runs sql (a query without parameters, as the seed writes
// them) and returns how many rows it gave.
func (s *Store) QueryCount(ctx context.Context, sql string) (int, error) {
	rows, err := s.pool.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return 0, translate(err, "query")
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, translate(rows.Err(), "query")
}

// SyncTally returns, over the active meters, the syncs recorded (hourly,
// on-demand, any), how many meters have a sync state and how many were
// synced more than once.
func (s *Store) SyncTally(ctx context.Context) (syncs int64, meters, twice int, err error) {
	err = s.pool.QueryRow(ctx, `SELECT coalesce(sum(st.syncs), 0), count(*), count(*) FILTER (WHERE st.syncs > 1)
		FROM flows.meter_sync_state st JOIN flows.meter_registry mr ON mr.id = st.meter_id WHERE mr.mode = 'active'`).Scan(&syncs, &meters, &twice)
	return syncs, meters, twice, translate(err, "sync state")
}

// SyncsBy returns, per sync engine (meter_sync_state.last_synced_by), how
// many active meters it synced last.
func (s *Store) SyncsBy(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT coalesce(st.last_synced_by, ''), count(*)
		FROM flows.meter_sync_state st JOIN flows.meter_registry mr ON mr.id = st.meter_id WHERE mr.mode = 'active' GROUP BY 1`)
	if err != nil {
		return nil, translate(err, "sync state")
	}
	out := map[string]int{}
	for rows.Next() {
		var by string
		var n int
		if err := rows.Scan(&by, &n); err != nil {
			return nil, translate(err, "sync state")
		}
		out[by] = n
	}
	return out, translate(rows.Err(), "sync state")
}
