package mediator_test

import (
	"context"
	"sync"
	"testing"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
)

// seen records what reached one mediator's meters: per serial, whether
// each call came as an operator's.
type seen struct {
	meterop.Meters
	mu    sync.Mutex
	calls map[string][]bool
}

func (s *seen) Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error) {
	s.mu.Lock()
	s.calls[t.Serial] = append(s.calls[t.Serial], meterconn.IsOperator(ctx))
	s.mu.Unlock()
	return s.Meters.Read(ctx, t, id)
}

// Through two mediators each meter always goes through the same one (its
// shard), both are used, and the shards say which calls are scheduled
// work — so at the mediator an operator's call still goes first — while a
// bare client (the emop CLI's) is an operator as before.
func TestShardsRouteBySerialAndSayScheduled(t *testing.T) {
	ctx := context.Background()
	// The rig's own mediator is not used: two are started below.
	rg := newRig(t, 12, "127.119", meterconn.Config{}, nil)
	store, fleet := rg.store, rg.fleet
	var recs []*seen
	var addrs []string
	for range 2 {
		c, err := meterconn.New(meterconn.Config{})
		if err != nil {
			t.Fatal(err)
		}
		r := &seen{Meters: c, calls: map[string][]bool{}}
		srv := mediator.New(mediator.Config{Addr: "127.0.0.1:0", Store: store, Meters: r})
		if err := srv.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Stop(context.Background()) })
		recs, addrs = append(recs, r), append(addrs, srv.Addr())
	}
	shards, err := mediator.DialShards(addrs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shards.Close() })
	for _, m := range fleet.Meters() {
		if m.Spec.Mode != "active" {
			continue
		}
		tg := meterconn.Target{Serial: m.Spec.Serial}
		if _, err := shards.Read(ctx, tg, emop.ObjPrepayBalance); err != nil {
			t.Fatalf("scheduled read of %s: %v", m.Spec.Serial, err)
		}
		if _, err := shards.Read(meterconn.Operator(ctx), tg, emop.ObjPrepayBalance); err != nil {
			t.Fatalf("operator read of %s: %v", m.Spec.Serial, err)
		}
		for i, r := range recs {
			got := r.calls[m.Spec.Serial]
			if i != shards.Shard(m.Spec.Serial) {
				if len(got) != 0 {
					t.Errorf("%s went through mediator %d, its shard is %d", m.Spec.Serial, i, shards.Shard(m.Spec.Serial))
				}
				continue
			}
			if len(got) != 2 || got[0] || !got[1] {
				t.Errorf("%s at its mediator: operator flags %v, want [false true] (scheduled, then operator)", m.Spec.Serial, got)
			}
		}
	}
	for i, r := range recs {
		if len(r.calls) == 0 {
			t.Errorf("mediator %d served no meter of 12", i)
		}
	}
	// A bare client is an operator at work.
	var serial string
	for _, m := range fleet.Meters() {
		if m.Spec.Mode == "active" {
			serial = m.Spec.Serial
		}
	}
	bare := dial(t, addrs[shards.Shard(serial)], nil)
	if _, err := bare.Read(ctx, meterconn.Target{Serial: serial}, emop.ObjPrepayBalance); err != nil {
		t.Fatal(err)
	}
	if got := recs[shards.Shard(serial)].calls[serial]; !got[len(got)-1] {
		t.Error("a bare client's call arrived as scheduled work")
	}
	for _, bad := range [][]string{nil, {addrs[0], addrs[0]}, {addrs[0], " "}} {
		if s, err := mediator.DialShards(bad, nil); err == nil {
			_ = s.Close()
			t.Errorf("DialShards(%q) accepted", bad)
		}
	}
}
