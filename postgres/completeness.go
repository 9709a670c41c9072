package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/flows-energy/flows"
)

// completenessSQL is flows.meter_interval_completeness's rule (migration
// 0013) for many meters in one pass: the window's day rows read once
// through their day index and hashed against the registers, rather than a
// lookup per register (the view's form, fast for one meter). %s selects
// the registers. With whether each meter is active (the fleet's figure
// counts active meters only). TestCompletenessOfManyMeters holds the two
// forms equal.
const completenessSQL = `
	WITH t AS (SELECT ((now() AT TIME ZONE 'UTC')::date AT TIME ZONE 'UTC') AS start, (now() AT TIME ZONE 'UTC')::date AS day),
	g AS (
		SELECT r.meter_id, r.register_id, flows.register_expected_from(r.start_time) AS expected_from,
		       greatest(extract(epoch FROM t.start - greatest(t.start - interval '7 days', flows.register_expected_from(r.start_time))) / 1800, 0) AS e7,
		       greatest(extract(epoch FROM t.start - greatest(t.start - interval '30 days', flows.register_expected_from(r.start_time))) / 1800, 0) AS e30
		FROM flows.meter_registers r CROSS JOIN t
		WHERE r.status = 'enabled' AND %s),
	p AS (
		SELECT d.register_id, sum(d.half_hours) FILTER (WHERE d.day >= t.day - 7) AS n7, sum(d.half_hours) AS n30
		FROM flows.register_interval_day d CROSS JOIN t JOIN g ON g.register_id = d.register_id
		WHERE d.day >= t.day - 30 AND d.day < t.day AND d.day >= (g.expected_from AT TIME ZONE 'UTC')::date
		GROUP BY d.register_id)
	SELECT g.meter_id, bool_and(m.mode = 'active'),
	       round(sum(coalesce(p.n7, 0)) / nullif(sum(g.e7), 0), 4), round(sum(coalesce(p.n30, 0)) / nullif(sum(g.e30), 0), 4)
	FROM g JOIN flows.meter_registry m ON m.id = g.meter_id LEFT JOIN p ON p.register_id = g.register_id
	GROUP BY g.meter_id`

// CompletenessOf returns the interval completeness of the meters (ids) in
// one query, by the rule of flows.meter_interval_completeness. A meter
// with no enabled register (nothing is expected of it), or unknown, is
// absent from the map. Meant for a page of meters: 1,000 take about 30 ms.
func (s *Store) CompletenessOf(ctx context.Context, meterIDs []string) (map[string]flows.MeterCompleteness, error) {
	if len(meterIDs) == 0 {
		return map[string]flows.MeterCompleteness{}, nil
	}
	if len(meterIDs) == 1 {
		// One meter: the view's form, a few index lookups (0.2 ms against
		// 0.6 ms for the one-pass form).
		return s.completenessOne(ctx, meterIDs[0])
	}
	return s.completeness(ctx, `r.meter_id = ANY($1::uuid[])`, meterIDs)
}

// CompletenessOfAll is CompletenessOf for every meter with an enabled
// register: what the whole fleet page and the fleet's metric read.
func (s *Store) CompletenessOfAll(ctx context.Context) (map[string]flows.MeterCompleteness, error) {
	return s.completeness(ctx, `true`)
}

func (s *Store) completenessOne(ctx context.Context, meterID string) (map[string]flows.MeterCompleteness, error) {
	out := map[string]flows.MeterCompleteness{}
	var c flows.MeterCompleteness
	err := s.pool.QueryRow(ctx, `SELECT m.mode = 'active', c.complete_7d, c.complete_30d
		FROM flows.meter_interval_completeness c JOIN flows.meter_registry m ON m.id = c.meter_id WHERE c.meter_id = $1`, meterID).
		Scan(&c.Active, &c.Last7Days, &c.Last30Days)
	if errors.Is(err, pgx.ErrNoRows) || flows.ErrorCode(translate(err, "")) == flows.EINVALID {
		return out, nil // no enabled register, or not a meter id
	}
	if err != nil {
		return nil, translate(err, "completeness")
	}
	out[meterID] = c
	return out, nil
}

func (s *Store) completeness(ctx context.Context, filter string, args ...any) (map[string]flows.MeterCompleteness, error) {
	rows, err := s.pool.Query(ctx, fmt.Sprintf(completenessSQL, filter), args...)
	if err != nil {
		return nil, translate(err, "completeness")
	}
	defer rows.Close()
	out := map[string]flows.MeterCompleteness{}
	for rows.Next() {
		var id string
		var c flows.MeterCompleteness
		if err := rows.Scan(&id, &c.Active, &c.Last7Days, &c.Last30Days); err != nil {
			return nil, translate(err, "completeness")
		}
		out[id] = c
	}
	return out, translate(rows.Err(), "completeness")
}
