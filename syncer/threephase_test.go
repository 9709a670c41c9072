package syncer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
	"github.com/shopspring/decimal"
)

// threePhaseRig serves the first 25 meters of the fleet: meter 22 is a
// CT-operated (P1.cx) and meter 24 a whole-current (P1.ax) three-phase
// meter with solar export.
func threePhaseRig(t *testing.T) (*rig, *sim.Meter, *sim.Meter) {
	t.Helper()
	r := newRig(t, 25, time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC), sim.Faults{})
	cx, ax := r.fleet.Meters()[22], r.fleet.Meters()[24]
	if cx.Spec.Hardware != emop.HardwareThreePhaseCX || ax.Spec.Hardware != emop.HardwareThreePhaseAX {
		t.Fatalf("fleet meters 22 and 24 are %s and %s", cx.Spec.Hardware, ax.Spec.Hardware)
	}
	return r, cx, ax
}

func eq(a *decimal.Decimal, b decimal.Decimal) bool { return a != nil && a.Equal(b) }

// A sync of a three-phase meter of either kind writes the simulator's
// voltages and scaled active totals (export into export_a), runs none of
// the single-phase syncers (the meter would refuse them), and shows the
// meter in the seed's views.
func TestThreePhaseSyncMatchesSimulator(t *testing.T) {
	r, cx, ax := threePhaseRig(t)
	ctx := context.Background()
	r.clock.Advance(4*time.Hour + 7*time.Minute) // midday: the AX meter's solar exports
	now := r.clock.Now()
	for _, m := range []*sim.Meter{cx, ax} {
		if _, err := r.engine.SyncMeter(ctx, r.ids[m.Spec.Serial], syncer.OnDemand); err != nil {
			t.Fatal(err)
		}
		st, err := r.store.MeterStatus(ctx, m.Spec.Serial)
		if err != nil {
			t.Fatal(err)
		}
		sh, truth := st.Shadow, m.ThreePhase(now)
		for k := range 3 {
			if !eq(sh.Voltage3P[k], truth.Voltages[k]) {
				t.Errorf("%s L%d %v, simulator %s", m.Spec.Hardware, k+1, sh.Voltage3P[k], truth.Voltages[k])
			}
		}
		// To the Wh, as the columns hold them (a CX meter counts 0.1 Wh).
		imp, exp := truth.Totals[0].Truncate(3), truth.Totals[1].Truncate(3)
		if !eq(sh.ImportA, imp) || !eq(sh.ExportA, exp) || !imp.IsPositive() || m == ax && !exp.IsPositive() {
			t.Errorf("%s import/export %v/%v, simulator %s/%s kWh", m.Spec.Hardware, sh.ImportA, sh.ExportA, truth.Totals[0], truth.Totals[1])
		}
		if sh.ImportB != nil || sh.ExportB != nil || sh.Balance != nil || sh.Voltage != nil || sh.TariffsActive != nil {
			t.Errorf("%s: single-phase values written: import_b %v export_b %v balance %v voltage %v", m.Spec.Hardware, sh.ImportB, sh.ExportB, sh.Balance, sh.Voltage)
		}
		if sh.Health == nil || *sh.Health != flows.HealthHealthy || sh.HealthDetails != "" || sh.CSQ == nil {
			t.Errorf("%s health %v %q csq %v", m.Spec.Hardware, sh.Health, sh.HealthDetails, sh.CSQ)
		}
		for _, g := range []string{"3p_voltage", "3p_reads", "csq", "clock", "backlight"} {
			if !sh.SyncedAt[g].Equal(now) {
				t.Errorf("%s freshness of %s = %v", m.Spec.Hardware, g, sh.SyncedAt[g])
			}
		}
		for g := range st.Freshness { // (stale or not by the store's clock, not the rig's)
			if !map[string]bool{"csq": true, "clock": true, "3p_voltage": true, "3p_reads": true, "backlight": true, "3p_intervals": true}[g] {
				t.Errorf("%s: freshness of %s, which its kind has no syncer for", m.Spec.Hardware, g)
			}
		}
		if st.Meter.Hardware != m.Spec.Hardware || st.Meter.FirmwareVersion != "0107" || sh.Backlight != "always_off_3p" ||
			st.Meter.PrepayEnabled == nil || *st.Meter.PrepayEnabled {
			t.Errorf("%s registry: hardware %s firmware %q backlight %q prepay %v (a three-phase meter is a credit meter)",
				m.Spec.Hardware, st.Meter.Hardware, st.Meter.FirmwareVersion, sh.Backlight, st.Meter.PrepayEnabled)
		}
		id := r.ids[m.Spec.Serial]
		var hist int
		var l2 decimal.Decimal
		if err := r.store.Pool().QueryRow(ctx, `SELECT count(*), max(voltage_l2) FROM flows.meter_3p_voltage WHERE meter_id = $1`, id).Scan(&hist, &l2); err != nil || hist != 1 || !l2.Equal(truth.Voltages[1]) {
			t.Errorf("%s meter_3p_voltage: %d rows, L2 %s (%v)", m.Spec.Hardware, hist, l2, err)
		}
		var rimp, rexp decimal.Decimal
		if err := r.store.Pool().QueryRow(ctx, `SELECT (SELECT ri.read FROM flows.register_import ri JOIN flows.meter_registers mr USING (register_id) WHERE mr.meter_id = $1),
				(SELECT re.read FROM flows.register_export re JOIN flows.meter_registers mr USING (register_id) WHERE mr.meter_id = $1)`, id).Scan(&rimp, &rexp); err != nil ||
			!rimp.Equal(imp) || !rexp.Equal(exp) {
			t.Errorf("%s register reads %s/%s (%v)", m.Spec.Hardware, rimp, rexp, err)
		}
		// The seed's views list it: tariffs (with NULL tariffs, its
		// voltages), the CLI's meter list, clock drift once it drifts.
		var v1 decimal.Decimal
		if err := r.store.Pool().QueryRow(ctx, `SELECT "3p_voltage_l1" FROM flows.meter_shadows_tariffs WHERE serial = $1 AND active_unit_rate_a IS NULL`, m.Spec.Serial).Scan(&v1); err != nil || !v1.Equal(truth.Voltages[0]) {
			t.Errorf("%s in meter_shadows_tariffs: L1 %s (%v)", m.Spec.Hardware, v1, err)
		}
		var n int
		if err := r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.get_meters_for_cli(NULL, NULL) WHERE serial = $1 AND hardware = $2`, m.Spec.Serial, m.Spec.Hardware).Scan(&n); err != nil || n != 1 {
			t.Errorf("%s in get_meters_for_cli: %d (%v)", m.Spec.Hardware, n, err)
		}
		if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_shadows SET clock_time_diff_seconds = 95 WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		if err := r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meters_clock_drift WHERE serial = $1`, m.Spec.Serial).Scan(&n); err != nil || n != 1 {
			t.Errorf("%s in meters_clock_drift: %d (%v)", m.Spec.Hardware, n, err)
		}
	}
	// No 12-hourly syncer applies to a three-phase meter: its 12-hourly
	// slot asks nothing, which is not a failed sync.
	res, err := r.engine.SyncMeter(ctx, r.ids[ax.Spec.Serial], string(flows.TwelveHour))
	if err != nil {
		t.Fatal(err)
	}
	if _, detail, ok := res.Verdict(); !ok {
		t.Errorf("a 12-hourly sync with nothing to ask counts as failed: %q", detail)
	}
	// A single-phase meter runs none of the three-phase syncers.
	one := r.fleet.Meters()[0]
	if _, err := r.engine.SyncMeter(ctx, r.ids[one.Spec.Serial], syncer.OnDemand); err != nil {
		t.Fatal(err)
	}
	st, _ := r.store.MeterStatus(ctx, one.Spec.Serial)
	if _, ok := st.Shadow.SyncedAt["3p_voltage"]; ok || st.Shadow.Voltage3P[0] != nil || st.Shadow.HealthDetails != "" {
		t.Errorf("single-phase meter: 3p synced %v, L1 %v, details %q", st.Shadow.SyncedAt, st.Shadow.Voltage3P[0], st.Shadow.HealthDetails)
	}
	for g := range st.Freshness {
		if strings.HasPrefix(g, "3p_") {
			t.Errorf("single-phase meter: %s counted stale", g)
		}
	}
}

