package syncer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
	"github.com/shopspring/decimal"
)

// threePhaseOnlyRig serves only the fleet's two three-phase meters (its
// indices 22, P1.cx, and 24, P1.ax with solar).
func threePhaseOnlyRig(t *testing.T, start time.Time) (*rig, *sim.Meter, *sim.Meter) {
	t.Helper()
	all := sim.GenerateFleet(25, sim.FleetOptions{AddressPrefix: "127.82", Secret: []byte("rig3")})
	r := newRigOf(t, []sim.Spec{all[22], all[24]}, start, sim.Faults{})
	return r, r.fleet.Meters()[0], r.fleet.Meters()[1]
}

// wattHours steps the clock half hour by half hour to end, noting each
// meter's active import and export registers (Wh) at every half hour: the
// simulator's own consumption.
func wattHours(r *rig, end time.Time) map[string]map[time.Time][2]int64 {
	out := map[string]map[time.Time][2]int64{}
	for now := r.clock.Now().Truncate(30 * time.Minute); !now.After(end); now = now.Add(30 * time.Minute) {
		if now.Before(r.clock.Now()) {
			continue
		}
		r.clock.Set(now)
		for _, m := range r.fleet.Meters() {
			st := m.State(now)
			if out[m.Spec.Serial] == nil {
				out[m.Spec.Serial] = map[time.Time][2]int64{}
			}
			out[m.Spec.Serial][now] = [2]int64{st.ImportJ[0] / 3600, st.ExportJ[0] / 3600}
		}
	}
	return out
}

