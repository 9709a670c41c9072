package syncer_test

import (
	"context"
	"github.com/riverqueue/river"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
	"github.com/shopspring/decimal"
)

type rig struct {
	store  *postgres.Store
	fleet  *sim.Fleet
	clock  *sim.ManualClock
	engine *syncer.Engine
	ids    map[string]string // serial → meter id
}

// newRig serves n simulated meters (one in five passive) registered in a
// fresh database, and an engine reading them over TCP.
func newRig(t *testing.T, n int, start time.Time, faults sim.Faults) *rig {
	t.Helper()
	return newRigOf(t, sim.GenerateFleet(n, sim.FleetOptions{AddressPrefix: "127.81", Secret: []byte("rig")}), start, faults)
}

// newRigOf is newRig for chosen meters of a generated fleet.
func newRigOf(t *testing.T, specs []sim.Spec, start time.Time, faults sim.Faults) *rig {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := postgres.NewStore(pool)
	clock := sim.NewManualClock(start)
	var ms []*sim.Meter
	for i := range specs {
		specs[i].Port = 0 // distinct loopback addresses, free ports
		specs[i].Faults = faults
		ms = append(ms, sim.NewMeter(specs[i], start))
	}
	fleet := sim.NewFleet(ms, clock, nil)
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Stop)
	if _, err := store.CreateESCO(ctx, "RIG", "Rig"); err != nil {
		t.Fatal(err)
	}
	var nm []flows.NewMeter
	var layouts []string
	for _, m := range fleet.Meters() {
		s := m.Spec
		nm = append(nm, flows.NewMeter{Serial: s.Serial, IPAddress: s.IPAddress, Port: s.Port, Hardware: s.Hardware,
			Mode: flows.Mode(s.Mode), DaylightSavingsCorrectionEnabled: s.DST})
		layouts = append(layouts, s.Layout)
	}
	if _, err := store.ImportMeters(ctx, "RIG", nm, layouts); err != nil {
		t.Fatal(err)
	}
	r := &rig{store: store, fleet: fleet, clock: clock, ids: map[string]string{}}
	ms2, _ := store.Meters(ctx, flows.MeterFilter{})
	for _, m := range ms2 {
		r.ids[m.Serial] = m.ID
	}
	r.engine = r.newEngine(t, pool, "test", 8)
	return r
}

