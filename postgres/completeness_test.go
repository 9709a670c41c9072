package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/shopspring/decimal"
)

// completenessFixture registers meters whose completeness is known:
//   - single: one register; all of yesterday and half of three days ago
//     stored as profile records (72 of 7 × 48 half hours);
//   - twin: A and B registers, A derived all of the last 7 days and B
//     never (half of 2 × 48 a day), plus rows for today and 31 days ago
//     that no window counts;
//   - late: commissioned 3 days ago, complete since;
//   - today: commissioned today (no day of either window has passed);
//   - none: no register (nothing expected);
//   - passive: a twin with data, left out of the fleet's figure.
func completenessFixture(t *testing.T, s *postgres.Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	today := flows.UTCDay(time.Now())
	ids := map[string]string{}
	var regs = map[string]*flows.Register{}
	for i, name := range []string{"single", "twin", "late", "today", "none", "passive"} {
		mode := flows.ModeActive
		if name == "passive" {
			mode = flows.ModePassive
		}
		m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: fmt.Sprintf("EML10000003%02d", i), IPAddress: fmt.Sprintf("127.93.0.%d", i+1), Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = m.ID
		elements := map[string][]flows.Element{"single": {flows.ElementSingle}, "twin": {flows.ElementA, flows.ElementB},
			"late": {flows.ElementSingle}, "today": {flows.ElementSingle}, "passive": {flows.ElementSingle}}[name]
		for _, e := range elements {
			r, err := s.AddRegister(ctx, m.ID, e, false)
			if err != nil {
				t.Fatal(err)
			}
			regs[name+string(e)] = r
		}
	}
	u := func(v uint32) *uint32 { return &v }
	var recs []flows.ProfileRecord
	for i := range 49 { // yesterday 00:00 to today 00:00: 48 intervals
		recs = append(recs, flows.ProfileRecord{At: today.AddDate(0, 0, -1).Add(time.Duration(i) * 30 * time.Minute), Status: flows.ProfileValidData, ImportA: u(uint32(1000 + 10*i))})
	}
	for i := range 25 { // three days ago, 00:00 to 12:00: 24 intervals
		recs = append(recs, flows.ProfileRecord{At: today.AddDate(0, 0, -3).Add(time.Duration(i) * 30 * time.Minute), Status: flows.ProfileValidData, ImportA: u(uint32(500 + i))})
	}
	if _, bad, err := s.StoreProfile(ctx, ids["single"], recs); err != nil || len(bad) > 0 {
		t.Fatalf("profile: %v %v", err, bad)
	}
	day := func(reg string, ago, halfHours int) {
		t.Helper()
		if _, err := s.Pool().Exec(ctx, `INSERT INTO flows.register_interval_day (register_id, day, half_hours, kwh) VALUES ($1, $2::date, $3, 1)`,
			regs[reg].RegisterID, today.AddDate(0, 0, -ago), halfHours); err != nil {
			t.Fatal(err)
		}
	}
	for ago := 1; ago <= 7; ago++ {
		day("twinA", ago, 48)
	}
	day("twinA", 0, 48)
	day("twinA", 31, 48)
	day("lateSINGLE", 3, 28) // commissioned at 10:00: 28 half hours that day
	for ago := 1; ago <= 3; ago++ {
		if ago < 3 {
			day("lateSINGLE", ago, 48)
		}
		day("lateSINGLE", ago+5, 48) // before commissioning: not counted
		day("passiveSINGLE", ago, 48)
	}
	for reg, at := range map[string]time.Time{"lateSINGLE": today.AddDate(0, 0, -3).Add(10 * time.Hour), "todaySINGLE": today.Add(time.Hour)} {
		if _, err := s.Pool().Exec(ctx, `UPDATE flows.meter_registers SET start_time = $2 WHERE register_id = $1`, regs[reg].RegisterID, at); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// The many-meter completeness (what the meter list and the fleet page
// show) is the view's, meter by meter, whether asked for a list of meters
// or for the whole fleet.
func TestCompletenessOfManyMeters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	ids := completenessFixture(t, s)
	var all []string
	for _, id := range ids {
		all = append(all, id)
	}
	got, err := s.CompletenessOf(ctx, append(all, "00000000-0000-4000-8000-000000000000"))
	if err != nil {
		t.Fatal(err)
	}
	str := func(c flows.Completeness) string {
		f := func(d *decimal.Decimal) string {
			if d == nil {
				return "nil"
			}
			return d.String()
		}
		return f(c.Last7Days) + "/" + f(c.Last30Days)
	}
	for name, want := range map[string]string{
		"single":  "0.2143/0.05", // 72 of 336; 72 of 1440
		"twin":    "0.5/0.1167",  // 336 of 672; 336 of 2880
		"late":    "1/1",         // 124 of 124 since commissioning at 10:00
		"today":   "nil/nil",     // commissioned today
		"passive": "0.4286/0.1",  // 144 of 336; 144 of 1440
	} {
		c, ok := got[ids[name]]
		if !ok {
			t.Errorf("%s: no completeness", name)
			continue
		}
		if str(c.Completeness) != want {
			t.Errorf("%s: completeness %s, want %s", name, str(c.Completeness), want)
		}
		view, err := s.Completeness(ctx, ids[name])
		if err != nil {
			t.Fatal(err)
		}
		if str(view) != str(c.Completeness) {
			t.Errorf("%s: %s, but the view says %s", name, str(c.Completeness), str(view))
		}
	}
	if c, ok := got[ids["none"]]; ok {
		t.Errorf("a meter with no register has completeness %s", str(c.Completeness))
	}
	if len(got) != 5 {
		t.Errorf("%d meters in the answer, want 5", len(got))
	}
	if m, err := s.CompletenessOf(ctx, nil); err != nil || len(m) != 0 {
		t.Errorf("no meters: %v %v", m, err)
	}

	// The whole fleet's answer is the same, and says which meters are active.
	fleet, err := s.CompletenessOfAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fleet) != len(got) {
		t.Errorf("%d meters in the fleet's answer, %d asked for one by one", len(fleet), len(got))
	}
	for name, id := range ids {
		if c, ok := fleet[id]; ok && (str(c.Completeness) != str(got[id].Completeness) || c.Active != (name != "passive")) {
			t.Errorf("%s in the fleet's answer: %s active %v; asked for: %s", name, str(c.Completeness), c.Active, str(got[id].Completeness))
		}
	}
}