// derived returns a meter's register intervals in [from, to) by half
// hour, for its enabled register.
func derived(t *testing.T, r *rig, id string, from, to time.Time) map[time.Time]decimal.Decimal {
	t.Helper()
	rows, err := r.store.Pool().Query(context.Background(), `SELECT i."timestamp", i.kwh FROM flows.register_interval_hh i
		JOIN flows.meter_registers g USING (register_id) WHERE g.meter_id = $1 AND g.status = 'enabled' AND i."timestamp" >= $2 AND i."timestamp" < $3`, id, from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[time.Time]decimal.Decimal{}
	for rows.Next() {
		var at time.Time
		var kwh decimal.Decimal
		if err := rows.Scan(&at, &kwh); err != nil {
			t.Fatal(err)
		}
		out[at.UTC()] = kwh
	}
	return out
}

// A day of both kinds of three-phase meter, collected by the daily sync
// over real EMOP: the derived half hours are the simulator's consumption
// to the Wh (import into the import register; export where the register
// is reversed), the stored channels are the meter's values after scaling,
// the day's total is kept, and reading the day again changes nothing.
func TestThreePhaseIntervalsMatchSimulator(t *testing.T) {
	day := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	r, cx, ax := threePhaseOnlyRig(t, day.Add(-3*time.Hour))
	ctx := context.Background()
	want := wattHours(r, day.Add(24*time.Hour+30*time.Minute))
	for _, m := range []*sim.Meter{cx, ax} {
		id := r.ids[m.Spec.Serial]
		res, err := r.engine.SyncMeter(ctx, id, string(flows.Daily))
		if err != nil {
			t.Fatalf("%s: %v", m.Spec.Hardware, err)
		}
		if _, detail, ok := res.Verdict(); !ok || detail != "" || len(res.ThreePhaseIntervals) < 48 || len(res.Profile) != 0 {
			t.Errorf("%s: daily sync %q ok=%v, %d intervals", m.Spec.Hardware, detail, ok, len(res.ThreePhaseIntervals))
		}
		w := want[m.Spec.Serial]
		got := derived(t, r, id, day, day.Add(24*time.Hour))
		if len(got) != 48 {
			t.Errorf("%s: %d derived half hours, want 48", m.Spec.Hardware, len(got))
		}
		sum := decimal.Zero
		for at := day; at.Before(day.Add(24 * time.Hour)); at = at.Add(30 * time.Minute) {
			wantKWh := decimal.New(w[at.Add(30*time.Minute)][0]-w[at][0], -3)
			sum = sum.Add(wantKWh)
			if k, ok := got[at]; !ok || !k.Equal(wantKWh) {
				t.Errorf("%s %s: %v kWh, simulator %s", m.Spec.Hardware, at.Format("15:04"), k, wantKWh)
			}
		}
		var halfHours int
		var total decimal.Decimal
		if err := r.store.Pool().QueryRow(ctx, `SELECT d.half_hours, d.kwh FROM flows.register_interval_day d JOIN flows.meter_registers g USING (register_id)
			WHERE g.meter_id = $1 AND d.day = $2`, id, day).Scan(&halfHours, &total); err != nil || halfHours != 48 || !total.Equal(sum) {
			t.Errorf("%s register_interval_day: %d half hours, %s kWh, want 48 and %s (%v)", m.Spec.Hardware, halfHours, total, sum, err)
		}
		// The intervals API's read of a three-phase meter: its half hours
		// and its day, as derived (before, it read only single-phase
		// profiles and showed every half hour missing).
		pts, err := r.store.Intervals(ctx, id, day, day.Add(24*time.Hour), flows.BucketHalfHour)
		if err != nil || len(pts) != 48 {
			t.Fatalf("%s intervals: %d points, %v", m.Spec.Hardware, len(pts), err)
		}
		for _, p := range pts {
			if k := got[p.Start]; p.Element != "A" || p.ImportKWh == nil || !p.ImportKWh.Equal(k) || p.HalfHours != 1 {
				t.Errorf("%s intervals %s: element %s, %v kWh, %d half hours; derived %s", m.Spec.Hardware, p.Start.Format("15:04"), p.Element, p.ImportKWh, p.HalfHours, k)
			}
		}
		if days, err := r.store.Intervals(ctx, id, day, day.Add(24*time.Hour), flows.BucketDay); err != nil || len(days) != 1 || days[0].ImportKWh == nil ||
			!days[0].ImportKWh.Equal(sum) || days[0].HalfHours != 48 {
			t.Errorf("%s intervals of the day: %+v %v, want %s kWh from 48 half hours", m.Spec.Hardware, days, err, sum)
		}
		// The stored channels at noon, scaled: the registers at 12:30, the
		// mean power over the half hour.
		noon := day.Add(12 * time.Hour)
		var regImp, regExp, demand decimal.Decimal
		var flagged bool
		if err := r.store.Pool().QueryRow(ctx, `SELECT total_active_energy_import, total_active_energy_export, active_import_demand,
				power_fail OR log_reset OR time_update FROM flows.meter_3p_interval WHERE meter_id = $1 AND "timestamp" = $2`, id, noon).
			Scan(&regImp, &regExp, &demand, &flagged); err != nil {
			t.Fatal(err)
		}
		end := w[noon.Add(30*time.Minute)]
		if !regImp.Equal(decimal.New(end[0], -3)) || !regExp.Equal(decimal.New(end[1], -3)) ||
			!demand.Equal(decimal.New(2*(end[0]-w[noon][0]), -3)) || flagged {
			t.Errorf("%s 12:00: registers %s/%s kWh, demand %s kW, flagged %v; simulator %d/%d Wh, %d Wh in the half hour",
				m.Spec.Hardware, regImp, regExp, demand, flagged, end[0], end[1], end[0]-w[noon][0])
		}
		st, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
		if at := st.Shadow.SyncedAt["3p_intervals"]; !at.Equal(r.clock.Now()) {
			t.Errorf("%s: 3p_intervals freshness %v", m.Spec.Hardware, at)
		}
		// Read again: nothing changes.
		var before string
		snapshot := `SELECT string_agg(x::text, ';' ORDER BY x."timestamp") FROM (SELECT "timestamp", status, total_active_energy_import, active_import_demand,
			(SELECT sum(kwh) FROM flows.register_interval_hh i JOIN flows.meter_registers g USING (register_id) WHERE g.meter_id = $1) FROM flows.meter_3p_interval WHERE meter_id = $1) x`
		_ = r.store.Pool().QueryRow(ctx, snapshot, id).Scan(&before)
		if _, err := r.store.StoreThreePhaseRead(ctx, id, res.ThreePhaseIntervals, nil); err != nil {
			t.Fatal(err)
		}
		var after string
		_ = r.store.Pool().QueryRow(ctx, snapshot, id).Scan(&after)
		if after != before || before == "" {
			t.Errorf("%s: reading the intervals again changed what is stored", m.Spec.Hardware)
		}
		if again, err := r.engine.SyncMeter(ctx, id, string(flows.Daily)); err != nil || len(again.ThreePhaseIntervals) != 0 {
			t.Errorf("%s: a second daily sync read %d intervals (%v): nothing is missing", m.Spec.Hardware, len(again.ThreePhaseIntervals), err)
		}
	}
	// Export where export belongs: the solar meter's register reversed
	// counts the export.
	id := r.ids[ax.Spec.Serial]
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_registers SET direction_reversed = true WHERE meter_id = $1;`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Pool().Exec(ctx, `SELECT flows.derive_three_phase_intervals($1, $2, $3)`, id, day, day.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, w := derived(t, r, id, day, day.Add(24*time.Hour)), want[ax.Spec.Serial]
	exported := decimal.Zero
	for at := day; at.Before(day.Add(24 * time.Hour)); at = at.Add(30 * time.Minute) {
		wantKWh := decimal.New(w[at.Add(30*time.Minute)][1]-w[at][1], -3)
		exported = exported.Add(wantKWh)
		if k, ok := got[at]; !ok || !k.Equal(wantKWh) {
			t.Errorf("export %s: %v kWh, simulator %s", at.Format("15:04"), k, wantKWh)
		}
	}
	if !exported.IsPositive() {
		t.Error("the solar meter exported nothing all day")
	}
}

// A power cut and a phase failure leave their intervals flagged in the
// raw table and not derived, nor the half hour after them (it would be
// derived from a flagged register); nothing is negative.
func TestThreePhasePowerFailFlagged(t *testing.T) {
	day := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	r, cx, ax := threePhaseOnlyRig(t, day.Add(-time.Hour))
	ctx := context.Background()
	r.clock.Set(day.Add(8 * time.Hour))
	ax.PowerCut(r.clock.Now(), 2*time.Hour)
	r.clock.Set(day.Add(14*time.Hour + 10*time.Minute))
	cx.PhaseFailure(r.clock.Now(), 1)
	r.clock.Set(day.Add(24*time.Hour + 30*time.Minute))
	for _, c := range []struct {
		m                *sim.Meter
		flagged, missing string
	}{
		// No records 08:30-09:30 in the cut; the half hour the power came
		// back (09:30-10:00) flagged on every phase.
		{ax, "09:30 power_fail phase_1 phase_2 phase_3", "08:00 08:30 09:00 09:30 10:00"},
		{cx, "14:00 phase_2", "14:00 14:30"},
	} {
		id := r.ids[c.m.Spec.Serial]
		if _, err := r.engine.SyncMeter(ctx, id, string(flows.Daily)); err != nil {
			t.Fatal(err)
		}
		var flags string
		if err := r.store.Pool().QueryRow(ctx, `SELECT coalesce(string_agg(to_char("timestamp" AT TIME ZONE 'UTC', 'HH24:MI') ||
			CASE WHEN power_fail THEN ' power_fail' ELSE '' END || CASE WHEN phase_1_voltage_failure THEN ' phase_1' ELSE '' END ||
			CASE WHEN phase_2_voltage_failure THEN ' phase_2' ELSE '' END || CASE WHEN phase_3_voltage_failure THEN ' phase_3' ELSE '' END,
			', ' ORDER BY "timestamp"), '') FROM flows.meter_3p_interval
			WHERE meter_id = $1 AND (power_fail OR phase_1_voltage_failure OR phase_2_voltage_failure OR phase_3_voltage_failure)`, id).Scan(&flags); err != nil {
			t.Fatal(err)
		}
		if flags != c.flagged {
			t.Errorf("%s: flagged intervals %q, want %q", c.m.Spec.Hardware, flags, c.flagged)
		}
		got := derived(t, r, id, day, day.Add(24*time.Hour))
		var missing []string
		for at := day; at.Before(day.Add(24 * time.Hour)); at = at.Add(30 * time.Minute) {
			if k, ok := got[at]; !ok {
				missing = append(missing, at.Format("15:04"))
			} else if k.IsNegative() {
				t.Errorf("%s %s: %s kWh", c.m.Spec.Hardware, at.Format("15:04"), k)
			}
		}
		if s := strings.Join(missing, " "); s != c.missing {
			t.Errorf("%s: half hours not derived %q, want %q", c.m.Spec.Hardware, s, c.missing)
		}
	}
	// The cut's half hours are holes the meter was asked for once.
	var holes int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_profile_hole WHERE meter_id = $1 AND log = 3 AND "timestamp" >= $2`, r.ids[ax.Spec.Serial], day).Scan(&holes)
	if holes != 3 {
		t.Errorf("%d holes recorded for the cut, want 3 (08:00-09:30)", holes)
	}
}

