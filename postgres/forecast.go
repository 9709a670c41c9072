package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
)

// CreditForecast returns a meter's credit forecast (migration 0029), or
// nil when it has none (no balance read yet).
func (s *Store) CreditForecast(ctx context.Context, meterID string) (*flows.CreditForecast, error) {
	var f flows.CreditForecast
	err := s.pool.QueryRow(ctx, `SELECT balance_at, balance, days_observed, spend_per_day, spend_per_day_low, spend_per_day_high,
			ecredit_threshold, emergency_credit, ecredit_at, supply_cut_at, supply_cut_earliest, supply_cut_latest, computed_at, spend_from
		FROM flows.meter_credit_forecast WHERE meter_id = $1`, meterID).Scan(&f.BalanceAt, &f.Balance, &f.DaysObserved,
		&f.SpendPerDay, &f.SpendPerDayLow, &f.SpendPerDayHigh, &f.ECreditThreshold, &f.EmergencyCredit,
		&f.ECreditAt, &f.SupplyCutAt, &f.SupplyCutEarliest, &f.SupplyCutLatest, &f.ComputedAt, &f.SpendFrom)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, translate(err, "credit forecast")
	}
	inUTC(&f.BalanceAt, &f.ComputedAt, f.ECreditAt, f.SupplyCutAt, f.SupplyCutEarliest, f.SupplyCutLatest)
	return &f, nil
}

// LosingSupply lists the meters forecast to lose supply before now+within
// (those whose forecast cut has passed too: they may be off supply now),
// soonest first, optionally of one ESCO.
func (s *Store) LosingSupply(ctx context.Context, within time.Duration, escoCode string) ([]flows.LosingSupply, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT f.id, f.serial, coalesce(f.name, ''), f.balance, f.balance_at, f.spend_per_day, f.supply_cut_at, f.supply_cut_earliest, f.supply_cut_latest
		FROM flows.meters_credit_forecast f LEFT JOIN flows.escos e ON e.id = f.esco
		WHERE f.supply_cut_at < $1::timestamptz AND ($2 = '' OR lower(e.code) = lower($2))
		ORDER BY f.supply_cut_at, f.serial`, s.now().Add(within), escoCode)
	if err != nil {
		return nil, translate(err, "credit forecast")
	}
	defer rows.Close()
	out := []flows.LosingSupply{}
	for rows.Next() {
		var l flows.LosingSupply
		if err := rows.Scan(&l.ID, &l.Serial, &l.Name, &l.Balance, &l.BalanceAt, &l.SpendPerDay, &l.SupplyCutAt, &l.SupplyCutEarliest, &l.SupplyCutLatest); err != nil {
			return nil, translate(err, "credit forecast")
		}
		inUTC(&l.BalanceAt, &l.SupplyCutAt, l.SupplyCutEarliest, l.SupplyCutLatest)
		out = append(out, l)
	}
	return out, translate(rows.Err(), "credit forecast")
}

// inUTC puts the times given (nil ones skipped) in UTC, as the API shows
// every time.
func inUTC(ts ...*time.Time) {
	for _, t := range ts {
		if t != nil {
			*t = t.UTC()
		}
	}
}

// RefreshCreditForecasts recomputes every meter's credit forecast in one
// pass over the meters' days (migration 0030: a change to how
// forecasts are made) and returns how many meters have one.
func (s *Store) RefreshCreditForecasts(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT flows.refresh_credit_forecasts()`).Scan(&n)
	return n, translate(err, "credit forecasts")
}
