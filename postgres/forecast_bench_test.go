package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
)

// BenchmarkCreditForecastAt100k recomputes every meter's credit forecast
// at 100,000 meters with 7 days of hourly balance readings each (16.8 M
// rows) and half of them with their intervals' daily totals too (issue
// 18's goal: under 10 s), beside its ceiling measured in the
// same run, one bare read of the same readings. A sync refreshes one
// meter's forecast as it writes the balance; this is the whole fleet at
// once (a rule changed), in one pass over the meters' days
// (refresh_credit_forecasts, migration 0030), beside its ceiling and the
// one-meter function on a tenth; and the days rebuilt from the history
// (what an import needs: rebuild_spend_days) beside a bare read of it.
//
//	go test -run '^$' -bench CreditForecastAt100k -benchtime 1x ./postgres/
func BenchmarkCreditForecastAt100k(b *testing.B) {
	ctx := context.Background()
	s := postgres.NewStore(pgtest.NewPool(b))
	if _, err := s.CreateESCO(ctx, "BENCH", "Bench"); err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	now := time.Now().UTC().Truncate(time.Hour)
	from := now.Add(-7 * 24 * time.Hour)
	if err := s.PrepareMonthPartitions(ctx, from, now); err != nil {
		b.Fatal(err)
	}
	f, err := s.GenerateBenchFleet(ctx, "BENCH", n, 0, 0, from)
	if err != nil {
		b.Fatal(err)
	}
	var rows int64
	for lo := 0; lo < n; lo += 2000 {
		k, err := s.GenerateBalanceHistory(ctx, f.MeterIDs[lo:min(lo+2000, n)], from, now, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		rows += k
	}
	// Half the meters have their half hours too (the per-day totals the
	// forecast reads, every whole day but today's: collection is daily),
	// priced at a tariff every meter has.
	if _, err := s.Pool().Exec(ctx, `UPDATE flows.meter_shadows SET tariffs_active = '{"standing_charge": 0.5868, "unit_rate_element_a": 0.2843,
		"unit_rate_element_b": 0.15, "prepayment_ecredit_availability": 10, "prepayment_debt_recovery_rate": 0.25, "prepayment_emergency_credit": 15}'`); err != nil {
		b.Fatal(err)
	}
	intervalDays, err := s.GenerateIntervalDays(ctx, f.RegisterIDs[:len(f.RegisterIDs)/2], from, now)
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range []string{"meter_prepay_balance", "register_interval_day"} {
		if err := s.VacuumAnalyze(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		// The import's path: every meter's days from the history.
		t0 := time.Now()
		var days int64
		if err := s.Pool().QueryRow(ctx, `SELECT flows.rebuild_spend_days()`).Scan(&days); err != nil {
			b.Fatal(err)
		}
		rebuild := time.Since(t0)
		t0 = time.Now()
		var read int64
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM (SELECT meter_id, "timestamp", balance FROM flows.meter_prepay_balance
			WHERE "timestamp" > $1::timestamptz - interval '14 days' ORDER BY meter_id, "timestamp") r`, now).Scan(&read); err != nil {
			b.Fatal(err)
		}
		bareHistory := time.Since(t0)
		// The goal: every forecast recomputed, from the days.
		t0 = time.Now()
		forecasts, err := s.RefreshCreditForecasts(ctx)
		if err != nil {
			b.Fatal(err)
		}
		all := time.Since(t0)
		t0 = time.Now()
		if err := s.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM (SELECT meter_id, day, spent, secs, last_at, last_balance FROM flows.meter_spend_days
			ORDER BY meter_id, day) d) + (SELECT count(*) FROM (SELECT register_id, day, half_hours, kwh FROM flows.register_interval_day
			ORDER BY register_id, day) i)`).Scan(&read); err != nil {
			b.Fatal(err)
		}
		bareDays := time.Since(t0)
		// The one-meter function (a sync's path) over a tenth of the
		// fleet, for comparison.
		t0 = time.Now()
		if _, err := s.Pool().Exec(ctx, `SELECT count(flows.refresh_credit_forecast(id)) FROM (SELECT id FROM flows.meter_registry LIMIT 10000) m`); err != nil {
			b.Fatal(err)
		}
		each := time.Since(t0)
		var cut, fromIntervals int
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE supply_cut_at IS NOT NULL), count(*) FILTER (WHERE spend_from = 'intervals')
			FROM flows.meter_credit_forecast`).Scan(&cut, &fromIntervals); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("credit forecasts for %d meters (%d balance readings, %d meter-days, %d register-days of intervals): recomputed in %.1f s (goal < 10 s), "+
			"%d from intervals, %d with a cut forecast; ceiling, one bare ordered read of the days and interval days: %.1f s (%.1f×); "+
			"the one-meter function (a sync's path), 10,000 meters: %.1f s\n",
			forecasts, rows, days, intervalDays, all.Seconds(), fromIntervals, cut, bareDays.Seconds(), all.Seconds()/bareDays.Seconds(), each.Seconds())
		fmt.Printf("the days rebuilt from the history (after an import): %.1f s; ceiling, one bare ordered read of those 14 days of readings: %.1f s (%.1f×)\n",
			rebuild.Seconds(), bareHistory.Seconds(), rebuild.Seconds()/bareHistory.Seconds())
		b.ReportMetric(all.Seconds(), "s-recompute")
		b.ReportMetric(bareDays.Seconds(), "s-ceiling")
		b.ReportMetric(rebuild.Seconds(), "s-rebuild")
	}
}
