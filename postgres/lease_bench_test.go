package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
)

// BenchmarkSchedulerAt100k measures the two whole-fleet statements of the
// sync engine at 100,000 active meters with a sync state each: a slot
// minute's LeaseDueGroup (every group job's chunk asks it once) and the
// scheduler's DueSyncs (every 30 s), beside their floor measured in the
// same run, a bare scan of the same rows (registry joined to sync state).
// They compute every meter's slot from its id, so they read the fleet by
// design; what they cost a wave is the figure times the calls (about 1,700
// meters a slot minute in chunks of hundreds: a few calls a minute).
//
//	go test -run '^$' -bench SchedulerAt100k ./postgres/
func BenchmarkSchedulerAt100k(b *testing.B) {
	ctx := context.Background()
	s := postgres.NewStore(pgtest.NewPool(b))
	if _, err := s.CreateESCO(ctx, "BENCH", "Bench"); err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	f, err := s.GenerateBenchFleet(ctx, "BENCH", n, 1_000_000, 0, time.Now().Add(-24*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	// Every meter read in the last hour (a fleet in its steady state).
	if _, err := s.Pool().Exec(ctx, `INSERT INTO flows.meter_sync_state (meter_id, last_attempt_at, last_success_at, syncs, last_run)
		SELECT id, now() - interval '50 minutes', now() - interval '50 minutes', 1, jsonb_build_object('hourly', now() - interval '50 minutes')
		FROM unnest($1::uuid[]) AS id`, f.MeterIDs); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	minute := now.Truncate(time.Minute)
	median := func(b *testing.B, op func() error) time.Duration {
		var ds []time.Duration
		for b.Loop() {
			t0 := time.Now()
			if err := op(); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(t0))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	var floor time.Duration
	b.Run("floor-scan", func(b *testing.B) {
		floor = median(b, func() error {
			var c int
			return s.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_registry r LEFT JOIN flows.meter_sync_state st ON st.meter_id = r.id
				WHERE r.mode = 'active' AND r.ip_address IS NOT NULL AND (st.last_run ->> 'hourly') IS NOT NULL`).Scan(&c)
		})
		b.ReportMetric(float64(floor.Microseconds())/1000, "ms/median")
	})
	b.Run("LeaseDueGroup", func(b *testing.B) {
		leased := 0
		d := median(b, func() error {
			// The first call leases the minute's meters; the later ones
			// find them held (a group's later chunks, other groups).
			ms, _, _, err := s.LeaseDueGroup(ctx, flows.Hourly, minute, now, now, false, "bench:1/group-hourly", time.Minute, 500)
			leased = max(leased, len(ms))
			return err
		})
		b.ReportMetric(float64(d.Microseconds())/1000, "ms/median")
		b.ReportMetric(float64(d)/float64(max(floor, 1)), "x-floor")
		b.Logf("LeaseDueGroup: %v median, %d meters leased by the first call; the bare scan %v: %.1f×", d, leased, floor, float64(d)/float64(max(floor, 1)))
	})
	b.Run("DueSyncs", func(b *testing.B) {
		due := 0
		d := median(b, func() error {
			ds, err := s.DueSyncs(ctx, flows.Hourly, now, now.Add(30*time.Second))
			due = len(ds)
			return err
		})
		b.ReportMetric(float64(d.Microseconds())/1000, "ms/median")
		b.ReportMetric(float64(d)/float64(max(floor, 1)), "x-floor")
		b.Logf("DueSyncs: %v median, %d due; the bare scan %v: %.1f×", d, due, floor, float64(d)/float64(max(floor, 1)))
	})
}
