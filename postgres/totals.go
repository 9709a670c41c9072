package postgres

import (
	"context"
	"time"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// maxTotalsSpan is the longest range ESCODailyTotals serves in one call.
const maxTotalsSpan = 366 * 24 * time.Hour

// ESCODailyTotals returns an ESCO's consumption per UTC day in [from, to)
// and element (A, which is also the single element, and B where its
// meters have B registers), summed over the enabled registers of its
// meters from flows.register_interval_day: every day of the range for
// every element, with nil kWh on a day nothing was derived. from and to
// must be UTC midnights at most 366 days apart (EINVALID naming the
// field); ENOTFOUND when there is no ESCO with that code (compared
// case-insensitively).
func (s *Store) ESCODailyTotals(ctx context.Context, escoCode string, from, to time.Time) ([]flows.DailyTotal, error) {
	from, to = from.UTC(), to.UTC()
	day := 24 * time.Hour
	switch {
	case !from.Equal(from.Truncate(day)):
		return nil, flows.FieldError("from", "%s is not the start of a UTC day", from.Format(time.RFC3339))
	case !to.Equal(to.Truncate(day)):
		return nil, flows.FieldError("to", "%s is not the start of a UTC day", to.Format(time.RFC3339))
	case !to.After(from):
		return nil, flows.FieldError("to", "must be after from")
	case to.Sub(from) > maxTotalsSpan:
		return nil, flows.FieldError("to", "at most %d days after from", int(maxTotalsSpan/day))
	}
	esco, err := s.ESCOByCode(ctx, escoCode)
	if err != nil {
		return nil, err
	}
	// The days' rows are summed per element first and then joined to the
	// calendar, so a day without data still shows, once per element.
	rows, err := s.pool.Query(ctx, `
		WITH regs AS (
			SELECT r.register_id, CASE WHEN r.element = 'B' THEN 'B' ELSE 'A' END AS element
			FROM flows.meter_registers r JOIN flows.meter_registry m ON m.id = r.meter_id
			WHERE m.esco = $1 AND r.status = 'enabled'),
		elements AS (SELECT element, count(*)::int AS registers FROM regs GROUP BY element),
		totals AS (
			SELECT t.day, g.element, sum(t.half_hours)::int AS half_hours, sum(t.kwh) AS kwh
			FROM flows.register_interval_day t JOIN regs g ON g.register_id = t.register_id
			WHERE t.day >= $2::date AND t.day < $3::date
			GROUP BY 1, 2)
		SELECT d.day::timestamp AT TIME ZONE 'UTC', e.element, coalesce(t.half_hours, 0), t.kwh, e.registers
		FROM generate_series($2::date, $3::date - 1, interval '1 day') AS d(day)
		CROSS JOIN elements e
		LEFT JOIN totals t ON t.day = d.day::date AND t.element = e.element
		ORDER BY 1, 2`, esco.ID, from, to)
	if err != nil {
		return nil, translate(err, "daily totals")
	}
	return collect(rows, "daily totals", func(row pgx.Row) (*flows.DailyTotal, error) {
		var t flows.DailyTotal
		var kwh *decimal.Decimal
		if err := row.Scan(&t.Day, &t.Element, &t.HalfHours, &kwh, &t.Registers); err != nil {
			return nil, err
		}
		t.Day, t.KWh = t.Day.UTC(), kwh
		return &t, nil
	})
}
