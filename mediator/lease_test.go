package mediator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
)

// A request from outside Flows (emop, the reference's scripts) waits while
// another Flows node syncs or pushes to its meter, and is answered "busy"
// if that goes on past LeaseWait; the mediator holds the meter while it
// serves the request and gives it back after. A Flows node reaching the
// meter through the mediator (mediator.Shards) already holds it and does
// not wait.
func TestOutsideClientWaitsForAnotherNode(t *testing.T) {
	r := newRig(t, 1, "127.94", meterconn.Config{Attempts: 1}, nil)
	ctx := context.Background()
	serial := r.fleet.Meters()[0].Spec.Serial
	m, err := r.store.MeterBySerial(ctx, serial)
	if err != nil {
		t.Fatal(err)
	}
	const other = "other-node:1"
	if _, ok, err := r.store.LeaseMeter(ctx, m.ID, other, time.Minute); err != nil || !ok {
		t.Fatalf("another node's sync lease: %v %v", ok, err)
	}
	client, err := mediator.Dial(r.server.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	target := meterconn.Target{Serial: serial}
	done := make(chan error, 1)
	go func() {
		_, err := client.Read(ctx, target, emop.ObjCSQ)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("an outside read went ahead while another node syncs the meter (%v)", err)
	case <-time.After(time.Second):
	}
	// Through the shards the node holds the meter itself: no wait.
	shards, err := mediator.DialShards([]string{r.server.Addr()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shards.Close() })
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if _, err := shards.Read(sctx, target, emop.ObjCSQ); err != nil {
		t.Errorf("a node's own read through the shards: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		t.Fatalf("the outside read went ahead while another node syncs the meter (%v)", err)
	default:
	}
	if err := r.store.ReleaseSyncLease(ctx, m.ID, other); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the outside read once the meter was free: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the outside read still waits after the other node let go")
	}
	// Given back: the other node takes the meter again at once.
	if _, ok, err := r.store.LeaseMeter(ctx, m.ID, other, time.Minute); err != nil || !ok {
		t.Fatalf("the other node's lease after the read: %v %v", ok, err)
	}

	// Held past LeaseWait: busy, saying why.
	quick := mediator.New(mediator.Config{Addr: "127.0.0.1:0", Store: r.store, Meters: mustTransport(t), LeaseWait: 300 * time.Millisecond})
	if err := quick.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = quick.Stop(context.Background()) })
	qc, err := mediator.Dial(quick.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qc.Close() })
	_, err = qc.Read(ctx, target, emop.ObjCSQ)
	if err == nil || !strings.Contains(err.Error(), "another Flows node") {
		t.Errorf("an outside read while another node keeps the meter: %v, want busy naming the other node", err)
	}
}

func mustTransport(t *testing.T) *meterconn.Client {
	t.Helper()
	c, err := meterconn.New(meterconn.Config{Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Under mutual TLS only a Flows node's certificate (role internal) may say
// it holds the meter: a partner saying so still waits for the other node.
func TestOnlyInternalCallersClaimTheLease(t *testing.T) {
	dir, stls := issueCerts(t)
	r := newRig(t, 1, "127.95", meterconn.Config{Attempts: 1}, stls)
	ctx := context.Background()
	serial := r.fleet.Meters()[0].Spec.Serial
	m, err := r.store.MeterBySerial(ctx, serial)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.store.LeaseMeter(ctx, m.ID, "other-node:1", time.Minute); err != nil || !ok {
		t.Fatalf("another node's sync lease: %v %v", ok, err)
	}
	target := meterconn.Target{Serial: serial}
	read := func(name string) error {
		shards, err := mediator.DialShards([]string{r.server.Addr()}, clientTLS(t, dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer shards.Close()
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err = shards.Read(rctx, target, emop.ObjCSQ)
		return err
	}
	if err := read("ops"); err != nil {
		t.Errorf("an internal node's read under its own lease: %v", err)
	}
	if err := read("partnerco"); err == nil {
		t.Error("a partner claiming the lease read the meter another node holds")
	}
}
