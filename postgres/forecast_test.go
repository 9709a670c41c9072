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
