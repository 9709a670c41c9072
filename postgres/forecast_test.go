package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
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
		emergency_credit, ecredit_at, supply_cut_at, supply_cut_earliest, supply_cut_latest, spend_from`
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

	// A sync batch's pass (migration 0035): the meters named, as the
	// one-meter function makes them (the one whose readings are gone has
	// its stale forecast removed), and no other meter touched.
	mustExec(t, pool, `INSERT INTO flows.meter_credit_forecast (meter_id, balance_at, balance, days_observed, computed_at) VALUES ($1, now(), 1, 1, now())`, ids["EML1000000206"])
	mustExec(t, pool, `UPDATE flows.meter_credit_forecast SET spend_per_day = 99, supply_cut_at = NULL, balance = 0`)
	named := []string{ids["EML1000000201"], ids["EML1000000205"], ids["EML1000000206"]}
	if _, err := pool.Exec(ctx, `SELECT flows.refresh_credit_forecasts($1::uuid[])`, named); err != nil {
		t.Fatal(err)
	}
	batch := forecasts()
	for serial, id := range ids {
		switch serial {
		case "EML1000000201", "EML1000000205", "EML1000000206":
			if batch[id] != oneForecasts[id] {
				t.Errorf("%s: the batch's pass made\n  %q\nthe one-meter function\n  %q", serial, batch[id], oneForecasts[id])
			}
		default:
			if !strings.Contains(batch[id], ",99.00000,") { // spoilt above, and so left
				t.Errorf("%s, not named: its forecast was refreshed by the batch's pass: %s", serial, batch[id])
			}
		}
	}
}

// A meter's half hours, where it has a day of them, give its spending
// rate: priced at the active tariff's unit rates per element, with the
// standing charge, and with the debt recovery its balance shows. A twin
// meter read only every 8 hours (no balance step short enough to count)
// is still forecast; a meter whose balance falls faster than its energy
// and standing charge has the excess counted, up to the recovery rate; a
// meter with half a day of intervals, one whose tariff has no rate for
// an element it used, and one whose only register is reversed keep the
// balance's slope.
func TestCreditForecastFromIntervals(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	store := postgres.NewStore(pool)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	const tariff = `{"prepayment_ecredit_availability": 10, "prepayment_emergency_credit": 15, "standing_charge": 0.5,
		"unit_rate_element_a": 0.25, "unit_rate_element_b": 0.1, "prepayment_debt_recovery_rate": 0.3}`
	meter := func(serial, tariff string, elements ...string) string {
		t.Helper()
		id := mustID(t, pool, `INSERT INTO flows.meter_registry (serial, prepay_enabled) VALUES ($1, true) RETURNING id`, serial)
		mustExec(t, pool, `UPDATE flows.meter_shadows SET tariffs_active = $2 WHERE id = $1`, id, tariff)
		for _, e := range elements {
			reversed := e == "SINGLE-reversed"
			if reversed {
				e = "SINGLE"
			}
			mustExec(t, pool, `INSERT INTO flows.meter_registers (meter_id, element, direction_reversed) VALUES ($1, $2, $3)`, id, e, reversed)
		}
		return id
	}
	// halfHours records of the profile log from t0, cumulative Wh: A
	// 500 Wh a half hour (24 kWh a day), B 250 Wh in each of the first 14
	// half hours of a day (3.5 kWh), derived as the profile syncer does.
	profile := func(id string, halfHours int) {
		t.Helper()
		mustExec(t, pool, `INSERT INTO flows.meter_profile (meter_id, "timestamp", status, import_a_wh, import_b_wh, export_a_wh, export_b_wh)
			SELECT $1, $2::timestamptz + k * interval '30 minutes', 32768, 1000 + 500 * k,
			       250 * (14 * (k / 48) + least(k % 48, 14)), 500 * k, 0
			FROM generate_series(0, $3) k`, id, t0, halfHours)
		mustExec(t, pool, `SELECT flows.derive_register_intervals($1, $2, $3)`, id, t0, t0.Add(time.Duration(halfHours)*30*time.Minute))
	}
	balances := func(id string, every time.Duration, n int, perDay string) {
		t.Helper()
		mustExec(t, pool, `INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance)
			SELECT $1, $2::timestamptz + h * $3::interval, 60 - `+perDay+` * extract(epoch FROM h * $3::interval) / 86400
			FROM generate_series(0, $4 - 1) h`, id, t0, every.String(), n)
		mustExec(t, pool, `SELECT flows.rebuild_spend_days($1)`, id)
		mustExec(t, pool, `SELECT flows.refresh_credit_forecast($1)`, id)
	}
	twin := meter("EML1000000111", tariff, "A", "B")
	profile(twin, 240)
	balances(twin, 8*time.Hour, 15, "6.85")
	recovering := meter("EML1000000112", tariff, "SINGLE")
	profile(recovering, 240)
	balances(recovering, time.Hour, 120, "6.7")
	halfDay := meter("EML1000000113", tariff, "SINGLE")
	profile(halfDay, 24)
	balances(halfDay, time.Hour, 120, "2.4")
	unpriced := meter("EML1000000114", `{"prepayment_emergency_credit": 15, "unit_rate_element_a": 0.25}`, "A", "B")
	profile(unpriced, 240)
	balances(unpriced, time.Hour, 120, "2.4")
	reversed := meter("EML1000000115", tariff, "SINGLE-reversed")
	profile(reversed, 240)
	balances(reversed, time.Hour, 120, "2.4")

	forecast := func(id string) *flows.CreditForecast {
		t.Helper()
		f, err := store.CreditForecast(ctx, id)
		if err != nil || f == nil {
			t.Fatalf("forecast: %v %v", f, err)
		}
		return f
	}
	rate := func(what string, f *flows.CreditForecast, from, want string) {
		t.Helper()
		if f.SpendFrom != from || f.SpendPerDay == nil || !f.SpendPerDay.Equal(decimal.RequireFromString(want)) {
			t.Errorf("%s: spends %v a day from its %s, want %s from its %s", what, f.SpendPerDay, f.SpendFrom, want, from)
		}
	}
	f := forecast(twin)
	// £6.00 of A, £0.35 of B, £0.50 standing charge; no slope, so no
	// debt recovery seen.
	rate("the twin meter read every 8 hours", f, "intervals", "6.85")
	if !f.DaysObserved.Equal(decimal.NewFromInt(5)) {
		t.Errorf("the twin meter's rate is from %s days, want 5 (240 half hours)", f.DaysObserved)
	}
	last := t0.Add(112 * time.Hour)
	wantCut := last.Add(time.Duration((f.Balance.InexactFloat64() + 15) / 6.85 * 24 * float64(time.Hour)))
	if !f.BalanceAt.Equal(last) || f.SupplyCutAt == nil || f.SupplyCutAt.Sub(wantCut).Abs() > time.Second {
		t.Errorf("the twin meter's cut is forecast at %v from %v, want %v from %v", f.SupplyCutAt, f.BalanceAt, wantCut, last)
	}
	// Its days repeat exactly: no band.
	if !f.SpendPerDayLow.Equal(*f.SpendPerDay) || !f.SpendPerDayHigh.Equal(*f.SpendPerDay) {
		t.Errorf("the twin meter's band %v–%v, want none around %v", f.SpendPerDayLow, f.SpendPerDayHigh, f.SpendPerDay)
	}
	// £6.50 from the half hours; its balance falls £0.20 a day faster:
	// debt recovery (at most £0.30).
	rate("the meter recovering a debt", forecast(recovering), "intervals", "6.7")
	rate("a meter with half a day of intervals", forecast(halfDay), "balance", "2.4")
	rate("a meter whose tariff has no element-B rate", forecast(unpriced), "balance", "2.4")
	rate("a meter whose only register is reversed", forecast(reversed), "balance", "2.4")

	// A balance falling faster than energy, standing charge and the
	// whole recovery rate: the intervals are believed, the excess over
	// the recovery rate is not spending.
	mustExec(t, pool, `UPDATE flows.meter_shadows SET tariffs_active = jsonb_set(tariffs_active, '{prepayment_debt_recovery_rate}', '0.1') WHERE id = $1`, recovering)
	mustExec(t, pool, `SELECT flows.refresh_credit_forecast($1)`, recovering)
	rate("the meter recovering at most £0.10 a day", forecast(recovering), "intervals", "6.6")

	// The fleet's pass forecasts each of them as the one-meter function.
	before := count(t, pool, `SELECT count(*) FROM flows.meter_credit_forecast`)
	var want []string
	if err := pool.QueryRow(ctx, `SELECT array_agg(row(f.*)::text ORDER BY meter_id) FROM (SELECT meter_id, spend_from, days_observed,
		spend_per_day, spend_per_day_low, spend_per_day_high, supply_cut_at FROM flows.meter_credit_forecast) f`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	mustExec(t, pool, `UPDATE flows.meter_credit_forecast SET spend_from = 'balance', spend_per_day = 0`)
	if _, err := store.RefreshCreditForecasts(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := pool.QueryRow(ctx, `SELECT array_agg(row(f.*)::text ORDER BY meter_id) FROM (SELECT meter_id, spend_from, days_observed,
		spend_per_day, spend_per_day_low, spend_per_day_high, supply_cut_at FROM flows.meter_credit_forecast) f`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if before != 5 || !slices.Equal(got, want) {
		t.Errorf("the fleet's pass made\n  %v\nthe one-meter function\n  %v", got, want)
	}
}

// The days a forecast reads, kept a step at a time as each balance is
// written in time order (migration 0035), are the days 0030's rule counts
// from the history: through a top-up, a seven-hour gap, midnight, a
// reading written into the past (which recounts its day) and readings at
// odd microseconds. Seconds are rounded to the millisecond a step, so
// they may differ from the day's recount by that much a reading.
func TestSpendDaysKeptStepByStepMatchTheRebuild(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	store := postgres.NewStore(pool)
	ctx := context.Background()
	id := mustID(t, pool, `INSERT INTO flows.meter_registry (serial) VALUES ('EML1000000301') RETURNING id`)
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(-60 * time.Hour)
	bal := decimal.RequireFromString("30")
	write := func(at time.Time, b decimal.Decimal) {
		t.Helper()
		if err := store.UpdateShadow(ctx, id, flows.ShadowUpdate{Balance: &b, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	for h := 0; h < 58; h++ {
		if h >= 20 && h < 27 {
			continue // seven hours unread
		}
		at := start.Add(time.Duration(h)*time.Hour + time.Duration(h*7919)*time.Microsecond)
		bal = bal.Sub(decimal.RequireFromString("0.13"))
		if h == 40 {
			bal = bal.Add(decimal.NewFromInt(20)) // a top-up
		}
		write(at, bal)
	}
	// A reading into the past, between two of the first day's.
	write(start.Add(5*time.Hour+30*time.Minute), decimal.RequireFromString("29.2"))

	type day struct {
		spent, secs, last string
	}
	read := func() map[string]day {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT day::text, spent::text, secs::text, row(last_at, last_balance)::text FROM flows.meter_spend_days WHERE meter_id = $1`, id)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]day{}
		for rows.Next() {
			var d string
			var v day
			if err := rows.Scan(&d, &v.spent, &v.secs, &v.last); err != nil {
				t.Fatal(err)
			}
			out[d] = v
		}
		return out
	}
	kept := read()
	mustExec(t, pool, `SELECT flows.rebuild_spend_days($1)`, id)
	rebuilt := read()
	if len(kept) != 3 || len(rebuilt) != 3 {
		t.Fatalf("days kept %v, rebuilt %v; want 3 each", kept, rebuilt)
	}
	for d, r := range rebuilt {
		k := kept[d]
		ks, rs := decimal.RequireFromString(k.secs), decimal.RequireFromString(r.secs)
		if k.spent != r.spent || k.last != r.last || ks.Sub(rs).Abs().GreaterThan(decimal.RequireFromString("0.03")) {
			t.Errorf("%s: kept step by step %+v, rebuilt from the history %+v", d, k, r)
		}
	}
}
