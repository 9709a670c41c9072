package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
)

// CreateRollout records a rollout and one tariff request per target meter,
// in one transaction: either every meter gets its request or none does.
// With ratePerMinute, requests are spread out at that rate. EINVALID names
// the field of a bad tariff or setting.
func (s *Store) CreateRollout(ctx context.Context, targets flows.RolloutTargets, t flows.Tariff, abortPct int, ratePerMinute int, requestedBy string) (*flows.Rollout, error) {
	// The activation is checked per meter, in its clock zone, by the
	// tariffs_future trigger; here in UTC, to refuse a bad request early.
	if err := t.ValidateRequest("tariff", false, s.now()); err != nil {
		return nil, err
	}
	if abortPct < 1 || abortPct > 100 {
		return nil, flows.FieldError("abort_failure_pct", "%d is outside 1-100", abortPct)
	}
	if ratePerMinute < 0 {
		return nil, flows.FieldError("rate_per_minute", "must not be negative")
	}
	if targets.ESCOCode == "" && len(targets.Serials) == 0 {
		return nil, flows.FieldError("meters", "name an ESCO or some serials")
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	var rate *int
	if ratePerMinute > 0 {
		rate = &ratePerMinute
	}
	var id string
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO flows.tariff_rollouts (tariff, abort_failure_pct, rate_per_minute, requested_by)
			VALUES ($1, $2, $3, $4) RETURNING id`, b, abortPct, rate, requestedBy).Scan(&id); err != nil {
			return translate(err, "rollout")
		}
		rows, err := tx.Query(ctx, `SELECT r.id FROM flows.meter_registry r LEFT JOIN flows.escos e ON e.id = r.esco
			WHERE r.mode = 'active' AND r.ip_address IS NOT NULL AND coalesce(r.hardware, '') NOT IN ('P1.ax', 'P1.cx', 'THREE_PHASE_UNKNOWN')
			  AND ($1 = '' OR lower(e.code) = lower($1)) AND (coalesce(cardinality($2::text[]), 0) = 0 OR r.serial = ANY($2))
			ORDER BY r.serial`, targets.ESCOCode, targets.Serials)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return flows.FieldError("meters", "no active meter matches")
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('flows.rollout_id', $1, true), set_config('flows.request_source', 'rollout', true)`, id); err != nil {
			return err
		}
		start := s.now()
		for i, mid := range ids {
			notBefore := start
			if ratePerMinute > 0 {
				notBefore = start.Add(time.Duration(i) * time.Minute / time.Duration(ratePerMinute))
			}
			if _, err := tx.Exec(ctx, `SELECT set_config('flows.not_before', $1, true)`, notBefore.Format(time.RFC3339Nano)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE flows.meter_shadows SET tariffs_future = $2::jsonb WHERE id = $1`, mid, string(b)); err != nil {
				return raised(err, "rollout")
			}
		}
		_, err = tx.Exec(ctx, `UPDATE flows.tariff_requests SET requested_by = $2 WHERE rollout_id = $1`, id, requestedBy)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.Rollout(ctx, id)
}

// Rollout returns a rollout with its progress (meters per request status).
func (s *Store) Rollout(ctx context.Context, id string) (*flows.Rollout, error) {
	var r flows.Rollout
	var raw []byte
	var note *string
	err := s.pool.QueryRow(ctx, `SELECT id, tariff, status, abort_failure_pct, rate_per_minute, requested_by, created_at, note
		FROM flows.tariff_rollouts WHERE id = $1`, id).Scan(&r.ID, &raw, &r.Status, &r.AbortFailurePct, &r.RatePerMinute, &r.RequestedBy, &r.CreatedAt, &note)
	if err != nil {
		return nil, translate(err, "rollout "+id)
	}
	if note != nil {
		r.Note = *note
	}
	if err := json.Unmarshal(raw, &r.Tariff); err != nil {
		return nil, fmt.Errorf("decode the tariff of rollout %s: %w", id, err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(array_agg(DISTINCT coalesce(e.code, '')), '{}') FROM flows.tariff_requests q
		JOIN flows.meter_registry m ON m.id = q.meter_id LEFT JOIN flows.escos e ON e.id = m.esco WHERE q.rollout_id = $1`, id).Scan(&r.ESCOs); err != nil {
		return nil, translate(err, "rollout "+id)
	}
	rows, err := s.pool.Query(ctx, `SELECT status::text, count(*) FROM flows.tariff_requests WHERE rollout_id = $1 GROUP BY 1`, id)
	if err != nil {
		return nil, translate(err, "rollout progress")
	}
	defer rows.Close()
	r.Progress = map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		r.Progress[st] = n
		r.Meters += n
	}
	return &r, rows.Err()
}

// SettleRollouts completes running rollouts with no request left in
// flight, and aborts those whose failures pass their threshold (after a
// minimum sample): their unsent requests stop, marked failed.
func (s *Store) SettleRollouts(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `
		WITH p AS (
			SELECT r.id, r.abort_failure_pct, r.min_sample,
			       count(*) FILTER (WHERE q.status = 'failed') AS failed,
			       count(*) FILTER (WHERE q.status IN ('verified', 'active', 'failed')) AS done,
			       count(*) FILTER (WHERE q.status IN ('pending', 'sending', 'sent')) AS open
			FROM flows.tariff_rollouts r JOIN flows.tariff_requests q ON q.rollout_id = r.id
			WHERE r.status = 'running' GROUP BY r.id),
		aborted AS (
			UPDATE flows.tariff_rollouts t SET status = 'aborted', updated_at = now(),
				note = format('aborted: %s of %s finished meters failed (threshold %s%%)', p.failed, p.done, p.abort_failure_pct)
			FROM p WHERE t.id = p.id AND p.done >= least(p.min_sample, p.done + p.open) AND p.failed * 100 > p.abort_failure_pct * p.done
			RETURNING t.id),
		stopped AS (
			UPDATE flows.tariff_requests q SET status = 'failed', last_error = 'rollout aborted', updated_at = now()
			FROM aborted a WHERE q.rollout_id = a.id AND q.status = 'pending' RETURNING q.id)
		UPDATE flows.tariff_rollouts t SET status = 'completed', updated_at = now()
		FROM p WHERE t.id = p.id AND p.open = 0 AND t.id NOT IN (SELECT id FROM aborted)`)
	return translate(err, "settle rollouts")
}
