package command_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/command"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/sim"
)

// A meter another node is syncing gets no top-up until that sync lets it
// go (two nodes talking to one meter break its minimum gap), and while a
// push holds the meter no other node's sync can lease it; this node's own
// sync can (its per-meter turn orders the two).
func TestPushWaitsForAnotherNodesSync(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.117")
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	id := r.ids[m.Spec.Serial]
	if _, ok, err := r.store.LeaseMeter(ctx, id, "other-node:7", time.Minute); err != nil || !ok {
		t.Fatalf("another node's sync lease: %v %v", ok, err)
	}
	// The meter answers slowly, so the push is seen holding it.
	m.SetFaults(sim.Faults{LatencyMin: 300 * time.Millisecond, LatencyMax: 300 * time.Millisecond})
	c, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := command.New(command.Config{Store: r.store, Meters: c, Now: r.clock.Now, ClockThreshold: -1, Node: "this-node:1", Lease: 2 * time.Second})
	tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, d("5"))
	tu, err := r.store.CreateTopup(ctx, id, tok, nil, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	before := m.Stats().Answered
	pushed := make(chan error, 1)
	go func() { _, err := p.RunOnce(ctx); pushed <- err }()
	time.Sleep(1500 * time.Millisecond)
	if n := m.Stats().Answered - before; n != 0 {
		t.Fatalf("the meter had %d requests while another node held it", n)
	}
	if got, _ := r.store.Topup(ctx, tu.ID); got.Status != flows.TopupWaiting {
		t.Fatalf("top-up %s while it waited for the meter", got.Status)
	}
	if err := r.store.ReleaseSyncLease(ctx, id, "other-node:7"); err != nil {
		t.Fatal(err)
	}
	// The push takes the meter now: another node's sync is kept out,
	// this node's is not.
	for deadline := time.Now().Add(10 * time.Second); m.Stats().Answered == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the push never reached the meter after the lease was released")
		}
	}
	if _, ok, err := r.store.LeaseMeter(ctx, id, "other-node:7", time.Minute); err != nil || ok {
		t.Errorf("another node leased a meter being pushed to: %v %v", ok, err)
	}
	if _, ok, err := r.store.LeaseMeter(ctx, id, "this-node:1", time.Minute); err != nil || !ok {
		t.Errorf("this node's sync could not lease the meter its pusher holds: %v %v", ok, err)
	}
	if err := r.store.ReleaseSyncLease(ctx, id, "this-node:1"); err != nil {
		t.Fatal(err)
	}
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	if got, _ := r.store.Topup(ctx, tu.ID); got.Status != flows.TopupCompleted {
		t.Fatalf("top-up %s (%s)", got.Status, got.Notes)
	}
	// Given back with the push.
	if _, ok, err := r.store.LeaseMeter(ctx, id, "other-node:7", time.Minute); err != nil || !ok {
		t.Errorf("the push kept the meter: %v %v", ok, err)
	}
}

// A meter another node has just given back rests for its gap before this
// node's push reaches it: the other node's last request ended a moment
// before, and this node's per-meter turn, in another process, does not
// know of it. The simulated meter refuses and counts a request within its
// gap; the top-up gets there without one.
func TestPushAfterAnotherNodesSyncKeepsTheGap(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.118")
	const gap = 700 * time.Millisecond
	r.store = r.store.WithMeterGap(gap)
	ctx := context.Background()
	m := r.fleet.Meters()[2]
	id := r.ids[m.Spec.Serial]
	m.SetFaults(sim.Faults{MinGap: gap})
	other, err := meterconn.New(meterconn.Config{Attempts: 1, Gap: gap})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := meterconn.New(meterconn.Config{Attempts: 1, Gap: gap})
	if err != nil {
		t.Fatal(err)
	}
	p := command.New(command.Config{Store: r.store, Meters: mine, Now: r.clock.Now, ClockThreshold: -1, Node: "this-node:1", Lease: 2 * time.Second})
	tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, d("5"))
	tu, err := r.store.CreateTopup(ctx, id, tok, nil, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	// The other node reads the meter under its sync lease and gives it
	// back; the push is claimed straight after.
	if _, ok, err := r.store.LeaseMeter(ctx, id, "other-node:7", time.Minute); err != nil || !ok {
		t.Fatalf("another node's sync lease: %v %v", ok, err)
	}
	target := meterconn.Target{Serial: m.Spec.Serial, Addr: net.JoinHostPort(m.Spec.IPAddress, strconv.Itoa(m.Spec.Port))}
	if _, err := other.Read(ctx, target, emop.ObjSerial); err != nil {
		t.Fatalf("the other node's read: %v", err)
	}
	if err := r.store.ReleaseSyncLease(ctx, id, "other-node:7"); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	if _, err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := r.store.Topup(ctx, tu.ID)
	if got.Status != flows.TopupCompleted {
		t.Fatalf("top-up %s (%s)", got.Status, got.Notes)
	}
	if v := m.Stats().GapViolations; v != 0 {
		t.Errorf("the meter refused %d requests within its %v gap: the push followed the other node's read too soon", v, gap)
	}
	if d := time.Since(released); d > 10*time.Second {
		t.Errorf("the top-up took %v after the meter was given back, want about the gap", d)
	}
}
