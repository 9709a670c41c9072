// Package demo seeds the database of flows demo: one ESCO whose meters are
// the simulated fleet (sim.GenerateFleet), with their registers, and a
// week of history so the views and queries have something to show before
// the first sync.
package demo

import (
	"context"
	"time"

	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
)

// ESCOCode is the demo ESCO's code.
const ESCOCode = "DEMO"

// escoName is the demo ESCO's name.
const escoName = "Demo Community Energy"

// Seed inserts the ESCO, the fleet's registry rows and registers, current
// shadow values and seven days of half-hourly balance history. It does
// nothing when the ESCO already exists (a restarted demo keeps its data),
// and otherwise runs in one transaction: nothing is half-written. It
// returns the ESCO's id.
func Seed(ctx context.Context, store *postgres.Store, fleet []sim.Spec, now time.Time) (string, error) {
	meters := make([]postgres.DemoMeter, len(fleet))
	for i, m := range fleet {
		meters[i] = demoMeter(i, m)
	}
	return store.SeedDemo(ctx, postgres.DemoESCO{Code: ESCOCode, Name: escoName}, meters, now)
}

// demoMeter is the i-th meter of the fleet as the seed writes it.
func demoMeter(i int, m sim.Spec) postgres.DemoMeter {
	port := m.Port
	if port == 0 {
		port = 8080 // passive twins: no simulated hardware behind them
	}
	start := 12 + (i*7)%40 // £12-£51 a week ago
	if i%9 == 4 {
		start = 6 // a few will be under £5 by now
	}
	return postgres.DemoMeter{
		Serial: m.Serial, Name: m.Name, IPAddress: m.IPAddress, Port: port, Hardware: m.Hardware,
		Mode: m.Mode, Layout: m.Layout, DST: m.DST,
		StartBalance: start, Offline: m.Faults.Offline,
	}
}
