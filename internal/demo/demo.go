// Package demo seeds the database of flows demo: one ESCO whose meters are
// the simulated fleet (sim.GenerateFleet), with their registers, and each
// meter's simulated past (sim.NewMeterWithPast) recorded as the syncs
// would have recorded it, so the views, charts and queries show one
// continuous history that the live syncs carry on.
package demo

import (
	"context"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
)

// ESCOCode is the demo ESCO's code.
const ESCOCode = "DEMO"

// escoName is the demo ESCO's name.
const escoName = "Demo Community Energy"

// Seed inserts the ESCO, the fleet's registry rows and registers, and the
// past of each meter found in pasts (by serial): its readings as
// observations, its event log, and the customer's top-ups in the ledger.
// It does nothing when the ESCO already exists (a restarted demo keeps its
// data), and otherwise runs in one transaction: nothing is half-written.
// It returns the ESCO's id.
func Seed(ctx context.Context, store *postgres.Store, meters []*sim.Meter, pasts map[string]sim.History, now time.Time) (string, error) {
	out := make([]postgres.DemoMeter, len(meters))
	for i, m := range meters {
		out[i] = demoMeter(m, pasts[m.Spec.Serial], now)
	}
	return store.SeedDemo(ctx, postgres.DemoESCO{Code: ESCOCode, Name: escoName}, out)
}

// demoMeter is a meter of the fleet as the seed writes it.
func demoMeter(m *sim.Meter, h sim.History, now time.Time) postgres.DemoMeter {
	spec := m.Spec
	port := spec.Port
	if port == 0 {
		port = 8080 // passive twins: no simulated hardware behind them
	}
	dm := postgres.DemoMeter{
		Serial: spec.Serial, Name: spec.Name, IPAddress: spec.IPAddress, Port: port, Hardware: spec.Hardware,
		Mode: spec.Mode, Layout: spec.Layout, DST: spec.DST,
	}
	if spec.Mode != string(flows.ModeActive) || len(h.Readings) == 0 {
		return dm // a twin is fed from the database where it is active
	}
	for _, r := range h.Readings {
		dm.Past = append(dm.Past, observation(r))
	}
	// The meter's event log and active tariff, as the last sync of the
	// past read them (an offline meter's log ends when it stopped
	// answering).
	last := &dm.Past[len(dm.Past)-1]
	st := m.State(now)
	if h.Readings[0].ThreePhase {
		// A credit meter without tariffs or an event log to read.
		if spec.Faults.Offline {
			dm.Past = append(dm.Past, flows.SyncResult{At: now, TouchHealth: true, Failure: "unreachable"})
		}
		return dm
	}
	for _, e := range st.Events {
		if !e.Timestamp.After(last.At) {
			last.Events = append(last.Events, flows.MeterEvent{Timestamp: e.Timestamp, EventType: int(e.EventID), EventSet: int(e.EventSet)})
		}
	}
	last.Shadow.TariffsActive = tariff(st.Active)
	last.Groups = append(last.Groups, "tariffs_active", "events")
	if spec.Faults.Offline {
		// Not answering since its last reading: what a sync finds now.
		dm.Past = append(dm.Past, flows.SyncResult{At: now, TouchHealth: true, Failure: "unreachable"})
	}
	for _, t := range h.Topups {
		dm.Topups = append(dm.Topups, postgres.DemoTopup{At: t.At, Amount: t.Amount, Token: t.Token, BalanceBefore: t.BalanceBefore, BalanceAfter: t.BalanceAfter})
	}
	return dm
}

// tariff is a simulated meter's tariff as the active-tariff read reports
// its amounts.
func tariff(t sim.Tariff) *flows.Tariff {
	m := func(u int64) *decimal.Decimal { d := decimal.New(u, -5); return &d }
	return &flows.Tariff{StandingCharge: m(t.StandingCharge), UnitRateElementA: m(t.RateA()), UnitRateElementB: m(t.RateB()),
		PrepaymentEmergencyCredit: m(t.EmergencyCredit), PrepaymentECreditAvailability: m(t.ECreditAvailability),
		PrepaymentDebtRecoveryRate: m(t.DebtRecoveryRate)}
}

// observation is a reading as a sync records it.
func observation(r sim.Reading) flows.SyncResult {
	csq, op := r.CSQ, r.NetworkOperator
	if r.ThreePhase {
		// As the three-phase syncers record it: voltages, and the active
		// totals to the Wh.
		ia, ea := r.ImportA.Truncate(3), r.ExportA.Truncate(3)
		u := flows.ShadowUpdate{CSQ: &csq, NetworkOperator: &op, ImportA: &ia, ExportA: &ea}
		for k := range r.Voltages3P {
			u.Voltage3P[k] = &r.Voltages3P[k]
		}
		return flows.SyncResult{At: r.At, Shadow: u, Groups: []string{"csq", "3p_voltage", "3p_reads"}, Reached: true, TouchHealth: true}
	}
	bal, ec, v, ia, ea := r.Balance, r.EmergencyCredit, r.Voltage, r.ImportA, r.ExportA
	u := flows.ShadowUpdate{Balance: &bal, EmergencyCredit: &ec, CSQ: &csq, NetworkOperator: &op, Voltage: &v, ImportA: &ia, ExportA: &ea}
	if !r.ImportB.IsZero() || !r.ExportB.IsZero() {
		ib, eb := r.ImportB, r.ExportB
		u.ImportB, u.ExportB = &ib, &eb
	}
	return flows.SyncResult{At: r.At, Shadow: u, Groups: []string{"balance", "csq", "voltage", "reads"}, Reached: true, TouchHealth: true}
}
