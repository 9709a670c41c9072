package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReplicaName is how a replica's cursor is named by default: its host,
// port and database, never its password. EINVALID when url is not a
// PostgreSQL URL.
func ReplicaName(url string) (string, error) {
	pc, err := pgx.ParseConfig(url)
	if err != nil {
		return "", flows.FieldError("--replica-database-url", "%v", err)
	}
	return fmt.Sprintf("%s:%d/%s", pc.Host, pc.Port, pc.Database), nil
}

// OutboxBatch returns up to n outbox entries after the replica's cursor,
// oldest first, creating the cursor on first use.
func (s *Store) OutboxBatch(ctx context.Context, replica string, n int) ([]flows.OutboxEntry, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO flows.replica_cursor (replica) VALUES ($1) ON CONFLICT DO NOTHING`, replica); err != nil {
		return nil, translate(err, "replica cursor")
	}
	rows, err := s.pool.Query(ctx, `
		SELECT o.id, o.serial, o.changes FROM flows.shadow_outbox o
		WHERE o.id > (SELECT last_id FROM flows.replica_cursor WHERE replica = $1)
		ORDER BY o.id LIMIT $2`, replica, n)
	if err != nil {
		return nil, translate(err, "shadow outbox")
	}
	return collect(rows, "shadow outbox", scanOutboxEntry)
}

func scanOutboxEntry(row pgx.Row) (*flows.OutboxEntry, error) {
	var e flows.OutboxEntry
	var raw []byte
	if err := row.Scan(&e.ID, &e.Serial, &raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber() // money stays decimal
	if err := dec.Decode(&e.Changes); err != nil {
		return nil, fmt.Errorf("outbox entry %d: %w", e.ID, err)
	}
	return &e, nil
}

// AdvanceReplicaCursor records that the replica has every entry up to
// lastID.
func (s *Store) AdvanceReplicaCursor(ctx context.Context, replica string, lastID int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE flows.replica_cursor SET last_id = greatest(last_id, $2), updated_at = now(),
		failing_id = CASE WHEN failing_id <= $2 THEN NULL ELSE failing_id END,
		failing_attempts = CASE WHEN failing_id <= $2 THEN 0 ELSE failing_attempts END,
		last_error = CASE WHEN failing_id <= $2 THEN NULL ELSE last_error END
		WHERE replica = $1`, replica, lastID)
	return translate(err, "replica cursor")
}

// PruneOutbox deletes the entries every replica has.
func (s *Store) PruneOutbox(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM flows.shadow_outbox WHERE id <= (SELECT min(last_id) FROM flows.replica_cursor)`)
	return translate(err, "shadow outbox")
}

// Replica is a database where the primary's meters are passive twins.
type Replica struct {
	pool *pgxpool.Pool
}

// OpenReplica connects to a replica database.
func OpenReplica(ctx context.Context, url string) (*Replica, error) {
	p, err := Open(ctx, url)
	if err != nil {
		return nil, err
	}
	return &Replica{pool: p}, nil
}

// Close closes the replica's connections.
func (r *Replica) Close() { r.pool.Close() }

// replicatedColumns are the shadow columns a replica accepts from the outbox.
var replicatedColumns = map[string]bool{
	"balance": true, "emergency_credit": true, "voltage": true, "import_a": true, "import_b": true, "export_a": true,
	"export_b": true, "tariffs_active": true, "tariffs_future": true, "csq": true, "network_operator": true, "health": true,
	"health_details": true, "clock_time_diff_seconds": true, "backlight": true, "load_switch": true, "updated_at": true,
	`"3p_voltage_l1"`: true, `"3p_voltage_l2"`: true, `"3p_voltage_l3"`: true, // quoted: they start with a digit
}

// Apply writes entries to the passive meters with their serials, in one
// transaction: all of them or none. The writes are marked as replication
// (flows.writer = 'replica'), so no trigger takes them for an operator's
// request. An entry the replica refuses (its own constraints) is EINVALID
// naming the entry; any other error means the replica could not be asked.
func (r *Replica) Apply(ctx context.Context, entries []flows.OutboxEntry) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('flows.writer', 'replica', true)`); err != nil {
			return err
		}
		for _, e := range entries {
			sql, args := replicaUpdate(e)
			if sql == "" {
				continue
			}
			if _, err := tx.Exec(ctx, sql, args...); err != nil {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) {
					return flows.Errorf(flows.EINVALID, "outbox entry %d (%s) refused by the replica: %s", e.ID, e.Serial, pgErr.Message)
				}
				return fmt.Errorf("outbox entry %d (%s): %w", e.ID, e.Serial, err)
			}
		}
		return nil
	})
}