// A flaky L2 read keeps L2's stored value, writes L1 and L3, and names L2
// in the health detail; the meter stays healthy.
func TestThreePhaseFlakyL2KeepsOtherPhases(t *testing.T) {
	r, cx, _ := threePhaseRig(t)
	ctx := context.Background()
	id := r.ids[cx.Spec.Serial]
	if _, err := r.engine.SyncMeter(ctx, id, "hourly"); err != nil {
		t.Fatal(err)
	}
	before, _ := r.store.MeterStatus(ctx, cx.Spec.Serial)
	cx.SetFaults(sim.Faults{FlakyL2: 1})
	var truth sim.ThreePhaseReading
	for range 12 { // until the phases read differently from before
		r.clock.Advance(5 * time.Minute)
		truth = cx.ThreePhase(r.clock.Now())
		if !eq(before.Shadow.Voltage3P[0], truth.Voltages[0]) && !eq(before.Shadow.Voltage3P[2], truth.Voltages[2]) {
			break
		}
	}
	if _, err := r.engine.SyncMeter(ctx, id, "hourly"); err != nil {
		t.Fatal(err)
	}
	after, _ := r.store.MeterStatus(ctx, cx.Spec.Serial)
	sh := after.Shadow
	if !eq(sh.Voltage3P[0], truth.Voltages[0]) || !eq(sh.Voltage3P[2], truth.Voltages[2]) {
		t.Errorf("L1/L3 %v/%v, simulator %s/%s", sh.Voltage3P[0], sh.Voltage3P[2], truth.Voltages[0], truth.Voltages[2])
	}
	if !eq(sh.Voltage3P[1], *before.Shadow.Voltage3P[1]) {
		t.Errorf("L2 %v, want the stored %s kept", sh.Voltage3P[1], before.Shadow.Voltage3P[1])
	}
	if sh.Health == nil || *sh.Health != flows.HealthHealthy || !strings.Contains(sh.HealthDetails, "refused: SyncerThreePhaseVoltage: L2: ") || strings.Contains(sh.HealthDetails, "L3") {
		t.Errorf("health %v %q", sh.Health, sh.HealthDetails)
	}
	if !eq(sh.ImportA, truth.Totals[0].Truncate(3)) {
		t.Errorf("the totals were not read after the flaky phase: %v, simulator %s", sh.ImportA, truth.Totals[0])
	}
}

// Tariffs are refused on three-phase meters, saying why.
func TestThreePhaseTariffRefused(t *testing.T) {
	r, _, ax := threePhaseRig(t)
	ctx := context.Background()
	_, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_shadows SET tariffs_future = '{"standing_charge": "0.5", "unit_rate_element_a": "0.2",
		"unit_rate_element_b": "0.2", "activation_datetime": "2099-01-01T00:00:00"}' WHERE id = $1`, r.ids[ax.Spec.Serial])
	if err == nil || !strings.Contains(err.Error(), "three-phase meter (P1.ax)") || !strings.Contains(err.Error(), "credit meters") {
		t.Errorf("tariff on a three-phase meter: %v", err)
	}
}
