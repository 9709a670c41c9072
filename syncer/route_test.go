package syncer_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
)

// A mediator the engine reaches meters through goes down: the meters
// behind it are not read, and nothing is held against them — health and
// its detail stay what the last real read said, no failure is counted,
// the shadow keeps its values — and they are read again once the
// mediator is back.
func TestDeadMediatorIsNotTheMetersFault(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := newRig(t, 1, t0, sim.Faults{})
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	id := r.ids[m.Spec.Serial]
	transport, err := meterconn.New(meterconn.Config{Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(addr string) *mediator.Server {
		srv := mediator.New(mediator.Config{Addr: addr, Store: r.store, Meters: transport})
		if err := srv.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return srv
	}
	srv := serve("127.0.0.1:0")
	addr := srv.Addr()
	client, err := mediator.Dial(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: client, Owner: "via-mediator", Workers: 2, Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.SyncMeter(ctx, id, string(flows.Hourly)); err != nil {
		t.Fatal(err)
	}
	before, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
	if before.Shadow.Health == nil || *before.Shadow.Health != flows.HealthHealthy || before.Shadow.Balance == nil {
		t.Fatalf("through the mediator: health %v, balance %v", before.Shadow.Health, before.Shadow.Balance)
	}
	failures := func() int {
		var n int
		if err := r.store.Pool().QueryRow(ctx, `SELECT coalesce(max(consecutive_failures), 0) FROM flows.meter_sync_state WHERE meter_id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	_ = srv.Stop(context.Background())
	r.clock.Advance(time.Hour)
	res, err := eng.SyncMeter(ctx, id, string(flows.Hourly))
	if err == nil || meterconn.Classify(err) != meterconn.FailureDependency {
		t.Fatalf("a sync with the mediator down: %+v, %v; want the mediator named as unavailable", res, err)
	}
	after, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
	if *after.Shadow.Health != flows.HealthHealthy || after.Shadow.HealthDetails != before.Shadow.HealthDetails ||
		!after.Shadow.Balance.Equal(*before.Shadow.Balance) || failures() != 0 {
		t.Errorf("with the mediator down: health %v %q, balance %v, %d failures; want all as before", *after.Shadow.Health,
			after.Shadow.HealthDetails, after.Shadow.Balance, failures())
	}
	if !after.Shadow.SyncedAt["balance"].Equal(before.Shadow.SyncedAt["balance"]) {
		t.Errorf("the balance counts as read at %v with the mediator down", after.Shadow.SyncedAt["balance"])
	}

	// Back on the same address: the next sync reads the meter.
	srv = serve(addr)
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := eng.SyncMeter(ctx, id, string(flows.Hourly))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mediator is back, the sync still fails: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	back, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
	if !back.Shadow.SyncedAt["balance"].Equal(r.clock.Now()) || *back.Shadow.Health != flows.HealthHealthy {
		t.Errorf("after the mediator came back: balance read at %v, health %v", back.Shadow.SyncedAt["balance"], *back.Shadow.Health)
	}
}
