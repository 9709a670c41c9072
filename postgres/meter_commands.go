package postgres

import (
	"context"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/meterop"
	"github.com/jackc/pgx/v5"
)

// CreateMeterCommand records a command, superseding any of the same kind
// for the meter that is not yet verified. EINVALID names a bad value.
func (s *Store) CreateMeterCommand(ctx context.Context, meterID string, kind flows.CommandKind, value, requestedBy string) (*flows.MeterCommand, error) {
	if err := meterop.ValidateCommand(kind, value); err != nil {
		return nil, err
	}
	var id string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var mode string
		if err := tx.QueryRow(ctx, `SELECT mode FROM flows.meter_registry WHERE id = $1 FOR UPDATE`, meterID).Scan(&mode); err != nil {
			return translate(err, "meter")
		}
		if mode != string(flows.ModeActive) {
			return flows.FieldError("meter", "passive meters take no commands here")
		}
		if _, err := tx.Exec(ctx, `UPDATE flows.meter_commands SET status = 'superseded', updated_at = now()
			WHERE meter_id = $1 AND kind = $2::text::flows.meter_command_kind AND status IN ('pending', 'sending', 'sent')`, meterID, string(kind)); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO flows.meter_commands (meter_id, kind, value, requested_by) VALUES ($1, $2::text::flows.meter_command_kind, $3, $4) RETURNING id`,
			meterID, string(kind), value, requestedBy).Scan(&id)
	})
	if err != nil {
		return nil, err
	}
	return s.MeterCommand(ctx, id)
}

const meterCommandCols = `c.id, c.meter_id, m.serial, c.kind, c.value, c.status, c.attempts, coalesce(c.last_error, ''), c.requested_by, c.created_at`

func scanMeterCommand(row pgx.Row) (*flows.MeterCommand, error) {
	var c flows.MeterCommand
	var kind, st string
	err := row.Scan(&c.ID, &c.MeterID, &c.Serial, &kind, &c.Value, &st, &c.Attempts, &c.LastError, &c.RequestedBy, &c.CreatedAt)
	c.Kind, c.Status = flows.CommandKind(kind), flows.RequestStatus(st)
	return &c, err
}

// MeterCommand returns a command by id.
func (s *Store) MeterCommand(ctx context.Context, id string) (*flows.MeterCommand, error) {
	c, err := scanMeterCommand(s.pool.QueryRow(ctx, `SELECT `+meterCommandCols+` FROM flows.meter_commands c
		JOIN flows.meter_registry m ON m.id = c.meter_id WHERE c.id = $1`, id))
	if err != nil {
		return nil, translate(err, "meter command "+id)
	}
	return c, nil
}

// QueueClockCorrections creates clock commands for active meters whose
// last measured drift exceeds threshold, unless one is open or was made in
// the last hour.
func (s *Store) QueueClockCorrections(ctx context.Context, threshold time.Duration) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO flows.meter_commands (meter_id, kind, requested_by)
		SELECT r.id, 'clock', 'clock-drift'
		FROM flows.meter_registry r JOIN flows.meter_shadows s ON s.id = r.id
		WHERE r.mode = 'active' AND r.ip_address IS NOT NULL AND s.clock_time_diff_seconds > $1
		  AND NOT EXISTS (SELECT 1 FROM flows.meter_commands c WHERE c.meter_id = r.id AND c.kind = 'clock'
		                  AND (c.status IN ('pending', 'sending', 'sent') OR c.created_at > now() - interval '1 hour'))`,
		int(threshold/time.Second))
	if err != nil {
		return 0, translate(err, "clock corrections")
	}
	return int(tag.RowsAffected()), nil
}

// ClaimMeterCommands takes up to n due commands under a lease.
func (s *Store) ClaimMeterCommands(ctx context.Context, n int, lease time.Duration, dueBy time.Time) ([]flows.MeterCommand, error) {
	rows, err := s.pool.Query(ctx, `
		WITH c AS (
			UPDATE flows.meter_commands SET status = 'sending', attempts = attempts + 1, updated_at = now(), lease_until = now() + $2::interval
			WHERE id IN (SELECT id FROM flows.meter_commands
				WHERE (status = 'pending' AND next_attempt_at <= $3) OR (status IN ('sending', 'sent') AND lease_until < now())
				ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
			RETURNING *)
		SELECT `+meterCommandCols+` FROM c JOIN flows.meter_registry m ON m.id = c.meter_id`, n, lease.String(), dueBy)
	if err != nil {
		return nil, translate(err, "claim meter commands")
	}
	return collect(rows, "claim meter commands", scanMeterCommand)
}

// MoveMeterCommand changes a command's status if it is still in from.
// With attempt above 0 only the claim that gave that attempt number moves
// it.
func (s *Store) MoveMeterCommand(ctx context.Context, id string, from, to flows.RequestStatus, lastError string, retryAt time.Time, attempt int) (bool, error) {
	var next *time.Time
	if !retryAt.IsZero() {
		next = &retryAt
	}
	tag, err := s.pool.Exec(ctx, `UPDATE flows.meter_commands SET status = $3::text::flows.request_status, last_error = NULLIF($4, ''),
			updated_at = now(), next_attempt_at = coalesce($5, next_attempt_at),
			lease_until = CASE WHEN $3::text = 'sent' THEN lease_until END, -- sent: the read-back runs under the lease
			verified_at = CASE WHEN $3::text = 'verified' THEN now() ELSE verified_at END
		WHERE id = $1 AND status = $2::text::flows.request_status AND ($6 = 0 OR attempts = $6)`, id, string(from), string(to), lastError, next, attempt)
	if err != nil {
		return false, translate(err, "meter command")
	}
	return tag.RowsAffected() == 1, nil
}

// MeterCommandsForMeter returns a meter's newest commands, newest first:
// the meter page's list.
func (s *Store) MeterCommandsForMeter(ctx context.Context, meterID string, limit int) ([]flows.MeterCommand, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+meterCommandCols+` FROM flows.meter_commands c
		JOIN flows.meter_registry m ON m.id = c.meter_id WHERE c.meter_id = $1 ORDER BY c.created_at DESC LIMIT $2`, meterID, limit)
	if err != nil {
		return nil, translate(err, "meter commands")
	}
	defer rows.Close()
	out := []flows.MeterCommand{}
	for rows.Next() {
		c, err := scanMeterCommand(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, rows.Err()
}
