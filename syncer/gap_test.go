package syncer_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
)

// With 2,000 meters in flight against meters that refuse a request sooner
// than their gap, the engine never comes too soon: every active meter is
// synced and the simulator counts no gap violation.
func TestGapKeptWithThousandsInFlight(t *testing.T) {
	const n, gap = 2000, 300 * time.Millisecond
	// Each meter is a listener and, while read, a connection at each end.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	if lim.Cur < 4*n {
		t.Fatalf("open-file limit %d: this test needs %d (ulimit -Hn)", lim.Cur, 4*n)
	}
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := newRigOf(t, sim.GenerateFleet(n, sim.FleetOptions{AddressPrefix: "127.82", Secret: []byte("gap")}), start,
		sim.Faults{MinGap: gap, LatencyMin: 20 * time.Millisecond, LatencyMax: 60 * time.Millisecond})
	ctx := context.Background()
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_metrics SET enabled = (run_frequency = 'hourly')`); err != nil {
		t.Fatal(err)
	}
	client, err := meterconn.New(meterconn.Config{Gap: gap, Attempts: 2, Backoff: 50 * time.Millisecond, ReadTimeout: 5 * time.Second, MaxConcurrent: 2 * n})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: client, Owner: "gap", Workers: n, MaxInFlight: n,
		Now: r.clock.Now, ScheduleEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var peak atomic.Int64
	sample, stopSample := context.WithCancel(ctx)
	go func() {
		for sample.Err() == nil {
			if b := int64(eng.Sizing().Busy); b > peak.Load() {
				peak.Store(b)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Stop(context.Background()) })
	var active int
	if err := r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_registry WHERE mode = 'active'`).Scan(&active); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		var synced int
		if err := r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_sync_state WHERE syncs > 0`).Scan(&synced); err != nil {
			t.Fatal(err)
		}
		if synced >= active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d active meters synced after 4 minutes", synced, active)
		}
	}
	stopSample()
	st := r.fleet.Stats()
	if st.GapViolations != 0 {
		t.Errorf("%d requests came sooner than the meters' gap (%+v)", st.GapViolations, st)
	}
	if p := peak.Load(); p < n/4 {
		t.Errorf("at most %d meters in flight; want the fleet read side by side", p)
	}
	var unhealthy int
	if err := r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_shadows s JOIN flows.meter_registry r ON r.id = s.id
		WHERE r.mode = 'active' AND s.health <> 'healthy'`).Scan(&unhealthy); err != nil {
		t.Fatal(err)
	}
	if unhealthy > 0 {
		t.Errorf("%d meters unhealthy after the set", unhealthy)
	}
	t.Logf("%d meters synced, peak %d in flight, %d requests answered", active, peak.Load(), st.Answered)
}

// A slot minute whose meters take far longer to read than a job may run
// (a big fleet at cellular latency: 1,667 meters a minute at 100,000) is
// read a chunk at a time, a run snoozing before its timeout and coming
// back for the rest: every meter is synced, once. Here the job timeout is
// 400 ms and a slot minute's 20 meters, two at a time (16 in flight among
// eight group jobs), take about 600; before chunking, each group job was
// cancelled at its timeout with its last meters unread and completed all
// the same, leaving them for the next hour.
func TestSlotMinuteLongerThanJobTimeout(t *testing.T) {
	const n = 1200
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := newRigOf(t, sim.GenerateFleet(n, sim.FleetOptions{AddressPrefix: "127.83", Secret: []byte("chunks")}), start,
		sim.Faults{LatencyMin: 5 * time.Millisecond, LatencyMax: 15 * time.Millisecond})
	ctx := context.Background()
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_metrics SET enabled = (run_frequency = 'hourly')`); err != nil {
		t.Fatal(err)
	}
	client, err := meterconn.New(meterconn.Config{Attempts: 2, Backoff: 20 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, MaxConcurrent: 64})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: client, Owner: "chunks", Workers: 16, MaxInFlight: 16,
		SyncTimeout: 400 * time.Millisecond, Now: r.clock.Now, ScheduleEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Stop(context.Background()) })
	var active int
	if err := r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_registry WHERE mode = 'active'`).Scan(&active); err != nil {
		t.Fatal(err)
	}
	var synced, twice int
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		if err := r.store.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE syncs > 0), count(*) FILTER (WHERE syncs > 1) FROM flows.meter_sync_state`).Scan(&synced, &twice); err != nil {
			t.Fatal(err)
		}
		if synced >= active {
			break
		}
		if time.Now().After(deadline) {
			jobs, _ := r.store.QueueJobStates(ctx)
			t.Fatalf("%d of %d active meters synced after 3 minutes (the groups gave up on the rest); jobs %s", synced, active, jobs)
		}
	}
	if twice > 0 {
		t.Errorf("%d meters synced twice in one hour", twice)
	}
}
