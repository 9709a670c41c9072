package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/shopspring/decimal"
)

// A meter spending £2.40 a day (a reading an hour, a £20 top-up in the
// middle) with £15 of emergency credit from £10 down is forecast to reach
// the threshold and lose supply when that rate says; the top-up's rise is
// not counted as spending. A meter spending nothing, one in credit mode
// and one already at its floor are forecast as an operator would expect,
// and each balance written through the shadow refreshes the forecast.
func TestCreditForecastFromTheBalancesSlope(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	store := postgres.NewStore(pool)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	tariff := `{"prepayment_ecredit_availability": 10, "prepayment_emergency_credit": 15, "standing_charge": 0.5, "unit_rate_element_a": 0.25}`
	meter := func(serial string, prepay bool, balance string) string {
		t.Helper()
		id := mustID(t, pool, `INSERT INTO flows.meter_registry (serial, prepay_enabled) VALUES ($1, $2) RETURNING id`, serial, prepay)
		mustExec(t, pool, `UPDATE flows.meter_shadows SET tariffs_active = $2 WHERE id = $1`, id, tariff)
		// 120 hourly readings loaded into the history (as an import
		// writes), then the forecast refreshed by hand, as the
		// documentation says to after such a load.
		mustExec(t, pool, `INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance)
			SELECT $1, $2::timestamptz + h * interval '1 hour', `+balance+` FROM generate_series(0, 119) h`, id, t0)
		mustExec(t, pool, `SELECT flows.rebuild_spend_days($1)`, id)
		mustExec(t, pool, `SELECT flows.refresh_credit_forecast($1)`, id)
		return id
	}
	spender := meter("EML1000000101", true, `30 - 0.1 * h + CASE WHEN h >= 60 THEN 20 ELSE 0 END`)
	flat := meter("EML1000000102", true, `12`)
	credit := meter("EML1000000103", false, `30 - 0.1 * h`)
	floor := meter("EML1000000104", true, `-3 - 0.1 * h`) // reaches -15 at h = 120

	last := t0.Add(119 * time.Hour)
	days := func(d float64) time.Time { return last.Add(time.Duration(d * 24 * float64(time.Hour))) }
	near := func(what string, got *time.Time, want time.Time) {
		t.Helper()
		if got == nil || got.Sub(want).Abs() > time.Second {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	f, err := store.CreditForecast(ctx, spender)
	if err != nil || f == nil {
		t.Fatalf("spender's forecast: %v %v", f, err)
	}
	if f.SpendPerDay == nil || !f.SpendPerDay.Equal(decimal.RequireFromString("2.4")) {
		t.Errorf("spend per day %v, want 2.40 (the top-up's rise left out)", f.SpendPerDay)
	}
	if want := decimal.RequireFromString("4.917"); !f.DaysObserved.Equal(want) {
		t.Errorf("days observed %s, want %s (118 falling hours)", f.DaysObserved, want)
	}
	if !f.Balance.Equal(decimal.RequireFromString("38.1")) || !f.BalanceAt.Equal(last) {
		t.Errorf("starts from %s at %v, want 38.10 at %v", f.Balance, f.BalanceAt, last)
	}
	near("threshold reached", f.ECreditAt, days((38.1-10)/2.4))
	near("supply cut", f.SupplyCutAt, days((38.1+15)/2.4))
	near("earliest cut (one steady rate: no band)", f.SupplyCutEarliest, days((38.1+15)/2.4))
	near("latest cut", f.SupplyCutLatest, days((38.1+15)/2.4))
	st, err := store.MeterStatus(ctx, "EML1000000101")
	if err != nil {
		t.Fatal(err)
	}
	near("the meter's credit_runs_out_at", st.CreditRunsOutAt, days((38.1+15)/2.4))

	if f, err := store.CreditForecast(ctx, flat); err != nil || f == nil || f.SpendPerDay == nil || !f.SpendPerDay.IsZero() || f.SupplyCutAt != nil {
		t.Errorf("a meter spending nothing: %+v %v, want a zero rate and no cut", f, err)
	}
	if f, err := store.CreditForecast(ctx, credit); err != nil || f == nil || f.SupplyCutAt != nil || f.ECreditAt != nil {
		t.Errorf("a meter in credit mode: %+v %v, want no cut", f, err)
	}
	if f, err := store.CreditForecast(ctx, floor); err != nil || f == nil {
		t.Errorf("a meter near its floor: %v %v", f, err)
	} else {
		near("the meter £0.10 above its floor", f.SupplyCutAt, days(0.1/2.4))
		if f.ECreditAt != nil {
			t.Errorf("already in emergency credit, the threshold is forecast at %v", f.ECreditAt)
		}
	}

	// A sync's balance (through the shadow and its history trigger)
	// refreshes the forecast from the new reading.
	next := last.Add(time.Hour)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET balance = 38, updated_at = $2 WHERE id = $1`, spender, next)
	f, err = store.CreditForecast(ctx, spender)
	if err != nil || f == nil || !f.BalanceAt.Equal(next) || !f.Balance.Equal(decimal.NewFromInt(38)) {
		t.Fatalf("after a sync's balance: %+v %v, want the forecast from 38.00 at %v", f, err, next)
	}
	near("supply cut after the sync", f.SupplyCutAt, next.Add(time.Duration((38.0+15)/f.SpendPerDay.InexactFloat64()*24*float64(time.Hour))))
	if n := count(t, pool, `SELECT count(*) FROM flows.meters_credit_forecast WHERE supply_cut_at IS NOT NULL`); n != 2 {
		t.Errorf("meters_credit_forecast lists %d meters with a cut, want 2", n)
	}
}

// The whole fleet's passes (rebuild_spend_days, refresh_credit_forecasts)
// count every meter's days and forecast it exactly as the one-meter path
// a sync takes (refresh_spend_day for each day, refresh_credit_forecast):
// a spender whose days differ (a band), one spending nothing, one in
// credit mode, one not read for three days, one with a gap in its
// readings and a top-up, and one whose readings are gone (no days, its
// forecast removed).
func TestFleetForecastPassMatchesTheOneMeterFunction(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	store := postgres.NewStore(pool)
	ctx := context.Background()
	tariff := `{"prepayment_ecredit_availability": 8, "prepayment_emergency_credit": 12}`
	now := time.Now().UTC().Truncate(time.Hour)
	ids := map[string]string{}
	meter := func(serial string, prepay bool, endAgo time.Duration, balance string) {
		t.Helper()
		id := mustID(t, pool, `INSERT INTO flows.meter_registry (serial, prepay_enabled) VALUES ($1, $2) RETURNING id`, serial, prepay)
		mustExec(t, pool, `UPDATE flows.meter_shadows SET tariffs_active = $2 WHERE id = $1`, id, tariff)
		// Ten days of hourly readings ending endAgo before now, h = 0
		// the oldest.
		mustExec(t, pool, `INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance)
			SELECT $1, $2::timestamptz - (239 - h) * interval '1 hour', `+balance+` FROM generate_series(0, 239) h
			WHERE NOT (h BETWEEN 100 AND 109 AND $3)`, id, now.Add(-endAgo), serial == "EML1000000205")
		ids[serial] = id
	}
	meter("EML1000000201", true, 0, `60 - 0.05 * h - 0.03 * h * (h % 24 = 7)::int`) // a dearer hour a day
	meter("EML1000000202", true, time.Hour, `12`)
	meter("EML1000000203", false, 0, `40 - 0.1 * h`)
	meter("EML1000000204", true, 72*time.Hour, `30 - 0.1 * h`)                                            // last read three days ago
	meter("EML1000000205", true, 30*time.Minute, `30 - 0.08 * h + CASE WHEN h >= 150 THEN 25 ELSE 0 END`) // ten hours unread, a top-up
	meter("EML1000000206", true, 0, `20 - 0.1 * h`)

	const cols = `meter_id, balance_at, balance, days_observed, spend_per_day, spend_per_day_low, spend_per_day_high, ecredit_threshold,
		emergency_credit, ecredit_at, supply_cut_at, supply_cut_earliest, supply_cut_latest`
	snapshot := func(query string) map[string]string {
		t.Helper()
		rows, err := pool.Query(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for rows.Next() {
			var id, row string
			if err := rows.Scan(&id, &row); err != nil {
				t.Fatal(err)
			}
			out[id] += row
		}
		return out
	}
	forecasts := func() map[string]string {
		return snapshot(`SELECT meter_id::text, row(` + cols + `)::text FROM flows.meter_credit_forecast`)
	}
	days := func() map[string]string {
		return snapshot(`SELECT meter_id::text, string_agg(row(day, spent, secs, last_at, last_balance)::text, ' ' ORDER BY day) FROM flows.meter_spend_days GROUP BY 1`)
	}
	// One meter at a time: its days from its history, then its forecast.
	one := func(id string) {
		t.Helper()
		mustExec(t, pool, `SELECT flows.rebuild_spend_days($1)`, id)
		mustExec(t, pool, `SELECT flows.refresh_credit_forecast($1)`, id)
	}
	for _, id := range ids {
		one(id)
	}
	// A meter's readings removed after its forecast was made.
	mustExec(t, pool, `DELETE FROM flows.meter_prepay_balance WHERE meter_id = $1`, ids["EML1000000206"])
	one(ids["EML1000000206"])
	oneDays, oneForecasts := days(), forecasts()
	mustExec(t, pool, `INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance) VALUES ($1, $2, 5)`, ids["EML1000000206"], now.Add(-time.Hour))
	one(ids["EML1000000206"])
	mustExec(t, pool, `DELETE FROM flows.meter_prepay_balance WHERE meter_id = $1`, ids["EML1000000206"])
	// Every day and forecast made again, and wrong, before the fleet's pass.
	mustExec(t, pool, `UPDATE flows.meter_spend_days SET spent = 99, last_balance = 0`)
	mustExec(t, pool, `UPDATE flows.meter_credit_forecast SET spend_per_day = 99, supply_cut_at = NULL, balance = 0`)

	// The fleet: every meter's days in one pass over the history, every
	// forecast in one pass over the days.
	if _, err := pool.Exec(ctx, `SELECT flows.rebuild_spend_days()`); err != nil {
		t.Fatal(err)
	}
	n, err := store.RefreshCreditForecasts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fleetDays, fleetForecasts := days(), forecasts()
	if n != 5 || len(fleetForecasts) != 5 || len(oneForecasts) != 5 || len(fleetDays) != 5 || len(oneDays) != 5 {
		t.Fatalf("the pass reports %d forecasts and left %d (%d meters with days), the one-meter path %d (%d); want 5 (the meter without readings has none)",
			n, len(fleetForecasts), len(fleetDays), len(oneForecasts), len(oneDays))
	}
	for serial, id := range ids {
		if fleetDays[id] != oneDays[id] {
			t.Errorf("%s: the fleet's pass counted the days\n  %s\none meter at a time\n  %s", serial, fleetDays[id], oneDays[id])
		}
		if fleetForecasts[id] != oneForecasts[id] {
			t.Errorf("%s: the fleet's pass made\n  %s\nthe one-meter function\n  %s", serial, fleetForecasts[id], oneForecasts[id])
		}
	}
	var band bool
	if err := pool.QueryRow(ctx, `SELECT spend_per_day_low < spend_per_day_high FROM flows.meter_credit_forecast WHERE meter_id = $1`, ids["EML1000000201"]).Scan(&band); err != nil || !band {
		t.Errorf("the spender whose days differ has no band (%v)", err)
	}
}
