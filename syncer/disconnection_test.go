package syncer_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
	"github.com/shopspring/decimal"
)

// A simulated meter on emergency credit runs out and cuts its supply;
// syncs read its event log, and the self-disconnection is recorded from
// the meter's own events: opened at the meter's disconnection event while
// it is off supply, closed at the reconnection the top-up brought, its
// duration theirs to the second. The ESCO's report counts it.
func TestSelfDisconnectionFromTheMetersEvents(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	specs := sim.GenerateFleet(2, sim.FleetOptions{AddressPrefix: "127.82", Secret: []byte("rig")})
	specs[0].Mode, specs[0].Layout, specs[0].Hardware = "active", "single", "B1.w"
	specs[0].DST, specs[0].LoadA, specs[0].LoadB, specs[0].SolarPeak = false, 2000, 0, 0
	specs[0].ClockOffset, specs[0].DriftPPM = 0, 0              // the meter's clock is the simulation's
	specs[0].StartBalance = decimal.RequireFromString("-14.50") // on emergency credit, 50p above the £15 floor
	r := newRigOf(t, specs, t0, sim.Faults{})
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	id := r.ids[m.Spec.Serial]
	sync := func() {
		t.Helper()
		if _, err := r.engine.SyncMeter(ctx, id, syncer.OnDemand); err != nil {
			t.Fatal(err)
		}
	}
	type period struct {
		start  time.Time
		end    *time.Time
		source string
	}
	periods := func() []period {
		t.Helper()
		rows, err := r.store.Pool().Query(ctx, `SELECT started_at, ended_at, source FROM flows.meter_self_disconnections WHERE meter_id = $1 ORDER BY started_at`, id)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ps []period
		for rows.Next() {
			var p period
			if err := rows.Scan(&p.start, &p.end, &p.source); err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		return ps
	}
	eventAt := func(id uint16) time.Time {
		t.Helper()
		for _, e := range m.State(r.clock.Now()).Events {
			if e.EventID == id {
				return e.Timestamp
			}
		}
		t.Fatalf("the simulated meter logged no event %d", id)
		return time.Time{}
	}

	sync()
	if ps := periods(); len(ps) != 0 {
		t.Fatalf("on supply, %d self-disconnections recorded", len(ps))
	}
	r.clock.Advance(2 * time.Hour) // 2 kW at 28p: the 50p gone in under an hour
	sync()
	cut := eventAt(sim.EventSupplyDisconnected)
	ps := periods()
	if len(ps) != 1 || ps[0].source != "events" || !ps[0].start.Equal(cut) || ps[0].end != nil {
		t.Fatalf("off supply since %v: recorded %+v, want one period from the meter's event, still open", cut, ps)
	}

	r.clock.Advance(time.Hour)
	tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, decimal.NewFromInt(20))
	back := r.clock.Now()
	if _, err := m.ApplyToken(tok, back); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	sync()
	back = eventAt(sim.EventSupplyReconnected)
	ps = periods()
	if len(ps) != 1 || ps[0].source != "events" || !ps[0].start.Equal(cut) || ps[0].end == nil || !ps[0].end.Equal(back) {
		t.Fatalf("reconnected at %v: recorded %+v, want the period %v to %v", back, ps, cut, back)
	}

	rep, err := r.store.SelfDisconnectionReport(ctx, t0, r.clock.Now(), "RIG")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Disconnections != 1 || rep.Meters != 1 || rep.Ongoing != 0 || rep.Longest == nil || rep.Longest.Seconds != int64(back.Sub(cut)/time.Second) {
		t.Errorf("report %+v, want one disconnection of %v", rep, back.Sub(cut))
	}
	if rep, err := r.store.SelfDisconnectionReport(ctx, t0, r.clock.Now(), "OTHER"); err != nil || rep.Disconnections != 0 {
		t.Errorf("another ESCO's report: %+v %v, want none", rep, err)
	}
}
