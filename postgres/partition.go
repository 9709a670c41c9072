package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// partitionedTables are the history tables partitioned by month on
// "timestamp": the only fast-growing tables. Migration 0014 partitions
// the first nine; later ones are made partitioned (0017: meter_3p_interval).
var partitionedTables = []string{
	"meter_prepay_balance", "meter_csq", "meter_voltage", "meter_3p_voltage", "meter_health_history",
	"register_import", "register_export", "meter_profile", "register_interval_hh",
	"meter_3p_interval",
}

// PartitionedTables returns the names (in schema flows) of the tables
// partitioned by month, which MaintainPartitions keeps and a retention
// may name.
func PartitionedTables() []string { return slices.Clone(partitionedTables) }

// MaxPartitionsAhead bounds how many months ahead partitions are made.
const MaxPartitionsAhead = 120

// partitionLockTimeout bounds each wait for a lock during maintenance.
// Splitting a gap partition and dropping a partition lock the table
// against everything; a request for such a lock queued behind a long query
// would hold up every write behind it, so maintenance gives up instead and
// the next run tries again.
const partitionLockTimeout = 3 * time.Second

// PartitionReport says what one maintenance run changed, per table.
type PartitionReport struct {
	Tables []TablePartitions
}

// TablePartitions is what a maintenance run did to one table.
type TablePartitions struct {
	Table   string
	Created []string // monthly partitions made: the months ahead, and months that had rows in a gap partition
	Moved   int64    // rows moved out of gap partitions into their month's new partition
	Dropped []string // partitions (monthly or gap) dropped as older than the table's retention
}

// Changed reports whether the run created or dropped anything.
func (r PartitionReport) Changed() bool {
	for _, t := range r.Tables {
		if len(t.Created) > 0 || len(t.Dropped) > 0 {
			return true
		}
	}
	return false
}

// CheckRetention validates a retention map (table → months to keep, 0
// for all): EINVALID naming "retention" and the table when the table is
// not partitioned or the months are negative.
func CheckRetention(retention map[string]int) error {
	for table, months := range retention {
		if !slices.Contains(partitionedTables, table) {
			return flows.FieldError("retention", "%q is not a partitioned table (%s)", table, strings.Join(partitionedTables, ", "))
		}
		if months < 0 {
			return flows.FieldError("retention", "%s: %d months is negative (0 keeps everything)", table, months)
		}
	}
	return nil
}

// RetentionCutoff is the instant before which a retention of months drops
// a table's data at now: the start of the UTC month months before now's.
// Only whole months go, never the current one: at least months whole
// months before the current month are kept, so no row younger than months
// months is dropped.
func RetentionCutoff(now time.Time, months int) time.Time {
	return monthStart(now).AddDate(0, -months, 0)
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// MaintainPartitions keeps every partitioned table's monthly partitions,
// at now: it gives rows found in a gap partition (the partitions covering
// the months that have none of their own, migration 0014) their month's
// own partition, makes the partitions of the current month and ahead
// months after it, and, for each table with a retention of N > 0 months,
// drops the partitions wholly before RetentionCutoff(now, N) — never the
// current month. Tables without a retention keep everything. Each table
// is done in its own transaction; one that fails (a lock not granted in
// time: EUNAVAILABLE) does not stop the others, and the errors are
// returned joined with the report of what was done. EINVALID naming
// "ahead" or "retention" (with the table) for bad arguments.
func (s *Store) MaintainPartitions(ctx context.Context, now time.Time, ahead int, retention map[string]int) (PartitionReport, error) {
	if ahead < 0 || ahead > MaxPartitionsAhead {
		return PartitionReport{}, flows.FieldError("ahead", "%d months is outside 0-%d", ahead, MaxPartitionsAhead)
	}
	if err := CheckRetention(retention); err != nil {
		return PartitionReport{}, err
	}
	var rep PartitionReport
	var errs []error
	for _, table := range partitionedTables {
		t, err := s.maintainTable(ctx, table, monthStart(now), ahead, retention[table])
		rep.Tables = append(rep.Tables, t)
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// maintainTable does MaintainPartitions for one table: the partitions it
// makes (and the rows it moves) in one transaction, the ones it drops in
// another, each short.
func (s *Store) maintainTable(ctx context.Context, table string, month time.Time, ahead, keep int) (TablePartitions, error) {
	t := TablePartitions{Table: table}
	err := s.partitionTx(ctx, func(tx pgx.Tx) (err error) {
		t.Created, t.Moved, err = createPartitions(ctx, tx, table, month, ahead)
		return err
	})
	if err != nil {
		t = TablePartitions{Table: table} // rolled back
	} else if keep > 0 {
		err = s.partitionTx(ctx, func(tx pgx.Tx) (err error) {
			t.Dropped, err = dropPartitions(ctx, tx, table, RetentionCutoff(month, keep))
			return err
		})
		if err != nil {
			t.Dropped = nil // rolled back
		}
	}
	if err == nil && (len(t.Created) > 0 || len(t.Dropped) > 0) {
		// Autovacuum analyzes partitions, never the partitioned table,
		// whose statistics the planner uses for joins over all of it: they
		// are refreshed as its months change (monthly, when kept daily).
		_, err = s.pool.Exec(ctx, "ANALYZE "+pgx.Identifier{"flows", table}.Sanitize())
	}
	if err != nil {
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "55P03": // lock_not_available
			err = flows.Errorf(flows.EUNAVAILABLE, "a lock was not granted within %v; the next run tries again", partitionLockTimeout)
		case errors.As(err, &pgErr) && pgErr.Code == "40P01": // deadlock_detected: with syncs writing the month it moves
			err = flows.Errorf(flows.EUNAVAILABLE, "it crossed a sync writing the same rows (a deadlock, rolled back); the next run tries again")
		}
		return t, fmt.Errorf("partitions of %s: %w", table, err)
	}
	return t, nil
}

// createPartitions makes table's partitions for the months that have rows
// in its gap partitions and for month and ahead months after it; it
// returns those it made and how many rows moved into them.
func createPartitions(ctx context.Context, tx pgx.Tx, table string, month time.Time, ahead int) ([]string, int64, error) {
	rows, err := tx.Query(ctx, `SELECT m FROM flows.gap_partition_months($1) AS m`, table)
	if err != nil {
		return nil, 0, err
	}
	months, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, 0, err
	}
	for i := 0; i <= ahead; i++ {
		months = append(months, month.AddDate(0, i, 0))
	}
	rows, err = tx.Query(ctx, `SELECT partition_name, moved FROM flows.create_month_partitions($1, $2::date[]) ORDER BY 1`, table, months)
	if err != nil {
		return nil, 0, err
	}
	var created []string
	var name string
	var moved, total int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &moved}, func() error {
		created = append(created, name)
		total += moved
		return nil
	}); err != nil {
		return nil, 0, err
	}
	// Heals a hole an operator left (a partition dropped by hand), where a
	// write would fail; nothing to do otherwise.
	if _, err := tx.Exec(ctx, `SELECT flows.fill_partition_gaps($1)`, table); err != nil {
		return nil, 0, err
	}
	return created, total, nil
}

// dropPartitions drops table's partitions wholly before cutoff and
// returns their names.
func dropPartitions(ctx context.Context, tx pgx.Tx, table string, cutoff time.Time) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT p FROM flows.drop_month_partitions($1, $2) AS p`, table, cutoff)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// partitionTx runs fn in a transaction whose lock waits are bounded.
func (s *Store) partitionTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", partitionLockTimeout.Milliseconds())); err != nil {
			return err
		}
		return fn(tx)
	})
}
