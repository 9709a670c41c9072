package demo_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/demo"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The seeded past of the fleet's three-phase meters is what their syncers
// record (voltages, active totals, csq), with none of a prepayment meter's
// values; they show in the seed's views.
func TestSeedThreePhasePast(t *testing.T) {
	ctx := context.Background()
	store := postgres.NewStore(pgtest.NewPool(t))
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	specs := sim.GenerateFleet(25, sim.FleetOptions{Secret: []byte("seed")})
	var meters []*sim.Meter
	pasts := map[string]sim.History{}
	for _, s := range specs {
		m, h, err := sim.NewMeterWithPast(s, now, 6*time.Hour, time.Hour, 0)
		if err != nil {
			t.Fatal(err)
		}
		meters, pasts[s.Serial] = append(meters, m), h
	}
	if _, err := demo.Seed(ctx, store, meters, pasts, now); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, m := range meters {
		if !emop.IsThreePhase(m.Spec.Hardware) {
			continue
		}
		seen++
		st, err := store.MeterStatus(ctx, m.Spec.Serial)
		if err != nil {
			t.Fatal(err)
		}
		truth := m.ThreePhase(now)
		sh := st.Shadow
		if sh.Voltage3P[0] == nil || !sh.Voltage3P[2].Equal(truth.Voltages[2]) || !sh.ImportA.Equal(truth.Totals[0].Truncate(3)) {
			t.Errorf("%s seeded L1..L3 %v, import %v; simulator %v, %s", m.Spec.Serial, sh.Voltage3P, sh.ImportA, truth.Voltages, truth.Totals[0])
		}
		if sh.Balance != nil || sh.TariffsActive != nil || len(pasts[m.Spec.Serial].Topups) != 0 {
			t.Errorf("%s seeded as a prepayment meter: balance %v tariffs %v top-ups %d", m.Spec.Serial, sh.Balance, sh.TariffsActive, len(pasts[m.Spec.Serial].Topups))
		}
		var rows int
		var l1 decimal.Decimal
		if err := store.Pool().QueryRow(ctx, `SELECT count(*), (SELECT "3p_voltage_l1" FROM flows.meter_shadows_tariffs WHERE serial = $2)
			FROM flows.meter_3p_voltage WHERE meter_id = $1`, st.Meter.ID, m.Spec.Serial).Scan(&rows, &l1); err != nil || rows != 6 || !l1.Equal(truth.Voltages[0]) {
			t.Errorf("%s: %d meter_3p_voltage rows, L1 in meter_shadows_tariffs %s (%v)", m.Spec.Serial, rows, l1, err)
		}
	}
	if seen != 2 {
		t.Errorf("%d three-phase meters in a fleet of 25, want 2", seen)
	}
}
