package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// BenchmarkSeedHistoryQueries measures the seed's two balance-history
// queries, verbatim, against 1,000 meters with 90 days of half-hourly
// history (4.32 M rows). Goal: median under 10 ms each. Run with
//
//	go test -run '^$' -bench SeedHistory ./postgres/
func BenchmarkSeedHistoryQueries(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	start := time.Now()
	ids := loadHistory(b, pool, 1000, 90)
	var rowsN int64
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM flows.meter_prepay_balance`).Scan(&rowsN)
	b.Logf("loaded %d meters, %d balance rows in %v", len(ids), rowsN, time.Since(start).Round(time.Second))

	blocks := map[string]string{}
	for _, name := range []string{"INTERVAL '7 days'", "Daily balance summary"} {
		for _, blk := range seedSQLB(b) {
			if strings.Contains(blk, name) {
				blocks[name] = blk
			}
		}
	}
	for _, c := range []struct{ name, marker string }{
		{"7-day-history", "INTERVAL '7 days'"},
		{"30-day-daily-summary", "Daily balance summary"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var durs []time.Duration
			for b.Loop() {
				id := ids[rand.IntN(len(ids))]
				sql := strings.ReplaceAll(blocks[c.marker], "{{meter_id}}", id)
				t0 := time.Now()
				rows, err := pool.Query(ctx, sql)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if rows.Err() != nil || n == 0 {
					b.Fatalf("query returned %d rows, %v", n, rows.Err())
				}
				durs = append(durs, time.Since(t0))
			}
			slices.Sort(durs)
			med := durs[len(durs)/2]
			p99 := durs[len(durs)*99/100]
			b.ReportMetric(float64(med.Microseconds())/1000, "ms-median")
			b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99")
			fmt.Printf("%s over %d balance rows: median %.2f ms, p99 %.2f ms (goal: median < 10 ms)\n",
				c.name, rowsN, float64(med.Microseconds())/1000, float64(p99.Microseconds())/1000)
		})
	}
}

// loadHistory creates n meters with days of half-hourly balance history
// ending now, generated server-side.
func loadHistory(b *testing.B, pool *pgxpool.Pool, n, days int) []string {
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO flows.meter_registry (serial, name, mode)
		SELECT 'EML' || (3000000000 + g)::text, 'Bench ' || g, 'active' FROM generate_series(1, $1) g`, n)
	if err != nil {
		b.Fatal(err)
	}
	// One INSERT per batch of meters keeps memory bounded.
	for lo := 0; lo < n; lo += 100 {
		_, err := pool.Exec(ctx, `
			INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance, emergency_credit)
			SELECT r.id, now() - k * interval '30 minutes', round(50 - (k % 500) * 0.0123, 5), 15
			FROM (SELECT id FROM flows.meter_registry ORDER BY serial OFFSET $1 LIMIT 100) r,
			     generate_series(0, $2 * 48 - 1) k`, lo, days)
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE flows.meter_prepay_balance`); err != nil {
		b.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT id::text FROM flows.meter_registry`)
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	return ids
}
