package postgres_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/shopspring/decimal"
)

// The statements a sync, a push and a meter page run for one meter find
// their rows by index, not by reading a whole table: at 100,000 meters a
// scan of the registry, the shadows, the sync state or the history for
// every meter's sync is what would take PostgreSQL past a core. The test
// runs the store's own statements (not copies of them) against a fleet
// of a few thousand meters, analysed, and reads PostgreSQL's per-table
// scan counters. Whole-fleet statements — the scheduler's DueSyncs and a
// slot minute's LeaseDueGroup, which read every active meter's slot once
// a chunk by design — are not in the hot path measured here. It found the
// profile write's reference check reading the registry whole, twice a
// meter (migration 0026 fixed it).
func TestHotStatementsUseIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// One connection: its statistics are flushed on demand below.
	pool, err := postgres.Open(ctx, pgtest.NewDB(t)+"&pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := postgres.NewStore(pool).WithMeterGap(time.Millisecond)
	const fleet = 3000
	var nm []flows.NewMeter
	for i := range fleet {
		nm = append(nm, flows.NewMeter{Serial: fmt.Sprintf("EML21%08d", 37000000+i), Hardware: "C1.w",
			IPAddress: fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256), Port: 8080})
	}
	if _, err := s.ImportMeters(ctx, "", nm, nil); err != nil {
		t.Fatal(err)
	}
	meters, err := s.Meters(ctx, flows.MeterFilter{})
	if err != nil || len(meters) != fleet {
		t.Fatalf("%d meters, %v", len(meters), err)
	}
	// Each result brings an event and the meter's profile: the given
	// number of half hours before it, as a sync would.
	result := func(m flows.Meter, at time.Time, bal string, halfHours int) flows.SyncResult {
		b, csq := decimal.RequireFromString(bal), 17
		r := flows.SyncResult{MeterID: m.ID, At: at, Reached: true, TouchHealth: true, Groups: []string{"balance", "csq"},
			Shadow: flows.ShadowUpdate{Balance: &b, CSQ: &csq, At: at},
			Events: []flows.MeterEvent{{Timestamp: at.Add(-time.Minute).Truncate(time.Second), EventType: 5, EventSet: 1}}}
		for hh := range halfHours {
			imp := uint32(1000 + hh)
			r.Profile = append(r.Profile, flows.ProfileRecord{At: at.Truncate(30 * time.Minute).Add(-time.Duration(hh+1) * 30 * time.Minute),
				Status: flows.ProfileValidData, ImportA: &imp})
		}
		return r
	}
	// Two hours of the fleet's history, in batches as the engine writes;
	// in the second, every tenth meter brings 12 hours of profile (enough
	// rows that the planner would not read meter_profile whole for them).
	start := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Hour)
	for h := range 2 {
		var rs []flows.SyncResult
		for i, m := range meters {
			profile := 0
			if h == 1 && i%10 == 0 {
				profile = 24
			}
			rs = append(rs, result(m, start.Add(time.Duration(h)*time.Hour+time.Duration(i)*time.Second), fmt.Sprintf("%d.%02d", 10+h, i%100), profile))
			if len(rs) == 500 {
				if _, err := s.ApplySyncs(ctx, rs, string(flows.Hourly), ""); err != nil {
					t.Fatal(err)
				}
				rs = rs[:0]
			}
		}
		if _, err := s.ApplySyncs(ctx, rs, string(flows.Hourly), ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	scans := func() map[string]int64 {
		t.Helper()
		// Flush this connection's counters and read them afresh.
		if _, err := pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
			t.Fatal(err)
		}
		// Tables of fewer than 1,000 rows are left out: the planner rightly
		// reads a small table whole.
		rows, err := pool.Query(ctx, `SELECT relname, seq_scan FROM pg_stat_user_tables WHERE schemaname = 'flows' AND n_live_tup >= 1000`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for rows.Next() {
			var name string
			var n int64
			if err := rows.Scan(&name, &n); err != nil {
				t.Fatal(err)
			}
			out[name] = n
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := scans()

	// The hot path, for 40 meters: a sync (lease, the lookups a read
	// makes, the result with the lease), a push's lease, the meter page's
	// reads, another node's want and the holder's poll for it.
	now := time.Now().UTC()
	var hot []flows.SyncResult
	for i := 0; i < fleet; i += fleet / 40 {
		m := meters[i]
		if _, ok, err := s.LeaseMeter(ctx, m.ID, "a:1", time.Minute); err != nil || !ok {
			t.Fatalf("lease: %v %v", ok, err)
		}
		if _, err := s.LastEventTime(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ProfileGaps(ctx, m.ID, now.Add(-24*time.Hour), now); err != nil {
			t.Fatal(err)
		}
		hot = append(hot, result(m, now, "12.34", 24))
		if ok, err := s.LeaseMeterForPush(ctx, m.ID, "a:1/push", time.Minute); err != nil || !ok {
			t.Fatalf("push lease: %v %v", ok, err)
		}
		if err := s.ReleasePushLease(ctx, m.ID, "a:1/push"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MeterBySerial(ctx, m.Serial); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Shadow(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MeterAudit(ctx, m.ID, 20); err != nil {
			t.Fatal(err)
		}
		// Another node's operator work wants the meter; the holder's
		// poll for wanted meters (every quarter second per node).
		if err := s.WantMeter(ctx, m.ID, "b:2"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WantedFrom(ctx, "a:1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ApplySyncs(ctx, hot, string(flows.Hourly), "a:1"); err != nil {
		t.Fatal(err)
	}
	after := scans()
	var scanned []string
	for name, n := range after {
		if d := n - before[name]; d > 0 {
			scanned = append(scanned, fmt.Sprintf("%s (%d)", name, d))
		}
	}
	sort.Strings(scanned)
	if len(scanned) > 0 {
		t.Errorf("40 meters' syncs, pushes and pages read whole tables: %s", strings.Join(scanned, ", "))
	}
}