// RecordReplicaFailure notes one more refused attempt at entry id and
// returns how many there have been in a row.
func (s *Store) RecordReplicaFailure(ctx context.Context, replica string, id int64, reason string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
		UPDATE flows.replica_cursor SET last_error = $3, updated_at = now(),
			failing_attempts = CASE WHEN failing_id = $2 THEN failing_attempts + 1 ELSE 1 END, failing_id = $2
		WHERE replica = $1 RETURNING failing_attempts`, replica, id, reason).Scan(&n)
	return n, translate(err, "replica cursor")
}

// QuarantineEntry sets a refused entry aside for an operator and moves the
// replica's cursor past it, in one transaction.
func (s *Store) QuarantineEntry(ctx context.Context, replica string, e flows.OutboxEntry, reason string, attempts int) error {
	changes, err := json.Marshal(e.Changes)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO flows.replica_quarantine (replica, outbox_id, serial, changes, error, attempts)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, replica, e.ID, e.Serial, changes, reason, attempts); err != nil {
			return translate(err, "replica quarantine")
		}
		_, err := tx.Exec(ctx, `UPDATE flows.replica_cursor SET last_id = greatest(last_id, $2), failing_id = NULL, failing_attempts = 0,
			updated_at = now() WHERE replica = $1`, replica, e.ID)
		return translate(err, "replica cursor")
	})
}

// ReplicaStatuses reports every replica's shipping: its cursor, the
// entries waiting for it, the entry it is stuck on, and how many were
// quarantined.
func (s *Store) ReplicaStatuses(ctx context.Context) ([]flows.ReplicaStatus, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.replica, c.last_id, c.updated_at,
		       (SELECT count(*) FROM flows.shadow_outbox o WHERE o.id > c.last_id),
		       c.failing_id, c.failing_attempts, coalesce(c.last_error, ''),
		       (SELECT count(*) FROM flows.replica_quarantine q WHERE q.replica = c.replica)
		FROM flows.replica_cursor c ORDER BY c.replica`)
	if err != nil {
		return nil, translate(err, "replica cursors")
	}
	return collect(rows, "replica cursors", func(row pgx.Row) (*flows.ReplicaStatus, error) {
		var r flows.ReplicaStatus
		err := row.Scan(&r.Replica, &r.LastID, &r.UpdatedAt, &r.Backlog, &r.FailingID, &r.FailingAttempts, &r.LastError, &r.Quarantined)
		return &r, err
	})
}

// replicaUpdate builds the UPDATE of the passive meter with the entry's serial.
func replicaUpdate(e flows.OutboxEntry) (string, []any) {
	cols := make([]string, 0, len(e.Changes))
	for c := range e.Changes {
		if replicatedColumns[c] {
			cols = append(cols, c)
		}
	}
	sort.Strings(cols)
	args := []any{e.Serial}
	var sets []string
	for _, c := range cols {
		v := e.Changes[c]
		if n, ok := v.(json.Number); ok {
			v = n.String()
		}
		args = append(args, v)
		cast := ""
		if c == "tariffs_active" || c == "tariffs_future" {
			cast = "::jsonb"
		}
		sets = append(sets, fmt.Sprintf("%s = $%d%s", c, len(args), cast))
	}
	if len(sets) == 0 {
		return "", nil
	}
	return `UPDATE flows.meter_shadows s SET ` + strings.Join(sets, ", ") + `
		FROM flows.meter_registry r WHERE r.id = s.id AND r.serial = $1 AND r.mode = 'passive'`, args
}
