package postgres

import (
	"context"
	"time"

	"github.com/flows-energy/flows"
	"github.com/shopspring/decimal"
)

// BalanceHistory returns a meter's balance history in [from, to): raw
// points, or hourly/daily buckets with min, max and average (UTC buckets),
// newest first as the seed's queries order them.
func (s *Store) BalanceHistory(ctx context.Context, meterID string, from, to time.Time, b flows.Bucket) ([]flows.BalancePoint, error) {
	if !to.After(from) {
		return nil, flows.FieldError("to", "must be after from")
	}
	var q string
	switch b {
	case flows.BucketRaw, "":
		q = `SELECT "timestamp", balance, emergency_credit, NULL::numeric, NULL::numeric, NULL::numeric
			FROM flows.meter_prepay_balance
			WHERE meter_id = $1 AND "timestamp" >= $2 AND "timestamp" < $3
			ORDER BY "timestamp" DESC LIMIT 100000`
	case flows.BucketHour, flows.BucketDay:
		q = `SELECT date_trunc('` + string(b) + `', "timestamp" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS t,
				(array_agg(balance ORDER BY "timestamp" DESC))[1],
				(array_agg(emergency_credit ORDER BY "timestamp" DESC))[1],
				min(balance), max(balance), round(avg(balance), 5)
			FROM flows.meter_prepay_balance
			WHERE meter_id = $1 AND "timestamp" >= $2 AND "timestamp" < $3
			GROUP BY t ORDER BY t DESC`
	default:
		return nil, flows.FieldError("bucket", "%q is not raw, hour or day", b)
	}
	rows, err := s.pool.Query(ctx, q, meterID, from, to)
	if err != nil {
		return nil, translate(err, "balance history")
	}
	defer rows.Close()
	out := []flows.BalancePoint{}
	for rows.Next() {
		var p flows.BalancePoint
		if err := rows.Scan(&p.Timestamp, &p.Balance, &p.EmergencyCredit, &p.Min, &p.Max, &p.Avg); err != nil {
			return nil, translate(err, "balance history")
		}
		p.Timestamp = p.Timestamp.UTC()
		out = append(out, p)
	}
	return out, translate(rows.Err(), "balance history")
}

// LowBalance lists meters whose balance is below threshold, lowest first,
// optionally for one ESCO.
func (s *Store) LowBalance(ctx context.Context, threshold decimal.Decimal, escoCode string) ([]flows.LowBalance, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT mr.id, mr.serial, coalesce(mr.name, ''), ms.balance, ms.emergency_credit
		FROM flows.meter_registry mr
		JOIN flows.meter_shadows ms ON ms.id = mr.id
		LEFT JOIN flows.escos e ON e.id = mr.esco
		WHERE ms.balance < $1 AND ($2 = '' OR lower(e.code) = lower($2))
		ORDER BY ms.balance, mr.serial`, threshold, escoCode)
	if err != nil {
		return nil, translate(err, "low balance")
	}
	defer rows.Close()
	out := []flows.LowBalance{}
	for rows.Next() {
		var l flows.LowBalance
		if err := rows.Scan(&l.ID, &l.Serial, &l.Name, &l.Balance, &l.EmergencyCredit); err != nil {
			return nil, translate(err, "low balance")
		}
		out = append(out, l)
	}
	return out, translate(rows.Err(), "low balance")
}

// OfflineRecently lists rows of the meters_offline_recently view.
func (s *Store) OfflineRecently(ctx context.Context, escoCode string) ([]flows.OfflineMeter, error) {
	return s.offline(ctx, "flows.meters_offline_recently", escoCode)
}

// OfflineAll lists rows of the meters_offline_all view.
func (s *Store) OfflineAll(ctx context.Context, escoCode string) ([]flows.OfflineMeter, error) {
	return s.offline(ctx, "flows.meters_offline_all", escoCode)
}

func (s *Store) offline(ctx context.Context, view, escoCode string) ([]flows.OfflineMeter, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT v.id, v.serial, coalesce(v.name, ''), v.last_online
		FROM `+view+` v LEFT JOIN flows.escos e ON e.id = v.esco
		WHERE $1 = '' OR lower(e.code) = lower($1)
		ORDER BY v.last_online`, escoCode)
	if err != nil {
		return nil, translate(err, "offline meters")
	}
	defer rows.Close()
	out := []flows.OfflineMeter{}
	for rows.Next() {
		var o flows.OfflineMeter
		if err := rows.Scan(&o.ID, &o.Serial, &o.Name, &o.LastOnline); err != nil {
			return nil, translate(err, "offline meters")
		}
		out = append(out, o)
	}
	return out, translate(rows.Err(), "offline meters")
}

// ClockDrifts lists rows of the meters_clock_drift view (drift ≥ 60 s).
func (s *Store) ClockDrifts(ctx context.Context, escoCode string) ([]flows.ClockDrift, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT v.id, v.serial, coalesce(v.name, ''), v.clock_time_diff_seconds, v.clock_time_diff_synced_at
		FROM flows.meters_clock_drift v LEFT JOIN flows.escos e ON e.id = v.esco
		WHERE $1 = '' OR lower(e.code) = lower($1)
		ORDER BY v.clock_time_diff_seconds DESC`, escoCode)
	if err != nil {
		return nil, translate(err, "clock drift")
	}
	defer rows.Close()
	out := []flows.ClockDrift{}
	for rows.Next() {
		var c flows.ClockDrift
		if err := rows.Scan(&c.ID, &c.Serial, &c.Name, &c.ClockTimeDiffSeconds, &c.SyncedAt); err != nil {
			return nil, translate(err, "clock drift")
		}
		out = append(out, c)
	}
	return out, translate(rows.Err(), "clock drift")
}
