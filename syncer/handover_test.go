package syncer_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
)

// A top-up on node B for a meter node A is reading for its slot does not
// wait for A's whole read (a set of requests at cellular latency, then the
// rest of its chunk): B wants the meter, A hands it over after its request
// in progress, B talks to it once its gap has passed, and A reads the
// meter's set again in full afterwards. Before, B's push lease was refused
// until A had written the meter's hourly result. The simulator refuses a
// request within the meter's gap: none across the three turns.
func TestBackgroundReadHandsMeterToAnotherNodesPush(t *testing.T) {
	const gap = 300 * time.Millisecond
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := newRigOf(t, sim.GenerateFleet(4, sim.FleetOptions{AddressPrefix: "127.84", Secret: []byte("handover")}), start,
		sim.Faults{MinGap: gap, LatencyMin: 10 * time.Millisecond, LatencyMax: 20 * time.Millisecond})
	ctx := context.Background()
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_metrics SET enabled = (run_frequency = 'hourly')`); err != nil {
		t.Fatal(err)
	}
	// The wanted meter is slow: its hourly set (eight requests) takes
	// about 6 s, far longer than A takes to notice a want.
	var x *sim.Meter
	for _, m := range r.fleet.Meters() {
		if m.Spec.Mode == "active" && !emop.IsThreePhase(m.Spec.Hardware) {
			x = m
			break
		}
	}
	f := x.Faults()
	f.LatencyMin, f.LatencyMax = 400*time.Millisecond, 500*time.Millisecond
	x.SetFaults(f)
	id := r.ids[x.Spec.Serial]
	store := r.store.WithMeterGap(gap)

	clientA, err := meterconn.New(meterconn.Config{Gap: gap, Attempts: 2, Backoff: 50 * time.Millisecond, ReadTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a, err := syncer.New(syncer.Config{Store: store, NewQueue: queue(store), Meters: clientA, Owner: "node-a:1", Workers: 8,
		Now: r.clock.Now, ScheduleEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop(context.Background()) })

	syncs := func() (n int64, owner string) {
		t.Helper()
		if err := store.Pool().QueryRow(ctx, `SELECT coalesce(syncs, 0), coalesce(lease_owner, '') FROM flows.meter_registry mr
			LEFT JOIN flows.meter_sync_state st ON st.meter_id = mr.id WHERE mr.id = $1`, id).Scan(&n, &owner); err != nil {
			t.Fatal(err)
		}
		return n, owner
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, owner := syncs(); owner == "node-a:1/group-hourly" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node A never took the meter for its hourly read")
		}
	}
	// Node B's pusher asks as a top-up's does, every 100 ms, until A
	// hands the meter over.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		ok, err := store.LeaseMeterForPush(ctx, id, "node-b:2/push", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node B's push never got the meter")
		}
	}
	if n, owner := syncs(); n != 0 || owner != "" {
		t.Fatalf("node B got the meter after node A's read ended (%d syncs, lease %q): A did not hand it over part-way", n, owner)
	}
	// B talks to the meter (its own transport: its own turn), then gives
	// it back.
	clientB, err := meterconn.New(meterconn.Config{Gap: gap, Attempts: 1, ReadTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, err := store.MeterByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	target, err := meterconn.TargetOf(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientB.Read(ctx, target, emop.ObjPrepayBalance); err != nil {
		t.Fatalf("node B's request: %v", err)
	}
	if err := store.ReleasePushLease(ctx, id, "node-b:2/push"); err != nil {
		t.Fatal(err)
	}
	// A comes back for the meter, still due, and reads its set in full.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if n, _ := syncs(); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node A never read the handed-over meter's set again")
		}
	}
	st, err := r.store.MeterStatus(ctx, x.Spec.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if st.Shadow.Balance == nil || st.Shadow.Voltage == nil || st.Shadow.ClockTimeDiffSeconds == nil {
		t.Errorf("after the re-read the shadow lacks part of the hourly set: %+v", st.Shadow)
	}
	if v := x.Stats().GapViolations; v != 0 {
		t.Errorf("the meter counted %d requests within its gap across the handover", v)
	}
}
