package command_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/command"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/sim"
)

// A push slower than its lease keeps it (the heartbeat renews it), so a
// second pusher never pushes the same request at once; a claim left by a
// dead process is taken over within one lease.
func TestPushLeases(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.114")
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	id := r.ids[m.Spec.Serial]
	m.SetFaults(sim.Faults{LatencyMin: 150 * time.Millisecond, LatencyMax: 150 * time.Millisecond})
	lease := 300 * time.Millisecond
	pusher := func() *command.Pusher {
		c, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return command.New(command.Config{Store: r.store, Meters: c, Now: r.clock.Now, Lease: lease, ClockThreshold: -1})
	}

	tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, d("5"))
	tu, err := r.store.CreateTopup(ctx, id, tok, nil, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	before := m.State(r.clock.Now()).TxCount
	var wg sync.WaitGroup
	for range 2 {
		p := pusher()
		wg.Go(func() {
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if _, err := p.RunOnce(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got, _ := r.store.Topup(ctx, tu.ID)
	if got.Status != flows.TopupCompleted || got.Attempts != 1 {
		t.Errorf("top-up %s after %d claims (%q); want completed on its one claim", got.Status, got.Attempts, got.Notes)
	}
	if n := m.State(r.clock.Now()).TxCount - before; n != 1 {
		t.Errorf("the meter applied the token %d times", n)
	}
	var sends int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_write_audit WHERE request_id = $1`, tu.ID).Scan(&sends)
	if sends != 1 {
		t.Errorf("%d sends of one token", sends)
	}

	// A process claims a command and dies: the next takes over after its
	// lease, not after minutes.
	m.SetFaults(sim.Faults{})
	cmd, err := r.store.CreateMeterCommand(ctx, id, flows.CommandBacklight, "always_on_sp", "test")
	if err != nil {
		t.Fatal(err)
	}
	if claimed, err := r.store.ClaimMeterCommands(ctx, 10, lease, time.Now()); err != nil || len(claimed) != 1 {
		t.Fatalf("claim as the dead process: %v %v", claimed, err)
	}
	p := pusher()
	var st flows.RequestStatus
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := p.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ := r.store.MeterCommand(ctx, cmd.ID)
		if st = got.Status; st == flows.RequestVerified {
			break
		}
	}
	if st != flows.RequestVerified {
		t.Errorf("command %s 5 s after a dead process's claim with a %v lease; want taken over and verified", st, lease)
	}
}
