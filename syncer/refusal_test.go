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

// refusing passes reads to a real transport, except that the meter NAKs
// some objects and answers others with an empty payload.
type refusing struct {
	syncer.Meters
	nak, garble map[emop.ObjectID]bool
}

func (r refusing) Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error) {
	switch {
	case r.nak[id]:
		return nil, &emop.NakError{Code: emop.NakUnknownObject}
	case r.garble[id]:
		return []byte{}, nil
	}
	return r.Meters.Read(ctx, t, id)
}

// A meter that refuses or garbles one object does not overwrite what was
// stored for it: csq, voltage, emergency credit and prepay_enabled keep
// their last good values while the objects it does answer are updated.
func TestRefusedReadKeepsStoredValue(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := newRig(t, 1, t0, sim.Faults{})
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	id := r.ids[m.Spec.Serial]
	if _, err := r.engine.SyncMeter(ctx, id, syncer.OnDemand); err != nil {
		t.Fatal(err)
	}
	before, err := r.store.MeterStatus(ctx, m.Spec.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if before.Shadow.CSQ == nil || before.Shadow.Voltage == nil || before.Shadow.EmergencyCredit == nil || before.Meter.PrepayEnabled == nil || !*before.Meter.PrepayEnabled {
		t.Fatalf("first sync left gaps: %+v %+v", before.Shadow, before.Meter)
	}

	client, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	meters := refusing{Meters: client,
		nak:    map[emop.ObjectID]bool{emop.ObjPrepayEnabled: true, emop.ObjDSTFlag: true},
		garble: map[emop.ObjectID]bool{emop.ObjCSQ: true, emop.ObjVoltage: true, emop.ObjActiveEmergencyCredit: true},
	}
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: meters, Owner: "refusing", Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	if _, err := eng.SyncMeter(ctx, id, syncer.OnDemand); err != nil {
		t.Fatal(err)
	}
	after, err := r.store.MeterStatus(ctx, m.Spec.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if imp := after.Shadow.SyncedAt["reads"]; !imp.After(before.Shadow.SyncedAt["reads"]) {
		t.Errorf("registers not re-read by the second sync (synced at %s)", imp)
	}
	if *after.Shadow.CSQ != *before.Shadow.CSQ {
		t.Errorf("garbled csq overwrote %d with %d", *before.Shadow.CSQ, *after.Shadow.CSQ)
	}
	if !after.Shadow.Voltage.Equal(*before.Shadow.Voltage) {
		t.Errorf("garbled voltage overwrote %s with %s", before.Shadow.Voltage, after.Shadow.Voltage)
	}
	if !after.Shadow.EmergencyCredit.Equal(*before.Shadow.EmergencyCredit) {
		t.Errorf("garbled emergency credit overwrote %s with %s", before.Shadow.EmergencyCredit, after.Shadow.EmergencyCredit)
	}
	if !*after.Meter.PrepayEnabled {
		t.Error("a NAK on prepay_enabled turned prepay off in the registry")
	}
	if after.Meter.DaylightSavingsCorrectionEnabled != before.Meter.DaylightSavingsCorrectionEnabled {
		t.Errorf("a NAK on the DST flag changed it from %v to %v", before.Meter.DaylightSavingsCorrectionEnabled, after.Meter.DaylightSavingsCorrectionEnabled)
	}
}