func (r *rig) newEngine(t *testing.T, pool interface{}, owner string, workers int) *syncer.Engine {
	t.Helper()
	client, err := meterconn.New(meterconn.Config{Attempts: 2, Backoff: 10 * time.Millisecond, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: client, Owner: owner, Workers: workers,
		Now: r.clock.Now, ScheduleEvery: 500 * time.Millisecond, BackfillPause: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// After one sync every active meter's shadow shows the simulator's true
// state; passive meters are never touched.
func TestSyncMatchesSimulator(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := newRig(t, 20, t0, sim.Faults{})
	ctx := context.Background()
	r.clock.Advance(3*time.Hour + 17*time.Minute)
	now := r.clock.Now()
	for _, m := range r.fleet.Meters() {
		id := r.ids[m.Spec.Serial]
		res, err := r.engine.SyncMeter(ctx, id, syncer.OnDemand)
		if err != nil {
			t.Fatalf("%s: %v", m.Spec.Serial, err)
		}
		st, err := r.store.MeterStatus(ctx, m.Spec.Serial)
		if err != nil {
			t.Fatal(err)
		}
		sh := st.Shadow
		if m.Spec.Mode == "passive" {
			if res != nil || sh.Balance != nil || sh.Health != nil {
				t.Errorf("passive %s was synced: %+v", m.Spec.Serial, sh)
			}
			continue
		}
		truth := m.State(now)
		if want := decimal.New(truth.Balance, -5); sh.Balance == nil || !sh.Balance.Equal(want) {
			t.Errorf("%s balance %v, simulator %s", m.Spec.Serial, sh.Balance, want)
		}
		if sh.Health == nil || *sh.Health != flows.HealthHealthy || sh.CSQ == nil {
			t.Errorf("%s health %v csq %v", m.Spec.Serial, sh.Health, sh.CSQ)
		}
		wantDiff := m.MeterTime(now).Sub(now)
		if sh.ClockTimeDiffSeconds == nil || time.Duration(*sh.ClockTimeDiffSeconds)*time.Second-wantDiff.Abs() > time.Second || wantDiff.Abs()-time.Duration(*sh.ClockTimeDiffSeconds)*time.Second > time.Second {
			t.Errorf("%s clock diff %v, simulator clock is %v off", m.Spec.Serial, sh.ClockTimeDiffSeconds, wantDiff)
		}
		if want := decimal.New(truth.ImportJ[0]/3600, -3); sh.ImportA == nil || !sh.ImportA.Equal(want) {
			t.Errorf("%s import_a %v, simulator %s kWh", m.Spec.Serial, sh.ImportA, want)
		}
		if m.Spec.Layout == "twin" && (sh.ImportB == nil || !sh.ImportB.Equal(decimal.New(truth.ImportJ[1]/3600, -3))) {
			t.Errorf("%s import_b %v", m.Spec.Serial, sh.ImportB)
		}
		if ta := sh.TariffsActive; ta == nil || !ta.UnitRateElementA.Equal(decimal.New(truth.Active.RateA(), -5)) ||
			!ta.StandingCharge.Equal(decimal.New(truth.Active.StandingCharge, -5)) || !sh.EmergencyCredit.Equal(decimal.New(truth.Active.EmergencyCredit, -5)) {
			t.Errorf("%s tariffs_active %+v", m.Spec.Serial, ta)
		}
		if sh.TariffsFuture == nil || sh.TariffsFuture.ActivationDatetime == nil {
			t.Errorf("%s tariffs_future %+v", m.Spec.Serial, sh.TariffsFuture)
		}
		for _, g := range []string{"balance", "csq", "clock", "reads", "tariffs_active", "tariffs_future", "events"} {
			if !sh.SyncedAt[g].Equal(now) {
				t.Errorf("%s freshness of %s = %v, want %v", m.Spec.Serial, g, sh.SyncedAt[g], now)
			}
		}
		if st.Meter.FirmwareVersion != "3_02_8" || st.Meter.PrepayEnabled == nil || !*st.Meter.PrepayEnabled {
			t.Errorf("%s registry fields: firmware %q prepay %v", m.Spec.Serial, st.Meter.FirmwareVersion, st.Meter.PrepayEnabled)
		}
		// The register tables were filled through the triggers.
		regs := 0
		_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.register_import ri JOIN flows.meter_registers mr ON mr.register_id = ri.register_id WHERE mr.meter_id = $1`, id).Scan(&regs)
		wantRegs := 1
		if m.Spec.Layout == "twin" {
			wantRegs = 2
		}
		if regs != wantRegs {
			t.Errorf("%s (%s) register_import rows %d, want %d", m.Spec.Serial, m.Spec.Layout, regs, wantRegs)
		}
	}
	// Solar meters export: their reversed register records it as import.
	for _, m := range r.fleet.Meters() {
		if m.Spec.Layout != "solar" {
			continue
		}
		var imp decimal.Decimal
		if err := r.store.Pool().QueryRow(ctx, `SELECT ri.read FROM flows.register_import ri JOIN flows.meter_registers mr ON mr.register_id = ri.register_id WHERE mr.meter_id = $1`, r.ids[m.Spec.Serial]).Scan(&imp); err != nil {
			t.Fatal(err)
		}
		if want := decimal.New(m.State(now).ExportJ[0]/3600, -3); !imp.Equal(want) || !imp.IsPositive() {
			t.Errorf("solar %s: register import %s, meter export %s kWh", m.Spec.Serial, imp, want)
		}
	}
}

func TestOfflineMeterAndRecovery(t *testing.T) {
	// Observation times come from the engine's clock: start 5 hours ago so
	// the meter's last answer is old enough for meters_offline_recently.
	t0 := time.Now().UTC().Add(-5 * time.Hour).Truncate(time.Second)
	r := newRig(t, 2, t0, sim.Faults{})
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	id := r.ids[m.Spec.Serial]
	if _, err := r.engine.SyncMeter(ctx, id, "hourly"); err != nil {
		t.Fatal(err)
	}
	if err := r.fleet.SetOffline(m.Spec.Serial, true); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(time.Now().UTC())
	res, err := r.engine.SyncMeter(ctx, id, "hourly")
	if err != nil {
		t.Fatal(err)
	}
	if res.Failure != "unreachable" {
		t.Errorf("failure %q, want unreachable", res.Failure)
	}
	st, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
	if *st.Shadow.Health != flows.HealthUnhealthy || st.Shadow.CSQ != nil || st.Shadow.HealthDetails != "unreachable" {
		t.Errorf("offline meter: health %v csq %v details %q", *st.Shadow.Health, st.Shadow.CSQ, st.Shadow.HealthDetails)
	}
	if st.Shadow.Balance == nil {
		t.Errorf("the last known balance was lost")
	}
	off, err := r.store.OfflineRecently(ctx, "")
	if err != nil || len(off) != 1 || off[0].Serial != m.Spec.Serial {
		t.Errorf("offline recently = %+v, %v", off, err)
	}
	if err := r.fleet.SetOffline(m.Spec.Serial, false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.engine.SyncMeter(ctx, id, "hourly"); err != nil {
		t.Fatal(err)
	}
	st, _ = r.store.MeterStatus(ctx, m.Spec.Serial)
	if *st.Shadow.Health != flows.HealthHealthy || st.Shadow.CSQ == nil || st.Shadow.HealthDetails != "" {
		t.Errorf("back online: health %v csq %v details %q", *st.Shadow.Health, st.Shadow.CSQ, st.Shadow.HealthDetails)
	}
	if off, _ := r.store.OfflineRecently(ctx, ""); len(off) != 0 {
		t.Errorf("still offline: %+v", off)
	}
	// The 12-hourly values were never read, but the meter was registered
	// just now: not late yet.
	if len(st.Stale) != 0 {
		t.Errorf("stale values %q of a meter registered just now", st.Stale)
	}
	// Registered two days ago and online, yet the 12-hourly values were
	// never read: stale, not offline.
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_registry SET created_at = now() - interval '2 days' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	st, _ = r.store.MeterStatus(ctx, m.Spec.Serial)
	stale := strings.Join(st.Stale, ",")
	if !strings.Contains(stale, "tariffs_active") || strings.Contains(stale, "balance") || strings.Contains(stale, "csq") {
		t.Errorf("stale values %q: want the never-read tariffs, not the fresh balance or csq", stale)
	}
	// Registry-only syncers never touch health.
	if err := r.fleet.SetOffline(m.Spec.Serial, true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_metrics SET run_frequency = 'daily' WHERE name IN ('SyncerHardware')`); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_metrics SET enabled = false WHERE run_frequency = 'daily' AND name <> 'SyncerHardware'`); err != nil {
		t.Fatal(err)
	}
	// A fresh engine: engines re-read meter_metrics every 30 s.
	if _, err := r.newEngine(t, nil, "fresh", 1).SyncMeter(ctx, id, "daily"); err != nil {
		t.Fatal(err)
	}
	st, _ = r.store.MeterStatus(ctx, m.Spec.Serial)
	if *st.Shadow.Health != flows.HealthHealthy {
		t.Errorf("a failed registry-only sync changed health to %v", *st.Shadow.Health)
	}
}

func TestEventLogStoredOnce(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := newRig(t, 2, t0, sim.Faults{})
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	id := r.ids[m.Spec.Serial]
	for i := range 12 {
		tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, decimal.NewFromInt(1))
		if _, err := m.ApplyToken(tok, t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		var n int
		_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_event_log WHERE meter_id = $1`, id).Scan(&n)
		return n
	}
	r.clock.Advance(time.Hour)
	if _, err := r.engine.SyncMeter(ctx, id, syncer.OnDemand); err != nil {
		t.Fatal(err)
	}
	want := len(m.State(r.clock.Now()).Events)
	if got := count(); got != want {
		t.Fatalf("after the first sync %d events stored, the meter has %d", got, want)
	}
	tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, decimal.NewFromInt(2))
	if _, err := m.ApplyToken(tok, r.clock.Now()); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	if _, err := r.engine.SyncMeter(ctx, id, syncer.OnDemand); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != want+1 {
		t.Errorf("after a second sync %d events, want %d (each exactly once)", got, want+1)
	}
	var sets int
	_ = r.store.Pool().QueryRow(ctx, `SELECT max(event_set) FROM flows.meter_event_log WHERE meter_id = $1 AND event_type = 48`, id).Scan(&sets)
	if sets != 13 {
		t.Errorf("token events counted to %d, want 13", sets)
	}
}

