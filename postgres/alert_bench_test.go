package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// BenchmarkAlertEvaluationAt100k times one evaluation of an ESCO's alert
// rules, one of each kind, over 100,000 meters: the commands component
// runs it every 30 s, so its time over 30 s is the share of a PostgreSQL
// core alerting costs. The first evaluation opens the episodes of a
// fleet with a meter in about every condition; the steady one (nothing
// changed since) is the one that recurs. Beside them in the same run,
// their ceiling: the six rules' conditions read alone, without the
// episodes' bookkeeping.
//
//	go test -run '^$' -bench AlertEvaluationAt100k -benchtime 1x ./postgres/
func BenchmarkAlertEvaluationAt100k(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	s := postgres.NewStore(pool)
	if _, err := s.CreateESCO(ctx, "BENCH", "Bench"); err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	now := time.Now().UTC()
	_, err := s.GenerateBenchFleet(ctx, "BENCH", n, 0, 0, now.Add(-30*24*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	// Shadows, forecasts, a disconnection and a failed top-up for some of
	// the meters, loaded with triggers off (consistent by construction).
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, q := range []string{
			`SET LOCAL session_replication_role = replica`,
			`UPDATE flows.meter_shadows ms SET balance = (abs(hashtext(ms.id::text)) % 4000) / 100.0, updated_at = now(),
				last_online_at = now() - (abs(hashtext(ms.id::text)) % 50) * interval '1 hour', clock_time_diff_seconds = abs(hashtext(ms.id::text)) % 200`,
			`INSERT INTO flows.meter_credit_forecast (meter_id, balance_at, balance, days_observed, spend_per_day, supply_cut_at)
				SELECT id, now(), balance, 7, 2.4, now() + (abs(hashtext(id::text)) % 240) * interval '1 hour' FROM flows.meter_shadows`,
			`INSERT INTO flows.meter_self_disconnections (meter_id, started_at, source)
				SELECT id, now() - interval '2 hours', 'balance' FROM flows.meter_registry WHERE abs(hashtext(id::text)) % 100 = 0`,
			`INSERT INTO flows.topups (meter_id, token, status, notes)
				SELECT id, lpad((abs(hashtext(id::text)))::text, 20, '0'), 'failed_token_push', 'Meter refused the token: NAK 6'
				FROM flows.meter_registry WHERE abs(hashtext(id::text)) % 200 = 0`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%.60s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	th := func(v int64) *decimal.Decimal { d := decimal.NewFromInt(v); return &d }
	for _, r := range []flows.NewAlertRule{
		{Name: "Under £5", Kind: flows.AlertLowBalance, Threshold: th(5)},
		{Name: "Losing supply within 48 h", Kind: flows.AlertLosingSupply, Threshold: th(48)},
		{Name: "Self-disconnected", Kind: flows.AlertSelfDisconnected},
		{Name: "Offline 24 h", Kind: flows.AlertOffline, Threshold: th(24)},
		{Name: "Clock off by 120 s", Kind: flows.AlertClockDrift, Threshold: th(120)},
		{Name: "Push failed", Kind: flows.AlertPushFailed},
	} {
		r.ESCO = "BENCH"
		if _, err := s.CreateAlertRule(ctx, r, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		t0 := time.Now()
		opened, err := s.EvaluateAlerts(ctx)
		if err != nil {
			b.Fatal(err)
		}
		first := time.Since(t0)
		var episodes int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM flows.alert_episodes WHERE resolved_at IS NULL`).Scan(&episodes); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if _, err := s.EvaluateAlerts(ctx); err != nil {
			b.Fatal(err)
		}
		steady := time.Since(t0)
		t0 = time.Now()
		var inCondition int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM flows.alert_rules r, flows.alert_condition(r)`).Scan(&inCondition); err != nil {
			b.Fatal(err)
		}
		bare := time.Since(t0)
		fmt.Printf("alert evaluation, 6 rules (one of each kind) over %d meters: first %.2f s (%d episodes opened, %d deliveries owed), "+
			"steady %.2f s = %.1f%% of a core at one evaluation every 30 s; ceiling, the six conditions read alone (%d meter-rules, no episodes kept): %.2f s (%.1f×)\n",
			n, first.Seconds(), episodes, len(opened), steady.Seconds(), steady.Seconds()/30*100, inCondition, bare.Seconds(), steady.Seconds()/bare.Seconds())
		b.ReportMetric(steady.Seconds(), "s-steady")
		b.ReportMetric(bare.Seconds(), "s-ceiling")
	}
}