// BenchmarkCompleteness: 10,000 meters (a tenth twin-element) with 35 days
// of daily interval counts. The view for every meter against the one
// query of CompletenessOf (the fleet page's 10,000 rows, the API list's
// 1,000), and the whole fleet's (the fleet page, /metrics).
//
//	go test -run '^$' -bench Completeness ./postgres/
func BenchmarkCompleteness(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	s := postgres.NewStore(pool)
	for _, q := range []string{
		`INSERT INTO flows.meter_registry (serial, name, mode) SELECT 'EML' || (5000000000 + g)::text, 'Bench ' || g, 'active' FROM generate_series(1, 10000) g`,
		`INSERT INTO flows.meter_registers (meter_id, element) SELECT id, CASE WHEN serial::bigint % 10 = 0 THEN 'A' ELSE 'SINGLE' END::flows.meter_register_element FROM flows.meter_registry`,
		`INSERT INTO flows.meter_registers (meter_id, element) SELECT id, 'B' FROM flows.meter_registry WHERE serial::bigint % 10 = 0`,
		`INSERT INTO flows.register_interval_day (register_id, day, half_hours, kwh)
		 SELECT register_id, (now() AT TIME ZONE 'UTC')::date - k, 40 + (random() * 8)::int, 5 FROM flows.meter_registers, generate_series(1, 35) k`,
		`VACUUM ANALYZE flows.meter_registers, flows.register_interval_day`,
	} {
		if _, err := pool.Exec(ctx, strings.Replace(q, "serial::bigint", "substr(serial, 4)::bigint", 1)); err != nil {
			b.Fatal(err)
		}
	}
	var ids []string
	rows, _ := pool.Query(ctx, `SELECT id::text FROM flows.meter_registry ORDER BY serial`)
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	if rows.Err() != nil || len(ids) != 10000 {
		b.Fatalf("%d meters: %v", len(ids), rows.Err())
	}
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"view-all-10000", func() error {
			_, err := pool.Exec(ctx, `SELECT * FROM flows.meter_interval_completeness`)
			return err
		}},
		{"view-one", func() error { _, err := s.Completeness(ctx, ids[4321]); return err }},
		{"of-one", func() error { _, err := s.CompletenessOf(ctx, ids[4321:4322]); return err }},
		{"of-10000", func() error { _, err := s.CompletenessOf(ctx, ids); return err }},
		{"of-1000", func() error { _, err := s.CompletenessOf(ctx, ids[:1000]); return err }},
		{"all-10000", func() error { _, err := s.CompletenessOfAll(ctx); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var durs []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
				durs = append(durs, time.Since(t0))
			}
			slices.Sort(durs)
			b.ReportMetric(float64(durs[0].Microseconds())/1000, "ms-min") // on a busy machine, the best guess of its cost
			b.ReportMetric(float64(durs[len(durs)/2].Microseconds())/1000, "ms-median")
		})
	}
}