// Two engines on one database share the work and sync each meter exactly
// once per frequency in a run.
func TestTwoEnginesShareTheWork(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, 24, t0, sim.Faults{LatencyMin: 5 * time.Millisecond, LatencyMax: 20 * time.Millisecond})
	ctx := context.Background()
	var counts [2]atomic.Int64
	engines := []*syncer.Engine{r.newEngine(t, nil, "a", 4), r.newEngine(t, nil, "b", 4)}
	for i, e := range engines {
		e.OnSynced = func(string, string) { counts[i].Add(1) }
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Stop(context.Background()) })
	}
	active := 0
	for _, m := range r.fleet.Meters() {
		if m.Spec.Mode == "active" {
			active++
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for counts[0].Load()+counts[1].Load() < int64(3*active) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let any duplicate show up
	if total := counts[0].Load() + counts[1].Load(); total != int64(3*active) {
		t.Errorf("%d syncs, want %d (%d active meters × 3 frequencies, each once)", total, 3*active, active)
	}
	if counts[0].Load() == 0 || counts[1].Load() == 0 {
		t.Errorf("work not shared: %d and %d", counts[0].Load(), counts[1].Load())
	}
	for serial, id := range r.ids {
		n, _ := r.store.SyncCount(ctx, id)
		m, _ := r.fleet.Meter(serial)
		if m.Spec.Mode == "active" && n != 3 {
			t.Errorf("%s synced %d times, want 3", serial, n)
		}
	}
	// Each meter's sync state names the engine that synced it last.
	by, err := r.store.SyncsBy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(by) != 2 || by["a"] == 0 || by["b"] == 0 || by["a"]+by["b"] != active {
		t.Errorf("last synced by %v, want engines a and b sharing %d meters", by, active)
	}
}

// queue builds engines' job queues on the test database.
func queue(s *postgres.Store) func(*river.Config) (syncer.JobQueue, error) {
	return func(c *river.Config) (syncer.JobQueue, error) { return s.NewQueueClient(c) }
}

// A wave that crosses into a new period: the meters it read just before
// the hour are not read again minutes later because a meter that was
// never synced shares their new slot's minute (a group run early for it
// used to take them all). They wait for their slot.
func TestWaveAcrossThePeriodReadsEachMeterOnce(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 10, 59, 0, 0, time.UTC)
	r := newRig(t, 240, t0, sim.Faults{})
	ctx := context.Background()
	if err := r.store.EnableOnlySyncersAt(ctx, flows.Hourly); err != nil {
		t.Fatal(err)
	}
	// Every other meter read at 10:59, in the period before the hour.
	var early, later []string
	for i, m := range r.fleet.Meters() {
		if m.Spec.Mode != "active" {
			continue
		}
		id := r.ids[m.Spec.Serial]
		if i%2 == 0 {
			if _, err := r.engine.SyncMeter(ctx, id, string(flows.Hourly)); err != nil {
				t.Fatal(err)
			}
			early = append(early, id)
		} else {
			later = append(later, id)
		}
	}
	// 11:00:30: the others were never synced and are due at once, each in
	// its slot minute's group; the early ones are not due until their slot.
	r.clock.Set(t0.Add(90 * time.Second))
	if err := r.engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.engine.Stop(context.Background()) })
	deadline := time.Now().Add(90 * time.Second)
	for _, id := range later {
		for {
			n, err := r.store.SyncCount(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if n >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a never-synced meter not synced after 90 s")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(time.Second) // any early group's second pass
	again := 0
	for _, id := range early {
		if n, _ := r.store.SyncCount(ctx, id); n != 1 {
			again++
		}
	}
	if again > 0 {
		t.Errorf("%d of %d meters read at 10:59 were read again by 11:00:30, before their slot", again, len(early))
	}
}