// A three-phase meter unreachable for three days is complete again after
// its first daily sync: the backfill job (the single-phase one, which
// dispatches on the meter's kind) reads the older gap.
func TestThreePhaseBackfillAfterOutage(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	r, _, ax := threePhaseOnlyRig(t, start)
	ctx := context.Background()
	id := r.ids[ax.Spec.Serial]
	// Commissioned when its simulated past begins (as the demo's are):
	// the backfill does not ask for the 30 days before.
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_registers SET start_time = $2 WHERE meter_id = $1`, id, start); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(start.Add(24*time.Hour + 40*time.Minute))
	if _, err := r.engine.SyncMeter(ctx, id, string(flows.Daily)); err != nil {
		t.Fatal(err)
	}
	if err := r.fleet.SetOffline(ax.Spec.Serial, true); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(3 * 24 * time.Hour)
	if res, err := r.engine.SyncMeter(ctx, id, string(flows.Daily)); err != nil || res.Failure == "" {
		t.Fatalf("an offline meter's daily sync: %+v %v", res, err)
	}
	if err := r.fleet.SetOffline(ax.Spec.Serial, false); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	if err := r.engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.engine.Stop(context.Background()) })
	res, err := r.engine.SyncMeter(ctx, id, string(flows.Daily))
	if err != nil || !res.ProfileBacklog {
		t.Fatalf("the daily sync after the outage: backlog %v (%v)", res != nil && res.ProfileBacklog, err)
	}
	if n := len(res.ThreePhaseIntervals); n > 52 {
		t.Errorf("the daily sync read %d half hours: more than its window", n)
	}
	outage := start.Add(24 * time.Hour)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		gaps, err := r.store.ThreePhaseGaps(ctx, id, outage, r.clock.Now().Truncate(30*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(gaps) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still missing after the backfill: %+v", gaps)
		}
	}
	for d := outage; d.Before(outage.Add(3 * 24 * time.Hour)); d = d.Add(24 * time.Hour) {
		if got := derived(t, r, id, d, d.Add(24*time.Hour)); len(got) != 48 {
			t.Errorf("day %s after the backfill: %d half hours derived", d.Format(time.DateOnly), len(got))
		}
	}
}

// spoiling passes requests to a real transport and rewrites chosen
// three-phase interval answers.
type spoiling struct {
	syncer.Meters
	spoil func(from time.Time, resp []byte) []byte
}

func (m spoiling) Raw(ctx context.Context, t meterconn.Target, data []byte) ([]byte, error) {
	resp, err := m.Meters.Raw(ctx, t, data)
	if err != nil || len(data) == 0 || data[0] != emop.FormatThreePhaseIv {
		return resp, err
	}
	_, from, _, _ := emop.ParseThreePhaseIntervalsRequest(data)
	return m.spoil(from, resp), nil
}

// Intervals out of order or in the future, and a malformed answer, are
// kept out and named in the meter's detail; the rest is stored.
func TestThreePhaseBadAnswersKeptOut(t *testing.T) {
	day := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	r, _, ax := threePhaseOnlyRig(t, day.Add(-time.Hour))
	ctx := context.Background()
	id := r.ids[ax.Spec.Serial]
	r.clock.Set(day.Add(24*time.Hour + 30*time.Minute))
	client, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	meters := spoiling{Meters: client, spoil: func(from time.Time, resp []byte) []byte {
		iv, err := emop.ParseThreePhaseIntervals(resp)
		if err != nil || len(iv.Blocks) != 1 || len(iv.Blocks[0].Intervals) < 3 {
			return resp
		}
		b := iv.Blocks[0]
		switch from {
		case at(3, 30): // out of order: the second half hour's block first
			iv.Blocks = []emop.IntervalBlock{{Start: b.Start.Add(30 * time.Minute), Minutes: 30, Channels: b.Channels, Intervals: b.Intervals[1:2]},
				{Start: b.Start, Minutes: 30, Channels: b.Channels, Intervals: b.Intervals[:1]}}
		case at(12, 0): // the second half hour a year ahead
			iv.Blocks = []emop.IntervalBlock{{Start: b.Start, Minutes: 30, Channels: b.Channels, Intervals: b.Intervals[:1]},
				{Start: b.Start.Add(30*time.Minute).AddDate(1, 0, 0), Minutes: 30, Channels: b.Channels, Intervals: b.Intervals[1:2]}}
		case at(18, 30): // truncated
			return resp[:30]
		default:
			return resp
		}
		out, err := iv.AppendTo(nil)
		if err != nil {
			t.Errorf("re-encoding: %v", err)
		}
		return out
	}}
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: meters, Owner: "spoiling", Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.SyncMeter(ctx, id, string(flows.Daily)); err != nil {
		t.Fatal(err)
	}
	st, _ := r.store.MeterStatus(ctx, ax.Spec.Serial)
	for _, w := range []string{"three-phase intervals from 2026-06-02T03:30:00Z: malformed answer (", "three-phase interval 2027-06-02T12:30:00Z in the future",
		"three-phase intervals from 2026-06-02T18:30:00Z: malformed answer ("} {
		if !strings.Contains(st.Shadow.HealthDetails, w) {
			t.Errorf("health detail %q does not name %q", st.Shadow.HealthDetails, w)
		}
	}
	if st.Shadow.Health == nil || *st.Shadow.Health != flows.HealthHealthy {
		t.Errorf("health %v", st.Shadow.Health)
	}
	var future, stored int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE "timestamp" > now()), count(*) FROM flows.meter_3p_interval WHERE meter_id = $1`, id).Scan(&future, &stored)
	if future != 0 || stored < 30 {
		t.Errorf("%d future intervals stored, %d in all", future, stored)
	}
}
