package alert_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/alert"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
	"github.com/riverqueue/river"
	"github.com/shopspring/decimal"
)

// The whole chain with the accelerated simulator: a customer who stops
// topping up is read hourly; the credit forecast predicts the loss of
// supply and the alert fires once, before it happens; the meter cuts its
// supply, the self-disconnection is recorded from its events with its
// duration to the second, and its alert fires; a top-up restores supply
// and both alerts resolve. The ESCO's webhook hears each change once.
func TestCustomerRunsOutAlertedBeforeAndAfter(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := postgres.NewStore(pool)
	if _, err := store.CreateESCO(ctx, "AAA", "AAA"); err != nil {
		t.Fatal(err)
	}
	// Simulated time starts now and runs ahead of the database's clock,
	// as a demo's at --speed does.
	t0 := time.Now().UTC().Truncate(time.Hour)
	clock := sim.NewManualClock(t0)
	spec := sim.GenerateFleet(1, sim.FleetOptions{AddressPrefix: "127.83", Secret: []byte("chain")})[0]
	spec.Port, spec.Layout, spec.Hardware, spec.DST, spec.ClockOffset, spec.DriftPPM = 0, "single", "B1.w", false, 0, 0
	spec.LoadA, spec.LoadB, spec.SolarPeak, spec.StartBalance = 1000, 0, 0, decimal.NewFromInt(20) // about £7.40 a day; £35 to the cut
	m := sim.NewMeter(spec, t0)
	fleet := sim.NewFleet([]*sim.Meter{m}, clock, nil)
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Stop)
	if _, err := store.ImportMeters(ctx, "AAA", []flows.NewMeter{{Serial: spec.Serial, IPAddress: m.Spec.IPAddress, Port: m.Spec.Port, // where it listens
		Hardware: spec.Hardware, Mode: flows.ModeActive}}, []string{spec.Layout}); err != nil {
		t.Fatal(err)
	}
	meter, err := store.MeterBySerial(ctx, spec.Serial)
	if err != nil {
		t.Fatal(err)
	}
	client, err := meterconn.New(meterconn.Config{Attempts: 2, Backoff: 10 * time.Millisecond, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := syncer.New(syncer.Config{Store: store, Meters: client, Owner: "chain", Now: clock.Now,
		NewQueue: func(c *river.Config) (syncer.JobQueue, error) { return store.NewQueueClient(c) }})
	if err != nil {
		t.Fatal(err)
	}

	rc := newReceiver(t)
	h48 := decimal.NewFromInt(48)
	for _, r := range []flows.NewAlertRule{
		{ESCO: "AAA", Name: "Within 48 h", Kind: flows.AlertLosingSupply, Threshold: &h48, WebhookURL: rc.srv.URL, WebhookSecret: secret},
		{ESCO: "AAA", Name: "Off supply", Kind: flows.AlertSelfDisconnected, WebhookURL: rc.srv.URL, WebhookSecret: secret},
	} {
		if _, err := store.CreateAlertRule(ctx, r, "test"); err != nil {
			t.Fatal(err)
		}
	}
	n, err := alert.New(alert.Config{Store: store, EvaluateEvery: time.Hour, MaxBackoff: 100 * time.Millisecond,
		NewQueue: func(c *river.Config) (alert.JobQueue, error) { return store.NewQueueClient(c) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })

	// An hour of simulated time, a sync, an evaluation of the rules.
	hour := func() {
		t.Helper()
		clock.Advance(time.Hour)
		if _, err := eng.SyncMeter(ctx, meter.ID, syncer.OnDemand); err != nil {
			t.Fatal(err)
		}
		if err := n.EvaluateNow(ctx); err != nil {
			t.Fatal(err)
		}
	}
	firing := func(kind flows.AlertKind) bool {
		t.Helper()
		as, err := store.Alerts(ctx, "AAA", true, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.Kind == kind {
				return true
			}
		}
		return false
	}
	var warnedAt time.Time
	for i := 0; m.State(clock.Now()).Connected; i++ {
		if i > 8*24 {
			t.Fatal("the meter never ran out")
		}
		hour()
		if warnedAt.IsZero() && firing(flows.AlertLosingSupply) {
			warnedAt = clock.Now()
		}
	}
	var cut time.Time
	for _, e := range m.State(clock.Now()).Events {
		if e.EventID == sim.EventSupplyDisconnected {
			cut = e.Timestamp
		}
	}
	if warnedAt.IsZero() || !warnedAt.Before(cut) || cut.Sub(warnedAt) > 49*time.Hour {
		t.Fatalf("supply cut at %v; the losing-supply alert fired at %v, want within the 48 h before", cut, warnedAt)
	}
	hour() // the sync after the cut reads it
	if !firing(flows.AlertSelfDisconnected) {
		t.Fatal("off supply, and no self-disconnection alert")
	}

	tok, _ := sim.VendToken(spec.Serial, spec.Key, decimal.NewFromInt(60))
	if _, err := m.ApplyToken(tok, clock.Now().Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	hour()
	var back time.Time
	for _, e := range m.State(clock.Now()).Events {
		if e.EventID == sim.EventSupplyReconnected {
			back = e.Timestamp
		}
	}
	rep, err := store.SelfDisconnectionReport(ctx, t0, clock.Now().Add(time.Hour), "AAA")
	if err != nil || rep.Disconnections != 1 || rep.Periods[0].Source != "events" || !rep.Periods[0].StartedAt.Equal(cut) ||
		rep.Periods[0].EndedAt == nil || !rep.Periods[0].EndedAt.Equal(back) {
		t.Fatalf("self-disconnections %+v %v, want one from %v to %v", rep, err, cut, back)
	}
	if firing(flows.AlertSelfDisconnected) || firing(flows.AlertLosingSupply) {
		t.Error("after the top-up, alerts still firing")
	}
	waitFor(t, 10*time.Second, "four deliveries", func() bool { return len(rc.got()) >= 4 })
	time.Sleep(300 * time.Millisecond)
	got := map[string]int{}
	for _, p := range rc.got() {
		got[string(p.Alert.Kind)+" "+p.Event]++
	}
	for _, k := range []string{"losing_supply fired", "losing_supply resolved", "self_disconnected fired", "self_disconnected resolved"} {
		if got[k] != 1 {
			t.Errorf("the webhook heard %q %d times, want once (all: %v)", k, got[k], got)
		}
	}
}
