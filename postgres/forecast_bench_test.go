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
// rows; issue 18's goal: under 10 s), beside its ceiling measured in the
// same run, one bare read of the same readings. A sync refreshes one
// meter's forecast as it writes the balance; this is the whole fleet at
// once (after a migration, or a rule changed), in one pass
// (refresh_credit_forecasts), beside the one-meter function on a tenth.
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
	if err := s.VacuumAnalyze(ctx, "meter_prepay_balance"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		t0 := time.Now()
		forecasts, err := s.RefreshCreditForecasts(ctx)
		if err != nil {
			b.Fatal(err)
		}
		all := time.Since(t0)
		// The one-meter function (a sync's path) over a tenth of the
		// fleet, for comparison.
		t0 = time.Now()
		if _, err := s.Pool().Exec(ctx, `SELECT count(flows.refresh_credit_forecast(id)) FROM (SELECT id FROM flows.meter_registry LIMIT 10000) m`); err != nil {
			b.Fatal(err)
		}
		each := time.Since(t0)
		t0 = time.Now()
		var read int64
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM (SELECT meter_id, "timestamp", balance FROM flows.meter_prepay_balance
			WHERE "timestamp" > $1::timestamptz - interval '7 days' ORDER BY meter_id, "timestamp") r`, now).Scan(&read); err != nil {
			b.Fatal(err)
		}
		bare := time.Since(t0)
		var cut int
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_credit_forecast WHERE supply_cut_at IS NOT NULL`).Scan(&cut); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("credit forecasts for %d meters (%d balance readings): recomputed in one pass in %.1f s (goal < 10 s), %d with a cut forecast; "+
			"ceiling, one bare ordered read of the same readings: %.1f s (pass ÷ ceiling %.1f×); the one-meter function (a sync's path), 10,000 meters: %.1f s (%.0f s for the fleet at that rate)\n",
			forecasts, rows, all.Seconds(), cut, bare.Seconds(), all.Seconds()/bare.Seconds(), each.Seconds(), each.Seconds()*10)
		b.ReportMetric(all.Seconds(), "s-recompute")
		b.ReportMetric(bare.Seconds(), "s-ceiling")
	}
}
